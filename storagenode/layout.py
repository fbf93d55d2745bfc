"""On-disk value formats of the storage node, version 1.

Shard value:   version (1 byte) | xxh3_128 of data (16 bytes) | data
Record value:  version (1 byte) | stamp (16 bytes) | xxh3_64 of stamp+value (8 bytes) | value

The shard digest is the one the sender computed before the bytes crossed the network, so it
covers the data end to end. A value whose version byte is unknown is treated as corrupt: it was
either damaged or written by software this node does not understand, and neither may be served.
"""
from __future__ import annotations

import struct
from typing import NamedTuple

import xxhash

VALUE_VERSION = 1
STAMP_SIZE = 16
SHARD_DIGEST_SIZE = 16
SHARD_HEADER_SIZE = 1 + SHARD_DIGEST_SIZE
RECORD_HEADER_SIZE = 1 + STAMP_SIZE + 8
_RECORD_CHECK = struct.Struct(">Q")


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


def _record_check(stamp: bytes | memoryview, value: bytes | memoryview) -> bytes:
    h = xxhash.xxh3_64()
    h.update(stamp)
    h.update(value)
    return _RECORD_CHECK.pack(h.intdigest())


def encode_record(stamp: bytes, value: bytes | memoryview) -> bytes:
    if len(stamp) != STAMP_SIZE:
        raise ValueError(f"a stamp is {STAMP_SIZE} bytes, got {len(stamp)}")
    return b"".join((bytes((VALUE_VERSION,)), stamp, _record_check(stamp, value), value))


def decode_record(stored: bytes | memoryview) -> tuple[bytes, bytes]:
    """(stamp, value) of a stored record, checked."""
    view = memoryview(stored)
    if len(view) < RECORD_HEADER_SIZE or view[0] != VALUE_VERSION:
        raise CorruptValue("bad record header")
    stamp = view[1:1 + STAMP_SIZE]
    value = view[RECORD_HEADER_SIZE:]
    if _record_check(stamp, value) != view[1 + STAMP_SIZE:RECORD_HEADER_SIZE]:
        raise CorruptValue("record does not match its xxh3_64")
    return bytes(stamp), bytes(value)
