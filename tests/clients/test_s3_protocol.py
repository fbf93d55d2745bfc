"""The S3 protocol byte by byte: raw signed HTTP/1.1 requests against a real Cairn cluster.

No SDK between the test and the socket, so every header, every framing byte and every signature is
exactly what the test says. Each reply is checked for an `x-amz-request-id` header, and an error
body's <RequestId> must equal it. This module holds the raw client (reused by the other
test_s3_*.py modules) and the authentication, request-shape and health tests.
"""
from __future__ import annotations

import email.utils

import hashlib
import http.client
import socket
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest

from gateway.s3.sigv4 import (ALGORITHM, SERVICE, UNSIGNED_PAYLOAD, Credentials, Scope,
                              canonical_query, canonical_request, chunk_signature,
                              derive_signing_key, format_amz_date, hmac_hex, parse_query,
                              presign_url, sign_request, string_to_sign, trailer_signature)

pytestmark = pytest.mark.clients

REGION = "us-east-1"
NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
TIMEOUT = 20.0


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def xml(self) -> ET.Element:
        return ET.fromstring(self.body)

    @property
    def code(self) -> str | None:
        """The S3 error Code, or None when the body is not an S3 error document."""
        if not self.body.lstrip().startswith(b"<"):
            return None
        root = self.xml
        return root.findtext("Code") if root.tag == "Error" else None

    def expect(self, status: int, code: str | None = None) -> "Reply":
        assert self.status == status, (self.status, self.body[:600])
        if code is not None:
            assert self.code == code, (self.status, self.body[:600])
        return self


def _check_request_id(reply: Reply, method: str) -> None:
    request_id = reply.headers.get("x-amz-request-id")
    assert request_id, f"no x-amz-request-id on {reply.status} {reply.headers}"
    if reply.status >= 300 and method != "HEAD" and reply.status != 304:
        assert reply.headers.get("content-type", "").startswith("application/xml"), reply.headers
        root = ET.fromstring(reply.body)
        assert root.tag == "Error" and root.findtext("Code"), reply.body[:300]
        assert root.findtext("RequestId") == request_id, (reply.body[:300], request_id)


def exchange(port: int, head: bytes, body: Iterable[bytes] = (), *, method: str,
             half_close: bool = False, host: str = "127.0.0.1") -> Reply:
    """Send exact bytes and read one response.

    The body goes out from a thread while this one reads: a server may answer (and close)
    before it has read everything, which must not deadlock or lose the answer.
    """
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        def send() -> None:
            try:
                sock.sendall(head)
                for piece in body:
                    sock.sendall(piece)
                if half_close:
                    sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the server answered early and closed; the reply says why
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        response = http.client.HTTPResponse(sock, method=method)
        response.begin()
        data = response.read()
        sender.join(TIMEOUT)
        headers = {name.lower(): value for name, value in response.getheaders()}
    reply = Reply(response.status, headers, data)
    _check_request_id(reply, method)
    return reply


@dataclass
class RawS3:
    """Signs and sends requests to one gateway, path style unless a Host header says otherwise."""
    port: int
    access_key: str
    secret_key: str = field(repr=False)
    host_name: str = "127.0.0.1"  # what the Host header names; the socket always goes to 127.0.0.1

    @property
    def host(self) -> str:
        return f"{self.host_name}:{self.port}"

    @property
    def credentials(self) -> Credentials:
        return Credentials(self.access_key, self.secret_key)

    def url(self, target: str) -> str:
        return f"http://{self.host}{target}"

    def signed_headers(self, method: str, target: str, *, payload_hash: str,
                       headers: Mapping[str, str] | None = None, now: datetime | None = None,
                       secret_key: str | None = None) -> dict[str, str]:
        """SigV4 headers for `method target` (target = raw path + query, as on the wire)."""
        creds = Credentials(self.access_key, secret_key or self.secret_key)
        return sign_request(method, self.url(target), creds, now=now or utcnow(), region=REGION,
                            headers={"host": self.host, **(headers or {})},
                            payload_hash=payload_hash)

    def send(self, method: str, target: str, body: bytes | Iterable[bytes] = b"", *,
             headers: Mapping[str, str] | None = None, unsigned: Mapping[str, str] | None = None,
             payload_hash: str | None = None, sign: bool = True, now: datetime | None = None,
             secret_key: str | None = None, content_length: int | None = None,
             half_close: bool = False) -> Reply:
        """`headers` are signed, `unsigned` are added after signing. Content-Length is set from a
        bytes body unless `unsigned` has its own framing (Content-Length or Transfer-Encoding)."""
        all_headers = dict(headers or {})
        if sign:
            if payload_hash is None:
                payload_hash = sha256_hex(body) if isinstance(body, bytes) else UNSIGNED_PAYLOAD
            all_headers = self.signed_headers(method, target, payload_hash=payload_hash,
                                              headers=headers, now=now, secret_key=secret_key)
        all_headers.setdefault("host", self.host)
        extra = {k.lower(): v for k, v in (unsigned or {}).items()}
        framing = {"content-length", "transfer-encoding"} & extra.keys()
        if not framing:
            if content_length is not None:
                extra["content-length"] = str(content_length)
            elif isinstance(body, bytes) and (body or method in ("PUT", "POST")):
                extra["content-length"] = str(len(body))
        all_headers.update(extra)
        return exchange(self.port, request_head(method, target, all_headers),
                        [body] if isinstance(body, bytes) else body, method=method,
                        half_close=half_close)

    def presigned_target(self, method: str, target: str, *, now: datetime, expires: int) -> str:
        url = presign_url(method, self.url(target), self.credentials, now=now, expires=expires,
                          region=REGION)
        return url[len(f"http://{self.host}"):]

    def get(self, target: str, **kw) -> Reply:
        return self.send("GET", target, **kw)

    def put(self, target: str, body: bytes = b"", **kw) -> Reply:
        return self.send("PUT", target, body, **kw)

    def head(self, target: str, **kw) -> Reply:
        return self.send("HEAD", target, **kw)


def request_head(method: str, target: str, headers: Mapping[str, str]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def presign_any_expiry(s3: RawS3, method: str, target: str, *, now: datetime, expires: int) -> str:
    """A correctly signed presigned target with any X-Amz-Expires (presign_url refuses > 7 days)."""
    scope = Scope(now.strftime("%Y%m%d"), REGION, SERVICE)
    path, _, raw_query = target.partition("?")
    query = parse_query(raw_query) + [
        ("X-Amz-Algorithm", ALGORITHM), ("X-Amz-Credential", f"{s3.access_key}/{scope.text}"),
        ("X-Amz-Date", format_amz_date(now)), ("X-Amz-Expires", str(expires)),
        ("X-Amz-SignedHeaders", "host")]
    canonical = canonical_request(method, path, query, {"host": [s3.host]}, ["host"],
                                  UNSIGNED_PAYLOAD)
    signature = hmac_hex(derive_signing_key(s3.secret_key, scope),
                         string_to_sign(format_amz_date(now), scope, canonical))
    return f"{path}?{canonical_query(query)}&X-Amz-Signature={signature}"


# --- aws-chunked bodies ----------------------------------------------------------------------------

@dataclass(frozen=True)
class ChunkSigner:
    """The signing state a STREAMING-AWS4-HMAC-SHA256-* body continues from."""
    key: bytes
    amz_date: str
    scope: Scope
    seed: str

    @classmethod
    def from_headers(cls, signed: Mapping[str, str], secret_key: str) -> "ChunkSigner":
        auth = signed["authorization"]
        credential = auth.split("Credential=", 1)[1].split(",", 1)[0]
        _, date, region, service, _ = credential.split("/")
        scope = Scope(date, region, service)
        return cls(derive_signing_key(secret_key, scope), signed["x-amz-date"], scope,
                   auth.rsplit("Signature=", 1)[1])


def aws_chunks(data: bytes, chunk_size: int, signer: ChunkSigner | None = None, *,
               trailers: Mapping[str, str] | None = None, bad_chunk: int | None = None) -> bytes:
    """aws-chunked framing of `data`; signed when `signer` is given (chunk number `bad_chunk`
    then carries a wrong signature); `trailers` after the final chunk (signed with a signer)."""
    pieces = [data[i:i + chunk_size] for i in range(0, len(data), chunk_size)] + [b""]
    out = []
    previous = signer.seed if signer else ""
    for index, piece in enumerate(pieces):
        if signer is None:
            out.append(f"{len(piece):x}\r\n".encode())
        else:
            signature = chunk_signature(signer.key, signer.amz_date, signer.scope, previous,
                                        sha256_hex(piece))
            previous = signature
            if index == bad_chunk:
                signature = ("0" if signature[0] != "0" else "1") + signature[1:]
            out.append(f"{len(piece):x};chunk-signature={signature}\r\n".encode())
        if piece:
            out.append(piece + b"\r\n")
    if trailers is not None:
        for name, value in trailers.items():
            out.append(f"{name}:{value}\r\n".encode())
        if signer is not None:
            signature = trailer_signature(signer.key, signer.amz_date, signer.scope, previous,
                                          trailers)
            out.append(f"x-amz-trailer-signature:{signature}\r\n".encode())
    out.append(b"\r\n")
    return b"".join(out)


def http_chunked(body: bytes, piece: int) -> list[bytes]:
    """HTTP/1.1 Transfer-Encoding: chunked framing of `body`, one list item per HTTP chunk."""
    chunks = [f"{len(body[i:i + piece]):x}\r\n".encode() + body[i:i + piece] + b"\r\n"
              for i in range(0, len(body), piece)]
    return chunks + [b"0\r\n\r\n"]


# --- fixtures --------------------------------------------------------------------------------------

@pytest.fixture
def raw(cluster) -> RawS3:
    return RawS3(cluster.ports[0], cluster.access_key, cluster.secret_key)


@pytest.fixture
def raw_bucket(raw) -> str:
    name = f"p-{uuid.uuid4().hex[:12]}"
    raw.put(f"/{name}").expect(200)
    return name


def key_target(bucket: str, key: str) -> str:
    return f"/{bucket}/{quote(key, safe='/')}"


# --- authentication --------------------------------------------------------------------------------

def test_no_authentication_is_access_denied(raw, raw_bucket):
    raw.send("GET", f"/{raw_bucket}", sign=False).expect(403, "AccessDenied")
    raw.send("PUT", f"/{raw_bucket}/k", b"x", sign=False).expect(403, "AccessDenied")
    raw.get(f"/{raw_bucket}/k").expect(404, "NoSuchKey")


def test_unknown_access_key(raw, raw_bucket):
    stranger = RawS3(raw.port, "AKNOSUCHKEY" + uuid.uuid4().hex[:9].upper(), "x" * 40)
    stranger.get(f"/{raw_bucket}").expect(403, "InvalidAccessKeyId")


def test_wrong_secret(raw, raw_bucket):
    raw.get(f"/{raw_bucket}", secret_key="not-the-secret").expect(403, "SignatureDoesNotMatch")
    raw.put(f"/{raw_bucket}/k", b"data", secret_key="not-the-secret").expect(
        403, "SignatureDoesNotMatch")
    raw.get(f"/{raw_bucket}/k").expect(404, "NoSuchKey")


def test_tampered_signed_header(raw, raw_bucket):
    target = f"/{raw_bucket}/tampered"
    body = b"payload"
    signed = raw.signed_headers("PUT", target, payload_hash=sha256_hex(body),
                                headers={"x-amz-meta-color": "blue"})
    signed["x-amz-meta-color"] = "red"
    signed["content-length"] = str(len(body))
    exchange(raw.port, request_head("PUT", target, signed), [body], method="PUT").expect(
        403, "SignatureDoesNotMatch")
    raw.get(target).expect(404, "NoSuchKey")


def test_unsigned_amz_header_is_refused(raw, raw_bucket):
    raw.put(f"/{raw_bucket}/k", b"data", unsigned={"x-amz-meta-sneaky": "1"}).expect(
        403, "AccessDenied")
    raw.get(f"/{raw_bucket}/k").expect(404, "NoSuchKey")


@pytest.mark.parametrize("offset", [timedelta(minutes=20), timedelta(minutes=-20)])
def test_header_auth_clock_skew(raw, raw_bucket, offset):
    raw.get(f"/{raw_bucket}", now=utcnow() + offset).expect(403, "RequestTimeTooSkewed")
    raw.get(f"/{raw_bucket}", now=utcnow() + offset / 2).expect(200)  # 10 min is within 15


def test_presigned_url_signed_long_ago_still_works(raw, raw_bucket):
    raw.put(f"/{raw_bucket}/pre", b"presigned body").expect(200)
    target = raw.presigned_target("GET", f"/{raw_bucket}/pre", now=utcnow() - timedelta(minutes=20),
                                  expires=3600)
    reply = raw.send("GET", target, sign=False).expect(200)
    assert reply.body == b"presigned body"


def test_presigned_put(raw, raw_bucket):
    target = raw.presigned_target("PUT", f"/{raw_bucket}/pre-put", now=utcnow(), expires=60)
    raw.send("PUT", target, b"via presigned put", sign=False).expect(200)
    assert raw.get(f"/{raw_bucket}/pre-put").expect(200).body == b"via presigned put"


def test_presigned_url_expired(raw, raw_bucket):
    raw.put(f"/{raw_bucket}/pre", b"x").expect(200)
    target = raw.presigned_target("GET", f"/{raw_bucket}/pre", now=utcnow() - timedelta(hours=2),
                                  expires=3600)
    raw.send("GET", target, sign=False).expect(403, "AccessDenied")


def test_presigned_tampered_query(raw, raw_bucket):
    raw.put(f"/{raw_bucket}/pre", b"x").expect(200)
    target = raw.presigned_target("GET", f"/{raw_bucket}/pre", now=utcnow(), expires=3600)
    raw.send("GET", target.replace("X-Amz-Expires=3600", "X-Amz-Expires=3601"),
             sign=False).expect(403, "SignatureDoesNotMatch")


def test_presigned_expiry_over_seven_days(raw, raw_bucket):
    week = 7 * 24 * 3600
    ok = presign_any_expiry(raw, "GET", f"/{raw_bucket}", now=utcnow(), expires=week)
    raw.send("GET", ok, sign=False).expect(200)
    too_long = presign_any_expiry(raw, "GET", f"/{raw_bucket}", now=utcnow(), expires=week + 1)
    raw.send("GET", too_long, sign=False).expect(400, "AuthorizationQueryParametersError")


def test_both_auth_mechanisms_refused(raw, raw_bucket):
    target = raw.presigned_target("GET", f"/{raw_bucket}", now=utcnow(), expires=60)
    raw.get(target).expect(400, "InvalidArgument")


def test_sigv2_checks_date_and_signature(raw, raw_bucket):
    raw.get(f"/{raw_bucket}", sign=False,
            unsigned={"Authorization": f"AWS {raw.access_key}:c2lnbmF0dXJl",
                      "Date": "Mon, 01 Jan 2024 00:00:00 GMT"}).expect(403, "RequestTimeTooSkewed")
    raw.get(f"/{raw_bucket}", sign=False,
            unsigned={"Authorization": f"AWS {raw.access_key}:c2lnbmF0dXJl",
                      "Date": email.utils.formatdate(usegmt=True)}).expect(403, "SignatureDoesNotMatch")


def test_malformed_authorization_header(raw, raw_bucket):
    raw.get(f"/{raw_bucket}", sign=False, unsigned={
        "Authorization": f"{ALGORITHM} Credential={raw.access_key}/20240101/{REGION}/s3",
        "x-amz-date": format_amz_date(utcnow()), "x-amz-content-sha256": sha256_hex(b"")}
    ).expect(400, "AuthorizationHeaderMalformed")


def _mutated(raw: RawS3, target: str, change) -> Reply:
    headers = raw.signed_headers("GET", target, payload_hash=sha256_hex(b""))
    change(headers)
    return exchange(raw.port, request_head("GET", target, headers), method="GET")


def test_malformed_signed_header_fields(raw, raw_bucket):
    target = f"/{raw_bucket}"
    today = utcnow().strftime("%Y%m%d")

    def other_scope_date(h):
        h["authorization"] = h["authorization"].replace(f"/{today}/", "/20000101/")

    def other_service(h):
        h["authorization"] = h["authorization"].replace("/s3/aws4_request", "/ec2/aws4_request")

    def host_not_signed(h):
        h["authorization"] = h["authorization"].replace("SignedHeaders=host;", "SignedHeaders=")

    _mutated(raw, target, other_scope_date).expect(400, "AuthorizationHeaderMalformed")
    _mutated(raw, target, other_service).expect(400, "AuthorizationHeaderMalformed")
    _mutated(raw, target, host_not_signed).expect(400, "AuthorizationHeaderMalformed")
    _mutated(raw, target, lambda h: h.pop("x-amz-content-sha256")).expect(400, "InvalidRequest")
    _mutated(raw, target, lambda h: h.update({"x-amz-date": "yesterday"})).expect(
        403, "AccessDenied")
    _mutated(raw, target, lambda h: h.update(host="127.0.0.2:1")).expect(
        403, "SignatureDoesNotMatch")


# --- request shape ---------------------------------------------------------------------------------

def test_metadata_over_2kb(raw, raw_bucket):
    # S3 counts the UTF-8 bytes of every name (without x-amz-meta-) and value: at most 2048.
    raw.put(f"/{raw_bucket}/meta", b"x", headers={"x-amz-meta-big": "v" * 2046}).expect(
        400, "MetadataTooLarge")
    raw.put(f"/{raw_bucket}/meta", b"x", headers={"x-amz-meta-a": "v" * 1100,
                                                  "x-amz-meta-b": "w" * 1100}).expect(
        400, "MetadataTooLarge")
    raw.get(f"/{raw_bucket}/meta").expect(404, "NoSuchKey")
    raw.put(f"/{raw_bucket}/meta", b"x", headers={"x-amz-meta-big": "v" * 2045}).expect(200)
    assert raw.head(f"/{raw_bucket}/meta").expect(200).headers["x-amz-meta-big"] == "v" * 2045


def test_put_without_content_length(raw, raw_bucket):
    signed = raw.signed_headers("PUT", f"/{raw_bucket}/nolen", payload_hash=UNSIGNED_PAYLOAD)
    exchange(raw.port, request_head("PUT", f"/{raw_bucket}/nolen", signed), method="PUT").expect(
        411, "MissingContentLength")
    raw.get(f"/{raw_bucket}/nolen").expect(404, "NoSuchKey")


def test_unknown_query_on_put_is_not_implemented(raw, raw_bucket):
    raw.put(f"/{raw_bucket}/k?frobnicate=1", b"x").expect(501, "NotImplemented")
    raw.put(f"/{raw_bucket}?frobnicate", b"").expect(501, "NotImplemented")
    raw.get(f"/{raw_bucket}/k").expect(404, "NoSuchKey")


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "99999999999", ""])
def test_list_objects_bad_max_keys(raw, raw_bucket, value):
    raw.get(f"/{raw_bucket}?max-keys={value}").expect(400, "InvalidArgument")
    raw.get(f"/{raw_bucket}?list-type=2&max-keys={value}").expect(400, "InvalidArgument")


def test_list_objects_max_keys_zero_and_bad_list_type(raw, raw_bucket):
    raw.put(f"/{raw_bucket}/a", b"1").expect(200)
    root = raw.get(f"/{raw_bucket}?max-keys=0").expect(200).xml
    assert root.findall(f"{NS}Contents") == []
    raw.get(f"/{raw_bucket}?list-type=3").expect(400, "InvalidArgument")
    raw.get(f"/{raw_bucket}?encoding-type=base64").expect(400, "InvalidArgument")


@pytest.mark.parametrize("token", ["%25%25%25", "not%20base64", "abc", "%C3%A9"])
def test_list_objects_bad_continuation_token(raw, raw_bucket, token):
    raw.get(f"/{raw_bucket}?list-type=2&continuation-token={token}").expect(400, "InvalidArgument")


def test_list_objects_continuation_token_round_trip(raw, raw_bucket):
    for key in ("a", "b~", "c\u00e9", "d"):
        raw.put(f"/{raw_bucket}/{quote(key)}", b"x").expect(200)
    keys, token = [], None
    for _ in range(10):
        query = "list-type=2&max-keys=1" + (f"&continuation-token={quote(token, safe='')}"
                                             if token else "")
        root = raw.get(f"/{raw_bucket}?{query}").expect(200).xml
        keys += [c.findtext(f"{NS}Key") for c in root.findall(f"{NS}Contents")]
        token = root.findtext(f"{NS}NextContinuationToken")
        if token is None:
            break
    assert keys == ["a", "b~", "c\u00e9", "d"]


def test_method_not_allowed(raw, raw_bucket):
    raw.send("PATCH", f"/{raw_bucket}/k", b"x").expect(405, "MethodNotAllowed")
    raw.send("POST", f"/{raw_bucket}/k", b"").expect(405, "MethodNotAllowed")


# --- health and metrics ----------------------------------------------------------------------------

def test_health_and_metrics(raw):
    live = raw.send("GET", "/-/health/live", sign=False).expect(200)
    assert b"live" in live.body
    ready = raw.send("GET", "/-/health/ready", sign=False).expect(200)
    assert b'"ready"' in ready.body
    raw.get("/").expect(200)
    metrics = raw.send("GET", "/-/metrics", sign=False).expect(200)
    assert metrics.headers["content-type"].startswith("text/plain")
    lines = [line for line in metrics.body.decode().splitlines()
             if line.startswith("cairn_s3_requests_total{")]
    assert any('op="ListBuckets"' in line and 'status="200"' in line for line in lines), lines
