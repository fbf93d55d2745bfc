"""CopyObject: COPY or REPLACE metadata, conditional on the source, self-copy with REPLACE.

A copy to another key re-encodes the bytes under a new data id, so each version owns its shards
and retiring one never touches another's. A self-copy with REPLACE changes only the record and
keeps the same shards (rclone's metadata-only update).
"""
from __future__ import annotations

import time
from aiohttp import web

from gateway.cluster.records import ObjectRecord
from gateway.s3 import errors
from gateway.s3.checksums import BodyDigests, ChecksumAlgorithm
from gateway.s3.handlers.context import READ, WRITE, RequestContext
from gateway.s3.handlers.object_get import last_modified
from gateway.s3.handlers.object_put import etag_of, object_headers, retire
from gateway.s3.httpsemantics import check_read_conditions, check_write_conditions
from gateway.s3.router import Op, parse_copy_source
from gateway.s3.xml import copy_object_result_xml


class _StripeFeed:
    """Presents a GET stream of the source as the stripe source of a new write."""

    def __init__(self, chunks):
        self._chunks = chunks
        self._buf = b""
        self._eof = False

    async def readexactly_or_eof(self, n: int) -> bytes:
        while len(self._buf) < n and not self._eof:
            try:
                self._buf += await anext(self._chunks)
            except StopAsyncIteration:
                self._eof = True
        out, self._buf = self._buf[:n], self._buf[n:]
        return out


async def copy_object(ctx: RequestContext) -> web.StreamResponse:
    catalog = ctx.services.catalog
    headers = ctx.request.headers
    source = parse_copy_source(headers["x-amz-copy-source"])
    src_bucket, src_key, src_version = source.bucket, source.key, source.version_id
    src_bucket_rec = await catalog.get_bucket(src_bucket)
    if src_bucket_rec is None:
        raise errors.NoSuchBucket(resource=f"/{src_bucket}", BucketName=src_bucket)
    ctx.check_access(src_bucket_rec, READ)
    await ctx.bucket_record(WRITE)
    src = await catalog.get_object(src_bucket, src_key, incarnation=src_bucket_rec.created_ns)
    if src_version not in (None, "null"):
        raise errors.NoSuchVersion(Key=src_key, VersionId=src_version)
    if src is None or src.record.deleted:
        raise errors.NoSuchKey(resource=f"/{src_bucket}/{src_key}", Key=src_key)
    rec = src.record
    check_read_conditions(headers, rec.etag, last_modified(rec), prefix="x-amz-copy-source-")

    directive = headers.get("x-amz-metadata-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise errors.InvalidArgument("Unknown metadata directive.", ArgumentName="x-amz-metadata-directive")
    same = (src_bucket, src_key) == (ctx.bucket, ctx.key)
    # A storage class on the request is a change of its own, applied whatever the directive says:
    # rclone's settier copies an object onto itself with COPY and x-amz-storage-class, which S3 allows.
    storage_class = headers.get("x-amz-storage-class")
    if same and directive == "COPY" and storage_class is None:
        raise errors.InvalidRequest("This copy request is illegal because it is trying to copy an "
                                    "object to itself without changing the object's metadata, "
                                    "storage class, website redirect location or encryption attributes.")
    if directive == "REPLACE":
        content_type, stored, meta = object_headers(ctx.request)
    else:
        content_type, stored, meta = rec.content_type, rec.headers, rec.user_meta
        if storage_class is not None:
            stored = {**stored, "x-amz-storage-class": storage_class}

    dest = src if same else await catalog.get_object(ctx.bucket, ctx.key,
                                                     incarnation=ctx.incarnation)
    check_write_conditions(headers, etag_of(dest))
    inline, ref, parts = rec.inline, rec.data, rec.parts
    etag, checksums = rec.etag, rec.checksums
    if not same and inline is None:
        # The copy is a new single-part object: S3 gives it the MD5 ETag and whole-object
        # checksums of its bytes, also when the source was uploaded in parts ("...-N").
        digests = BodyDigests(also_compute=[ChecksumAlgorithm(name) for name in rec.checksums])
        parts = ()
        if rec.size == 0:
            inline = b""
        else:
            chunks = ctx.services.data.read_extents(rec.extents(), 0, rec.size - 1)
            try:
                ref, _ = await ctx.services.data.write(b"", _StripeFeed(chunks), digests.update)
            finally:
                await chunks.aclose()
        etag, checksums = digests.finish()
    new = ObjectRecord(size=rec.size, etag=etag, mtime_ns=time.time_ns(),
                       content_type=content_type, headers=stored, user_meta=meta,
                       checksums=checksums, inline=inline, data=ref, parts=parts,
                       bucket_ns=ctx.incarnation)
    try:
        await catalog.commit_object(ctx.bucket, ctx.key, new, dest)
    except BaseException:
        if ref is not None and ref is not rec.data:
            ctx.services.data.forget(ref, -(-rec.size // ref.stripe_size))
        raise
    retire(ctx, dest, new)
    body = copy_object_result_xml(etag, last_modified(new))
    return web.Response(body=body, headers={"Content-Type": "application/xml"})


HANDLERS = {Op.CopyObject: copy_object}
