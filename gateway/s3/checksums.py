"""Body digests: the MD5 behind the ETag, Content-MD5, and the flexible x-amz-checksum-* family.

Every body byte is fed once to `BodyDigests.update`, which hashes it for every digest the request
needs. The hashing is CPU work that releases the GIL for large buffers (hashlib, zlib); the
caller runs big updates in an executor (see `BodyDigests.feed`). One instance belongs to one
request and must be fed sequentially, never from two threads at once.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import enum
import hashlib
import zlib
from collections.abc import Iterable, Mapping
from concurrent.futures import Executor
from typing import Protocol

from awscrt import checksums as crt

from gateway.s3 import errors

OFFLOAD_MIN_BYTES = 256 * 1024  # below this, a thread hop costs more than the hashing


class Hasher(Protocol):
    def update(self, data: bytes | memoryview) -> None: ...
    def digest(self) -> bytes: ...


class _Crc:
    """A CRC kept as an int; `digest` is big-endian, as S3 sends it."""

    def __init__(self, function, size: int) -> None:
        self._function = function
        self._size = size
        self._value = 0

    def update(self, data: bytes | memoryview) -> None:
        self._value = self._function(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(self._size, "big")


class ChecksumAlgorithm(enum.Enum):
    CRC32 = "CRC32"
    CRC32C = "CRC32C"
    CRC64NVME = "CRC64NVME"
    SHA1 = "SHA1"
    SHA256 = "SHA256"

    @property
    def header(self) -> str:
        """`x-amz-checksum-crc32` etc.: the request/response header and the trailer name."""
        return f"x-amz-checksum-{self.value.lower()}"

    @property
    def digest_size(self) -> int:
        return _DIGEST_SIZES[self]

    def hasher(self) -> Hasher:
        if self is ChecksumAlgorithm.CRC32:
            return _Crc(zlib.crc32, 4)
        if self is ChecksumAlgorithm.CRC32C:
            return _Crc(crt.crc32c, 4)
        if self is ChecksumAlgorithm.CRC64NVME:
            return _Crc(crt.crc64nvme, 8)
        return hashlib.new(self.value.lower())

    @classmethod
    def parse(cls, name: str, *, header: str = "x-amz-sdk-checksum-algorithm") -> ChecksumAlgorithm:
        """The spelling used by x-amz-sdk-checksum-algorithm / x-amz-checksum-algorithm."""
        try:
            return cls(name.strip().upper())
        except ValueError:
            raise errors.InvalidRequest(f"Value for {header} header is invalid.") from None

    @classmethod
    def from_header(cls, header: str) -> ChecksumAlgorithm | None:
        return _BY_HEADER.get(header.strip().lower())


_DIGEST_SIZES = {ChecksumAlgorithm.CRC32: 4, ChecksumAlgorithm.CRC32C: 4,
                 ChecksumAlgorithm.CRC64NVME: 8, ChecksumAlgorithm.SHA1: 20,
                 ChecksumAlgorithm.SHA256: 32}
_BY_HEADER = {alg.header: alg for alg in ChecksumAlgorithm}


# Multipart checksum types (x-amz-checksum-type). A FULL_OBJECT checksum is the CRC of the whole
# object, combined from the parts' CRCs and sizes; a COMPOSITE one is the algorithm over the parts'
# raw checksums, suffixed "-N". CRC64NVME has only the first kind, the SHA family only the second.
FULL_OBJECT, COMPOSITE = "FULL_OBJECT", "COMPOSITE"
_COMBINE = {ChecksumAlgorithm.CRC32: crt.combine_crc32, ChecksumAlgorithm.CRC32C: crt.combine_crc32c,
            ChecksumAlgorithm.CRC64NVME: crt.combine_crc64nvme}


def multipart_checksum_type(algorithm: ChecksumAlgorithm, requested: str | None) -> str:
    """The checksum type of an upload: the requested one if the algorithm has it, else S3's
    default for the algorithm (FULL_OBJECT for CRC64NVME, COMPOSITE otherwise)."""
    if requested is None:
        return FULL_OBJECT if algorithm is ChecksumAlgorithm.CRC64NVME else COMPOSITE
    kind = requested.strip().upper()
    if kind not in (FULL_OBJECT, COMPOSITE):
        raise errors.InvalidRequest("Value for x-amz-checksum-type header is invalid.")
    supported = algorithm in _COMBINE if kind == FULL_OBJECT else algorithm is not ChecksumAlgorithm.CRC64NVME
    if not supported:
        raise errors.InvalidRequest(f"The {algorithm.value} checksum algorithm does not support the "
                                    f"{kind} checksum type.")
    return kind


def multipart_checksum(algorithm: ChecksumAlgorithm, kind: str, parts: Iterable[tuple[str, int]]) -> str:
    """The object's checksum from its parts' (base64 checksum, size) pairs, without reading a byte."""
    parts = list(parts)
    if kind == FULL_OBJECT:
        combine, value = _COMBINE[algorithm], 0
        for part_checksum, size in parts:
            value = combine(value, int.from_bytes(base64.b64decode(part_checksum), "big"), size)
        return b64(value.to_bytes(algorithm.digest_size, "big"))
    hasher = algorithm.hasher()
    for part_checksum, _ in parts:
        hasher.update(base64.b64decode(part_checksum))
    return f"{b64(hasher.digest())}-{len(parts)}"


def checksum_type_of(value: str) -> str:
    """A stored object checksum's type: only a COMPOSITE one ends in "-N"."""
    return COMPOSITE if "-" in value else FULL_OBJECT


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def _decode_b64(value: str, size: int) -> bytes | None:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == size else None


def validate_checksum_value(algorithm: ChecksumAlgorithm, value: str) -> str:
    """The value, stripped, if it is base64 of the algorithm's digest size; else InvalidRequest."""
    if _decode_b64(value, algorithm.digest_size) is None:
        raise errors.InvalidRequest(f"Value for {algorithm.header} header is invalid.")
    return value.strip()


def _header_values(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def requested_checksums(headers: Mapping[str, str]) -> dict[ChecksumAlgorithm, str | None]:
    """The one flexible checksum a request declares: {alg: value}, or {alg: None} for a trailer.

    Empty when none is declared. More than one, an unknown trailer, an invalid value, or an
    x-amz-sdk-checksum-algorithm with nothing to back it is InvalidRequest.
    """
    lowered = _header_values(headers)
    declared: dict[ChecksumAlgorithm, str | None] = {}
    for algorithm in ChecksumAlgorithm:
        if algorithm.header in lowered:
            declared[algorithm] = validate_checksum_value(algorithm, lowered[algorithm.header])
    trailer = lowered.get("x-amz-trailer", "")
    for name in filter(None, (n.strip().lower() for n in trailer.split(","))):
        algorithm = ChecksumAlgorithm.from_header(name)
        if algorithm is None:
            raise errors.InvalidRequest("The value specified in the x-amz-trailer header is not "
                                        "supported")
        if algorithm in declared:
            raise errors.InvalidRequest("Expecting a single x-amz-checksum- header. Multiple "
                                        "checksum Types are not allowed.")
        declared[algorithm] = None
    if len(declared) > 1:
        raise errors.InvalidRequest("Expecting a single x-amz-checksum- header. Multiple checksum "
                                    "Types are not allowed.")
    sdk_name = lowered.get("x-amz-sdk-checksum-algorithm")
    if sdk_name is not None:
        sdk_algorithm = ChecksumAlgorithm.parse(sdk_name)
        if sdk_algorithm not in declared:
            raise errors.InvalidRequest("x-amz-sdk-checksum-algorithm specified, but no "
                                        "corresponding x-amz-checksum-* or x-amz-trailer headers "
                                        "were found.")
    return declared


def parse_content_md5(value: str | None) -> bytes | None:
    if value is None:
        return None
    digest = _decode_b64(value, 16)
    if digest is None:
        raise errors.InvalidDigest("The Content-MD5 you specified is not valid.")
    return digest


class BodyDigests:
    """MD5 (ETag) plus the declared checksum, checked against what the client promised."""

    def __init__(self, *, content_md5: str | None = None,
                 declared: Mapping[ChecksumAlgorithm, str | None] | None = None,
                 also_compute: Iterable[ChecksumAlgorithm] = ()) -> None:
        self._expected_md5 = parse_content_md5(content_md5)
        self._declared = dict(declared or {})
        self._md5 = hashlib.md5()
        self._hashers = {alg: alg.hasher() for alg in (*self._declared, *also_compute)}
        self.size = 0

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], *,
                     also_compute: Iterable[ChecksumAlgorithm] = ()) -> BodyDigests:
        """Validates Content-MD5 and the checksum headers now, before any body byte is read."""
        lowered = _header_values(headers)
        return cls(content_md5=lowered.get("content-md5"), declared=requested_checksums(headers),
                   also_compute=also_compute)

    def update(self, data: bytes | memoryview) -> None:
        self._md5.update(data)
        for hasher in self._hashers.values():
            hasher.update(data)
        self.size += len(data)

    async def feed(self, data: bytes | memoryview, executor: Executor | None = None) -> None:
        """`update`, in a worker thread when the buffer is big enough to be worth the hop."""
        if len(data) < OFFLOAD_MIN_BYTES:
            self.update(data)
        else:
            await asyncio.get_running_loop().run_in_executor(executor, self.update, data)

    def finish(self, trailers: Mapping[str, str] | None = None) -> tuple[str, dict[str, str]]:
        """(md5 hex for the ETag, {algorithm name: base64 checksum}) once every check passed."""
        md5 = self._md5.digest()
        if self._expected_md5 is not None and md5 != self._expected_md5:
            raise errors.BadDigest("The Content-MD5 you specified did not match what we received.")
        computed = {alg: b64(hasher.digest()) for alg, hasher in self._hashers.items()}
        received = {name.lower(): value for name, value in (trailers or {}).items()}
        for algorithm, expected in self._declared.items():
            if expected is None:  # announced in x-amz-trailer, arrives after the body
                if algorithm.header not in received:
                    raise errors.InvalidRequest(f"The {algorithm.header} trailer announced in "
                                                f"x-amz-trailer was not sent.")
                expected = validate_checksum_value(algorithm, received[algorithm.header])
            if computed[algorithm] != expected:
                raise errors.BadDigest(f"The {algorithm.header} you specified did not match the "
                                       f"calculated checksum.")
        return md5.hex(), {alg.value: value for alg, value in computed.items()}
