"""Multipart uploads: create, upload part (every payload mode), upload part copy, complete,
abort, list parts, list uploads.

Parts are erasure-coded and stored as they arrive, under the same durability rules as objects.
Complete writes one object record that refers to the parts' data (nothing is copied again):
that record is the upload's single commit point.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
import time
import uuid

from aiohttp import web

from gateway.cluster.records import (UPLOAD_ABORTED, UPLOAD_COMPLETED, UPLOAD_COMPLETING,
                                     UPLOAD_LISTED, UPLOAD_OPEN, ObjectRecord, PartRef,
                                     UploadRecord, upload_key, upload_prefix)
from gateway.s3 import errors
from gateway.s3.checksums import (BodyDigests, ChecksumAlgorithm, multipart_checksum,
                                  multipart_checksum_type)
from gateway.s3.handlers.context import READ, WRITE, RequestContext
from gateway.s3.handlers.copy import _StripeFeed
from gateway.s3.handlers.object_delete import read_small_body
from gateway.s3.handlers.object_get import last_modified
from gateway.s3.handlers.object_put import (check_length, etag_of, object_headers, retire,
                                            store_body)
from gateway.s3.httpsemantics import check_read_conditions, check_write_conditions
from gateway.s3.payload import PayloadReader
from gateway.s3.router import Op, parse_copy_source
from gateway.s3.xml import (PartEntry, UploadEntry, complete_multipart_xml, copy_part_result_xml,
                            initiate_multipart_xml, list_multipart_uploads_xml, list_parts_xml,
                            parse_complete_multipart, utc_from_ns)

XML = {"Content-Type": "application/xml"}
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_SIZE = 5 * 1024 * 1024 * 1024
_COPY_RANGE = re.compile(r"bytes=(\d{1,19})-(\d{1,19})")


async def open_upload(ctx: RequestContext, need: str = WRITE,
                      states: tuple[str, ...] = (UPLOAD_OPEN,)) -> UploadRecord:
    await ctx.bucket_record(need)
    upload_id = ctx.params.get("uploadId", "")
    rec = await ctx.services.uploads.get_upload(ctx.bucket, ctx.key, upload_id)
    if rec is None or rec.state not in states:
        raise errors.NoSuchUpload(resource=f"/{ctx.bucket}/{ctx.key}", UploadId=upload_id)
    return rec


def _no_such_upload(ctx: RequestContext) -> errors.S3Error:
    return errors.NoSuchUpload(resource=f"/{ctx.bucket}/{ctx.key}", UploadId=ctx.params.get("uploadId", ""))


async def create_upload(ctx: RequestContext) -> web.StreamResponse:
    await ctx.bucket_record(WRITE)
    content_type, stored, meta = object_headers(ctx.request)
    algorithm = ctx.request.headers.get("x-amz-checksum-algorithm")
    checksum_type = ctx.request.headers.get("x-amz-checksum-type")
    if algorithm is not None:
        parsed = ChecksumAlgorithm.parse(algorithm, header="x-amz-checksum-algorithm")
        algorithm, checksum_type = parsed.value, multipart_checksum_type(parsed, checksum_type)
    elif checksum_type is not None:
        raise errors.InvalidRequest("The x-amz-checksum-type header can only be used with the "
                                    "x-amz-checksum-algorithm header.")
    upload_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    rec = UploadRecord(upload_id=upload_id, key=ctx.key, initiated_ns=time.time_ns(),
                       owner=ctx.access_key, content_type=content_type, headers=stored,
                       user_meta=meta, checksum_algorithm=algorithm, checksum_type=checksum_type)
    await ctx.services.uploads.put_upload(ctx.bucket, rec)
    headers = dict(XML)
    if algorithm:
        headers["x-amz-checksum-algorithm"] = algorithm
        headers["x-amz-checksum-type"] = checksum_type
    return web.Response(body=initiate_multipart_xml(ctx.bucket, ctx.key, upload_id), headers=headers)


async def _save_part(ctx: RequestContext, upload: UploadRecord, part: PartRef) -> None:
    """Write the part record, then look at the upload again: it may have been closed while the
    body was arriving, and a close only drops the part records it saw.

    - still open: the part this one replaced is forgotten. No Complete can be using it: a
      Complete marks the upload completing before it lists the parts, so it lists this one.
    - completing: a Complete in flight may have chosen the replaced part, or may choose this
      one; nothing is forgotten here (its close lists the parts again and forgets the unused).
    - aborted: this part is garbage; its record is dropped and its data forgotten.
    - completed: the record is dropped; the data is left to garbage collection, which sees
      whether the new object refers to it.
    A failed record write forgets nothing either: the record may still have reached a replica.
    """
    uploads = ctx.services.uploads
    old = await uploads.put_part(ctx.bucket, upload.upload_id, part)
    now = await uploads.get_upload(ctx.bucket, upload.key, upload.upload_id)
    state = now.state if now is not None else UPLOAD_ABORTED
    if state in (UPLOAD_ABORTED, UPLOAD_COMPLETED):
        await uploads.drop_part(ctx.bucket, upload.upload_id, part)
        if state == UPLOAD_ABORTED:
            ctx.services.data.forget_extents_later([part], delay=0)
        raise _no_such_upload(ctx)
    replaced = old is not None and old.data is not None and (
        part.data is None or old.data.data_id != part.data.data_id)
    if replaced and state == UPLOAD_OPEN:
        ctx.services.data.forget_extents_later([old])


async def upload_part(ctx: RequestContext) -> web.StreamResponse:
    upload = await open_upload(ctx)
    number = int(ctx.params["partNumber"])
    reader = PayloadReader.for_request(ctx.request.content, ctx.request.headers, ctx.auth,
                                       streaming_allowed=True)
    check_length(ctx.request, reader, MAX_PART_SIZE)
    extra = [ChecksumAlgorithm.parse(upload.checksum_algorithm)] if upload.checksum_algorithm else []
    digests = BodyDigests.from_headers(ctx.request.headers, also_compute=extra)
    size, inline, ref = await store_body(ctx, reader, digests)
    try:
        etag, checksums = digests.finish(reader.trailers)
        part = PartRef(number=number, size=size, etag=etag, mtime_ns=time.time_ns(),
                       checksums=checksums, inline=inline, data=ref)
    except BaseException:
        if ref is not None:
            ctx.services.data.forget(ref, -(-size // ref.stripe_size))
        raise
    await _save_part(ctx, upload, part)  # from here on the part record owns the data
    headers = {"ETag": f'"{etag}"'}
    for alg, value in checksums.items():
        headers[f"x-amz-checksum-{alg.lower()}"] = value
    return web.Response(headers=headers)


async def upload_part_copy(ctx: RequestContext) -> web.StreamResponse:
    upload = await open_upload(ctx)
    number = int(ctx.params["partNumber"])
    source = parse_copy_source(ctx.request.headers["x-amz-copy-source"])
    catalog = ctx.services.catalog
    src_bucket = await catalog.get_bucket(source.bucket)
    if src_bucket is None:
        raise errors.NoSuchBucket(BucketName=source.bucket)
    ctx.check_access(src_bucket, READ)
    found = await catalog.get_object(source.bucket, source.key, incarnation=src_bucket.created_ns)
    if source.version_id not in (None, "null"):
        raise errors.NoSuchVersion(Key=source.key, VersionId=source.version_id)
    if found is None or found.record.deleted:
        raise errors.NoSuchKey(Key=source.key)
    rec = found.record
    check_read_conditions(ctx.request.headers, rec.etag, last_modified(rec), prefix="x-amz-copy-source-")
    first, last = 0, rec.size - 1
    range_header = ctx.request.headers.get("x-amz-copy-source-range")
    if range_header is not None:
        first, last = _copy_source_range(range_header, rec.size)
    size = max(0, last - first + 1)
    if size > MAX_PART_SIZE:
        raise errors.EntityTooLarge()
    # A copied part gets the upload's checksum like an uploaded one, or Complete could not
    # compute the object's composite checksum.
    extra = [ChecksumAlgorithm.parse(upload.checksum_algorithm)] if upload.checksum_algorithm else []
    digests = BodyDigests(also_compute=extra)
    if size <= ctx.services.config.inline_threshold:
        chunks = [c async for c in ctx.services.data.read_extents(rec.extents(), first, last)] if size else []
        inline, ref = b"".join(chunks), None
        digests.update(inline)
    else:
        stream = ctx.services.data.read_extents(rec.extents(), first, last)
        try:
            ref, _ = await ctx.services.data.write(b"", _StripeFeed(stream), digests.update)
        finally:
            await stream.aclose()
        inline = None
    etag, checksums = digests.finish({})
    part = PartRef(number=number, size=size, etag=etag, mtime_ns=time.time_ns(),
                   checksums=checksums, inline=inline, data=ref)
    await _save_part(ctx, upload, part)
    return web.Response(body=copy_part_result_xml(etag, utc_from_ns(part.mtime_ns), checksums), headers=XML)


def _copy_source_range(header: str, size: int) -> tuple[int, int]:
    """x-amz-copy-source-range: exactly `bytes=first-last`, inside the source (no suffix or
    open-ended forms, and unlike a GET Range, no clamping of `last` to the object's end)."""
    match = _COPY_RANGE.fullmatch(header.strip())
    if match is None:
        raise errors.InvalidArgument("The x-amz-copy-source-range value must be of the form "
                                     "bytes=first-last where first and last are the zero-based "
                                     "offsets of the first and last bytes to copy",
                                     ArgumentName="x-amz-copy-source-range", ArgumentValue=header)
    first, last = int(match.group(1)), int(match.group(2))
    if first > last or last >= size:
        raise errors.InvalidArgument(f"Range specified is not valid for source object of size: {size}",
                                     ArgumentName="x-amz-copy-source-range", ArgumentValue=header)
    return first, last


def upload_checksum_type(upload: UploadRecord) -> str | None:
    if upload.checksum_algorithm is None:
        return None
    # Records written before checksum types existed get the algorithm's default.
    return upload.checksum_type or multipart_checksum_type(ChecksumAlgorithm(upload.checksum_algorithm), None)


def object_checksums(upload: UploadRecord, parts: list[PartRef]) -> dict[str, str]:
    """{algorithm: the object's FULL_OBJECT or COMPOSITE checksum}, from the parts' checksums."""
    name = upload.checksum_algorithm
    if name is None or not all(name in p.checksums for p in parts):
        return {}
    pieces = [(p.checksums[name], p.size) for p in parts]
    return {name: multipart_checksum(ChecksumAlgorithm(name), upload_checksum_type(upload), pieces)}


def _check_complete_headers(headers, upload: UploadRecord, rec: ObjectRecord) -> None:
    """What CompleteMultipartUpload may assert about the whole object: its checksum type, its
    checksum (for FULL_OBJECT, the client's own CRC of the whole object) and its size."""
    kind = headers.get("x-amz-checksum-type")
    if kind is not None and kind.strip().upper() != upload_checksum_type(upload):
        raise errors.InvalidRequest(f"The upload was created with checksum type "
                                    f"{upload_checksum_type(upload)}, not {kind}.")
    for algorithm in ChecksumAlgorithm:
        declared = headers.get(algorithm.header)
        if declared is None:
            continue
        if algorithm.value not in rec.checksums:
            raise errors.InvalidRequest(f"The upload was not created with the {algorithm.value} "
                                        f"checksum algorithm.")
        if declared.strip() != rec.checksums[algorithm.value]:
            raise errors.BadDigest(f"The {algorithm.header} you specified did not match the "
                                   f"calculated checksum.")
    size = headers.get("x-amz-mp-object-size")
    if size is not None and size.strip() != str(rec.size):
        raise errors.InvalidRequest(f"The provided x-amz-mp-object-size {size} does not match the "
                                    f"object size {rec.size}.")


async def complete_upload(ctx: RequestContext) -> web.StreamResponse:
    # Completing too: a Complete that died half-way is retried (or aborted) by the client.
    upload = await open_upload(ctx, states=UPLOAD_LISTED)
    body = await read_small_body(ctx, 4 * 1024 * 1024)
    wanted = parse_complete_multipart(body)
    # Marked before the parts are listed: a part stored concurrently then sees that this
    # Complete may be using the part it replaced (see _save_part).
    await _set_state(ctx, upload, UPLOAD_COMPLETING)
    try:
        rec, chosen = await _assemble(ctx, upload, wanted)
        _check_complete_headers(ctx.request.headers, upload, rec)
        catalog = ctx.services.catalog
        found = await catalog.get_object(ctx.bucket, ctx.key, incarnation=ctx.incarnation)
        check_write_conditions(ctx.request.headers, etag_of(found))
    except errors.S3Error:
        await _set_state(ctx, upload, upload.state)  # the client may fix its list and try again
        raise
    await catalog.commit_object(ctx.bucket, ctx.key, rec, found)  # the commit point
    retire(ctx, found, rec)
    await _close_upload(ctx, upload, UPLOAD_COMPLETED, keep={p.data.data_id for p in chosen if p.data})
    location = f"/{ctx.bucket}/{ctx.key}"
    headers = dict(XML)
    for alg, value in rec.checksums.items():
        headers[f"x-amz-checksum-{alg.lower()}"] = value
    body = complete_multipart_xml(location, ctx.bucket, ctx.key, rec.etag, rec.checksums,
                                  upload_checksum_type(upload) if rec.checksums else None)
    return web.Response(body=body, headers=headers)


async def _assemble(ctx: RequestContext, upload: UploadRecord, wanted: list[tuple[int, str, dict[str, str]]]
                    ) -> tuple[ObjectRecord, list[PartRef]]:
    """The object record made of the listed parts, each checked against what was stored."""
    stored = {p.number: p async for p in ctx.services.uploads.parts(ctx.bucket, upload.upload_id)}
    chosen: list[PartRef] = []
    for i, (number, etag, sums) in enumerate(wanted):
        part = stored.get(number)
        if part is None or part.etag != etag:
            raise errors.InvalidPart(f"Part {number} was not uploaded or its ETag does not match.",
                                     PartNumber=str(number), ETag=etag)
        for alg, value in sums.items():
            if part.checksums.get(alg) != value:
                raise errors.InvalidPart(f"The checksum of part {number} does not match.",
                                         PartNumber=str(number))
        if i < len(wanted) - 1 and part.size < MIN_PART_SIZE:
            raise errors.EntityTooSmall(ProposedSize=str(part.size), MinSizeAllowed=str(MIN_PART_SIZE),
                                        PartNumber=str(number), ETag=etag)
        chosen.append(part)
    md5s = b"".join(bytes.fromhex(p.etag) for p in chosen)
    etag = f"{hashlib.md5(md5s).hexdigest()}-{len(chosen)}"
    rec = ObjectRecord(size=sum(p.size for p in chosen), etag=etag, mtime_ns=time.time_ns(),
                       content_type=upload.content_type, headers=upload.headers,
                       user_meta=upload.user_meta, checksums=object_checksums(upload, chosen),
                       parts=tuple(chosen), bucket_ns=ctx.incarnation)
    return rec, chosen


async def _set_state(ctx: RequestContext, upload: UploadRecord, state: str) -> None:
    await ctx.services.uploads.put_upload(ctx.bucket, dataclasses.replace(upload, state=state))


async def _close_upload(ctx: RequestContext, upload: UploadRecord, state: str,
                        keep: set[bytes] | None) -> None:
    """Mark the upload closed, then drop every part record and forget the data not in `keep`
    (None: forget nothing, garbage collection decides). The parts are listed after the mark,
    so a part stored meanwhile is either listed here or sees the mark itself (_save_part)."""
    uploads = ctx.services.uploads
    await _set_state(ctx, upload, state)
    parts = [p async for p in uploads.parts(ctx.bucket, upload.upload_id)]
    for part in parts:
        await uploads.drop_part(ctx.bucket, upload.upload_id, part)
    if keep is not None:
        ctx.services.data.forget_extents_later(
            [p for p in parts if p.data is not None and p.data.data_id not in keep], delay=0)


async def _abort(ctx: RequestContext, upload: UploadRecord) -> None:
    # After an interrupted Complete the object may already refer to the parts: then the records
    # go, and garbage collection (which reads the object records) decides about the data.
    keep = None if upload.state == UPLOAD_COMPLETING else set()
    await _close_upload(ctx, upload, UPLOAD_ABORTED, keep=keep)


async def abort_upload(ctx: RequestContext) -> web.StreamResponse:
    await _abort(ctx, await open_upload(ctx, states=UPLOAD_LISTED))
    return web.Response(status=204)


async def abort_all_uploads(ctx: RequestContext) -> None:
    """Abort every upload in progress in the bucket: DeleteBucket (S3 drops them with it; left
    behind, they would reappear in a bucket created again under the same name)."""
    for upload in [rec async for _, rec in ctx.services.uploads.uploads(ctx.bucket, "", None)]:
        await _abort(ctx, upload)


async def list_parts(ctx: RequestContext) -> web.StreamResponse:
    upload = await open_upload(ctx, READ, states=UPLOAD_LISTED)
    marker = int(ctx.params.get("part-number-marker") or 0)
    max_parts = min(int(ctx.params.get("max-parts") or 1000), 1000)
    parts: list[PartRef] = []
    truncated = False
    async for part in ctx.services.uploads.parts(ctx.bucket, upload.upload_id, after=marker):
        if len(parts) == max_parts:
            truncated = True
            break
        parts.append(part)
    entries = [PartEntry(part_number=p.number, last_modified=utc_from_ns(p.mtime_ns), etag=p.etag, size=p.size,
                         checksums=p.checksums) for p in parts]
    body = list_parts_xml(ctx.bucket, ctx.key, upload.upload_id, owner_id=upload.owner,
                          part_number_marker=marker,
                          next_part_number_marker=parts[-1].number if parts else None,
                          max_parts=max_parts, is_truncated=truncated, parts=entries,
                          checksum_algorithm=upload.checksum_algorithm,
                          checksum_type=upload_checksum_type(upload))
    return web.Response(body=body, headers=XML)


async def list_uploads(ctx: RequestContext) -> web.StreamResponse:
    await ctx.bucket_record(READ)
    p = ctx.params
    prefix, delimiter = p.get("prefix", ""), p.get("delimiter", "")
    key_marker, id_marker = p.get("key-marker", ""), p.get("upload-id-marker", "")
    max_uploads = min(int(p.get("max-uploads") or 1000), 1000)
    cursor = None
    if key_marker:
        marker = upload_prefix(ctx.bucket) + key_marker.encode("utf-8", "surrogateescape")
        if delimiter and key_marker.startswith(prefix) and key_marker.endswith(delimiter):
            # A common prefix returned by an earlier page: skip every key under it (0xFF never
            # occurs in UTF-8, so it sorts after all of them).
            cursor = marker + b"\xff"
        elif id_marker:
            cursor = upload_key(ctx.bucket, key_marker, id_marker)
        else:  # every upload of key_marker itself is skipped
            cursor = marker + b"\x00\xff"
    entries: list[UploadEntry] = []
    prefixes: list[str] = []
    last_was_prefix = False
    truncated = False
    async for _, rec in ctx.services.uploads.uploads(ctx.bucket, prefix, cursor):
        common = None
        if delimiter:
            idx = rec.key.find(delimiter, len(prefix))
            if idx >= 0:
                common = rec.key[:idx + len(delimiter)]
        if common is not None and prefixes and prefixes[-1] == common:
            continue
        if len(entries) + len(prefixes) == max_uploads:
            truncated = max_uploads > 0  # like max-keys=0: an empty, untruncated page
            break
        last_was_prefix = common is not None
        if common is not None:
            prefixes.append(common)
        else:
            entries.append(UploadEntry(key=rec.key, upload_id=rec.upload_id, initiated=utc_from_ns(rec.initiated_ns),
                                       owner_id=rec.owner, checksum_algorithm=rec.checksum_algorithm))
    # The next page starts after whatever this one listed last: an upload, or a common prefix.
    next_key = next_id = None
    if truncated:
        next_key, next_id = (prefixes[-1], None) if last_was_prefix else (entries[-1].key, entries[-1].upload_id)
    body = list_multipart_uploads_xml(
        ctx.bucket, key_marker=key_marker, upload_id_marker=id_marker,
        next_key_marker=next_key, next_upload_id_marker=next_id,
        prefix=prefix, delimiter=delimiter or None, max_uploads=max_uploads, is_truncated=truncated,
        encoding_type=p.get("encoding-type"), uploads=entries, common_prefixes=prefixes)
    return web.Response(body=body, headers=XML)


HANDLERS = {
    Op.CreateMultipartUpload: create_upload,
    Op.UploadPart: upload_part,
    Op.UploadPartCopy: upload_part_copy,
    Op.CompleteMultipartUpload: complete_upload,
    Op.AbortMultipartUpload: abort_upload,
    Op.ListParts: list_parts,
    Op.ListMultipartUploads: list_uploads,
}
