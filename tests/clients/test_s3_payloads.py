"""PUT payload modes, body digests and DeleteObjects, as raw bytes on the wire.

Every refused upload is followed by a read proving that nothing became visible: a new key stays
404 and a previous version stays byte-identical. Bodies come in two sizes, one stored inline in
the object record and one erasure-coded into stripes, since the two take different write paths.
"""
from __future__ import annotations

import base64
import hashlib
import zlib

import pytest

from gateway.s3.sigv4 import Scope
from tests.clients.test_s3_protocol import (ChunkSigner, RawS3, Reply, aws_chunks, exchange,
                                            http_chunked, raw, raw_bucket, request_head,
                                            sha256_hex)

pytestmark = pytest.mark.clients

__all__ = ["raw", "raw_bucket"]  # fixtures, re-exported for pytest

SMALL = b"small object body\n" * 10                       # stored inline
LARGE = bytes(range(256)) * 1200 + b"tail"               # ~300 KiB: erasure-coded stripes
SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"


def b64_crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def b64_md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def assert_absent(raw: RawS3, target: str) -> None:
    raw.get(target).expect(404, "NoSuchKey")
    raw.head(target).expect(404)


def assert_object(raw: RawS3, target: str, data: bytes) -> Reply:
    reply = raw.get(target).expect(200)
    assert reply.body == data
    assert reply.headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    return reply


def put_signed_chunks(raw: RawS3, target: str, data: bytes, *, mode: str = SIGNED,
                      chunk: int = 64 * 1024, trailers: dict[str, str] | None = None,
                      bad_chunk: int | None = None, headers: dict[str, str] | None = None,
                      cut: int | None = None) -> Reply:
    """PUT with STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER] framing and a Content-Length;
    `cut` sends only that many body bytes and then half-closes."""
    signed_part = {"x-amz-decoded-content-length": str(len(data)), **(headers or {})}
    if trailers:
        signed_part["x-amz-trailer"] = ",".join(trailers)
    signed = raw.signed_headers("PUT", target, payload_hash=mode, headers=signed_part)
    body = aws_chunks(data, chunk, ChunkSigner.from_headers(signed, raw.secret_key),
                      trailers=trailers, bad_chunk=bad_chunk)
    signed["content-length"] = str(len(body))
    sent = body if cut is None else body[:cut]
    return exchange(raw.port, request_head("PUT", target, signed), [sent], method="PUT",
                    half_close=cut is not None)


def put_unsigned_trailer(raw: RawS3, target: str, data: bytes, trailer_value: str, *,
                         chunk: int = 64 * 1024, http_piece: int = 7000,
                         headers: dict[str, str] | None = None, cut: int | None = None) -> Reply:
    """What boto3 sends over HTTPS: aws-chunked inside HTTP chunked framing, no Content-Length."""
    signed = raw.signed_headers("PUT", target, payload_hash=UNSIGNED_TRAILER, headers={
        "content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data)),
        "x-amz-trailer": "x-amz-checksum-crc32", "x-amz-sdk-checksum-algorithm": "CRC32",
        **(headers or {})})
    signed["transfer-encoding"] = "chunked"
    signed["expect"] = "100-continue"
    body = aws_chunks(data, chunk, trailers={"x-amz-checksum-crc32": trailer_value})
    pieces = http_chunked(body, http_piece)
    if cut is not None:
        pieces = [b"".join(pieces)[:cut]]
    return exchange(raw.port, request_head("PUT", target, signed), pieces, method="PUT",
                    half_close=cut is not None)


sizes = pytest.mark.parametrize("data", [SMALL, LARGE], ids=["inline", "striped"])


# --- hex SHA-256 and UNSIGNED-PAYLOAD --------------------------------------------------------------

@sizes
def test_hex_sha256_payload(raw, raw_bucket, data):
    target = f"/{raw_bucket}/hex"
    reply = raw.put(target, data).expect(200)
    assert reply.headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert_object(raw, target, data)
    assert raw.head(target).expect(200).headers["content-length"] == str(len(data))


@sizes
def test_wrong_hex_sha256_stores_nothing(raw, raw_bucket, data):
    fresh, kept = f"/{raw_bucket}/fresh", f"/{raw_bucket}/kept"
    wrong = sha256_hex(data + b"!")
    raw.put(fresh, data, payload_hash=wrong).expect(400, "XAmzContentSHA256Mismatch")
    assert_absent(raw, fresh)
    raw.put(kept, b"version one").expect(200)
    raw.put(kept, data, payload_hash=wrong).expect(400, "XAmzContentSHA256Mismatch")
    assert_object(raw, kept, b"version one")
    listing = raw.get(f"/{raw_bucket}?list-type=2").expect(200).body
    assert b"<Key>fresh</Key>" not in listing and b"<Key>kept</Key>" in listing


def test_invalid_content_sha256_value(raw, raw_bucket):
    raw.put(f"/{raw_bucket}/k", b"x", payload_hash="not-a-hash").expect(400, "InvalidArgument")
    assert_absent(raw, f"/{raw_bucket}/k")


@sizes
def test_unsigned_payload(raw, raw_bucket, data):
    target = f"/{raw_bucket}/unsigned"
    raw.put(target, data, payload_hash="UNSIGNED-PAYLOAD",
            headers={"content-md5": b64_md5(data)}).expect(200)
    assert_object(raw, target, data)


# --- STREAMING-AWS4-HMAC-SHA256-PAYLOAD ------------------------------------------------------------

@sizes
def test_signed_chunks(raw, raw_bucket, data):
    target = f"/{raw_bucket}/chunks"
    put_signed_chunks(raw, target, data, chunk=8192).expect(200)
    reply = assert_object(raw, target, data)  # no chunk framing in the object
    assert "content-encoding" not in reply.headers


@pytest.mark.parametrize("bad_chunk", [0, 3, "final"])
def test_bad_chunk_signature_stores_nothing(raw, raw_bucket, bad_chunk):
    chunks = -(-len(LARGE) // 65536)
    index = chunks if bad_chunk == "final" else bad_chunk  # "final": the empty closing chunk
    fresh, kept = f"/{raw_bucket}/fresh", f"/{raw_bucket}/kept"
    put_signed_chunks(raw, fresh, LARGE, bad_chunk=index).expect(403, "SignatureDoesNotMatch")
    assert_absent(raw, fresh)
    raw.put(kept, SMALL).expect(200)
    put_signed_chunks(raw, kept, LARGE, bad_chunk=index).expect(403, "SignatureDoesNotMatch")
    assert_object(raw, kept, SMALL)


def test_signed_chunks_decoded_length_mismatch(raw, raw_bucket):
    target = f"/{raw_bucket}/short"
    signed = raw.signed_headers("PUT", target, payload_hash=SIGNED,
                                headers={"x-amz-decoded-content-length": str(len(SMALL) + 10)})
    body = aws_chunks(SMALL, 64, ChunkSigner.from_headers(signed, raw.secret_key))
    signed["content-length"] = str(len(body))
    reply = exchange(raw.port, request_head("PUT", target, signed), [body], method="PUT")
    assert reply.status == 400 and reply.code in ("IncompleteBody", "InvalidRequest"), reply.body
    assert_absent(raw, target)


@sizes
def test_signed_chunks_with_signed_trailer(raw, raw_bucket, data):
    target = f"/{raw_bucket}/trailer"
    put_signed_chunks(raw, target, data, mode=SIGNED_TRAILER,
                      trailers={"x-amz-checksum-crc32": b64_crc32(data)}).expect(200)
    assert_object(raw, target, data)
    reply = raw.get(target, headers={"x-amz-checksum-mode": "ENABLED"}).expect(200)
    assert reply.headers["x-amz-checksum-crc32"] == b64_crc32(data)


def test_signed_trailer_wrong_checksum_is_bad_digest(raw, raw_bucket):
    target = f"/{raw_bucket}/trailer"
    put_signed_chunks(raw, target, LARGE, mode=SIGNED_TRAILER,
                      trailers={"x-amz-checksum-crc32": b64_crc32(b"other")}).expect(400, "BadDigest")
    assert_absent(raw, target)


def test_signed_trailer_tampered_signature(raw, raw_bucket):
    target = f"/{raw_bucket}/trailer"
    # Sign the real checksum, then send a different (but self-consistent) one.
    signed = raw.signed_headers("PUT", target, payload_hash=SIGNED_TRAILER, headers={
        "x-amz-decoded-content-length": str(len(SMALL)), "x-amz-trailer": "x-amz-checksum-crc32"})
    signer = ChunkSigner.from_headers(signed, raw.secret_key)
    body = aws_chunks(SMALL, 64, signer, trailers={"x-amz-checksum-crc32": b64_crc32(SMALL)})
    body = body.replace(b64_crc32(SMALL).encode(), b64_crc32(SMALL[:-1]).encode())
    signed["content-length"] = str(len(body))
    exchange(raw.port, request_head("PUT", target, signed), [body], method="PUT").expect(
        403, "SignatureDoesNotMatch")
    assert_absent(raw, target)


# --- STREAMING-UNSIGNED-PAYLOAD-TRAILER in HTTP chunked framing ----------------------------------

@sizes
def test_unsigned_trailer_in_http_chunked(raw, raw_bucket, data):
    target = f"/{raw_bucket}/boto-https"
    reply = put_unsigned_trailer(raw, target, data, b64_crc32(data)).expect(200)
    assert reply.headers["x-amz-checksum-crc32"] == b64_crc32(data)
    reply = assert_object(raw, target, data)
    assert "content-encoding" not in reply.headers  # aws-chunked is transport, never content


@sizes
def test_unsigned_trailer_wrong_checksum(raw, raw_bucket, data):
    fresh, kept = f"/{raw_bucket}/fresh", f"/{raw_bucket}/kept"
    put_unsigned_trailer(raw, fresh, data, b64_crc32(data + b"x")).expect(400, "BadDigest")
    assert_absent(raw, fresh)
    raw.put(kept, b"old").expect(200)
    put_unsigned_trailer(raw, kept, data, b64_crc32(data + b"x")).expect(400, "BadDigest")
    assert_object(raw, kept, b"old")


def test_aws_chunked_gzip_is_stored_as_gzip(raw, raw_bucket):
    target = f"/{raw_bucket}/gz"
    data = zlib.compress(SMALL)  # the bytes are opaque to S3; only the header matters
    put_unsigned_trailer(raw, target, data, b64_crc32(data),
                         headers={"content-encoding": "aws-chunked,gzip"}).expect(200)
    assert raw.head(target).expect(200).headers["content-encoding"] == "gzip"
    assert raw.get(target).expect(200).body == data


# --- truncated bodies ------------------------------------------------------------------------------

def _failed_or_incomplete(call) -> None:
    """A truncated upload must fail visibly: IncompleteBody, or a dropped connection."""
    try:
        reply = call()
    except (OSError, ConnectionError) as exc:  # includes http.client.RemoteDisconnected
        assert isinstance(exc, (ConnectionError, OSError))
        return
    assert reply.status == 400 and reply.code == "IncompleteBody", (reply.status, reply.body)


@pytest.mark.parametrize("fraction", [0.1, 0.6, 0.99])
def test_truncated_signed_streaming_body(raw, raw_bucket, fraction):
    fresh, kept = f"/{raw_bucket}/fresh", f"/{raw_bucket}/kept"
    # Signatures do not change the framing's length: any signer measures the full body.
    dummy = ChunkSigner(b"k" * 32, "20240101T000000Z", Scope("20240101", "us-east-1", "s3"), "0" * 64)
    full = len(aws_chunks(LARGE, 65536, dummy))
    _failed_or_incomplete(lambda: put_signed_chunks(raw, fresh, LARGE, cut=int(full * fraction)))
    assert_absent(raw, fresh)
    raw.put(kept, SMALL).expect(200)
    _failed_or_incomplete(lambda: put_signed_chunks(raw, kept, LARGE, cut=int(full * fraction)))
    assert_object(raw, kept, SMALL)


def test_truncated_http_chunked_body(raw, raw_bucket):
    target = f"/{raw_bucket}/cut"
    _failed_or_incomplete(lambda: put_unsigned_trailer(raw, target, LARGE, b64_crc32(LARGE),
                                                       cut=len(LARGE) // 2))
    assert_absent(raw, target)


def test_truncated_plain_body(raw, raw_bucket):
    target = f"/{raw_bucket}/cut"
    _failed_or_incomplete(lambda: raw.put(target, LARGE[:1000], payload_hash="UNSIGNED-PAYLOAD",
                                          content_length=len(LARGE), half_close=True))
    assert_absent(raw, target)


# --- streaming modes where they are not allowed ----------------------------------------------------

def test_streaming_mode_on_delete_objects(raw, raw_bucket):
    raw.put(f"/{raw_bucket}/victim", b"x").expect(200)
    xml = b"<Delete><Object><Key>victim</Key></Object></Delete>"
    target = f"/{raw_bucket}?delete"
    signed = raw.signed_headers("POST", target, payload_hash=SIGNED, headers={
        "x-amz-decoded-content-length": str(len(xml)), "content-md5": b64_md5(xml)})
    body = aws_chunks(xml, 64, ChunkSigner.from_headers(signed, raw.secret_key))
    signed["content-length"] = str(len(body))
    exchange(raw.port, request_head("POST", target, signed), [body], method="POST").expect(
        400, "InvalidRequest")
    reply = put_unsigned_style_post(raw, target, xml)
    reply.expect(400, "InvalidRequest")
    assert raw.get(f"/{raw_bucket}/victim").expect(200).body == b"x"


def put_unsigned_style_post(raw: RawS3, target: str, xml: bytes) -> Reply:
    signed = raw.signed_headers("POST", target, payload_hash=UNSIGNED_TRAILER, headers={
        "content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(xml)),
        "x-amz-trailer": "x-amz-checksum-crc32", "content-md5": b64_md5(xml)})
    signed["transfer-encoding"] = "chunked"
    body = aws_chunks(xml, 64, trailers={"x-amz-checksum-crc32": b64_crc32(xml)})
    return exchange(raw.port, request_head("POST", target, signed), http_chunked(body, 100),
                    method="POST")


def test_streaming_mode_on_create_bucket(raw, raw_bucket):
    name = raw_bucket + "-x"
    signed = raw.signed_headers("PUT", f"/{name}", payload_hash=SIGNED,
                                headers={"x-amz-decoded-content-length": "0"})
    body = aws_chunks(b"", 64, ChunkSigner.from_headers(signed, raw.secret_key))
    signed["content-length"] = str(len(body))
    exchange(raw.port, request_head("PUT", f"/{name}", signed), [body], method="PUT").expect(
        400, "InvalidRequest")
    raw.head(f"/{name}").expect(404)


# --- digests ---------------------------------------------------------------------------------------

@sizes
def test_content_md5(raw, raw_bucket, data):
    target = f"/{raw_bucket}/md5"
    raw.put(target, data, headers={"content-md5": b64_md5(data + b"?")}).expect(400, "BadDigest")
    assert_absent(raw, target)
    for malformed in ("not base64!", base64.b64encode(b"short").decode(), ""):
        raw.put(target, data, headers={"content-md5": malformed}).expect(400, "InvalidDigest")
    assert_absent(raw, target)
    raw.put(target, data, headers={"content-md5": b64_md5(data)}).expect(200)
    assert_object(raw, target, data)


@sizes
def test_checksum_crc32_header(raw, raw_bucket, data):
    target = f"/{raw_bucket}/crc"
    raw.put(target, data, headers={"x-amz-checksum-crc32": b64_crc32(data[1:])}).expect(
        400, "BadDigest")
    assert_absent(raw, target)
    raw.put(target, data, headers={"x-amz-checksum-crc32": "AAAA"}).expect(400, "InvalidRequest")
    assert_absent(raw, target)
    raw.put(target, data, headers={"x-amz-checksum-crc32": b64_crc32(data)}).expect(200)
    reply = raw.head(target, headers={"x-amz-checksum-mode": "ENABLED"}).expect(200)
    assert reply.headers["x-amz-checksum-crc32"] == b64_crc32(data)
    assert_object(raw, target, data)


def test_bad_digest_keeps_previous_version(raw, raw_bucket):
    target = f"/{raw_bucket}/keep"
    raw.put(target, LARGE).expect(200)
    raw.put(target, SMALL, headers={"content-md5": b64_md5(b"nope")}).expect(400, "BadDigest")
    raw.put(target, SMALL, headers={"x-amz-checksum-crc32": b64_crc32(b"nope")}).expect(
        400, "BadDigest")
    assert_object(raw, target, LARGE)


# --- malformed framing -----------------------------------------------------------------------------

def _put_framed(raw: RawS3, target: str, body: bytes, decoded_length: int | None,
                mode: str = UNSIGNED_TRAILER, trailer: bool = True) -> Reply:
    headers = {"content-encoding": "aws-chunked"}
    if decoded_length is not None:
        headers["x-amz-decoded-content-length"] = str(decoded_length)
    if trailer:
        headers["x-amz-trailer"] = "x-amz-checksum-crc32"
    signed = raw.signed_headers("PUT", target, payload_hash=mode, headers=headers)
    signed["content-length"] = str(len(body))
    return exchange(raw.port, request_head("PUT", target, signed), [body], method="PUT")


@pytest.mark.parametrize("body", [
    b"zz\r\nabc\r\n0\r\n\r\n",                                   # size is not hex
    b"3\r\nabcX\r\n0\r\n\r\n",                                   # data not followed by CRLF
    b"3\r\nabc\r\n0\r\nx-amz-checksum-crc32:" + b64_crc32(b"abc").encode()
    + b"\r\n\r\nEXTRA",                                          # bytes after the body
    b"3\r\nabc\r\n0\r\nno-colon-here\r\n\r\n",                   # malformed trailer line
], ids=["bad-size", "no-crlf", "trailing-bytes", "bad-trailer"])
def test_malformed_aws_chunked_body(raw, raw_bucket, body):
    target = f"/{raw_bucket}/framed"
    reply = _put_framed(raw, target, body, 3)
    assert reply.status == 400 and reply.code in ("InvalidRequest", "IncompleteBody"), reply.body
    assert_absent(raw, target)


def test_streaming_without_decoded_length(raw, raw_bucket):
    target = f"/{raw_bucket}/framed"
    body = aws_chunks(b"abc", 64, trailers={"x-amz-checksum-crc32": b64_crc32(b"abc")})
    _put_framed(raw, target, body, None).expect(411, "MissingContentLength")
    assert_absent(raw, target)


def test_announced_trailer_missing(raw, raw_bucket):
    target = f"/{raw_bucket}/framed"
    _put_framed(raw, target, aws_chunks(b"abc", 64, trailers={}), 3).expect(400, "InvalidRequest")
    assert_absent(raw, target)


def test_signed_chunks_without_signatures(raw, raw_bucket):
    target = f"/{raw_bucket}/framed"
    body = aws_chunks(SMALL, 64)  # unsigned framing under a signed mode
    _put_framed(raw, target, body, len(SMALL), mode=SIGNED, trailer=False).expect(
        403, "SignatureDoesNotMatch")
    assert_absent(raw, target)


@sizes
def test_hex_sha256_in_http_chunked_framing(raw, raw_bucket, data):
    """Plain HTTP chunked transfer (no aws-chunked) with the body's SHA-256 signed."""
    target = f"/{raw_bucket}/te"
    signed = raw.signed_headers("PUT", target, payload_hash=sha256_hex(data))
    signed["transfer-encoding"] = "chunked"
    exchange(raw.port, request_head("PUT", target, signed), http_chunked(data, 5000),
             method="PUT").expect(200)
    assert_object(raw, target, data)
    signed = raw.signed_headers("PUT", target + "2", payload_hash=sha256_hex(data + b"-"))
    signed["transfer-encoding"] = "chunked"
    exchange(raw.port, request_head("PUT", target + "2", signed), http_chunked(data, 5000),
             method="PUT").expect(400, "XAmzContentSHA256Mismatch")
    assert_absent(raw, target + "2")
