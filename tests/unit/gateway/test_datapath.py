"""Erasure-coded data path over the node twin with the real codec: byte-exact round trips around
stripe boundaries, ranged reads, decoding around down, slow and corrupt shard holders, the data
write quorum, multipart extents and forgetting shards."""
from __future__ import annotations

import asyncio
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common import stripes
from common.nodeclient import NodeTimeout, NodeUnavailable
from gateway.cluster.datapath import data_id_age_seconds, new_data_id
from gateway.cluster.records import PartRef, shard_key
from gateway.s3.errors import ServiceUnavailable
from tests.unit.gateway.fakes import BytesSource, fake_cluster, settle

STRIPE = 1024          # k=4: 256-byte shards


def payload(size: int, seed: int = 0) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(b"%d/%d" % (seed, counter)).digest()
        counter += 1
    return bytes(out[:size])


@pytest.fixture
async def cluster():
    async with fake_cluster(stripe_size=STRIPE) as c:
        yield c


async def write(cluster, data: bytes, first: int = 0, piece: int | None = None):
    seen = bytearray()
    ref, size = await cluster.data.write(data[:first], BytesSource(data[first:], piece), seen.extend)
    assert size == len(data) and bytes(seen) == data     # the digest saw every byte once, in order
    return ref


async def read(cluster, ref, size: int, first: int = 0, last: int | None = None) -> bytes:
    last = size - 1 if last is None else last
    return b"".join([chunk async for chunk in cluster.data.read(ref, size, first, last)])


def get_shard_calls(cluster) -> list[tuple[str, bytes]]:
    return [(c.name, key) for c in cluster.pool.clients() for op, key in c.calls if op == "get_shard"]


# ---- round trips ----------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [1, 255, 256, 257, STRIPE - 1, STRIPE, STRIPE + 1, 2 * STRIPE,
                                  3 * STRIPE + 5, 7 * STRIPE])
async def test_round_trip_around_stripe_boundaries(cluster, size: int) -> None:
    data = payload(size, size)
    ref = await write(cluster, data, first=min(size, 100), piece=333)
    assert (ref.k, ref.m, ref.stripe_size, ref.missing) == (4, 2, STRIPE, ())
    assert len(set(ref.nodes)) == 6
    assert await read(cluster, ref, size) == data
    count = stripes.stripe_count(size, STRIPE)
    assert cluster.pool.shard_count() == 6 * count          # no stray empty stripe
    for s in range(count):
        for i, node in enumerate(ref.nodes):
            assert shard_key(ref.data_id, s, i) in cluster.pool[node].shards


@pytest.mark.parametrize("first", [STRIPE + 1, 2 * STRIPE + 7, 5000])
async def test_first_bytes_longer_than_a_stripe(cluster, first: int) -> None:
    # The gateway hands the data path the first inline_threshold + 1 bytes it read (16 KiB + 1);
    # with a stripe size below that (cairn gateway --stripe-size), those bytes span stripes.
    data = payload(5000 + STRIPE, 3)
    ref = await write(cluster, data, first=min(first, len(data)))
    assert await read(cluster, ref, len(data)) == data
    for s in range(stripes.stripe_count(len(data), STRIPE)):
        shard = cluster.pool[ref.nodes[0]].shards[shard_key(ref.data_id, s, 0)]
        assert len(shard) == stripes.shard_size(stripes.stripe_len(s, len(data), STRIPE), 4)


@settings(max_examples=25, deadline=None)
@given(size=st.integers(1, 4 * STRIPE + 3), first=st.integers(0, 3 * STRIPE),
       piece=st.integers(1, 2 * STRIPE), span=st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)))
async def test_any_write_reads_back_exactly_whole_and_ranged(size, first, piece, span) -> None:
    async with fake_cluster(stripe_size=STRIPE) as cluster:
        data = payload(size, piece)
        ref = await write(cluster, data, first=min(first, size), piece=piece)
        assert await read(cluster, ref, size) == data
        lo, hi = sorted(x % size for x in span)
        assert await read(cluster, ref, size, lo, hi) == data[lo:hi + 1]


# ---- ranged reads ---------------------------------------------------------------------------------
@pytest.mark.parametrize("first,last", [(0, 0), (4999, 4999), (1023, 1024), (255, 256),
                                        (100, 3000), (0, 4999), (2048, 3071)])
async def test_ranged_reads(cluster, first: int, last: int) -> None:
    data = payload(5000)
    ref = await write(cluster, data)
    for client in cluster.pool.clients():
        client.calls.clear()
    assert await read(cluster, ref, len(data), first, last) == data[first:last + 1]
    # Healthy holders: only data shards are asked, and only for the slices the range needs.
    calls = get_shard_calls(cluster)
    assert all(key[-1] < ref.k for _, key in calls)
    expected = sum(len(stripes.data_shard_ranges(stripes.stripe_len(s.stripe, 5000, STRIPE), 4,
                                                 s.start, s.end))
                   for s in stripes.stripes_for_range(first, last, 5000, STRIPE))
    assert len(calls) == expected
    assert cluster.repairs == []


async def test_a_one_byte_read_asks_one_node(cluster) -> None:
    data = payload(3000)
    ref = await write(cluster, data)
    for client in cluster.pool.clients():
        client.calls.clear()
    assert await read(cluster, ref, 3000, 1500, 1500) == data[1500:1501]
    assert len(get_shard_calls(cluster)) == 1


# ---- decoding around failures --------------------------------------------------------------------
@pytest.mark.parametrize("down", [(0,), (3,), (5,), (0, 1), (1, 4), (4, 5)])
@pytest.mark.parametrize("kind", [NodeUnavailable, NodeTimeout])
async def test_read_with_shard_holders_down(cluster, down, kind) -> None:
    data = payload(3 * STRIPE + 100)
    ref = await write(cluster, data)
    for i in down:
        cluster.pool[ref.nodes[i]].fail(kind)
    assert await read(cluster, ref, len(data)) == data
    assert await read(cluster, ref, len(data), 1000, 2100) == data[1000:2101]
    data_shards_down = [i for i in down if i < ref.k]
    if data_shards_down:   # a data shard holder failed on the fast path: reported for repair
        assert {(d, i) for d, _, i, _ in cluster.repairs} >= {(ref.data_id, data_shards_down[0])}


async def test_read_with_three_holders_down_is_service_unavailable(cluster) -> None:
    data = payload(2 * STRIPE)
    ref = await write(cluster, data)
    for i in (0, 2, 5):
        cluster.pool[ref.nodes[i]].fail(NodeUnavailable)
    with pytest.raises(ServiceUnavailable, match="shards"):
        await read(cluster, ref, len(data))


async def test_a_corrupt_shard_is_decoded_around_and_reported(cluster) -> None:
    data = payload(3 * STRIPE)
    ref = await write(cluster, data)
    holder = cluster.pool[ref.nodes[2]]
    holder.corrupt_shard(shard_key(ref.data_id, 1, 2))
    assert await read(cluster, ref, len(data)) == data
    assert cluster.repairs == [(ref.data_id, 1, 2, "corrupt")]


async def test_a_corrupt_parity_shard_is_not_needed(cluster) -> None:
    data = payload(STRIPE)
    ref = await write(cluster, data)
    cluster.pool[ref.nodes[4]].corrupt_shard(shard_key(ref.data_id, 0, 4))
    assert await read(cluster, ref, len(data)) == data and cluster.repairs == []


async def test_corrupt_data_shard_with_a_parity_holder_down_still_decodes(cluster) -> None:
    data = payload(STRIPE + 1)
    ref = await write(cluster, data)
    cluster.pool[ref.nodes[0]].corrupt_shard(shard_key(ref.data_id, 0, 0))
    cluster.pool[ref.nodes[5]].fail(NodeUnavailable)
    assert await read(cluster, ref, len(data)) == data


async def test_a_slow_data_holder_costs_the_straggler_grace_not_the_timeout() -> None:
    async with fake_cluster(stripe_size=STRIPE, timeout=10.0, straggler_grace=0.05) as cluster:
        data = payload(2 * STRIPE)
        ref = await write(cluster, data)
        cluster.pool[ref.nodes[1]].slow(30)          # far beyond the 10 s node timeout
        loop = asyncio.get_running_loop()
        began = loop.time()
        assert await read(cluster, ref, len(data)) == data
        assert loop.time() - began < 2.0


async def test_a_suspect_data_holder_sends_the_read_straight_to_decoding() -> None:
    # A long straggler grace: only knowing the holder is down up front makes this read quick.
    async with fake_cluster(stripe_size=STRIPE, timeout=10.0, straggler_grace=5.0) as cluster:
        data = payload(2 * STRIPE)
        ref = await write(cluster, data)
        cluster.pool[ref.nodes[0]].slow(30)
        cluster.pool.mark_suspect(ref.nodes[0])
        loop = asyncio.get_running_loop()
        began = loop.time()
        assert await read(cluster, ref, len(data)) == data
        assert loop.time() - began < 2.0


# ---- the data write quorum -----------------------------------------------------------------------
async def test_write_with_one_node_down_records_it_missing(cluster) -> None:
    cluster.pool["n3"].fail(NodeUnavailable)
    data = payload(3 * STRIPE + 1)
    ref = await write(cluster, data)
    assert [ref.nodes[i] for i in ref.missing] == ["n3"]
    assert not cluster.pool["n3"].shards
    assert await read(cluster, ref, len(data)) == data
    cluster.pool["n3"].recover()
    for client in cluster.pool.clients():
        client.calls.clear()
    assert await read(cluster, ref, len(data)) == data    # the missing index is never asked
    assert all(name != "n3" for name, _ in get_shard_calls(cluster))


async def test_write_with_two_nodes_down_fails_and_leaves_no_shards(cluster) -> None:
    cluster.pool["n1"].fail(NodeUnavailable)
    cluster.pool["n4"].fail(NodeTimeout)
    source = BytesSource(payload(10 * STRIPE))
    with pytest.raises(ServiceUnavailable, match="data write"):
        await cluster.data.write(b"", source, lambda b: None)
    assert source.reads <= 4                            # failed at the first stripes, not the end
    assert await settle(lambda: cluster.pool.shard_count() == 0)


async def test_write_fails_before_reading_when_too_many_nodes_are_known_down(cluster) -> None:
    cluster.pool.mark_suspect("n0")
    cluster.pool.mark_suspect("n5")
    source = BytesSource(payload(STRIPE))
    with pytest.raises(ServiceUnavailable, match="4 of 6") as info:
        await cluster.data.write(b"", source, lambda b: None)
    assert "n0" in str(info.value) and "n5" in str(info.value)
    assert source.reads == 0 and cluster.pool.shard_count() == 0


async def test_a_node_failing_mid_write_is_dropped_for_the_rest(cluster) -> None:
    data = payload(6 * STRIPE)
    node = cluster.pool["n2"]

    class FailAfterTwo(BytesSource):
        async def readexactly_or_eof(self, n: int) -> bytes:
            if self.reads == 2:
                node.fail(NodeUnavailable)
            return await super().readexactly_or_eof(n)

    ref, size = await cluster.data.write(b"", FailAfterTwo(data), lambda b: None)
    assert [ref.nodes[i] for i in ref.missing] == ["n2"]
    assert await read(cluster, ref, size) == data


async def test_a_straggler_is_dropped_after_the_grace() -> None:
    async with fake_cluster(stripe_size=STRIPE, timeout=10.0, straggler_grace=0.05) as cluster:
        cluster.pool["n4"].slow(30, ops={"put_shard"})
        data = payload(4 * STRIPE)
        loop = asyncio.get_running_loop()
        began = loop.time()
        ref = await write(cluster, data)
        assert loop.time() - began < 2.0                 # not the 10 s node timeout
        assert [ref.nodes[i] for i in ref.missing] == ["n4"]
        assert await read(cluster, ref, len(data)) == data


async def test_data_quorum_of_k_tolerates_two_down() -> None:
    async with fake_cluster(stripe_size=STRIPE, data_write=4) as cluster:
        cluster.pool["n0"].fail(NodeUnavailable)
        cluster.pool["n1"].fail(NodeUnavailable)
        data = payload(2 * STRIPE)
        ref = await write(cluster, data)
        assert sorted(ref.nodes[i] for i in ref.missing) == ["n0", "n1"]
        assert await read(cluster, ref, len(data)) == data


# ---- multipart extents ----------------------------------------------------------------------------
async def test_read_extents_across_inline_and_coded_parts(cluster) -> None:
    p1 = payload(100, 1)
    p2 = payload(2 * STRIPE + 300, 2)
    p4 = payload(STRIPE, 4)
    p5 = payload(7, 5)
    ref2 = await write(cluster, p2)
    ref4 = await write(cluster, p4)
    parts = (PartRef(1, len(p1), "e1", inline=p1), PartRef(2, len(p2), "e2", data=ref2),
             PartRef(3, 0, "e3", inline=b""), PartRef(4, len(p4), "e4", data=ref4),
             PartRef(5, len(p5), "e5", inline=p5))
    whole = p1 + p2 + p4 + p5
    total = len(whole)

    async def extents(first: int, last: int) -> bytes:
        return b"".join([c async for c in cluster.data.read_extents(parts, first, last)])

    assert await extents(0, total - 1) == whole
    cuts = [0, 99, 100, 101, 100 + len(p2) - 1, 100 + len(p2), total - 8, total - 7, total - 1]
    for a in cuts:
        for b in cuts:
            if a <= b:
                assert await extents(a, b) == whole[a:b + 1], (a, b)


async def test_read_extents_stops_cleanly_when_abandoned(cluster) -> None:
    data = payload(8 * STRIPE)
    ref = await write(cluster, data)
    stream = cluster.data.read_extents([PartRef(1, len(data), "e", data=ref)], 0, len(data) - 1)
    first = await stream.__anext__()
    assert 0 < len(first) <= STRIPE and first == data[:len(first)]   # a shard's piece
    await stream.aclose()


# ---- forgetting -----------------------------------------------------------------------------------
async def test_forget_removes_every_shard(cluster) -> None:
    keep = await write(cluster, payload(STRIPE, 9))
    data = payload(5 * STRIPE + 1)
    ref = await write(cluster, data)
    assert cluster.pool.shard_count() == 6 * 7
    cluster.data.forget(ref, stripes.stripe_count(len(data), STRIPE))
    assert await settle(lambda: cluster.pool.shard_count() == 6)
    assert await read(cluster, keep, STRIPE) == payload(STRIPE, 9)


async def test_forget_extents_later_waits_then_removes(cluster) -> None:
    data = payload(2 * STRIPE)
    ref = await write(cluster, data)
    cluster.data.forget_extents_later([PartRef(1, len(data), "e", data=ref),
                                       PartRef(2, 3, "e", inline=b"abc")], delay=0.1)
    await asyncio.sleep(0.02)
    assert cluster.pool.shard_count() == 12       # readers in flight can still finish
    assert await settle(lambda: cluster.pool.shard_count() == 0)


def test_data_ids_carry_their_creation_time() -> None:
    data_id = new_data_id()
    assert len(data_id) == 16 and 0 <= data_id_age_seconds(data_id) < 5
    assert new_data_id() != data_id
    assert data_id_age_seconds(data_id, now_ns=int.from_bytes(data_id[:8], "big") + 3 * 10**9) == 3
