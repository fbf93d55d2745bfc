"""DeleteObject (idempotent) and DeleteObjects (up to 1000 keys, hardened XML, digest required)."""
from __future__ import annotations

import asyncio
import time

from aiohttp import web

from gateway.cluster.records import ObjectRecord
from gateway.s3 import errors
from gateway.s3.checksums import BodyDigests
from gateway.s3.handlers.context import WRITE, RequestContext
from gateway.s3.handlers.object_put import retire
from gateway.s3.payload import PayloadReader
from gateway.s3.router import Op
from gateway.s3.xml import delete_result_xml, parse_delete_objects

DELETE_BODY_LIMIT = 2 * 1024 * 1024
DELETE_CONCURRENCY = 16


async def delete_key(ctx: RequestContext, key: str) -> None:
    catalog = ctx.services.catalog
    found = await catalog.get_object(ctx.bucket, key, incarnation=ctx.incarnation)
    if found is None or found.record.deleted:
        return  # deleting what is not there succeeds, as in S3
    tomb = ObjectRecord.tombstone(time.time_ns())
    await catalog.commit_object(ctx.bucket, key, tomb, found)
    retire(ctx, found, tomb)


async def delete_object(ctx: RequestContext) -> web.StreamResponse:
    await ctx.bucket_record(WRITE)
    await delete_key(ctx, ctx.key)
    return web.Response(status=204)


async def read_small_body(ctx: RequestContext, limit: int) -> bytes:
    """A small (XML) body, whole and verified against its signed SHA-256. The aws-chunked
    streaming modes are refused here: S3 allows them only for PutObject and UploadPart."""
    length = ctx.request.content_length
    if length is not None and length > limit:
        raise errors.MalformedXML(f"The request body is larger than {limit} bytes.")
    reader = PayloadReader.for_request(ctx.request.content, ctx.request.headers, ctx.auth,
                                       streaming_allowed=False)
    # Read to EOF (or past the limit): a single read() may return only the first TCP segment.
    body = await reader.readexactly_or_eof(limit + 1)
    if len(body) > limit:
        raise errors.MalformedXML(f"The request body is larger than {limit} bytes.")
    return body


async def delete_objects(ctx: RequestContext) -> web.StreamResponse:
    await ctx.bucket_record(WRITE)
    headers = ctx.request.headers
    if "Content-MD5" not in headers and not any(h.lower().startswith("x-amz-checksum-")
                                                for h in headers if h.lower() != "x-amz-checksum-mode"):
        raise errors.InvalidRequest("Missing required header for this request: Content-MD5")
    body = await read_small_body(ctx, DELETE_BODY_LIMIT)
    digests = BodyDigests.from_headers(headers)
    digests.update(body)
    digests.finish({})
    quiet, keys = parse_delete_objects(body)
    gate = asyncio.Semaphore(DELETE_CONCURRENCY)

    async def one(key: str, version: str | None):
        async with gate:
            try:
                if version not in (None, "null"):
                    raise errors.NoSuchVersion()
                await delete_key(ctx, key)
                return key, version, None
            except errors.S3Error as exc:
                return key, version, exc

    results = await asyncio.gather(*(one(k, v) for k, v in keys))
    deleted = [(k, v) for k, v, e in results if e is None]
    failed = [(k, e.code, e.detail) for k, v, e in results if e is not None]
    return web.Response(body=delete_result_xml(deleted, failed, quiet),
                        headers={"Content-Type": "application/xml"})


HANDLERS = {Op.DeleteObject: delete_object, Op.DeleteObjects: delete_objects}
