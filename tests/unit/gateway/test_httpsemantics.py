"""Byte ranges, conditional requests (RFC 7232 as S3 applies it) and stored object headers."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from multidict import CIMultiDict

from gateway.s3 import errors
from gateway.s3.httpsemantics import (USER_META_LIMIT, check_read_conditions,
                                      check_write_conditions, parse_http_date, parse_range,
                                      stored_headers, user_metadata)

# ---- ranges ---------------------------------------------------------------------------------------
UNSATISFIABLE = "416"


@pytest.mark.parametrize("header,size,expected", [
    (None, 10, None),
    ("", 10, None),
    ("bytes=0-0", 10, (0, 0)),
    ("bytes=0-9", 10, (0, 9)),
    ("bytes=3-5", 10, (3, 5)),
    ("bytes=5-100", 10, (5, 9)),            # the end is clamped
    ("bytes=9-", 10, (9, 9)),               # open-ended
    ("bytes=0-", 10, (0, 9)),
    ("bytes=-3", 10, (7, 9)),               # suffix: the last 3 bytes
    ("bytes=-10", 10, (0, 9)),
    ("bytes=-25", 10, (0, 9)),              # a suffix longer than the object is all of it
    ("BYTES = 2 - 4", 10, (2, 4)),          # unit case and blanks
    ("bytes=10-", 10, UNSATISFIABLE),       # starts at the end
    ("bytes=10-20", 10, UNSATISFIABLE),
    ("bytes=-0", 10, UNSATISFIABLE),
    # syntactically invalid or unsupported: ignored, the whole object is served
    ("bytes=5-3", 10, None),
    ("bytes=-", 10, None),
    ("bytes=0-1,3-4", 10, None),            # multiple ranges
    ("bytes=a-b", 10, None),
    ("items=0-1", 10, None),
    ("bytes 0-1", 10, None),
    ("bytes=1.5-2", 10, None),
    # the empty object
    ("bytes=0-", 0, UNSATISFIABLE),
    ("bytes=0-0", 0, UNSATISFIABLE),
    ("bytes=-5", 0, None),                  # a tail read of an empty object: 200, empty body
    ("bytes=-0", 0, UNSATISFIABLE),
    ("bytes=3-1", 0, None),
])
def test_parse_range(header: str | None, size: int, expected) -> None:
    if expected == UNSATISFIABLE:
        with pytest.raises(errors.InvalidRange) as info:
            parse_range(header, size)
        assert info.value.status == 416
        assert info.value.headers["Content-Range"] == f"bytes */{size}"
        assert info.value.extra["ActualObjectSize"] == str(size)
    else:
        assert parse_range(header, size) == expected


def test_parse_range_large_numbers_are_clamped() -> None:
    assert parse_range("bytes=0-" + "9" * 30, 5 << 30) == (0, (5 << 30) - 1)


# ---- conditional reads ----------------------------------------------------------------------------
ETAG = "0123456789abcdef0123456789abcdef"
LM = datetime(2024, 5, 17, 12, 30, 45, 678_000, tzinfo=timezone.utc)   # stored with sub-seconds


def http_date(when: datetime) -> str:
    return format_datetime(when.astimezone(timezone.utc), usegmt=True)


AT_LM = http_date(LM)                           # the same second as the object's time
BEFORE = http_date(LM - timedelta(hours=1))
AFTER = http_date(LM + timedelta(hours=1))
OK, FAILED, NOT_MODIFIED = "200", "412", "304"


@pytest.mark.parametrize("headers,expected", [
    ({}, OK),
    # If-Match
    ({"if-match": f'"{ETAG}"'}, OK),
    ({"if-match": ETAG}, OK),
    ({"if-match": "*"}, OK),
    ({"if-match": f'"other", "{ETAG}"'}, OK),
    ({"if-match": '"other"'}, FAILED),
    # If-Unmodified-Since
    ({"if-unmodified-since": AFTER}, OK),
    ({"if-unmodified-since": AT_LM}, OK),     # compared at one-second precision
    ({"if-unmodified-since": BEFORE}, FAILED),
    ({"if-unmodified-since": "not a date"}, OK),   # an invalid date is ignored
    # If-None-Match
    ({"if-none-match": '"other"'}, OK),
    ({"if-none-match": f'"{ETAG}"'}, NOT_MODIFIED),
    ({"if-none-match": "*"}, NOT_MODIFIED),
    ({"if-none-match": f'W/"{ETAG}"'}, NOT_MODIFIED),
    # If-Modified-Since
    ({"if-modified-since": BEFORE}, OK),
    ({"if-modified-since": AT_LM}, NOT_MODIFIED),
    ({"if-modified-since": AFTER}, NOT_MODIFIED),
    ({"if-modified-since": "yesterday"}, OK),
    # precedence, as S3 documents it
    ({"if-match": f'"{ETAG}"', "if-unmodified-since": BEFORE}, OK),        # If-Match true wins
    ({"if-match": '"other"', "if-unmodified-since": AFTER}, FAILED),
    ({"if-none-match": f'"{ETAG}"', "if-modified-since": BEFORE}, NOT_MODIFIED),
    ({"if-none-match": '"other"', "if-modified-since": AFTER}, OK),         # If-None-Match decides
    ({"if-match": '"other"', "if-none-match": f'"{ETAG}"'}, FAILED),        # 412 before 304
    ({"if-unmodified-since": BEFORE, "if-modified-since": AFTER}, FAILED),
    ({"if-match": f'"{ETAG}"', "if-none-match": f'"{ETAG}"'}, NOT_MODIFIED),
    ({"if-match": f'"{ETAG}"', "if-modified-since": AFTER}, NOT_MODIFIED),
])
def test_read_conditions(headers: dict[str, str], expected: str) -> None:
    outcome = OK
    try:
        check_read_conditions(headers, ETAG, LM)
    except errors.NotModified as exc:
        outcome = NOT_MODIFIED
        assert exc.status == 304 and exc.headers["ETag"] == f'"{ETAG}"'
    except errors.PreconditionFailed as exc:
        outcome = FAILED
        assert exc.status == 412
    assert outcome == expected


@pytest.mark.parametrize("headers,expected", [
    ({"x-amz-copy-source-if-match": f'"{ETAG}"'}, OK),
    ({"x-amz-copy-source-if-match": '"other"'}, FAILED),
    ({"x-amz-copy-source-if-none-match": f'"{ETAG}"'}, FAILED),    # a copy never answers 304
    ({"x-amz-copy-source-if-modified-since": AFTER}, FAILED),
    ({"x-amz-copy-source-if-unmodified-since": BEFORE}, FAILED),
    ({"x-amz-copy-source-if-match": f'"{ETAG}"',
      "x-amz-copy-source-if-unmodified-since": BEFORE}, OK),
    ({"x-amz-copy-source-if-none-match": f'"{ETAG}"',
      "x-amz-copy-source-if-modified-since": BEFORE}, FAILED),
    ({"if-none-match": f'"{ETAG}"'}, OK),                       # the plain headers are not the copy's
])
def test_copy_source_conditions(headers: dict[str, str], expected: str) -> None:
    try:
        check_read_conditions(headers, ETAG, LM, prefix="x-amz-copy-source-")
    except errors.PreconditionFailed:
        assert expected == FAILED
    else:
        assert expected == OK


def test_parse_http_date_forms() -> None:
    assert parse_http_date(AT_LM) == LM.replace(microsecond=0)
    assert parse_http_date("Fri, 17 May 2024 12:30:45 +0200") == \
        datetime(2024, 5, 17, 10, 30, 45, tzinfo=timezone.utc)
    assert parse_http_date("Fri, 17 May 2024 12:30:45") == LM.replace(microsecond=0)  # no zone: UTC
    assert parse_http_date(None) is None and parse_http_date("garbage") is None


# ---- conditional writes ---------------------------------------------------------------------------
@pytest.mark.parametrize("headers,current,expected", [
    ({}, None, OK),
    ({}, ETAG, OK),
    ({"if-none-match": "*"}, None, OK),
    ({"if-none-match": "*"}, ETAG, errors.PreconditionFailed),
    ({"if-none-match": f'"{ETAG}"'}, ETAG, errors.NotImplemented_),
    ({"if-match": f'"{ETAG}"'}, ETAG, OK),
    ({"if-match": '"other"'}, ETAG, errors.PreconditionFailed),
    ({"if-match": f'"{ETAG}"'}, None, errors.NoSuchKey),
    ({"if-match": "*"}, ETAG, OK),
])
def test_write_conditions(headers: dict[str, str], current: str | None, expected) -> None:
    if expected == OK:
        check_write_conditions(headers, current)
    else:
        with pytest.raises(expected):
            check_write_conditions(headers, current)


# ---- user metadata and stored headers ---------------------------------------------------------------
def test_user_metadata_names_are_lower_case_without_prefix_and_repeats_joined() -> None:
    headers = CIMultiDict([("X-Amz-Meta-Colour", "blue"), ("x-amz-meta-colour", "green"),
                           ("X-AMZ-META-Size", "L"), ("Content-Type", "text/plain"),
                           ("x-amz-metadata-directive", "COPY")])
    assert user_metadata(headers) == {"colour": "blue,green", "size": "L"}


def test_user_metadata_limit_is_2_kb_of_names_and_values() -> None:
    name = "n" * 48
    at_limit = {f"x-amz-meta-{name}": "v" * (USER_META_LIMIT - len(name))}
    assert user_metadata(at_limit) == {name: "v" * (USER_META_LIMIT - len(name))}
    over = {f"x-amz-meta-{name}": "v" * (USER_META_LIMIT - len(name) + 1)}
    with pytest.raises(errors.MetadataTooLarge) as info:
        user_metadata(over)
    assert info.value.status == 400 and info.value.extra["Size"] == str(USER_META_LIMIT + 1)
    # bytes, not characters: 1000 two-byte characters plus a name are over 2 KB
    with pytest.raises(errors.MetadataTooLarge):
        user_metadata({"x-amz-meta-a": "é" * 1024})
    many = {f"x-amz-meta-k{i:03d}": "x" * 16 for i in range(100)}   # 100 * 20 bytes = 2000
    assert len(user_metadata(many)) == 100


def test_stored_headers_keeps_only_the_headers_s3_stores() -> None:
    headers = CIMultiDict({"Content-Encoding": "gzip", "CACHE-CONTROL": "no-cache",
                           "content-disposition": 'attachment; filename="a.txt"',
                           "Expires": "Thu, 01 Dec 2094 16:00:00 GMT",
                           "Content-Language": "fr", "x-amz-storage-class": "STANDARD",
                           "x-amz-website-redirect-location": "/other",
                           "Authorization": "secret", "Content-Type": "text/plain",
                           "x-amz-meta-a": "b", "Content-Length": "3"})
    assert stored_headers(headers) == {
        "Content-Encoding": "gzip", "Cache-Control": "no-cache",
        "Content-Disposition": 'attachment; filename="a.txt"',
        "Expires": "Thu, 01 Dec 2094 16:00:00 GMT", "Content-Language": "fr",
        "x-amz-storage-class": "STANDARD", "x-amz-website-redirect-location": "/other"}
    assert stored_headers(CIMultiDict()) == {}
