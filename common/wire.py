"""Gateway <-> storage-node wire format, version 2.

One request or response is one zmq multipart message:

    frame 0  header   struct ">4sBBQ": magic b"CRN\\x00", version, op-or-status, request id
    frame 1  args     msgpack map (small: keys, stamps, offsets, counts) - never bulk bytes
    frame 2+ payload  raw bytes (shard data, record values), zero-copy, no base64 or JSON

A ROUTER socket on the node prefixes the DEALER's identity frame; the node echoes the request id
so the client can match responses that arrive out of order (no head-of-line blocking).

Bump VERSION on any incompatible change; a node answers an unknown version with
Status.UNSUPPORTED_VERSION rather than guessing. Version 2: a RECORD_SCAN reply carries its values
in one payload frame with their sizes in args (a frame per value cost more than the values).
"""
from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Sequence

import msgpack

MAGIC = b"CRN\x00"
VERSION = 2
_HEADER = struct.Struct(">4sBBQ")
HEADER_SIZE = _HEADER.size


class Op(enum.IntEnum):
    PING = 1
    SHARD_PUT = 2       # args {key, xxh}            payload [data]          -> {}
    SHARD_GET = 3       # args {key, offset?, length?} -> {size, xxh}        payload [slice]
    SHARD_DELETE = 4    # args {key}                  -> {existed}
    SHARD_SCAN = 5      # args {prefix, start?, limit} -> {keys, sizes, more}
    RECORD_PUT = 6      # args {key, stamp, head?, replaced?} payload [value]
    #                     -> {applied, stamp, replaced_stamp?} payload [replaced value, if any]
    RECORD_GET = 7      # args {key}                  -> {stamp}             payload [value]
    RECORD_DELETE = 8   # args {key, stamp?}          -> {existed, deleted}
    RECORD_SCAN = 9     # args {prefix, start?, limit, heads?} -> {keys, stamps, sizes, more, corrupt}
    #                     payload [the values (only their heads with heads=True) back to back]
    STATS = 10          # args {}                     -> {node_id, shards, records, ...}


class Status(enum.IntEnum):
    OK = 0
    NOT_FOUND = 1
    CORRUPT = 2          # stored bytes fail their checksum: never returned as good
    FULL = 3             # map full at its maximum size: reads keep working
    BAD_REQUEST = 4
    INTERNAL = 5
    UNSUPPORTED_VERSION = 6
    CHECKSUM_MISMATCH = 7  # payload damaged in transit (does not match the sender's xxh)


# Idempotent operations may be retried by the client after a timeout; the rest may not.
IDEMPOTENT_OPS = frozenset({Op.PING, Op.SHARD_GET, Op.SHARD_SCAN, Op.RECORD_GET,
                            Op.RECORD_SCAN, Op.STATS, Op.SHARD_DELETE, Op.RECORD_PUT,
                            Op.SHARD_PUT})
# SHARD_PUT and RECORD_PUT are idempotent by construction: a shard key names immutable bytes,
# and a record put is a last-writer-wins register keyed by its stamp.


class RecordPutOutcome(NamedTuple):
    """What a RECORD_PUT did, as the node's store returns it and the client reads it back."""
    applied: bool
    stamp: bytes                                   # the stamp the register holds now
    replaced: tuple[bytes, bytes] | None = None    # (stamp, value) overwritten, when asked


class WireError(ValueError):
    """A frame that is not a valid Cairn message."""


@dataclass(frozen=True)
class Message:
    """A decoded request (code is an Op) or response (code is a Status)."""
    code: int
    request_id: int
    args: dict[str, Any] = field(default_factory=dict)
    payload: Sequence[bytes | memoryview] = ()
    version: int = VERSION


def encode(code: int, request_id: int, args: dict[str, Any] | None = None,
           payload: Sequence[bytes | memoryview] = ()) -> list[bytes | memoryview]:
    header = _HEADER.pack(MAGIC, VERSION, int(code), request_id)
    return [header, msgpack.packb(args or {}, use_bin_type=True), *payload]


def decode(frames: Sequence[bytes | memoryview]) -> Message:
    if len(frames) < 2:
        raise WireError(f"expected at least 2 frames, got {len(frames)}")
    header = bytes(frames[0])
    if len(header) != HEADER_SIZE:
        raise WireError("bad header length")
    magic, version, code, request_id = _HEADER.unpack(header)
    if magic != MAGIC:
        raise WireError("bad magic")
    if version != VERSION:
        # Still return the id so the peer can be told which request was refused.
        return Message(code=code, request_id=request_id, version=version)
    try:
        args = msgpack.unpackb(bytes(frames[1]), raw=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise WireError(f"bad args frame: {exc}") from exc
    if not isinstance(args, dict):
        raise WireError("args frame is not a map")
    return Message(code=code, request_id=request_id, args=args, payload=list(frames[2:]),
                   version=version)
