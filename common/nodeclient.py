"""Async client of the storage-node wire protocol (common/wire.py).

`NodeClient` keeps one DEALER connection to one node. Any number of requests may be in flight at
once: each carries an id, and a single reader task hands every reply to the request waiting for
it, so a slow request never holds up the replies behind it.

Timeouts and retries: `timeout` bounds one attempt (sending included). Idempotent ops
(wire.IDEMPOTENT_OPS) are retried `retries` more times after a timeout, with a short backoff;
the others never are, because a request that timed out may still have been applied. A reply to an
earlier attempt that arrives late is still accepted.

The socket sets IMMEDIATE, so requests are only queued on a live (and, with CURVE, authenticated)
connection: to a node that is down or refuses our key, sending itself stalls and the call fails
with NodeUnavailable once its timeout passes, instead of being delivered minutes later.

`NodePool` holds one client per node and remembers which nodes recently timed out.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

import xxhash
import zmq

from common import wire
from common.keys import ClientKeys
from common.wire import RecordPutOutcome
from common.zmqio import LoopSocket

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0
DEFAULT_RETRIES = 1
RETRY_BACKOFF = 0.05          # seconds before the first retry, doubling after
SUSPECT_SECONDS = 10.0


class NodeError(Exception):
    """A request to a storage node failed. `status` is the node's answer, if it gave one."""

    def __init__(self, message: str, *, status: wire.Status | None = None) -> None:
        super().__init__(message)
        self.status = status


class NodeTimeout(NodeError, TimeoutError):
    """The request was sent but no reply came in time (it may or may not have been applied)."""


class NodeUnavailable(NodeError):
    """The request could not even be sent in time: no (authenticated) connection to the node."""


class NotFound(NodeError):
    pass


class Corrupt(NodeError):
    """The node holds the item, but its stored bytes fail their checksum."""


class NodeFull(NodeError):
    """The node's store is at its maximum size; it still serves reads and deletes."""


class ChecksumMismatch(NodeError):
    """Bytes were damaged between the two ends (either direction)."""


class BadRequest(NodeError):
    pass


class UnsupportedVersion(BadRequest):
    pass


_ERROR_OF_STATUS: dict[int, type[NodeError]] = {
    wire.Status.NOT_FOUND: NotFound,
    wire.Status.CORRUPT: Corrupt,
    wire.Status.FULL: NodeFull,
    wire.Status.BAD_REQUEST: BadRequest,
    wire.Status.UNSUPPORTED_VERSION: UnsupportedVersion,
    wire.Status.CHECKSUM_MISMATCH: ChecksumMismatch,
    wire.Status.INTERNAL: NodeError,
}


@dataclass(frozen=True)
class RecordPage:
    """A page of RECORD_SCAN. Unpacks as `items, more = page`; `corrupt` lists the keys in the
    scanned range whose stored record failed its checksum (they are not in `items`)."""
    items: list[tuple[bytes, bytes, bytes]]     # (key, stamp, value), ascending keys
    more: bool
    corrupt: list[bytes]

    def __iter__(self) -> Iterator[Any]:
        return iter((self.items, self.more))


def configure_client_socket(sock: zmq.Socket, keys: ClientKeys | None) -> None:
    sock.setsockopt(zmq.LINGER, 0)              # closing never waits for a dead peer
    sock.setsockopt(zmq.IMMEDIATE, 1)           # queue only on a completed connection
    sock.setsockopt(zmq.SNDHWM, 10_000)
    sock.setsockopt(zmq.RCVHWM, 10_000)
    sock.setsockopt(zmq.RECONNECT_IVL, 100)     # a restarted node is found again quickly
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
    sock.setsockopt(zmq.CONNECT_TIMEOUT, 2000)
    sock.setsockopt(zmq.HEARTBEAT_IVL, 1000)    # notice a silently dead peer, then reconnect
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 4000)
    if keys is not None:
        sock.curve_publickey = keys.public
        sock.curve_secretkey = keys.secret
        sock.curve_serverkey = keys.server_public


class NodeClient:
    def __init__(self, address: str, *, node_id: str | None = None, keys: ClientKeys | None = None,
                 timeout: float = DEFAULT_TIMEOUT, retries: int = DEFAULT_RETRIES,
                 context: zmq.Context | None = None,
                 on_outcome: Callable[[bool], None] | None = None) -> None:
        """on_outcome(True) after every reply (the node is alive), (False) after every timeout."""
        self.address = address
        self.name = node_id or address
        self.timeout = timeout
        self.retries = retries
        self._keys = keys
        self._given_context = context
        self._on_outcome = on_outcome
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._ctx: zmq.Context | None = None
        self._io: LoopSocket | None = None

    async def __aenter__(self) -> NodeClient:
        self._ctx = self._given_context or zmq.Context()
        sock = zmq.Socket(self._ctx, zmq.DEALER)    # a plain socket whatever the context's kind
        try:
            configure_client_socket(sock, self._keys)
            sock.connect(self.address)
            self._io = LoopSocket(sock, self._on_reply)
        except BaseException:
            sock.close(linger=0)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._fail_pending(NodeUnavailable(f"{self.name}: client closed"))
        if self._io is not None:
            self._io.close()
            self._io.socket.close(linger=0)
        if self._given_context is None and self._ctx is not None:
            self._ctx.term()
        self._io = self._ctx = None

    # ---- the ops ----------------------------------------------------------------------------------
    async def ping(self, *, timeout: float | None = None) -> dict[str, Any]:
        return (await self._call(wire.Op.PING, {}, timeout=timeout)).args

    async def stats(self, *, timeout: float | None = None) -> dict[str, Any]:
        return (await self._call(wire.Op.STATS, {}, timeout=timeout)).args

    async def put_shard(self, key: bytes, data: bytes | memoryview, *,
                        timeout: float | None = None) -> None:
        """Store immutable bytes under key. `data` is sent without copying: do not modify it
        before this returns."""
        await self._call(wire.Op.SHARD_PUT, {"key": key, "xxh": xxhash.xxh3_128_digest(data)},
                         [data], timeout=timeout)

    async def get_shard(self, key: bytes, offset: int = 0, length: int | None = None, *,
                        timeout: float | None = None) -> memoryview:
        """The shard's bytes [offset, offset+length), as a read-only view of the received
        message (no copy); the node checks the whole shard first (Corrupt), and a whole-shard
        read is checked again here (ChecksumMismatch)."""
        args: dict[str, Any] = {"key": key}
        if offset:
            args["offset"] = offset
        if length is not None:
            args["length"] = length
        reply = await self._call(wire.Op.SHARD_GET, args, timeout=timeout)
        data = _payload_view(reply, 0)
        if offset == 0 and len(data) == reply.args.get("size"):
            if xxhash.xxh3_128_digest(data) != reply.args.get("xxh"):
                raise ChecksumMismatch(f"{self.name}: shard {key!r} damaged in transit")
        return data

    async def delete_shard(self, key: bytes, *, timeout: float | None = None) -> bool:
        """True if the shard existed."""
        return bool((await self._call(wire.Op.SHARD_DELETE, {"key": key}, timeout=timeout))
                    .args["existed"])

    async def scan_shards(self, prefix: bytes, start: bytes | None = None, limit: int = 1000, *,
                          timeout: float | None = None) -> tuple[list[tuple[bytes, int]], bool]:
        """(key, size) of shards under prefix from start (inclusive), ascending; more=True if
        the page stopped at the limit."""
        reply = await self._call(wire.Op.SHARD_SCAN, _scan_args(prefix, start, limit),
                                 timeout=timeout)
        return list(zip(reply.args["keys"], reply.args["sizes"])), bool(reply.args["more"])

    async def put_record(self, key: bytes, stamp: bytes, value: bytes, *, head: int | None = None,
                         want_replaced: bool = False,
                         timeout: float | None = None) -> RecordPutOutcome:
        """Last-writer-wins put: (applied, winning stamp[, replaced]). applied is False when the
        node holds a newer stamp - or this very stamp already (a retry): check winning_stamp ==
        stamp. `head`: how many leading bytes of value a heads-only scan returns (default: all).
        With want_replaced, `replaced` is the (stamp, value) this put overwrote, if any (a retry
        whose first attempt was applied finds nothing to replace)."""
        args: dict[str, Any] = {"key": key, "stamp": stamp}
        if head is not None:
            args["head"] = head
        if want_replaced:
            args["replaced"] = True
        reply = await self._call(wire.Op.RECORD_PUT, args, [value], timeout=timeout)
        replaced = None
        if "replaced_stamp" in reply.args:
            replaced = (reply.args["replaced_stamp"], _payload(reply, 0))
        return RecordPutOutcome(bool(reply.args["applied"]), reply.args["stamp"], replaced)

    async def get_record(self, key: bytes, *, timeout: float | None = None) -> tuple[bytes, bytes]:
        """(stamp, value); raises NotFound or Corrupt."""
        reply = await self._call(wire.Op.RECORD_GET, {"key": key}, timeout=timeout)
        return reply.args["stamp"], _payload(reply, 0)

    async def delete_record(self, key: bytes, stamp: bytes | None = None, *,
                            timeout: float | None = None) -> bool:
        """Remove the record (with a stamp: only if the stored one is that old or older).
        True if it was removed."""
        args: dict[str, Any] = {"key": key}
        if stamp is not None:
            args["stamp"] = stamp
        reply = await self._call(wire.Op.RECORD_DELETE, args, timeout=timeout)
        return bool(reply.args["deleted"])

    async def scan_records(self, prefix: bytes, start: bytes | None = None, limit: int = 1000, *,
                           heads: bool = False, timeout: float | None = None) -> RecordPage:
        """With heads, each value is only its head (see put_record)."""
        args = _scan_args(prefix, start, limit)
        if heads:
            args["heads"] = True
        reply = await self._call(wire.Op.RECORD_SCAN, args, timeout=timeout)
        keys, stamps, sizes = reply.args["keys"], reply.args["stamps"], reply.args["sizes"]
        packed = _payload(reply, 0)
        if not len(keys) == len(stamps) == len(sizes) or sum(sizes) != len(packed):
            raise BadRequest(f"{self.name}: malformed scan reply")
        corrupt = list(reply.args.get("corrupt", ()))
        if corrupt:
            log.error("%s: corrupt records %r", self.name, corrupt)
        items, offset = [], 0
        for key, stamp, size in zip(keys, stamps, sizes):
            items.append((key, stamp, packed[offset:offset + size]))
            offset += size
        return RecordPage(items, bool(reply.args["more"]), corrupt)

    # ---- request machinery ----------------------------------------------------------------------
    async def _call(self, op: wire.Op, args: dict[str, Any],
                    payload: Sequence[bytes | memoryview] = (), *,
                    timeout: float | None = None) -> wire.Message:
        if self._io is None:
            raise NodeUnavailable(f"{self.name}: client is not open")
        timeout = self.timeout if timeout is None else timeout
        attempts = 1 + (self.retries if op in wire.IDEMPOTENT_OPS else 0)
        loop = asyncio.get_running_loop()
        request_ids: list[int] = []
        try:
            for attempt in range(attempts):
                if attempt:
                    await asyncio.sleep(RETRY_BACKOFF * 2 ** (attempt - 1))
                request_id = next(self._ids)
                request_ids.append(request_id)
                reply_future = loop.create_future()
                for rid in request_ids:      # a late reply to an earlier attempt still counts
                    self._pending[rid] = reply_future
                try:
                    reply = await self._attempt(op, request_id, args, payload, reply_future,
                                                timeout)
                    break
                except (NodeTimeout, NodeUnavailable) as exc:
                    self._report(False)
                    if attempt + 1 == attempts:
                        raise
                    log.debug("%s; retrying", exc)
        finally:
            for request_id in request_ids:
                self._pending.pop(request_id, None)
        self._report(True)
        if reply.code != wire.Status.OK:
            status = _status(reply.code)
            cls = _ERROR_OF_STATUS.get(reply.code, NodeError)
            raise cls(f"{self.name}: {op.name}: {reply.args.get('error', status)}", status=status)
        return reply

    async def _attempt(self, op: wire.Op, request_id: int, args: dict[str, Any],
                       payload: Sequence[bytes | memoryview], reply_future: asyncio.Future,
                       timeout: float) -> wire.Message:
        io = self._io
        if io is None:
            raise NodeUnavailable(f"{self.name}: client closed")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        frames = wire.encode(op, request_id, args, payload)
        if not io.try_send(frames):
            try:
                await io.send(frames, deadline)
            except TimeoutError:
                raise NodeUnavailable(f"{self.name}: {op.name} not sent within {timeout:g} s "
                                      f"(no connection)") from None
            except zmq.ZMQError as exc:
                raise NodeUnavailable(f"{self.name}: {op.name} not sent: {exc}") from None
        timer = loop.call_at(deadline, _expire, reply_future)
        try:
            reply = await reply_future
        finally:
            timer.cancel()
        if reply is _EXPIRED:
            raise NodeTimeout(f"{self.name}: no reply to {op.name} within {timeout:g} s")
        return reply

    def _on_reply(self, frames: list[zmq.Frame]) -> None:
        try:
            msg = wire.decode(frames)
        except wire.WireError as exc:
            log.warning("%s: malformed reply dropped: %s", self.name, exc)
            return
        future = self._pending.get(msg.request_id)
        if future is None or future.done():
            return                           # a reply to a request that already gave up
        if msg.version != wire.VERSION:
            future.set_exception(UnsupportedVersion(
                f"{self.name}: reply in wire version {msg.version}"))
        else:
            future.set_result(msg)

    def _fail_pending(self, exc: NodeError) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(exc)
                # Its caller may be gone (cancelled): don't let asyncio log it as unretrieved.
                future.exception()
        self._pending.clear()

    def _report(self, ok: bool) -> None:
        if self._on_outcome is not None:
            self._on_outcome(ok)


_EXPIRED = object()


def _expire(future: asyncio.Future) -> None:
    """An attempt's deadline: wake its caller (the future is fresh for every attempt)."""
    if not future.done():
        future.set_result(_EXPIRED)


def _status(code: int) -> wire.Status | None:
    try:
        return wire.Status(code)
    except ValueError:
        return None


def _payload(reply: wire.Message, index: int) -> bytes:
    if len(reply.payload) <= index:
        raise BadRequest(f"reply {reply.request_id} lacks payload frame {index}")
    frame = reply.payload[index]
    return frame.bytes if isinstance(frame, zmq.Frame) else bytes(frame)


def _payload_view(reply: wire.Message, index: int) -> memoryview:
    if len(reply.payload) <= index:
        raise BadRequest(f"reply {reply.request_id} lacks payload frame {index}")
    frame = reply.payload[index]
    return frame.buffer if isinstance(frame, zmq.Frame) else memoryview(frame)


def _scan_args(prefix: bytes, start: bytes | None, limit: int) -> dict[str, Any]:
    args: dict[str, Any] = {"prefix": prefix, "limit": limit}
    if start is not None:
        args["start"] = start
    return args


class NodePool:
    """One NodeClient per node id, sharing one zmq context, plus a little health memory: a node
    that timed out is suspect for `suspect_seconds` (or until it answers again)."""

    def __init__(self, addresses: Mapping[str, str], *, keys: ClientKeys | None = None,
                 timeout: float = DEFAULT_TIMEOUT, retries: int = DEFAULT_RETRIES,
                 suspect_seconds: float = SUSPECT_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._addresses = dict(addresses)
        self._keys = keys
        self._timeout = timeout
        self._retries = retries
        self._suspect_seconds = suspect_seconds
        self._clock = clock
        self._suspect_until: dict[str, float] = {}
        self._clients: dict[str, NodeClient] = {}
        self._ctx: zmq.Context | None = None

    async def __aenter__(self) -> NodePool:
        self._ctx = zmq.Context()
        try:
            await self.update(self._addresses)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)
        self._clients.clear()
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None

    async def update(self, addresses: Mapping[str, str]) -> None:
        """Follow a membership change: connect new nodes, drop removed ones, reconnect moved ones."""
        assert self._ctx is not None, "use NodePool as an async context manager"
        for node_id in list(self._clients):
            if addresses.get(node_id) != self._clients[node_id].address:
                await self._clients.pop(node_id).__aexit__(None, None, None)
                self._suspect_until.pop(node_id, None)
        for node_id, address in addresses.items():
            if node_id not in self._clients:
                client = NodeClient(address, node_id=node_id, keys=self._keys,
                                    timeout=self._timeout, retries=self._retries,
                                    context=self._ctx,
                                    on_outcome=lambda ok, n=node_id: self._outcome(n, ok))
                self._clients[node_id] = await client.__aenter__()
        self._addresses = dict(addresses)

    def __getitem__(self, node_id: str) -> NodeClient:
        return self._clients[node_id]

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._clients

    def node_ids(self) -> list[str]:
        return list(self._clients)

    def is_suspect(self, node_id: str) -> bool:
        until = self._suspect_until.get(node_id)
        return until is not None and self._clock() < until

    def prefer_healthy(self, node_ids: Sequence[str]) -> list[str]:
        """The same ids, healthy ones first (order otherwise kept)."""
        return sorted(node_ids, key=self.is_suspect)

    def _outcome(self, node_id: str, ok: bool) -> None:
        if ok:
            self._suspect_until.pop(node_id, None)
        else:
            self._suspect_until[node_id] = self._clock() + self._suspect_seconds
