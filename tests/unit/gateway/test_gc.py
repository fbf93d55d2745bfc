"""Garbage collection over the node twin: only shards that no record refers to, and that are older
than the grace period, are deleted."""
from __future__ import annotations

import os
import time

import pytest

from common.nodeclient import NodeUnavailable
from gateway.cluster.gc import PAGE, collect_garbage, referenced_data_ids
from gateway.cluster.records import (BucketRecord, DataRef, ObjectRecord, PartRef, shard_key)
from gateway.cluster.uploads import Uploads
from gateway.s3.errors import ServiceUnavailable
from tests.unit.gateway.fakes import BytesSource, fake_cluster

HOUR = 3600
STRIPE = 1024


def old_data_id(hours: float = 7) -> bytes:
    """A data id made `hours` ago (data ids begin with their creation time in ns)."""
    return (time.time_ns() - int(hours * HOUR * 1e9)).to_bytes(8, "big") + os.urandom(8)


def plant(cluster, data_id: bytes, stripes: int = 1) -> DataRef:
    """Shards for data_id on every node, as an interrupted or replaced write leaves them."""
    nodes = tuple(n.id for n in cluster.ring.nodes_for(data_id))
    for s in range(stripes):
        for i, node in enumerate(nodes):
            cluster.pool[node].shards[shard_key(data_id, s, i)] = b"s" * 10
    return DataRef(data_id, 4, 2, STRIPE, nodes)


def holds(cluster, data_id: bytes) -> int:
    return sum(1 for c in cluster.pool.clients() for key in c.shards if key[:16] == data_id)


async def write_object(cluster, bucket: str, key: str, size: int = 3 * STRIPE) -> DataRef:
    ref, _ = await cluster.data.write(b"", BytesSource(os.urandom(size)), lambda b: None)
    rec = ObjectRecord(size=size, etag="e", mtime_ns=1, data=ref)
    await cluster.catalog.commit_object(bucket, key, rec, await cluster.catalog.get_object(bucket, key))
    return ref


@pytest.fixture
async def cluster():
    async with fake_cluster(stripe_size=STRIPE) as c:
        for name in ("b1", "b2"):
            await c.catalog.put_bucket(BucketRecord(name=name, owner="AK", created_ns=1))
        yield c


async def test_referenced_ids_cover_objects_multipart_objects_and_open_parts(cluster) -> None:
    cat, uploads = cluster.catalog, Uploads(cluster.meta, cluster.clock)
    single = await write_object(cluster, "b1", "single")
    p1, p2, p3 = (plant(cluster, old_data_id()) for _ in range(3))
    multipart = ObjectRecord(size=3, etag="m-2", mtime_ns=1,
                             parts=(PartRef(1, 1, "a", data=p1), PartRef(2, 1, "b", inline=b"x"),
                                    PartRef(3, 1, "c", data=p2)))
    await cat.commit_object("b2", "multi", multipart, None)
    await uploads.put_part("b1", "upload-1", PartRef(1, 1, "d", data=p3))
    dropped = plant(cluster, old_data_id())
    await uploads.put_part("b1", "upload-1", PartRef(2, 1, "e", data=dropped))
    await uploads.drop_part("b1", "upload-1", PartRef(2, 1, "e", data=dropped))
    gone = await write_object(cluster, "b1", "deleted")
    await cat.commit_object("b1", "deleted", ObjectRecord.tombstone(2), await cat.get_object("b1", "deleted"))
    replaced = await write_object(cluster, "b2", "replaced")
    current = await write_object(cluster, "b2", "replaced")
    refs = await referenced_data_ids(cluster.meta, cat)
    assert refs == {single.data_id, p1.data_id, p2.data_id, p3.data_id, current.data_id}
    assert not refs & {dropped.data_id, gone.data_id, replaced.data_id}


async def test_collect_deletes_only_old_unreferenced_shards(cluster) -> None:
    live = await write_object(cluster, "b1", "live")
    live_old = plant(cluster, old_data_id(), stripes=2)            # referenced: kept however old
    await cluster.catalog.commit_object(
        "b2", "old-but-live", ObjectRecord(size=2 * STRIPE, etag="e", mtime_ns=1, data=live_old), None)
    orphan = plant(cluster, old_data_id(), stripes=3)              # an interrupted PUT, long ago
    in_flight = plant(cluster, old_data_id(hours=0.5))             # younger than the grace period
    replaced = await write_object(cluster, "b1", "k")
    await write_object(cluster, "b1", "k")
    before = cluster.pool.shard_count()
    report = await collect_garbage(cluster.meta, cluster.catalog, cluster.pool, cluster.ring,
                                   grace=6 * HOUR)
    assert holds(cluster, orphan.data_id) == 0
    assert holds(cluster, live.data_id) == 18 and holds(cluster, live_old.data_id) == 12
    assert holds(cluster, in_flight.data_id) == 6
    assert holds(cluster, replaced.data_id) == 18          # young: its delayed forget is still due
    assert report.deleted == 18 and report.deleted_bytes == 18 * 10
    assert report.scanned == before and cluster.pool.shard_count() == before - 18
    assert report.young_kept == 6 + 18 and report.unreachable_nodes == []
    assert report.referenced == 3                          # live, live_old, k's current version
    # With no grace at all, the replaced version goes too; nothing referenced does.
    await collect_garbage(cluster.meta, cluster.catalog, cluster.pool, cluster.ring, grace=0)
    assert holds(cluster, replaced.data_id) == 0 and holds(cluster, in_flight.data_id) == 0
    assert holds(cluster, live.data_id) == 18 and holds(cluster, live_old.data_id) == 12


async def test_dry_run_deletes_nothing(cluster) -> None:
    orphan = plant(cluster, old_data_id(), stripes=2)
    report = await collect_garbage(cluster.meta, cluster.catalog, cluster.pool, cluster.ring,
                                   grace=HOUR, dry_run=True)
    assert report.deleted == 12 and holds(cluster, orphan.data_id) == 12


async def test_many_shards_per_node_are_paged(cluster) -> None:
    node = cluster.pool["n0"]
    orphans = [old_data_id() for _ in range(PAGE + 200)]
    for data_id in orphans:
        node.shards[shard_key(data_id, 0, 0)] = b"x"
    live = await write_object(cluster, "b1", "live")
    report = await collect_garbage(cluster.meta, cluster.catalog, cluster.pool, cluster.ring, grace=HOUR)
    assert report.deleted == len(orphans)
    assert all(key[:16] == live.data_id for key in node.shards)
    assert holds(cluster, live.data_id) == 18


async def test_an_unreachable_node_is_reported_and_the_others_collected(cluster) -> None:
    orphan = plant(cluster, old_data_id())
    down = cluster.pool["n2"]
    down.fail(NodeUnavailable, ops={"scan_shards", "delete_shard"})
    report = await collect_garbage(cluster.meta, cluster.catalog, cluster.pool, cluster.ring, grace=HOUR)
    assert report.unreachable_nodes == ["n2"]
    assert holds(cluster, orphan.data_id) == 1 and len(down.shards) == 1


async def test_gc_deletes_nothing_when_it_cannot_read_the_references(cluster) -> None:
    await write_object(cluster, "b1", "live")
    before = cluster.pool.shard_count()
    for name in ("n0", "n1", "n3", "n5"):                   # fewer than a read quorum answer
        cluster.pool[name].fail(NodeUnavailable, ops={"get_record", "scan_records"})
    with pytest.raises(ServiceUnavailable):
        await collect_garbage(cluster.meta, cluster.catalog, cluster.pool, cluster.ring, grace=0)
    assert cluster.pool.shard_count() == before


async def test_references_are_read_with_m_nodes_down() -> None:
    async with fake_cluster(stripe_size=STRIPE) as cluster:
        await cluster.catalog.put_bucket(BucketRecord(name="b1", owner="AK", created_ns=1))
        live = await write_object(cluster, "b1", "live")
        orphan = plant(cluster, old_data_id())
        for name in ("n1", "n4"):
            cluster.pool[name].fail(NodeUnavailable, ops={"get_record", "scan_records"})
        await collect_garbage(cluster.meta, cluster.catalog, cluster.pool, cluster.ring, grace=HOUR)
        assert holds(cluster, orphan.data_id) == 0 and holds(cluster, live.data_id) == 18


async def test_records_of_an_earlier_bucket_of_the_same_name_keep_no_data(cluster) -> None:
    kept = await write_object(cluster, "b1", "kept")
    ghost = await write_object(cluster, "b1", "ghost")
    rec = ObjectRecord(size=3 * STRIPE, etag="e", mtime_ns=1, data=ghost, bucket_ns=0xDEAD)
    await cluster.catalog.commit_object("b1", "ghost", rec, await cluster.catalog.get_object("b1", "ghost"))
    refs = await referenced_data_ids(cluster.meta, cluster.catalog)
    assert kept.data_id in refs and ghost.data_id not in refs
