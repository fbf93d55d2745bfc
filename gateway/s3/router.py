"""Pure S3 request routing: (method, path, query, headers, host) -> a typed Endpoint.

Modelled on Garage's src/api/s3/router.rs. No I/O and no aiohttp: the gateway passes plain values
(`request.method`, `request.raw_path`, `request.query`, `request.headers`, `request.host`).

Rules, in the order they apply:
  * Addressing. If the Host (port and trailing dot stripped, lowercased) ends with ".<domain>" for a
    configured domain, the bucket is the part before it and the whole path is the key
    (virtual-hosted style). Otherwise - a bare domain, an IP address, any other host - the first path
    segment is the bucket and the rest is the key (path style).
  * Keys come from the RAW path, percent-decoded exactly once as UTF-8 and never normalised:
    "a//b", "../a", "a/./b", a trailing "/" are distinct keys, "%2F" is "/" and "%252F" is "%2F".
    `raw_path` may carry the query ("?..."); it is cut off here and `query` is the only query source.
  * Sub-resource keywords (`?acl`, `?uploads`, ...) select the operation together with the method and
    whether a key is present; `x-amz-copy-source` turns PutObject into CopyObject and UploadPart
    into UploadPartCopy; POST to a bucket with a multipart/form-data body is PostObject.
  * Errors: an operation S3 has but Cairn does not -> NotImplemented (501); a keyword S3 does not
    accept for that method and resource -> MethodNotAllowed (405); an unknown query parameter on a
    mutating request (PUT/POST/DELETE) -> NotImplemented, so that an unknown sub-resource can never
    fall through to PutObject or DeleteBucket. GET and HEAD ignore unknown parameters, as S3 does.
"""
from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, Sequence
from urllib.parse import parse_qs, unquote_to_bytes

from gateway.s3.errors import (InvalidArgument, InvalidBucketName, MethodNotAllowed, NotImplemented_,
                               PreconditionFailed)
from gateway.s3.names import validate_bucket_name, validate_key

__all__ = ["Op", "Endpoint", "CopySource", "route", "bucket_from_host", "parse_copy_source"]


class Op(enum.Enum):
    """Every operation the gateway serves; values are the S3 API operation names."""
    ListBuckets = "ListBuckets"
    Options = "Options"  # CORS preflight (OPTIONS on a bucket or object)
    # Buckets
    CreateBucket = "CreateBucket"
    HeadBucket = "HeadBucket"
    DeleteBucket = "DeleteBucket"
    GetBucketLocation = "GetBucketLocation"
    GetBucketVersioning = "GetBucketVersioning"
    PutBucketVersioning = "PutBucketVersioning"
    GetBucketAcl = "GetBucketAcl"
    PutBucketAcl = "PutBucketAcl"
    GetBucketPolicy = "GetBucketPolicy"
    PutBucketPolicy = "PutBucketPolicy"
    DeleteBucketPolicy = "DeleteBucketPolicy"
    GetBucketCors = "GetBucketCors"
    PutBucketCors = "PutBucketCors"
    DeleteBucketCors = "DeleteBucketCors"
    GetBucketLifecycleConfiguration = "GetBucketLifecycleConfiguration"
    PutBucketLifecycleConfiguration = "PutBucketLifecycleConfiguration"
    DeleteBucketLifecycle = "DeleteBucketLifecycle"
    GetBucketWebsite = "GetBucketWebsite"
    GetBucketTagging = "GetBucketTagging"
    PutBucketTagging = "PutBucketTagging"
    DeleteBucketTagging = "DeleteBucketTagging"
    GetBucketEncryption = "GetBucketEncryption"
    GetBucketReplication = "GetBucketReplication"
    GetObjectLockConfiguration = "GetObjectLockConfiguration"
    PutObjectLockConfiguration = "PutObjectLockConfiguration"
    GetPublicAccessBlock = "GetPublicAccessBlock"
    GetBucketOwnershipControls = "GetBucketOwnershipControls"
    GetBucketLogging = "GetBucketLogging"
    GetBucketNotificationConfiguration = "GetBucketNotificationConfiguration"
    GetBucketRequestPayment = "GetBucketRequestPayment"
    GetBucketAccelerateConfiguration = "GetBucketAccelerateConfiguration"
    # Listings
    ListObjects = "ListObjects"
    ListObjectsV2 = "ListObjectsV2"
    ListObjectVersions = "ListObjectVersions"
    ListMultipartUploads = "ListMultipartUploads"
    # Objects
    DeleteObjects = "DeleteObjects"
    PutObject = "PutObject"
    CopyObject = "CopyObject"
    GetObject = "GetObject"
    HeadObject = "HeadObject"
    DeleteObject = "DeleteObject"
    GetObjectAcl = "GetObjectAcl"
    PutObjectAcl = "PutObjectAcl"
    GetObjectTagging = "GetObjectTagging"
    PutObjectTagging = "PutObjectTagging"
    DeleteObjectTagging = "DeleteObjectTagging"
    GetObjectAttributes = "GetObjectAttributes"
    PostObject = "PostObject"
    GetObjectRetention = "GetObjectRetention"
    PutObjectRetention = "PutObjectRetention"
    GetObjectLegalHold = "GetObjectLegalHold"
    PutObjectLegalHold = "PutObjectLegalHold"
    # Multipart uploads
    CreateMultipartUpload = "CreateMultipartUpload"
    UploadPart = "UploadPart"
    UploadPartCopy = "UploadPartCopy"
    CompleteMultipartUpload = "CompleteMultipartUpload"
    AbortMultipartUpload = "AbortMultipartUpload"
    ListParts = "ListParts"


@dataclass(frozen=True)
class Endpoint:
    op: Op
    bucket: str | None = None
    key: str | None = None
    # Only the query parameters this operation understands, validated (integers are plain ASCII
    # digits in range, encoding-type is "url", fetch-owner is "true"/"false").
    params: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def int_param(self, name: str, default: int) -> int:
        value = self.params.get(name)
        return default if value is None else int(value)


@dataclass(frozen=True)
class CopySource:
    bucket: str
    key: str
    version_id: str | None


# --- routing tables ------------------------------------------------------------------------------
# (method, keyword) -> Op. Keyword "" (no sub-resource) is handled in code where it depends on
# other parameters or headers.
_BUCKET_ROUTES: Mapping[tuple[str, str], Op] = MappingProxyType({
    ("GET", "accelerate"): Op.GetBucketAccelerateConfiguration,
    ("GET", "acl"): Op.GetBucketAcl,
    ("GET", "cors"): Op.GetBucketCors,
    ("GET", "encryption"): Op.GetBucketEncryption,
    ("GET", "lifecycle"): Op.GetBucketLifecycleConfiguration,
    ("GET", "location"): Op.GetBucketLocation,
    ("GET", "logging"): Op.GetBucketLogging,
    ("GET", "notification"): Op.GetBucketNotificationConfiguration,
    ("GET", "object-lock"): Op.GetObjectLockConfiguration,
    ("GET", "ownershipControls"): Op.GetBucketOwnershipControls,
    ("GET", "policy"): Op.GetBucketPolicy,
    ("GET", "publicAccessBlock"): Op.GetPublicAccessBlock,
    ("GET", "replication"): Op.GetBucketReplication,
    ("GET", "requestPayment"): Op.GetBucketRequestPayment,
    ("GET", "tagging"): Op.GetBucketTagging,
    ("GET", "uploads"): Op.ListMultipartUploads,
    ("GET", "versioning"): Op.GetBucketVersioning,
    ("GET", "versions"): Op.ListObjectVersions,
    ("GET", "website"): Op.GetBucketWebsite,
    ("PUT", ""): Op.CreateBucket,
    ("PUT", "acl"): Op.PutBucketAcl,
    ("PUT", "cors"): Op.PutBucketCors,
    ("PUT", "lifecycle"): Op.PutBucketLifecycleConfiguration,
    ("PUT", "object-lock"): Op.PutObjectLockConfiguration,
    ("PUT", "policy"): Op.PutBucketPolicy,
    ("PUT", "tagging"): Op.PutBucketTagging,
    ("PUT", "versioning"): Op.PutBucketVersioning,
    ("DELETE", ""): Op.DeleteBucket,
    ("DELETE", "cors"): Op.DeleteBucketCors,
    ("DELETE", "lifecycle"): Op.DeleteBucketLifecycle,
    ("DELETE", "policy"): Op.DeleteBucketPolicy,
    ("DELETE", "tagging"): Op.DeleteBucketTagging,
    ("POST", "delete"): Op.DeleteObjects,
})
_OBJECT_ROUTES: Mapping[tuple[str, str], Op] = MappingProxyType({
    ("GET", "acl"): Op.GetObjectAcl,
    ("GET", "attributes"): Op.GetObjectAttributes,
    ("GET", "legal-hold"): Op.GetObjectLegalHold,
    ("GET", "retention"): Op.GetObjectRetention,
    ("GET", "tagging"): Op.GetObjectTagging,
    ("PUT", "acl"): Op.PutObjectAcl,
    ("PUT", "legal-hold"): Op.PutObjectLegalHold,
    ("PUT", "retention"): Op.PutObjectRetention,
    ("PUT", "tagging"): Op.PutObjectTagging,
    ("DELETE", "tagging"): Op.DeleteObjectTagging,
    ("POST", "uploads"): Op.CreateMultipartUpload,
})
# S3 operations Cairn does not serve: (resource, method, keyword) -> S3 operation name.
_NOT_IMPLEMENTED: Mapping[tuple[str, str, str], str] = MappingProxyType({
    **{("bucket", "GET", kw): name for kw, name in [
        ("analytics", "GetBucketAnalyticsConfiguration"), ("inventory", "GetBucketInventoryConfiguration"),
        ("intelligent-tiering", "GetBucketIntelligentTieringConfiguration"),
        ("metrics", "GetBucketMetricsConfiguration"), ("policyStatus", "GetBucketPolicyStatus")]},
    **{("bucket", "PUT", kw): "PutBucket" + suffix for kw, suffix in [
        ("accelerate", "AccelerateConfiguration"), ("analytics", "AnalyticsConfiguration"),
        ("encryption", "Encryption"), ("intelligent-tiering", "IntelligentTieringConfiguration"),
        ("inventory", "InventoryConfiguration"), ("logging", "Logging"),
        ("metrics", "MetricsConfiguration"), ("notification", "NotificationConfiguration"),
        ("ownershipControls", "OwnershipControls"), ("publicAccessBlock", "PublicAccessBlock"),
        ("replication", "Replication"), ("requestPayment", "RequestPayment"), ("website", "Website")]},
    **{("bucket", "DELETE", kw): "DeleteBucket" + suffix for kw, suffix in [
        ("analytics", "AnalyticsConfiguration"), ("encryption", "Encryption"),
        ("intelligent-tiering", "IntelligentTieringConfiguration"),
        ("inventory", "InventoryConfiguration"), ("metrics", "MetricsConfiguration"),
        ("ownershipControls", "OwnershipControls"), ("publicAccessBlock", "PublicAccessBlock"),
        ("replication", "Replication"), ("website", "Website")]},
    ("object", "GET", "torrent"): "GetObjectTorrent",
    ("object", "POST", "restore"): "RestoreObject",
    ("object", "POST", "select"): "SelectObjectContent",
})
_KEYWORDS = frozenset(kw for _, kw in (*_BUCKET_ROUTES, *_OBJECT_ROUTES) if kw) | frozenset(
    kw for _, _, kw in _NOT_IMPLEMENTED)

_LIST_COMMON = ("prefix", "delimiter", "max-keys", "encoding-type")
_OBJECT_READ = ("versionId", "partNumber", "response-cache-control", "response-content-disposition",
                "response-content-encoding", "response-content-language", "response-content-type",
                "response-expires")
# Op -> the query parameters it receives in Endpoint.params.
_PARAMS: Mapping[Op, tuple[str, ...]] = MappingProxyType({
    Op.ListBuckets: ("prefix", "max-buckets", "continuation-token", "bucket-region"),
    Op.ListObjects: (*_LIST_COMMON, "marker"),
    Op.ListObjectsV2: (*_LIST_COMMON, "continuation-token", "start-after", "fetch-owner"),
    Op.ListObjectVersions: (*_LIST_COMMON, "key-marker", "version-id-marker"),
    Op.ListMultipartUploads: ("prefix", "delimiter", "encoding-type", "key-marker", "upload-id-marker",
                              "max-uploads"),
    Op.ListParts: ("uploadId", "max-parts", "part-number-marker"),
    Op.GetObject: _OBJECT_READ,
    Op.HeadObject: _OBJECT_READ,
    Op.UploadPart: ("uploadId", "partNumber"),
    Op.UploadPartCopy: ("uploadId", "partNumber"),
    Op.CompleteMultipartUpload: ("uploadId",),
    Op.AbortMultipartUpload: ("uploadId",),
    **{op: ("versionId",) for op in (
        Op.DeleteObject, Op.GetObjectAcl, Op.PutObjectAcl, Op.GetObjectTagging, Op.PutObjectTagging,
        Op.DeleteObjectTagging, Op.GetObjectAttributes, Op.GetObjectRetention, Op.PutObjectRetention,
        Op.GetObjectLegalHold, Op.PutObjectLegalHold)},
})
# Query parameters that may accompany any request: SigV4/SigV2 presigning, and the operation hint
# the AWS SDKs for JavaScript v3 and Go v2 append ("?x-id=PutObject").
_ALWAYS_ALLOWED = frozenset({"x-id", "awsaccesskeyid", "signature", "expires"})
_KNOWN_PARAMS = _KEYWORDS | frozenset(p for names in _PARAMS.values() for p in names) | {"list-type"}

_DIGITS = re.compile(r"[0-9]{1,10}")
_MAX_INT32 = 2**31 - 1
_FORM_DATA = "multipart/form-data"


# --- public API ----------------------------------------------------------------------------------

def route(method: str, raw_path: str, query: Mapping[str, str], headers: Mapping[str, str],
          host: str, *, domains: Sequence[str] = ()) -> Endpoint:
    """Identify the S3 operation of a request. Raises an S3Error subclass for invalid requests."""
    path = raw_path.partition("?")[0]
    if not path.startswith("/"):
        raise InvalidArgument("The request target must be an absolute path.")
    host_bucket = bucket_from_host(host, domains)
    if host_bucket is not None:
        bucket: str | None = host_bucket
        key = _decode(path[1:], "key")
    else:
        first, slash, rest = path[1:].partition("/")
        bucket = _decode(first, "bucket name") if first else None
        key = _decode(rest, "key")
        if bucket is None and slash:
            raise InvalidBucketName("The bucket name in the path is empty.")
    if key:
        validate_key(key)
    if method == "OPTIONS":
        return Endpoint(Op.Options, bucket, key or None)
    if method not in ("GET", "HEAD", "PUT", "POST", "DELETE"):
        raise MethodNotAllowed(f"The method {method} is not allowed against this resource.",
                               Method=method, ResourceType="OBJECT" if key else "BUCKET")
    if bucket is None:
        if method != "GET":
            raise MethodNotAllowed(f"The method {method} is not allowed against the service.",
                                   Method=method, ResourceType="SERVICE")
        return _endpoint(Op.ListBuckets, None, None, query)
    keyword = _keyword(query) if method != "HEAD" else ""
    if key:
        op = _object_op(method, keyword, query, headers)
    else:
        op = _bucket_op(method, keyword, query, headers)
    if method != "GET" and method != "HEAD":
        _reject_unknown_params(query)  # after the lookup, so a known-but-unserved op is named
    if op is Op.CreateBucket:
        validate_bucket_name(bucket)
    return _endpoint(op, bucket, key or None, query)


def bucket_from_host(host: str, domains: Sequence[str]) -> str | None:
    """The bucket named by a virtual-hosted-style Host header, or None for path style."""
    name = _strip_port(host).rstrip(".").lower()
    if not name or _is_ip(name):
        return None
    best: str | None = None
    for domain in domains:
        domain = domain.rstrip(".").lower()
        if name.endswith("." + domain) and (best is None or len(domain) > len(best)):
            best = domain  # the longest matching domain wins: "s3.example.com" over "example.com"
    return None if best is None else (name[: -len(best) - 1] or None)  # ".domain" names no bucket


def parse_copy_source(value: str) -> CopySource:
    """Parse `x-amz-copy-source` ("[/]bucket/key[?versionId=v]", URL-encoded) into its parts."""
    path, _, query = value.partition("?")
    path = path.lstrip("/")
    if path.startswith("arn:"):
        raise NotImplemented_("Copying from an access point ARN is not implemented.")
    bucket_raw, _, key_raw = path.partition("/")
    bucket = _decode(bucket_raw, "copy source bucket")
    key = _decode(key_raw, "copy source key")
    if not bucket or not key:
        raise InvalidArgument("Copy Source must mention the source bucket and key: sourcebucket/sourcekey.",
                              ArgumentName="x-amz-copy-source", ArgumentValue=value)
    validate_key(key)
    version_ids = parse_qs(query, keep_blank_values=True).get("versionId")
    version_id = version_ids[0] if version_ids else None
    if version_id == "":
        raise InvalidArgument("The version ID in the copy source is empty.",
                              ArgumentName="x-amz-copy-source", ArgumentValue=value)
    return CopySource(bucket, key, version_id)


# --- helpers -------------------------------------------------------------------------------------

def _bucket_op(method: str, keyword: str, query: Mapping[str, str], headers: Mapping[str, str]) -> Op:
    if method == "HEAD":
        return Op.HeadBucket
    if method == "GET" and not keyword:
        if "list-type" in query:
            if query.get("list-type") != "2":
                raise InvalidArgument("Invalid List Type specified in Request.", ArgumentName="list-type",
                                      ArgumentValue=query.get("list-type") or "")
            return Op.ListObjectsV2
        return Op.ListObjects
    if method == "POST" and not keyword:
        content_type = (_header(headers, "content-type") or "").lower()
        if not content_type.startswith(_FORM_DATA):
            raise PreconditionFailed("Bucket POST must be of the enclosure-type multipart/form-data.",
                                     Condition="Bucket POST must be of the enclosure-type multipart/form-data")
        return Op.PostObject
    return _lookup("bucket", _BUCKET_ROUTES, method, keyword)


def _object_op(method: str, keyword: str, query: Mapping[str, str], headers: Mapping[str, str]) -> Op:
    if method == "HEAD":
        return Op.HeadObject
    if keyword:
        return _lookup("object", _OBJECT_ROUTES, method, keyword)
    has_upload = "uploadId" in query
    if method == "GET":
        return Op.ListParts if has_upload else Op.GetObject
    if method == "DELETE":
        return Op.AbortMultipartUpload if has_upload else Op.DeleteObject
    if method == "POST":
        if has_upload:
            return Op.CompleteMultipartUpload
        raise MethodNotAllowed("POST on an object needs ?uploads, ?uploadId, ?restore or ?select.",
                               Method=method, ResourceType="OBJECT")
    # PUT: an upload id without a part number (or the reverse) must not silently become PutObject
    # and overwrite the object the client meant to upload a part of.
    has_part = "partNumber" in query
    if has_upload != has_part:
        missing = "partNumber" if has_upload else "uploadId"
        raise InvalidArgument(f"UploadPart needs both uploadId and partNumber; {missing} is missing.",
                              ArgumentName=missing)
    copying = _header(headers, "x-amz-copy-source") is not None
    if has_part:
        return Op.UploadPartCopy if copying else Op.UploadPart
    return Op.CopyObject if copying else Op.PutObject


def _lookup(resource: str, routes: Mapping[tuple[str, str], Op], method: str, keyword: str) -> Op:
    op = routes.get((method, keyword))
    if op is not None:
        return op
    s3_name = _NOT_IMPLEMENTED.get((resource, method, keyword))
    if s3_name is not None:
        raise NotImplemented_(f"{s3_name} is not implemented.")
    what = f"?{keyword}" if keyword else "no sub-resource"
    raise MethodNotAllowed(f"{method} with {what} is not allowed against this {resource}.",
                           Method=method, ResourceType=resource.upper())


def _keyword(query: Mapping[str, str]) -> str:
    found = [name for name in query if name in _KEYWORDS]
    if len(set(found)) > 1:
        raise InvalidArgument(f"Conflicting sub-resources in the query: {', '.join(sorted(set(found)))}.")
    return found[0] if found else ""


def _reject_unknown_params(query: Mapping[str, str]) -> None:
    for name in query:
        lower = name.lower()
        if name in _KNOWN_PARAMS or lower in _ALWAYS_ALLOWED or lower.startswith("x-amz-"):
            continue
        raise NotImplemented_(f"The query parameter {name!r} is not supported on this request.")


def _endpoint(op: Op, bucket: str | None, key: str | None, query: Mapping[str, str]) -> Endpoint:
    params = {}
    for name in _PARAMS.get(op, ()):
        value = query.get(name)
        if value is not None:
            params[name] = _validated(name, value)
    return Endpoint(op, bucket, key, MappingProxyType(params))


def _validated(name: str, value: str) -> str:
    if name == "partNumber":
        if not _DIGITS.fullmatch(value) or not 1 <= int(value) <= 10000:
            raise InvalidArgument("Part number must be an integer between 1 and 10000, inclusive.",
                                  ArgumentName=name, ArgumentValue=value)
    elif name in ("max-keys", "max-uploads", "max-parts", "part-number-marker", "max-buckets"):
        if not _DIGITS.fullmatch(value) or int(value) > _MAX_INT32:
            raise InvalidArgument(f"Provided {name} not an integer or within integer range.",
                                  ArgumentName=name, ArgumentValue=value)
        return str(int(value))
    elif name == "encoding-type":
        if value.lower() != "url":
            raise InvalidArgument("Invalid Encoding Method specified in Request.",
                                  ArgumentName=name, ArgumentValue=value)
        return "url"
    elif name == "fetch-owner":
        if value.lower() not in ("true", "false"):
            raise InvalidArgument("fetch-owner must be true or false.", ArgumentName=name,
                                  ArgumentValue=value)
        return value.lower()
    return value


def _decode(segment: str, what: str) -> str:
    """Percent-decode once, strictly as UTF-8. '+' stays '+': it means space only in queries."""
    # aiohttp hands over the request target as str; bytes that were not UTF-8 on the wire come back
    # as surrogate escapes, which surrogateescape turns into the original bytes again.
    try:
        return unquote_to_bytes(segment.encode("utf-8", "surrogateescape")).decode("utf-8")
    except UnicodeError:
        raise InvalidArgument(f"The {what} is not valid UTF-8 after percent-decoding.",
                              ArgumentName=what) from None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # plain dicts (tests, other callers) are not case-insensitive
        for candidate, candidate_value in headers.items():
            if candidate.lower() == name:
                return candidate_value
    return value


def _strip_port(host: str) -> str:
    host = host.strip()
    if host.startswith("["):  # "[::1]:9000"
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True
