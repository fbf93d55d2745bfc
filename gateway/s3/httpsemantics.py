"""Pure HTTP semantics S3 relies on: byte ranges, conditional requests, object headers.

No aiohttp here: plain values in, plain values (or S3Error) out, so every rule is unit-tested.
"""
from __future__ import annotations

import email.utils
import re
from datetime import datetime, timezone
from typing import Mapping

from gateway.s3 import errors

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)

# Headers S3 stores with the object and returns on GET/HEAD (lower-case -> canonical spelling).
STORED_HEADERS = {
    "content-encoding": "Content-Encoding",
    "content-disposition": "Content-Disposition",
    "content-language": "Content-Language",
    "cache-control": "Cache-Control",
    "expires": "Expires",
    "x-amz-website-redirect-location": "x-amz-website-redirect-location",
    "x-amz-storage-class": "x-amz-storage-class",
}
RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}
USER_META_LIMIT = 2048  # bytes of x-amz-meta-* names and values, as S3


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive, or None for "the whole object".

    A syntactically invalid or multi-range header is ignored (S3 serves the whole object); a
    valid but unsatisfiable one raises InvalidRange (416)."""
    if not header:
        return None
    m = _RANGE.match(header)
    if not m:
        return None
    first_s, last_s = m.groups()
    if first_s == "" and last_s == "":
        return None
    if first_s == "":  # suffix: the last N bytes
        n = int(last_s)
        if n == 0:
            raise _unsatisfiable(size)
        if size == 0:
            # S3 answers a tail read of an empty object with 200 and no bytes (readers that
            # fetch a file's footer with a suffix range, e.g. Arrow's object_store, rely on it)
            return None
        return max(0, size - n), size - 1
    first = int(first_s)
    last = int(last_s) if last_s else size - 1
    if last_s and last < first:
        return None
    if first >= size:
        raise _unsatisfiable(size)
    return first, min(last, size - 1)


def _unsatisfiable(size: int) -> errors.S3Error:
    return errors.InvalidRange(headers={"Content-Range": f"bytes */{size}"},
                               ActualObjectSize=str(size))


def parse_http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def _etag_matches(header: str, etag: str) -> bool:
    wanted = [t.strip() for t in header.split(",")]
    return any(t == "*" or t.strip('"') == etag or t.removeprefix("W/").strip('"') == etag
               for t in wanted)


def check_read_conditions(headers: Mapping[str, str], etag: str, last_modified: datetime,
                          prefix: str = "") -> None:
    """RFC 7232 order, as S3 applies it: If-Match, If-Unmodified-Since, If-None-Match,
    If-Modified-Since. Raises PreconditionFailed (412) or NotModified (304).

    With prefix "x-amz-copy-source-" the same rules guard a copy source, and every failure is a 412."""
    lm = last_modified.replace(microsecond=0)
    if_match = headers.get(prefix + "if-match")
    if_unmodified = parse_http_date(headers.get(prefix + "if-unmodified-since"))
    if_none_match = headers.get(prefix + "if-none-match")
    if_modified = parse_http_date(headers.get(prefix + "if-modified-since"))
    not_modified = errors.PreconditionFailed if prefix else errors.NotModified
    if if_match is not None:
        if not _etag_matches(if_match, etag):
            raise errors.PreconditionFailed(Condition="If-Match")
    elif if_unmodified is not None and lm > if_unmodified:
        raise errors.PreconditionFailed(Condition="If-Unmodified-Since")
    if if_none_match is not None:
        if _etag_matches(if_none_match, etag):
            raise not_modified(headers={"ETag": f'"{etag}"'})
    elif if_modified is not None and lm <= if_modified:
        raise not_modified(headers={"ETag": f'"{etag}"'})


def check_write_conditions(headers: Mapping[str, str], current_etag: str | None) -> None:
    """Conditional PUT: If-None-Match: * (create only) and If-Match: <etag> (replace only)."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        if if_none_match.strip() != "*":
            raise errors.NotImplemented_("If-None-Match on PUT supports only '*'")
        if current_etag is not None:
            raise errors.PreconditionFailed(Condition="If-None-Match")
    if_match = headers.get("if-match")
    if if_match is not None:
        if current_etag is None:
            raise errors.NoSuchKey()
        if not _etag_matches(if_match, current_etag):
            raise errors.PreconditionFailed(Condition="If-Match")


def user_metadata(headers: Mapping[str, str]) -> dict[str, str]:
    meta = {}
    total = 0
    for name, value in headers.items():
        lname = name.lower()
        if lname.startswith("x-amz-meta-"):
            short = lname[len("x-amz-meta-"):]
            meta[short] = meta[short] + "," + value if short in meta else value
            total += len(short.encode()) + len(value.encode())
    if total > USER_META_LIMIT:
        raise errors.MetadataTooLarge(f"Your metadata headers are {total} bytes; the limit is "
                                      f"{USER_META_LIMIT}.", Size=str(total),
                                      MaxSizeAllowed=str(USER_META_LIMIT))
    return meta


def stored_headers(headers: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for lname, canon in STORED_HEADERS.items():
        value = headers.get(lname)
        if value is not None:
            out[canon] = value
    return out
