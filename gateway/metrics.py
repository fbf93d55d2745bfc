"""Prometheus metrics of one gateway worker, in a registry of its own (no process globals)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("cairn_s3_requests_total", "S3 requests by operation and status",
                                ["method", "op", "status"], registry=self.registry)
        self.latency = Histogram("cairn_s3_request_seconds", "S3 request latency", ["op"],
                                 registry=self.registry,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10))
        self.repairs = Counter("cairn_shards_needing_repair_total",
                               "Shards found missing or corrupt on read", ["reason"],
                               registry=self.registry)
        self.healed = Counter("cairn_shards_healed_total",
                              "Shards rebuilt and written back after a read found them bad",
                              registry=self.registry)

    def observe(self, method: str, op: str, status: int, seconds: float) -> None:
        self.requests.labels(method, op, str(status)).inc()
        self.latency.labels(op).observe(seconds)

    def repair_hint(self, why: str) -> None:
        self.repairs.labels(why).inc()

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
