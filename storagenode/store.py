"""The node's LMDB environment: shards, records and a little metadata, all checksummed.

Named databases:
    meta     format version and node id; a data dir of another format or node is refused
    shards   key -> layout shard value (immutable erasure-coded bytes)
    records  key -> layout record value (last-writer-wins registers, e.g. object metadata)

Reads run in any thread under a shared lock; all writes go through `write_batch`, called from a
single writer thread (see groupcommit.py), which commits one transaction per batch. Growing the
map needs every transaction of the process closed, so the writer takes the lock exclusively for it.
"""
from __future__ import annotations

import logging
import shutil
import struct
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, NamedTuple

import lmdb

from storagenode import layout
from storagenode.writeops import WriteOp

log = logging.getLogger(__name__)

FORMAT_VERSION = 1          # of the environment: which named dbs exist (values carry their own)
_FORMAT = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_PAGE = 4096
_MIN_RESERVE = 64 << 10
_MAX_RESERVE = 64 << 20


class StoreError(Exception):
    """Base of the errors a request can get from the store."""


class NotFoundError(StoreError):
    pass


class CorruptError(StoreError):
    pass


class FullError(StoreError):
    pass


class FormatError(StoreError):
    """The data directory belongs to another format version or another node."""


class ShardRead(NamedTuple):
    size: int          # length of the whole shard
    digest: bytes      # its xxh3_128, as the writer sent it
    data: bytes        # the requested slice


class ShardPage(NamedTuple):
    keys: list[bytes]
    sizes: list[int]
    more: bool


@dataclass
class RecordPage:
    keys: list[bytes] = field(default_factory=list)
    stamps: list[bytes] = field(default_factory=list)
    values: list[bytes] = field(default_factory=list)
    corrupt: list[bytes] = field(default_factory=list)
    more: bool = False


class _ResizeLock:
    """Many transactions at once, or one map resize alone (writer preferred, so a resize is
    never starved by a steady stream of reads)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._resizing = False
        self._waiting = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._resizing or self._waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            while self._readers or self._resizing:
                self._cond.wait()
            self._waiting -= 1
            self._resizing = True
        try:
            yield
        finally:
            with self._cond:
                self._resizing = False
                self._cond.notify_all()


def delete_reserve(map_size_max: int) -> int:
    """Map space kept back from puts so that deletes (which copy pages on write) still fit
    when the store is full."""
    return min(max(map_size_max // 16, _MIN_RESERVE), _MAX_RESERVE) // _PAGE * _PAGE


class Store:
    def __init__(self, data_dir: Path, node_id: str, *, map_size: int, map_size_max: int,
                 sync: bool = True) -> None:
        self.data_dir = Path(data_dir)
        self.node_id = node_id
        self.map_size_max = map_size_max // _PAGE * _PAGE
        self._put_limit = max(self.map_size_max - delete_reserve(map_size_max), _PAGE * 16)
        self._lock = _ResizeLock()
        self._freed_since_tick = False
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._env = lmdb.open(str(self.data_dir), max_dbs=4, map_size=min(map_size, self._put_limit),
                              sync=sync, metasync=sync, writemap=False, readahead=True)
        try:
            self._meta = self._env.open_db(b"meta")
            self._shards = self._env.open_db(b"shards")
            self._records = self._env.open_db(b"records")
            self._check_identity()
        except BaseException:
            self._env.close()
            raise

    def close(self) -> None:
        self._env.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def max_key_size(self) -> int:
        return self._env.max_key_size()

    def _check_identity(self) -> None:
        with self._env.begin(write=True, db=self._meta) as txn:
            raw_version = txn.get(b"format_version")
            raw_node = txn.get(b"node_id")
            if raw_version is None:
                if txn.stat(self._shards)["entries"] or txn.stat(self._records)["entries"]:
                    raise FormatError(f"{self.data_dir} holds data but no format version")
                txn.put(b"format_version", _FORMAT.pack(FORMAT_VERSION))
                txn.put(b"node_id", self.node_id.encode())
                return
        version = _FORMAT.unpack(raw_version)[0] if len(raw_version) == _FORMAT.size else None
        if version != FORMAT_VERSION:
            raise FormatError(f"{self.data_dir}: data format version {version!r}, this node "
                              f"understands {FORMAT_VERSION}")
        stored_id = raw_node.decode(errors="replace") if raw_node is not None else None
        if stored_id != self.node_id:
            raise FormatError(f"{self.data_dir} belongs to node {stored_id!r}, not {self.node_id!r}")

    @contextmanager
    def _reading(self) -> Iterator[lmdb.Transaction]:
        with self._lock.shared(), self._env.begin(buffers=True) as txn:
            yield txn

    # ---- reads --------------------------------------------------------------------------------
    def shard_stored_len(self, key: bytes) -> int | None:
        """Length of the stored value, without checking it: cheap, to choose how to read it."""
        with self._reading() as txn:
            stored = txn.get(key, db=self._shards)
            return None if stored is None else len(stored)

    def get_shard(self, key: bytes, offset: int = 0, length: int | None = None) -> ShardRead:
        """The slice [offset, offset+length) of a shard, after checking the whole shard."""
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        with self._reading() as txn:
            stored = txn.get(key, db=self._shards)
            if stored is None:
                raise NotFoundError(f"no shard {key!r}")
            try:
                shard = layout.open_shard(stored)
            except layout.CorruptValue as exc:
                log.error("corrupt shard %r: %s", key, exc)
                raise CorruptError(f"shard {key!r}: {exc}") from None
            size = len(shard.data)
            if offset > size:
                raise ValueError(f"offset {offset} beyond the shard's {size} bytes")
            end = size if length is None else min(size, offset + length)
            return ShardRead(size, shard.digest, bytes(shard.data[offset:end]))

    def scan_shards(self, prefix: bytes, start: bytes | None, limit: int) -> ShardPage:
        """Keys (and data sizes) under prefix from start, ascending. Values are not checked here:
        garbage collection needs names and sizes, scrubbing checks contents."""
        keys: list[bytes] = []
        sizes: list[int] = []
        with self._reading() as txn:
            for key, stored in _prefix_items(txn.cursor(db=self._shards), prefix, start):
                if len(keys) >= limit:
                    return ShardPage(keys, sizes, True)
                keys.append(key)
                sizes.append(layout.stored_shard_size(len(stored)))
        return ShardPage(keys, sizes, False)

    def get_record(self, key: bytes) -> tuple[bytes, bytes]:
        with self._reading() as txn:
            stored = txn.get(key, db=self._records)
            if stored is None:
                raise NotFoundError(f"no record {key!r}")
            try:
                return layout.decode_record(stored)
            except layout.CorruptValue as exc:
                log.error("corrupt record %r: %s", key, exc)
                raise CorruptError(f"record {key!r}: {exc}") from None

    def scan_records(self, prefix: bytes, start: bytes | None, limit: int,
                     max_bytes: int = 16 << 20, *, heads: bool = False) -> RecordPage:
        """Up to `limit` records under prefix from start, ascending, stopping early (more=True)
        once `max_bytes` of values are collected. Corrupt records are listed by key only.
        With heads, each value is cut to its head (see layout); every record is still checked
        in full."""
        page = RecordPage()
        total = 0
        with self._reading() as txn:
            for key, stored in _prefix_items(txn.cursor(db=self._records), prefix, start):
                if len(page.keys) + len(page.corrupt) >= limit or total >= max_bytes:
                    page.more = True
                    break
                try:
                    stamp, value = layout.decode_record(stored, head_only=heads)
                except layout.CorruptValue as exc:
                    log.error("corrupt record %r: %s", key, exc)
                    page.corrupt.append(key)
                    continue
                page.keys.append(key)
                page.stamps.append(stamp)
                page.values.append(value)
                total += len(value)
        return page

    def stats(self) -> dict[str, int | str]:
        with self._reading() as txn:
            shards = txn.stat(self._shards)
            records = txn.stat(self._records)
            meta = txn.stat(self._meta)
            main = self._env.stat()
            info = self._env.info()
        pages = sum(s["branch_pages"] + s["leaf_pages"] + s["overflow_pages"]
                    for s in (shards, records, meta, main))
        psize = main["psize"]
        return {
            "node_id": self.node_id,
            "format_version": FORMAT_VERSION,
            "shards": shards["entries"],
            "records": records["entries"],
            "used_bytes": (pages + 2) * psize,          # + the two meta pages
            "file_bytes": (info["last_pgno"] + 1) * psize,
            "map_size": info["map_size"],
            "map_size_max": self.map_size_max,
            "disk_free_bytes": shutil.disk_usage(self.data_dir).free,
        }

    # ---- writes (single writer thread) ---------------------------------------------------------
    def write_batch(self, ops: list[WriteOp]) -> list[object]:
        """Apply ops in order in as few synced transactions as fit; one outcome per op: its
        result, or the StoreError that op failed with (others in the batch are unaffected)."""
        try:
            return self._commit_growing(ops)
        except lmdb.MapFullError:
            if len(ops) == 1:
                return [self._commit_one_full(ops[0])]
        except lmdb.DiskError as exc:          # ENOSPC: the filesystem, not the map, is full
            if len(ops) == 1:
                log.error("write %s failed: %s", ops[0], exc)
                return [FullError(f"disk full: {ops[0]} does not fit in {self.data_dir}")]
        except lmdb.Error as exc:
            if len(ops) == 1:
                log.error("write %s failed: %s", ops[0], exc)
                return [StoreError(f"{type(exc).__name__}: {exc}")]
        # Isolate the ops that cannot be written; the rest still commit in groups.
        half = len(ops) // 2
        return self.write_batch(ops[:half]) + self.write_batch(ops[half:])

    def _commit(self, ops: list[WriteOp]) -> list[object]:
        dbs = {"shards": self._shards, "records": self._records}
        with self._env.begin(write=True) as txn:
            results = [op.apply(txn, dbs) for op in ops]
        if any(op.frees_space for op in ops):
            self._freed_since_tick = True
        return results

    def _commit_growing(self, ops: list[WriteOp]) -> list[object]:
        while True:
            try:
                return self._commit(ops)
            except lmdb.MapFullError:
                if not (self._grow(self._put_limit) or self._tick()):
                    raise

    def _tick(self) -> bool:
        """Commit a tiny transaction if deletes ran since the last one. LMDB reuses the pages
        freed by transaction N only from N+2 on (the previous snapshot stays valid for crash
        safety), so without this a full store would refuse a put right after a delete made room."""
        if not self._freed_since_tick:
            return False
        self._freed_since_tick = False
        try:
            with self._env.begin(write=True, db=self._meta) as txn:
                count = txn.get(b"ticks")
                txn.put(b"ticks", _U64.pack((_U64.unpack(count)[0] if count else 0) + 1))
        except lmdb.MapFullError:
            return False
        return True

    def _commit_one_full(self, op: WriteOp) -> object:
        if op.frees_space:
            # Deletes may use the reserve; afterwards puts are held to the put limit again
            # (LMDB will not shrink the map below the pages in use).
            try:
                self._set_map_size(self.map_size_max)
                return self._commit([op])[0]
            except lmdb.MapFullError:
                pass
            finally:
                self._set_map_size(self._put_limit)
        return FullError(f"store full: the map is at its maximum of {self.map_size_max} bytes "
                         f"and {op} does not fit")

    def _grow(self, limit: int) -> bool:
        current = self._env.info()["map_size"]
        target = min(current * 2, limit) // _PAGE * _PAGE
        if target <= current:
            return False
        log.info("growing the LMDB map from %d to %d bytes", current, target)
        self._set_map_size(target)
        return True

    def _set_map_size(self, size: int) -> None:
        with self._lock.exclusive():
            self._env.set_mapsize(size)


def _prefix_items(cursor: lmdb.Cursor, prefix: bytes, start: bytes | None
                  ) -> Iterator[tuple[bytes, memoryview]]:
    first = prefix if start is None or start < prefix else start
    if not cursor.set_range(first):
        return
    for key, value in cursor:
        key = bytes(key)
        if not key.startswith(prefix):
            return
        yield key, value
