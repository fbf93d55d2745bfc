"""Request bodies as the client meant them: aws-chunked framing removed, every promise checked.

The mode comes only from `x-amz-content-sha256` (clients disagree about Content-Encoding):

  hex SHA-256                                  body as sent, hashed and compared at the end
  UNSIGNED-PAYLOAD                             body as sent
  STREAMING-AWS4-HMAC-SHA256-PAYLOAD           aws-chunked, every chunk signature verified
  STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER   the same plus signed trailers
  STREAMING-UNSIGNED-PAYLOAD-TRAILER           aws-chunked without signatures, plus trailers

Decoded bytes are handed out as soon as they arrive, before the chunk they belong to is
verified: nothing is buffered beyond one framing line. Every check (body hash, each chunk
signature, the trailer signature, the lengths) has passed by the time a read returns b"" (EOF),
so the caller must commit the object only after seeing EOF, never on an exception.
"""
from __future__ import annotations

import enum
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Protocol

from aiohttp import http_exceptions

from gateway.s3 import errors
from gateway.s3.sigv4 import EMPTY_SHA256, UNSIGNED_PAYLOAD, AuthResult, chunk_signature, \
    trailer_signature

MAX_CHUNK_HEADER = 4 * 1024       # "<hex-size>;chunk-signature=<64 hex>" is under 100 bytes
MAX_TRAILER_SECTION = 16 * 1024   # all trailer lines together
_LINE_READ = 4 * 1024             # how much to pull from the socket when looking for a line end
_HEX_SIZE = re.compile(rb"[0-9a-fA-F]{1,16}")
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")

# What a dropped or malformed connection raises out of aiohttp's request stream.
_STREAM_ERRORS = (OSError, EOFError, http_exceptions.PayloadEncodingError)


class PayloadMode(enum.Enum):
    SHA256 = "sha256"
    UNSIGNED = UNSIGNED_PAYLOAD
    SIGNED_CHUNKS = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    SIGNED_CHUNKS_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
    UNSIGNED_CHUNKS_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"

    @property
    def streaming(self) -> bool:
        return self.value.startswith("STREAMING-")

    @property
    def signed_chunks(self) -> bool:
        return self in (PayloadMode.SIGNED_CHUNKS, PayloadMode.SIGNED_CHUNKS_TRAILER)

    @property
    def has_trailer(self) -> bool:
        return self in (PayloadMode.SIGNED_CHUNKS_TRAILER, PayloadMode.UNSIGNED_CHUNKS_TRAILER)

    @classmethod
    def detect(cls, content_sha256: str) -> PayloadMode:
        if _SHA256_HEX.fullmatch(content_sha256):
            return cls.SHA256
        try:
            return cls(content_sha256)
        except ValueError:
            pass
        if content_sha256.startswith("STREAMING-AWS4-ECDSA"):
            raise errors.NotImplemented_("SigV4a (ECDSA) streaming payloads are not supported.")
        raise errors.InvalidArgument("x-amz-content-sha256 must be UNSIGNED-PAYLOAD, a STREAMING-* "
                                     "value, or a valid sha256 value.",
                                     ArgumentName="x-amz-content-sha256")


def stored_content_encoding(header_value: str | None) -> str | None:
    """Content-Encoding to keep with the object: `aws-chunked` is transport, never content."""
    if header_value is None:
        return None
    kept = [c.strip() for c in header_value.split(",")
            if c.strip() and c.strip().lower() != "aws-chunked"]
    return ", ".join(kept) or None


class ByteStream(Protocol):
    """What we need of aiohttp's `request.content`: up to n bytes, b"" at the end."""

    async def read(self, n: int = -1) -> bytes: ...


def _incomplete(detail: str = "The request body ended before it was complete.") -> errors.S3Error:
    return errors.IncompleteBody(detail)


class _Source:
    """The raw body: large reads go straight through; only framing lines are buffered."""

    def __init__(self, stream: ByteStream) -> None:
        self._stream = stream
        self._buf = b""   # bytes pulled while looking for a line end, not consumed yet
        self._pos = 0
        self.raw_bytes = 0

    async def _pull(self, n: int) -> bytes:
        try:
            data = await self._stream.read(n)
        except _STREAM_ERRORS as exc:
            raise _incomplete() from exc
        self.raw_bytes += len(data)
        return data

    async def take(self, n: int) -> bytes | memoryview:
        """Up to n bytes (n > 0); b"" only at the end of the stream."""
        if self._pos < len(self._buf):
            end = min(self._pos + n, len(self._buf))
            piece = memoryview(self._buf)[self._pos:end]
            self._pos = end
            return piece
        return await self._pull(n)

    async def line(self, limit: int) -> bytes:
        """The next line without CRLF (a bare LF is tolerated); at most `limit` bytes long."""
        while True:
            end = self._buf.find(b"\n", self._pos, self._pos + limit + 2)
            if end >= 0:
                line = self._buf[self._pos:end]
                self._pos = end + 1
                return line[:-1] if line.endswith(b"\r") else line
            if len(self._buf) - self._pos > limit + 1:
                raise errors.InvalidRequest("Malformed aws-chunked body: a framing line is too long.")
            more = await self._pull(_LINE_READ)
            if not more:
                raise _incomplete()
            self._buf = self._buf[self._pos:] + more
            self._pos = 0

    async def at_eof(self) -> bool:
        if self._pos < len(self._buf):
            return False
        more = await self._pull(1)
        if more:
            self._buf, self._pos = more, 0
            return False
        return True


class _Identity:
    """Modes 1 and 2: the body is the object; hashed when the client signed its SHA-256."""

    def __init__(self, source: _Source, expected_sha256: str | None,
                 content_length: int | None) -> None:
        self._source = source
        self._expected = expected_sha256
        self._hasher = hashlib.sha256() if expected_sha256 is not None else None
        self._content_length = content_length
        self._count = 0
        self.trailers: dict[str, str] = {}

    async def next(self, n: int) -> bytes | memoryview:
        data = await self._source.take(n)
        if data:
            self._count += len(data)
            if self._content_length is not None and self._count > self._content_length:
                raise errors.IncompleteBody("The request body is longer than Content-Length.")
            if self._hasher is not None:
                self._hasher.update(data)
            return data
        if self._content_length is not None and self._count != self._content_length:
            raise _incomplete()
        if self._hasher is not None and self._hasher.hexdigest() != self._expected:
            raise errors.XAmzContentSHA256Mismatch(ClientComputedContentSHA256=self._expected or "",
                                                   S3ComputedContentSHA256=self._hasher.hexdigest())
        return b""


class _Chunked:
    """Modes 3-5: aws-chunked framing, with or without chunk signatures and trailers."""

    def __init__(self, source: _Source, mode: PayloadMode, auth: AuthResult | None,
                 decoded_length: int, content_length: int | None) -> None:
        self._source = source
        self._mode = mode
        self._auth = auth
        self._previous = auth.seed_signature if auth is not None else ""
        self._amz_date = auth.amz_date_text if auth is not None else ""
        self._decoded_length = decoded_length
        self._content_length = content_length
        self._announced = 0          # sum of the chunk sizes seen so far
        self._left = 0               # data bytes left in the current chunk
        self._in_chunk = False
        self._claimed: bytes | None = None  # kept as bytes: it may hold any junk
        self._chunk_hash = None
        self._done = False
        self.trailers: dict[str, str] = {}

    async def next(self, n: int) -> bytes | memoryview:
        while not self._done:
            if not self._in_chunk:
                await self._start_chunk()
            elif self._left:
                data = await self._source.take(min(n, self._left))
                if not data:
                    raise _incomplete()
                self._left -= len(data)
                if self._chunk_hash is not None:
                    self._chunk_hash.update(data)
                return data
            else:
                await self._end_chunk()
        return b""

    async def _start_chunk(self) -> None:
        header = await self._source.line(MAX_CHUNK_HEADER)
        size_text, *extensions = header.split(b";")
        size_text = size_text.strip()
        if not _HEX_SIZE.fullmatch(size_text):
            raise errors.InvalidRequest("Malformed aws-chunked body: bad chunk size.")
        size = int(size_text, 16)
        self._claimed = None
        for extension in extensions:
            name, _, value = extension.partition(b"=")
            if name.strip() == b"chunk-signature":
                self._claimed = value.strip().lower()
        self._announced += size
        if self._announced > self._decoded_length:
            raise errors.InvalidRequest("The aws-chunked body is longer than "
                                        "x-amz-decoded-content-length.")
        if size == 0:
            if self._mode.signed_chunks:
                self._verify_chunk(EMPTY_SHA256)
            await self._finish()
            return
        self._in_chunk, self._left = True, size
        self._chunk_hash = hashlib.sha256() if self._mode.signed_chunks else None

    async def _end_chunk(self) -> None:
        if await self._source.line(2):
            raise errors.InvalidRequest("Malformed aws-chunked body: chunk data is not followed "
                                        "by CRLF.")
        if self._chunk_hash is not None:
            self._verify_chunk(self._chunk_hash.hexdigest())
        self._in_chunk = False

    def _verify_chunk(self, chunk_sha256_hex: str) -> None:
        assert self._auth is not None  # for_request refuses signed chunks without a signed request
        expected = chunk_signature(self._auth.signing_key, self._amz_date, self._auth.scope,
                                   self._previous, chunk_sha256_hex)
        if self._claimed is None or not hmac.compare_digest(expected.encode(), self._claimed):
            raise errors.SignatureDoesNotMatch("The chunk signature we calculated does not match "
                                               "the signature you provided.")
        self._previous = expected

    async def _finish(self) -> None:
        if self._mode.has_trailer:
            await self._read_trailers()
        elif not await self._source.at_eof() and await self._source.line(2):
            raise errors.InvalidRequest("Malformed aws-chunked body after the final chunk.")
        if not await self._source.at_eof():
            raise errors.InvalidRequest("Unexpected data after the final aws-chunked chunk.")
        if self._announced != self._decoded_length:
            raise errors.IncompleteBody("The aws-chunked body is shorter than "
                                        "x-amz-decoded-content-length.")
        if self._content_length is not None and self._source.raw_bytes != self._content_length:
            raise _incomplete()
        self._done = True

    async def _read_trailers(self) -> None:
        budget = MAX_TRAILER_SECTION
        signature: bytes | None = None
        # The section ends with an empty line; a client that stops right after its last
        # trailer line has still said everything it meant to.
        while not await self._source.at_eof():
            if budget <= 0:
                raise errors.InvalidRequest("The aws-chunked trailer section is too large.")
            line = await self._source.line(budget)
            budget -= len(line) + 2
            if not line:
                break
            name, sep, value = line.partition(b":")
            name = name.strip().lower()
            if not sep or not name or signature is not None:
                raise errors.InvalidRequest("Malformed aws-chunked trailer.")
            if name == b"x-amz-trailer-signature":
                signature = value.strip().lower()
            else:
                self.trailers[name.decode("latin-1")] = value.strip().decode("utf-8", "surrogateescape")
        if self._mode.signed_chunks:
            assert self._auth is not None
            expected = trailer_signature(self._auth.signing_key, self._amz_date, self._auth.scope,
                                         self._previous, self.trailers)
            if signature is None or not hmac.compare_digest(expected.encode(), signature):
                raise errors.SignatureDoesNotMatch("The trailer signature we calculated does not "
                                                   "match the signature you provided.")


def _parse_length(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit():
        raise errors.InvalidArgument(f"{name} must be a non-negative integer.", ArgumentName=name)
    return int(value)


class PayloadReader:
    """The decoded request body. Read it to EOF before trusting it (see the module docstring)."""

    def __init__(self, decoder: _Identity | _Chunked, *, mode: PayloadMode,
                 decoded_length: int | None) -> None:
        self._decoder = decoder
        self.mode = mode
        self.decoded_length = decoded_length
        self.bytes_read = 0
        self._eof = False
        self._failure: errors.S3Error | None = None

    @classmethod
    def for_request(cls, stream: ByteStream, headers: Mapping[str, str], auth: AuthResult | None,
                    *, streaming_allowed: bool) -> PayloadReader:
        """`streaming_allowed` is True only for PutObject and UploadPart, as on S3."""
        lowered = {name.lower(): value for name, value in headers.items()}
        declared = auth.payload_hash if auth is not None else \
            lowered.get("x-amz-content-sha256", UNSIGNED_PAYLOAD)
        mode = PayloadMode.detect(declared)
        content_length = _parse_length(lowered.get("content-length"), "Content-Length")
        if "chunked" in lowered.get("transfer-encoding", "").lower():
            content_length = None  # HTTP framing wins (RFC 9112 6.3); aiohttp has de-chunked it
        source = _Source(stream)
        if not mode.streaming:
            expected = declared.lower() if mode is PayloadMode.SHA256 else None
            return cls(_Identity(source, expected, content_length), mode=mode,
                       decoded_length=content_length)
        if not streaming_allowed:
            raise errors.InvalidRequest(f"x-amz-content-sha256 {declared} is only allowed for "
                                        f"PutObject and UploadPart.")
        if mode.signed_chunks and auth is None:
            raise errors.AccessDenied("A signed streaming payload needs a signed request.")
        decoded = _parse_length(lowered.get("x-amz-decoded-content-length"),
                                "x-amz-decoded-content-length")
        if decoded is None:
            raise errors.MissingContentLength("You must provide the x-amz-decoded-content-length "
                                              "header for a streaming upload.")
        return cls(_Chunked(source, mode, auth, decoded, content_length), mode=mode,
                   decoded_length=decoded)

    @property
    def trailers(self) -> dict[str, str]:
        """Trailing headers (lower-case names), complete once EOF has been reached."""
        return self._decoder.trailers

    @property
    def at_eof(self) -> bool:
        return self._eof

    async def _next(self, n: int) -> bytes | memoryview:
        if self._failure is not None:
            raise self._failure
        if self._eof:
            return b""
        try:
            piece = await self._decoder.next(n)
        except errors.S3Error as exc:
            self._failure = exc
            raise
        if piece:
            self.bytes_read += len(piece)
        else:
            self._eof = True
        return piece

    async def read(self, n: int) -> bytes:
        """Up to n decoded bytes (n > 0); b"" once the whole body has arrived and verified."""
        if n <= 0:
            raise ValueError("read() needs a positive size: bodies are never read unbounded")
        piece = await self._next(n)
        return piece if isinstance(piece, bytes) else bytes(piece)

    async def readexactly_or_eof(self, n: int) -> bytes:
        """Exactly n bytes, or the shorter tail of the body (b"" at EOF)."""
        pieces: list[bytes | memoryview] = []
        got = 0
        while got < n:
            piece = await self._next(n - got)
            if not piece:
                break
            pieces.append(piece)
            got += len(piece)
        if len(pieces) == 1 and isinstance(pieces[0], bytes):
            return pieces[0]
        return b"".join(pieces)

    async def read_all(self, limit: int) -> bytes:
        """A small body (XML requests) in one piece; EntityTooLarge beyond `limit` bytes."""
        data = await self.readexactly_or_eof(limit + 1)
        if len(data) > limit:
            raise errors.EntityTooLarge(f"The request body exceeds {limit} bytes.")
        return data
