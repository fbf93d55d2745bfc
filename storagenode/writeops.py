"""The four kinds of write, each applied inside a write transaction chosen by the store.

An op holds what it needs (zmq frames included, as memoryviews) until the writer thread applies
it; `apply` must only touch the transaction it is given, so any batch of ops can share one.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping, Protocol

import lmdb

from common.wire import RecordPutOutcome
from storagenode import layout

log = logging.getLogger(__name__)


class WriteOp(Protocol):
    frees_space: bool

    def apply(self, txn: lmdb.Transaction, dbs: Mapping[str, lmdb._Database]) -> object: ...


def _short(key: bytes) -> str:
    return repr(key if len(key) <= 40 else key[:40] + b"...")


@dataclass(frozen=True, eq=False)
class ShardPut:
    key: bytes
    digest: bytes                     # checked against the data by the caller
    data: bytes | memoryview
    frees_space = False

    def apply(self, txn: lmdb.Transaction, dbs: Mapping[str, lmdb._Database]) -> None:
        # A shard key names immutable bytes, so a repeated put rewrites the same value (and
        # repairs a corrupt copy).
        txn.put(self.key, b"".join((layout.shard_header(self.digest), self.data)),
                db=dbs["shards"])

    def __str__(self) -> str:
        return f"shard put {_short(self.key)} ({len(self.data)} bytes)"


@dataclass(frozen=True)
class ShardDelete:
    key: bytes
    frees_space = True

    def apply(self, txn: lmdb.Transaction, dbs: Mapping[str, lmdb._Database]) -> bool:
        return txn.delete(self.key, db=dbs["shards"])

    def __str__(self) -> str:
        return f"shard delete {_short(self.key)}"


@dataclass(frozen=True, eq=False)
class RecordPut:
    """Last-writer-wins: applied only if the stamp is strictly newer (bytewise) than the stored
    one; an equal stamp is an idempotent no-op. With want_replaced, the outcome carries the
    record the put replaced, so a writer that did not read first can still retire it."""
    key: bytes
    stamp: bytes
    value: bytes | memoryview
    head_len: int | None = None       # None: the whole value is its head
    want_replaced: bool = False
    frees_space = False

    def apply(self, txn: lmdb.Transaction, dbs: Mapping[str, lmdb._Database]
              ) -> RecordPutOutcome:
        stored = txn.get(self.key, db=dbs["records"])
        replaced = None
        if stored is not None:
            try:
                current, value = layout.decode_record(stored)
            except layout.CorruptValue:
                log.warning("replacing corrupt record %s", _short(self.key))
            else:
                if self.stamp <= current:
                    return RecordPutOutcome(False, current)
                if self.want_replaced:
                    replaced = (current, value)
        txn.put(self.key, layout.encode_record(self.stamp, self.value, self.head_len),
                db=dbs["records"])
        return RecordPutOutcome(True, self.stamp, replaced)

    def __str__(self) -> str:
        return f"record put {_short(self.key)} ({len(self.value)} bytes)"


@dataclass(frozen=True)
class RecordDelete:
    """Physical removal. With a stamp, only if the stored record is that old or older (garbage
    collection of tombstones must not remove a newer write). A corrupt record is kept by a
    conditional delete: its stamp cannot be compared, and repair will rewrite it.
    Returns (existed, deleted)."""
    key: bytes
    stamp: bytes | None = None
    frees_space = True

    def apply(self, txn: lmdb.Transaction, dbs: Mapping[str, lmdb._Database]
              ) -> tuple[bool, bool]:
        db = dbs["records"]
        stored = txn.get(self.key, db=db)
        if stored is None:
            return False, False
        if self.stamp is not None:
            try:
                current, _ = layout.decode_record(stored)
            except layout.CorruptValue:
                return True, False
            if current > self.stamp:
                return True, False
        return True, txn.delete(self.key, db=db)

    def __str__(self) -> str:
        return f"record delete {_short(self.key)}"
