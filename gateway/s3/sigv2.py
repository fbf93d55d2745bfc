"""AWS Signature Version 2 (HMAC-SHA1): header auth and presigned URLs.

Why Cairn accepts it: boto3 and the aws CLI still presign S3 URLs with SigV2 unless told
otherwise (`aws s3 presign` included), and s3cmd's `signurl` only makes SigV2 URLs. Users expect
those URLs to work. String to sign, as AWS documents it and botocore's HmacV1Auth builds it:

    METHOD \n Content-MD5 \n Content-Type \n Date-or-Expires \n [x-amz-* headers \n] resource

where resource is the raw path (bucket included, also for virtual-hosted requests) plus the
sub-resources among the query parameters, sorted, values decoded. Pure functions, no aiohttp.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Callable, Mapping
from urllib.parse import unquote

from gateway.s3 import errors

SUBRESOURCES = frozenset({
    "accelerate", "acl", "cors", "defaultObjectAcl", "location", "logging", "partNumber", "policy",
    "requestPayment", "torrent", "versioning", "versionId", "versions", "website", "uploads",
    "uploadId", "response-content-type", "response-content-language", "response-expires",
    "response-cache-control", "response-content-disposition", "response-content-encoding",
    "delete", "lifecycle", "tagging", "restore", "storageClass", "notification", "replication",
    "analytics", "metrics", "inventory", "select", "select-type", "object-lock",
})
SKEW = timedelta(minutes=15)


def is_v2(authorization: str | None, query_keys: set[str]) -> bool:
    if authorization is not None:
        return authorization.startswith("AWS ")
    return "AWSAccessKeyId" in query_keys and "Signature" in query_keys


def canonical_resource(raw_path: str, raw_query: str, bucket_prefix: str = "") -> str:
    resource = bucket_prefix + raw_path
    subs = []
    for part in raw_query.split("&"):
        key, sep, value = part.partition("=")
        if key in SUBRESOURCES:
            subs.append((key, unquote(value) if sep else None))
    if subs:
        subs.sort(key=lambda kv: kv[0])
        resource += "?" + "&".join(k if v is None else f"{k}={v}" for k, v in subs)
    return resource


def string_to_sign(method: str, headers: Mapping[str, str], date_or_expires: str, resource: str) -> str:
    lowered: dict[str, list[str]] = {}
    for name, value in headers.items():
        lowered.setdefault(name.lower(), []).append(value.strip())
    amz = sorted((k, ",".join(v)) for k, v in lowered.items() if k.startswith("x-amz-"))
    lines = [method.upper(), ",".join(lowered.get("content-md5", [""])),
             ",".join(lowered.get("content-type", [""])), date_or_expires]
    lines += [f"{k}:{v}" for k, v in amz]
    return "\n".join(lines) + "\n" + resource


def sign(secret_key: str, text: str) -> str:
    return base64.b64encode(hmac.new(secret_key.encode(), text.encode("utf-8", "surrogateescape"),
                                     hashlib.sha1).digest()).decode()


def _resources(raw_path: str, raw_query: str, bucket_prefix: str) -> list[str]:
    """The canonical resource, and for a bucket-level request also its "/bucket/" spelling:
    botocore signs "/bucket/" while the request line may say "/bucket"."""
    first = canonical_resource(raw_path, raw_query, bucket_prefix)
    full = bucket_prefix + raw_path
    if full.count("/") == 1 and len(full) > 1:
        return [first, canonical_resource(raw_path + "/", raw_query, bucket_prefix)]
    return [first]


def _check(secret: str | None, access_key: str, texts: list[str], signature: str) -> None:
    if secret is None:
        raise errors.InvalidAccessKeyId(AWSAccessKeyId=access_key)
    if not any(hmac.compare_digest(sign(secret, t).encode(), signature.encode()) for t in texts):
        raise errors.SignatureDoesNotMatch(StringToSign=texts[0])


def authenticate_v2(method: str, raw_path: str, raw_query: str, query: Mapping[str, str],
                    headers: Mapping[str, str], now: datetime,
                    lookup_secret: Callable[[str], str | None], bucket_prefix: str = ""):
    """Returns (access_key, signed_at, presigned) or raises the S3 error for the request."""
    resources = _resources(raw_path, raw_query, bucket_prefix)
    authorization = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
    if authorization is not None:
        credential = authorization[len("AWS "):]
        access_key, sep, signature = credential.rpartition(":")
        if not sep or not access_key:
            raise errors.AuthorizationHeaderMalformed("The authorization header is malformed: "
                                                      "expected 'AWS AccessKeyId:Signature'.")
        lowered = {k.lower(): v for k, v in headers.items()}
        date_text = lowered.get("x-amz-date") or lowered.get("date")
        try:
            signed_at = parsedate_to_datetime(date_text) if date_text else None
        except (TypeError, ValueError):
            signed_at = None
        if signed_at is None:
            raise errors.AccessDenied("AWS authentication requires a valid Date or x-amz-date header")
        if signed_at.tzinfo is None:
            signed_at = signed_at.replace(tzinfo=timezone.utc)
        if abs(now - signed_at) > SKEW:
            raise errors.RequestTimeTooSkewed(RequestTime=date_text, ServerTime=now.isoformat())
        # With x-amz-date present, the Date line is empty (it is signed among the x-amz-* headers).
        date_line = "" if "x-amz-date" in lowered else lowered.get("date", "")
        _check(lookup_secret(access_key), access_key,
               [string_to_sign(method, headers, date_line, r) for r in resources], signature)
        return access_key, signed_at, False
    access_key, signature, expires = query.get("AWSAccessKeyId", ""), query.get("Signature", ""), query.get("Expires", "")
    if not expires.isdigit():
        raise errors.AccessDenied("Query-string authentication requires the Signature, Expires and "
                                  "AWSAccessKeyId parameters")
    if int(expires) < now.timestamp():
        raise errors.AccessDenied("Request has expired", Expires=expires)
    # A presigner moves the x-amz-* headers it signed into the query string.
    signed = {**{k: v for k, v in headers.items() if k.lower() != "authorization"},
              **{k: v for k, v in query.items()
                 if k.lower().startswith("x-amz-") or k.lower() in ("content-type", "content-md5")}}
    _check(lookup_secret(access_key), access_key,
           [string_to_sign(method, signed, expires, r) for r in resources], signature)
    return access_key, now, True
