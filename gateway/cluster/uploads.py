"""Multipart uploads in the replicated metadata: upload records and part records.

An upload is an UploadRecord (state open/completing/completed/aborted) plus one PartRef record per part
number; re-uploading a part number replaces its record (last writer wins by stamp). Completing
an upload writes the object record that refers to the chosen parts' data: that object write is
the single commit point, and no byte is copied again.
"""
from __future__ import annotations

from typing import AsyncIterator

from gateway.cluster.hlc import HybridClock
from gateway.cluster.metastore import MetaStore
from gateway.cluster.records import (UPLOAD_LISTED, PartRef, UploadRecord, bucket_partition,
                                     decode_part, encode_part, part_key, part_prefix, upload_key,
                                     upload_prefix)



class Uploads:
    def __init__(self, meta: MetaStore, clock: HybridClock):
        self._meta = meta
        self._clock = clock

    async def _write(self, bucket: str, rkey: bytes, value: bytes) -> None:
        partition = bucket_partition(bucket)
        seen = await self._meta.get(partition, rkey)
        await self._meta.put(partition, rkey, value, self._clock.stamp_after(seen.stamp if seen else None))

    async def put_upload(self, bucket: str, rec: UploadRecord) -> None:
        await self._write(bucket, upload_key(bucket, rec.key, rec.upload_id), rec.encode())

    async def get_upload(self, bucket: str, key: str, upload_id: str) -> UploadRecord | None:
        found = await self._meta.get(bucket_partition(bucket), upload_key(bucket, key, upload_id))
        return UploadRecord.decode(found.value) if found is not None else None

    async def put_part(self, bucket: str, upload_id: str, part: PartRef) -> PartRef | None:
        """Store a part's record; returns the part it replaced (to forget its data), if any."""
        partition = bucket_partition(bucket)
        rkey = part_key(bucket, upload_id, part.number)
        seen = await self._meta.get(partition, rkey)
        await self._meta.put(partition, rkey, encode_part(part),
                             self._clock.stamp_after(seen.stamp if seen else None))
        if seen is None:
            return None
        old, deleted = decode_part(seen.value)
        return None if deleted else old

    async def drop_part(self, bucket: str, upload_id: str, part: PartRef) -> None:
        await self._write(bucket, part_key(bucket, upload_id, part.number), encode_part(part, deleted=True))

    async def parts(self, bucket: str, upload_id: str, after: int = 0) -> AsyncIterator[PartRef]:
        prefix = part_prefix(bucket, upload_id)
        start = prefix + b"%05d" % (after + 1) if after else prefix
        async for _, v in self._meta.scan_all(bucket_partition(bucket), prefix, start):
            part, deleted = decode_part(v.value)
            if not deleted:
                yield part

    async def uploads(self, bucket: str, prefix: str, start_after: bytes | None
                      ) -> AsyncIterator[tuple[bytes, UploadRecord]]:
        """Open uploads whose key starts with prefix, in (key, upload id) order, after a raw
        record key cursor."""
        base = upload_prefix(bucket)
        scan_prefix = base + prefix.encode("utf-8", "surrogateescape")
        start = scan_prefix if start_after is None else max(scan_prefix, start_after + b"\x00")
        async for rkey, v in self._meta.scan_all(bucket_partition(bucket), scan_prefix, start):
            rec = UploadRecord.decode(v.value)
            if rec.state in UPLOAD_LISTED:
                yield rkey, rec
