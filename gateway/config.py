"""Gateway configuration: loaded once (from the command line) into a frozen dataclass."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

MiB = 1 << 20


@dataclass(frozen=True)
class GatewayConfig:
    ring_path: Path
    keys_dir: Path | None                 # CurveZMQ client keys; None only in tests
    host: str = "127.0.0.1"
    port: int = 9000
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    domains: tuple[str, ...] = ()         # virtual-hosted style: <bucket>.<domain>
    region: str = "us-east-1"
    # Objects up to this size live inline in their (replicated) record: one quorum round trip
    # instead of k+m shard writes plus a record write. See docs/architecture.md for the figure.
    inline_threshold: int = 16 * 1024
    # Data bytes per stripe (k shards of stripe_size/k). 4 MiB (1 MiB shards at 4+2) measured
    # +50 % on 64 MiB PUTs and +28 % on GETs over 1 MiB stripes: fewer, larger node messages.
    stripe_size: int = 4 * MiB
    stripe_window: int = 3                # stripes in flight per upload (bounds memory)
    read_window: int = 2                  # stripes prefetched per download
    write_budget: int = 8                 # stripes in flight per worker, all uploads together
    data_write_quorum: int | None = None  # default k + 1
    node_timeout: float = 5.0
    # A shard holder that has not answered this long after the rest made the quorum is treated
    # as failed for that request (a node killed mid-request would otherwise cost a timeout).
    straggler_grace: float = 2.0
    node_probe_interval: float = 1.0      # every node is pinged this often (gateway/cluster/health.py)
    max_object_size: int = 5 * 1024 * MiB  # single PUT limit, as S3
    skew_seconds: int = 15 * 60
    io_threads: int = 4                   # hashing/erasure-coding threads per worker
    # Fault injection for tests only: shifts this gateway's wall clock (HLC stamps and record
    # times), to show that causality does not depend on synchronised clocks.
    clock_offset_ms: int = 0

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None
