"""Quorum-replicated records over the in-memory node twin: read quorum, write quorum, read repair,
rollback of a failed write, and the merged scan that must never skip a key."""
from __future__ import annotations

import asyncio
import gc
import inspect

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.nodeclient import NodeClient, NodePool, NodeTimeout, NodeUnavailable
from gateway.cluster.hlc import Stamp
from gateway.cluster.metastore import Versioned
from gateway.s3.errors import ServiceUnavailable
from tests.unit.gateway.fakes import FakeNodeClient, FakeNodePool, fake_cluster, settle

PART = b"bucket/b"
KEY = b"obj/b/key"


def stamp(n: int, writer: int = 1) -> bytes:
    return Stamp(hlc=n << 16, writer=writer).to_bytes()


@pytest.fixture
async def cluster():
    async with fake_cluster() as c:
        yield c


# ---- the twin keeps the real client's shape --------------------------------------------------
@pytest.mark.parametrize("real,fake,names", [
    (NodeClient, FakeNodeClient, ["ping", "stats", "put_shard", "get_shard", "delete_shard",
                                  "scan_shards", "put_record", "get_record", "delete_record",
                                  "scan_records", "__aenter__", "__aexit__"]),
    (NodePool, FakeNodePool, ["update", "__getitem__", "__contains__", "node_ids",
                           "is_suspect", "prefer_healthy", "__aenter__", "__aexit__"]),
])
def test_the_fake_has_the_real_signatures(real, fake, names) -> None:
    for name in names:
        want, got = inspect.signature(getattr(real, name)), inspect.signature(getattr(fake, name))
        assert list(want.parameters) == list(got.parameters), name
        assert [p.kind for p in want.parameters.values()] == [p.kind for p in got.parameters.values()], name
        assert [p.default for p in want.parameters.values()] == \
            [p.default for p in got.parameters.values()], name
        assert inspect.iscoroutinefunction(getattr(real, name)) == \
            inspect.iscoroutinefunction(getattr(fake, name)), name


# ---- get ----------------------------------------------------------------------------------------
async def test_put_then_get_and_a_missing_key(cluster) -> None:
    assert await cluster.meta.get(PART, KEY) is None
    await cluster.meta.put(PART, KEY, b"v1", stamp(1))
    assert await cluster.meta.get(PART, KEY) == Versioned(stamp(1), b"v1")
    assert len(cluster.pool.record_copies(KEY)) == 6


async def test_get_asks_only_a_read_quorum_when_it_answers(cluster) -> None:
    replicas = cluster.replicas(PART)
    for node in replicas[:3]:
        node.hold(KEY, stamp(1), b"old")
    for node in replicas[3:]:                       # a newer write that reached only 3 replicas
        node.hold(KEY, stamp(2), b"new")
        node.slow(1.0, ops={"get_record"})
    loop = asyncio.get_running_loop()
    began = loop.time()
    found = await cluster.meta.get(PART, KEY)
    assert found == Versioned(stamp(1), b"old")     # the newest of the first R answers
    assert loop.time() - began < 0.7               # without waiting for the slow replicas
    # R messages, not N: the other replicas were not asked (anti-entropy covers them).
    assert [n for n in replicas if ("get_record", KEY) in n.calls] == list(replicas[:3])


async def test_get_hedges_to_the_rest_when_the_quorum_is_slow(cluster) -> None:
    replicas = cluster.replicas(PART)
    for node in replicas:
        node.hold(KEY, stamp(3), b"v")
    for node in replicas[:2]:
        node.slow(2.0, ops={"get_record"})
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await cluster.meta.get(PART, KEY) == Versioned(stamp(3), b"v")
    assert loop.time() - began < 1.0               # hedged after HEDGE_AFTER, not 2 s


async def test_not_found_counts_as_an_answer(cluster) -> None:
    replicas = cluster.replicas(PART)
    for node in replicas[3:]:
        node.hold(KEY, stamp(5), b"unacknowledged")
        node.slow(1.0, ops={"get_record"})
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await cluster.meta.get(PART, KEY) is None   # three NotFound answers are a quorum
    assert loop.time() - began < 0.7


async def test_get_returns_the_newest_and_repairs_stale_and_missing_replicas(cluster) -> None:
    replicas = cluster.replicas(PART)
    for node in replicas[2:]:
        node.hold(KEY, stamp(9), b"newest")
    replicas[0].hold(KEY, stamp(3), b"stale")        # replicas[1] has nothing at all
    assert await cluster.meta.get(PART, KEY) == Versioned(stamp(9), b"newest")
    assert await settle(lambda: all(n.records.get(KEY) == (stamp(9), b"newest") for n in replicas))


async def test_get_with_m_nodes_down_and_with_too_many_down(cluster) -> None:
    await cluster.meta.put(PART, KEY, b"v", stamp(1))
    replicas = cluster.replicas(PART)
    for node in replicas[:3]:
        node.fail(NodeUnavailable)
    assert (await cluster.meta.get(PART, KEY)).value == b"v"     # 3 left = R
    replicas[3].fail(NodeTimeout)
    with pytest.raises(ServiceUnavailable, match="2 of 6"):
        await cluster.meta.get(PART, KEY)


async def test_a_corrupt_replica_counts_against_the_read_quorum_and_is_rewritten(cluster) -> None:
    await cluster.meta.put(PART, KEY, b"v", stamp(1))
    await cluster.meta.put(PART, KEY, b"v2", stamp(2))
    replicas = cluster.replicas(PART)
    replicas[0].corrupt_record(KEY)        # reads start with the first R replicas
    assert (await cluster.meta.get(PART, KEY)).value == b"v2"
    # read repair rewrites the damaged copy with the newest, as it does a missing one
    assert await settle(lambda: KEY not in replicas[0]._corrupt_records)
    assert await replicas[0].get_record(KEY) == (stamp(2), b"v2")
    for node in replicas[:4]:
        node.corrupt_record(KEY)
    with pytest.raises(ServiceUnavailable, match="Corrupt"):
        await cluster.meta.get(PART, KEY)


# ---- put ----------------------------------------------------------------------------------------
async def test_put_succeeds_with_m_nodes_down(cluster) -> None:
    replicas = cluster.replicas(PART)
    replicas[1].fail(NodeUnavailable)
    replicas[4].fail(NodeTimeout)
    await cluster.meta.put(PART, KEY, b"v", stamp(1))
    assert set(cluster.pool.record_copies(KEY)) == {n.name for i, n in enumerate(replicas) if i not in (1, 4)}
    assert (await cluster.meta.get(PART, KEY)).value == b"v"


async def test_put_without_a_write_quorum_fails_and_rolls_back(cluster) -> None:
    replicas = cluster.replicas(PART)
    await cluster.meta.put(PART, KEY, b"old", stamp(1))
    previous = Versioned(stamp(1), b"old")
    for node in replicas[:3]:
        node.fail(NodeUnavailable)
    with pytest.raises(ServiceUnavailable, match="metadata write"):
        await cluster.meta.put(PART, KEY, b"new", stamp(2), previous)
    # The replicas that took the failed write hold the previous version again.
    assert all(n.records[KEY] == (stamp(1), b"old") for n in replicas)
    for node in replicas[:3]:
        node.recover()
    assert await cluster.meta.get(PART, KEY) == previous


async def test_a_failed_first_write_leaves_no_record(cluster) -> None:
    replicas = cluster.replicas(PART)
    for node in replicas[2:5]:
        node.fail(NodeUnavailable, ops={"put_record"})
    with pytest.raises(ServiceUnavailable):
        await cluster.meta.put(PART, KEY, b"new", stamp(2))
    assert cluster.pool.record_copies(KEY) == {}


async def test_put_returns_at_the_write_quorum_and_the_rest_follow(cluster) -> None:
    replicas = cluster.replicas(PART)
    for node in replicas[:2]:
        node.slow(1.0, ops={"put_record"})
    loop = asyncio.get_running_loop()
    began = loop.time()
    await cluster.meta.put(PART, KEY, b"v", stamp(1))
    assert loop.time() - began < 0.7
    assert len(cluster.pool.record_copies(KEY)) == 4
    assert await settle(lambda: len(cluster.pool.record_copies(KEY)) == 6)


async def test_an_older_stamp_never_overwrites_a_newer_one(cluster) -> None:
    await cluster.meta.put(PART, KEY, b"newer", stamp(5))
    await cluster.meta.put(PART, KEY, b"older", stamp(4))      # a late, superseded writer
    assert await cluster.meta.get(PART, KEY) == Versioned(stamp(5), b"newer")


# ---- put_unread: a write that does not read first ----------------------------------------------
def stamps_from(*numbers: int):
    """A stamp_after that issues the given stamps in turn, each after what it was shown."""
    issued = iter(numbers)
    shown: list[bytes | None] = []

    def stamp_after(newer: bytes | None) -> bytes:
        shown.append(newer)
        n = next(issued)
        assert newer is None or stamp(n) > newer
        return stamp(n)
    stamp_after.shown = shown
    return stamp_after


async def test_put_unread_returns_the_version_it_replaced(cluster) -> None:
    assert await cluster.meta.put_unread(PART, KEY, b"one", stamps_from(1)) == (stamp(1), None)
    written, replaced = await cluster.meta.put_unread(PART, KEY, b"two", stamps_from(2))
    assert (written, replaced) == (stamp(2), Versioned(stamp(1), b"one"))
    assert {op for n in cluster.replicas(PART) for op, _ in n.calls} == {"put_record"}  # no read
    assert await cluster.meta.get(PART, KEY) == Versioned(stamp(2), b"two")


async def test_put_unread_behind_a_newer_stamp_is_made_again_after_it(cluster) -> None:
    # A write acknowledged through a gateway whose clock runs ahead: stamp 50.
    await cluster.meta.put(PART, KEY, b"ahead", stamp(50))
    stamp_after = stamps_from(3, 51)       # this gateway's clock says 3
    written, replaced = await cluster.meta.put_unread(PART, KEY, b"later", stamp_after)
    assert stamp_after.shown == [None, stamp(50)]
    assert written == stamp(51) and replaced == Versioned(stamp(50), b"ahead")
    assert await cluster.meta.get(PART, KEY) == Versioned(stamp(51), b"later")


async def test_put_unread_without_a_quorum_rolls_each_replica_back_to_what_it_held(cluster) -> None:
    replicas = cluster.replicas(PART)
    for i, node in enumerate(replicas):       # the replicas disagree (one is stale)
        node.hold(KEY, stamp(1 if i == 5 else 2), b"v1" if i == 5 else b"v2")
    for node in replicas[:3]:
        node.fail(NodeUnavailable)
    with pytest.raises(ServiceUnavailable, match="metadata write"):
        await cluster.meta.put_unread(PART, KEY, b"new", stamps_from(9))
    assert [n.records[KEY] for n in replicas[3:]] == [(stamp(2), b"v2")] * 2 + [(stamp(1), b"v1")]


# ---- scan ---------------------------------------------------------------------------------------
PREFIX = b"obj/b/"


async def scan_everything(meta, limit: int, max_pages: int = 500) -> list[tuple[bytes, Versioned]]:
    out: list[tuple[bytes, Versioned]] = []
    start = PREFIX
    for _ in range(max_pages):
        page, more = await meta.scan(PART, PREFIX, start, limit)
        out.extend(page)
        if not more or not page:
            return out
        start = page[-1][0] + b"\x00"
    raise AssertionError("scan did not finish")


async def test_scan_merges_replicas_newest_wins(cluster) -> None:
    a, b, c = cluster.replicas(PART)[:3]
    for node in cluster.replicas(PART)[3:]:
        node.fail(NodeUnavailable)
    a.hold(PREFIX + b"1", stamp(1), b"a1")
    b.hold(PREFIX + b"1", stamp(2), b"b1")
    c.hold(PREFIX + b"2", stamp(1), b"c2")
    a.hold(PREFIX + b"3", stamp(7), b"a3")
    c.hold(PREFIX + b"3", stamp(6), b"c3")
    a.hold(b"obj/bb/x", stamp(1), b"other bucket")
    page, more = await cluster.meta.scan(PART, PREFIX, None, 10)
    assert [(k, v.value) for k, v in page] == [(PREFIX + b"1", b"b1"), (PREFIX + b"2", b"c2"),
                                               (PREFIX + b"3", b"a3")]
    assert not more


async def test_scan_stops_at_the_smallest_has_more_boundary(cluster) -> None:
    a, b, c = cluster.replicas(PART)[:3]
    for node in cluster.replicas(PART)[3:]:
        node.fail(NodeUnavailable)
    for i in range(10):
        a.hold(PREFIX + b"%02d" % i, stamp(1), b"a")
        c.hold(PREFIX + b"%02d" % i, stamp(1), b"c")
    b.hold(PREFIX + b"05", stamp(2), b"b")
    a.scan_cap = 2          # a stops early (as at its byte limit): keys past 01 are unknown to it
    page, more = await cluster.meta.scan(PART, PREFIX, None, 4)
    assert [k for k, _ in page] == [PREFIX + b"00", PREFIX + b"01"] and more


async def test_scan_past_a_replica_whose_page_is_all_corrupt_skips_nothing(cluster) -> None:
    a, b, c = cluster.replicas(PART)[:3]
    for node in cluster.replicas(PART)[3:]:
        node.fail(NodeUnavailable, ops={"scan_records"})
    for key in (b"1", b"2", b"3"):
        for node in (a, b, c):
            node.hold(PREFIX + key, stamp(1), b"v")
    a.hold(PREFIX + b"4", stamp(1), b"v")
    a.hold(PREFIX + b"5", stamp(1), b"acknowledged")    # and on the 3 replicas not answering scans
    for node in cluster.replicas(PART)[3:]:
        node.hold(PREFIX + b"5", stamp(1), b"acknowledged")
    for key in (b"1", b"2", b"3", b"4"):
        a.corrupt_record(PREFIX + key)
    # a's first page of 4 holds only corrupt records (listed by key, not as items) and more=True:
    # keys past 4 are unknown to it, so the merged page must not claim to end the listing there.
    keys = [k for k, _ in await scan_everything(cluster.meta, limit=4)]
    assert keys == [PREFIX + k for k in (b"1", b"2", b"3", b"5")]


async def test_a_merged_page_with_nothing_readable_is_not_the_end(cluster) -> None:
    a = cluster.replicas(PART)[0]
    for node in cluster.replicas(PART)[3:]:
        node.fail(NodeUnavailable, ops={"scan_records"})
        node.hold(PREFIX + b"5", stamp(1), b"acknowledged")
    for key in (b"1", b"2", b"3", b"4", b"5"):
        a.hold(PREFIX + key, stamp(1), b"v")
    for key in (b"1", b"2", b"3", b"4"):
        a.corrupt_record(PREFIX + key)      # the only copies of 1-4 are corrupt; b and c hold none
    page, more = await cluster.meta.scan(PART, PREFIX, None, 4)
    assert [k for k, _ in page] == [PREFIX + b"5"] and not more


async def test_scan_with_m_nodes_down_and_too_many_down(cluster) -> None:
    for i in range(5):
        await cluster.meta.put(PART, PREFIX + bytes([65 + i]), b"v", stamp(1))
    replicas = cluster.replicas(PART)
    replicas[0].fail(NodeUnavailable)
    replicas[5].fail(NodeTimeout)
    assert len(await scan_everything(cluster.meta, limit=2)) == 5
    replicas[3].fail(NodeUnavailable)
    replicas[4].fail(NodeUnavailable)
    with pytest.raises(ServiceUnavailable, match="metadata scan"):
        await cluster.meta.scan(PART, PREFIX, None, 2)


async def test_late_failures_after_the_quorum_are_collected_quietly(cluster, caplog) -> None:
    """A replica that fails after the quorum answered must not leave an asyncio "Task exception
    was never retrieved" error in the gateway log for every read, write and scan."""
    replicas = cluster.replicas(PART)
    for node in replicas[:2]:
        node.slow(0.02)
        node.fail(NodeUnavailable)
    await cluster.meta.put(PART, KEY, b"v", stamp(1))
    await cluster.meta.get(PART, KEY)
    await cluster.meta.scan(PART, PREFIX, None, 10)
    await asyncio.sleep(0.1)            # the late failures arrive
    gc.collect()                        # an unretrieved exception is reported when its task dies
    assert "never retrieved" not in caplog.text


placements = st.lists(
    st.tuples(
        st.sets(st.integers(0, 5), max_size=6),            # replicas holding the newest version
        st.sets(st.integers(0, 5), max_size=6),            # replicas holding an older version
    ), min_size=0, max_size=30)


@settings(max_examples=60, deadline=None)
@given(placed=placements,
       caps=st.lists(st.one_of(st.none(), st.integers(1, 4)), min_size=6, max_size=6),
       slow=st.sets(st.integers(0, 5), max_size=3),
       down=st.sets(st.integers(0, 5), max_size=2),
       limit=st.integers(1, 6))
async def test_paged_scan_never_skips_an_acknowledged_key(placed, caps, slow, down, limit) -> None:
    """Replicas with different contents, page caps and speeds, up to m down: paging through the
    merged scan lists every key written to a write quorum, with its newest value, exactly once
    and in order, and nothing that was never written."""
    async with fake_cluster() as cluster:
        replicas = cluster.replicas(PART)
        acknowledged: dict[bytes, bytes] = {}
        written: set[bytes] = set()
        for i, (newest_on, older_on) in enumerate(placed):
            key = PREFIX + b"k%03d" % i
            for r in older_on - newest_on:
                replicas[r].hold(key, stamp(1, writer=r), b"old")
            for r in newest_on:
                replicas[r].hold(key, stamp(2), b"new%d" % i)
            if newest_on or older_on:
                written.add(key)
            if len(newest_on) >= cluster.quorums.meta_write:
                acknowledged[key] = b"new%d" % i
        for r, node in enumerate(replicas):
            node.scan_cap = caps[r]
            if r in slow:
                node.slow(0.002)
            if r in down:
                node.fail(NodeUnavailable)
        listed = await scan_everything(cluster.meta, limit)
        keys = [k for k, _ in listed]
        assert keys == sorted(set(keys))                        # ascending, no duplicates
        assert set(keys) <= written
        values = dict((k, v.value) for k, v in listed)
        for key, value in acknowledged.items():
            assert values.get(key) == value, key
