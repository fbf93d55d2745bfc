"""Metadata records: their keys, where they live, and their versioned encoding.

Storage nodes see records as opaque (key, stamp, value) last-writer-wins registers. Only the
gateway (and the CLI through it) interprets the values, encoded as msgpack maps with "v": 1.

A value's head is its first msgpack object (head_length), and a node can return heads alone to
a scan. Object records (format 2) use that: the head holds what a listing shows (size, ETag,
time), a second map holds the rest (inline bytes, data placement, parts, headers), so listing a
bucket of small objects does not carry their bytes.

Placement (see docs/architecture.md, "Metadata"):
- Object records are partitioned by bucket: every object record of bucket B lives on the replicas
  of ring partition hash(b"bucket/" + B). A listing is therefore a range scan on one replica set.
- Bucket and access-key records live on the replicas of the system partition hash(b"system").
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

import msgpack

RECORD_FORMAT = 1
OBJECT_FORMAT = 2        # head map + tail map; format 1 (one map) is still read
SYSTEM_PARTITION = b"system"

BUCKET_PREFIX = b"bkt/"
ACCESS_KEY_PREFIX = b"key/"
OBJECT_PREFIX = b"obj/"


class RecordFormatError(ValueError):
    pass


def bucket_partition(bucket: str) -> bytes:
    return b"bucket/" + bucket.encode()


def bucket_key(bucket: str) -> bytes:
    return BUCKET_PREFIX + bucket.encode()


def access_key_key(access_key: str) -> bytes:
    return ACCESS_KEY_PREFIX + access_key.encode()


def object_prefix(bucket: str) -> bytes:
    # Bucket names never contain "/", so this prefix is unambiguous, and keys sort by their UTF-8
    # bytes within it, which is exactly S3's listing order.
    return OBJECT_PREFIX + bucket.encode() + b"/"


# A storage node takes record keys of at most 511 bytes (LMDB's limit); one byte less, so that a
# scan can always resume at `last_key + b"\x00"`. An S3 key may be 1024 bytes long.
RECORD_KEY_MAX = 510
_LONG_KEY_MARK = b"\xff"  # never in UTF-8: a hashed record key cannot equal a verbatim one
_LONG_KEY_HASH = 15


def object_key(bucket: str, key: str) -> bytes:
    """The record key of an object: the bucket prefix and the key's UTF-8 bytes, verbatim if that
    fits in RECORD_KEY_MAX. A longer one keeps its first `object_key_stem(bucket)` bytes, then
    0xFF and a hash of the whole key; its record carries the full key (ObjectRecord.key).

    Record keys therefore sort as the keys do, except among those longer than the stem that share
    it: Catalog.scan_objects sorts such a run by the full keys."""
    return _bounded_key(object_prefix(bucket), key)


def _bounded_key(prefix: bytes, key: str, suffix_size: int = 0) -> bytes:
    """prefix + key, or prefix + stem + 0xFF + hash if that would leave less than suffix_size
    bytes of RECORD_KEY_MAX for what the caller appends."""
    raw = key.encode("utf-8", "surrogateescape")
    if len(prefix) + len(raw) + suffix_size <= RECORD_KEY_MAX:
        return prefix + raw
    stem = RECORD_KEY_MAX - suffix_size - len(prefix) - len(_LONG_KEY_MARK) - _LONG_KEY_HASH
    digest = hashlib.blake2b(raw, digest_size=_LONG_KEY_HASH).digest()
    return prefix + raw[:stem] + _LONG_KEY_MARK + digest


def object_key_stem(bucket: str) -> int:
    """How many bytes of a long key its record key keeps."""
    return RECORD_KEY_MAX - len(object_prefix(bucket)) - len(_LONG_KEY_MARK) - _LONG_KEY_HASH


def object_key_is_hashed(bucket: str, key: str) -> bool:
    return len(object_prefix(bucket)) + len(key.encode("utf-8", "surrogateescape")) > RECORD_KEY_MAX


def pack(kind: str, body: dict[str, Any]) -> bytes:
    return msgpack.packb({"v": RECORD_FORMAT, "t": kind, **body}, use_bin_type=True)


def unpack(raw: bytes, kind: str, formats: tuple[int, ...] = (RECORD_FORMAT,)) -> dict[str, Any]:
    """The value's first map (its head), checked for kind and format."""
    try:
        body = msgpack.unpackb(raw, raw=False)
    except msgpack.ExtraData as extra:       # a head followed by more maps
        body = extra.unpacked
    except Exception as exc:
        raise RecordFormatError(f"undecodable {kind} record: {exc}") from exc
    if not isinstance(body, dict) or body.get("v") not in formats or body.get("t") != kind:
        raise RecordFormatError(f"unsupported {kind} record format: {body.get('v') if isinstance(body, dict) else '?'}")
    return body


def head_length(value: bytes) -> int:
    """Bytes of value that make its head: its first msgpack object."""
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=max(len(value), 1024))
    unpacker.feed(value)
    try:
        unpacker.skip()
    except Exception:
        return len(value)               # not msgpack: all of it
    return unpacker.tell()


@dataclass(frozen=True)
class DataRef:
    """Where an object's erasure-coded bytes are: shard i of stripe s is stored on nodes[i] under
    shard_key(data_id, s, i). `missing` lists shard indices that were not durably written."""
    data_id: bytes
    k: int
    m: int
    stripe_size: int
    nodes: tuple[str, ...]
    missing: tuple[int, ...] = ()


def _ref_from(data: dict[str, Any] | None) -> DataRef | None:
    if data is None:
        return None
    return DataRef(data_id=data["data_id"], k=data["k"], m=data["m"],
                   stripe_size=data["stripe_size"], nodes=tuple(data["nodes"]),
                   missing=tuple(data.get("missing", ())))


def _ref_body(ref: DataRef | None) -> dict[str, Any] | None:
    if ref is None:
        return None
    body = asdict(ref)
    body["nodes"], body["missing"] = list(ref.nodes), list(ref.missing)
    return body


@dataclass(frozen=True)
class PartRef:
    """One part of a multipart object (or of an upload in progress): its bytes are either inline
    or erasure-coded under its own data id, exactly as a single-part object's."""
    number: int
    size: int
    etag: str                                               # MD5 hex of the part
    mtime_ns: int = 0
    checksums: dict[str, str] = field(default_factory=dict)
    inline: bytes | None = None
    data: DataRef | None = None

    def body(self) -> dict[str, Any]:
        return {**asdict(self), "data": _ref_body(self.data)}

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> "PartRef":
        return cls(**{**body, "data": _ref_from(body.get("data"))})


@dataclass(frozen=True)
class ObjectRecord:
    size: int
    etag: str
    mtime_ns: int
    content_type: str = "binary/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)   # content-encoding, cache-control, ...
    user_meta: dict[str, str] = field(default_factory=dict)  # x-amz-meta-* (names lower-case, no prefix)
    checksums: dict[str, str] = field(default_factory=dict)  # {"CRC32": b64, ...}
    inline: bytes | None = None
    data: DataRef | None = None
    deleted: bool = False                                    # tombstone
    parts: tuple[PartRef, ...] = ()                          # multipart objects: bytes in parts
    key: str | None = None                                   # the full key, if object_key hashed it
    # The created_ns of the bucket written into: a record left from an earlier bucket of the
    # same name (deleted, then created again) is not the new bucket's. 0: from before this field.
    bucket_ns: int = 0

    def belongs_to(self, bucket_created_ns: int) -> bool:
        return self.bucket_ns in (0, bucket_created_ns)

    def encode(self) -> bytes:
        head = {"v": OBJECT_FORMAT, "t": "obj", "size": self.size, "etag": self.etag,
                "mtime_ns": self.mtime_ns, "content_type": self.content_type,
                "checksums": self.checksums, "deleted": self.deleted, "key": self.key,
                "bucket_ns": self.bucket_ns}
        tail = {"headers": self.headers, "user_meta": self.user_meta, "inline": self.inline,
                "data": _ref_body(self.data), "parts": [p.body() for p in self.parts]}
        return msgpack.packb(head, use_bin_type=True) + msgpack.packb(tail, use_bin_type=True)

    @classmethod
    def decode(cls, raw: bytes) -> "ObjectRecord":
        unpacker = msgpack.Unpacker(raw=False, max_buffer_size=max(len(raw), 1024))
        unpacker.feed(raw)
        try:
            body = next(unpacker)
            tail = next(unpacker, None)
        except Exception as exc:
            raise RecordFormatError(f"undecodable obj record: {exc}") from exc
        if not isinstance(body, dict) or body.get("t") != "obj" or body.get("v") not in (1, 2):
            raise RecordFormatError("unsupported obj record format")
        if body["v"] == OBJECT_FORMAT:
            if not isinstance(tail, dict):
                raise RecordFormatError("obj record without its tail (a head was decoded as whole)")
            body.update(tail)
        body.pop("v"), body.pop("t")
        data = _ref_from(body.pop("data", None))
        parts = tuple(PartRef.from_body(p) for p in body.pop("parts", ()))
        return cls(data=data, parts=parts, **body)

    def extents(self) -> tuple["PartRef", ...]:
        """The object's bytes as a sequence of pieces (one for a single-part object)."""
        if self.parts:
            return self.parts
        return (PartRef(number=1, size=self.size, etag=self.etag, inline=self.inline,
                        data=self.data),)

    @classmethod
    def tombstone(cls, mtime_ns: int) -> "ObjectRecord":
        return cls(size=0, etag="", mtime_ns=mtime_ns, deleted=True)


@dataclass(frozen=True)
class ObjectHead:
    """What a listing needs of an object: decoded from a record's head (or a whole record)."""
    size: int
    etag: str
    mtime_ns: int
    content_type: str = "binary/octet-stream"
    checksums: dict[str, str] = field(default_factory=dict)
    deleted: bool = False
    key: str | None = None
    bucket_ns: int = 0

    belongs_to = ObjectRecord.belongs_to

    @classmethod
    def decode(cls, raw: bytes) -> "ObjectHead":
        body = unpack(raw, "obj", (1, OBJECT_FORMAT))
        return cls(size=body["size"], etag=body["etag"], mtime_ns=body["mtime_ns"],
                   content_type=body.get("content_type", "binary/octet-stream"),
                   checksums=body.get("checksums", {}), deleted=body.get("deleted", False),
                   key=body.get("key"), bucket_ns=body.get("bucket_ns", 0))


@dataclass(frozen=True)
class BucketRecord:
    name: str
    owner: str                      # access key id of the owner
    created_ns: int
    region: str = "us-east-1"
    grants: dict[str, str] = field(default_factory=dict)  # access key -> "read" | "write" | "readwrite"
    deleted: bool = False

    def encode(self) -> bytes:
        return pack("bkt", asdict(self))

    @classmethod
    def decode(cls, raw: bytes) -> "BucketRecord":
        body = unpack(raw, "bkt")
        body.pop("v"), body.pop("t")
        return cls(**body)


@dataclass(frozen=True)
class AccessKeyRecord:
    access_key: str
    secret_key: str
    name: str
    created_ns: int
    deleted: bool = False

    def encode(self) -> bytes:
        return pack("key", asdict(self))

    @classmethod
    def decode(cls, raw: bytes) -> "AccessKeyRecord":
        body = unpack(raw, "key")
        body.pop("v"), body.pop("t")
        return cls(**body)


def shard_key(data_id: bytes, stripe: int, shard: int) -> bytes:
    """Shard keys sort by data id, then stripe, then shard: a data id prefix-scan finds them all."""
    return data_id + stripe.to_bytes(4, "big") + bytes([shard])


# ---- multipart uploads --------------------------------------------------------------------------
# Upload and part records live in the bucket's partition, beside its object records, so an upload
# is listed, completed or aborted through any gateway with the same quorum rules.
UPLOAD_PREFIX = b"mpu/"
PART_PREFIX = b"mpp/"


def upload_prefix(bucket: str) -> bytes:
    return UPLOAD_PREFIX + bucket.encode() + b"/"


def upload_key(bucket: str, key: str, upload_id: str) -> bytes:
    # "\x00" cannot occur in a UTF-8 key's bytes except as NUL, which S3 keys may not hold;
    # it makes uploads of one key sort together, by upload id.
    # A key too long for a record key is hashed as in object_key (the record holds the full key).
    tail = b"\x00" + upload_id.encode()
    return _bounded_key(upload_prefix(bucket), key, len(tail)) + tail


def part_prefix(bucket: str, upload_id: str) -> bytes:
    return PART_PREFIX + bucket.encode() + b"/" + upload_id.encode() + b"/"


def part_key(bucket: str, upload_id: str, number: int) -> bytes:
    return part_prefix(bucket, upload_id) + b"%05d" % number


# Upload states. A Complete marks its upload COMPLETING before it reads the part list, so that a
# part stored concurrently knows whether the part it replaced may still be chosen.
UPLOAD_OPEN, UPLOAD_COMPLETING, UPLOAD_COMPLETED, UPLOAD_ABORTED = "open", "completing", "completed", "aborted"
UPLOAD_LISTED = (UPLOAD_OPEN, UPLOAD_COMPLETING)  # still in progress: listed, completable, abortable


@dataclass(frozen=True)
class UploadRecord:
    upload_id: str
    key: str
    initiated_ns: int
    owner: str
    content_type: str = "binary/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)
    user_meta: dict[str, str] = field(default_factory=dict)
    checksum_algorithm: str | None = None
    checksum_type: str | None = None                        # FULL_OBJECT | COMPOSITE, with an algorithm
    state: str = UPLOAD_OPEN                                # UPLOAD_OPEN, UPLOAD_COMPLETING, ...

    def encode(self) -> bytes:
        return pack("upl", asdict(self))

    @classmethod
    def decode(cls, raw: bytes) -> "UploadRecord":
        body = unpack(raw, "upl")
        body.pop("v"), body.pop("t")
        return cls(**body)


def encode_part(part: PartRef, deleted: bool = False) -> bytes:
    return pack("part", {**part.body(), "deleted": deleted})


def decode_part(raw: bytes) -> tuple[PartRef, bool]:
    body = unpack(raw, "part")
    body.pop("v"), body.pop("t")
    deleted = body.pop("deleted", False)
    return PartRef.from_body(body), deleted
