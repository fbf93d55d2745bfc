"""Quorum sizes, derived in one place, and quorum as a pure reduction over per-node outcomes.

Data (erasure-coded shards): a stripe is durable once `data_write` of its k+m shards are stored;
the default k+1 tolerates one more loss than strictly needed to decode before anything is at risk.

Metadata (object, bucket and key records): replicated on the k+m nodes of its ring partition,
with majority write quorum W and read quorum R = N - W + 1, so every read intersects every
completed write, and with up to m nodes down both quorums are still reachable (N - m >= W).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from gateway.s3.errors import ServiceUnavailable


@dataclass(frozen=True)
class Quorums:
    k: int
    m: int
    data_write: int
    meta_replicas: int
    meta_write: int
    meta_read: int


def derive_quorums(k: int, m: int, data_write: int | None = None) -> Quorums:
    data_write = k + 1 if data_write is None else data_write
    if not k <= data_write <= k + m:
        raise ValueError(f"data write quorum {data_write} must lie in [{k}, {k + m}]")
    n = k + m
    meta_write = n // 2 + 1
    meta_read = n - meta_write + 1
    if n - m < meta_write:
        raise ValueError(f"{n} metadata replicas cannot keep a majority with {m} nodes down")
    return Quorums(k=k, m=m, data_write=min(data_write, n), meta_replicas=n,
                   meta_write=meta_write, meta_read=meta_read)


def require(outcomes: Sequence[BaseException | None], needed: int, what: str) -> int:
    """Number of successes, or ServiceUnavailable when fewer than `needed` succeeded.

    `outcomes` holds None for success and the exception for failure, one per node.
    """
    ok = sum(1 for o in outcomes if o is None)
    if ok < needed:
        errors = sorted({type(o).__name__ for o in outcomes if o is not None})
        raise ServiceUnavailable(
            f"{what}: {ok} of {len(outcomes)} storage nodes answered, {needed} needed"
            + (f" ({', '.join(errors)})" if errors else ""))
    return ok


def reachable(alive: int, needed: int) -> bool:
    return alive >= needed
