"""Erasure-coded object bytes: streamed in stripe by stripe, streamed out stripe by stripe.

Write: cut the body into stripes of `stripe_size` data bytes, hash and encode each in a worker
thread, send the k+m shards of a stripe to the partition's k+m nodes concurrently while the next
stripe is read. A few stripes are in flight at once, so memory per request is bounded by
window * stripe_size * (k+m)/k whatever the object size, and a per-worker budget of stripes in
flight bounds the total across concurrent uploads. A node that fails once is dropped for the
rest of the object (its shard index is recorded as missing); as soon as fewer than the write quorum
of shard indices remain, the write fails fast with ServiceUnavailable. A node the pool knows to be
down (suspect, see health.py) gets no shards at all, and one that has not answered
`straggler_grace` seconds after the write quorum of a stripe did is dropped like a failed one: a
node killed mid-upload costs a PUT a moment, not a node timeout per stripe in flight.

Read: for each stripe of the requested range, ask the data-shard holders for just the bytes needed
(the code is systematic); on any failure or checksum error, fetch whole shards from every
remaining holder, decode from the first k, and report what was missing for repair. The same
happens at once when a data-shard holder is suspect, and after `straggler_grace` seconds when one
is slow to answer (a node killed mid-GET never answers; waiting out its timeout would stall every
stripe in flight).
"""
from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from concurrent.futures import Executor
from typing import AsyncIterator, Callable, Iterable, Protocol, Sequence

from common.codec import ErasureCode
from common.nodeclient import Corrupt, NodeError, NodePool
from common import stripes
from gateway.cluster.quorum import Quorums
from gateway.cluster.records import DataRef, PartRef, shard_key
from gateway.s3.errors import ServiceUnavailable
from ring.model import Ring

log = logging.getLogger("cairn.datapath")

_POLL = 0.25    # seconds between looks at the pool's suspect list while shard puts are pending


class StripeSource(Protocol):
    async def readexactly_or_eof(self, n: int) -> bytes: ...


class DataPath:
    def __init__(self, pool: NodePool, ring: Callable[[], Ring], quorums: Quorums,
                 executor: Executor, *, stripe_size: int, window: int = 3, write_budget: int = 12,
                 read_window: int = 2,
                 timeout: float = 10.0, straggler_grace: float = 2.0,
                 repair_hint: Callable[[DataRef, int, int, str], None] | None = None):
        self._pool = pool
        self._ring = ring
        self._q = quorums
        self._executor = executor
        self.stripe_size = stripe_size
        self._window = window
        self._read_window = read_window
        self._write_budget = asyncio.Semaphore(write_budget)
        self._timeout = timeout
        self._straggler_grace = straggler_grace
        self._codes: dict[tuple[int, int], ErasureCode] = {}
        self._repair_hint = repair_hint or (lambda ref, stripe, shard, why: None)
        self._background: set[asyncio.Task] = set()

    def code(self, k: int, m: int) -> ErasureCode:
        code = self._codes.get((k, m))
        if code is None:
            code = self._codes[(k, m)] = ErasureCode(k, m)
        return code

    async def close(self) -> None:
        for t in list(self._background):
            t.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    # ---- write -----------------------------------------------------------------------------
    async def write(self, first: bytes, source: StripeSource,
                    digest: Callable[[bytes], None]) -> tuple[DataRef, int]:
        """Store `first` followed by the rest of `source`; returns (ref, total size).

        `digest` is called (in a worker thread) with every data byte exactly once, in order."""
        ring, q = self._ring(), self._q
        code = self.code(q.k, q.m)
        data_id = new_data_id()
        nodes = tuple(n.id for n in ring.nodes_for(data_id))[: q.k + q.m]
        failed = {i for i, node in enumerate(nodes) if self._pool.is_suspect(node)}
        if len(nodes) - len(failed) < q.data_write:
            raise ServiceUnavailable(
                f"data write: {len(nodes) - len(failed)} of {len(nodes)} storage nodes are up, "
                f"{q.data_write} needed (down: {', '.join(nodes[i] for i in sorted(failed))})")
        inflight: collections.deque[asyncio.Task] = collections.deque()
        loop = asyncio.get_running_loop()
        stripe_no = 0
        total = 0
        pending = first
        try:
            while True:
                # A stripe's buffers count against the worker's budget from the moment it is read
                # until its shards are sent: total write memory stays bounded, whatever the
                # number of concurrent uploads (the rest wait, and TCP slows their clients).
                await self._write_budget.acquire()
                try:
                    if len(pending) < self.stripe_size:
                        pending += await source.readexactly_or_eof(self.stripe_size - len(pending))
                except BaseException:
                    self._write_budget.release()
                    raise
                # `first` may hold more than a stripe (a stripe size below the inline limit)
                buf, pending = pending[:self.stripe_size], pending[self.stripe_size:]
                if not buf and stripe_no > 0:
                    self._write_budget.release()
                    break
                try:
                    shards = await loop.run_in_executor(self._executor, _digest_and_encode,
                                                        code, buf, digest)
                except BaseException:
                    self._write_budget.release()
                    raise
                total += len(buf)
                send = asyncio.ensure_future(self._send_stripe(data_id, stripe_no, nodes, shards, failed))
                send.add_done_callback(lambda _: self._write_budget.release())
                inflight.append(send)
                stripe_no += 1
                while len(inflight) >= self._window:
                    await inflight.popleft()
                if len(buf) < self.stripe_size:
                    break
            while inflight:
                await inflight.popleft()
        except BaseException:
            for t in inflight:
                t.cancel()
            self.forget(DataRef(data_id, q.k, q.m, self.stripe_size, nodes), stripe_no + 1)
            raise
        return DataRef(data_id=data_id, k=q.k, m=q.m, stripe_size=self.stripe_size, nodes=nodes,
                       missing=tuple(sorted(failed))), total

    async def _send_stripe(self, data_id: bytes, stripe_no: int, nodes: tuple[str, ...],
                           shards: list[bytes], failed: set[int]) -> None:
        tasks = {asyncio.ensure_future(
            self._pool[nodes[i]].put_shard(shard_key(data_id, stripe_no, i), shards[i],
                                           timeout=self._timeout)): i
            for i in range(len(nodes)) if i not in failed}
        pending = set(tasks)
        loop = asyncio.get_running_loop()
        stored, grace_ends = 0, None

        def drop(t: asyncio.Task, why: str) -> None:
            # The shard may or may not be stored: it is never read, and removed with the object.
            log.warning("shard %d of stripe %d on %s: %s; counted as missing", tasks[t], stripe_no,
                        nodes[tasks[t]], why)
            pending.discard(t)
            t.cancel()
            failed.add(tasks[t])

        try:
            while pending and len(nodes) - len(failed) >= self._q.data_write:
                # Wake up now and then: a holder found down meanwhile is not waited for.
                wait = _POLL if grace_ends is None else min(_POLL, grace_ends - loop.time())
                done, pending = await asyncio.wait(pending, timeout=max(0.0, wait),
                                                   return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    exc = t.exception()
                    if exc is None:
                        stored += 1
                    elif isinstance(exc, (NodeError, asyncio.TimeoutError)):
                        log.warning("shard %d of stripe %d on %s failed: %s", tasks[t], stripe_no,
                                    nodes[tasks[t]], exc)
                        failed.add(tasks[t])
                    else:
                        raise exc
                for t in [t for t in pending if self._pool.is_suspect(nodes[tasks[t]])]:
                    drop(t, "node found down")
                if grace_ends is None and stored >= self._q.data_write:
                    grace_ends = loop.time() + self._straggler_grace
                elif grace_ends is not None and loop.time() >= grace_ends:
                    for t in list(pending):
                        drop(t, f"no answer {self._straggler_grace:g} s after the write quorum")
        finally:
            for t in pending:
                t.cancel()
        for t in list(pending):     # the quorum went out of reach first
            drop(t, "abandoned")
        alive = len(nodes) - len(failed)
        if alive < self._q.data_write:
            raise ServiceUnavailable(f"data write: {alive} of {len(nodes)} storage nodes took the "
                                     f"shards, {self._q.data_write} needed")

    def forget(self, ref: DataRef, stripe_count: int | None = None) -> None:
        """Best-effort removal of a version's shards in the background (garbage collection picks
        up whatever this misses)."""
        async def remove() -> None:
            count = stripe_count if stripe_count is not None else 0
            calls = [self._pool[node].delete_shard(shard_key(ref.data_id, s, i), timeout=self._timeout)
                     for s in range(count) for i, node in enumerate(ref.nodes)]
            for chunk in range(0, len(calls), 64):
                await asyncio.gather(*calls[chunk:chunk + 64], return_exceptions=True)
        t = asyncio.ensure_future(remove())
        self._background.add(t)
        t.add_done_callback(self._background.discard)

    def forget_later(self, ref: DataRef, stripe_count: int, delay: float = 30.0) -> None:
        """Forget a replaced version after `delay` seconds, so GETs already streaming it finish.
        If this gateway stops first, garbage collection removes the shards instead."""
        async def later() -> None:
            await asyncio.sleep(delay)
            self.forget(ref, stripe_count)
        t = asyncio.ensure_future(later())
        self._background.add(t)
        t.add_done_callback(self._background.discard)

    def forget_extents_later(self, extents: Iterable[PartRef], delay: float = 30.0) -> None:
        for ext in extents:
            if ext.data is not None:
                self.forget_later(ext.data, stripes.stripe_count(ext.size, ext.data.stripe_size), delay)

    # ---- read ------------------------------------------------------------------------------
    async def read_extents(self, extents: Sequence[PartRef], first: int, last: int
                           ) -> AsyncIterator[bytes | memoryview]:
        """Bytes first..last of an object made of one or more pieces (multipart parts)."""
        offset = 0
        for ext in extents:
            lo, hi = offset, offset + ext.size - 1
            offset += ext.size
            if ext.size == 0 or hi < first or lo > last:
                continue
            a, b = max(first, lo) - lo, min(last, hi) - lo
            if ext.inline is not None:
                yield ext.inline[a:b + 1]
            else:
                stream = self.read(ext.data, ext.size, a, b)
                try:
                    async for chunk in stream:
                        yield chunk
                finally:
                    await stream.aclose()

    async def read(self, ref: DataRef, size: int, first: int, last: int
                   ) -> AsyncIterator[bytes | memoryview]:
        """Yield the bytes first..last (inclusive) of the object, stripe by stripe (a piece per
        shard, not joined: no copy), prefetching."""
        plan = stripes.stripes_for_range(first, last, size, ref.stripe_size)
        ahead: collections.deque[asyncio.Task] = collections.deque()
        it = iter(plan)
        try:
            for item in it:
                ahead.append(asyncio.ensure_future(self._read_stripe(ref, size, *item)))
                if len(ahead) >= self._read_window:
                    break
            while ahead:
                pieces = await ahead.popleft()
                nxt = next(it, None)
                if nxt is not None:
                    ahead.append(asyncio.ensure_future(self._read_stripe(ref, size, *nxt)))
                for piece in pieces:
                    if len(piece):
                        yield piece
        finally:
            for t in ahead:
                t.cancel()

    async def _read_stripe(self, ref: DataRef, size: int, stripe_no: int, start: int, end: int
                           ) -> list[bytes | memoryview]:
        slen = stripes.stripe_len(stripe_no, size, ref.stripe_size)
        code = self.code(ref.k, ref.m)
        ranges = stripes.data_shard_ranges(slen, ref.k, start, end)
        failed: set[int] = set()
        if not any(i in ref.missing or self._pool.is_suspect(ref.nodes[i]) for i, _, _ in ranges):
            tasks = [asyncio.ensure_future(
                self._pool[ref.nodes[i]].get_shard(shard_key(ref.data_id, stripe_no, i), off, ln,
                                                   timeout=self._timeout)) for i, off, ln in ranges]
            try:
                _, pending = await asyncio.wait(tasks, timeout=self._straggler_grace,
                                                return_when=asyncio.FIRST_EXCEPTION)
            finally:
                for t in tasks:
                    t.cancel()
            if not pending and not any(t.exception() for t in tasks):
                return [t.result() for t in tasks]
            for (i, _, _), t in zip(ranges, tasks):
                if t.done() and not t.cancelled() and t.exception() is not None:
                    if not isinstance(t.exception(), (NodeError, asyncio.TimeoutError)):
                        raise t.exception()
                    self._report(ref, stripe_no, i, t.exception())
                    failed.add(i)
        data = await self._decode_stripe(ref, code, stripe_no, slen, skip=failed)
        return [memoryview(data)[start:end]]

    async def _decode_stripe(self, ref: DataRef, code: ErasureCode, stripe_no: int, slen: int,
                             skip: frozenset[int] | set[int] = frozenset()) -> bytes:
        """Whole shards from every holder not known to lack theirs; decode from the first k."""
        candidates = [i for i in range(ref.k + ref.m) if i not in ref.missing and i not in skip]
        tasks = {asyncio.ensure_future(
            self._pool[ref.nodes[i]].get_shard(shard_key(ref.data_id, stripe_no, i),
                                               timeout=self._timeout)): i for i in candidates}
        got: dict[int, bytes] = {}
        pending = set(tasks)
        try:
            while pending and len(got) < ref.k:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    i = tasks[t]
                    exc = t.exception()
                    if exc is None:
                        got[i] = t.result()
                    elif isinstance(exc, (NodeError, asyncio.TimeoutError)):
                        self._report(ref, stripe_no, i, exc)
                    else:
                        raise exc
                if len(got) + len(pending) < ref.k:
                    break
        finally:
            for t in pending:
                t.cancel()
        if len(got) < ref.k:
            raise ServiceUnavailable(f"stripe {stripe_no}: only {len(got)} of {ref.k + ref.m} shards "
                                     f"readable, {ref.k} needed")
        chosen = dict(sorted(got.items())[: ref.k])
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, code.decode, chosen, slen)

    def _report(self, ref: DataRef, stripe_no: int, shard: int, exc: BaseException) -> None:
        why = "corrupt" if isinstance(exc, Corrupt) else type(exc).__name__
        log.warning("shard %d of stripe %d (data %s) on %s unreadable (%s): queued for repair",
                    shard, stripe_no, ref.data_id.hex(), ref.nodes[shard], why)
        self._repair_hint(ref, stripe_no, shard, why)


def new_data_id() -> bytes:
    """16 bytes: creation time (ns, big-endian) then 8 random bytes. Garbage collection reads the
    time to leave shards of writes still in flight alone."""
    return time.time_ns().to_bytes(8, "big") + os.urandom(8)


def data_id_age_seconds(data_id: bytes, now_ns: int | None = None) -> float:
    now_ns = time.time_ns() if now_ns is None else now_ns
    return (now_ns - int.from_bytes(data_id[:8], "big")) / 1e9


def _digest_and_encode(code: ErasureCode, buf: bytes, digest: Callable[[bytes], None]) -> list[bytes]:
    digest(buf)
    return code.encode(buf)
