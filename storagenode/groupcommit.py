"""Group commit: one writer turns concurrent write requests into few synced transactions.

A synced LMDB commit costs one fsync (a few ms) whatever it holds, so the writer takes every op
queued while the previous commit was running (up to `max_batch`), commits them together on its
own thread - the event loop keeps serving reads meanwhile - and only then resolves each waiter.
No write is acknowledged before the transaction holding it is durable.
"""
from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from storagenode.store import Store, StoreError
from storagenode.writeops import WriteOp

log = logging.getLogger(__name__)

_STOP = None


class GroupCommitter:
    def __init__(self, store: Store, max_batch: int) -> None:
        self._store = store
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[WriteOp, asyncio.Future] | None] = asyncio.Queue()
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task | None = None
        self.batches = 0          # committed transactions, for STATS
        self.ops = 0              # ops they held

    async def __aenter__(self) -> GroupCommitter:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lmdb-writer")
        self._task = asyncio.create_task(self._run(), name="group-commit")
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Commit what is already queued, then stop. The store must stay open until this returns:
        the writer thread may be inside a transaction."""
        assert self._task is not None and self._executor is not None
        self._queue.put_nowait(_STOP)
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=30)
        except asyncio.TimeoutError:
            log.error("group commit did not drain in 30 s; abandoning queued writes")
            self._task.cancel()
        finally:
            self._executor.shutdown(wait=True)   # never leave a transaction running
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if item is not None and not item[1].done():
                    item[1].set_exception(StoreError("node is shutting down"))

    async def submit(self, op: WriteOp) -> object:
        """Queue one write and return its result once durable; raises the op's StoreError."""
        if self._task is None or self._task.done():
            raise StoreError("writer is not running")
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((op, future))
        outcome = await future
        if isinstance(outcome, StoreError):
            raise outcome
        return outcome

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            item = await self._queue.get()
            if item is _STOP:
                return
            batch = [item]
            while len(batch) < self._max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            ops = [op for op, _ in batch]
            try:
                outcomes = await loop.run_in_executor(self._executor, self._store.write_batch, ops)
            except Exception as exc:  # a bug, not a store condition: fail this batch, keep going
                log.exception("write batch of %d ops failed", len(ops))
                outcomes = [StoreError(f"internal error: {exc}")] * len(ops)
            self.batches += 1
            self.ops += len(ops)
            for (_, future), outcome in zip(batch, outcomes):
                if not future.done():      # its request may have been cancelled meanwhile
                    future.set_result(outcome)
