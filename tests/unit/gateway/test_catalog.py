"""Catalog over the node twin: buckets, access keys, object commits ordered by causal stamps, and
scan_objects (tombstones, start_after, limit, long keys)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.nodeclient import NodeUnavailable
from gateway.cluster.catalog import Catalog
from gateway.cluster.hlc import HybridClock, Stamp
from gateway.cluster.records import (AccessKeyRecord, BucketRecord, ObjectRecord,
                                     bucket_partition, object_key, object_key_stem)
from gateway.s3.errors import ServiceUnavailable
from tests.unit.gateway.fakes import fake_cluster

T0 = 1_700_000_000_000
TEN_MINUTES = 10 * 60 * 1000


@pytest.fixture
async def cluster():
    async with fake_cluster() as c:
        yield c


def obj(tag: str, size: int = 1) -> ObjectRecord:
    return ObjectRecord(size=size, etag=tag, mtime_ns=1, inline=b"x" * size)


async def put(catalog: Catalog, bucket: str, key: str, rec: ObjectRecord) -> bytes:
    return await catalog.commit_object(bucket, key, rec, await catalog.get_object(bucket, key))


async def delete(catalog: Catalog, bucket: str, key: str) -> None:
    await put(catalog, bucket, key, ObjectRecord.tombstone(2))


async def scan_all(catalog: Catalog, bucket: str, prefix: str, limit: int,
                   start_after: str | None = None) -> list[str]:
    out: list[str] = []
    for _ in range(1000):
        page, more = await catalog.scan_objects(bucket, prefix, start_after, limit)
        assert len(page) <= limit
        out.extend(k for k, _ in page)
        if not more:
            return out
        start_after = page[-1][0]
    raise AssertionError("scan did not finish")


# ---- buckets and access keys ----------------------------------------------------------------------
async def test_bucket_lifecycle(cluster) -> None:
    cat = cluster.catalog
    assert await cat.get_bucket("b") is None
    await cat.put_bucket(BucketRecord(name="b", owner="AK", created_ns=1))
    await cat.put_bucket(BucketRecord(name="a", owner="AK", created_ns=2))
    assert (await cat.get_bucket("b")).owner == "AK"
    assert [b.name for b in await cat.list_buckets()] == ["a", "b"]
    await cat.delete_bucket(await cat.get_bucket("b"))
    assert await cat.get_bucket("b") is None
    assert [b.name for b in await cat.list_buckets()] == ["a"]


async def test_access_keys_are_cached_until_the_ttl(cluster) -> None:
    cat = Catalog(cluster.meta, cluster.clock, key_cache_ttl=60)
    assert await cat.get_access_key("AK") is None
    await cat.put_access_key(AccessKeyRecord("AK", "secret", "ci", 1))
    assert (await cat.get_access_key("AK")).secret_key == "secret"   # put drops the cached miss
    assert cat.cached_secret("AK") == "secret"
    # Another gateway deletes the key: this one keeps using its cached copy until the TTL passes.
    other = cluster.gateway(HybridClock())
    await other.put_access_key(AccessKeyRecord("AK", "secret", "ci", 1, deleted=True))
    assert (await cat.get_access_key("AK")) is not None
    fresh = Catalog(cluster.meta, cluster.clock, key_cache_ttl=0)
    assert await fresh.get_access_key("AK") is None
    assert [k.access_key for k in await fresh.list_access_keys()] == []


# ---- object commits -------------------------------------------------------------------------------
async def test_commit_then_get_and_tombstone(cluster) -> None:
    cat = cluster.catalog
    await put(cat, "b", "k", obj("v1"))
    got = await cat.get_object("b", "k")
    assert got.record.etag == "v1" and not got.record.deleted
    await delete(cat, "b", "k")
    assert (await cat.get_object("b", "k")).record.deleted       # tombstones are returned


async def test_a_gateway_ten_minutes_behind_wins_when_it_read_first(cluster) -> None:
    ahead = cluster.gateway(HybridClock(writer_id=2**64 - 1, wall_ms=lambda: T0 + TEN_MINUTES))
    behind = cluster.gateway(HybridClock(writer_id=0, wall_ms=lambda: T0))
    first = await put(ahead, "b", "k", obj("from-ahead"))
    # The later PUT goes through the gateway whose clock is 10 minutes behind. It reads the
    # current record first (as every mutation does), so its stamp is greater anyway.
    second = await put(behind, "b", "k", obj("from-behind"))
    assert Stamp.from_bytes(second) > Stamp.from_bytes(first)
    for gateway in (ahead, behind, cluster.catalog):
        assert (await gateway.get_object("b", "k")).record.etag == "from-behind"


async def test_without_reading_first_a_slow_clock_would_lose(cluster) -> None:
    """Why commit_object takes `seen`: the stamp must come after the version it replaces."""
    ahead = cluster.gateway(HybridClock(writer_id=1, wall_ms=lambda: T0 + TEN_MINUTES))
    behind = cluster.gateway(HybridClock(writer_id=2, wall_ms=lambda: T0))
    await put(ahead, "b", "k", obj("from-ahead"))
    await behind.commit_object("b", "k", obj("blind"), seen=None)
    assert (await behind.get_object("b", "k")).record.etag == "from-ahead"


async def test_a_failed_commit_is_invisible_and_keeps_the_previous_version(cluster) -> None:
    cat = cluster.catalog
    await put(cat, "b", "k", obj("v1"))
    replicas = cluster.replicas(bucket_partition("b"))
    for node in replicas[:3]:
        node.fail(NodeUnavailable, ops={"put_record"})
    with pytest.raises(ServiceUnavailable):
        await put(cat, "b", "k", obj("v2"))
    for node in replicas[:3]:
        node.recover()
    assert (await cat.get_object("b", "k")).record.etag == "v1"


async def test_long_keys_round_trip_and_never_alias(cluster) -> None:
    cat = cluster.catalog
    stem = object_key_stem("b")
    a, b = "s" * stem + "a" * 500, "s" * stem + "b" * 500
    await put(cat, "b", a, obj("A"))
    await put(cat, "b", b, obj("B"))
    assert (await cat.get_object("b", a)).record.etag == "A"
    assert (await cat.get_object("b", b)).record.etag == "B"
    assert (await cat.get_object("b", a)).record.key == a
    # A record whose full key is another key's (a hash collision) is not returned for this key.
    rkey = object_key("b", a)
    stored = cluster.replicas(bucket_partition("b"))[0].records[rkey]
    for node in cluster.replicas(bucket_partition("b")):
        node.hold(rkey, stored[0], ObjectRecord(size=1, etag="X", mtime_ns=1, key=b).encode())
    assert await cat.get_object("b", a) is None


# ---- bucket incarnations ----------------------------------------------------------------------------
async def test_records_of_an_earlier_bucket_of_the_same_name_are_not_this_ones(cluster) -> None:
    cat = cluster.catalog
    for key, bucket_ns in (("old", 100), ("new", 200), ("legacy", 0)):
        await put(cat, "b", key, ObjectRecord(size=1, etag=key, mtime_ns=1, inline=b"x",
                                              bucket_ns=bucket_ns))
    found = await cat.get_object("b", "old", incarnation=200)
    raw = await cat.get_object("b", "old")
    assert found.record.deleted and found.stamp == raw.stamp     # a tombstone, same stamp
    assert not (await cat.get_object("b", "new", incarnation=200)).record.deleted
    assert not (await cat.get_object("b", "legacy", incarnation=200)).record.deleted
    page, _ = await cat.scan_objects("b", "", None, 10, incarnation=200)
    assert [k for k, _ in page] == ["legacy", "new"]
    assert [k for k, _ in (await cat.scan_objects("b", "", None, 10))[0]] == ["legacy", "new", "old"]
    # A write after the stale record still orders after it (its stamp was observed).
    await cat.commit_object("b", "old", obj("again"), found)
    assert (await cat.get_object("b", "old", incarnation=200)).record.etag == "again"


# ---- scan_objects ---------------------------------------------------------------------------------
async def test_scan_skips_tombstones_without_counting_them(cluster) -> None:
    cat = cluster.catalog
    for key in "abcdefgh":
        await put(cat, "b", key, obj(key))
    for key in "bcdf":
        await delete(cat, "b", key)
    page, more = await cat.scan_objects("b", "", None, 3)
    assert [k for k, _ in page] == ["a", "e", "g"] and more
    assert await scan_all(cat, "b", "", 1) == ["a", "e", "g", "h"]


async def test_scan_start_after_is_exclusive_and_need_not_exist(cluster) -> None:
    cat = cluster.catalog
    for key in ["a", "a/1", "a/2", "ab", "b"]:
        await put(cat, "b", key, obj(key))
    assert [k for k, _ in (await cat.scan_objects("b", "", "a", 10))[0]] == ["a/1", "a/2", "ab", "b"]
    assert [k for k, _ in (await cat.scan_objects("b", "", "a/1", 10))[0]] == ["a/2", "ab", "b"]
    assert [k for k, _ in (await cat.scan_objects("b", "", "a/15", 10))[0]] == ["a/2", "ab", "b"]
    assert [k for k, _ in (await cat.scan_objects("b", "", "zzz", 10))[0]] == []
    # start_after before the prefix: the scan begins at the prefix
    assert [k for k, _ in (await cat.scan_objects("b", "a/", "", 10))[0]] == ["a/1", "a/2"]
    assert [k for k, _ in (await cat.scan_objects("b", "a/", "0", 10))[0]] == ["a/1", "a/2"]


async def test_scan_prefix_and_limit(cluster) -> None:
    cat = cluster.catalog
    for key in ["p", "p/x", "p/y", "p0", "q/x"]:
        await put(cat, "b", key, obj(key))
    await put(cat, "other", "p/z", obj("elsewhere"))
    page, more = await cat.scan_objects("b", "p/", None, 1)
    assert [k for k, _ in page] == ["p/x"] and more
    page, more = await cat.scan_objects("b", "p/", "p/x", 5)
    assert [k for k, _ in page] == ["p/y"] and not more
    assert await scan_all(cat, "b", "p", 2) == ["p", "p/x", "p/y", "p0"]
    assert await scan_all(cat, "other", "", 2) == ["p/z"]


async def test_scan_orders_long_keys_sharing_a_stem_by_the_full_key(cluster) -> None:
    cat = cluster.catalog
    stem = "s" * object_key_stem("b")
    keys = [stem + tail for tail in ("c" * 300, "a" * 300, "b", "b" * 300, "a", "")] + ["t"]
    for key in keys:
        await put(cat, "b", key, obj(key[-1]))
    expected = sorted(keys, key=str.encode)
    assert await scan_all(cat, "b", "", 100) == expected
    for limit in (1, 2, 3):
        assert await scan_all(cat, "b", "", limit) == expected, limit
    assert await scan_all(cat, "b", "", 2, start_after=stem + "a") == expected[expected.index(stem + "a") + 1:]
    assert await scan_all(cat, "b", stem + "b", 1) == [stem + "b", stem + "b" * 300]


@settings(max_examples=25, deadline=None)
@given(live=st.sets(st.text("ab/", min_size=1, max_size=4), max_size=25),
       dead=st.sets(st.text("ab/", min_size=1, max_size=4), max_size=10),
       prefix=st.text("ab/", max_size=2), limit=st.integers(1, 5))
async def test_paging_scan_objects_lists_exactly_the_live_keys(live, dead, prefix, limit) -> None:
    async with fake_cluster() as cluster:
        cat = cluster.catalog
        for key in sorted(live | dead):
            await put(cat, "b", key, obj("x"))
        for key in dead - live:
            await delete(cat, "b", key)
        expected = sorted((k for k in live if k.startswith(prefix)), key=str.encode)
        assert await scan_all(cat, "b", prefix, limit) == expected
