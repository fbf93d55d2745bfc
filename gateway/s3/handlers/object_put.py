"""PutObject: stream the body into stripes (or inline), verify every digest, then commit once."""
from __future__ import annotations


from aiohttp import web

from gateway.cluster.catalog import StoredObject
from gateway.cluster.records import DataRef, ObjectRecord
from gateway.s3 import errors
from gateway.s3.checksums import BodyDigests
from gateway.s3.handlers.context import WRITE, RequestContext
from gateway.s3.httpsemantics import check_write_conditions, stored_headers, user_metadata
from gateway.s3.payload import PayloadReader, stored_content_encoding
from gateway.s3.router import Op


def etag_of(found: StoredObject | None) -> str | None:
    return found.record.etag if found is not None and not found.record.deleted else None


def object_headers(request: web.Request) -> tuple[str, dict[str, str], dict[str, str]]:
    headers = request.headers
    content_type = headers.get("Content-Type") or "binary/octet-stream"
    stored = stored_headers(headers)
    encoding = stored_content_encoding(stored.pop("Content-Encoding", None))
    if encoding:
        stored["Content-Encoding"] = encoding
    return content_type, stored, user_metadata(headers)


def check_length(request: web.Request, reader: PayloadReader, limit: int) -> None:
    length = reader.decoded_length
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if length is None and not chunked:
        raise errors.MissingContentLength()
    if length is not None and length > limit:
        raise errors.EntityTooLarge(ProposedSize=str(length), MaxSizeAllowed=str(limit))


async def store_body(ctx: RequestContext, reader: PayloadReader, digests: BodyDigests
                     ) -> tuple[int, bytes | None, DataRef | None]:
    """Read the whole body into inline bytes or erasure-coded stripes; verify length."""
    cfg = ctx.services.config
    first = await reader.readexactly_or_eof(cfg.inline_threshold + 1)
    if len(first) <= cfg.inline_threshold:
        digests.update(first)
        inline, ref, size = first, None, len(first)
    else:
        ref, size = await ctx.services.data.write(first, reader, digests.update)
        inline = None
    try:
        if await reader.read(1):  # reaching EOF is what runs the final framing/signature checks
            raise errors.IncompleteBody("The body is longer than its declared length.")
        if size > cfg.max_object_size:
            raise errors.EntityTooLarge()
    except BaseException:
        if ref is not None:
            ctx.services.data.forget(ref, -(-size // ref.stripe_size))
        raise
    return size, inline, ref


async def put_object(ctx: RequestContext) -> web.StreamResponse:
    request = ctx.request
    catalog = ctx.services.catalog
    content_type, stored, meta = object_headers(request)
    reader = PayloadReader.for_request(request.content, request.headers, ctx.auth,
                                       streaming_allowed=True)
    check_length(request, reader, ctx.services.config.max_object_size)
    digests = BodyDigests.from_headers(request.headers)
    conditional = "If-None-Match" in request.headers or "If-Match" in request.headers
    found = None
    if conditional:   # fail before any upload if the condition already fails
        _, found = await ctx.bucket_and_object(WRITE)
        check_write_conditions(request.headers, etag_of(found))
    else:             # the commit learns what it replaces (Catalog.commit_object_unread)
        await ctx.bucket_record(WRITE)
    size, inline, ref = await store_body(ctx, reader, digests)
    try:
        etag, checksums = digests.finish(reader.trailers)
        rec = ObjectRecord(size=size, etag=etag, mtime_ns=catalog.clock.wall_ns(),
                           content_type=content_type,
                           headers=stored, user_meta=meta, checksums=checksums, inline=inline,
                           data=ref, bucket_ns=ctx.incarnation)
        if conditional:  # the body took time: check again right before the commit point
            found = await catalog.get_object(ctx.bucket, ctx.key, incarnation=ctx.incarnation)
            check_write_conditions(request.headers, etag_of(found))
            await catalog.commit_object(ctx.bucket, ctx.key, rec, found)
        else:
            found = await catalog.commit_object_unread(ctx.bucket, ctx.key, rec)
    except BaseException:
        if ref is not None:
            ctx.services.data.forget(ref, -(-size // ref.stripe_size))
        raise
    retire(ctx, found, rec)
    headers = {"ETag": f'"{etag}"'}
    for alg, value in checksums.items():
        headers[f"x-amz-checksum-{alg.lower()}"] = value
    return web.Response(status=200, headers=headers)


def retire(ctx: RequestContext, old: StoredObject | None, new: ObjectRecord) -> None:
    """Forget the replaced version's shards after a grace period (readers streaming it finish).
    Pieces the new version still uses (a self-copy keeps its data) are kept."""
    if old is None or old.record.deleted:
        return
    kept = {e.data.data_id for e in new.extents() if e.data is not None}
    ctx.services.data.forget_extents_later(
        e for e in old.record.extents() if e.data is not None and e.data.data_id not in kept)


HANDLERS = {Op.PutObject: put_object}
