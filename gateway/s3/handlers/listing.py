"""ListObjects (v1) and ListObjectsV2: prefix, delimiter, markers and pagination.

The walk runs over the bucket's merged, quorum-read index (catalog.scan_objects), so a listing
reflects every write acknowledged before it started. Keys under a common prefix are skipped with
one seek instead of being read one by one.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from aiohttp import web

from gateway.cluster.catalog import Catalog
from gateway.s3 import errors
from gateway.s3.handlers.context import READ, RequestContext
from gateway.s3.router import Op
from gateway.s3.xml import (ObjectEntry, list_object_versions_xml, list_objects_v1_xml,
                            list_objects_v2_xml)

MAX_KEYS = 1000
# U+DCFF encodes (surrogateescape) to the byte 0xFF, which never occurs in UTF-8: every key that
# starts with P sorts before P + "\udcff".
PAST = "\udcff"


@dataclass
class Listing:
    entries: list[ObjectEntry]
    prefixes: list[str]
    truncated: bool
    last: str | None  # the last key or common prefix returned (the next marker)


def _skip_cursor(prefix: str, delimiter: str, marker: str | None) -> str | None:
    """Where to resume after `marker`: past the whole common prefix if the marker is one."""
    if marker is None or not delimiter or not marker.startswith(prefix):
        return marker
    rest = marker[len(prefix):]
    idx = rest.find(delimiter)
    if idx >= 0:
        return prefix + rest[:idx + len(delimiter)] + PAST
    return marker


async def walk(catalog: Catalog, bucket: str, prefix: str, delimiter: str, marker: str | None,
               max_keys: int, owner: str | None, *, incarnation: int | None = None) -> Listing:
    entries: list[ObjectEntry] = []
    prefixes: list[str] = []
    cursor = _skip_cursor(prefix, delimiter, marker)
    last = None
    while len(entries) + len(prefixes) < max_keys:
        want = max_keys - len(entries) - len(prefixes)
        page, more = await catalog.scan_objects(bucket, prefix, cursor, want,
                                                incarnation=incarnation)
        if not page:
            return Listing(entries, prefixes, False, last)
        for key, rec in page:
            if delimiter:
                idx = key.find(delimiter, len(prefix))
                if idx >= 0:
                    common = key[:idx + len(delimiter)]
                    prefixes.append(common)
                    last, cursor = common, common + PAST
                    break  # seek past everything under this prefix
            entries.append(ObjectEntry(
                key=key, mtime_ns=rec.mtime_ns,
                etag=rec.etag, size=rec.size, owner_id=owner, checksum_algorithm=None))
            last = cursor = key
            if len(entries) + len(prefixes) >= max_keys:
                break
        else:
            if not more:
                return Listing(entries, prefixes, False, last)
    if max_keys == 0:
        return Listing(entries, prefixes, False, last)
    probe, _ = await catalog.scan_objects(bucket, prefix, cursor, 1, incarnation=incarnation)
    return Listing(entries, prefixes, bool(probe), last)


def _max_keys(ctx: RequestContext) -> int:
    raw = ctx.params.get("max-keys")
    if raw is None:
        return MAX_KEYS
    try:
        value = int(raw)
    except ValueError:
        raise errors.InvalidArgument("Provided max-keys not an integer or within integer range",
                                     ArgumentName="max-keys", ArgumentValue=raw) from None
    if value < 0:
        raise errors.InvalidArgument("Argument maxKeys must be an integer between 0 and 2147483647",
                                     ArgumentName="max-keys", ArgumentValue=raw)
    return min(value, MAX_KEYS)


def _encoding(ctx: RequestContext) -> str | None:
    enc = ctx.params.get("encoding-type")
    if enc is not None and enc != "url":
        raise errors.InvalidArgument("Invalid Encoding Method specified in Request",
                                     ArgumentName="encoding-type", ArgumentValue=enc)
    return enc


def _listing_params(ctx: RequestContext) -> tuple[str, str, int, str | None]:
    """prefix, delimiter, max-keys and encoding-type: the parameters every listing shares."""
    return (ctx.params.get("prefix", ""), ctx.params.get("delimiter", ""), _max_keys(ctx),
            _encoding(ctx))


async def list_objects_v1(ctx: RequestContext) -> web.StreamResponse:
    bucket = await ctx.bucket_record(READ)
    prefix, delimiter, max_keys, encoding = _listing_params(ctx)
    marker = ctx.params.get("marker") or None
    result = await walk(ctx.services.catalog, ctx.bucket, prefix, delimiter, marker, max_keys,
                        owner=ctx.access_key,
                        incarnation=bucket.created_ns)
    body = list_objects_v1_xml(
        bucket=ctx.bucket, prefix=prefix, marker=marker or "", delimiter=delimiter or None,
        max_keys=max_keys, is_truncated=result.truncated,
        next_marker=result.last if (result.truncated and delimiter) else None,
        entries=result.entries, common_prefixes=result.prefixes, encoding_type=encoding)
    return web.Response(body=body, headers={"Content-Type": "application/xml"})


def _decode_token(token: str) -> str:
    try:
        # validate=True: the lenient default drops foreign characters, so "%%%" meant "from
        # the start" instead of an error
        return base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode(
            "utf-8", "surrogateescape")
    except (binascii.Error, ValueError):
        raise errors.InvalidArgument("The continuation token provided is incorrect",
                                     ArgumentName="continuation-token") from None


def _encode_token(cursor: str) -> str:
    return base64.urlsafe_b64encode(cursor.encode("utf-8", "surrogateescape")).decode()


async def list_objects_v2(ctx: RequestContext) -> web.StreamResponse:
    bucket = await ctx.bucket_record(READ)
    prefix, delimiter, max_keys, encoding = _listing_params(ctx)
    token = ctx.params.get("continuation-token")
    start_after = ctx.params.get("start-after") or None
    fetch_owner = ctx.params.get("fetch-owner", "false").lower() == "true"
    marker = _decode_token(token) if token else start_after
    result = await walk(ctx.services.catalog, ctx.bucket, prefix, delimiter, marker, max_keys,
                        owner=ctx.access_key if fetch_owner else None,
                        incarnation=bucket.created_ns)
    body = list_objects_v2_xml(
        bucket=ctx.bucket, prefix=prefix, delimiter=delimiter or None, max_keys=max_keys,
        is_truncated=result.truncated, key_count=len(result.entries) + len(result.prefixes),
        continuation_token=token,
        next_continuation_token=_encode_token(result.last) if result.truncated and result.last else None,
        start_after=start_after, entries=result.entries, common_prefixes=result.prefixes,
        encoding_type=encoding, fetch_owner=fetch_owner)
    return web.Response(body=body, headers={"Content-Type": "application/xml"})


async def list_object_versions(ctx: RequestContext) -> web.StreamResponse:
    """Buckets are unversioned: every object is listed as its single version "null"."""
    bucket = await ctx.bucket_record(READ)
    prefix, delimiter, max_keys, encoding = _listing_params(ctx)
    key_marker = ctx.params.get("key-marker") or None
    result = await walk(ctx.services.catalog, ctx.bucket, prefix, delimiter, key_marker, max_keys,
                        owner=ctx.access_key,
                        incarnation=bucket.created_ns)
    body = list_object_versions_xml(
        bucket=ctx.bucket, prefix=prefix, key_marker=key_marker or "",
        version_id_marker=ctx.params.get("version-id-marker", ""),
        next_key_marker=result.last if result.truncated else None, max_keys=max_keys,
        delimiter=delimiter or None, is_truncated=result.truncated, encoding_type=encoding,
        entries=result.entries, common_prefixes=result.prefixes)
    return web.Response(body=body, headers={"Content-Type": "application/xml"})


HANDLERS = {Op.ListObjects: list_objects_v1, Op.ListObjectsV2: list_objects_v2,
            Op.ListObjectVersions: list_object_versions}
