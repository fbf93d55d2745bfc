"""An in-memory twin of common/nodeclient.py's NodePool and NodeClient, for fast gateway unit tests.

`FakeNodeClient` keeps a node's records and shards in dicts and follows the storage node's rules
(storagenode/store.py, writeops.py): records are last-writer-wins registers compared bytewise by
stamp, a conditional record delete spares a newer record, scans are prefix scans from an
inclusive start whose `more` means "another key follows", a shard put rewrites (and so repairs)
the shard. Its methods have the same names, signatures and exceptions as NodeClient's (a test in
test_metastore.py checks the signatures stay in step).

Faults are injected per node:
    node.fail(NodeUnavailable)         every op raises at once (NodeTimeout likewise)
    node.fail(NodeTimeout, ops={...})  only those ops fail (e.g. {"put_record"})
    node.slow(0.2)                     every op waits first; longer than the call's timeout: the
                                       call waits out the timeout and raises NodeTimeout
    node.corrupt_shard(key)            get_shard raises Corrupt until the shard is put again
    node.corrupt_record(key)           get_record raises Corrupt, scans list the key as corrupt
    node.hold(key, stamp, value)       store a record as is, ignoring last-writer-wins (stale data)
    node.scan_cap = 3                  record scans stop after 3 keys (as a node stops at its
                                       byte limit), whatever the caller's limit
    node.recover()                     clears fail and slow

Like the real pool, a timeout or unavailable node is suspect until it next answers (or
`suspect_seconds` pass); `pool.mark_suspect(id)` stands in for the health watch.
"""
from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Iterable, Mapping, Sequence

from common.nodeclient import (DEFAULT_TIMEOUT, SUSPECT_SECONDS, BadRequest, Corrupt, NodeError,
                               NodeTimeout, NodeUnavailable, NotFound, RecordPage,
                               RecordPutOutcome)
from gateway.cluster.catalog import Catalog
from gateway.cluster.datapath import DataPath
from gateway.cluster.hlc import HybridClock
from gateway.cluster.metastore import MetaStore
from gateway.cluster.quorum import Quorums, derive_quorums
from ring.builder import build_ring
from ring.model import Node, Ring

ALL_OPS = frozenset({"ping", "stats", "put_shard", "get_shard", "delete_shard", "scan_shards",
                     "put_record", "get_record", "delete_record", "scan_records"})


class FakeNodeClient:
    def __init__(self, node_id: str, *, timeout: float = DEFAULT_TIMEOUT,
                 on_outcome: Callable[[bool], None] | None = None) -> None:
        self.name = node_id
        self.address = f"fake://{node_id}"
        self.timeout = timeout
        self.records: dict[bytes, tuple[bytes, bytes]] = {}   # key -> (stamp, value)
        self.heads: dict[bytes, int] = {}                     # key -> head length, if not all
        self.shards: dict[bytes, bytes] = {}
        self.calls: list[tuple[str, bytes]] = []               # (op, key or prefix), in order
        self._on_outcome = on_outcome
        self._failure: type[NodeError] | None = None
        self._failing_ops: frozenset[str] = ALL_OPS
        self._delay = 0.0
        self._slow_ops: frozenset[str] = ALL_OPS
        self._corrupt_shards: set[bytes] = set()
        self._corrupt_records: set[bytes] = set()
        self.scan_cap: int | None = None

    # ---- fault injection --------------------------------------------------------------------
    def fail(self, kind: type[NodeError] = NodeUnavailable, ops: Iterable[str] | None = None) -> None:
        self._failure = kind
        self._failing_ops = ALL_OPS if ops is None else _known_ops(ops)

    def slow(self, seconds: float, ops: Iterable[str] | None = None) -> None:
        self._delay = seconds
        self._slow_ops = ALL_OPS if ops is None else _known_ops(ops)

    def recover(self) -> None:
        self._failure, self._delay = None, 0.0

    def corrupt_shard(self, key: bytes) -> None:
        if key not in self.shards:
            raise KeyError(f"{self.name} holds no shard {key!r}")
        self._corrupt_shards.add(key)

    def corrupt_record(self, key: bytes) -> None:
        if key not in self.records:
            raise KeyError(f"{self.name} holds no record {key!r}")
        self._corrupt_records.add(key)

    def hold(self, key: bytes, stamp: bytes, value: bytes, head: int | None = None) -> None:
        self.records[key] = (bytes(stamp), bytes(value))
        if head is None:
            self.heads.pop(key, None)
        else:
            self.heads[key] = head
        self._corrupt_records.discard(key)

    # ---- the NodeClient surface ---------------------------------------------------------------
    async def __aenter__(self) -> FakeNodeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def ping(self, *, timeout: float | None = None) -> dict[str, Any]:
        await self._enter("ping", b"", timeout)
        return {"node_id": self.name}

    async def stats(self, *, timeout: float | None = None) -> dict[str, Any]:
        await self._enter("stats", b"", timeout)
        return {"node_id": self.name, "shards": len(self.shards), "records": len(self.records)}

    async def put_shard(self, key: bytes, data: bytes | memoryview, *,
                        timeout: float | None = None) -> None:
        await self._enter("put_shard", key, timeout)
        self.shards[bytes(key)] = bytes(data)
        self._corrupt_shards.discard(key)

    async def get_shard(self, key: bytes, offset: int = 0, length: int | None = None, *,
                        timeout: float | None = None) -> bytes:
        await self._enter("get_shard", key, timeout)
        if key not in self.shards:
            raise NotFound(f"{self.name}: no shard {key!r}")
        if key in self._corrupt_shards:
            raise Corrupt(f"{self.name}: shard {key!r} fails its checksum")
        data = self.shards[key]
        if offset < 0 or (length is not None and length < 0) or offset > len(data):
            raise BadRequest(f"{self.name}: bad slice {offset}+{length} of {len(data)} bytes")
        return data[offset:] if length is None else data[offset:offset + length]

    async def delete_shard(self, key: bytes, *, timeout: float | None = None) -> bool:
        await self._enter("delete_shard", key, timeout)
        self._corrupt_shards.discard(key)
        return self.shards.pop(key, None) is not None

    async def scan_shards(self, prefix: bytes, start: bytes | None = None, limit: int = 1000, *,
                          timeout: float | None = None) -> tuple[list[tuple[bytes, int]], bool]:
        await self._enter("scan_shards", prefix, timeout)
        keys, more = _scan(self.shards, prefix, start, limit)
        return [(k, len(self.shards[k])) for k in keys], more

    async def put_record(self, key: bytes, stamp: bytes, value: bytes, *, head: int | None = None,
                         want_replaced: bool = False,
                         timeout: float | None = None) -> RecordPutOutcome:
        await self._enter("put_record", key, timeout)
        current = self.records.get(key)
        if current is not None and key not in self._corrupt_records and stamp <= current[0]:
            return RecordPutOutcome(False, current[0])
        replaced = current if want_replaced and key not in self._corrupt_records else None
        self.hold(key, stamp, value, head)
        return RecordPutOutcome(True, bytes(stamp), replaced)

    async def get_record(self, key: bytes, *, timeout: float | None = None) -> tuple[bytes, bytes]:
        await self._enter("get_record", key, timeout)
        if key not in self.records:
            raise NotFound(f"{self.name}: no record {key!r}")
        if key in self._corrupt_records:
            raise Corrupt(f"{self.name}: record {key!r} fails its checksum")
        return self.records[key]

    async def delete_record(self, key: bytes, stamp: bytes | None = None, *,
                            timeout: float | None = None) -> bool:
        await self._enter("delete_record", key, timeout)
        current = self.records.get(key)
        if current is None:
            return False
        if stamp is not None and (key in self._corrupt_records or current[0] > stamp):
            return False
        del self.records[key]
        self._corrupt_records.discard(key)
        return True

    async def scan_records(self, prefix: bytes, start: bytes | None = None, limit: int = 1000, *,
                           heads: bool = False, timeout: float | None = None) -> RecordPage:
        await self._enter("scan_records", prefix, timeout)
        cap = limit if self.scan_cap is None else min(limit, self.scan_cap)
        keys, more = _scan(self.records, prefix, start, cap)
        items = [(k, s, v[:self.heads.get(k, len(v))] if heads else v)
                 for k in keys if k not in self._corrupt_records for s, v in (self.records[k],)]
        return RecordPage(items, more, [k for k in keys if k in self._corrupt_records])

    # ---- machinery ----------------------------------------------------------------------------
    async def _enter(self, op: str, key: bytes, timeout: float | None) -> None:
        self.calls.append((op, bytes(key)))
        timeout = self.timeout if timeout is None else timeout
        if self._delay and op in self._slow_ops:
            if self._delay > timeout:
                await asyncio.sleep(timeout)
                self._report(False)
                raise NodeTimeout(f"{self.name}: no reply to {op} within {timeout:g} s (fake)")
            await asyncio.sleep(self._delay)
        if self._failure is not None and op in self._failing_ops:
            if issubclass(self._failure, (NodeTimeout, NodeUnavailable)):
                self._report(False)
            raise self._failure(f"{self.name}: {op} failed (fake {self._failure.__name__})")
        self._report(True)

    def _report(self, ok: bool) -> None:
        if self._on_outcome is not None:
            self._on_outcome(ok)


def _known_ops(ops: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(ops)
    if not chosen <= ALL_OPS:
        raise ValueError(f"unknown ops {sorted(chosen - ALL_OPS)}")
    return chosen


def _scan(store: Mapping[bytes, object], prefix: bytes, start: bytes | None, limit: int
          ) -> tuple[list[bytes], bool]:
    """Up to `limit` keys under prefix from start (inclusive); more if another key follows."""
    ordered = sorted(store)
    first = prefix if start is None or start < prefix else start
    out: list[bytes] = []
    for key in ordered[bisect.bisect_left(ordered, first):]:
        if not key.startswith(prefix):
            break
        if len(out) >= limit:
            return out, True
        out.append(key)
    return out, False


class FakeNodePool:
    """The NodePool surface over FakeNodeClients, with the same suspect memory."""

    def __init__(self, node_ids: Iterable[str], *, timeout: float = DEFAULT_TIMEOUT,
                 suspect_seconds: float = SUSPECT_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._timeout = timeout
        self._suspect_seconds = suspect_seconds
        self._clock = clock
        self._suspect_until: dict[str, float] = {}
        self._clients: dict[str, FakeNodeClient] = {}
        for node_id in node_ids:
            self._add(node_id)

    def _add(self, node_id: str) -> None:
        self._clients[node_id] = FakeNodeClient(
            node_id, timeout=self._timeout, on_outcome=lambda ok, n=node_id: self._outcome(n, ok))

    async def __aenter__(self) -> FakeNodePool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def update(self, addresses: Mapping[str, str]) -> None:
        for node_id in list(self._clients):
            if node_id not in addresses:
                del self._clients[node_id]
                self._suspect_until.pop(node_id, None)
        for node_id in addresses:
            if node_id not in self._clients:
                self._add(node_id)

    def __getitem__(self, node_id: str) -> FakeNodeClient:
        return self._clients[node_id]

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._clients

    def node_ids(self) -> list[str]:
        return list(self._clients)

    def is_suspect(self, node_id: str) -> bool:
        until = self._suspect_until.get(node_id)
        return until is not None and self._clock() < until

    def prefer_healthy(self, node_ids: Sequence[str]) -> list[str]:
        return sorted(node_ids, key=self.is_suspect)

    def mark_suspect(self, node_id: str) -> None:
        self._outcome(node_id, False)

    def _outcome(self, node_id: str, ok: bool) -> None:
        if ok:
            self._suspect_until.pop(node_id, None)
        else:
            self._suspect_until[node_id] = self._clock() + self._suspect_seconds

    # ---- test conveniences ----------------------------------------------------------------------
    def clients(self) -> list[FakeNodeClient]:
        return list(self._clients.values())

    def shard_count(self) -> int:
        return sum(len(c.shards) for c in self._clients.values())

    def record_copies(self, key: bytes) -> dict[str, tuple[bytes, bytes]]:
        return {n: c.records[key] for n, c in self._clients.items() if key in c.records}


# ---- a whole gateway-side cluster over fake nodes ------------------------------------------------
def fake_ring(nodes: int = 6, zones: int = 3, k: int = 4, m: int = 2, part_power: int = 4,
              seed: int = 1) -> Ring:
    members = [Node(f"n{i}", f"fake://n{i}", f"z{i % zones}") for i in range(nodes)]
    return build_ring(members, k=k, m=m, part_power=part_power, seed=seed)


@dataclass
class FakeCluster:
    ring: Ring
    quorums: Quorums
    pool: FakeNodePool
    clock: HybridClock
    meta: MetaStore
    catalog: Catalog
    data: DataPath
    repairs: list[tuple[bytes, int, int, str]]   # (data id, stripe, shard, why) from repair_hint

    def replicas(self, partition: bytes) -> list[FakeNodeClient]:
        return [self.pool[n] for n in self.meta.replicas(partition)]

    def gateway(self, clock: HybridClock) -> Catalog:
        """Another gateway's catalog over the same nodes, with its own clock."""
        return Catalog(MetaStore(self.pool, lambda: self.ring, self.quorums, timeout=1.0), clock)


@contextlib.asynccontextmanager
async def fake_cluster(*, nodes: int = 6, zones: int = 3, k: int = 4, m: int = 2,
                       stripe_size: int = 1024, timeout: float = 1.0,
                       straggler_grace: float = 0.05, window: int = 3, data_write: int | None = None,
                       clock: HybridClock | None = None) -> AsyncIterator[FakeCluster]:
    ring = fake_ring(nodes, zones, k, m)
    quorums = derive_quorums(k, m, data_write)
    pool = FakeNodePool([n.id for n in ring.nodes], timeout=timeout)
    clock = clock or HybridClock()
    meta = MetaStore(pool, lambda: ring, quorums, timeout=timeout)
    repairs: list[tuple[bytes, int, int, str]] = []
    with ThreadPoolExecutor(max_workers=2) as executor:
        data = DataPath(pool, lambda: ring, quorums, executor, stripe_size=stripe_size,
                        window=window, timeout=timeout, straggler_grace=straggler_grace,
                        repair_hint=lambda ref, s, i, why: repairs.append((ref.data_id, s, i, why)))
        try:
            yield FakeCluster(ring, quorums, pool, clock, meta, Catalog(meta, clock), data, repairs)
        finally:
            await data.close()
            await meta.close()


class BytesSource:
    """A StripeSource over bytes, handing them out in pieces of at most `piece` bytes per read
    (as a socket would); counts the reads."""

    def __init__(self, data: bytes, piece: int | None = None) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._piece = piece
        self.reads = 0

    async def readexactly_or_eof(self, n: int) -> bytes:
        self.reads += 1
        out = bytearray()
        while len(out) < n and self._pos < len(self._data):
            take = min(n - len(out), self._piece or n, len(self._data) - self._pos)
            out += self._data[self._pos:self._pos + take]
            self._pos += take
            await asyncio.sleep(0)
        return bytes(out)


async def settle(condition: Callable[[], bool], *, seconds: float = 2.0) -> bool:
    """Let background tasks run until `condition()` holds (True) or `seconds` pass (False)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.005)
    return True
