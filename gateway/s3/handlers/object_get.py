"""GetObject and HeadObject: newest committed version, ranges, conditions, streamed stripes."""
from __future__ import annotations

from datetime import datetime

from aiohttp import web

from gateway.cluster.catalog import StoredObject
from gateway.cluster.records import ObjectRecord
from gateway.s3 import errors
from gateway.s3.checksums import checksum_type_of
from gateway.s3.handlers.context import READ, RequestContext
from gateway.s3.httpsemantics import RESPONSE_OVERRIDES, check_read_conditions, parse_range
from gateway.s3.router import Op
from gateway.s3.xml import http_date, utc_from_ns

SEND_SLICE = 1 << 20  # hand the transport at most 1 MiB at a time (backpressure, see figures.md)


def last_modified(rec: ObjectRecord) -> datetime:
    return utc_from_ns(rec.mtime_ns)


async def load_object(ctx: RequestContext, need: str = READ) -> StoredObject:
    _, found = await ctx.bucket_and_object(need)
    version = ctx.params.get("versionId")
    if version not in (None, "null"):
        raise errors.NoSuchVersion(resource=f"/{ctx.bucket}/{ctx.key}", Key=ctx.key, VersionId=version)
    if found is None or found.record.deleted:
        raise errors.NoSuchKey(resource=f"/{ctx.bucket}/{ctx.key}", Key=ctx.key)
    return found


def object_response_headers(ctx: RequestContext, rec: ObjectRecord) -> dict[str, str]:
    headers = {
        "ETag": f'"{rec.etag}"',
        "Last-Modified": http_date(last_modified(rec)),
        "Content-Type": rec.content_type,
        "Accept-Ranges": "bytes",
        **rec.headers,
    }
    for name, value in rec.user_meta.items():
        headers[f"x-amz-meta-{name}"] = value
    for param, header in RESPONSE_OVERRIDES.items():
        if param in ctx.request.query:
            headers[header] = ctx.request.query[param]
    return headers


def checksum_headers(ctx: RequestContext, rec: ObjectRecord, ranged: bool) -> dict[str, str]:
    if ranged or ctx.request.headers.get("x-amz-checksum-mode", "").upper() != "ENABLED":
        return {}
    headers = {f"x-amz-checksum-{alg.lower()}": value for alg, value in rec.checksums.items()}
    if rec.checksums:
        headers["x-amz-checksum-type"] = checksum_type_of(next(iter(rec.checksums.values())))
    return headers


def resolve_range(ctx: RequestContext, rec: ObjectRecord) -> tuple[int, int] | None:
    """The byte range to serve: from ?partNumber (a part of a multipart object) or Range."""
    part = ctx.params.get("partNumber")
    if part is not None:
        if "Range" in ctx.request.headers:
            raise errors.InvalidRequest("Cannot specify both Range header and partNumber query parameter.")
        extents = rec.extents()
        number = int(part)
        if number > len(extents):
            raise errors.InvalidPartNumber()
        if not rec.parts:
            return None  # a single-part object is its own part 1
        first = sum(e.size for e in extents[:number - 1])
        return first, first + extents[number - 1].size - 1
    return parse_range(ctx.request.headers.get("Range"), rec.size)


async def head_object(ctx: RequestContext) -> web.StreamResponse:
    found = await load_object(ctx)
    rec = found.record
    check_read_conditions(ctx.request.headers, rec.etag, last_modified(rec))
    rng = resolve_range(ctx, rec)
    headers = object_response_headers(ctx, rec)
    headers.update(checksum_headers(ctx, rec, rng is not None))
    if rng is None:
        headers["Content-Length"] = str(rec.size)
        status = 200
    else:
        headers["Content-Length"] = str(rng[1] - rng[0] + 1)
        headers["Content-Range"] = f"bytes {rng[0]}-{rng[1]}/{rec.size}"
        status = 206
    if "partNumber" in ctx.params:  # as S3: the count comes only with a part request
        headers["x-amz-mp-parts-count"] = str(len(rec.extents()))
    # No body is given, so aiohttp keeps the object's Content-Length on this HEAD response.
    return web.Response(status=status, headers=headers)


async def get_object(ctx: RequestContext) -> web.StreamResponse:
    found = await load_object(ctx)
    rec = found.record
    check_read_conditions(ctx.request.headers, rec.etag, last_modified(rec))
    rng = resolve_range(ctx, rec)
    first, last = rng if rng is not None else (0, rec.size - 1)
    headers = object_response_headers(ctx, rec)
    headers.update(checksum_headers(ctx, rec, rng is not None))
    status = 200 if rng is None else 206
    if "partNumber" in ctx.params:  # as S3: the count comes only with a part request
        headers["x-amz-mp-parts-count"] = str(len(rec.extents()))
    if rng is not None:
        headers["Content-Range"] = f"bytes {first}-{last}/{rec.size}"
    length = last - first + 1 if rec.size else 0

    if rec.inline is not None or length == 0:
        body = (rec.inline or b"")[first:last + 1] if length else b""
        return web.Response(status=status, body=body, headers=headers)

    stream = ctx.services.data.read_extents(rec.extents(), first, last)
    # Fetch the first stripe before answering, so "not enough nodes" is still a proper 503.
    try:
        chunk = await anext(stream)
    except StopAsyncIteration:
        chunk = b""
    resp = web.StreamResponse(status=status, headers=headers)
    resp.content_length = length
    await resp.prepare(ctx.request)
    sent = 0
    try:
        while True:
            view = memoryview(chunk)
            for off in range(0, len(view), SEND_SLICE):
                await resp.write(view[off:off + SEND_SLICE])
            sent += len(chunk)
            try:
                chunk = await anext(stream)
            except StopAsyncIteration:
                break
    except errors.S3Error:
        # Headers are gone: the only honest signal left is to cut the connection short, so
        # the client sees a truncated body instead of wrong bytes.
        ctx.request.transport and ctx.request.transport.abort()
        raise ConnectionResetError(f"object stream failed after {sent} bytes")
    finally:
        await stream.aclose()
    await resp.write_eof()
    return resp


HANDLERS = {Op.GetObject: get_object, Op.HeadObject: head_object}
