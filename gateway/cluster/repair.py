"""Scrub and repair: read back every shard of every object, rebuild what is missing or corrupt.

A shard is checked by reading it from its node, which verifies its checksum (a corrupt shard is
reported as Corrupt, never returned). For each stripe with unreadable shards, the stripe's
readable shards are decoded and the missing ones re-encoded and written back to the node that
should hold them. A stripe with fewer than k readable shards cannot be repaired and is listed.

The scrub is throttled (bytes per second) so it does not starve client traffic, and reports its
progress through a callback.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from common import stripes
from common.codec import ErasureCode
from common.nodeclient import NodeError, NodePool, NodeTimeout, NodeUnavailable
from gateway.cluster.catalog import Catalog
from gateway.cluster.metastore import MetaStore
from gateway.cluster.records import (SYSTEM_PARTITION, DataRef, ObjectRecord, bucket_partition,
                                     head_length, object_prefix, shard_key)

log = logging.getLogger("cairn.repair")


@dataclass
class RepairReport:
    objects: int = 0
    stripes: int = 0
    shards_checked: int = 0
    shards_rebuilt: int = 0
    records_repaired: int = 0
    unrepairable: list[str] = field(default_factory=list)  # "bucket/key stripe N: why"


@dataclass
class StripeRepair:
    checked: int = 0
    read_bytes: int = 0
    rebuilt: list[int] = field(default_factory=list)     # shard indices written back
    failures: list[str] = field(default_factory=list)    # why a shard could not be rebuilt


class Throttle:
    def __init__(self, bytes_per_second: float | None):
        self._rate = bytes_per_second
        self._start = time.monotonic()
        self._done = 0

    async def charge(self, nbytes: int) -> None:
        if not self._rate:
            return
        self._done += nbytes
        ahead = self._done / self._rate - (time.monotonic() - self._start)
        if ahead > 0:
            await asyncio.sleep(ahead)


async def repair_stripe(pool: NodePool, code: ErasureCode, ref: DataRef, stripe_no: int, *,
                        timeout: float = 10.0, only_answered: bool = False) -> StripeRepair:
    """Read every shard of one stripe and write back the ones that could not be read, rebuilt
    from k good ones. With only_answered, a shard whose node did not answer (down, or too slow)
    is left alone: it is not known to be bad, and its node could not take the write anyway."""
    keys = [shard_key(ref.data_id, stripe_no, i) for i in range(ref.k + ref.m)]
    results = await asyncio.gather(*(pool[ref.nodes[i]].get_shard(keys[i], timeout=timeout)
                                     for i in range(ref.k + ref.m)), return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, (NodeError, asyncio.TimeoutError)):
            raise r
    outcome = StripeRepair(checked=len(results))
    good = {i: r for i, r in enumerate(results) if not isinstance(r, BaseException)}
    outcome.read_bytes = sum(len(r) for r in good.values())
    bad = [i for i, r in enumerate(results) if isinstance(r, BaseException)
           and not (only_answered and isinstance(r, (NodeTimeout, NodeUnavailable, asyncio.TimeoutError)))]
    if not bad:
        return outcome
    if len(good) < ref.k:
        outcome.failures.append(f"stripe {stripe_no}: {len(good)} of {ref.k + ref.m} shards readable")
        return outcome
    chosen = dict(sorted(good.items())[: ref.k])
    rebuilt = await asyncio.get_running_loop().run_in_executor(None, code.reconstruct, chosen, bad)
    writes = await asyncio.gather(*(pool[ref.nodes[i]].put_shard(keys[i], rebuilt[i], timeout=timeout)
                                    for i in bad), return_exceptions=True)
    for i, w in zip(bad, writes):
        if isinstance(w, BaseException):
            outcome.failures.append(f"stripe {stripe_no} shard {i}: {ref.nodes[i]} refused ({w})")
        else:
            outcome.rebuilt.append(i)
            log.info("rebuilt shard %d of stripe %d (data %s) on %s", i, stripe_no,
                     ref.data_id.hex(), ref.nodes[i])
    return outcome


async def repair_extent(pool: NodePool, ref: DataRef, size: int, report: RepairReport, name: str,
                        throttle: Throttle, timeout: float = 10.0) -> None:
    code = ErasureCode(ref.k, ref.m)
    for s in range(stripes.stripe_count(size, ref.stripe_size)):
        outcome = await repair_stripe(pool, code, ref, s, timeout=timeout)
        report.stripes += 1
        report.shards_checked += outcome.checked
        report.shards_rebuilt += len(outcome.rebuilt)
        report.unrepairable.extend(f"{name} {why}" for why in outcome.failures)
        await throttle.charge(outcome.read_bytes)


async def sync_records(meta: MetaStore, pool: NodePool, partition: bytes, prefix: bytes,
                       report: RepairReport, timeout: float = 10.0) -> None:
    """Anti-entropy for one partition: every replica gets the newest version of every record
    under prefix (read repair only fixes what clients happen to read)."""
    nodes = meta.replicas(partition)
    cursors: dict[str, bytes | None] = {n: prefix for n in nodes}
    while cursors:
        pages = {}
        for node, start in list(cursors.items()):
            try:
                pages[node] = await pool[node].scan_records(prefix, start=start, limit=500, timeout=timeout)
            except (NodeError, asyncio.TimeoutError) as exc:
                report.unrepairable.append(f"records of {partition!r} on {node}: {exc}")
                cursors.pop(node)
        if not pages:
            return
        # Only keys up to the smallest last key of a replica that has more are complete everywhere.
        bound = min((p.items[-1][0] for p in pages.values() if p.more and p.items), default=None)
        newest: dict[bytes, tuple[bytes, bytes]] = {}
        held: dict[str, dict[bytes, bytes]] = {n: {} for n in pages}
        for node, page in pages.items():
            for key, stamp, value in page.items:
                if bound is not None and key > bound:
                    continue
                held[node][key] = stamp
                if key not in newest or stamp > newest[key][0]:
                    newest[key] = (stamp, value)
        for node in pages:
            for key, (stamp, value) in newest.items():
                if held[node].get(key, b"") < stamp:
                    await pool[node].put_record(key, stamp, value, head=head_length(value),
                                                timeout=timeout)
                    report.records_repaired += 1
        if bound is None:
            return
        cursors = {n: bound + b"\x00" for n in pages}


async def scrub(meta: MetaStore, catalog: Catalog, pool: NodePool, *,
                bytes_per_second: float | None = None,
                progress: Callable[[RepairReport], None] | None = None) -> RepairReport:
    report = RepairReport()
    throttle = Throttle(bytes_per_second)
    await sync_records(meta, pool, SYSTEM_PARTITION, b"", report)
    for bucket in await catalog.list_buckets():
        await sync_records(meta, pool, bucket_partition(bucket.name), b"", report)
        prefix = object_prefix(bucket.name)
        async for rkey, v in meta.scan_all(bucket_partition(bucket.name), prefix, page_size=500):
            rec = ObjectRecord.decode(v.value)
            if rec.deleted:
                continue
            name = f"{bucket.name}/{rkey[len(prefix):].decode('utf-8', 'surrogateescape')}"
            report.objects += 1
            for ext in rec.extents():
                if ext.data is not None:
                    await repair_extent(pool, ext.data, ext.size, report, name, throttle)
            if progress is not None:
                progress(report)
    return report
