"""One coroutine per wire op: check the arguments, call the store, shape the reply.

Handlers raise instead of building error replies: BadRequest for arguments, the store's errors
for store conditions. server.py turns every exception into a status in one place.
Small reads run on the event loop (an mmap read and a hash); big reads and scans go to a reader
thread so that they never hold up the small requests behind them.
"""
from __future__ import annotations

import asyncio
import functools
import time
from concurrent.futures import Executor
from typing import Any, Awaitable, Callable, NamedTuple, Sequence

from common import wire
from storagenode import layout
from storagenode.groupcommit import GroupCommitter
from storagenode.store import NotFoundError, RecordPage, Store
from storagenode.writeops import RecordDelete, RecordPut, ShardDelete, ShardPut

# Bigger shards are read (and hashed) on a reader thread. A 4 MiB stripe's shards (1 MiB) are
# served inline: reading and hashing one costs ~0.1 ms, less than the hop to a thread.
INLINE_READ_MAX = (1 << 20) + (64 << 10)
SCAN_LIMIT_MAX = 10_000
INLINE_SCAN_MAX = 256           # record scans this short are served on the event loop
SCAN_LIMIT_DEFAULT = 1000


class BadRequest(ValueError):
    pass


class ChecksumMismatch(ValueError):
    """The payload does not match the digest its sender computed."""


class Reply(NamedTuple):
    args: dict[str, Any]
    payload: Sequence[bytes | memoryview] = ()


# A handler answers at once (a Reply) or returns an awaitable of one (it must wait: a commit, a
# read on a reader thread). The server serves the first kind inline, without a task.
Handler = Callable[[wire.Message], "Reply | Awaitable[Reply]"]


def _key(args: dict[str, Any], name: str, max_len: int, *, optional: bool = False,
         allow_empty: bool = False) -> bytes | None:
    value = args.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, bytes):
        raise BadRequest(f"{name} must be bytes")
    if len(value) > max_len or (not value and not allow_empty):
        raise BadRequest(f"{name} must be {0 if allow_empty else 1}..{max_len} bytes")
    return value


def _exact(args: dict[str, Any], name: str, size: int, *, optional: bool = False) -> bytes | None:
    value = args.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, bytes) or len(value) != size:
        raise BadRequest(f"{name} must be {size} bytes")
    return value


def _int(args: dict[str, Any], name: str, default: int | None, lo: int, hi: int) -> int | None:
    value = args.get(name, default)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise BadRequest(f"{name} must be an integer in {lo}..{hi}")
    return value


def _one_frame(msg: wire.Message) -> memoryview:
    if len(msg.payload) != 1:
        raise BadRequest(f"expected 1 payload frame, got {len(msg.payload)}")
    return memoryview(msg.payload[0])


class Handlers:
    def __init__(self, store: Store, writer: GroupCommitter, readers: Executor) -> None:
        self._store = store
        self._writer = writer
        self._readers = readers
        self._max_key = store.max_key_size

    def table(self) -> dict[int, Handler]:
        return {
            wire.Op.PING: self.ping,
            wire.Op.SHARD_PUT: self.shard_put,
            wire.Op.SHARD_GET: self.shard_get,
            wire.Op.SHARD_DELETE: self.shard_delete,
            wire.Op.SHARD_SCAN: self.shard_scan,
            wire.Op.RECORD_PUT: self.record_put,
            wire.Op.RECORD_GET: self.record_get,
            wire.Op.RECORD_DELETE: self.record_delete,
            wire.Op.RECORD_SCAN: self.record_scan,
            wire.Op.STATS: self.stats,
        }

    async def _in_reader(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._readers, fn, *args)

    def ping(self, msg: wire.Message) -> Reply:
        return Reply({"node_id": self._store.node_id, "time_ns": time.time_ns()})

    def stats(self, msg: wire.Message) -> Reply:
        stats = self._store.stats()
        stats.update(wire_version=wire.VERSION, write_batches=self._writer.batches,
                     write_ops=self._writer.ops)
        return Reply(stats)

    # ---- shards -----------------------------------------------------------------------------------
    async def shard_put(self, msg: wire.Message) -> Reply:
        key = _key(msg.args, "key", self._max_key)
        digest = _exact(msg.args, "xxh", layout.SHARD_DIGEST_SIZE)
        data = _one_frame(msg)
        if layout.shard_digest(data) != digest:
            raise ChecksumMismatch(f"shard {key!r}: payload does not match its xxh3_128")
        await self._writer.submit(ShardPut(key, digest, data))
        return Reply({})

    def shard_get(self, msg: wire.Message) -> Reply | Awaitable[Reply]:
        key = _key(msg.args, "key", self._max_key)
        offset = _int(msg.args, "offset", 0, 0, 1 << 62)
        length = _int(msg.args, "length", None, 0, 1 << 62)
        stored_len = self._store.shard_stored_len(key)
        if stored_len is None:
            raise NotFoundError(f"no shard {key!r}")
        if stored_len > INLINE_READ_MAX:
            return self._shard_get_in_reader(key, offset, length)
        return self._shard_reply(self._store.get_shard, key, offset, length)

    async def _shard_get_in_reader(self, key: bytes, offset: int, length: int | None) -> Reply:
        return await self._in_reader(self._shard_reply, self._store.get_shard, key, offset, length)

    @staticmethod
    def _shard_reply(get_shard: Callable[..., Any], key: bytes, offset: int,
                     length: int | None) -> Reply:
        try:
            shard = get_shard(key, offset, length)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        return Reply({"size": shard.size, "xxh": shard.digest}, [shard.data])

    async def shard_delete(self, msg: wire.Message) -> Reply:
        key = _key(msg.args, "key", self._max_key)
        existed = await self._writer.submit(ShardDelete(key))
        return Reply({"existed": existed})

    async def shard_scan(self, msg: wire.Message) -> Reply:
        prefix, start, limit = self._scan_args(msg.args)
        page = await self._in_reader(self._store.scan_shards, prefix, start, limit)
        return Reply({"keys": page.keys, "sizes": page.sizes, "more": page.more})

    # ---- records ----------------------------------------------------------------------------------
    async def record_put(self, msg: wire.Message) -> Reply:
        key = _key(msg.args, "key", self._max_key)
        stamp = _exact(msg.args, "stamp", layout.STAMP_SIZE)
        value = _one_frame(msg)
        head_len = _int(msg.args, "head", None, 0, len(value))
        want_replaced = msg.args.get("replaced", False)
        if not isinstance(want_replaced, bool):
            raise BadRequest("replaced must be a boolean")
        outcome = await self._writer.submit(RecordPut(key, stamp, value, head_len, want_replaced))
        if outcome.replaced is None:
            return Reply({"applied": outcome.applied, "stamp": outcome.stamp})
        replaced_stamp, replaced_value = outcome.replaced
        return Reply({"applied": outcome.applied, "stamp": outcome.stamp,
                      "replaced_stamp": replaced_stamp}, [replaced_value])

    def record_get(self, msg: wire.Message) -> Reply:
        key = _key(msg.args, "key", self._max_key)
        stamp, value = self._store.get_record(key)
        return Reply({"stamp": stamp}, [value])

    async def record_delete(self, msg: wire.Message) -> Reply:
        key = _key(msg.args, "key", self._max_key)
        stamp = _exact(msg.args, "stamp", layout.STAMP_SIZE, optional=True)
        existed, deleted = await self._writer.submit(RecordDelete(key, stamp))
        return Reply({"existed": existed, "deleted": deleted})

    def record_scan(self, msg: wire.Message) -> Reply | Awaitable[Reply]:
        prefix, start, limit = self._scan_args(msg.args)
        heads = msg.args.get("heads", False)
        if not isinstance(heads, bool):
            raise BadRequest("heads must be a boolean")
        # Most scans are short (a small bucket, a prefix with few keys): try a few records on
        # the event loop, and only if there are more, scan on a reader thread from the start.
        page = self._store.scan_records(prefix, start, min(limit, INLINE_SCAN_MAX), heads=heads)
        if page.more and limit > INLINE_SCAN_MAX:
            return self._record_scan_in_reader(prefix, start, limit, heads)
        return self._scan_reply(page)

    async def _record_scan_in_reader(self, prefix: bytes, start: bytes | None, limit: int,
                                     heads: bool) -> Reply:
        page = await self._in_reader(functools.partial(self._store.scan_records, prefix, start,
                                                       limit, heads=heads))
        return self._scan_reply(page)

    @staticmethod
    def _scan_reply(page: RecordPage) -> Reply:
        return Reply({"keys": page.keys, "stamps": page.stamps,
                      "sizes": [len(v) for v in page.values], "more": page.more,
                      "corrupt": page.corrupt}, [b"".join(page.values)])

    def _scan_args(self, args: dict[str, Any]) -> tuple[bytes, bytes | None, int]:
        prefix = _key(args, "prefix", self._max_key, allow_empty=True)
        start = _key(args, "start", self._max_key, optional=True, allow_empty=True)
        limit = _int(args, "limit", SCAN_LIMIT_DEFAULT, 1, SCAN_LIMIT_MAX)
        return prefix, start, limit
