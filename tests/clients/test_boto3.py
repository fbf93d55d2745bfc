"""boto3 end to end against a real Cairn cluster (real node and gateway processes).

Every test runs four ways: over plain HTTP (boto3 signs the hex SHA-256 of the body) and over TLS
(boto3 switches PUTs to STREAMING-UNSIGNED-PAYLOAD-TRAILER: aws-chunked inside HTTP chunked
framing, no Content-Length, a CRC trailer), each with botocore's default checksum behaviour
("when_supported": a CRC32 on every upload, validation of returned checksums) and with
"when_required" (checksums only where the API demands them). Every downloaded byte is compared
with what was uploaded.
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
import random
import ssl
import time
import urllib.error
import urllib.request
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from urllib.parse import unquote, unquote_plus

import pytest
from awscrt import checksums as crt
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

pytestmark = [pytest.mark.clients, pytest.mark.cluster]

KiB, MiB = 1 << 10, 1 << 20
INLINE = 16 * KiB  # the gateway's default inline threshold
MODES = [("http", "when_supported"), ("http", "when_required"),
         ("tls", "when_supported"), ("tls", "when_required")]
AWKWARD_KEYS = ["a b", "../a", "a//b", "%2F", "ü/ß", "+=&?#", "x/./y", "trailing/", "tab\there"]


class Env:
    """One cluster seen through one boto3 client configuration."""

    def __init__(self, cluster, transport: str, checksums: str) -> None:
        self.cluster = cluster
        self.transport = transport
        self.checksums = checksums
        self.s3 = cluster.boto3_client(checksums=checksums)
        # A second gateway (when the cluster has one) reads what the first wrote.
        self.s3_other = cluster.boto3_client(len(cluster.ports) - 1, checksums=checksums)

    def ssl_context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cafile=str(self.cluster.ca_file)) if self.cluster.tls else None


@pytest.fixture(params=MODES, ids=lambda m: f"{m[0]}-{m[1]}")
def env(request) -> Env:
    transport, checksums = request.param
    cluster = request.getfixturevalue("cluster" if transport == "http" else "tls_cluster")
    return Env(cluster, transport, checksums)


@pytest.fixture
def bkt(env) -> str:
    name = f"b3-{uuid.uuid4().hex[:12]}"
    env.s3.create_bucket(Bucket=name)
    return name


def payload(size: int, seed: int = 0) -> bytes:
    """Deterministic random bytes: no repeating period that could hide a stripe mix-up."""
    return random.Random(seed).randbytes(size)


def error(excinfo) -> tuple[int, str]:
    resp = excinfo.value.response
    return resp["ResponseMetadata"]["HTTPStatusCode"], resp["Error"]["Code"]


def get_bytes(s3, bucket: str, key: str, **kw) -> tuple[dict, bytes]:
    resp = s3.get_object(Bucket=bucket, Key=key, **kw)
    return resp, resp["Body"].read()


def expected_checksum(algorithm: str, data: bytes) -> str:
    if algorithm == "CRC32":
        raw = zlib.crc32(data).to_bytes(4, "big")
    elif algorithm == "CRC32C":
        raw = crt.crc32c(data).to_bytes(4, "big")
    elif algorithm == "CRC64NVME":
        raw = crt.crc64nvme(data).to_bytes(8, "big")
    else:
        raw = hashlib.new(algorithm.lower(), data).digest()
    return base64.b64encode(raw).decode()


# ---- buckets ------------------------------------------------------------------------------------

def test_bucket_lifecycle(env):
    s3 = env.s3
    name = f"b3-{uuid.uuid4().hex[:12]}"
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=name)
    assert error(exc)[0] == 404
    s3.create_bucket(Bucket=name)
    assert s3.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=name)
    assert error(exc) == (409, "BucketAlreadyOwnedByYou")
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert env.s3_other.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200

    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] is None  # us-east-1
    versioning = s3.get_bucket_versioning(Bucket=name)
    assert "Status" not in versioning and versioning["ResponseMetadata"]["HTTPStatusCode"] == 200
    acl = s3.get_bucket_acl(Bucket=name)
    assert acl["Owner"]["ID"] == env.cluster.access_key
    assert [(g["Grantee"]["ID"], g["Permission"]) for g in acl["Grants"]] == \
        [(env.cluster.access_key, "FULL_CONTROL")]

    s3.put_object(Bucket=name, Key="k", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=name)
    assert error(exc) == (409, "BucketNotEmpty")
    s3.delete_object(Bucket=name, Key="k")
    s3.delete_bucket(Bucket=name)
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=name)
    assert error(exc)[0] == 404
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=name)
    assert error(exc) == (404, "NoSuchBucket")
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=name, Key="k", Body=b"x")
    assert error(exc) == (404, "NoSuchBucket")
    with pytest.raises(ClientError) as exc:
        s3.list_objects_v2(Bucket=name)
    assert error(exc) == (404, "NoSuchBucket")
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_create_bucket_with_location_constraint(env):
    name = f"b3-{uuid.uuid4().hex[:12]}"
    with pytest.raises(ClientError) as exc:
        env.s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert error(exc) == (400, "InvalidLocationConstraint")
    with pytest.raises(ClientError) as exc:
        env.s3.head_bucket(Bucket=name)
    assert error(exc)[0] == 404


# ---- put / get / head ---------------------------------------------------------------------------

def test_payload_mode_on_the_wire(env, bkt):
    """Proves which payload mode each configuration exercises (see the module docstring)."""
    sent = []
    env.s3.meta.events.register("before-send.s3.PutObject",
                                lambda request, **kw: sent.append(dict(request.headers)))
    data = payload(3 * INLINE)
    env.s3.put_object(Bucket=bkt, Key="mode", Body=data)
    (headers,) = sent
    mode = headers["x-amz-content-sha256"]
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if env.transport == "tls" and env.checksums == "when_supported":
        assert mode == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
        assert "Content-Length" not in headers and headers["Transfer-Encoding"] == b"chunked"
    else:
        assert mode == hashlib.sha256(data).hexdigest()
    assert get_bytes(env.s3_other, bkt, "mode")[1] == data


@pytest.mark.parametrize("size", [0, 1, INLINE - 1, INLINE, INLINE + 1, MiB + 3, 9 * MiB],
                         ids=lambda s: f"{s}B")
def test_put_get_sizes(env, bkt, size):
    data = payload(size, seed=size)
    put = env.s3.put_object(Bucket=bkt, Key="obj", Body=data)
    md5 = hashlib.md5(data).hexdigest()
    assert put["ETag"] == f'"{md5}"'
    for s3 in (env.s3, env.s3_other):
        head = s3.head_object(Bucket=bkt, Key="obj")
        assert head["ContentLength"] == size
        assert head["ETag"] == f'"{md5}"'
        resp, got = get_bytes(s3, bkt, "obj", ChecksumMode="ENABLED")
        assert resp["ContentLength"] == size
        assert len(got) == size and got == data
        # By default botocore sends a CRC32 (a header over HTTP, a trailer over TLS); it is
        # stored and returned, and botocore has checked it against the body just read.
        if env.checksums == "when_supported":
            assert resp["ChecksumCRC32"] == expected_checksum("CRC32", data)
        else:
            assert "ChecksumCRC32" not in resp


def test_overwrite_replaces_bytes(env, bkt):
    first, second = payload(2 * MiB + 1, seed=1), payload(INLINE - 5, seed=2)
    env.s3.put_object(Bucket=bkt, Key="o", Body=first)
    env.s3.put_object(Bucket=bkt, Key="o", Body=second)
    assert get_bytes(env.s3_other, bkt, "o")[1] == second
    env.s3.put_object(Bucket=bkt, Key="o", Body=first)
    assert get_bytes(env.s3, bkt, "o")[1] == first


def test_metadata_and_stored_headers(env, bkt):
    expires = datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
    data = payload(INLINE + 100)
    env.s3.put_object(
        Bucket=bkt, Key="m", Body=data, Metadata={"color": "blue", "Mixed-Case": "Value 1"},
        ContentType="text/plain; charset=utf-8", ContentEncoding="identity",
        ContentDisposition='attachment; filename="x y.txt"', ContentLanguage="de-CH",
        CacheControl="max-age=60, private", Expires=expires)
    head = env.s3_other.head_object(Bucket=bkt, Key="m")
    resp, got = get_bytes(env.s3, bkt, "m")
    assert got == data
    for r in (head, resp):
        assert r["Metadata"] == {"color": "blue", "mixed-case": "Value 1"}
        assert r["ContentType"] == "text/plain; charset=utf-8"
        # aws-chunked is transfer framing, never a stored encoding.
        assert r["ContentEncoding"] == "identity"
        assert r["ContentDisposition"] == 'attachment; filename="x y.txt"'
        assert r["ContentLanguage"] == "de-CH"
        assert r["CacheControl"] == "max-age=60, private"
        assert r["Expires"] == expires
        assert r["ContentLength"] == len(data)


def test_default_content_type(env, bkt):
    env.s3.put_object(Bucket=bkt, Key="d", Body=b"abc")
    head = env.s3.head_object(Bucket=bkt, Key="d")
    assert head["ContentType"] == "binary/octet-stream"
    assert "ContentEncoding" not in head  # nothing stored, even though TLS uploads are aws-chunked


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"])
@pytest.mark.parametrize("size", [5, 3 * INLINE + 7], ids=["inline", "striped"])
def test_checksum_algorithms(env, bkt, algorithm, size):
    data = payload(size, seed=7)
    want = expected_checksum(algorithm, data)
    field = f"Checksum{algorithm}"
    put = env.s3.put_object(Bucket=bkt, Key="c", Body=data, ChecksumAlgorithm=algorithm)
    assert put[field] == want
    for s3 in (env.s3, env.s3_other):
        resp, got = get_bytes(s3, bkt, "c", ChecksumMode="ENABLED")
        assert got == data
        assert resp[field] == want
        head = s3.head_object(Bucket=bkt, Key="c", ChecksumMode="ENABLED")
        assert head[field] == want
        assert head["ContentLength"] == size
    ranged, got = get_bytes(env.s3, bkt, "c", ChecksumMode="ENABLED", Range="bytes=1-3")
    assert got == data[1:4]
    assert not any(k.startswith("Checksum") and k != "ChecksumType" for k in ranged)
    plain = env.s3.head_object(Bucket=bkt, Key="c")
    assert field not in plain


def test_wrong_checksum_header_is_rejected(env, bkt):
    bad = expected_checksum("SHA256", b"something else")
    with pytest.raises(ClientError) as exc:
        env.s3.put_object(Bucket=bkt, Key="bad", Body=b"the body", ChecksumSHA256=bad)
    assert error(exc)[0] == 400 and error(exc)[1] in ("BadDigest", "XAmzContentChecksumMismatch")
    with pytest.raises(ClientError) as exc:
        env.s3.head_object(Bucket=bkt, Key="bad")
    assert error(exc)[0] == 404


def test_wrong_content_md5_is_rejected(env, bkt):
    bad = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ClientError) as exc:
        env.s3.put_object(Bucket=bkt, Key="bad", Body=b"the body", ContentMD5=bad)
    assert error(exc) == (400, "BadDigest")
    good = base64.b64encode(hashlib.md5(b"the body").digest()).decode()
    env.s3.put_object(Bucket=bkt, Key="good", Body=b"the body", ContentMD5=good)
    assert get_bytes(env.s3, bkt, "good")[1] == b"the body"


# ---- ranges -------------------------------------------------------------------------------------

def _range_cases(size: int):
    """(Range header, expected first, expected last) for every form of a single range."""
    mid = size // 2
    return [
        ("bytes=0-0", 0, 0),
        (f"bytes=0-{size - 1}", 0, size - 1),
        (f"bytes=3-{mid}", 3, mid),
        (f"bytes={mid}-", mid, size - 1),
        (f"bytes={size - 1}-", size - 1, size - 1),
        ("bytes=-1", size - 1, size - 1),
        (f"bytes=-{mid}", size - mid, size - 1),
        (f"bytes=-{size + 50}", 0, size - 1),           # suffix longer than the object: all of it
        (f"bytes={mid}-{size + 1000}", mid, size - 1),  # last beyond the end: clamped
    ]


@pytest.mark.parametrize("size", [1000, 3 * MiB + 5], ids=["inline", "striped"])
def test_get_ranges(env, bkt, size):
    data = payload(size, seed=3)
    env.s3.put_object(Bucket=bkt, Key="r", Body=data)
    cases = _range_cases(size)
    if size > MiB:  # ranges that cross stripe and shard boundaries
        cases += [(f"bytes={MiB - 7}-{2 * MiB + 9}", MiB - 7, 2 * MiB + 9),
                  (f"bytes={MiB // 4 - 1}-{MiB // 4}", MiB // 4 - 1, MiB // 4),
                  (f"bytes={3 * MiB}-", 3 * MiB, size - 1)]
    for header, first, last in cases:
        resp, got = get_bytes(env.s3, bkt, "r", Range=header)
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 206, header
        assert resp["ContentRange"] == f"bytes {first}-{last}/{size}", header
        assert resp["ContentLength"] == last - first + 1, header
        assert got == data[first:last + 1], header
    for header in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}"):
        with pytest.raises(ClientError) as exc:
            env.s3.get_object(Bucket=bkt, Key="r", Range=header)
        assert error(exc) == (416, "InvalidRange")
    head = env.s3.head_object(Bucket=bkt, Key="r", Range="bytes=10-19")
    assert head["ContentLength"] == 10 and head["ContentRange"] == f"bytes 10-19/{size}"


def test_range_on_empty_object(env, bkt):
    env.s3.put_object(Bucket=bkt, Key="e", Body=b"")
    with pytest.raises(ClientError) as exc:
        env.s3.get_object(Bucket=bkt, Key="e", Range="bytes=0-")
    assert error(exc) == (416, "InvalidRange")
    resp, got = get_bytes(env.s3, bkt, "e")
    assert got == b"" and resp["ContentLength"] == 0


# ---- conditional requests -----------------------------------------------------------------------

@pytest.mark.parametrize("method", ["get_object", "head_object"])
def test_conditional_reads(env, bkt, method):
    data = payload(INLINE * 2)
    etag = env.s3.put_object(Bucket=bkt, Key="c", Body=data)["ETag"]
    lm = env.s3.head_object(Bucket=bkt, Key="c")["LastModified"]
    call = getattr(env.s3, method)
    day = timedelta(days=1)

    def status(**cond) -> int:
        try:
            resp = call(Bucket=bkt, Key="c", **cond)
        except ClientError as exc:
            return exc.response["ResponseMetadata"]["HTTPStatusCode"]
        if method == "get_object":
            assert resp["Body"].read() == data
        return resp["ResponseMetadata"]["HTTPStatusCode"]

    assert status(IfMatch=etag) == 200
    assert status(IfMatch=etag.strip('"')) == 200
    assert status(IfMatch='"0123456789abcdef0123456789abcdef"') == 412
    assert status(IfNoneMatch=etag) == 304
    assert status(IfNoneMatch='"0123456789abcdef0123456789abcdef"') == 200
    assert status(IfModifiedSince=lm) == 304
    assert status(IfModifiedSince=lm - day) == 200
    assert status(IfUnmodifiedSince=lm) == 200
    assert status(IfUnmodifiedSince=lm - day) == 412
    # RFC 7232 precedence: If-Match passing overrides a failing If-Unmodified-Since, and
    # If-None-Match decides over If-Modified-Since.
    assert status(IfMatch=etag, IfUnmodifiedSince=lm - day) == 200
    assert status(IfNoneMatch='"nope"', IfModifiedSince=lm + day) == 200
    assert status(IfNoneMatch=etag, IfModifiedSince=lm - day) == 304


def test_conditional_put(env, bkt):
    s3 = env.s3
    s3.put_object(Bucket=bkt, Key="once", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bkt, Key="once", Body=b"second", IfNoneMatch="*")
    assert error(exc) == (412, "PreconditionFailed")
    with pytest.raises(ClientError) as exc:  # a large body is refused as well
        s3.put_object(Bucket=bkt, Key="once", Body=payload(MiB + 1), IfNoneMatch="*")
    assert error(exc) == (412, "PreconditionFailed")
    assert get_bytes(s3, bkt, "once")[1] == b"first"

    etag = s3.head_object(Bucket=bkt, Key="once")["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bkt, Key="once", Body=b"third", IfMatch='"00000000000000000000000000000000"')
    assert error(exc) == (412, "PreconditionFailed")
    new = s3.put_object(Bucket=bkt, Key="once", Body=b"third", IfMatch=etag)
    assert new["ETag"] == f'"{hashlib.md5(b"third").hexdigest()}"'
    assert get_bytes(env.s3_other, bkt, "once")[1] == b"third"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bkt, Key="never-written", Body=b"x", IfMatch=etag)
    assert error(exc)[0] == 404


# ---- response overrides, versionId=null ---------------------------------------------------------

def test_response_header_overrides(env, bkt):
    data = payload(40 * KiB)
    env.s3.put_object(Bucket=bkt, Key="o", Body=data, ContentType="application/x-original")
    expires = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    resp, got = get_bytes(env.s3, bkt, "o", ResponseContentType="text/csv",
                          ResponseContentDisposition="inline; filename=a.csv",
                          ResponseContentLanguage="fr", ResponseCacheControl="no-cache",
                          ResponseContentEncoding="identity", ResponseExpires=expires)
    assert got == data
    assert resp["ContentType"] == "text/csv"
    assert resp["ContentDisposition"] == "inline; filename=a.csv"
    assert resp["ContentLanguage"] == "fr"
    assert resp["CacheControl"] == "no-cache"
    assert resp["ContentEncoding"] == "identity"
    assert resp["Expires"] == expires
    # Overrides change that response only.
    assert env.s3.head_object(Bucket=bkt, Key="o")["ContentType"] == "application/x-original"


def test_version_id_null_on_unversioned_bucket(env, bkt):
    data = payload(INLINE + 1)
    env.s3.put_object(Bucket=bkt, Key="v", Body=data)
    head = env.s3.head_object(Bucket=bkt, Key="v", VersionId="null")
    assert head["ContentLength"] == len(data)
    assert get_bytes(env.s3, bkt, "v", VersionId="null")[1] == data


def test_metadata_and_key_limits(env, bkt):
    with pytest.raises(ClientError) as exc:
        env.s3.put_object(Bucket=bkt, Key="meta", Body=b"x", Metadata={"big": "v" * 2100})
    assert error(exc) == (400, "MetadataTooLarge")
    longest = "k" * 1000 + "/" + "ü" * 11 + "z"  # 1024 bytes of UTF-8
    assert len(longest.encode()) == 1024
    env.s3.put_object(Bucket=bkt, Key=longest, Body=b"long")
    assert get_bytes(env.s3_other, bkt, longest)[1] == b"long"
    assert [o["Key"] for o in env.s3.list_objects_v2(Bucket=bkt)["Contents"]] == [longest]
    with pytest.raises(ClientError) as exc:
        env.s3.put_object(Bucket=bkt, Key=longest + "z", Body=b"x")
    assert error(exc) == (400, "KeyTooLongError")


def test_missing_key_errors(env, bkt):
    with pytest.raises(ClientError) as exc:
        env.s3.get_object(Bucket=bkt, Key="absent")
    assert error(exc) == (404, "NoSuchKey")
    with pytest.raises(ClientError) as exc:
        env.s3.head_object(Bucket=bkt, Key="absent")
    assert error(exc)[0] == 404


# ---- deletes ------------------------------------------------------------------------------------

def test_delete_object_idempotent(env, bkt):
    s3 = env.s3
    assert s3.delete_object(Bucket=bkt, Key="never")["ResponseMetadata"]["HTTPStatusCode"] == 204
    s3.put_object(Bucket=bkt, Key="d", Body=payload(INLINE + 1))
    assert s3.delete_object(Bucket=bkt, Key="d")["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as exc:
        env.s3_other.get_object(Bucket=bkt, Key="d")
    assert error(exc) == (404, "NoSuchKey")
    assert s3.delete_object(Bucket=bkt, Key="d")["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3.list_objects_v2(Bucket=bkt)["KeyCount"] == 0


def _put_many(s3, bucket: str, keys, body: bytes = b"") -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=body), keys))


@pytest.mark.parametrize("quiet", [False, True], ids=["verbose", "quiet"])
def test_delete_objects_1000_keys(env, bkt, quiet):
    existing = [f"k/{i:04d}" for i in range(0, 1000, 25)]  # 40 real objects among 1000 keys
    _put_many(env.s3, bkt, existing, b"data")
    keys = [f"k/{i:04d}" for i in range(1000)]
    resp = env.s3.delete_objects(Bucket=bkt, Delete={"Objects": [{"Key": k} for k in keys],
                                                     "Quiet": quiet})
    assert resp.get("Errors", []) == []
    if quiet:
        assert resp.get("Deleted", []) == []
    else:
        assert sorted(d["Key"] for d in resp["Deleted"]) == keys
    assert env.s3_other.list_objects_v2(Bucket=bkt)["KeyCount"] == 0


def test_delete_objects_awkward_keys_and_too_many(env, bkt):
    _put_many(env.s3, bkt, AWKWARD_KEYS, b"z")
    resp = env.s3.delete_objects(Bucket=bkt, Delete={"Objects": [{"Key": k} for k in AWKWARD_KEYS]})
    assert sorted(d["Key"] for d in resp["Deleted"]) == sorted(AWKWARD_KEYS)
    assert env.s3.list_objects_v2(Bucket=bkt)["KeyCount"] == 0
    with pytest.raises(ClientError) as exc:
        env.s3.delete_objects(Bucket=bkt, Delete={"Objects": [{"Key": f"{i}"} for i in range(1001)]})
    assert error(exc) == (400, "MalformedXML")


# ---- copy ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [100, 2 * MiB + 11], ids=["inline", "striped"])
def test_copy_object(env, bkt, size):
    s3 = env.s3
    data = payload(size, seed=5)
    etag = s3.put_object(Bucket=bkt, Key="src", Body=data, Metadata={"a": "1"},
                         ContentType="text/x-src", CacheControl="no-store")["ETag"]
    other = f"b3-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=other)

    copied = s3.copy_object(Bucket=other, Key="dst", CopySource={"Bucket": bkt, "Key": "src"})
    assert copied["CopyObjectResult"]["ETag"] == etag
    resp, got = get_bytes(env.s3_other, other, "dst")
    assert got == data
    assert resp["Metadata"] == {"a": "1"} and resp["ContentType"] == "text/x-src"
    assert resp["CacheControl"] == "no-store"

    s3.copy_object(Bucket=bkt, Key="dst2", CopySource=f"{bkt}/src", MetadataDirective="REPLACE",
                   Metadata={"b": "2"}, ContentType="text/x-new")
    resp, got = get_bytes(s3, bkt, "dst2")
    assert got == data
    assert resp["Metadata"] == {"b": "2"} and resp["ContentType"] == "text/x-new"
    assert "CacheControl" not in resp

    s3.copy_object(Bucket=bkt, Key="dst3", CopySource={"Bucket": bkt, "Key": "src", "VersionId": "null"})
    assert get_bytes(s3, bkt, "dst3")[1] == data

    # The copy owns its bytes: deleting or overwriting the source leaves it intact.
    s3.put_object(Bucket=bkt, Key="src", Body=b"replaced")
    s3.delete_object(Bucket=bkt, Key="src")
    assert get_bytes(s3, other, "dst")[1] == data


@pytest.mark.parametrize("size", [100, 2 * MiB + 11], ids=["inline", "striped"])
def test_self_copy(env, bkt, size):
    s3 = env.s3
    data = payload(size, seed=6)
    etag = s3.put_object(Bucket=bkt, Key="self", Body=data, Metadata={"old": "yes"})["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bkt, Key="self", CopySource={"Bucket": bkt, "Key": "self"})
    assert error(exc) == (400, "InvalidRequest")
    result = s3.copy_object(Bucket=bkt, Key="self", CopySource={"Bucket": bkt, "Key": "self"},
                            MetadataDirective="REPLACE", Metadata={"new": "yes"},
                            ContentType="image/png")
    assert result["CopyObjectResult"]["ETag"] == etag
    for client in (s3, env.s3_other):
        resp, got = get_bytes(client, bkt, "self")
        assert got == data
        assert resp["Metadata"] == {"new": "yes"} and resp["ContentType"] == "image/png"
        assert resp["ETag"] == etag


def test_copy_conditions(env, bkt):
    s3 = env.s3
    etag = s3.put_object(Bucket=bkt, Key="src", Body=b"conditional")["ETag"]
    lm = s3.head_object(Bucket=bkt, Key="src")["LastModified"]
    day = timedelta(days=1)
    src = {"Bucket": bkt, "Key": "src"}
    failing = [{"CopySourceIfMatch": '"ffffffffffffffffffffffffffffffff"'},
               {"CopySourceIfNoneMatch": etag},
               {"CopySourceIfModifiedSince": lm},
               {"CopySourceIfUnmodifiedSince": lm - day}]
    for cond in failing:
        with pytest.raises(ClientError) as exc:
            s3.copy_object(Bucket=bkt, Key="dst", CopySource=src, **cond)
        assert error(exc) == (412, "PreconditionFailed"), cond
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bkt, Key="dst")
    assert error(exc)[0] == 404
    passing = [{"CopySourceIfMatch": etag}, {"CopySourceIfNoneMatch": '"0"'},
               {"CopySourceIfModifiedSince": lm - day}, {"CopySourceIfUnmodifiedSince": lm}]
    for i, cond in enumerate(passing):
        s3.copy_object(Bucket=bkt, Key=f"dst{i}", CopySource=src, **cond)
        assert get_bytes(s3, bkt, f"dst{i}")[1] == b"conditional"
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bkt, Key="dst", CopySource={"Bucket": bkt, "Key": "absent"})
    assert error(exc) == (404, "NoSuchKey")


# ---- listings -----------------------------------------------------------------------------------

def test_list_objects_v2_pagination(env, bkt):
    keys = sorted(f"p/{i:02d}" for i in range(25))
    _put_many(env.s3, bkt, keys, b"12345")
    seen, token, pages = [], None, 0
    while pages < 10:
        kw = {"ContinuationToken": token} if token else {}
        resp = env.s3_other.list_objects_v2(Bucket=bkt, MaxKeys=7, **kw)
        pages += 1
        assert resp["MaxKeys"] == 7 and resp["KeyCount"] == len(resp.get("Contents", []))
        assert all(o["Size"] == 5 and o["ETag"] == f'"{hashlib.md5(b"12345").hexdigest()}"'
                   for o in resp["Contents"])
        assert "Owner" not in resp["Contents"][0]
        seen += [o["Key"] for o in resp["Contents"]]
        if not resp["IsTruncated"]:
            assert "NextContinuationToken" not in resp
            break
        token = resp["NextContinuationToken"]
    assert pages == 4 and seen == keys

    paged = [o["Key"] for page in env.s3.get_paginator("list_objects_v2").paginate(
        Bucket=bkt, PaginationConfig={"PageSize": 4}) for o in page["Contents"]]
    assert paged == keys
    after = env.s3.list_objects_v2(Bucket=bkt, StartAfter="p/19")
    assert [o["Key"] for o in after["Contents"]] == keys[20:] and after["StartAfter"] == "p/19"
    owned = env.s3.list_objects_v2(Bucket=bkt, FetchOwner=True, MaxKeys=2)
    assert owned["Contents"][0]["Owner"]["ID"] == env.cluster.access_key
    empty = env.s3.list_objects_v2(Bucket=bkt, Prefix="nothing/")
    assert empty["KeyCount"] == 0 and "Contents" not in empty and not empty["IsTruncated"]


def test_list_objects_v2_delimiter(env, bkt):
    keys = ["a/1", "a/2", "a/b/3", "b/1", "c", "d/e/f", "top"]
    _put_many(env.s3, bkt, keys)
    resp = env.s3.list_objects_v2(Bucket=bkt, Delimiter="/")
    assert [p["Prefix"] for p in resp["CommonPrefixes"]] == ["a/", "b/", "d/"]
    assert [o["Key"] for o in resp["Contents"]] == ["c", "top"]
    assert resp["KeyCount"] == 5
    sub = env.s3.list_objects_v2(Bucket=bkt, Delimiter="/", Prefix="a/")
    assert [o["Key"] for o in sub["Contents"]] == ["a/1", "a/2"]
    assert [p["Prefix"] for p in sub["CommonPrefixes"]] == ["a/b/"]
    # Pagination counts common prefixes as entries and never repeats one.
    seen, token = [], None
    for _ in range(10):
        kw = {"ContinuationToken": token} if token else {}
        page = env.s3.list_objects_v2(Bucket=bkt, Delimiter="/", MaxKeys=2, **kw)
        assert page["KeyCount"] <= 2
        seen += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        seen += [o["Key"] for o in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert sorted(seen) == ["a/", "b/", "c", "d/", "top"]


def test_list_objects_v1(env, bkt):
    keys = sorted(f"v1/{i:02d}" for i in range(25))
    _put_many(env.s3, bkt, keys, b"x")
    seen, marker = [], ""
    for _ in range(10):
        resp = env.s3.list_objects(Bucket=bkt, Marker=marker, MaxKeys=7)
        assert resp["MaxKeys"] == 7
        assert all(o["Owner"]["ID"] == env.cluster.access_key for o in resp["Contents"])
        seen += [o["Key"] for o in resp["Contents"]]
        if not resp["IsTruncated"]:
            break
        assert "NextMarker" not in resp  # only with a delimiter
        marker = seen[-1]
    assert seen == keys
    _put_many(env.s3, bkt, ["d/a/1", "d/a/2", "d/b/1", "d/c", "d/e/1"])
    first = env.s3.list_objects(Bucket=bkt, Prefix="d/", Delimiter="/", MaxKeys=2)
    assert first["IsTruncated"] and first["NextMarker"] == "d/b/"
    assert [p["Prefix"] for p in first["CommonPrefixes"]] == ["d/a/", "d/b/"]
    rest = env.s3.list_objects(Bucket=bkt, Prefix="d/", Delimiter="/", Marker=first["NextMarker"])
    assert [o["Key"] for o in rest["Contents"]] == ["d/c"]
    assert [p["Prefix"] for p in rest["CommonPrefixes"]] == ["d/e/"]
    assert not rest["IsTruncated"]
    paged = [o["Key"] for page in env.s3.get_paginator("list_objects").paginate(
        Bucket=bkt, Prefix="v1/", PaginationConfig={"PageSize": 6}) for o in page["Contents"]]
    assert paged == keys


@pytest.mark.parametrize("encoding", [None, "url"], ids=["auto", "url"])
def test_awkward_keys(env, bkt, encoding):
    for i, key in enumerate(AWKWARD_KEYS):
        data = f"{i}:{key}".encode()
        env.s3.put_object(Bucket=bkt, Key=key, Body=data)
        assert get_bytes(env.s3_other, bkt, key)[1] == data
        assert env.s3.head_object(Bucket=bkt, Key=key)["ContentLength"] == len(data)
    in_order = sorted(AWKWARD_KEYS, key=lambda k: k.encode())
    # Without EncodingType botocore asks for url encoding itself and decodes the answer; with an
    # explicit EncodingType="url" it hands the encoded text over, which must decode to the keys
    # both as percent-encoding and as form encoding ('+' sent as %2B, space as %20).
    kw, decoders = ({}, [lambda k: k]) if encoding is None else \
        ({"EncodingType": "url"}, [unquote, unquote_plus])
    v2 = env.s3.list_objects_v2(Bucket=bkt, **kw)
    v1 = env.s3.list_objects(Bucket=bkt, **kw)
    slash = env.s3.list_objects_v2(Bucket=bkt, Delimiter="/", **kw)
    under = env.s3.list_objects_v2(Bucket=bkt, Prefix="ü/", **kw)
    for decode in decoders:
        assert [decode(o["Key"]) for o in v2["Contents"]] == in_order
        assert [decode(o["Key"]) for o in v1["Contents"]] == in_order
        assert sorted(decode(p["Prefix"]) for p in slash["CommonPrefixes"]) == \
            ["../", "a/", "trailing/", "x/", "ü/"]
        assert [decode(o["Key"]) for o in under["Contents"]] == ["ü/ß"]
    env.s3.copy_object(Bucket=bkt, Key="+=&?# copy", CopySource={"Bucket": bkt, "Key": "+=&?#"})
    assert get_bytes(env.s3, bkt, "+=&?# copy")[1] == f"{AWKWARD_KEYS.index('+=&?#')}:+=&?#".encode()
    for key in AWKWARD_KEYS:
        env.s3.delete_object(Bucket=bkt, Key=key)
    assert [o["Key"] for o in env.s3.list_objects_v2(Bucket=bkt)["Contents"]] == ["+=&?# copy"]


# ---- presigned URLs -----------------------------------------------------------------------------

def test_presigned_get_and_put(env, bkt):
    # botocore presigns S3 URLs with SigV2 unless told otherwise; Cairn verifies SigV4 only.
    s3, ctx = env.cluster.boto3_client(checksums=env.checksums, signature_version="s3v4"), env.ssl_context()
    data = payload(INLINE * 3 + 1, seed=9)
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bkt, "Key": "pre sig/ü"},
                                        ExpiresIn=300)
    req = urllib.request.Request(put_url, data=data, method="PUT")
    with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
        assert r.status == 200
        assert r.headers["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bkt, "Key": "pre sig/ü"},
                                        ExpiresIn=300)
    with urllib.request.urlopen(get_url, timeout=30, context=ctx) as r:
        assert r.status == 200 and r.read() == data
    ranged = urllib.request.Request(get_url, headers={"Range": "bytes=5-9"})
    with urllib.request.urlopen(ranged, timeout=30, context=ctx) as r:
        assert r.status == 206 and r.read() == data[5:10]
    # The signature covers the key: another key with the same query fails.
    forged = get_url.replace("pre%20sig", "pre%20sih")
    assert forged != get_url
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(forged, timeout=30, context=ctx)
    assert exc.value.code == 403
    expiring = s3.generate_presigned_url("get_object", Params={"Bucket": bkt, "Key": "pre sig/ü"},
                                         ExpiresIn=1)
    time.sleep(2.1)
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(expiring, timeout=30, context=ctx)
    assert exc.value.code == 403 and b"expired" in exc.value.read()


def test_presigned_sigv2_default_works(env, bkt):
    env.s3.put_object(Bucket=bkt, Key="k é", Body=b"secret")
    default = env.cluster.boto3_client(checksums=env.checksums, signature_version=None)
    url = default.generate_presigned_url("get_object", Params={"Bucket": bkt, "Key": "k é"})
    assert "AWSAccessKeyId=" in url  # botocore's default for S3 presigning
    with urllib.request.urlopen(url, timeout=30, context=env.ssl_context()) as r:
        assert r.read() == b"secret"
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(url.replace("Signature=", "Signature=A"), timeout=30,
                               context=env.ssl_context())
    assert exc.value.code == 403 and b"SignatureDoesNotMatch" in exc.value.read()


def test_sigv2_header_auth(env, bkt):
    v2 = env.cluster.boto3_client(checksums=env.checksums, signature_version="s3")
    data = payload(INLINE * 2, seed=21)
    v2.put_object(Bucket=bkt, Key="v2/obj", Body=data, Metadata={"m": "1"})
    assert v2.get_object(Bucket=bkt, Key="v2/obj")["Body"].read() == data
    assert [o["Key"] for o in v2.list_objects(Bucket=bkt, Prefix="v2/")["Contents"]] == ["v2/obj"]
    wrong = env.cluster.boto3_client(checksums=env.checksums, signature_version="s3",
                                     secret_key="not-the-secret")
    with pytest.raises(ClientError) as exc:
        wrong.get_object(Bucket=bkt, Key="v2/obj")
    assert exc.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


# ---- managed transfers below the multipart threshold --------------------------------------------

@pytest.mark.parametrize("size", [INLINE + 1, 7 * MiB + 123], ids=["small", "7MiB"])
def test_upload_download_fileobj(env, bkt, size, tmp_path):
    config = TransferConfig(multipart_threshold=64 * MiB, multipart_chunksize=64 * MiB)
    data = payload(size, seed=11)
    env.s3.upload_fileobj(io.BytesIO(data), bkt, "t/obj", Config=config)
    assert env.s3.head_object(Bucket=bkt, Key="t/obj")["ContentLength"] == size
    out = io.BytesIO()
    env.s3_other.download_fileobj(bkt, "t/obj", out, Config=config)
    assert out.getvalue() == data
    path = tmp_path / "f.bin"
    path.write_bytes(data[::-1])
    env.s3.upload_file(str(path), bkt, "t/file", Config=config)
    back = tmp_path / "back.bin"
    env.s3.download_file(bkt, "t/file", str(back), Config=config)
    assert back.read_bytes() == data[::-1]
    os.remove(back)
