"""NodeClient and NodePool against a scripted ROUTER socket standing in for a node."""
from __future__ import annotations

import asyncio

import pytest
import zmq
import zmq.asyncio

from common import wire
from common.nodeclient import (BadRequest, ChecksumMismatch, Corrupt, NodeClient, NodeError,
                               NodeFull, NodePool, NodeTimeout, NodeUnavailable, NotFound,
                               RecordPage, UnsupportedVersion)


class FakeNode:
    """Records every request; `respond(msg)` returns (status, args, payload) or None (silence)."""

    def __init__(self, respond) -> None:
        self.respond = respond
        self.requests: list[wire.Message] = []

    async def __aenter__(self) -> FakeNode:
        self.ctx = zmq.asyncio.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.address = f"tcp://127.0.0.1:{port}"
        self.task = asyncio.create_task(self._serve())
        return self

    async def __aexit__(self, *exc) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        self.sock.close()
        self.ctx.term()

    async def _serve(self) -> None:
        while True:
            identity, *frames = await self.sock.recv_multipart()
            msg = wire.decode(frames)
            self.requests.append(msg)
            answer = self.respond(msg)
            if asyncio.iscoroutine(answer):
                asyncio.ensure_future(self._later(identity, msg, answer))
            elif answer is not None:
                await self.sock.send_multipart([identity, *wire.encode(*_reply(msg, answer))])

    async def _later(self, identity, msg, answer) -> None:
        answer = await answer
        await self.sock.send_multipart([identity, *wire.encode(*_reply(msg, answer))])


def _reply(msg, answer):
    status, args, *payload = answer
    return status, msg.request_id, args, payload[0] if payload else ()


def silent(msg):
    return None


async def test_only_idempotent_ops_are_retried():
    async with FakeNode(silent) as node, NodeClient(node.address, timeout=0.2, retries=2) as c:
        with pytest.raises(NodeTimeout):
            await c.get_shard(b"k")
        assert len(node.requests) == 3
        assert len({m.request_id for m in node.requests}) == 3
        node.requests.clear()
        with pytest.raises(NodeTimeout):
            await c.delete_record(b"k")
        assert len(node.requests) == 1
        node.requests.clear()
        with pytest.raises(NodeTimeout):
            await c.ping(timeout=0.1)
        assert len(node.requests) == 3


async def test_a_late_reply_to_an_earlier_attempt_still_counts():
    async def slow(msg):
        await asyncio.sleep(0.3)
        return wire.Status.OK, {"node_id": "x", "time_ns": 1}
    async with FakeNode(lambda m: slow(m)) as node, \
            NodeClient(node.address, timeout=0.2, retries=1) as c:
        assert (await c.ping())["node_id"] == "x"       # the first attempt's reply, at 0.3 s


async def test_replies_out_of_order_reach_their_callers():
    gate = asyncio.Event()

    async def answer(msg):
        key = msg.args["key"]
        if key == b"first":
            await gate.wait()                           # held back until the others are done
        return wire.Status.OK, {"stamp": bytes(16)}, [key]

    def respond(msg):
        if msg.args["key"] == b"last":
            gate.set()
        return answer(msg)
    async with FakeNode(respond) as node, NodeClient(node.address, timeout=2) as c:
        results = await asyncio.gather(*(c.get_record(k) for k in (b"first", b"mid", b"last")))
    assert [v for _, v in results] == [b"first", b"mid", b"last"]


@pytest.mark.parametrize("status, error", [
    (wire.Status.NOT_FOUND, NotFound), (wire.Status.CORRUPT, Corrupt),
    (wire.Status.FULL, NodeFull), (wire.Status.BAD_REQUEST, BadRequest),
    (wire.Status.CHECKSUM_MISMATCH, ChecksumMismatch),
    (wire.Status.UNSUPPORTED_VERSION, UnsupportedVersion), (wire.Status.INTERNAL, NodeError)])
async def test_statuses_become_typed_errors(status, error):
    async with FakeNode(lambda m: (status, {"error": "told so"})) as node, \
            NodeClient(node.address, node_id="n7") as c:
        with pytest.raises(error, match="n7.*told so") as info:
            await c.get_shard(b"k")
    assert info.value.status == status
    assert len(node.requests) == 1                      # answers are never retried


async def test_a_whole_shard_damaged_in_transit_is_refused():
    reply = (wire.Status.OK, {"size": 4, "xxh": bytes(16)}, [b"abcd"])
    async with FakeNode(lambda m: reply) as node, NodeClient(node.address) as c:
        with pytest.raises(ChecksumMismatch):
            await c.get_shard(b"k")
        assert await c.get_shard(b"k", 1, 3) == b"abcd"  # a slice cannot be checked here


async def test_nothing_listening_is_unavailable():
    async with FakeNode(silent) as node:
        address = node.address                          # now closed: nothing listens there
    async with NodeClient(address, timeout=0.3, retries=0) as c:
        with pytest.raises(NodeUnavailable):
            await c.put_shard(b"k", b"v")


async def test_scan_records_page_unpacks_and_lists_corrupt_keys():
    reply = (wire.Status.OK, {"keys": [b"a", b"c"], "stamps": [bytes(16), bytes(16)],
                              "sizes": [1, 2], "more": True, "corrupt": [b"b"]}, [b"133"])
    async with FakeNode(lambda m: reply) as node, NodeClient(node.address) as c:
        page = await c.scan_records(b"", limit=3)
        items, more = page
    assert isinstance(page, RecordPage)
    assert items == [(b"a", bytes(16), b"1"), (b"c", bytes(16), b"33")] and more
    assert page.corrupt == [b"b"]
    assert node.requests[0].args == {"prefix": b"", "limit": 3}


async def test_pool_marks_nodes_suspect_after_timeouts():
    now = [100.0]
    ok = lambda m: (wire.Status.OK, {"node_id": "a", "time_ns": 0})  # noqa: E731
    async with FakeNode(ok) as good, FakeNode(silent) as dead:
        addresses = {"a": good.address, "b": dead.address}
        async with NodePool(addresses, timeout=0.1, retries=0, suspect_seconds=30,
                            clock=lambda: now[0]) as pool:
            assert pool.node_ids() == ["a", "b"] and "b" in pool and "z" not in pool
            assert not pool.is_suspect("a") and not pool.is_suspect("b")
            await pool["a"].ping()
            with pytest.raises(NodeTimeout):
                await pool["b"].ping()
            assert pool.is_suspect("b") and not pool.is_suspect("a")
            assert pool.prefer_healthy(["b", "a"]) == ["a", "b"]
            now[0] += 31
            assert not pool.is_suspect("b")
            with pytest.raises(NodeTimeout):
                await pool["b"].ping()
            dead.respond = ok                           # it recovers: one answer clears it
            await pool["b"].ping()
            assert not pool.is_suspect("b")

            await pool.update({"a": good.address})
            assert pool.node_ids() == ["a"]
            with pytest.raises(KeyError):
                pool["b"]


async def test_a_scan_reply_whose_sizes_do_not_add_up_is_refused():
    reply = (wire.Status.OK, {"keys": [b"a"], "stamps": [bytes(16)], "sizes": [5], "more": False,
                              "corrupt": []}, [b"1234"])
    async with FakeNode(lambda m: reply) as node, NodeClient(node.address) as c:
        with pytest.raises(BadRequest, match="malformed"):
            await c.scan_records(b"")
