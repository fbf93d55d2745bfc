"""Payload decoding: the AWS chunked-upload example, botocore-made bodies, and broken framing."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import itertools
import zlib
from datetime import datetime, timezone
from urllib.parse import urlsplit

import boto3
import pytest
from aiohttp import http_exceptions
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum, CrtCrc64NvmeChecksum
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.s3 import errors
from gateway.s3.checksums import BodyDigests
from gateway.s3.payload import (MAX_CHUNK_HEADER, PayloadMode, PayloadReader,
                                stored_content_encoding)
from gateway.s3.sigv4 import (EMPTY_SHA256, AuthResult, Credentials, authenticate,
                              chunk_signature, parse_amz_date, sign_request, trailer_signature)

AK = "AKIAIOSFODNN7EXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
ODD_SIZES = (1, 7, 4093, 65537, 3, 100_000, 2)


class FakeStream:
    """aiohttp-like `read(n)`: hands out at most the next scheduled piece size, then b"" or `fail`."""

    def __init__(self, data: bytes, sizes: tuple[int, ...] = ODD_SIZES,
                 fail: BaseException | None = None, endless: bytes | None = None) -> None:
        self._data = data
        self._pos = 0
        self._sizes = itertools.cycle(sizes)
        self._fail = fail
        self._endless = endless
        self.calls = 0
        self.served = 0

    async def read(self, n: int = -1) -> bytes:
        self.calls += 1
        if self.calls % 16 == 0:
            await asyncio.sleep(0)  # let the loop run now and then, as a socket would
        if self._endless is not None:
            piece = self._endless * min(n, 1000)
        else:
            if self._pos >= len(self._data):
                if self._fail is not None:
                    raise self._fail
                return b""
            size = min(n, next(self._sizes), len(self._data) - self._pos)
            piece = self._data[self._pos:self._pos + size]
            self._pos += size
        self.served += len(piece)
        return piece


async def read_all(reader: PayloadReader, piece: int = 1 << 20) -> bytes:
    out = []
    for _ in range(100_000):  # bounded: no test body needs more reads than this
        data = await reader.read(piece)
        if not data:
            return b"".join(out)
        out.append(data)
    raise AssertionError("reader never reached EOF")


# --- the AWS documentation example (sigv4-streaming: 66560 bytes of 'a', 64 KiB chunks)

DOC_HEADERS = {
    "Host": "s3.amazonaws.com", "x-amz-date": "20130524T000000Z",
    "x-amz-storage-class": "REDUCED_REDUNDANCY", "Content-Encoding": "aws-chunked",
    "x-amz-decoded-content-length": "66560", "Content-Length": "66824",
    "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
                     "aws4_request,SignedHeaders=content-encoding;content-length;host;"
                     "x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;"
                     "x-amz-storage-class,Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"}
DOC_SIGS = ("ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
            "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
            "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9")
DOC_BODY = (f"10000;chunk-signature={DOC_SIGS[0]}\r\n".encode() + b"a" * 65536 + b"\r\n"
            + f"400;chunk-signature={DOC_SIGS[1]}\r\n".encode() + b"a" * 1024 + b"\r\n"
            + f"0;chunk-signature={DOC_SIGS[2]}\r\n\r\n".encode())


def doc_auth() -> AuthResult:
    return authenticate("PUT", "/examplebucket/chunkObject.txt", "", DOC_HEADERS,
                        datetime(2013, 5, 24, tzinfo=timezone.utc), lambda ak: SK)


def doc_reader(body: bytes = DOC_BODY, headers: dict[str, str] | None = None,
               **stream_options) -> PayloadReader:
    return PayloadReader.for_request(FakeStream(body, **stream_options), headers or DOC_HEADERS,
                                     doc_auth(), streaming_allowed=True)


async def test_doc_example_decodes_and_verifies() -> None:
    assert len(DOC_BODY) == 66824
    reader = doc_reader()
    assert reader.mode is PayloadMode.SIGNED_CHUNKS and reader.decoded_length == 66560
    assert await read_all(reader, 10_000) == b"a" * 66560
    assert reader.at_eof and reader.bytes_read == 66560 and reader.trailers == {}


@pytest.mark.parametrize("sizes", [(1,), (2, 3), (88,), (65536 + 88,), (1 << 20,)])
async def test_doc_example_in_any_piece_sizes(sizes: tuple[int, ...]) -> None:
    reader = doc_reader(sizes=sizes)
    first = await reader.readexactly_or_eof(50_000)
    rest = await reader.readexactly_or_eof(50_000)
    assert (len(first), len(rest)) == (50_000, 16_560)
    assert first + rest == b"a" * 66560
    assert await reader.readexactly_or_eof(10) == b""


async def test_doc_example_bad_chunk_signature() -> None:
    tampered = DOC_BODY.replace(DOC_SIGS[1].encode(), DOC_SIGS[1][:-1].encode() + b"0")
    reader = doc_reader(tampered)
    assert await reader.readexactly_or_eof(65536) == b"a" * 65536  # streamed before the check
    with pytest.raises(errors.SignatureDoesNotMatch):
        await read_all(reader)
    with pytest.raises(errors.SignatureDoesNotMatch):  # the failure sticks
        await reader.read(1)


@pytest.mark.parametrize("change", ["data", "final-signature", "no-signature", "reordered"])
async def test_doc_example_tampering(change: str) -> None:
    body = DOC_BODY
    if change == "data":
        body = body.replace(b"a" * 1024 + b"\r\n", b"a" * 1023 + b"b\r\n")
    elif change == "final-signature":
        body = body.replace(DOC_SIGS[2].encode(), DOC_SIGS[1].encode())
    elif change == "no-signature":
        body = body.replace(f"400;chunk-signature={DOC_SIGS[1]}".encode(), b"400")
    else:
        first = DOC_BODY[:88 + 65538]
        second = DOC_BODY[88 + 65538:88 + 65538 + 86 + 1026]
        body = second + first + DOC_BODY[88 + 65538 + 86 + 1026:]
    with pytest.raises(errors.SignatureDoesNotMatch):
        await read_all(doc_reader(body))


@pytest.mark.parametrize("cut", [0, 5, 87, 88, 1000, 88 + 65536, 88 + 65537, 88 + 65538 + 40,
                                 len(DOC_BODY) - 84, len(DOC_BODY) - 3, len(DOC_BODY) - 1])
async def test_doc_example_truncated(cut: int) -> None:
    with pytest.raises(errors.IncompleteBody):
        await read_all(doc_reader(DOC_BODY[:cut]))


@pytest.mark.parametrize("failure", [ConnectionResetError("Connection lost"),
                                     http_exceptions.ContentLengthError("Not enough data")])
async def test_dropped_connection_is_incomplete_body(failure: Exception) -> None:
    with pytest.raises(errors.IncompleteBody):
        await read_all(doc_reader(DOC_BODY[:30_000], fail=failure))


@pytest.mark.parametrize("decoded, error", [("66561", errors.IncompleteBody),
                                            ("66559", errors.InvalidRequest),
                                            ("1024", errors.InvalidRequest)])
async def test_doc_example_decoded_length_mismatch(decoded: str, error: type) -> None:
    headers = dict(DOC_HEADERS, **{"x-amz-decoded-content-length": decoded})
    with pytest.raises(error):
        await read_all(doc_reader(headers=headers))


async def test_content_length_mismatch_and_trailing_garbage() -> None:
    with pytest.raises(errors.IncompleteBody):
        await read_all(doc_reader(headers=dict(DOC_HEADERS, **{"Content-Length": "66830"})))
    with pytest.raises(errors.InvalidRequest):
        await read_all(doc_reader(DOC_BODY + b"extra"))


async def test_oversized_chunk_header_is_refused_with_bounded_reads() -> None:
    body = b"1" * (MAX_CHUNK_HEADER * 3) + b"\r\n"
    stream = FakeStream(body)
    reader = PayloadReader.for_request(stream, DOC_HEADERS, doc_auth(), streaming_allowed=True)
    with pytest.raises(errors.InvalidRequest):
        await read_all(reader)
    assert stream.served <= 2 * MAX_CHUNK_HEADER + 8192
    endless = FakeStream(b"", endless=b"f")  # a header line that never ends: no hang, no growth
    reader = PayloadReader.for_request(endless, DOC_HEADERS, doc_auth(), streaming_allowed=True)
    with pytest.raises(errors.InvalidRequest):
        await read_all(reader)
    assert endless.served <= 2 * MAX_CHUNK_HEADER + 8192


@pytest.mark.parametrize("body", [b"zz;chunk-signature=00\r\n", b"-1\r\n", b"\r\n",
                                  b"10000;chunk-signature=" + DOC_SIGS[0].encode() + b"\r\n"
                                  + b"a" * 65536 + b"XX" + b"0\r\n\r\n"])
async def test_malformed_framing(body: bytes) -> None:
    with pytest.raises(errors.InvalidRequest):
        await read_all(doc_reader(body))


async def test_streaming_only_where_allowed() -> None:
    with pytest.raises(errors.InvalidRequest):
        PayloadReader.for_request(FakeStream(DOC_BODY), DOC_HEADERS, doc_auth(), streaming_allowed=False)
    with pytest.raises(errors.AccessDenied):
        PayloadReader.for_request(FakeStream(DOC_BODY), DOC_HEADERS, None, streaming_allowed=True)
    headers = {k: v for k, v in DOC_HEADERS.items() if k != "x-amz-decoded-content-length"}
    with pytest.raises(errors.MissingContentLength):
        PayloadReader.for_request(FakeStream(DOC_BODY), headers, doc_auth(), streaming_allowed=True)


# --- modes 1 and 2

async def test_sha256_payload_verified_at_eof() -> None:
    body = bytes(range(256)) * 1000
    headers = {"x-amz-content-sha256": hashlib.sha256(body).hexdigest(), "Content-Length": str(len(body))}
    reader = PayloadReader.for_request(FakeStream(body), headers, None, streaming_allowed=False)
    assert reader.mode is PayloadMode.SHA256 and reader.decoded_length == len(body)
    assert await read_all(reader, 3000) == body

    headers["x-amz-content-sha256"] = EMPTY_SHA256
    reader = PayloadReader.for_request(FakeStream(body), headers, None, streaming_allowed=False)
    with pytest.raises(errors.XAmzContentSHA256Mismatch):
        await read_all(reader)
    headers["x-amz-content-sha256"] = hashlib.sha256(body).hexdigest()
    reader = PayloadReader.for_request(FakeStream(body[:-1]), headers, None, streaming_allowed=False)
    with pytest.raises(errors.IncompleteBody):
        await read_all(reader)


async def test_unsigned_payload_passes_through_and_ignores_content_encoding() -> None:
    body = b"0\r\nnot-framing\r\n\r\n"  # looks like aws-chunked, but the mode says otherwise
    headers = {"x-amz-content-sha256": "UNSIGNED-PAYLOAD", "Content-Encoding": "aws-chunked",
               "Content-Length": str(len(body))}
    reader = PayloadReader.for_request(FakeStream(body, sizes=(1,)), headers, None, streaming_allowed=True)
    assert await read_all(reader) == body
    bigger = PayloadReader.for_request(FakeStream(body + b"!"), headers, None, streaming_allowed=True)
    with pytest.raises(errors.IncompleteBody):
        await read_all(bigger)


async def test_read_all_limit_and_bad_modes() -> None:
    headers = {"x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
    reader = PayloadReader.for_request(FakeStream(b"x" * 100), headers, None, streaming_allowed=False)
    with pytest.raises(errors.EntityTooLarge):
        await reader.read_all(99)
    reader = PayloadReader.for_request(FakeStream(b"x" * 100), headers, None, streaming_allowed=False)
    assert await reader.read_all(100) == b"x" * 100
    with pytest.raises(errors.InvalidArgument):
        PayloadReader.for_request(FakeStream(b""), {"x-amz-content-sha256": "abc"}, None,
                                  streaming_allowed=True)
    with pytest.raises(errors.NotImplemented_):
        PayloadReader.for_request(FakeStream(b""), {"x-amz-content-sha256":
                                  "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"}, None, streaming_allowed=True)


def test_stored_content_encoding() -> None:
    assert stored_content_encoding(None) is None
    assert stored_content_encoding("aws-chunked") is None
    assert stored_content_encoding("aws-chunked,gzip") == "gzip"
    assert stored_content_encoding("gzip, AWS-Chunked, br") == "gzip, br"


# --- signed chunks with trailers, built per the AWS spec on a request we sign ourselves

def signed_request(mode: str, decoded_length: int, extra: dict[str, str] | None = None
                   ) -> tuple[dict[str, str], AuthResult]:
    headers = {"x-amz-decoded-content-length": str(decoded_length), "content-encoding": "aws-chunked",
               **(extra or {})}
    signed = sign_request("PUT", "http://127.0.0.1:9000/bucket/key", Credentials(AK, SK), now=NOW,
                          headers=headers, payload_hash=mode)
    auth = authenticate("PUT", "/bucket/key", "", signed, NOW, lambda ak: SK)
    return signed, auth


def signed_body(auth: AuthResult, data: bytes, chunk: int, trailers: dict[str, str] | None = None,
                bad_trailer_signature: bool = False) -> bytes:
    out = bytearray()
    previous = auth.seed_signature
    pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)] + [b""]
    for piece in pieces:
        previous = chunk_signature(auth.signing_key, auth.amz_date_text, auth.scope, previous,
                                   hashlib.sha256(piece).hexdigest())
        out += f"{len(piece):x};chunk-signature={previous}\r\n".encode()
        if piece:
            out += piece + b"\r\n"
    if trailers is not None:
        for name, value in trailers.items():
            out += f"{name}:{value}\r\n".encode()
        signature = trailer_signature(auth.signing_key, auth.amz_date_text, auth.scope, previous, trailers)
        if bad_trailer_signature:
            signature = signature[::-1]
        out += f"x-amz-trailer-signature:{signature}\r\n\r\n".encode()
    else:
        out += b"\r\n"
    return bytes(out)


def crc32_b64(data: bytes) -> str:
    return base64.b64encode((zlib.crc32(data) & 0xFFFFFFFF).to_bytes(4, "big")).decode()


async def test_signed_trailer_mode_with_checksum() -> None:
    data = bytes(range(251)) * 700
    mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
    headers, auth = signed_request(mode, len(data), {"x-amz-trailer": "x-amz-checksum-crc32"})
    body = signed_body(auth, data, 65536, {"x-amz-checksum-crc32": crc32_b64(data)})
    headers["content-length"] = str(len(body))
    reader = PayloadReader.for_request(FakeStream(body), headers, auth, streaming_allowed=True)
    digests = BodyDigests.from_headers(headers)
    for _ in range(100):
        piece = await reader.readexactly_or_eof(100_000)
        if not piece:
            break
        digests.update(piece)
    assert reader.trailers == {"x-amz-checksum-crc32": crc32_b64(data)}
    assert digests.finish(reader.trailers) == (hashlib.md5(data).hexdigest(), {"CRC32": crc32_b64(data)})


async def test_signed_trailer_mode_rejects_bad_trailer_signature_and_bad_checksum() -> None:
    data = b"hello world" * 1000
    mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
    headers, auth = signed_request(mode, len(data), {"x-amz-trailer": "x-amz-checksum-crc32"})
    trailers = {"x-amz-checksum-crc32": crc32_b64(data)}
    bad_sig = signed_body(auth, data, 8192, trailers, bad_trailer_signature=True)
    with pytest.raises(errors.SignatureDoesNotMatch):
        await read_all(PayloadReader.for_request(FakeStream(bad_sig), headers, auth, streaming_allowed=True))
    junk = signed_body(auth, data, 8192, trailers)
    junk = junk[:junk.rindex(b"x-amz-trailer-signature:")] + "x-amz-trailer-signature:\u00e9\r\n\r\n".encode()
    with pytest.raises(errors.SignatureDoesNotMatch):
        await read_all(PayloadReader.for_request(FakeStream(junk), headers, auth, streaming_allowed=True))
    # A forged trailer value breaks the trailer signature...
    forged = signed_body(auth, data, 8192, trailers).replace(crc32_b64(data).encode(), b"AAAAAA==")
    with pytest.raises(errors.SignatureDoesNotMatch):
        await read_all(PayloadReader.for_request(FakeStream(forged), headers, auth, streaming_allowed=True))
    # ...and a correctly signed but wrong checksum is caught by BodyDigests.
    wrong = signed_body(auth, data, 8192, {"x-amz-checksum-crc32": "AAAAAA=="})
    reader = PayloadReader.for_request(FakeStream(wrong), headers, auth, streaming_allowed=True)
    digests = BodyDigests.from_headers(headers)
    digests.update(await read_all(reader))
    with pytest.raises(errors.BadDigest, match="x-amz-checksum-crc32"):
        digests.finish(reader.trailers)


async def test_signed_mode_empty_body_and_oversized_trailers() -> None:
    headers, auth = signed_request("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", 0)
    reader = PayloadReader.for_request(FakeStream(signed_body(auth, b"", 1)), headers, auth,
                                       streaming_allowed=True)
    assert await read_all(reader) == b""
    mode = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    headers = {"x-amz-content-sha256": mode, "x-amz-decoded-content-length": "1"}
    huge = b"1\r\nx\r\n0\r\n" + b"x-amz-meta-pad:" + b"p" * 20_000 + b"\r\n\r\n"
    with pytest.raises(errors.InvalidRequest):
        await read_all(PayloadReader.for_request(FakeStream(huge), headers, None, streaming_allowed=True))


@settings(max_examples=30, deadline=None)
@given(size=st.integers(0, 70_000), chunk=st.integers(1, 40_000),
       pieces=st.lists(st.integers(1, 70_000), min_size=1, max_size=4), want=st.integers(1, 90_000),
       trailer=st.booleans())
async def test_signed_chunks_round_trip_property(size: int, chunk: int, pieces: list[int], want: int,
                                                 trailer: bool) -> None:
    data = (bytes(range(256)) * (size // 256 + 1))[:size]
    mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" + ("-TRAILER" if trailer else "")
    headers, auth = signed_request(mode, size)
    body = signed_body(auth, data, chunk, {"x-amz-checksum-crc32": crc32_b64(data)} if trailer else None)
    headers["content-length"] = str(len(body))
    reader = PayloadReader.for_request(FakeStream(body, tuple(pieces)), headers, auth, streaming_allowed=True)
    out = []
    for _ in range(size + 2):
        piece = await reader.readexactly_or_eof(want)
        out.append(piece)
        if len(piece) < want:
            break
    assert b"".join(out) == data and reader.at_eof


@settings(max_examples=60, deadline=None)
@given(position=st.integers(0, len(DOC_BODY) - 1), value=st.integers(0, 255))
@example(position=22, value=0x80)  # a non-ASCII byte inside the chunk signature
async def test_any_corruption_fails_cleanly_or_changes_nothing(position: int, value: int) -> None:
    body = DOC_BODY[:position] + bytes([value]) + DOC_BODY[position + 1:]
    try:
        decoded = await read_all(doc_reader(body, sizes=(4093, 65537)))
    except errors.S3Error:
        return
    # Only framing changes that mean the same thing may pass (upper-case hex in a signature, a
    # bare LF, blanks around an extension); the data is then the signed data.
    assert decoded == b"a" * 66560


# --- unsigned trailer bodies made by botocore's own AwsChunkedWrapper

def botocore_chunked(data: bytes, chunk: int, checksum_cls=Crc32Checksum,
                     name: str = "x-amz-checksum-crc32") -> bytes:
    wrapper = AwsChunkedWrapper(io.BytesIO(data), checksum_cls=checksum_cls, checksum_name=name,
                                chunk_size=chunk)
    return wrapper.read()


@pytest.mark.parametrize("size, chunk", [(0, 1024), (1, 1024), (1024, 1024), (300_000, 65536),
                                         (3 * 1024 * 1024 + 5, 1024 * 1024)])
async def test_unsigned_trailer_from_botocore(size: int, chunk: int) -> None:
    data = (bytes(range(256)) * (size // 256 + 1))[:size]
    body = botocore_chunked(data, chunk)
    headers = {"x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
               "x-amz-decoded-content-length": str(size), "x-amz-trailer": "x-amz-checksum-crc32",
               "Transfer-Encoding": "chunked", "Content-Encoding": "aws-chunked"}
    reader = PayloadReader.for_request(FakeStream(body), headers, None, streaming_allowed=True)
    digests = BodyDigests.from_headers(headers)
    digests.update(await read_all(reader, 1 << 20))
    assert reader.trailers == {"x-amz-checksum-crc32": crc32_b64(data)}
    assert digests.finish(reader.trailers)[0] == hashlib.md5(data).hexdigest()


async def test_unsigned_trailer_tolerates_chunk_extensions_and_missing_final_crlf() -> None:
    data = b"abc" * 5000
    body = botocore_chunked(data, 4096, CrtCrc64NvmeChecksum, "x-amz-checksum-crc64nvme")
    body = body.replace(b"1000\r\n", b"1000;ext=1;other\r\n").removesuffix(b"\r\n")
    headers = {"x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
               "x-amz-decoded-content-length": str(len(data)),
               "x-amz-trailer": "x-amz-checksum-crc64nvme"}
    reader = PayloadReader.for_request(FakeStream(body), headers, None, streaming_allowed=True)
    digests = BodyDigests.from_headers(headers)
    digests.update(await read_all(reader))
    digests.finish(reader.trailers)


async def test_unsigned_trailer_bad_checksum_from_botocore_body() -> None:
    data = b"payload" * 3000
    body = botocore_chunked(data, 8192).replace(crc32_b64(data).encode(), crc32_b64(b"x").encode())
    headers = {"x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
               "x-amz-decoded-content-length": str(len(data)), "x-amz-trailer": "x-amz-checksum-crc32"}
    reader = PayloadReader.for_request(FakeStream(body), headers, None, streaming_allowed=True)
    digests = BodyDigests.from_headers(headers)
    digests.update(await read_all(reader))
    with pytest.raises(errors.BadDigest):
        digests.finish(reader.trailers)


# --- what a real boto3 client sends, captured before it reaches the network

class _Raw:
    def stream(self, **_):
        yield b""


def capture_put(endpoint: str, body: bytes, **put_args) -> tuple:
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=AK, aws_secret_access_key=SK,
                          region_name="us-east-1", config=Config(s3={"addressing_style": "path"}))
    captured = []

    def before_send(request, **_):
        captured.append(request)
        return AWSResponse(request.url, 200, {"ETag": '"x"'}, _Raw())

    client.meta.events.register("before-send.s3.PutObject", before_send)
    client.put_object(Bucket="bucket", Key="dir/a b+c.txt", Body=body, **put_args)
    request = captured[0]
    raw = request.body.read() if hasattr(request.body, "read") else (request.body or b"")
    return request, raw


@pytest.mark.parametrize("endpoint", ["https://127.0.0.1:9443", "http://127.0.0.1:9000"])
@pytest.mark.parametrize("put_args", [{}, {"ChecksumAlgorithm": "CRC32C"}, {"ContentMD5": "auto"}])
async def test_real_boto3_put_object(endpoint: str, put_args: dict) -> None:
    data = bytes(range(256)) * 2000
    if put_args.get("ContentMD5") == "auto":
        put_args = {"ContentMD5": base64.b64encode(hashlib.md5(data).digest()).decode()}
    request, raw = capture_put(endpoint, io.BytesIO(data) if endpoint.startswith("https") else data,
                               **put_args)
    parts = urlsplit(request.url)
    headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
    assert headers["host"] == parts.netloc  # botocore sets it itself, as the wire will carry it
    when = parse_amz_date(headers["X-Amz-Date"])
    auth = authenticate("PUT", parts.path, parts.query, headers, when, lambda ak: SK)
    reader = PayloadReader.for_request(FakeStream(raw), headers, auth, streaming_allowed=True)
    digests = BodyDigests.from_headers(headers)
    digests.update(await read_all(reader))
    etag, _ = digests.finish(reader.trailers)
    assert etag == hashlib.md5(data).hexdigest()
    assert stored_content_encoding(headers.get("Content-Encoding")) is None
    if reader.mode.streaming:
        assert reader.trailers  # the trailing checksum was found and checked


# --- through a real aiohttp server: HTTP chunking outside, aws-chunked inside, and a cut connection

async def test_through_aiohttp_request_content() -> None:
    from aiohttp import web

    outcomes: list = []

    async def handler(request: web.Request) -> web.Response:
        reader = PayloadReader.for_request(request.content, request.headers, None, streaming_allowed=True)
        try:
            outcomes.append((await read_all(reader, 1 << 16), dict(reader.trailers)))
        except BaseException as exc:
            outcomes.append(exc)
            raise
        return web.Response()

    app = web.Application()
    app.router.add_put("/{key:.*}", handler)
    data = bytes(range(256)) * 1500
    body = botocore_chunked(data, 65536)
    head = ("PUT /b/k HTTP/1.1\r\nHost: x\r\nx-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER\r\n"
            f"x-amz-decoded-content-length: {len(data)}\r\nx-amz-trailer: x-amz-checksum-crc32\r\n")
    # aiohttp's default (handler_cancellation off): the cut shows up as a stream error.
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
        for i in range(0, len(body), 10_000):  # HTTP chunks that cut across aws-chunked frames
            piece = body[i:i + 10_000]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        writer.write(b"0\r\n\r\n")
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        writer.close()

        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write((head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body[:50_000])
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()
        for _ in range(100):
            if len(outcomes) == 2:
                break
            await asyncio.sleep(0.02)
    finally:
        await runner.cleanup()
    assert outcomes[0] == (data, {"x-amz-checksum-crc32": crc32_b64(data)})
    assert isinstance(outcomes[1], errors.IncompleteBody)
