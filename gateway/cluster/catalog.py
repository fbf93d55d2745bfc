"""Buckets, access keys and object records on top of the quorum metadata store.

Every mutation first reads the current record from a read quorum and issues a stamp strictly
greater than what it saw (see hlc.py), then writes with the write quorum: that write is the one
visible commit point of the operation.
"""
from __future__ import annotations

import logging
import time
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import AsyncIterator

from gateway.cluster.hlc import HybridClock
from gateway.cluster.metastore import MetaStore, Versioned
from gateway.cluster.records import (ACCESS_KEY_PREFIX, BUCKET_PREFIX, SYSTEM_PARTITION,
                                     AccessKeyRecord, BucketRecord, ObjectHead, ObjectRecord,
                                     access_key_key,
                                     bucket_key, bucket_partition, object_key,
                                     object_key_is_hashed, object_key_stem, object_prefix)

log = logging.getLogger("cairn.catalog")

SCAN_PAGE = 1000


@dataclass(frozen=True)
class StoredObject:
    record: ObjectRecord
    stamp: bytes

    def seen_in(self, incarnation: int) -> StoredObject:
        """As the bucket with this created_ns sees it: a record written into an earlier bucket
        of the same name reads as a tombstone (its stamp kept, so a write still orders after it)."""
        if self.record.belongs_to(incarnation):
            return self
        return StoredObject(ObjectRecord.tombstone(self.record.mtime_ns), self.stamp)


class Catalog:
    def __init__(self, meta: MetaStore, clock: HybridClock, *, key_cache_ttl: float = 5.0):
        self._meta = meta
        self._clock = clock
        self._key_cache: dict[str, tuple[float, AccessKeyRecord | None]] = {}
        self._key_cache_ttl = key_cache_ttl
        self._bucket_cache: dict[str, tuple[float, BucketRecord]] = {}

    @property
    def meta(self) -> MetaStore:
        return self._meta

    @property
    def clock(self) -> HybridClock:
        return self._clock

    # ---- access keys ------------------------------------------------------------------------
    async def get_access_key(self, access_key: str) -> AccessKeyRecord | None:
        """Cached for a few seconds so that authenticating a request costs no round trip;
        a deleted key stops working within key_cache_ttl on every gateway."""
        now = time.monotonic()
        hit = self._key_cache.get(access_key)
        if hit is not None and now - hit[0] < self._key_cache_ttl:
            return hit[1]
        found = await self._meta.get(SYSTEM_PARTITION, access_key_key(access_key))
        rec = None
        if found is not None:
            rec = AccessKeyRecord.decode(found.value)
            if rec.deleted:
                rec = None
        if rec is not None or len(self._key_cache) < 10_000:
            self._key_cache[access_key] = (now, rec)
        return rec

    def cached_secret(self, access_key: str) -> str | None:
        hit = self._key_cache.get(access_key)
        return hit[1].secret_key if hit and hit[1] else None

    async def put_access_key(self, rec: AccessKeyRecord) -> None:
        await self._write(SYSTEM_PARTITION, access_key_key(rec.access_key), rec.encode())
        self._key_cache.pop(rec.access_key, None)

    async def list_access_keys(self) -> list[AccessKeyRecord]:
        return await self._live_system_records(ACCESS_KEY_PREFIX, AccessKeyRecord.decode)

    async def _live_system_records(self, prefix: bytes, decode):
        """Every record under prefix in the system partition that is not a tombstone."""
        return [rec async for _, v in self._meta.scan_all(SYSTEM_PARTITION, prefix)
                if not (rec := decode(v.value)).deleted]

    # ---- buckets ----------------------------------------------------------------------------
    async def get_bucket(self, name: str, *, max_age: float = 0.0) -> BucketRecord | None:
        """The bucket's record from a read quorum; with max_age > 0, a record this gateway read
        less than max_age seconds ago will do (read-only requests: a revoked grant or a deleted,
        necessarily empty, bucket is noticed within max_age). Absent buckets are never cached."""
        if max_age > 0:
            hit = self._bucket_cache.get(name)
            if hit is not None and time.monotonic() - hit[0] < max_age:
                return hit[1]
        found = await self._meta.get(SYSTEM_PARTITION, bucket_key(name))
        rec = BucketRecord.decode(found.value) if found is not None else None
        if rec is None or rec.deleted:
            self._bucket_cache.pop(name, None)
            return None
        if len(self._bucket_cache) >= 10_000:
            self._bucket_cache.clear()
        self._bucket_cache[name] = (time.monotonic(), rec)
        return rec

    async def put_bucket(self, rec: BucketRecord) -> None:
        self._bucket_cache.pop(rec.name, None)
        await self._write(SYSTEM_PARTITION, bucket_key(rec.name), rec.encode())

    async def delete_bucket(self, rec: BucketRecord) -> None:
        self._bucket_cache.pop(rec.name, None)
        await self._write(SYSTEM_PARTITION, bucket_key(rec.name), replace(rec, deleted=True).encode())

    async def list_buckets(self) -> list[BucketRecord]:
        return await self._live_system_records(BUCKET_PREFIX, BucketRecord.decode)

    # ---- objects ----------------------------------------------------------------------------
    async def get_object(self, bucket: str, key: str, *, incarnation: int | None = None
                         ) -> StoredObject | None:
        """The newest record, tombstones included (callers check .record.deleted). With the
        bucket's incarnation (its created_ns), a record written into an earlier bucket of this
        name reads as a tombstone (with its stamp, so a write still orders after it)."""
        found = await self._meta.get(bucket_partition(bucket), object_key(bucket, key))
        if found is None:
            return None
        self._clock.observe(found.stamp)
        rec = ObjectRecord.decode(found.value)
        if rec.key is not None and rec.key != key:  # a hashed record key that is another key's
            return None
        stored = StoredObject(rec, found.stamp)
        return stored if incarnation is None else stored.seen_in(incarnation)

    async def commit_object(self, bucket: str, key: str, rec: ObjectRecord,
                            seen: StoredObject | None) -> bytes:
        """The commit point of a PUT/COPY/DELETE: returns the stamp written."""
        if object_key_is_hashed(bucket, key):
            rec = replace(rec, key=key)  # the record key holds only a prefix and a hash of it
        stamp = self._clock.stamp_after(seen.stamp if seen else None)
        previous = Versioned(seen.stamp, seen.record.encode()) if seen else None
        await self._meta.put(bucket_partition(bucket), object_key(bucket, key), rec.encode(), stamp,
                             previous)
        return stamp

    async def commit_object_unread(self, bucket: str, key: str, rec: ObjectRecord
                                   ) -> StoredObject | None:
        """The commit point of a write that did not read the object first (an unconditional
        PUT): one round of messages instead of two. Returns the version it replaced, if any,
        so that its data can be retired."""
        if object_key_is_hashed(bucket, key):
            rec = replace(rec, key=key)
        _, replaced = await self._meta.put_unread(bucket_partition(bucket), object_key(bucket, key),
                                                  rec.encode(), self._clock.stamp_after)
        if replaced is None:
            return None
        old = ObjectRecord.decode(replaced.value)
        return StoredObject(old, replaced.stamp)

    async def scan_objects(self, bucket: str, prefix: str, start_after: str | None,
                           limit: int, *, incarnation: int | None = None
                           ) -> tuple[list[tuple[str, ObjectHead]], bool]:
        """One page of live objects with keys > start_after, in key (UTF-8 byte) order; `more`
        if the scan stopped early. Tombstones (and, given the bucket's incarnation, records from
        an earlier bucket of this name) are skipped and do not count toward limit.
        Only the records' heads are read: what a listing shows, not inline bytes or parts."""
        base = object_prefix(bucket)
        stem = object_key_stem(bucket)
        want = prefix.encode("utf-8", "surrogateescape")
        after = None if start_after is None else start_after.encode("utf-8", "surrogateescape")
        # Record keys keep at most `stem` bytes of a long key: scan from there and filter.
        scan_prefix = base + want[:stem]
        start = scan_prefix
        if after is not None:
            resume = base + after + b"\x00" if len(after) <= stem else base + after[:stem]
            start = max(start, resume)
        out: list[tuple[str, ObjectHead]] = []
        records = self._object_records(bucket, scan_prefix, start, min(SCAN_PAGE, limit + 16))
        async with aclosing(records):
            async for key, rec in records:
                if rec.deleted or (incarnation is not None and not rec.belongs_to(incarnation)) \
                        or not key.startswith(want) or (after is not None and key <= after):
                    continue
                out.append((key.decode("utf-8", "surrogateescape"), rec))
                if len(out) >= limit:
                    return out, True
        return out, False

    async def _object_records(self, bucket: str, scan_prefix: bytes, start: bytes, page_size: int
                              ) -> AsyncIterator[tuple[bytes, ObjectHead]]:
        """(full key, record) from `start` on, in key order. Record keys longer than the stem
        that share it may be out of order (see records.object_key): each such run is sorted."""
        base = object_prefix(bucket)
        stem_end = len(base) + object_key_stem(bucket)
        run: list[tuple[bytes, ObjectHead]] = []
        run_stem: bytes | None = None
        while True:
            page, more = await self._meta.scan(bucket_partition(bucket), scan_prefix, start,
                                               page_size, heads=True)
            for rkey, v in page:
                rec = ObjectHead.decode(v.value)
                key = rkey[len(base):] if rec.key is None else rec.key.encode("utf-8", "surrogateescape")
                if len(rkey) > stem_end and rkey[:stem_end] == run_stem:
                    run.append((key, rec))
                    continue
                for item in sorted(run, key=lambda item: item[0]):
                    yield item
                run.clear()
                run_stem = rkey[:stem_end] if len(rkey) > stem_end else None
                if run_stem is None:
                    yield key, rec
                else:
                    run.append((key, rec))
            if not more or not page:
                break
            start = page[-1][0] + b"\x00"
        for item in sorted(run, key=lambda item: item[0]):
            yield item

    async def _write(self, partition: bytes, key: bytes, value: bytes) -> None:
        seen = await self._meta.get(partition, key)
        stamp = self._clock.stamp_after(seen.stamp if seen else None)
        await self._meta.put(partition, key, value, stamp, seen)
