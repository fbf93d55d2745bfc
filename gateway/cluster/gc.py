"""Garbage collection of shards that no committed record refers to.

Shards become garbage when a write is interrupted before its commit point (gateway crash, client
gone, digest mismatch whose cleanup did not finish), when a replaced version's delayed removal
never ran, or when an aborted upload's parts were not all removed.

One pass: (1) collect every data id referenced by an upload part record, then (2) by an object
record, bucket by bucket, then (3) walk every node's shards and delete those whose data id is
unreferenced and older than `grace` seconds (data ids begin with their creation time). Parts are
collected before objects so that an upload completing during the pass is seen either as parts or
as its object. The grace period covers writes still in flight, whose records do not exist yet.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from common.nodeclient import NodeError, NodePool
from gateway.cluster.catalog import Catalog
from gateway.cluster.datapath import data_id_age_seconds
from gateway.cluster.metastore import MetaStore
from gateway.cluster.records import (PART_PREFIX, ObjectRecord, bucket_partition, decode_part,
                                     object_prefix)
from ring.model import Ring

log = logging.getLogger("cairn.gc")

PAGE = 1000


@dataclass
class GcReport:
    referenced: int = 0
    scanned: int = 0
    deleted: int = 0
    deleted_bytes: int = 0
    young_kept: int = 0
    unreachable_nodes: list[str] = field(default_factory=list)


async def referenced_data_ids(meta: MetaStore, catalog: Catalog) -> set[bytes]:
    live = await catalog.list_buckets()
    buckets = [b.name for b in live]
    refs: set[bytes] = set()
    for name in buckets:  # parts first: see the module docstring
        async for _, v in meta.scan_all(bucket_partition(name), PART_PREFIX + name.encode() + b"/"):
            part, deleted = decode_part(v.value)
            if not deleted and part.data is not None:
                refs.add(part.data.data_id)
    for bucket in live:   # records of an earlier bucket of the same name refer to nothing
        async for _, v in meta.scan_all(bucket_partition(bucket.name), object_prefix(bucket.name)):
            rec = ObjectRecord.decode(v.value)
            if not rec.deleted and rec.belongs_to(bucket.created_ns):
                refs.update(e.data.data_id for e in rec.extents() if e.data is not None)
    return refs


async def collect_garbage(meta: MetaStore, catalog: Catalog, pool: NodePool, ring: Ring, *,
                          grace: float = 6 * 3600, dry_run: bool = False) -> GcReport:
    report = GcReport()
    refs = await referenced_data_ids(meta, catalog)
    report.referenced = len(refs)
    for node in ring.nodes:
        client = pool[node.id]
        start = None
        try:
            while True:
                page, more = await client.scan_shards(b"", start=start, limit=PAGE)
                doomed = []
                for key, size in page:
                    report.scanned += 1
                    data_id = key[:16]
                    if data_id in refs:
                        continue
                    if data_id_age_seconds(data_id) < grace:
                        report.young_kept += 1
                        continue
                    doomed.append((key, size))
                if not dry_run and doomed:
                    await asyncio.gather(*(client.delete_shard(k) for k, _ in doomed))
                report.deleted += len(doomed)
                report.deleted_bytes += sum(size for _, size in doomed)
                if not more or not page:
                    break
                start = page[-1][0] + b"\x00"
        except (NodeError, asyncio.TimeoutError) as exc:
            log.warning("gc: node %s unreachable (%s); its garbage waits for the next pass", node.id, exc)
            report.unreachable_nodes.append(node.id)
    log.info("gc: %s", report)
    return report
