"""Heal on read: a shard a read found bad is rebuilt and written back; one on a node that did not
answer is left alone."""
from __future__ import annotations

import asyncio

import pytest

from common.nodeclient import NodeUnavailable
from gateway.cluster.heal import QUEUE_LIMIT, ShardHealer
from gateway.cluster.records import shard_key
from tests.unit.gateway.fakes import BytesSource, fake_cluster, settle

STRIPE = 1024


def payload(size: int) -> bytes:
    return bytes((i * 7 + i // 251) % 256 for i in range(size))


async def stored(cluster, size: int):
    ref, _ = await cluster.data.write(b"", BytesSource(payload(size)), lambda b: None)
    return ref


async def read_all(cluster, ref, size: int) -> bytes:
    return b"".join([bytes(p) async for p in cluster.data.read(ref, size, 0, size - 1)])


@pytest.fixture
async def cluster():
    async with fake_cluster(stripe_size=STRIPE) as c:
        yield c


async def heal_reported(cluster, ref) -> list:
    """Feed what the reads of `ref` reported to a healer, as the gateway does; the outcomes."""
    outcomes: list = []
    async with ShardHealer(cluster.pool, timeout=1.0, on_healed=outcomes.append) as healer:
        for data_id, stripe_no, shard, why in cluster.repairs:
            assert data_id == ref.data_id
            healer.report(ref, stripe_no, shard, why)
        expected = len({(d, s) for d, s, _, why in cluster.repairs if why in ("corrupt", "NotFound")})
        assert await settle(lambda: len(outcomes) >= expected)
        await asyncio.sleep(0.05)       # nothing more arrives
    return outcomes


async def test_a_corrupt_and_a_lost_shard_found_by_a_read_are_rebuilt_byte_exact(cluster) -> None:
    size = 3 * STRIPE
    ref = await stored(cluster, size)
    corrupt_key, lost_key = shard_key(ref.data_id, 0, 1), shard_key(ref.data_id, 2, 3)
    corrupt_holder, lost_holder = cluster.pool[ref.nodes[1]], cluster.pool[ref.nodes[3]]
    originals = {corrupt_key: corrupt_holder.shards[corrupt_key], lost_key: lost_holder.shards[lost_key]}
    corrupt_holder.corrupt_shard(corrupt_key)
    del lost_holder.shards[lost_key]

    assert await read_all(cluster, ref, size) == payload(size)
    assert {(s, i, why) for _, s, i, why in cluster.repairs} == {(0, 1, "corrupt"), (2, 3, "NotFound")}
    outcomes = await heal_reported(cluster, ref)

    assert sorted(i for o in outcomes for i in o.rebuilt) == [1, 3]
    assert await corrupt_holder.get_shard(corrupt_key) == originals[corrupt_key]
    assert await lost_holder.get_shard(lost_key) == originals[lost_key]
    cluster.repairs.clear()
    assert await read_all(cluster, ref, size) == payload(size) and cluster.repairs == []


async def test_a_shard_on_a_node_that_did_not_answer_is_not_rewritten(cluster) -> None:
    size = STRIPE
    ref = await stored(cluster, size)
    away = cluster.pool[ref.nodes[0]]
    away.fail(NodeUnavailable)
    assert await read_all(cluster, ref, size) == payload(size)
    assert [why for *_, why in cluster.repairs] == ["NodeUnavailable"]
    away.calls.clear()
    outcomes: list = []
    async with ShardHealer(cluster.pool, timeout=1.0, on_healed=outcomes.append) as healer:
        healer.report(ref, 0, 0, "NodeUnavailable")
        await asyncio.sleep(0.1)
        assert outcomes == [] and away.calls == []
        # and when such a node is asked anyway (a corrupt shard elsewhere), it is not written to
        cluster.pool[ref.nodes[2]].corrupt_shard(shard_key(ref.data_id, 0, 2))
        healer.report(ref, 0, 2, "corrupt")
        assert await settle(lambda: len(outcomes) == 1)
    assert outcomes[0].rebuilt == [2] and outcomes[0].failures == []
    assert not any(op == "put_shard" for op, _ in away.calls)


async def test_reports_are_deduplicated_by_stripe_and_bounded(cluster) -> None:
    ref = await stored(cluster, STRIPE)
    healer = ShardHealer(cluster.pool)           # not entered: nothing drains the queue
    for _ in range(3):
        healer.report(ref, 0, 1, "corrupt")
    assert healer._queue.qsize() == 1
    for stripe_no in range(1, QUEUE_LIMIT + 50):
        healer.report(ref, stripe_no, 1, "corrupt")
    assert healer._queue.qsize() == QUEUE_LIMIT
