"""The node's request handling, in process: every op through the real socket, and bad input."""
from __future__ import annotations

import asyncio
import struct

import msgpack
import pytest
import zmq
import zmq.asyncio

from common import wire
from common.nodeclient import BadRequest, NodeClient, NotFound
from common.nodeconfig import NodeConfig
from storagenode.server import serve
from storagenode.store import Store

MiB = 1 << 20


def stamp(n: int) -> bytes:
    return struct.pack(">QQ", n, 0)


@pytest.fixture
async def node(tmp_path):
    config = NodeConfig("n1", "tcp://127.0.0.1:*", tmp_path / "data", None, map_size=1 * MiB,
                        map_size_max=64 * MiB)
    bound = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(config, ready=bound.set_result))
    address = await asyncio.wait_for(bound, 10)
    yield config, address
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.fixture
async def raw(node):
    """A bare DEALER: send any frames, read the decoded reply (or None after a timeout)."""
    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(node[1])

    async def exchange(frames, timeout=0.5):
        await sock.send_multipart(frames)
        if await sock.poll(timeout * 1000, zmq.POLLIN):
            return wire.decode(await sock.recv_multipart())
        return None
    yield exchange
    sock.close()
    ctx.term()


def header(op: int, request_id: int, version: int = wire.VERSION) -> bytes:
    return struct.pack(">4sBBQ", wire.MAGIC, version, op, request_id)


async def test_every_op_round_trips(node):
    async with NodeClient(node[1]) as c:
        assert (await c.ping())["node_id"] == "n1"
        await c.put_shard(b"s1", memoryview(b"abcdef"))
        await c.put_shard(b"s2", b"")
        assert await c.get_shard(b"s1") == b"abcdef"
        assert await c.get_shard(b"s1", 2) == b"cdef"
        assert await c.get_shard(b"s1", 1, 2) == b"bc"
        assert await c.get_shard(b"s2") == b""
        assert await c.scan_shards(b"s") == ([(b"s1", 6), (b"s2", 0)], False)
        assert await c.scan_shards(b"s", start=b"s2", limit=1) == ([(b"s2", 0)], False)
        assert await c.delete_shard(b"s1") is True
        assert await c.delete_shard(b"s1") is False
        with pytest.raises(NotFound):
            await c.get_shard(b"s1")

        assert await c.put_record(b"r1", stamp(2), b"two") == (True, stamp(2), None)
        assert await c.put_record(b"r1", stamp(1), b"one") == (False, stamp(2), None)
        assert await c.put_record(b"r2", stamp(1), b"") == (True, stamp(1), None)
        assert await c.get_record(b"r1") == (stamp(2), b"two")
        items, more = await c.scan_records(b"r", limit=1)
        assert (items, more) == ([(b"r1", stamp(2), b"two")], True)
        page = await c.scan_records(b"r", start=b"r1\x00")
        assert (page.items, page.more, page.corrupt) == ([(b"r2", stamp(1), b"")], False, [])
        assert await c.delete_record(b"r1", stamp(1)) is False
        assert await c.delete_record(b"r1", stamp(2)) is True
        assert await c.delete_record(b"r2") is True
        with pytest.raises(NotFound):
            await c.get_record(b"r1")

        stats = await c.stats()
        assert stats["node_id"] == "n1" and stats["wire_version"] == wire.VERSION
        assert (stats["shards"], stats["records"]) == (1, 0)
        assert stats["map_size_max"] == 64 * MiB and stats["write_ops"] >= 8


async def test_bad_requests_are_answered_and_survived(node, raw):
    checks = [
        # (frames, expected status or None for "no answer")
        ([b"junk"], None),                                            # no readable request id
        ([b"X" * wire.HEADER_SIZE, b"\x80"], None),                   # wrong magic
        ([header(wire.Op.PING, 1)], wire.Status.BAD_REQUEST),         # args frame missing
        ([header(wire.Op.PING, 2), b"\xc1"], wire.Status.BAD_REQUEST),  # not msgpack
        ([header(wire.Op.PING, 3), msgpack.packb([1, 2])], wire.Status.BAD_REQUEST),
        ([header(99, 4), msgpack.packb({})], wire.Status.BAD_REQUEST),  # unknown op
        ([header(wire.Op.PING, 5, version=wire.VERSION + 1), msgpack.packb({})],
         wire.Status.UNSUPPORTED_VERSION),
        ([*wire.encode(wire.Op.SHARD_GET, 6, {"key": "text, not bytes"})], wire.Status.BAD_REQUEST),
        ([*wire.encode(wire.Op.SHARD_GET, 7, {"key": b""})], wire.Status.BAD_REQUEST),
        ([*wire.encode(wire.Op.SHARD_GET, 8, {"key": b"k" * 600})], wire.Status.BAD_REQUEST),
        ([*wire.encode(wire.Op.SHARD_PUT, 9, {"key": b"k", "xxh": bytes(16)}, [b"data"])],
         wire.Status.CHECKSUM_MISMATCH),
        ([*wire.encode(wire.Op.SHARD_PUT, 10, {"key": b"k", "xxh": bytes(15)}, [b"data"])],
         wire.Status.BAD_REQUEST),
        ([*wire.encode(wire.Op.RECORD_PUT, 11, {"key": b"k", "stamp": bytes(8)}, [b"v"])],
         wire.Status.BAD_REQUEST),
        ([*wire.encode(wire.Op.RECORD_PUT, 12, {"key": b"k", "stamp": bytes(16)}, [b"v", b"w"])],
         wire.Status.BAD_REQUEST),
        ([*wire.encode(wire.Op.RECORD_SCAN, 13, {"prefix": b"", "limit": 0})],
         wire.Status.BAD_REQUEST),
        ([*wire.encode(wire.Op.SHARD_SCAN, 14, {"prefix": b"", "limit": True})],
         wire.Status.BAD_REQUEST),
        ([*wire.encode(wire.Op.RECORD_GET, 15, {"key": b"nope"})], wire.Status.NOT_FOUND),
    ]
    for frames, expected in checks:
        reply = await raw(frames)
        if expected is None:
            assert reply is None, frames
        else:
            assert reply is not None and reply.code == expected, frames
            assert reply.request_id == _request_id(frames[0])
            assert reply.args.get("error"), frames
    reply = await raw(wire.encode(wire.Op.PING, 99))
    assert reply.code == wire.Status.OK and reply.args["node_id"] == "n1"


async def test_range_beyond_the_shard_is_a_bad_request(node):
    async with NodeClient(node[1]) as c:
        await c.put_shard(b"s", b"0123456789")
        with pytest.raises(BadRequest, match="beyond"):
            await c.get_shard(b"s", 11)
        assert await c.get_shard(b"s", 10) == b""


async def test_large_shards_are_served_from_a_reader_thread(node):
    data = bytes(range(256)) * 4096 * 2                   # 2 MiB: above the inline limit
    async with NodeClient(node[1]) as c:
        await c.put_shard(b"big", data)
        got = await asyncio.gather(c.get_shard(b"big"), c.get_shard(b"big", 1 * MiB, 10))
        assert got == [data, data[MiB:MiB + 10]]


async def test_record_heads_travel_through_put_and_scan(node):
    async with NodeClient(node[1]) as c:
        await c.put_record(b"h/a", stamp(1), b"HEADtail", head=4)
        await c.put_record(b"h/b", stamp(1), b"whole")
        heads = await c.scan_records(b"h/", heads=True)
        assert [(k, v) for k, _, v in heads.items] == [(b"h/a", b"HEAD"), (b"h/b", b"whole")]
        full = await c.scan_records(b"h/")
        assert [v for _, _, v in full.items] == [b"HEADtail", b"whole"]
        assert await c.get_record(b"h/a") == (stamp(1), b"HEADtail")
        with pytest.raises(BadRequest, match="head"):
            await c.put_record(b"h/c", stamp(1), b"ab", head=3)


async def test_a_put_can_return_the_record_it_replaced(node):
    async with NodeClient(node[1]) as c:
        assert await c.put_record(b"w", stamp(1), b"one", want_replaced=True) == (True, stamp(1), None)
        assert await c.put_record(b"w", stamp(3), b"three", want_replaced=True) == (
            True, stamp(3), (stamp(1), b"one"))
        assert await c.put_record(b"w", stamp(2), b"two", want_replaced=True) == (
            False, stamp(3), None)                    # refused: nothing replaced


async def test_short_scans_inline_and_long_ones_on_a_reader_give_the_same_pages(node):
    from storagenode.handlers import INLINE_SCAN_MAX
    count = INLINE_SCAN_MAX + 40
    async with NodeClient(node[1]) as c:
        await asyncio.gather(*(c.put_record(b"s/%05d" % i, stamp(1), b"v%d" % i)
                               for i in range(count)))
        whole = await c.scan_records(b"s/", limit=1000)            # past the inline probe
        assert [k for k, _, _ in whole.items] == [b"s/%05d" % i for i in range(count)]
        assert not whole.more
        short = await c.scan_records(b"s/", start=b"s/00010", limit=5)   # inline
        assert [k for k, _, _ in short.items] == [b"s/%05d" % i for i in range(10, 15)]
        assert short.more


async def test_shutdown_closes_the_store(tmp_path):
    config = NodeConfig("n1", "tcp://127.0.0.1:*", tmp_path / "data", None, map_size=MiB)
    bound = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(config, ready=bound.set_result))
    async with NodeClient(await bound) as c:
        await c.put_record(b"k", stamp(1), b"v")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with Store(config.data_dir, "n1", map_size=MiB, map_size_max=MiB) as store:  # reopenable
        assert store.get_record(b"k") == (stamp(1), b"v")


def _request_id(header_frame: bytes) -> int:
    return struct.unpack(">4sBBQ", header_frame)[3]
