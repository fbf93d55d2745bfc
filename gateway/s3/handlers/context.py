"""What every S3 handler receives, and the permission checks they share."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.cluster.records import BucketRecord
from gateway.s3 import errors
from gateway.s3.router import Endpoint

if TYPE_CHECKING:
    from gateway.app import Services

READ, WRITE = "read", "write"
BUCKET_CACHE_SECONDS = 1.0


@dataclass
class RequestContext:
    request: web.Request
    endpoint: Endpoint
    auth: Any                 # sigv4.AuthResult
    services: "Services"
    request_id: str
    bucket_rec: BucketRecord | None = None     # set by bucket_record()

    @property
    def bucket(self) -> str:
        assert self.endpoint.bucket is not None
        return self.endpoint.bucket

    @property
    def key(self) -> str:
        assert self.endpoint.key is not None
        return self.endpoint.key

    @property
    def access_key(self) -> str:
        return self.auth.access_key

    @property
    def params(self):
        return self.endpoint.params

    @property
    def incarnation(self) -> int:
        """The request's bucket's created_ns (see bucket_record), which new object records
        carry and old ones are checked against."""
        assert self.bucket_rec is not None, "bucket_record() comes first"
        return self.bucket_rec.created_ns

    async def bucket_record(self, need: str, *, fresh: bool = False) -> BucketRecord:
        """The bucket's record, permission checked. It may be up to BUCKET_CACHE_SECONDS old
        (as MinIO's and RGW's bucket caches): a record that would deny access is re-read, so a
        new grant works at once and a revoked one within that time. A write through a gateway
        that has not yet seen the bucket deleted (and perhaps created again) lands in the old
        bucket's incarnation: object records carry their bucket's created_ns, and the records of
        an earlier incarnation are neither read nor listed (and `cairn gc` frees their data)."""
        catalog = self.services.catalog
        rec = None
        if not fresh:
            rec = await catalog.get_bucket(self.bucket, max_age=BUCKET_CACHE_SECONDS)
            if rec is not None and not may(rec, self.access_key, need):
                rec = None
        if rec is None:
            rec = await catalog.get_bucket(self.bucket)
        if rec is None:
            raise errors.NoSuchBucket(resource=f"/{self.bucket}", BucketName=self.bucket)
        self.check_access(rec, need)
        self.bucket_rec = rec
        return rec

    async def bucket_and_object(self, need: str, key: str | None = None):
        """The bucket record (permission checked) and the object's newest record, read
        concurrently: two quorum reads for the latency of one. An object record from an earlier
        bucket of this name reads as a tombstone (see bucket_record)."""
        found_task = asyncio.ensure_future(
            self.services.catalog.get_object(self.bucket, self.key if key is None else key))
        try:
            bucket = await self.bucket_record(need)
            found = await found_task
        finally:
            found_task.cancel()
        return bucket, None if found is None else found.seen_in(bucket.created_ns)

    def check_access(self, rec: BucketRecord, need: str) -> None:
        if not may(rec, self.access_key, need):
            raise errors.AccessDenied(resource=f"/{rec.name}")

    def require_owner(self, rec: BucketRecord) -> None:
        if rec.owner != self.access_key:
            raise errors.AccessDenied(resource=f"/{rec.name}")


def may(rec: BucketRecord, access_key: str, need: str) -> bool:
    if rec.owner == access_key:
        return True
    grant = rec.grants.get(access_key, "")
    return need in grant  # "read", "write" or "readwrite"
