"""Configuration of one storage node, built once (by the CLI or a test) and passed explicitly."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True)
class NodeConfig:
    node_id: str
    listen: str                      # zmq endpoint, e.g. "tcp://127.0.0.1:7001"
    data_dir: Path                   # holds the LMDB environment (data.mdb, lock.mdb)
    keys_dir: Path | None            # CurveZMQ keys (common.keys layout); None = plain TCP, tests only
    map_size: int = 256 * MiB        # initial LMDB map; grows by doubling when full ...
    map_size_max: int = 64 * GiB     # ... up to this, then writes fail with Status.FULL
    group_commit_max: int = 64       # write ops batched into one synced LMDB transaction
    sync: bool = True                # fsync every commit; off only for throwaway benchmarks
    max_message_bytes: int = 256 * MiB  # zmq refuses (and disconnects) bigger inbound messages

    def __post_init__(self) -> None:
        if not self.node_id:
            raise ValueError("node_id must not be empty")
        if self.map_size <= 0 or self.map_size_max < self.map_size:
            raise ValueError(f"need 0 < map_size <= map_size_max, got {self.map_size}, "
                             f"{self.map_size_max}")
        if self.group_commit_max < 1:
            raise ValueError("group_commit_max must be at least 1")
