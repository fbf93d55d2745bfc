"""Group commit: concurrent writes share synced transactions; each waiter gets its own outcome."""
from __future__ import annotations

import asyncio
import struct

import pytest
import xxhash

from storagenode.groupcommit import GroupCommitter
from storagenode.store import FullError, Store
from storagenode.writeops import RecordPut, ShardPut

MiB = 1 << 20


def stamp(n: int) -> bytes:
    return struct.pack(">QQ", n, 0)


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "db", "n1", map_size=1 * MiB, map_size_max=8 * MiB) as s:
        yield s


def record_batches(store: Store) -> list[list]:
    """Wrap write_batch to see the batches, and check that nothing is acknowledged before its
    batch has returned from the store (that is, committed)."""
    batches: list[list] = []
    original = store.write_batch

    def spy(ops):
        outcomes = original(ops)
        batches.append(list(ops))
        return outcomes
    store.write_batch = spy
    return batches


async def test_concurrent_writes_are_batched_up_to_the_maximum(store):
    batches = record_batches(store)
    async with GroupCommitter(store, max_batch=8) as writer:
        ops = [RecordPut(b"k%03d" % i, stamp(1), b"v%d" % i) for i in range(100)]

        async def put(op):
            result = await writer.submit(op)
            assert any(op in batch for batch in batches)     # committed before acknowledged
            return result
        results = await asyncio.gather(*(put(op) for op in ops))
    assert results == [(True, stamp(1), None)] * 100
    assert sum(len(b) for b in batches) == 100
    assert max(len(b) for b in batches) == 8
    assert len(batches) <= 100 // 8 + 2
    assert (writer.batches, writer.ops) == (len(batches), 100)
    assert store.get_record(b"k042") == (stamp(1), b"v42")


async def test_one_op_that_does_not_fit_fails_alone(store):
    huge = b"h" * (9 * MiB)
    async with GroupCommitter(store, max_batch=64) as writer:
        results = await asyncio.gather(
            writer.submit(RecordPut(b"a", stamp(1), b"1")),
            writer.submit(ShardPut(b"huge", xxhash.xxh3_128_digest(huge), huge)),
            writer.submit(RecordPut(b"b", stamp(1), b"2")),
            return_exceptions=True)
    assert results[0] == results[2] == (True, stamp(1), None)
    assert isinstance(results[1], FullError)


async def test_leaving_commits_what_is_queued(store):
    async with GroupCommitter(store, max_batch=4) as writer:
        pending = [asyncio.ensure_future(writer.submit(RecordPut(b"q%d" % i, stamp(1), b"x")))
                   for i in range(20)]
        await asyncio.sleep(0)                                # queued, not yet committed
    assert [p.result() for p in pending] == [(True, stamp(1), None)] * 20
    assert store.scan_records(b"q", None, 100).keys == sorted(b"q%d" % i for i in range(20))
