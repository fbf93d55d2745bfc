"""On-disk value formats of the storage node.

Shard value:      version 1 (1 byte) | xxh3_128 of data (16 bytes) | data
Record value v2:  version 2 (1 byte) | stamp (16 bytes) | xxh3_64 of the rest (8 bytes)
                  | head length (4 bytes) | value
Record value v1:  version 1 (1 byte) | stamp (16 bytes) | xxh3_64 of stamp+value (8 bytes) | value
                  (still read: its head is the whole value)

A record's head is a prefix of its value that its writer marked as enough for listings (an
object's size and ETag, not its inline bytes): scans may return heads only.

The shard digest is the one the sender computed before the bytes crossed the network, so it
covers the data end to end. A value whose version byte is unknown is treated as corrupt: it was
either damaged or written by software this node does not understand, and neither may be served.
"""
from __future__ import annotations

import struct
from typing import NamedTuple

import xxhash

VALUE_VERSION = 1                  # shards
RECORD_VERSION = 2
STAMP_SIZE = 16
SHARD_DIGEST_SIZE = 16
SHARD_HEADER_SIZE = 1 + SHARD_DIGEST_SIZE
RECORD_HEADER_SIZE_V1 = 1 + STAMP_SIZE + 8
RECORD_HEADER_SIZE = RECORD_HEADER_SIZE_V1 + 4
_RECORD_CHECK = struct.Struct(">Q")
_HEAD_LEN = struct.Struct(">I")


class CorruptValue(ValueError):
    """Stored bytes that fail their checksum or carry an unknown version."""


def shard_digest(data: bytes | memoryview) -> bytes:
    return xxhash.xxh3_128_digest(data)


def shard_header(digest: bytes) -> bytes:
    return bytes((VALUE_VERSION,)) + digest


class ShardView(NamedTuple):
    digest: bytes
    data: memoryview   # a view into the stored value: valid only while its transaction is open


def open_shard(stored: bytes | memoryview) -> ShardView:
    """Check a stored shard value in full and return its digest and data."""
    view = memoryview(stored)
    if len(view) < SHARD_HEADER_SIZE or view[0] != VALUE_VERSION:
        raise CorruptValue("bad shard header")
    digest = bytes(view[1:SHARD_HEADER_SIZE])
    data = view[SHARD_HEADER_SIZE:]
    if shard_digest(data) != digest:
        raise CorruptValue("shard data does not match its xxh3_128")
    return ShardView(digest, data)


def stored_shard_size(stored_len: int) -> int:
    return max(stored_len - SHARD_HEADER_SIZE, 0)


def _record_check(stamp: bytes | memoryview, *parts: bytes | memoryview) -> bytes:
    h = xxhash.xxh3_64()
    h.update(stamp)
    for part in parts:
        h.update(part)
    return _RECORD_CHECK.pack(h.intdigest())


def encode_record(stamp: bytes, value: bytes | memoryview, head_len: int | None = None) -> bytes:
    """A record value; head_len (default: the whole value) bounds what a heads-only scan returns."""
    if len(stamp) != STAMP_SIZE:
        raise ValueError(f"a stamp is {STAMP_SIZE} bytes, got {len(stamp)}")
    head_len = len(value) if head_len is None else head_len
    if not 0 <= head_len <= len(value):
        raise ValueError(f"head length {head_len} outside the {len(value)}-byte value")
    head = _HEAD_LEN.pack(head_len)
    return b"".join((bytes((RECORD_VERSION,)), stamp, _record_check(stamp, head, value), head,
                     value))


def decode_record(stored: bytes | memoryview, *, head_only: bool = False) -> tuple[bytes, bytes]:
    """(stamp, value) of a stored record, checked in full; with head_only, the value's head."""
    view = memoryview(stored)
    version = view[0] if len(view) else None
    if version not in (1, RECORD_VERSION) or len(view) < (
            RECORD_HEADER_SIZE if version == RECORD_VERSION else RECORD_HEADER_SIZE_V1):
        raise CorruptValue("bad record header")
    # Both versions checksum the stamp and everything after the checksum.
    stamp, rest = view[1:1 + STAMP_SIZE], view[RECORD_HEADER_SIZE_V1:]
    if _record_check(stamp, rest) != view[1 + STAMP_SIZE:RECORD_HEADER_SIZE_V1]:
        raise CorruptValue("record does not match its xxh3_64")
    if version == 1:
        return bytes(stamp), bytes(rest)
    (head_len,) = _HEAD_LEN.unpack(rest[:4])
    value = rest[4:]
    if head_len > len(value):
        raise CorruptValue("record head longer than its value")
    return bytes(stamp), bytes(value[:head_len] if head_only else value)
