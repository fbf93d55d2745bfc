"""The storage-node process: a zmq ROUTER socket in front of the store.

A request that can be answered at once is answered inline; one that must wait (a commit, a big
read) becomes its own task, so it never delays the requests behind it; replies carry the request
id and may leave in any order. Exceptions become statuses
here and nowhere else, and no message - however malformed - can stop the receive loop.

Resources are opened in `serve` and closed in reverse order when it is cancelled: the socket
first (after in-flight requests had a moment to finish), then the writer (after committing what
it already holds), then the LMDB environment.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import struct
from concurrent.futures import ThreadPoolExecutor
from typing import Awaitable, Callable, Sequence

import zmq
from zmq.auth.thread import ThreadAuthenticator

from common import keys, wire
from common.nodeconfig import NodeConfig
from common.zmqio import LoopSocket
from storagenode.groupcommit import GroupCommitter
from storagenode.handlers import BadRequest, ChecksumMismatch, Handler, Handlers, Reply
from storagenode.store import CorruptError, FullError, NotFoundError, Store, StoreError

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 256          # requests being served at once; beyond it zmq's queues push back
SHUTDOWN_GRACE = 5.0         # seconds in-flight requests get to finish on shutdown
READER_THREADS = 2

# Most specific first: the first matching class decides the status.
_STATUS_OF: tuple[tuple[type[BaseException], wire.Status], ...] = (
    (BadRequest, wire.Status.BAD_REQUEST),
    (ChecksumMismatch, wire.Status.CHECKSUM_MISMATCH),
    (NotFoundError, wire.Status.NOT_FOUND),
    (CorruptError, wire.Status.CORRUPT),
    (FullError, wire.Status.FULL),
    (StoreError, wire.Status.INTERNAL),
)


def status_of(exc: BaseException) -> wire.Status:
    for cls, status in _STATUS_OF:
        if isinstance(exc, cls):
            return status
    return wire.Status.INTERNAL


class NodeServer:
    """Receive loop over one bound ROUTER socket. A handler that answers at once (a record read,
    a small shard read) is served inline, without a task; one that must wait (a commit, a big
    read) becomes a task, and its reply leaves whenever it is ready."""

    def __init__(self, sock: zmq.Socket, table: dict[int, Handler]) -> None:
        self._sock = sock
        self._table = table
        self._tasks: set[asyncio.Task] = set()
        self._io: LoopSocket | None = None

    async def run(self) -> None:
        """Serve until cancelled, then give in-flight requests SHUTDOWN_GRACE to finish."""
        self._io = LoopSocket(self._sock, self._on_request)
        try:
            await asyncio.get_running_loop().create_future()     # until cancelled
        finally:
            self._io.pause_reading()
            if self._tasks:
                _, pending = await asyncio.wait(set(self._tasks), timeout=SHUTDOWN_GRACE)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
            self._io.close()

    def _on_request(self, frames: Sequence[zmq.Frame]) -> None:
        try:
            self._serve_one(frames[0].bytes, frames[1:])
        except Exception:   # e.g. a reply that cannot be encoded: log it, keep serving
            log.exception("request from peer %s not served", frames[0].bytes.hex())

    def _serve_one(self, identity: bytes, body: Sequence[zmq.Frame]) -> None:
        try:
            msg = wire.decode(body)
        except wire.WireError as exc:
            request_id = _readable_request_id(body)
            log.warning("malformed message from peer %s: %s", identity.hex(), exc)
            if request_id is not None:
                self._reply(identity, wire.Status.BAD_REQUEST, request_id, {"error": str(exc)})
            return
        if msg.version != wire.VERSION:
            self._reply(identity, wire.Status.UNSUPPORTED_VERSION, msg.request_id,
                        {"error": f"wire version {msg.version} is not supported",
                         "version": wire.VERSION})
            return
        handler = self._table.get(msg.code)
        if handler is None:
            self._reply(identity, wire.Status.BAD_REQUEST, msg.request_id,
                        {"error": f"unknown op {msg.code}"})
            return
        try:
            outcome = handler(msg)
        except Exception as exc:
            self._reply_error(identity, msg, exc)
            return
        if isinstance(outcome, Reply):
            self._reply(identity, wire.Status.OK, msg.request_id, outcome.args, outcome.payload)
            return
        task = asyncio.ensure_future(self._finish(identity, msg, outcome))
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        if len(self._tasks) >= MAX_IN_FLIGHT:   # beyond it, zmq's queues push back on clients
            self._io.pause_reading()

    def _finished(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if len(self._tasks) < MAX_IN_FLIGHT:
            self._io.resume_reading()

    async def _finish(self, identity: bytes, msg: wire.Message, pending: Awaitable[Reply]) -> None:
        try:
            reply = await pending
        except Exception as exc:
            self._reply_error(identity, msg, exc)
            return
        self._reply(identity, wire.Status.OK, msg.request_id, reply.args, reply.payload)

    def _reply_error(self, identity: bytes, msg: wire.Message, exc: Exception) -> None:
        status = status_of(exc)
        if status is wire.Status.INTERNAL:
            log.error("%s request %d failed", _op_name(msg.code), msg.request_id, exc_info=exc)
        elif status is not wire.Status.NOT_FOUND:
            log.info("%s request %d: %s: %s", _op_name(msg.code), msg.request_id,
                     status.name, exc)
        self._reply(identity, status, msg.request_id, {"error": str(exc)})

    def _reply(self, identity: bytes, status: wire.Status, request_id: int,
               args: dict, payload: Sequence[bytes | memoryview] = ()) -> None:
        frames = [identity, *wire.encode(status, request_id, args, payload)]
        try:
            # ROUTER never blocks: a reply to a peer that has gone (or whose queue is full) is
            # dropped, and that peer's own timeout covers it.
            if not self._io.try_send(frames):
                log.warning("reply to request %d dropped: peer queue full", request_id)
        except zmq.ZMQError as exc:
            log.warning("reply to request %d not sent: %s", request_id, exc)


def _readable_request_id(body: Sequence[zmq.Frame]) -> int | None:
    if not body or len(body[0]) != wire.HEADER_SIZE:
        return None
    magic, _, _, request_id = struct.unpack(">4sBBQ", body[0].bytes)
    return request_id if magic == wire.MAGIC else None


def _op_name(code: int) -> str:
    try:
        return wire.Op(code).name
    except ValueError:
        return f"op {code}"


def _configure_socket(sock: zmq.Socket, config: NodeConfig) -> None:
    sock.setsockopt(zmq.LINGER, 500)
    sock.setsockopt(zmq.SNDHWM, 4096)
    sock.setsockopt(zmq.RCVHWM, 4096)
    sock.setsockopt(zmq.MAXMSGSIZE, config.max_message_bytes)
    # ZMTP heartbeats drop the pipes of clients that vanished without closing their connection.
    sock.setsockopt(zmq.HEARTBEAT_IVL, 2000)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 6000)
    if config.keys_dir is not None:
        server = keys.load_server_keys(config.keys_dir)
        sock.curve_server = True
        sock.curve_publickey = server.public
        sock.curve_secretkey = server.secret


async def serve(config: NodeConfig, *, ready: Callable[[str], None] | None = None) -> None:
    """Run a node until cancelled. `ready` is called with the bound endpoint once serving."""
    async with contextlib.AsyncExitStack() as stack:
        store = stack.enter_context(Store(config.data_dir, config.node_id,
                                          map_size=config.map_size,
                                          map_size_max=config.map_size_max, sync=config.sync))
        writer = await stack.enter_async_context(GroupCommitter(store, config.group_commit_max))
        readers = ThreadPoolExecutor(max_workers=READER_THREADS, thread_name_prefix="lmdb-reader")
        stack.callback(readers.shutdown, wait=True)
        ctx = zmq.Context()
        stack.callback(ctx.term)
        if config.keys_dir is not None:
            # ZAP: only clients whose public key is in authorized/ complete the handshake; the
            # others are never answered. (It runs on its own thread: handshakes are rare.)
            auth = ThreadAuthenticator(ctx)
            auth.start()
            stack.callback(auth.stop)
            auth.configure_curve(domain="*", location=str(keys.authorized_dir(config.keys_dir)))
        sock = ctx.socket(zmq.ROUTER)
        stack.callback(sock.close)
        _configure_socket(sock, config)
        sock.bind(config.listen)
        endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        log.info("node %s serving %s on %s (curve %s)", config.node_id, config.data_dir, endpoint,
                 "on" if config.keys_dir is not None else "OFF")
        if ready is not None:
            ready(endpoint)
        await NodeServer(sock, Handlers(store, writer, readers).table()).run()


def run_node(config: NodeConfig) -> None:
    """Process entry point: serve until SIGTERM or SIGINT, then shut down cleanly."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await serve(config)
        except asyncio.CancelledError:
            log.info("node %s stopped", config.node_id)

    try:
        import uvloop
        uvloop.install()
    except ImportError:  # optional speed-up
        pass
    asyncio.run(main())
