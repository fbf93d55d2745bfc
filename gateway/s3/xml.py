"""S3 XML: exact response documents (here) and hardened parsing of request bodies (xmlbody.py,
re-exported here so that handlers render and parse through one module).

Rendering builds strings directly (no DOM): the documents are small and fixed in shape, and the
output must match what AWS sends byte for byte where clients care (namespace, element names,
timestamp format, quoted ETags). Text is escaped as AWS escapes it, including `&quot;` in ETags.
Characters that XML 1.0 cannot carry (most C0 controls) are written as numeric references, as AWS
does; clients that store such keys ask for `encoding-type=url`, which percent-encodes them.
"""
from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from types import MappingProxyType
from typing import Iterable, Mapping, Sequence
from urllib.parse import quote

from gateway.s3.xmlbody import (CHECKSUM_ALGORITHMS, COMPLETE_MULTIPART_MAX_BODY, DELETE_OBJECTS_MAX_BODY,
                                SMALL_CONFIG_MAX_BODY, parse_complete_multipart, parse_create_bucket,
                                parse_delete_objects, parse_tagging, parse_versioning)

__all__ = [
    # rendering
    "S3_NAMESPACE", "iso8601", "http_date", "escape", "url_encode", "error_xml", "list_buckets_xml",
    "location_xml", "versioning_xml", "acl_xml", "copy_object_result_xml", "copy_part_result_xml",
    "DeletedEntry", "DeleteError", "delete_result_xml", "ObjectEntry", "list_objects_v1_xml",
    "list_objects_v2_xml", "PartEntry", "UploadEntry", "initiate_multipart_xml", "complete_multipart_xml",
    "list_parts_xml", "list_multipart_uploads_xml",
    # parsing, from xmlbody
    "CHECKSUM_ALGORITHMS", "COMPLETE_MULTIPART_MAX_BODY", "DELETE_OBJECTS_MAX_BODY", "SMALL_CONFIG_MAX_BODY",
    "parse_complete_multipart", "parse_create_bucket", "parse_delete_objects", "parse_tagging",
    "parse_versioning",
]

S3_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
_XSI = "http://www.w3.org/2001/XMLSchema-instance"


# --- time formats --------------------------------------------------------------------------------

def iso8601(moment: datetime) -> str:
    """'2009-10-12T17:50:30.000Z': the timestamp format of S3 XML bodies."""
    u = _as_utc(moment)  # f-string rather than strftime: listings format thousands of these
    return (f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
            f".{u.microsecond // 1000:03d}Z")


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def utc_from_ns(ns: int) -> datetime:
    """The UTC datetime of a time stored as ns since the epoch, truncated to the microsecond in
    integer arithmetic (a float of ns can round into the next millisecond or second), so every
    response shows a stored time the same way iso8601_ns does."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


def iso8601_ns(ns: int) -> str:
    """iso8601 of a time given in ns since the epoch (UTC), in integer arithmetic. A listing
    renders a thousand of these, and objects written together share their second, so the text
    of a second is cached: no datetime is built per entry."""
    return f"{_utc_second(ns // 1_000_000_000)}.{ns // 1_000_000 % 1000:03d}Z"


@functools.lru_cache(maxsize=1024)
def _utc_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def http_date(moment: datetime) -> str:
    """'Mon, 12 Oct 2009 17:50:30 GMT' (RFC 7231 IMF-fixdate), for Last-Modified and Date headers."""
    return format_datetime(_as_utc(moment), usegmt=True)


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: S3 timestamps need an explicit time zone")
    return moment.astimezone(timezone.utc)


# --- escaping ------------------------------------------------------------------------------------

_NEEDS_ESCAPE = re.compile('[&<>"\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]')
_ENTITIES = MappingProxyType({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})
_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*")


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    return _ENTITIES.get(char) or f"&#x{ord(char):X};"  # "\r" must survive XML line-end normalisation


def escape(text: str) -> str:
    return text if _NEEDS_ESCAPE.search(text) is None else _NEEDS_ESCAPE.sub(_escape_char, text)


def url_encode(text: str) -> str:
    """The `encoding-type=url` form of a key or prefix.

    Every byte but RFC 3986 unreserved characters and '/' is percent-encoded, space as %20 (AWS's
    documented example: "test_file(3).png" -> "test_file%283%29.png"). %20 rather than '+' because
    it decodes to a space both for decoders that treat '+' as space (botocore's unquote_plus,
    Go's QueryUnescape) and for those that do not; a literal '+' always becomes %2B.
    """
    return quote(text, safe="/")


def _el(tag: str, text: str) -> str:
    return f"<{tag}>{escape(text)}</{tag}>"


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _document(root: str, body: str) -> bytes:
    return f'{_DECLARATION}<{root} xmlns="{S3_NAMESPACE}">{body}</{root}>'.encode()


def _etag(etag: str) -> str:
    """The <ETag> element, always quoted (given quoted or not), quotes escaped as AWS does."""
    bare = etag.strip('"')
    return f"<ETag>&quot;{escape(bare)}&quot;</ETag>"


def _owner(tag: str, owner_id: str, owner_name: str | None) -> str:
    name = "" if owner_name is None else _el("DisplayName", owner_name)
    return f"<{tag}>{_el('ID', owner_id)}{name}</{tag}>"


def _checksums(checksums: Mapping[str, str]) -> str:
    out = []
    for algorithm in CHECKSUM_ALGORITHMS:  # a fixed order keeps the output deterministic
        if algorithm in checksums:
            out.append(_el(f"Checksum{algorithm}", checksums[algorithm]))
    unknown = set(checksums) - set(CHECKSUM_ALGORITHMS)
    if unknown:
        raise ValueError(f"unknown checksum algorithms: {sorted(unknown)}")
    return "".join(out)


# --- small documents -----------------------------------------------------------------------------

def error_xml(code: str, message: str, resource: str | None, request_id: str,
              extra: Mapping[str, object] = MappingProxyType({})) -> bytes:
    """The <Error> body. AWS sends it without a namespace; `extra` adds e.g. BucketName, Key."""
    parts = [_el("Code", code), _el("Message", message)]
    for tag, value in extra.items():
        if not _TAG_NAME.fullmatch(tag):
            raise ValueError(f"not an XML element name: {tag!r}")
        parts.append(_el(tag, str(value)))
    if resource is not None:
        parts.append(_el("Resource", resource))
    parts.append(_el("RequestId", request_id))
    return f"{_DECLARATION}<Error>{''.join(parts)}</Error>".encode()


def list_buckets_xml(owner_id: str, owner_name: str | None,
                     buckets: Iterable[tuple[str, datetime]]) -> bytes:
    entries = "".join(f"<Bucket>{_el('Name', name)}{_el('CreationDate', iso8601(created))}</Bucket>"
                      for name, created in buckets)
    return _document("ListAllMyBucketsResult",
                     f"{_owner('Owner', owner_id, owner_name)}<Buckets>{entries}</Buckets>")


def location_xml(region: str | None) -> bytes:
    """us-east-1 is an empty LocationConstraint, as AWS answers (clients map empty to us-east-1)."""
    if not region or region == "us-east-1":
        return f'{_DECLARATION}<LocationConstraint xmlns="{S3_NAMESPACE}"/>'.encode()
    return _document("LocationConstraint", escape(region))


def versioning_xml(status: str | None) -> bytes:
    """None: versioning was never enabled on this bucket, so there is no Status element."""
    if status is None:
        return f'{_DECLARATION}<VersioningConfiguration xmlns="{S3_NAMESPACE}"/>'.encode()
    if status not in ("Enabled", "Suspended"):
        raise ValueError(f"invalid versioning status {status!r}")
    return _document("VersioningConfiguration", _el("Status", status))


def acl_xml(owner_id: str, owner_name: str | None) -> bytes:
    """The only ACL Cairn has: the owner holds FULL_CONTROL."""
    grantee = (f'<Grantee xmlns:xsi="{_XSI}" xsi:type="CanonicalUser">{_el("ID", owner_id)}'
               + ("" if owner_name is None else _el("DisplayName", owner_name)) + "</Grantee>")
    grant = f"<Grant>{grantee}<Permission>FULL_CONTROL</Permission></Grant>"
    return _document("AccessControlPolicy", f"{_owner('Owner', owner_id, owner_name)}"
                                            f"<AccessControlList>{grant}</AccessControlList>")


def copy_object_result_xml(etag: str, last_modified: datetime,
                           checksums: Mapping[str, str] = MappingProxyType({})) -> bytes:
    return _document("CopyObjectResult", _copy_result(etag, last_modified, checksums))


def copy_part_result_xml(etag: str, last_modified: datetime,
                         checksums: Mapping[str, str] = MappingProxyType({})) -> bytes:
    return _document("CopyPartResult", _copy_result(etag, last_modified, checksums))


def _copy_result(etag: str, last_modified: datetime, checksums: Mapping[str, str]) -> str:
    return _etag(etag) + _el("LastModified", iso8601(last_modified)) + _checksums(checksums)


@dataclass(frozen=True)
class DeletedEntry:
    key: str
    version_id: str | None = None
    delete_marker: bool = False
    delete_marker_version_id: str | None = None


@dataclass(frozen=True)
class DeleteError:
    key: str
    code: str
    message: str
    version_id: str | None = None


def delete_result_xml(deleted: Iterable[DeletedEntry | tuple[str, str | None]],
                      errors: Iterable[DeleteError | tuple[str, str, str]], quiet: bool) -> bytes:
    """DeleteObjects' answer. Quiet mode lists only the errors."""
    parts = []
    if not quiet:
        for entry in deleted:
            if not isinstance(entry, DeletedEntry):
                entry = DeletedEntry(*entry)
            body = _el("Key", entry.key)
            if entry.version_id is not None:
                body += _el("VersionId", entry.version_id)
            if entry.delete_marker:
                body += "<DeleteMarker>true</DeleteMarker>"
                if entry.delete_marker_version_id is not None:
                    body += _el("DeleteMarkerVersionId", entry.delete_marker_version_id)
            parts.append(f"<Deleted>{body}</Deleted>")
    for error in errors:
        if not isinstance(error, DeleteError):
            error = DeleteError(*error)
        version = "" if error.version_id is None else _el("VersionId", error.version_id)
        parts.append(f"<Error>{_el('Key', error.key)}{version}{_el('Code', error.code)}"
                     f"{_el('Message', error.message)}</Error>")
    return _document("DeleteResult", "".join(parts))


# --- object listings -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ObjectEntry:
    key: str
    mtime_ns: int  # last modified, ns since the epoch
    etag: str  # quoted or not; rendered quoted
    size: int
    owner_id: str | None = None
    owner_name: str | None = None
    checksum_algorithm: str | None = None
    storage_class: str = "STANDARD"


def _contents(entries: Sequence[ObjectEntry], encode, with_owner: bool) -> str:
    out = []
    for entry in entries:
        body = (f"<Key>{escape(encode(entry.key))}</Key>"
                f"<LastModified>{iso8601_ns(entry.mtime_ns)}</LastModified>{_etag(entry.etag)}")
        if entry.checksum_algorithm is not None:
            body += _el("ChecksumAlgorithm", entry.checksum_algorithm)
        body += f"<Size>{entry.size:d}</Size><StorageClass>{escape(entry.storage_class)}</StorageClass>"
        if with_owner and entry.owner_id is not None:
            body += _owner("Owner", entry.owner_id, entry.owner_name)
        out.append(f"<Contents>{body}</Contents>")
    return "".join(out)


def _common_prefixes(prefixes: Sequence[str], encode) -> str:
    return "".join(f"<CommonPrefixes>{_el('Prefix', encode(p))}</CommonPrefixes>" for p in prefixes)


def _listing_tail(delimiter: str | None, encoding_type: str | None, is_truncated: bool, enc) -> str:
    """Delimiter, EncodingType and IsTruncated: the same in every listing document."""
    out = _el("Delimiter", enc(delimiter)) if delimiter is not None else ""
    if encoding_type is not None:
        out += _el("EncodingType", encoding_type)
    return out + _el("IsTruncated", _bool(is_truncated))


def _encoder(encoding_type: str | None):
    if encoding_type is None:
        return lambda text: text
    if encoding_type != "url":
        raise ValueError(f"unknown encoding type {encoding_type!r}")
    return url_encode


def list_objects_v1_xml(bucket: str, *, prefix: str = "", marker: str = "", next_marker: str | None = None,
                        max_keys: int = 1000, delimiter: str | None = None, is_truncated: bool = False,
                        encoding_type: str | None = None, entries: Sequence[ObjectEntry] = (),
                        common_prefixes: Sequence[str] = ()) -> bytes:
    """ListObjects (v1). Owner is always included, as AWS does for v1.

    With encoding_type="url", Prefix, Marker, NextMarker, Delimiter, Key and CommonPrefixes are
    percent-encoded, AWS's documented list (botocore decodes all of them but Prefix, boto3#3534).
    """
    enc = _encoder(encoding_type)
    head = _el("Name", bucket) + _el("Prefix", enc(prefix)) + _el("Marker", enc(marker))
    if next_marker is not None:
        head += _el("NextMarker", enc(next_marker))
    head += f"<MaxKeys>{max_keys:d}</MaxKeys>"
    head += _listing_tail(delimiter, encoding_type, is_truncated, enc)
    return _document("ListBucketResult", head + _contents(entries, enc, True)
                     + _common_prefixes(common_prefixes, enc))


def list_object_versions_xml(bucket: str, *, prefix: str = "", key_marker: str = "",
                             version_id_marker: str = "", next_key_marker: str | None = None,
                             max_keys: int = 1000, delimiter: str | None = None, is_truncated: bool = False,
                             encoding_type: str | None = None, entries: Sequence[ObjectEntry] = (),
                             common_prefixes: Sequence[str] = ()) -> bytes:
    """ListObjectVersions of an unversioned bucket: each object is its only, latest version "null"."""
    enc = _encoder(encoding_type)
    head = (_el("Name", bucket) + _el("Prefix", enc(prefix)) + _el("KeyMarker", enc(key_marker))
            + _el("VersionIdMarker", version_id_marker))
    if next_key_marker is not None:
        head += _el("NextKeyMarker", enc(next_key_marker)) + _el("NextVersionIdMarker", "null")
    head += f"<MaxKeys>{max_keys:d}</MaxKeys>"
    head += _listing_tail(delimiter, encoding_type, is_truncated, enc)
    versions = "".join(
        f"<Version><Key>{escape(enc(e.key))}</Key><VersionId>null</VersionId><IsLatest>true</IsLatest>"
        f"<LastModified>{iso8601_ns(e.mtime_ns)}</LastModified>{_etag(e.etag)}"
        f"<Size>{e.size:d}</Size><StorageClass>{escape(e.storage_class)}</StorageClass>"
        + (_owner("Owner", e.owner_id, e.owner_name) if e.owner_id is not None else "") + "</Version>"
        for e in entries)
    return _document("ListVersionsResult", head + versions + _common_prefixes(common_prefixes, enc))


def list_objects_v2_xml(bucket: str, *, prefix: str = "", continuation_token: str | None = None,
                        next_continuation_token: str | None = None, start_after: str | None = None,
                        max_keys: int = 1000, delimiter: str | None = None, is_truncated: bool = False,
                        encoding_type: str | None = None, fetch_owner: bool = False,
                        entries: Sequence[ObjectEntry] = (), common_prefixes: Sequence[str] = (),
                        key_count: int | None = None) -> bytes:
    """ListObjectsV2. KeyCount defaults to the number of entries plus common prefixes. Continuation
    tokens are opaque and never URL-encoded; Prefix, StartAfter, Delimiter, Key and CommonPrefixes
    are, with encoding_type="url"."""
    enc = _encoder(encoding_type)
    if key_count is None:
        key_count = len(entries) + len(common_prefixes)
    head = _el("Name", bucket) + _el("Prefix", enc(prefix))
    if continuation_token is not None:
        head += _el("ContinuationToken", continuation_token)
    if next_continuation_token is not None:
        head += _el("NextContinuationToken", next_continuation_token)
    if start_after is not None:
        head += _el("StartAfter", enc(start_after))
    head += f"<KeyCount>{key_count:d}</KeyCount><MaxKeys>{max_keys:d}</MaxKeys>"
    head += _listing_tail(delimiter, encoding_type, is_truncated, enc)
    return _document("ListBucketResult", head + _contents(entries, enc, fetch_owner)
                     + _common_prefixes(common_prefixes, enc))


# --- multipart uploads ---------------------------------------------------------------------------

@dataclass(frozen=True)
class PartEntry:
    part_number: int
    last_modified: datetime
    etag: str
    size: int
    checksums: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class UploadEntry:
    key: str
    upload_id: str
    initiated: datetime
    owner_id: str | None = None
    owner_name: str | None = None
    storage_class: str = "STANDARD"
    checksum_algorithm: str | None = None


def initiate_multipart_xml(bucket: str, key: str, upload_id: str) -> bytes:
    return _document("InitiateMultipartUploadResult",
                     _el("Bucket", bucket) + _el("Key", key) + _el("UploadId", upload_id))


def complete_multipart_xml(location: str, bucket: str, key: str, etag: str,
                           checksums: Mapping[str, str] = MappingProxyType({}),
                           checksum_type: str | None = None) -> bytes:
    return _document("CompleteMultipartUploadResult",
                     _el("Location", location) + _el("Bucket", bucket) + _el("Key", key)
                     + _etag(etag) + _checksums(checksums)
                     + ("" if checksum_type is None else _el("ChecksumType", checksum_type)))


def list_parts_xml(bucket: str, key: str, upload_id: str, *, owner_id: str, owner_name: str | None = None,
                   part_number_marker: int = 0, next_part_number_marker: int | None = None,
                   max_parts: int = 1000, is_truncated: bool = False, parts: Sequence[PartEntry] = (),
                   storage_class: str = "STANDARD", checksum_algorithm: str | None = None,
                   checksum_type: str | None = None) -> bytes:
    body = (_el("Bucket", bucket) + _el("Key", key) + _el("UploadId", upload_id)
            + _owner("Initiator", owner_id, owner_name) + _owner("Owner", owner_id, owner_name)
            + _el("StorageClass", storage_class))
    if checksum_algorithm is not None:
        body += _el("ChecksumAlgorithm", checksum_algorithm)
    if checksum_type is not None:
        body += _el("ChecksumType", checksum_type)
    body += f"<PartNumberMarker>{part_number_marker:d}</PartNumberMarker>"
    if next_part_number_marker is not None:
        body += f"<NextPartNumberMarker>{next_part_number_marker:d}</NextPartNumberMarker>"
    body += f"<MaxParts>{max_parts:d}</MaxParts>" + _el("IsTruncated", _bool(is_truncated))
    for part in parts:
        body += (f"<Part><PartNumber>{part.part_number:d}</PartNumber>"
                 + _el("LastModified", iso8601(part.last_modified)) + _etag(part.etag)
                 + f"<Size>{part.size:d}</Size>" + _checksums(part.checksums) + "</Part>")
    return _document("ListPartsResult", body)


def list_multipart_uploads_xml(bucket: str, *, key_marker: str = "", upload_id_marker: str = "",
                               next_key_marker: str | None = None, next_upload_id_marker: str | None = None,
                               prefix: str = "", delimiter: str | None = None, max_uploads: int = 1000,
                               is_truncated: bool = False, encoding_type: str | None = None,
                               uploads: Sequence[UploadEntry] = (), common_prefixes: Sequence[str] = ()) -> bytes:
    """With encoding_type="url": KeyMarker, NextKeyMarker, Prefix, Delimiter, Key, CommonPrefixes."""
    enc = _encoder(encoding_type)
    body = _el("Bucket", bucket) + _el("KeyMarker", enc(key_marker)) + _el("UploadIdMarker", upload_id_marker)
    if next_key_marker is not None:
        body += _el("NextKeyMarker", enc(next_key_marker))
    if next_upload_id_marker is not None:
        body += _el("NextUploadIdMarker", next_upload_id_marker)
    body += _el("Prefix", enc(prefix))
    if delimiter is not None:
        body += _el("Delimiter", enc(delimiter))
    body += f"<MaxUploads>{max_uploads:d}</MaxUploads>"
    if encoding_type is not None:
        body += _el("EncodingType", encoding_type)
    body += _el("IsTruncated", _bool(is_truncated))
    for upload in uploads:
        owners = ("" if upload.owner_id is None else _owner("Initiator", upload.owner_id, upload.owner_name)
                  + _owner("Owner", upload.owner_id, upload.owner_name))
        algorithm = ("" if upload.checksum_algorithm is None
                     else _el("ChecksumAlgorithm", upload.checksum_algorithm))
        body += (f"<Upload>{_el('Key', enc(upload.key))}{_el('UploadId', upload.upload_id)}{owners}"
                 f"{_el('StorageClass', upload.storage_class)}{_el('Initiated', iso8601(upload.initiated))}"
                 f"{algorithm}</Upload>")
    return _document("ListMultipartUploadsResult", body + _common_prefixes(common_prefixes, enc))
