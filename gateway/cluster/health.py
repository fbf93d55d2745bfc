"""Which storage nodes answer: a small background worker that pings every node every second.

The node pool remembers a node that timed out as suspect and forgets that as soon as the node
answers again (common/nodeclient.py). Requests alone notice a killed node only once one of them
has waited out its timeout (seconds on the data path, and a send to a dead node stalls for all
of it), and a restarted node only once something is sent to it. Pinging bounds both to about
`interval + timeout`, so reads and writes route around a dead node from the start instead of
each stalling on it (see DataPath).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging

from common.nodeclient import NodeError, NodePool

log = logging.getLogger("cairn.health")


class NodeWatch:
    """`async with NodeWatch(pool):` keeps the pool's suspect list current while open."""

    def __init__(self, pool: NodePool, *, interval: float = 1.0, timeout: float = 1.0) -> None:
        self._pool = pool
        self._interval = interval
        self._timeout = timeout
        self._runner: asyncio.Task | None = None
        self._pings: dict[str, asyncio.Task] = {}

    async def __aenter__(self) -> NodeWatch:
        self._runner = asyncio.create_task(self._run(), name="node-watch")
        return self

    async def __aexit__(self, *exc: object) -> None:
        tasks = [t for t in (self._runner, *self._pings.values()) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._runner = None
        self._pings.clear()

    async def _run(self) -> None:
        while True:
            for node_id in self._pool.node_ids():
                # One ping per node at a time: a dead node's ping (which waits out its timeout)
                # never delays noticing that another node came back.
                if node_id not in self._pings:
                    self._pings[node_id] = asyncio.create_task(self._ping(node_id))
            await asyncio.sleep(self._interval)

    async def _ping(self, node_id: str) -> None:
        was_suspect = self._pool.is_suspect(node_id)
        try:
            # The outcome (answer or timeout) is what updates the pool's suspect list.
            with contextlib.suppress(NodeError, TimeoutError, KeyError):
                await self._pool[node_id].ping(timeout=self._timeout)
            now_suspect = self._pool.is_suspect(node_id)
            if now_suspect != was_suspect:
                log.warning("storage node %s is %s", node_id, "not answering" if now_suspect else "back")
        finally:
            self._pings.pop(node_id, None)
