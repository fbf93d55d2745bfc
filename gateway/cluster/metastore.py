"""Quorum-replicated metadata records on the storage nodes.

Every record lives on the k+m replicas of its ring partition. A write is acknowledged once the
write quorum W has committed it (each node syncs before answering); a read asks R healthy
replicas (more if one fails or is slow) and answers from the first R replies, newest stamp
winning. Replies that arrive later are still collected in the background and any stale replica
is repaired with the newest value (read repair); `cairn repair` re-replicates everything else.

A write that misses its quorum is undone on the replicas that took it (see `put`): a write that
failed must not surface later through a read quorum made of exactly those replicas.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable, Iterable

from common.nodeclient import Corrupt, NodeError, NodePool, NotFound, RecordPutOutcome
from gateway.cluster.records import head_length
from gateway.cluster.quorum import Quorums
from gateway.s3.errors import ServiceUnavailable
from ring.model import Ring

log = logging.getLogger("cairn.metastore")


@dataclass(frozen=True)
class Versioned:
    stamp: bytes
    value: bytes


# A read quorum that has not answered within this many seconds asks the remaining replicas too.
HEDGE_AFTER = 0.25
# An unread write that keeps meeting newer stamps gives up after this many tries (each newer
# stamp is a write that went through meanwhile: only a storm of writers to one key does this).
MAX_RESTAMPS = 5


async def first_answers(calls: dict[str, Callable[[], Awaitable]], needed: int, what: str,
                        background: set[asyncio.Task],
                        on_all_done: Callable[[dict[str, object]], None] | None = None,
                        *, start: int | None = None, hedge_after: float | None = None,
                        ) -> dict[str, object]:
    """Call nodes (in the order given); return {node: result-or-NotFound} once `needed` answered.

    Only the first `start` calls (default: all) begin at once; one more begins for each failure,
    and all the rest after `hedge_after` seconds without enough answers (a slow replica). Reads
    start just R calls, so a healthy cluster sees R messages per read instead of N.

    NotFound counts as an answer. Other errors count against the quorum; once it can no longer be
    reached, ServiceUnavailable. Calls still running go on in the background; `on_all_done` then
    sees every answer, and the Corrupt error of each replica that had a damaged copy (used for
    read repair: such a copy is rewritten like a missing one)."""
    waiting = list(calls.items())
    tasks: dict[asyncio.Future, str] = {}
    pending: set[asyncio.Future] = set()

    def launch(count: int) -> None:
        for _ in range(min(count, len(waiting))):
            node, make = waiting.pop(0)
            task = asyncio.ensure_future(make())
            # A call that fails after the quorum answered (or after the store closed) is nobody's
            # to await: mark its error as seen, or asyncio logs "exception was never retrieved".
            task.add_done_callback(_mark_retrieved)
            tasks[task] = node
            pending.add(task)

    launch(len(waiting) if start is None else start)
    answers: dict[str, object] = {}
    failures: dict[str, BaseException] = {}
    loop = asyncio.get_running_loop()
    hedge_at = None if hedge_after is None else loop.time() + hedge_after
    while pending and len(answers) < needed:
        timeout = None if hedge_at is None or not waiting else max(0.0, hedge_at - loop.time())
        done, pending = await asyncio.wait(pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if not done:
            launch(len(waiting))  # too slow: ask everyone left
            continue
        for t in done:
            node = tasks[t]
            exc = t.exception()
            if exc is None:
                answers[node] = t.result()
            elif isinstance(exc, NotFound):
                answers[node] = exc
            else:
                failures[node] = exc
                launch(1)
        if len(calls) - len(failures) < needed:
            break
    if len(answers) < needed:
        for t in pending:
            t.cancel()
        kinds = ", ".join(sorted({f"{n}: {type(e).__name__}" for n, e in failures.items()}))
        raise ServiceUnavailable(f"{what}: {len(answers)} of {len(calls)} replicas answered, "
                                 f"{needed} needed ({kinds})")
    damaged = {n: e for n, e in failures.items() if isinstance(e, Corrupt)}
    if pending:
        async def finish() -> None:
            await asyncio.wait(pending)
            if on_all_done is not None:
                full = {**damaged, **answers}
                for t in pending:
                    if not t.cancelled() and (t.exception() is None
                                              or isinstance(t.exception(), (NotFound, Corrupt))):
                        full[tasks[t]] = t.exception() or t.result()
                on_all_done(full)
        bg = asyncio.ensure_future(finish())
        background.add(bg)
        bg.add_done_callback(background.discard)
    elif on_all_done is not None:
        on_all_done({**damaged, **answers})
    return answers


class MetaStore:
    def __init__(self, pool: NodePool, ring: Callable[[], Ring], quorums: Quorums,
                 timeout: float = 5.0) -> None:
        self._pool = pool
        self._ring = ring
        self._q = quorums
        self._timeout = timeout
        self._background: set[asyncio.Task] = set()

    def _read_order(self, partition: bytes) -> list[str]:
        """Replicas to read from, healthy ones first (a suspect node is asked only if needed)."""
        return sorted(self.replicas(partition), key=self._pool.is_suspect)

    def replicas(self, partition: bytes) -> tuple[str, ...]:
        return tuple(n.id for n in self._ring().nodes_for(partition))[: self._q.meta_replicas]

    async def close(self) -> None:
        for t in list(self._background):
            t.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def get(self, partition: bytes, key: bytes) -> Versioned | None:
        nodes = self._read_order(partition)
        calls = {n: (lambda n=n: self._pool[n].get_record(key, timeout=self._timeout)) for n in nodes}

        def repair(answers: dict[str, object]) -> None:
            newest = _newest(answers.values())
            if newest is not None:
                stale = [n for n, a in answers.items() if isinstance(a, (NotFound, Corrupt))
                         or (isinstance(a, tuple) and a[0] < newest.stamp)]
                if stale:
                    log.info("read repair of %r on %s", key, ",".join(stale))
                    for n in stale:
                        self._spawn(self._pool[n].put_record(key, newest.stamp, newest.value,
                                                             head=head_length(newest.value),
                                                             timeout=self._timeout))

        answers = await first_answers(calls, self._q.meta_read, "metadata read",
                                      self._background, repair, start=self._q.meta_read,
                                      hedge_after=HEDGE_AFTER)
        return _newest(answers.values())

    async def put(self, partition: bytes, key: bytes, value: bytes, stamp: bytes,
                  previous: Versioned | None = None) -> None:
        """Write with the write quorum, or raise ServiceUnavailable having rolled the replicas
        that applied it back to `previous` (the version this write replaces, as read before it).

        The rollback removes the record only where it still carries this write's stamp, then puts
        `previous` back with its own stamp, so a newer write that got there meanwhile is kept.
        Replicas whose answer never came (killed mid-write) may hold the failed write; that is
        the one outcome a client must treat as unknown. And a write acknowledged after
        `previous` was read, yet older than this one, loses its copy on the rolled-back replicas
        (it stays on the others): rare, as it takes a concurrent writer and more than m nodes
        failing at once."""
        await self._put(partition, key, value, stamp, lambda node: previous)

    async def put_unread(self, partition: bytes, key: bytes, value: bytes,
                         stamp_after: Callable[[bytes | None], bytes]
                         ) -> tuple[bytes, Versioned | None]:
        """Write without reading the record first; returns (stamp written, newest version it
        replaced). For writes that do not depend on the current value (an unconditional PUT).

        The stamp comes from `stamp_after(None)`. Any write acknowledged before this one started
        is on a write quorum, which intersects the W replicas this one waits for: if that write
        carries a newer stamp (its gateway's clock runs ahead), one of them refuses with it, and
        the write is made again with `stamp_after(that stamp)`, so it still comes out last. Each
        replica reports what it replaced; a failed write is rolled back to exactly that."""
        replaced: dict[str, Versioned] = {}
        ours: set[bytes] = set()

        def note(node: str, outcome: RecordPutOutcome) -> None:
            if outcome.replaced is not None and outcome.replaced[0] not in ours:
                replaced.setdefault(node, Versioned(*outcome.replaced))

        newer: bytes | None = None
        for _ in range(MAX_RESTAMPS):
            stamp = stamp_after(newer)
            ours.add(stamp)
            answers = await self._put(partition, key, value, stamp, replaced.get, note)
            refusals = [a.stamp for a in answers.values()
                        if isinstance(a, RecordPutOutcome) and not a.applied and a.stamp > stamp]
            if not refusals:
                return stamp, max(replaced.values(), key=lambda v: v.stamp, default=None)
            newer = max(refusals)
            log.info("write of %r met a newer stamp: written again after it", key)
        raise ServiceUnavailable(f"metadata write of {key!r} kept meeting newer writes")

    async def _put(self, partition: bytes, key: bytes, value: bytes, stamp: bytes,
                   restore: Callable[[str], Versioned | None],
                   note: Callable[[str, RecordPutOutcome], None] | None = None
                   ) -> dict[str, object]:
        """Put on every replica, return once W answered; if W cannot answer, roll each replica
        that applied the write back to `restore(node)` and raise ServiceUnavailable. With
        `note`, replicas are asked for the record they replaced and each outcome is passed on."""
        nodes = self.replicas(partition)
        down = [n for n in nodes if self._pool.is_suspect(n)]
        if len(nodes) - len(down) < self._q.meta_write:   # known out of reach: write nothing
            raise ServiceUnavailable(f"metadata write: {len(nodes) - len(down)} of {len(nodes)} "
                                     f"replicas up, {self._q.meta_write} needed "
                                     f"(down: {', '.join(down)})")
        applied: list[str] = []
        head = head_length(value)

        async def put_one(node: str) -> RecordPutOutcome:
            outcome = await self._pool[node].put_record(key, stamp, value, head=head,
                                                        want_replaced=note is not None,
                                                        timeout=self._timeout)
            if outcome.applied:
                applied.append(node)
            if note is not None:
                note(node, outcome)
            return outcome

        try:
            answers = await first_answers({n: (lambda n=n: put_one(n)) for n in nodes}, self._q.meta_write,
                                          "metadata write", self._background)
        except ServiceUnavailable:
            await self._roll_back({n: restore(n) for n in applied}, key, stamp)
            raise
        if any(isinstance(a, NotFound) for a in answers.values()):
            raise ServiceUnavailable("metadata write: replica refused the record")
        return answers

    async def _roll_back(self, previous_of: dict[str, Versioned | None], key: bytes,
                         stamp: bytes) -> None:
        nodes = list(previous_of)

        async def undo(node: str) -> None:
            await self._pool[node].delete_record(key, stamp, timeout=self._timeout)
            previous = previous_of[node]
            if previous is not None:
                await self._pool[node].put_record(key, previous.stamp, previous.value,
                                                  head=head_length(previous.value),
                                                  timeout=self._timeout)
        results = await asyncio.gather(*(undo(n) for n in nodes), return_exceptions=True)
        failed = [n for n, r in zip(nodes, results) if isinstance(r, BaseException)]
        log.warning("metadata write of %r missed its quorum: rolled back on %s%s", key,
                    ",".join(n for n in nodes if n not in failed) or "no replica",
                    f" (not on {','.join(failed)})" if failed else "")

    async def scan(self, partition: bytes, prefix: bytes, start: bytes | None, limit: int, *,
                   heads: bool = False) -> tuple[list[tuple[bytes, Versioned]], bool]:
        """Merged, newest-wins page of records with keys >= start under prefix.

        Each replica returns at most `limit` keys. A key beyond the last key of a replica that
        still has more might exist on that replica, so the merged page stops at the smallest such
        boundary: no key is skipped, whatever each replica held.

        A replica's page also covers the keys it found corrupt (listed apart, not as items). When
        every key up to the boundary was such a key, the scan goes on from the boundary rather
        than return an empty page that callers would take for the end.

        With heads, values are only their heads (records.head_length)."""
        while True:
            ordered, boundary = await self._scan_page(partition, prefix, start, limit, heads)
            if ordered or boundary is None:
                return ordered, boundary is not None
            start = boundary + b"\x00"

    async def _scan_page(self, partition: bytes, prefix: bytes, start: bytes | None, limit: int,
                         heads: bool) -> tuple[list[tuple[bytes, Versioned]], bytes | None]:
        """The merged page and its boundary (None: no replica has more)."""
        nodes = self._read_order(partition)
        calls = {n: (lambda n=n: self._pool[n].scan_records(prefix, start=start, limit=limit,
                                                            heads=heads, timeout=self._timeout))
                 for n in nodes}
        answers = await first_answers(calls, self._q.meta_read, "metadata scan", self._background,
                                      start=self._q.meta_read, hedge_after=HEDGE_AFTER)
        pages = [a for a in answers.values() if not isinstance(a, NotFound)]
        boundary: bytes | None = None
        for page in pages:
            scanned = [k for k, _, _ in page.items[-1:]] + list(page.corrupt[-1:])
            if page.more and scanned:
                last = max(scanned)
                boundary = last if boundary is None else min(boundary, last)
        merged: dict[bytes, Versioned] = {}
        for items, _ in pages:
            for rkey, stamp, value in items:
                if boundary is not None and rkey > boundary:
                    continue
                cur = merged.get(rkey)
                if cur is None or stamp > cur.stamp:
                    merged[rkey] = Versioned(stamp, value)
        return sorted(merged.items()), boundary

    async def scan_all(self, partition: bytes, prefix: bytes, start: bytes | None = None,
                       page_size: int = 1000) -> AsyncIterator[tuple[bytes, Versioned]]:
        """Every record under prefix from start (inclusive), page after page, in key order."""
        start = prefix if start is None else start
        while True:
            page, more = await self.scan(partition, prefix, start, page_size)
            for item in page:
                yield item
            if not more or not page:
                return
            start = page[-1][0] + b"\x00"

    def _spawn(self, coro: Awaitable) -> None:
        async def quiet() -> None:
            try:
                await coro
            except (NodeError, asyncio.TimeoutError) as exc:
                log.warning("background metadata write failed: %s", exc)
        t = asyncio.ensure_future(quiet())
        self._background.add(t)
        t.add_done_callback(self._background.discard)


def _mark_retrieved(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()


def _newest(answers: Iterable[object]) -> Versioned | None:
    best: Versioned | None = None
    for a in answers:
        if isinstance(a, tuple):
            stamp, value = a
            if best is None or stamp > best.stamp:
                best = Versioned(stamp, value)
    return best
