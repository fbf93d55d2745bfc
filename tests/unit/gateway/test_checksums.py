"""Checksums against published check values and botocore's own implementations."""
from __future__ import annotations

import base64
import hashlib

import pytest
from botocore.httpchecksum import (Crc32Checksum, CrtCrc32cChecksum, CrtCrc64NvmeChecksum,
                                   Sha1Checksum, Sha256Checksum)
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.s3 import errors
from gateway.s3.checksums import BodyDigests, ChecksumAlgorithm, b64, requested_checksums

BOTOCORE = {ChecksumAlgorithm.CRC32: Crc32Checksum, ChecksumAlgorithm.CRC32C: CrtCrc32cChecksum,
            ChecksumAlgorithm.CRC64NVME: CrtCrc64NvmeChecksum, ChecksumAlgorithm.SHA1: Sha1Checksum,
            ChecksumAlgorithm.SHA256: Sha256Checksum}


@pytest.mark.parametrize("algorithm, check", [
    # The catalogue "check" value of each CRC: the digest of b"123456789".
    (ChecksumAlgorithm.CRC32, "cbf43926"),
    (ChecksumAlgorithm.CRC32C, "e3069283"),
    (ChecksumAlgorithm.CRC64NVME, "ae8b14860a799888"),
    (ChecksumAlgorithm.SHA1, "f7c3bc1d808e04732adf679965ccc34ca7ae3441"),
    (ChecksumAlgorithm.SHA256, "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225"),
])
def test_check_values(algorithm: ChecksumAlgorithm, check: str) -> None:
    hasher = algorithm.hasher()
    hasher.update(b"1234")
    hasher.update(memoryview(b"56789"))
    assert hasher.digest().hex() == check
    assert len(hasher.digest()) == algorithm.digest_size


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=5000), cuts=st.lists(st.integers(0, 5000), max_size=6))
def test_incremental_matches_botocore(data: bytes, cuts: list[int]) -> None:
    bounds = [0, *sorted(c for c in cuts if c <= len(data)), len(data)]
    for algorithm, boto_cls in BOTOCORE.items():
        ours = algorithm.hasher()
        for start, end in zip(bounds, bounds[1:]):
            ours.update(data[start:end])
        theirs = boto_cls()
        theirs.update(data)
        assert b64(ours.digest()) == theirs.b64digest(), algorithm


def test_names_and_parsing() -> None:
    assert ChecksumAlgorithm.CRC64NVME.header == "x-amz-checksum-crc64nvme"
    assert ChecksumAlgorithm.parse("crc32c") is ChecksumAlgorithm.CRC32C
    assert ChecksumAlgorithm.from_header("X-Amz-Checksum-Sha1") is ChecksumAlgorithm.SHA1
    assert ChecksumAlgorithm.from_header("x-amz-checksum-md5") is None
    with pytest.raises(errors.InvalidRequest):
        ChecksumAlgorithm.parse("MD5")



def crc32_b64(data: bytes) -> str:
    hasher = ChecksumAlgorithm.CRC32.hasher()
    hasher.update(data)
    return b64(hasher.digest())


def test_requested_checksums_header_trailer_and_sdk_algorithm() -> None:
    value = crc32_b64(b"hello")
    assert requested_checksums({}) == {}
    assert requested_checksums({"X-Amz-Checksum-Crc32": value}) == {ChecksumAlgorithm.CRC32: value}
    assert requested_checksums({"x-amz-trailer": "x-amz-checksum-crc64nvme",
                                "x-amz-sdk-checksum-algorithm": "CRC64NVME"}) == \
        {ChecksumAlgorithm.CRC64NVME: None}
    assert requested_checksums({"x-amz-checksum-crc32": value,
                                "x-amz-sdk-checksum-algorithm": "crc32"}) == {ChecksumAlgorithm.CRC32: value}


@pytest.mark.parametrize("headers", [
    {"x-amz-checksum-crc32": "not base64!"},
    {"x-amz-checksum-crc32": base64.b64encode(b"12345").decode()},          # wrong length
    {"x-amz-checksum-sha256": base64.b64encode(b"1" * 20).decode()},
    {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-checksum-crc32c": "AAAAAA=="},
    {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-trailer": "x-amz-checksum-crc32"},
    {"x-amz-trailer": "x-amz-checksum-crc32, x-amz-checksum-sha1"},
    {"x-amz-trailer": "x-amz-meta-something"},
    {"x-amz-sdk-checksum-algorithm": "CRC32"},
    {"x-amz-sdk-checksum-algorithm": "SHA1", "x-amz-checksum-crc32": "AAAAAA=="},
    {"x-amz-sdk-checksum-algorithm": "XXHASH", "x-amz-checksum-crc32": "AAAAAA=="},
])
def test_requested_checksums_rejects(headers: dict[str, str]) -> None:
    with pytest.raises(errors.InvalidRequest):
        requested_checksums(headers)


def test_body_digests_etag_and_content_md5() -> None:
    body = b"The quick brown fox" * 1000
    md5_b64 = base64.b64encode(hashlib.md5(body).digest()).decode()
    digests = BodyDigests.from_headers({"Content-MD5": md5_b64})
    digests.update(body[:7])
    digests.update(memoryview(body)[7:])
    assert digests.finish({}) == (hashlib.md5(body).hexdigest(), {})
    assert digests.size == len(body)

    wrong = BodyDigests.from_headers({"Content-MD5": md5_b64})
    wrong.update(body + b"!")
    with pytest.raises(errors.BadDigest, match="Content-MD5"):
        wrong.finish({})
    for invalid in ("nope", base64.b64encode(b"short").decode()):
        with pytest.raises(errors.InvalidDigest):
            BodyDigests.from_headers({"content-md5": invalid})


def test_body_digests_declared_header_checksum() -> None:
    digests = BodyDigests.from_headers({"x-amz-checksum-crc32": crc32_b64(b"hello")})
    digests.update(b"hello")
    assert digests.finish()[1] == {"CRC32": crc32_b64(b"hello")}
    bad = BodyDigests.from_headers({"x-amz-checksum-crc32": crc32_b64(b"hellO")})
    bad.update(b"hello")
    with pytest.raises(errors.BadDigest) as info:
        bad.finish()
    assert str(info.value) == ("The x-amz-checksum-crc32 you specified did not match the "
                               "calculated checksum.")


def test_body_digests_trailer_checksum() -> None:
    headers = {"x-amz-trailer": "x-amz-checksum-crc32"}
    good = BodyDigests.from_headers(headers, also_compute=[ChecksumAlgorithm.CRC64NVME])
    good.update(b"hello")
    etag, sums = good.finish({"x-amz-checksum-crc32": crc32_b64(b"hello")})
    assert etag == hashlib.md5(b"hello").hexdigest()
    boto64 = CrtCrc64NvmeChecksum()
    boto64.update(b"hello")
    assert sums == {"CRC32": crc32_b64(b"hello"), "CRC64NVME": boto64.b64digest()}

    for trailers, error in [({"x-amz-checksum-crc32": crc32_b64(b"other")}, errors.BadDigest),
                            ({}, errors.InvalidRequest),
                            ({"x-amz-checksum-crc32": "garbage"}, errors.InvalidRequest)]:
        digests = BodyDigests.from_headers(headers)
        digests.update(b"hello")
        with pytest.raises(error):
            digests.finish(trailers)


async def test_feed_offloads_big_buffers_and_keeps_order() -> None:
    body = bytes(range(256)) * 4096  # 1 MiB: goes through the executor
    digests = BodyDigests.from_headers({"x-amz-checksum-sha256":
                                        base64.b64encode(hashlib.sha256(body + b"tail").digest()).decode()})
    await digests.feed(body)
    await digests.feed(b"tail")
    etag, sums = digests.finish()
    assert etag == hashlib.md5(body + b"tail").hexdigest()
    assert sums["SHA256"] == base64.b64encode(hashlib.sha256(body + b"tail").digest()).decode()
