"""AWS Signature Version 4 for S3: verify requests (header and presigned URL) and sign them.

Pure functions over plain values (no aiohttp here) so the same code serves the gateway, the CLI,
the benchmarks and the tests. The canonical request follows S3, not the generic SigV4 rules: S3
never normalises the path (`a//b` and `../a` are keys, not directions) and encodes it once.
Each path segment and each query key/value is decoded and re-encoded canonically, so a client that
escapes more or fewer characters than we would still produces the same canonical request.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import NamedTuple
from urllib.parse import quote, unquote_to_bytes, urlsplit, urlunsplit

from gateway.s3 import errors, sigv2

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
TERMINATOR = "aws4_request"
SERVICE = "s3"
MAX_CLOCK_SKEW = timedelta(minutes=15)
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

_UNRESERVED = "-._~"  # plus A-Za-z0-9, which quote() never escapes
_SIGNATURE_RE = re.compile(r"[0-9a-fA-F]{64}")
_PRESIGN_PARAMS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
                   "X-Amz-SignedHeaders", "X-Amz-Signature")


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str = field(repr=False)


class Scope(NamedTuple):
    date: str     # YYYYMMDD
    region: str
    service: str

    @property
    def text(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/{TERMINATOR}"


@dataclass(frozen=True)
class AuthResult:
    access_key: str
    scope: Scope
    amz_date: datetime
    signing_key: bytes = field(repr=False)
    seed_signature: str      # the request signature: seeds the chunk-signature chain
    payload_hash: str        # x-amz-content-sha256 as signed, or UNSIGNED-PAYLOAD
    presigned: bool

    @property
    def amz_date_text(self) -> str:
        return format_amz_date(self.amz_date)


# ---------------------------------------------------------------------------------------------
# Canonical pieces (shared by verification and signing)

def uri_encode(raw: bytes | str) -> str:
    """Percent-encode everything except the unreserved set, with upper-case hex (RFC 3986)."""
    return quote(raw, safe=_UNRESERVED)


def canonical_uri(raw_path: str) -> str:
    """The path as sent, each segment decoded and re-encoded once; '/' separators kept verbatim."""
    if not raw_path:
        return "/"
    return "/".join(uri_encode(unquote_to_bytes(segment)) for segment in raw_path.split("/"))


def _decode_query_component(raw: str) -> bytes:
    # '+' is a space in a query (Go's url.Values.Encode, used by restic and rclone, sends it so
    # and signs %20); a literal plus arrives as %2B from every client.
    return unquote_to_bytes(raw.replace("+", " "))


def parse_query(raw_query: str) -> list[tuple[str, str]]:
    """Decoded (key, value) pairs in order; `?acl` gives ("acl", "")."""
    pairs = []
    for part in raw_query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((_decode_query_component(key).decode("utf-8", "surrogateescape"),
                      _decode_query_component(value).decode("utf-8", "surrogateescape")))
    return pairs


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    encoded = sorted((uri_encode(k.encode("utf-8", "surrogateescape")),
                      uri_encode(v.encode("utf-8", "surrogateescape"))) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def _trim_all(value: str) -> str:
    return " ".join(value.split())


def canonical_headers(headers: Mapping[str, list[str]], signed: list[str]) -> str:
    """`name:value\\n` for each signed header; repeated headers are joined with commas."""
    return "".join(f"{name}:{','.join(_trim_all(v) for v in headers.get(name, ()))}\n"
                   for name in signed)


def canonical_request(method: str, raw_path: str, query_pairs: Iterable[tuple[str, str]],
                      headers: Mapping[str, list[str]], signed: list[str], payload_hash: str) -> str:
    return "\n".join((method.upper(), canonical_uri(raw_path), canonical_query(query_pairs),
                      canonical_headers(headers, signed), ";".join(signed), payload_hash))


def string_to_sign(amz_date: str, scope: Scope, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope.text}\n{digest}"


def derive_signing_key(secret_key: str, scope: Scope) -> bytes:
    key = ("AWS4" + secret_key).encode("utf-8")
    for part in (scope.date, scope.region, scope.service, TERMINATOR):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def hmac_hex(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


def chunk_signature(signing_key: bytes, amz_date: str, scope: Scope, previous: str,
                    chunk_sha256_hex: str) -> str:
    """Signature of one aws-chunked chunk (STREAMING-AWS4-HMAC-SHA256-PAYLOAD)."""
    return hmac_hex(signing_key, f"AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope.text}\n"
                                 f"{previous}\n{EMPTY_SHA256}\n{chunk_sha256_hex}")


def trailer_signature(signing_key: bytes, amz_date: str, scope: Scope, previous: str,
                      trailers: Mapping[str, str]) -> str:
    """Signature over the trailing headers: sorted `name:value\\n` lines, hashed."""
    block = "".join(f"{name}:{value}\n" for name, value in sorted(trailers.items()))
    digest = hashlib.sha256(block.encode("utf-8", "surrogateescape")).hexdigest()
    return hmac_hex(signing_key, f"AWS4-HMAC-SHA256-TRAILER\n{amz_date}\n{scope.text}\n"
                                 f"{previous}\n{digest}")


def format_amz_date(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime(AMZ_DATE_FORMAT)


def parse_amz_date(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, AMZ_DATE_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def _lower_headers(headers: Mapping[str, str]) -> dict[str, list[str]]:
    """Lower-cased names -> every value; `items()` of a multidict yields repeated headers."""
    out: dict[str, list[str]] = {}
    for name, value in headers.items():
        out.setdefault(name.lower(), []).append(value)
    return out


# ---------------------------------------------------------------------------------------------
# Verification

def authenticate(method: str, raw_path: str, raw_query: str, headers: Mapping[str, str],
                 now: datetime, lookup_secret: Callable[[str], str | None], *,
                 region: str | None = None, v2_bucket_prefix: str = "") -> AuthResult:
    """Verify a SigV4 request (Authorization header or presigned URL) and return who signed it.

    `raw_path` is the path exactly as received (percent-encoding intact, no query string);
    `region`, when given, is the only region accepted in the credential scope.
    Anonymous requests are refused: v1 has no public buckets.
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    if "?" in raw_path:  # aiohttp's raw_path carries the query: accept it rather than mis-sign
        raw_path, _, embedded = raw_path.partition("?")
        raw_query = raw_query or embedded
    lowered = _lower_headers(headers)
    query = parse_query(raw_query)
    query_keys = {k for k, _ in query}
    authorization = lowered.get("authorization")
    if sigv2.is_v2(authorization[0] if authorization else None, query_keys):
        access_key, signed_at, presigned_v2 = sigv2.authenticate_v2(
            method, raw_path, raw_query, dict(query), headers, now, lookup_secret, v2_bucket_prefix)
        payload = lowered.get("x-amz-content-sha256", [UNSIGNED_PAYLOAD])[0]
        return AuthResult(access_key=access_key, scope=Scope("", "", SERVICE), amz_date=signed_at,
                          signing_key=b"", seed_signature="", payload_hash=payload,
                          presigned=presigned_v2)
    presigned = "X-Amz-Algorithm" in query_keys or "X-Amz-Signature" in query_keys
    if authorization and presigned:
        raise errors.InvalidArgument("Only one auth mechanism allowed; only the X-Amz-Algorithm "
                                     "query parameter or the Authorization header should be specified")
    if authorization:
        return _authenticate_header(method, raw_path, query, lowered, authorization[0], now,
                                    lookup_secret, region)
    if presigned:
        return _authenticate_presigned(method, raw_path, query, lowered, now, lookup_secret, region)
    raise errors.AccessDenied()


def _v2_unsupported() -> errors.S3Error:
    return errors.InvalidRequest("The authorization mechanism you have provided is not supported. "
                                 "Please use AWS4-HMAC-SHA256.")


@dataclass(frozen=True)
class _Claim:
    """What a request says about its own signature, before we check it."""
    access_key: str
    scope: Scope
    signed_headers: list[str]
    signature: str


def _parse_credential(text: str, error: type[errors.S3Error]) -> tuple[str, Scope]:
    parts = text.rsplit("/", 4)
    if len(parts) != 5 or not parts[0]:
        raise error(f"Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; "
                    f"expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".")
    access_key, date, region_name, service, terminator = parts
    if not (len(date) == 8 and date.isdigit()):
        raise error(f"Invalid credential date \"{date}\". This date is not the same as X-Amz-Date.")
    if service != SERVICE:
        raise error(f"Error parsing the X-Amz-Credential parameter; incorrect service \"{service}\". "
                    f"This endpoint belongs to \"{SERVICE}\".")
    if terminator != TERMINATOR:
        raise error(f"Error parsing the X-Amz-Credential parameter; incorrect terminal "
                    f"\"{terminator}\". This endpoint uses \"{TERMINATOR}\".")
    return access_key, Scope(date, region_name, service)


def _parse_signed_headers(text: str, error: type[errors.S3Error]) -> list[str]:
    names = [n.strip().lower() for n in text.split(";")]
    if not all(names):
        raise error("SignedHeaders is malformed.")
    if "host" not in names:
        raise error("Host must be included in SignedHeaders.")
    return sorted(set(names))


def _parse_authorization(header: str) -> _Claim:
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm == "AWS":
        raise _v2_unsupported()
    if algorithm != ALGORITHM:
        raise errors.AuthorizationHeaderMalformed(
            f"The authorization header is malformed; the authorization mechanism \"{algorithm}\" "
            f"is not supported. Please use {ALGORITHM}.")
    fields: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, value = item.strip().partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if k not in fields]
    if missing:
        raise errors.AuthorizationHeaderMalformed(
            f"The authorization header is malformed; missing {', '.join(missing)}.")
    access_key, scope = _parse_credential(fields["Credential"], errors.AuthorizationHeaderMalformed)
    signed = _parse_signed_headers(fields["SignedHeaders"], errors.AuthorizationHeaderMalformed)
    signature = fields["Signature"]
    if not _SIGNATURE_RE.fullmatch(signature):
        raise errors.AuthorizationHeaderMalformed("The authorization header is malformed; "
                                                  "the Signature is not 64 hex digits.")
    return _Claim(access_key, scope, signed, signature.lower())


def _request_time(lowered: Mapping[str, list[str]]) -> datetime:
    if "x-amz-date" in lowered:
        when = parse_amz_date(lowered["x-amz-date"][0].strip())
    elif "date" in lowered:
        try:
            when = parsedate_to_datetime(lowered["date"][0]).astimezone(timezone.utc)
        except (TypeError, ValueError):
            when = None
    else:
        when = None
    if when is None:
        raise errors.AccessDenied("AWS authentication requires a valid Date or x-amz-date header")
    return when


def _check_unsigned_amz_headers(lowered: Mapping[str, list[str]], signed: list[str]) -> None:
    # Every x-amz-* header changes what the request does (ACL, metadata, object lock, checksums):
    # as on S3, one that the signature does not cover is refused rather than silently trusted.
    unsigned = sorted(n for n in lowered if n.startswith("x-amz-") and n not in signed)
    if unsigned:
        raise errors.AccessDenied("There were headers present in the request which were not signed",
                                  HeadersNotSigned=", ".join(unsigned))


def _lookup(access_key: str, lookup_secret: Callable[[str], str | None]) -> str:
    secret = lookup_secret(access_key)
    if secret is None:
        raise errors.InvalidAccessKeyId(AWSAccessKeyId=access_key)
    return secret


def _check_region(scope: Scope, region: str | None, error: type[errors.S3Error]) -> None:
    if region is not None and scope.region != region:
        raise error(f"The region '{scope.region}' is wrong; expecting '{region}'", Region=region)


def _verify(method: str, raw_path: str, query: list[tuple[str, str]],
            lowered: Mapping[str, list[str]], claim: _Claim, amz_date: datetime, payload_hash: str,
            secret: str, presigned: bool) -> AuthResult:
    canonical = canonical_request(method, raw_path, query, lowered, claim.signed_headers,
                                  payload_hash)
    to_sign = string_to_sign(format_amz_date(amz_date), claim.scope, canonical)
    signing_key = derive_signing_key(secret, claim.scope)
    expected = hmac_hex(signing_key, to_sign)
    if not hmac.compare_digest(expected, claim.signature):
        raise errors.SignatureDoesNotMatch(AWSAccessKeyId=claim.access_key,
                                           StringToSign=to_sign, CanonicalRequest=canonical)
    return AuthResult(access_key=claim.access_key, scope=claim.scope, amz_date=amz_date,
                      signing_key=signing_key, seed_signature=claim.signature,
                      payload_hash=payload_hash, presigned=presigned)


def _authenticate_header(method: str, raw_path: str, query: list[tuple[str, str]],
                         lowered: Mapping[str, list[str]], authorization: str, now: datetime,
                         lookup_secret: Callable[[str], str | None],
                         region: str | None) -> AuthResult:
    claim = _parse_authorization(authorization)
    _check_region(claim.scope, region, errors.AuthorizationHeaderMalformed)
    payload_hash = lowered.get("x-amz-content-sha256", [None])[0]
    if payload_hash is None:
        raise errors.InvalidRequest("Missing required header for this request: x-amz-content-sha256")
    _check_unsigned_amz_headers(lowered, claim.signed_headers)
    amz_date = _request_time(lowered)
    if claim.scope.date != amz_date.strftime("%Y%m%d"):
        raise errors.AuthorizationHeaderMalformed(
            f"Invalid credential date \"{claim.scope.date}\". "
            f"This date is not the same as X-Amz-Date: \"{amz_date.strftime('%Y%m%d')}\".")
    secret = _lookup(claim.access_key, lookup_secret)
    if abs(now - amz_date) > MAX_CLOCK_SKEW:
        raise errors.RequestTimeTooSkewed(RequestTime=format_amz_date(amz_date),
                                          ServerTime=format_amz_date(now),
                                          MaxAllowedSkewMilliseconds="900000")
    return _verify(method, raw_path, query, lowered, claim, amz_date, payload_hash, secret,
                   presigned=False)


def _authenticate_presigned(method: str, raw_path: str, query: list[tuple[str, str]],
                            lowered: Mapping[str, list[str]], now: datetime,
                            lookup_secret: Callable[[str], str | None],
                            region: str | None) -> AuthResult:
    error = errors.AuthorizationQueryParametersError
    params = dict(query)
    if any(p not in params for p in _PRESIGN_PARAMS):
        raise error("Query-string authentication version 4 requires the X-Amz-Algorithm, "
                    "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, "
                    "and X-Amz-Expires parameters.")
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise error(f"X-Amz-Algorithm only supports \"{ALGORITHM}\"")
    access_key, scope = _parse_credential(params["X-Amz-Credential"], error)
    _check_region(scope, region, error)
    signed = _parse_signed_headers(params["X-Amz-SignedHeaders"], error)
    signature = params["X-Amz-Signature"]
    if not _SIGNATURE_RE.fullmatch(signature):
        raise error("X-Amz-Signature must be 64 hex digits.")
    expires_text = params["X-Amz-Expires"]
    if not expires_text.isdigit() or not 1 <= int(expires_text) <= MAX_PRESIGN_EXPIRES:
        raise error("X-Amz-Expires must be a number of seconds between 1 and 604800 (seven days).")
    amz_date = parse_amz_date(params["X-Amz-Date"])
    if amz_date is None:
        raise error("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
    if scope.date != amz_date.strftime("%Y%m%d"):
        raise error(f"Invalid credential date \"{scope.date}\". This date is not the same as "
                    f"X-Amz-Date: \"{amz_date.strftime('%Y%m%d')}\".")
    _check_unsigned_amz_headers(lowered, signed)
    # The body is unknown when a URL is presigned: UNSIGNED-PAYLOAD unless the signer pinned a
    # hash, as a query parameter (SDK hoisting) or a signed header.
    payload_hash = params.get("X-Amz-Content-Sha256") or (
        lowered["x-amz-content-sha256"][0] if "x-amz-content-sha256" in signed
        and "x-amz-content-sha256" in lowered else UNSIGNED_PAYLOAD)
    secret = _lookup(access_key, lookup_secret)
    if now + MAX_CLOCK_SKEW < amz_date:
        raise errors.AccessDenied("Request is not valid yet", RequestTime=format_amz_date(amz_date),
                                  ServerTime=format_amz_date(now))
    expires_at = amz_date + timedelta(seconds=int(expires_text))
    if now > expires_at:
        raise errors.AccessDenied("Request has expired", XAmzExpires=expires_text,
                                  Expires=format_amz_date(expires_at),
                                  ServerTime=format_amz_date(now))
    unsigned_query = [(k, v) for k, v in query if k != "X-Amz-Signature"]
    claim = _Claim(access_key, scope, signed, signature.lower())
    return _verify(method, raw_path, unsigned_query, lowered, claim, amz_date, payload_hash,
                   secret, presigned=True)


# ---------------------------------------------------------------------------------------------
# Signing (CLI, benchmarks, tests)

def _host_header(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    if not parts.netloc:
        raise ValueError(f"not an absolute URL: {url!r}")
    return parts.netloc, parts.path or "/", parts.query


def sign_request(method: str, url: str, credentials: Credentials, *, now: datetime,
                 region: str = "us-east-1", headers: Mapping[str, str] | None = None,
                 payload_hash: str = UNSIGNED_PAYLOAD) -> dict[str, str]:
    """Headers (lower-case names) that authenticate `method url`, every given header signed.

    `url` must already be percent-encoded as it will go on the wire. The result includes `host`,
    `x-amz-date`, `x-amz-content-sha256` and `authorization`; the seed signature for a signed
    streaming body is the `Signature=` of the authorization value.
    """
    host, raw_path, raw_query = _host_header(url)
    out = {k.lower(): v for k, v in (headers or {}).items() if k.lower() != "authorization"}
    out.setdefault("host", host)
    out["x-amz-date"] = format_amz_date(now)
    out["x-amz-content-sha256"] = payload_hash
    scope = Scope(now.astimezone(timezone.utc).strftime("%Y%m%d"), region, SERVICE)
    signed = sorted(out)
    canonical = canonical_request(method, raw_path, parse_query(raw_query),
                                  {k: [v] for k, v in out.items()}, signed, payload_hash)
    signature = hmac_hex(derive_signing_key(credentials.secret_key, scope),
                         string_to_sign(out["x-amz-date"], scope, canonical))
    out["authorization"] = (f"{ALGORITHM} Credential={credentials.access_key}/{scope.text}, "
                            f"SignedHeaders={';'.join(signed)}, Signature={signature}")
    return out


def presign_url(method: str, url: str, credentials: Credentials, *, now: datetime,
                expires: int = 3600, region: str = "us-east-1") -> str:
    """A presigned URL for `method url` (only `host` signed, UNSIGNED-PAYLOAD), like boto3's."""
    if not 1 <= expires <= MAX_PRESIGN_EXPIRES:
        raise ValueError("expires must be between 1 second and 7 days")
    host, raw_path, raw_query = _host_header(url)
    scope = Scope(now.astimezone(timezone.utc).strftime("%Y%m%d"), region, SERVICE)
    auth_params = [("X-Amz-Algorithm", ALGORITHM),
                   ("X-Amz-Credential", f"{credentials.access_key}/{scope.text}"),
                   ("X-Amz-Date", format_amz_date(now)), ("X-Amz-Expires", str(expires)),
                   ("X-Amz-SignedHeaders", "host")]
    query = parse_query(raw_query) + auth_params
    canonical = canonical_request(method, raw_path, query, {"host": [host]}, ["host"],
                                  UNSIGNED_PAYLOAD)
    signature = hmac_hex(derive_signing_key(credentials.secret_key, scope),
                         string_to_sign(format_amz_date(now), scope, canonical))
    encoded = canonical_query(query) + f"&X-Amz-Signature={signature}"
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", encoded, ""))
