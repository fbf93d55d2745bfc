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
BUCKET_READ_CACHE_SECONDS = 1.0


@dataclass
class RequestContext:
    request: web.Request
    endpoint: Endpoint
    auth: Any                 # sigv4.AuthResult
    services: "Services"
    request_id: str

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

    async def bucket_record(self, need: str) -> BucketRecord:
        # Reads may use a bucket record up to a second old; writes always read it afresh, so
        # nothing is ever written into a bucket deleted through another gateway. A cached record
        # that would deny access is re-read: a new grant works at once, a revoked one within 1 s.
        catalog = self.services.catalog
        rec = None
        if need == READ:
            rec = await catalog.get_bucket(self.bucket, max_age=BUCKET_READ_CACHE_SECONDS)
            if rec is not None and not may(rec, self.access_key, need):
                rec = None
        if rec is None:
            rec = await catalog.get_bucket(self.bucket)
        if rec is None:
            raise errors.NoSuchBucket(resource=f"/{self.bucket}", BucketName=self.bucket)
        self.check_access(rec, need)
        return rec

    async def bucket_and_object(self, need: str, key: str | None = None):
        """The bucket record (permission checked) and the object's newest record, read
        concurrently: two quorum reads for the latency of one."""
        found_task = asyncio.ensure_future(
            self.services.catalog.get_object(self.bucket, self.key if key is None else key))
        try:
            bucket = await self.bucket_record(need)
            return bucket, await found_task
        finally:
            found_task.cancel()

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
