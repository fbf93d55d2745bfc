"""Bucket-name and object-key validation.

Bucket names follow AWS's rules for general purpose buckets (docs: "General purpose bucket naming
rules"), so a bucket created here can be addressed virtual-hosted style and migrated to or from AWS.
Keys are opaque: any Unicode text of 1..1024 UTF-8 bytes is a key. We never normalise a key
(no path collapsing, no Unicode normalisation); clients such as restic and rclone rely on getting
back exactly the bytes they stored.
"""
from __future__ import annotations

import re

from gateway.s3.errors import InvalidBucketName, KeyTooLongError, InvalidArgument

MIN_BUCKET_LENGTH = 3
MAX_BUCKET_LENGTH = 63
MAX_KEY_BYTES = 1024

_BUCKET_CHARS = re.compile(r"[a-z0-9.-]+")
_DOTTED_QUAD = re.compile(r"\d+\.\d+\.\d+\.\d+")
# Reserved by AWS for access points, Object Lambda, Multi-Region Access Points, directory and table
# buckets; refusing them keeps a later migration to or from AWS possible.
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def validate_bucket_name(name: str) -> None:
    """Raise InvalidBucketName, with the rule that failed, unless `name` is a valid bucket name."""
    reason = _bucket_name_problem(name)
    if reason is not None:
        raise InvalidBucketName(f"The specified bucket is not valid: {reason}.", BucketName=name)


def _bucket_name_problem(name: str) -> str | None:
    if not MIN_BUCKET_LENGTH <= len(name) <= MAX_BUCKET_LENGTH:
        return f"must be {MIN_BUCKET_LENGTH} to {MAX_BUCKET_LENGTH} characters long"
    if not _BUCKET_CHARS.fullmatch(name):
        return "only lowercase letters, digits, '.' and '-' are allowed"
    if not (name[0].isalnum() and name[-1].isalnum()):
        return "must begin and end with a letter or digit"
    if ".." in name:
        return "must not contain two adjacent periods"
    if _DOTTED_QUAD.fullmatch(name):
        return "must not be formatted as an IP address"
    for prefix in _RESERVED_PREFIXES:
        if name.startswith(prefix):
            return f"the prefix {prefix!r} is reserved"
    for suffix in _RESERVED_SUFFIXES:
        if name.endswith(suffix):
            return f"the suffix {suffix!r} is reserved"
    return None


def validate_key(key: str) -> None:
    """Raise unless `key` is a storable object key: non-empty and at most 1024 UTF-8 bytes.

    Anything else is allowed, including '/'-runs, '..' segments, a trailing '/', control characters
    and NUL: S3 keys are opaque strings, not paths.
    """
    if not key:
        raise InvalidArgument("An object key must not be empty.", ArgumentName="key")
    # A str from the router is always valid UTF-8, but one built elsewhere could hold lone
    # surrogates (e.g. from os.fsdecode); those cannot be stored or returned to a client.
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidArgument("The object key is not valid UTF-8.", ArgumentName="key") from None
    if size > MAX_KEY_BYTES:
        raise KeyTooLongError(f"Your key is too long: {size} bytes, the maximum is {MAX_KEY_BYTES}.",
                              Size=str(size), MaxSizeAllowed=str(MAX_KEY_BYTES))
