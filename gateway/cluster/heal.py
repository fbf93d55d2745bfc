"""Heal on read: a shard a GET found corrupt or missing is rebuilt at once, in the background.

A GET decodes around a bad shard (datapath.py) and reports it here. The healer rebuilds that
stripe's bad shards from k good ones and writes them back to the nodes that should hold them,
so bit rot found by a reader does not wait for the next `cairn repair` scrub (MinIO heals on
read the same way). Shards whose node did not answer are left alone: a node that is down is not
known to have lost anything, and it could not take the write.

The queue is bounded and deduplicated by stripe: a burst of reads of one damaged object heals
each stripe once, and past the bound reports are dropped (the scrub still finds them). One
worker heals one stripe at a time, so healing never competes with clients for more than a
stripe's worth of reads and writes. A stripe healed after its object was deleted leaves orphan
shards that `cairn gc` collects like any other.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable

from common.codec import ErasureCode
from common.nodeclient import NodePool
from gateway.cluster.records import DataRef
from gateway.cluster.repair import StripeRepair, repair_stripe

log = logging.getLogger("cairn.heal")

QUEUE_LIMIT = 1000
HEALABLE = frozenset({"corrupt", "NotFound"})   # the node answered: its shard is bad, not away


class ShardHealer:
    def __init__(self, pool: NodePool, *, timeout: float = 10.0,
                 on_healed: Callable[[StripeRepair], None] | None = None) -> None:
        self._pool = pool
        self._timeout = timeout
        self._on_healed = on_healed or (lambda outcome: None)
        self._queue: asyncio.Queue[tuple[DataRef, int]] = asyncio.Queue(QUEUE_LIMIT)
        self._queued: set[tuple[bytes, int]] = set()
        self._worker: asyncio.Task | None = None

    async def __aenter__(self) -> ShardHealer:
        self._worker = asyncio.create_task(self._run(), name="shard-healer")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._worker is not None
        self._worker.cancel()
        await asyncio.gather(self._worker, return_exceptions=True)

    def report(self, ref: DataRef, stripe_no: int, shard: int, why: str) -> None:
        """DataPath's repair hint: queue the stripe if the shard is known bad (not merely on a
        node that did not answer); returns at once, whatever the queue holds."""
        if why not in HEALABLE:
            return
        key = (ref.data_id, stripe_no)
        if key in self._queued:
            return
        try:
            self._queue.put_nowait((ref, stripe_no))
        except asyncio.QueueFull:
            log.warning("heal queue full: stripe %d of data %s left to the scrub", stripe_no,
                        ref.data_id.hex())
            return
        self._queued.add(key)

    async def _run(self) -> None:
        while True:
            ref, stripe_no = await self._queue.get()
            try:
                # A fresh code per heal, as the scrub builds one per extent: heals are rare.
                outcome = await repair_stripe(self._pool, ErasureCode(ref.k, ref.m), ref, stripe_no,
                                              timeout=self._timeout, only_answered=True)
            except Exception:       # a bug, not a node condition: log it, keep healing
                log.exception("healing stripe %d of data %s failed", stripe_no, ref.data_id.hex())
                continue
            finally:
                self._queued.discard((ref.data_id, stripe_no))
            for why in outcome.failures:
                log.warning("heal of data %s: %s", ref.data_id.hex(), why)
            self._on_healed(outcome)
