"""Multipart uploads end to end: boto3 managed transfers, the multipart API call by call, and a
raw signed-streaming part, against a real Cairn cluster (real node and gateway processes).

The managed transfers run four ways, as in test_boto3.py: plain HTTP (every part signed with the
hex SHA-256 of its body) and TLS (parts sent as STREAMING-UNSIGNED-PAYLOAD-TRAILER), each with
botocore's default checksums ("when_supported": CreateMultipartUpload asks for CRC32, every part
carries one) and with "when_required". The API tests run over the two configurations that differ
on the wire: HTTP without checksums and TLS with the CRC32 trailer. ETags and composite checksums
are computed here from the bytes, never read back from the server and trusted.
"""
from __future__ import annotations

import base64
import hashlib
import http.client
import io
import random
import threading
import uuid
import zlib
from datetime import datetime, timezone
from urllib.parse import quote, urlsplit

import pytest
from awscrt import checksums as crt
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from gateway.s3.sigv4 import (SERVICE, Credentials, Scope, chunk_signature, derive_signing_key,
                              sign_request)

pytestmark = [pytest.mark.clients, pytest.mark.cluster]

KiB, MiB = 1 << 10, 1 << 20
MIN_PART = 5 * MiB
BIG = 41 * MiB + 12345  # six 8 MiB parts, the last one short
TRANSFER = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB, max_concurrency=4)
MODES = [("http", "when_supported"), ("http", "when_required"),
         ("tls", "when_supported"), ("tls", "when_required")]
API_MODES = [("http", "when_required"), ("tls", "when_supported")]
ALGORITHMS = ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"]


class Env:
    """One cluster seen through one boto3 client configuration."""

    def __init__(self, cluster, transport: str, checksums: str) -> None:
        self.cluster = cluster
        self.transport = transport
        self.checksums = checksums
        self.s3 = cluster.boto3_client(checksums=checksums)
        self.s3_other = cluster.boto3_client(len(cluster.ports) - 1, checksums=checksums)

    @property
    def sends_crc32(self) -> bool:
        return self.checksums == "when_supported"


def _env(request) -> Env:
    transport, checksums = request.param
    return Env(request.getfixturevalue("cluster" if transport == "http" else "tls_cluster"),
               transport, checksums)


@pytest.fixture(params=MODES, ids=lambda m: f"{m[0]}-{m[1]}")
def env(request) -> Env:
    return _env(request)


@pytest.fixture(params=API_MODES, ids=lambda m: f"{m[0]}-{m[1]}")
def api(request) -> Env:
    return _env(request)


def _new_bucket(e: Env) -> str:
    name = f"mp-{uuid.uuid4().hex[:12]}"
    e.s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def bkt(env) -> str:
    return _new_bucket(env)


@pytest.fixture
def abkt(api) -> str:
    return _new_bucket(api)


# ---- expectations computed from the bytes -------------------------------------------------------

def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def multipart_etag(parts: list[bytes]) -> str:
    digests = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'


def raw_checksum(algorithm: str, data: bytes) -> bytes:
    if algorithm == "CRC32":
        return zlib.crc32(data).to_bytes(4, "big")
    if algorithm == "CRC32C":
        return crt.crc32c(data).to_bytes(4, "big")
    if algorithm == "CRC64NVME":
        return crt.crc64nvme(data).to_bytes(8, "big")
    return hashlib.new(algorithm.lower(), data).digest()


def checksum(algorithm: str, data: bytes) -> str:
    return base64.b64encode(raw_checksum(algorithm, data)).decode()


def composite_checksum(algorithm: str, parts: list[bytes]) -> str:
    """S3's COMPOSITE checksum: the algorithm over the parts' raw checksums, then "-N"."""
    joined = b"".join(raw_checksum(algorithm, p) for p in parts)
    return f"{checksum(algorithm, joined)}-{len(parts)}"


def default_checksum_type(algorithm: str) -> str:
    """S3 combines CRC64NVME part checksums into a FULL_OBJECT checksum (it has no COMPOSITE
    kind); every other algorithm defaults to COMPOSITE."""
    return "FULL_OBJECT" if algorithm == "CRC64NVME" else "COMPOSITE"


def object_checksum(algorithm: str, kind: str, parts: list[bytes]) -> str:
    return checksum(algorithm, b"".join(parts)) if kind == "FULL_OBJECT" else composite_checksum(algorithm, parts)


def error(excinfo) -> tuple[int, str]:
    resp = excinfo.value.response
    return resp["ResponseMetadata"]["HTTPStatusCode"], resp["Error"]["Code"]


def get_bytes(s3, bucket: str, key: str, **kw) -> tuple[dict, bytes]:
    resp = s3.get_object(Bucket=bucket, Key=key, **kw)
    return resp, resp["Body"].read()


def upload_parts(s3, bucket: str, key: str, parts: list[bytes], *, create: dict | None = None,
                 part_kw: dict | None = None) -> tuple[str, list[dict]]:
    """Create an upload and send `parts` as parts 1..N; returns the upload id and the
    CompletedPart list (with every checksum the server returned)."""
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, **(create or {}))["UploadId"]
    done = []
    for number, data in enumerate(parts, 1):
        resp = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                              Body=data, **(part_kw or {}))
        assert resp["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
        entry = {"PartNumber": number, "ETag": resp["ETag"]}
        entry.update({k: v for k, v in resp.items() if k.startswith("Checksum") and k != "ChecksumType"})
        done.append(entry)
    return upload_id, done


def complete(s3, bucket: str, key: str, upload_id: str, parts: list[dict], **kw) -> dict:
    return s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                        MultipartUpload={"Parts": parts}, **kw)


class WireLog:
    """What botocore put on the wire for one operation, and how many such requests overlapped."""

    def __init__(self, s3, operation: str) -> None:
        self.requests: list[dict[str, str]] = []
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        s3.meta.events.register(f"before-send.s3.{operation}", self._sent)
        s3.meta.events.register(f"after-call.s3.{operation}", self._done)

    def _sent(self, request, **kw) -> None:
        headers = {k.lower(): v.decode() if isinstance(v, bytes) else v
                   for k, v in request.headers.items()}
        with self._lock:
            self.requests.append(headers)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _done(self, **kw) -> None:
        with self._lock:
            self.in_flight -= 1


def check_upload_wire(env: Env, log: WireLog) -> None:
    """Each configuration sends its parts in the payload mode the module docstring names."""
    assert log.requests
    for headers in log.requests:
        mode = headers["x-amz-content-sha256"]
        if env.transport == "tls" and env.sends_crc32:
            assert mode == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
            assert headers["x-amz-trailer"] == "x-amz-checksum-crc32"
            assert "content-length" not in headers and headers["transfer-encoding"] == "chunked"
        else:
            assert len(mode) == 64 and int(mode, 16) >= 0  # hex SHA-256 of the part
            assert ("x-amz-checksum-crc32" in headers) == env.sends_crc32


# ---- managed transfers: upload_file / download_file ---------------------------------------------

def check_big_object(env: Env, bucket: str, key: str, data: bytes, parts: list[bytes]) -> None:
    head = env.s3_other.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head["ContentLength"] == len(data)
    assert head["ETag"] == multipart_etag(parts)
    if env.sends_crc32:
        assert head["ChecksumCRC32"] == composite_checksum("CRC32", parts)
    else:
        assert not any(k.startswith("Checksum") and k != "ChecksumType" for k in head)
    listed = env.s3.list_objects_v2(Bucket=bucket, Prefix=key)["Contents"]
    assert [(o["Key"], o["Size"], o["ETag"]) for o in listed] == [(key, len(data), multipart_etag(parts))]


def test_upload_file_download_file(env, bkt, tmp_path):
    data = payload(BIG, seed=41)
    parts = [data[i:i + 8 * MiB] for i in range(0, len(data), 8 * MiB)]
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    log = WireLog(env.s3, "UploadPart")
    env.s3.upload_file(str(src), bkt, "dir/big.bin", Config=TRANSFER)
    assert len(log.requests) == len(parts) == 6
    assert log.max_in_flight >= 2, "the parts were not sent in parallel"
    check_upload_wire(env, log)
    check_big_object(env, bkt, "dir/big.bin", data, parts)

    gets = WireLog(env.s3, "GetObject")
    dst = tmp_path / "dst.bin"
    env.s3.download_file(bkt, "dir/big.bin", str(dst), Config=TRANSFER)
    assert dst.read_bytes() == data
    ranges = sorted(h.get("range", "") for h in gets.requests)
    # s3transfer reads in chunk-sized ranges, the last one open-ended.
    assert f"bytes={5 * 8 * MiB}-" in ranges, ranges
    # The same ranges read directly, through the other gateway.
    for first in (0, 2 * 8 * MiB, 5 * 8 * MiB, BIG - 1):
        resp, body = get_bytes(env.s3_other, bkt, "dir/big.bin", Range=f"bytes={first}-")
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert resp["ContentRange"] == f"bytes {first}-{BIG - 1}/{BIG}"
        assert body == data[first:]
    resp, body = get_bytes(env.s3, bkt, "dir/big.bin", ChecksumMode="ENABLED")
    assert body == data


def test_upload_fileobj_download_fileobj(env, bkt):
    data = payload(BIG - 3 * MiB, seed=7)
    parts = [data[i:i + 8 * MiB] for i in range(0, len(data), 8 * MiB)]
    log = WireLog(env.s3, "UploadPart")
    env.s3.upload_fileobj(io.BytesIO(data), bkt, "obj", Config=TRANSFER,
                          ExtraArgs={"ContentType": "application/x-test", "Metadata": {"k": "v"}})
    assert len(log.requests) == len(parts) == 5
    assert log.max_in_flight >= 2, "the parts were not sent in parallel"
    check_upload_wire(env, log)
    check_big_object(env, bkt, "obj", data, parts)
    out = io.BytesIO()
    env.s3_other.download_fileobj(bkt, "obj", out, Config=TRANSFER)
    assert out.getvalue() == data
    head = env.s3.head_object(Bucket=bkt, Key="obj")
    assert head["ContentType"] == "application/x-test" and head["Metadata"] == {"k": "v"}


def test_parallel_upload_files(env, bkt, tmp_path):
    """Several multipart uploads at once, each with parallel parts, none mixing bytes."""
    from concurrent.futures import ThreadPoolExecutor
    blobs = {f"p/{i}": payload(9 * MiB + i * 4099, seed=100 + i) for i in range(3)}
    for key, data in blobs.items():
        (tmp_path / key.replace("/", "_")).write_bytes(data)
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=3)
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda k: env.s3.upload_file(str(tmp_path / k.replace("/", "_")), bkt, k,
                                                   Config=config), blobs))
    for key, data in blobs.items():
        parts = [data[i:i + 5 * MiB] for i in range(0, len(data), 5 * MiB)]
        resp, body = get_bytes(env.s3_other, bkt, key)
        assert body == data and resp["ETag"] == multipart_etag(parts)
    assert "Uploads" not in env.s3.list_multipart_uploads(Bucket=bkt)


# ---- the API, call by call ----------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_create_with_metadata_and_checksum_algorithm(api, abkt, algorithm):
    s3 = api.s3
    parts = [payload(MIN_PART, seed=1), payload(MIN_PART + 17, seed=2), payload(3 * KiB, seed=3)]
    created = s3.create_multipart_upload(Bucket=abkt, Key="k", ContentType="text/x-mp",
                                         Metadata={"colour": "blue", "n": "1"},
                                         CacheControl="max-age=60", ChecksumAlgorithm=algorithm)
    kind = default_checksum_type(algorithm)
    assert (created["ChecksumAlgorithm"], created["ChecksumType"]) == (algorithm, kind)
    upload_id = created["UploadId"]
    (listed,) = s3.list_multipart_uploads(Bucket=abkt)["Uploads"]
    assert (listed["Key"], listed["UploadId"], listed["ChecksumAlgorithm"]) == ("k", upload_id, algorithm)

    done = []
    for number, data in enumerate(parts, 1):
        resp = s3.upload_part(Bucket=abkt, Key="k", UploadId=upload_id, PartNumber=number, Body=data,
                              ChecksumAlgorithm=algorithm)
        assert resp[f"Checksum{algorithm}"] == checksum(algorithm, data)
        done.append({"PartNumber": number, "ETag": resp["ETag"],
                     f"Checksum{algorithm}": resp[f"Checksum{algorithm}"]})
    listed_parts = s3.list_parts(Bucket=abkt, Key="k", UploadId=upload_id)
    assert (listed_parts["ChecksumAlgorithm"], listed_parts["ChecksumType"]) == (algorithm, kind)
    assert [(p["PartNumber"], p["Size"], p["ETag"], p[f"Checksum{algorithm}"])
            for p in listed_parts["Parts"]] == \
        [(n, len(d), f'"{hashlib.md5(d).hexdigest()}"', checksum(algorithm, d))
         for n, d in enumerate(parts, 1)]

    result = complete(s3, abkt, "k", upload_id, done)
    expected = object_checksum(algorithm, kind, parts)
    assert result["ETag"] == multipart_etag(parts)
    assert (result[f"Checksum{algorithm}"], result["ChecksumType"]) == (expected, kind)
    assert expected.endswith("-3") == (kind == "COMPOSITE")
    data = b"".join(parts)
    for client in (s3, api.s3_other):
        # botocore validates a FULL_OBJECT checksum against the body it receives.
        resp, body = get_bytes(client, abkt, "k", ChecksumMode="ENABLED")
        assert body == data
        assert (resp[f"Checksum{algorithm}"], resp["ChecksumType"]) == (expected, kind)
        head = client.head_object(Bucket=abkt, Key="k", ChecksumMode="ENABLED")
        assert (head[f"Checksum{algorithm}"], head["ChecksumType"]) == (expected, kind)
        assert (head["ContentType"], head["Metadata"], head["CacheControl"]) == \
            ("text/x-mp", {"colour": "blue", "n": "1"}, "max-age=60")
        assert head["ETag"] == multipart_etag(parts) and head["ContentLength"] == len(data)
    plain = s3.head_object(Bucket=abkt, Key="k")
    assert f"Checksum{algorithm}" not in plain  # only with x-amz-checksum-mode: ENABLED


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "CRC64NVME"])
def test_full_object_checksum(api, abkt, algorithm):
    """ChecksumType=FULL_OBJECT: the object's CRC combined from the parts' CRCs; Complete may
    carry the client's own CRC of the whole object and the object size, and both are checked."""
    s3 = api.s3
    parts = [payload(MIN_PART, seed=13), payload(MIN_PART + 1, seed=14), payload(2 * KiB, seed=15)]
    data = b"".join(parts)
    upload_id, done = upload_parts(s3, abkt, "k", parts,
                                   create={"ChecksumAlgorithm": algorithm, "ChecksumType": "FULL_OBJECT"},
                                   part_kw={"ChecksumAlgorithm": algorithm})
    whole = checksum(algorithm, data)
    for kw, refused in (({f"Checksum{algorithm}": checksum(algorithm, data[:-1])}, (400, "BadDigest")),
                        ({"MpuObjectSize": len(data) + 1}, (400, "InvalidRequest")),
                        ({"ChecksumType": "COMPOSITE"}, (400, "InvalidRequest"))):
        with pytest.raises(ClientError) as exc:
            complete(s3, abkt, "k", upload_id, done, **kw)
        assert error(exc) == refused, kw
    result = complete(s3, abkt, "k", upload_id, done, ChecksumType="FULL_OBJECT", MpuObjectSize=len(data),
                      **{f"Checksum{algorithm}": whole})
    assert (result[f"Checksum{algorithm}"], result["ChecksumType"]) == (whole, "FULL_OBJECT")
    resp, body = get_bytes(api.s3_other, abkt, "k", ChecksumMode="ENABLED")
    assert body == data and (resp[f"Checksum{algorithm}"], resp["ChecksumType"]) == (whole, "FULL_OBJECT")


@pytest.mark.parametrize("algorithm,kind", [("SHA1", "FULL_OBJECT"), ("SHA256", "FULL_OBJECT"),
                                            ("CRC64NVME", "COMPOSITE"), (None, "COMPOSITE")])
def test_unsupported_checksum_type_is_refused(api, abkt, algorithm, kind):
    kw = {"ChecksumType": kind} | ({"ChecksumAlgorithm": algorithm} if algorithm else {})
    with pytest.raises(ClientError) as exc:
        api.s3.create_multipart_upload(Bucket=abkt, Key="k", **kw)
    assert error(exc) == (400, "InvalidRequest")
    assert "Uploads" not in api.s3.list_multipart_uploads(Bucket=abkt)


def test_upload_file_with_a_full_object_checksum(api, abkt, tmp_path):
    """s3transfer turns a caller's whole-file CRC into ChecksumType=FULL_OBJECT and hands the
    CRC to CompleteMultipartUpload for the server to check."""
    data = payload(17 * MiB + 5, seed=16)
    (tmp_path / "f").write_bytes(data)
    creates = WireLog(api.s3, "CreateMultipartUpload")
    api.s3.upload_file(str(tmp_path / "f"), abkt, "f", Config=TRANSFER,
                       ExtraArgs={"ChecksumCRC32": checksum("CRC32", data)})
    assert creates.requests[0]["x-amz-checksum-type"] == "FULL_OBJECT"
    head = api.s3.head_object(Bucket=abkt, Key="f", ChecksumMode="ENABLED")
    assert (head["ChecksumCRC32"], head["ChecksumType"]) == (checksum("CRC32", data), "FULL_OBJECT")
    assert get_bytes(api.s3_other, abkt, "f", ChecksumMode="ENABLED")[1] == data
    with pytest.raises(S3UploadFailedError, match="BadDigest"):  # a wrong whole-file CRC
        api.s3.upload_file(str(tmp_path / "f"), abkt, "g", Config=TRANSFER,
                           ExtraArgs={"ChecksumCRC32": checksum("CRC32", data + b"!")})
    with pytest.raises(ClientError) as exc:
        api.s3.head_object(Bucket=abkt, Key="g")
    assert error(exc)[0] == 404
    assert "Uploads" not in api.s3.list_multipart_uploads(Bucket=abkt)  # s3transfer aborted it


def test_wrong_part_checksum_is_refused(api, abkt):
    upload_id = api.s3.create_multipart_upload(Bucket=abkt, Key="k")["UploadId"]
    data = payload(100 * KiB)
    with pytest.raises(ClientError) as exc:
        api.s3.upload_part(Bucket=abkt, Key="k", UploadId=upload_id, PartNumber=1, Body=data,
                           ChecksumCRC32=checksum("CRC32", data + b"x"))
    assert error(exc) == (400, "BadDigest")
    assert "Parts" not in api.s3.list_parts(Bucket=abkt, Key="k", UploadId=upload_id)


def test_complete_errors(api, abkt):
    s3 = api.s3
    parts = [payload(MIN_PART, seed=4), payload(MIN_PART - 1, seed=5), payload(10, seed=6)]
    upload_id, done = upload_parts(s3, abkt, "k", parts, create={"ChecksumAlgorithm": "SHA256"},
                                   part_kw={"ChecksumAlgorithm": "SHA256"})

    def refused(parts_list: list[dict]) -> tuple[int, str]:
        with pytest.raises(ClientError) as exc:
            complete(s3, abkt, "k", upload_id, parts_list)
        return error(exc)

    assert refused([done[0], {"PartNumber": 4, "ETag": done[0]["ETag"]}]) == (400, "InvalidPart")
    assert refused([{"PartNumber": 1, "ETag": done[1]["ETag"]}]) == (400, "InvalidPart")
    wrong_sum = {**done[0], "ChecksumSHA256": checksum("SHA256", b"not the part")}
    assert refused([wrong_sum]) == (400, "InvalidPart")
    assert refused([done[1], done[0]]) == (400, "InvalidPartOrder")
    assert refused([done[0], done[0]]) == (400, "InvalidPartOrder")
    # Part 2 is one byte under the minimum and not the last part.
    assert refused(done) == (400, "EntityTooSmall")
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=abkt, Key="k")
    assert error(exc)[0] == 404  # nothing was committed by the refused attempts

    # A refused Complete leaves the upload open: part 2 goes again, big enough this time.
    parts[1] = payload(MIN_PART, seed=7)
    resp = s3.upload_part(Bucket=abkt, Key="k", UploadId=upload_id, PartNumber=2, Body=parts[1],
                          ChecksumAlgorithm="SHA256")
    done[1] = {"PartNumber": 2, "ETag": resp["ETag"], "ChecksumSHA256": resp["ChecksumSHA256"]}
    result = complete(s3, abkt, "k", upload_id, done)
    assert result["ETag"] == multipart_etag(parts)
    assert result["ChecksumSHA256"] == composite_checksum("SHA256", parts)
    assert get_bytes(api.s3_other, abkt, "k")[1] == b"".join(parts)

    for call in (lambda: complete(s3, abkt, "k", upload_id, [done[0]]),
                 lambda: s3.upload_part(Bucket=abkt, Key="k", UploadId=upload_id, PartNumber=1, Body=b"x"),
                 lambda: s3.list_parts(Bucket=abkt, Key="k", UploadId=upload_id),
                 lambda: s3.abort_multipart_upload(Bucket=abkt, Key="k", UploadId=upload_id)):
        with pytest.raises(ClientError) as exc:
            call()
        assert error(exc) == (404, "NoSuchUpload")
    assert get_bytes(s3, abkt, "k")[1] == b"".join(parts)


def test_abort(api, abkt):
    s3 = api.s3
    parts = [payload(MIN_PART, seed=8), payload(100, seed=9)]
    upload_id, done = upload_parts(s3, abkt, "k", parts)
    keep_id, keep_done = upload_parts(s3, abkt, "k", [b"other upload"])
    resp = s3.abort_multipart_upload(Bucket=abkt, Key="k", UploadId=upload_id)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=abkt)["Uploads"]] == [keep_id]
    for call in (lambda: complete(s3, abkt, "k", upload_id, done),
                 lambda: s3.list_parts(Bucket=abkt, Key="k", UploadId=upload_id),
                 lambda: s3.upload_part(Bucket=abkt, Key="k", UploadId=upload_id, PartNumber=3, Body=b"x"),
                 lambda: s3.abort_multipart_upload(Bucket=abkt, Key="k", UploadId=upload_id),
                 lambda: s3.list_parts(Bucket=abkt, Key="k", UploadId="no-such-upload")):
        with pytest.raises(ClientError) as exc:
            call()
        assert error(exc) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=abkt, Key="k")
    assert error(exc)[0] == 404
    # An upload id belongs to its key.
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket=abkt, Key="other", UploadId=keep_id)
    assert error(exc) == (404, "NoSuchUpload")
    complete(s3, abkt, "k", keep_id, keep_done)
    assert get_bytes(s3, abkt, "k")[1] == b"other upload"


def test_same_part_number_twice_keeps_the_last(api, abkt):
    s3 = api.s3
    first, second, tail = payload(MIN_PART, seed=10), payload(MIN_PART + 5, seed=11), payload(7, seed=12)
    upload_id, done = upload_parts(s3, abkt, "k", [first, tail])
    again = s3.upload_part(Bucket=abkt, Key="k", UploadId=upload_id, PartNumber=1, Body=second)
    (p1, p2) = s3.list_parts(Bucket=abkt, Key="k", UploadId=upload_id)["Parts"]
    assert (p1["PartNumber"], p1["Size"], p1["ETag"]) == (1, len(second), again["ETag"])
    with pytest.raises(ClientError) as exc:  # the first upload's ETag no longer names part 1
        complete(s3, abkt, "k", upload_id, done)
    assert error(exc) == (400, "InvalidPart")
    result = complete(s3, abkt, "k", upload_id, [{"PartNumber": 1, "ETag": again["ETag"]}, done[1]])
    assert result["ETag"] == multipart_etag([second, tail])
    assert get_bytes(api.s3_other, abkt, "k")[1] == second + tail


def test_list_parts_pagination(api, abkt):
    s3 = api.s3
    numbers = [1, 2, 3, 5, 8, 13, 21]
    upload_id = s3.create_multipart_upload(Bucket=abkt, Key="k")["UploadId"]
    for n in numbers:
        s3.upload_part(Bucket=abkt, Key="k", UploadId=upload_id, PartNumber=n, Body=f"part {n}".encode())
    pages, marker = [], 0
    for _ in range(len(numbers) + 2):
        page = s3.list_parts(Bucket=abkt, Key="k", UploadId=upload_id, MaxParts=3, PartNumberMarker=marker)
        assert page["MaxParts"] == 3 and page["PartNumberMarker"] == marker
        pages.append([p["PartNumber"] for p in page["Parts"]])
        assert all(p["Size"] == len(f"part {p['PartNumber']}") for p in page["Parts"])
        if not page["IsTruncated"]:
            break
        marker = page["NextPartNumberMarker"]
        assert marker == pages[-1][-1]
    assert pages == [[1, 2, 3], [5, 8, 13], [21]]
    assert [p["PartNumber"] for p in s3.list_parts(Bucket=abkt, Key="k", UploadId=upload_id,
                                                    PartNumberMarker=4)["Parts"]] == [5, 8, 13, 21]
    paginated = [p["PartNumber"] for page in s3.get_paginator("list_parts").paginate(
        Bucket=abkt, Key="k", UploadId=upload_id, PaginationConfig={"PageSize": 2}) for p in page["Parts"]]
    assert paginated == numbers
    assert s3.list_parts(Bucket=abkt, Key="k", UploadId=upload_id, PartNumberMarker=21).get("Parts", []) == []


def test_list_multipart_uploads(api, abkt):
    s3 = api.s3
    keys = ["a/1", "a/2", "b", "b", "b/c", "c/x/y", "d"]
    ids: dict[str, list[str]] = {}
    for key in keys:
        ids.setdefault(key, []).append(s3.create_multipart_upload(Bucket=abkt, Key=key)["UploadId"])
    everything = s3.list_multipart_uploads(Bucket=abkt)
    listed = [(u["Key"], u["UploadId"]) for u in everything["Uploads"]]
    assert not everything["IsTruncated"]
    assert sorted(listed) == sorted((k, i) for k, v in ids.items() for i in v)
    assert [k for k, _ in listed] == sorted(keys)  # key order; a key's uploads together
    assert all(u["Initiator"]["ID"] == api.cluster.access_key for u in everything["Uploads"])

    # MaxUploads=1 pages through the same sequence, via KeyMarker and UploadIdMarker.
    paged, key_marker, id_marker = [], "", ""
    for _ in range(len(keys) + 2):
        page = s3.list_multipart_uploads(Bucket=abkt, MaxUploads=1, KeyMarker=key_marker,
                                         UploadIdMarker=id_marker)
        paged += [(u["Key"], u["UploadId"]) for u in page["Uploads"]]
        if not page["IsTruncated"]:
            break
        key_marker, id_marker = page["NextKeyMarker"], page["NextUploadIdMarker"]
        assert (key_marker, id_marker) == paged[-1]
    assert paged == listed

    # A key marker alone skips every upload of that key; with an upload id, only those up to it.
    b_ids = [i for k, i in listed if k == "b"]
    after_b = s3.list_multipart_uploads(Bucket=abkt, KeyMarker="b")["Uploads"]
    assert [u["Key"] for u in after_b] == ["b/c", "c/x/y", "d"]
    after_first_b = s3.list_multipart_uploads(Bucket=abkt, KeyMarker="b", UploadIdMarker=b_ids[0])["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in after_first_b][:2] == [("b", b_ids[1]), ("b/c", ids["b/c"][0])]

    prefixed = s3.list_multipart_uploads(Bucket=abkt, Prefix="a/")
    assert [u["Key"] for u in prefixed["Uploads"]] == ["a/1", "a/2"] and prefixed["Prefix"] == "a/"

    grouped = s3.list_multipart_uploads(Bucket=abkt, Delimiter="/")
    assert [u["Key"] for u in grouped["Uploads"]] == ["b", "b", "d"]
    assert [p["Prefix"] for p in grouped["CommonPrefixes"]] == ["a/", "b/", "c/"]
    nested = s3.list_multipart_uploads(Bucket=abkt, Delimiter="/", Prefix="c/")
    assert "Uploads" not in nested and [p["Prefix"] for p in nested["CommonPrefixes"]] == ["c/x/"]

    # With a delimiter, pages of one entry each: every upload and every prefix exactly once.
    seen, key_marker, id_marker = [], "", ""
    for _ in range(len(keys) + 4):
        page = s3.list_multipart_uploads(Bucket=abkt, Delimiter="/", MaxUploads=1,
                                         KeyMarker=key_marker, UploadIdMarker=id_marker)
        seen += [u["Key"] for u in page.get("Uploads", [])]
        seen += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        if not page["IsTruncated"]:
            break
        key_marker, id_marker = page["NextKeyMarker"], page.get("NextUploadIdMarker", "")
    assert seen == ["a/", "b", "b", "b/", "c/", "d"]

    paginated = [u["Key"] for page in s3.get_paginator("list_multipart_uploads").paginate(
        Bucket=abkt, PaginationConfig={"PageSize": 2}) for u in page.get("Uploads", [])]
    assert paginated == sorted(keys)


def test_list_multipart_uploads_url_encoding(api, abkt):
    key = "dir/ü and space+plus"
    upload_id = api.s3.create_multipart_upload(Bucket=abkt, Key=key)["UploadId"]
    # boto3 asks for EncodingType=url itself and decodes the answer.
    resp = api.s3.list_multipart_uploads(Bucket=abkt, Prefix="dir/")
    assert [(u["Key"], u["UploadId"]) for u in resp["Uploads"]] == [(key, upload_id)]
    resp = api.s3.list_multipart_uploads(Bucket=abkt, Delimiter=" ")
    assert [p["Prefix"] for p in resp["CommonPrefixes"]] == ["dir/ü "]


@pytest.mark.parametrize("source_kind", ["single", "multipart"])
def test_upload_part_copy(api, abkt, source_kind):
    s3 = api.s3
    if source_kind == "single":
        source = payload(2 * MIN_PART + 3, seed=20)
        s3.put_object(Bucket=abkt, Key="src", Body=source)
    else:
        pieces = [payload(MIN_PART, seed=21), payload(MIN_PART + 5, seed=22)]
        upload_id, done = upload_parts(s3, abkt, "src", pieces)
        complete(s3, abkt, "src", upload_id, done)
        source = b"".join(pieces)
    copy_source = {"Bucket": abkt, "Key": "src"}
    upload_id = s3.create_multipart_upload(Bucket=abkt, Key="dst")["UploadId"]
    # Part 1: the whole source; part 2: a range across the source's part boundary (for a
    # multipart source); part 3: a short range at the very end.
    ranges = [None, (MIN_PART - 1000, 2 * MIN_PART - 1001), (len(source) - 10, len(source) - 1)]
    expected, done = [], []
    for number, rng in enumerate(ranges, 1):
        kw = {} if rng is None else {"CopySourceRange": f"bytes={rng[0]}-{rng[1]}"}
        resp = s3.upload_part_copy(Bucket=abkt, Key="dst", UploadId=upload_id, PartNumber=number,
                                   CopySource=copy_source, **kw)
        piece = source if rng is None else source[rng[0]:rng[1] + 1]
        assert resp["CopyPartResult"]["ETag"] == f'"{hashlib.md5(piece).hexdigest()}"'
        expected.append(piece)
        done.append({"PartNumber": number, "ETag": resp["CopyPartResult"]["ETag"]})
    assert [p["Size"] for p in s3.list_parts(Bucket=abkt, Key="dst", UploadId=upload_id)["Parts"]] == \
        [len(p) for p in expected]
    result = complete(s3, abkt, "dst", upload_id, done)
    assert result["ETag"] == multipart_etag(expected)
    assert get_bytes(api.s3_other, abkt, "dst")[1] == b"".join(expected)
    assert get_bytes(s3, abkt, "src")[1] == source  # the source is untouched


def test_upload_part_copy_computes_the_upload_checksum(api, abkt):
    """In an upload with a checksum algorithm, a copied part gets its checksum like any part."""
    s3 = api.s3
    source = payload(MIN_PART + 100, seed=23)
    s3.put_object(Bucket=abkt, Key="src", Body=source)
    upload_id = s3.create_multipart_upload(Bucket=abkt, Key="dst", ChecksumAlgorithm="CRC32C")["UploadId"]
    copied = s3.upload_part_copy(Bucket=abkt, Key="dst", UploadId=upload_id, PartNumber=1,
                                 CopySource={"Bucket": abkt, "Key": "src"})["CopyPartResult"]
    assert copied["ChecksumCRC32C"] == checksum("CRC32C", source)
    tail = payload(99, seed=24)
    sent = s3.upload_part(Bucket=abkt, Key="dst", UploadId=upload_id, PartNumber=2, Body=tail,
                          ChecksumAlgorithm="CRC32C")
    result = complete(s3, abkt, "dst", upload_id, [
        {"PartNumber": 1, "ETag": copied["ETag"], "ChecksumCRC32C": copied["ChecksumCRC32C"]},
        {"PartNumber": 2, "ETag": sent["ETag"], "ChecksumCRC32C": sent["ChecksumCRC32C"]}])
    assert result["ChecksumCRC32C"] == composite_checksum("CRC32C", [source, tail])


def test_upload_part_copy_errors(api, abkt):
    s3 = api.s3
    source = payload(100 * KiB, seed=25)
    s3.put_object(Bucket=abkt, Key="src", Body=source)
    upload_id = s3.create_multipart_upload(Bucket=abkt, Key="dst")["UploadId"]

    def copy(**kw):
        with pytest.raises(ClientError) as exc:
            s3.upload_part_copy(Bucket=abkt, Key="dst", UploadId=upload_id, PartNumber=1, **kw)
        return error(exc)

    assert copy(CopySource={"Bucket": abkt, "Key": "missing"}) == (404, "NoSuchKey")
    assert copy(CopySource={"Bucket": abkt, "Key": "src"},
                CopySourceRange=f"bytes=0-{len(source)}")[0] == 400  # one byte past the end
    assert copy(CopySource={"Bucket": abkt, "Key": "src"}, CopySourceRange="bytes=10-")[0] == 400
    assert copy(CopySource={"Bucket": abkt, "Key": "src"}, CopySourceIfMatch='"0000"') == \
        (412, "PreconditionFailed")
    assert "Parts" not in s3.list_parts(Bucket=abkt, Key="dst", UploadId=upload_id)
    s3.upload_part_copy(Bucket=abkt, Key="dst", UploadId=upload_id, PartNumber=1,
                        CopySource={"Bucket": abkt, "Key": "src"}, CopySourceRange="bytes=0-0")
    (part,) = s3.list_parts(Bucket=abkt, Key="dst", UploadId=upload_id)["Parts"]
    assert part["Size"] == 1


def test_get_and_head_by_part_number(api, abkt):
    s3 = api.s3
    parts = [payload(MIN_PART, seed=30), payload(MIN_PART + 1, seed=31), payload(1000, seed=32)]
    upload_id, done = upload_parts(s3, abkt, "k", parts)
    complete(s3, abkt, "k", upload_id, done)
    total = sum(map(len, parts))
    first = 0
    for number, data in enumerate(parts, 1):
        last = first + len(data) - 1
        for client in (s3, api.s3_other):
            resp, body = get_bytes(client, abkt, "k", PartNumber=number)
            assert resp["ResponseMetadata"]["HTTPStatusCode"] == 206
            assert (resp["ContentRange"], resp["ContentLength"], resp["PartsCount"]) == \
                (f"bytes {first}-{last}/{total}", len(data), 3)
            assert resp["ETag"] == multipart_etag(parts)  # the object's ETag, not the part's
            assert body == data
            head = client.head_object(Bucket=abkt, Key="k", PartNumber=number)
            assert head["ResponseMetadata"]["HTTPStatusCode"] == 206
            assert (head["ContentRange"], head["ContentLength"], head["PartsCount"]) == \
                (f"bytes {first}-{last}/{total}", len(data), 3)
        first = last + 1
    for call in (lambda: s3.get_object(Bucket=abkt, Key="k", PartNumber=4),
                 lambda: s3.head_object(Bucket=abkt, Key="k", PartNumber=4)):
        with pytest.raises(ClientError) as exc:
            call()
        assert error(exc)[0] == 416
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=abkt, Key="k", PartNumber=1, Range="bytes=0-9")
    assert error(exc) == (400, "InvalidRequest")

    # A single-part object is its own part 1.
    s3.put_object(Bucket=abkt, Key="single", Body=b"single part body")
    resp, body = get_bytes(s3, abkt, "single", PartNumber=1)
    assert body == b"single part body"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=abkt, Key="single", PartNumber=2)
    assert error(exc)[0] == 416


def test_part_number_bounds(api, abkt):
    s3 = api.s3
    first, last = payload(MIN_PART, seed=40), payload(33, seed=41)
    upload_id = s3.create_multipart_upload(Bucket=abkt, Key="k")["UploadId"]
    e1 = s3.upload_part(Bucket=abkt, Key="k", UploadId=upload_id, PartNumber=1, Body=first)["ETag"]
    e2 = s3.upload_part(Bucket=abkt, Key="k", UploadId=upload_id, PartNumber=10000, Body=last)["ETag"]
    for bad in (0, 10001, -1):
        with pytest.raises(ClientError) as exc:
            s3.upload_part(Bucket=abkt, Key="k", UploadId=upload_id, PartNumber=bad, Body=b"x")
        assert error(exc) == (400, "InvalidArgument")
    with pytest.raises(ClientError) as exc:
        complete(s3, abkt, "k", upload_id, [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 10001, "ETag": e2}])
    assert error(exc)[0] == 400
    assert [p["PartNumber"] for p in s3.list_parts(Bucket=abkt, Key="k", UploadId=upload_id)["Parts"]] == [1, 10000]
    complete(s3, abkt, "k", upload_id, [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 10000, "ETag": e2}])
    resp, body = get_bytes(s3, abkt, "k", PartNumber=2)  # parts are counted, not numbered
    assert body == last and resp["PartsCount"] == 2
    assert "PartsCount" not in s3.head_object(Bucket=abkt, Key="k")  # only with PartNumber


def test_head_version_id_null_after_multipart(api, abkt):
    """rclone checks a finished multipart upload with HEAD ?versionId=null."""
    parts = [payload(MIN_PART, seed=50), payload(10, seed=51)]
    upload_id, done = upload_parts(api.s3, abkt, "k", parts)
    complete(api.s3, abkt, "k", upload_id, done)
    head = api.s3_other.head_object(Bucket=abkt, Key="k", VersionId="null")
    assert head["ContentLength"] == MIN_PART + 10 and head["ETag"] == multipart_etag(parts)
    assert get_bytes(api.s3, abkt, "k", VersionId="null")[1] == b"".join(parts)


def test_overwrite_and_delete_multipart_object(api, abkt):
    s3 = api.s3
    parts = [payload(MIN_PART, seed=60), payload(MIN_PART, seed=61)]
    upload_id, done = upload_parts(s3, abkt, "k", parts)
    complete(s3, abkt, "k", upload_id, done)
    s3.put_object(Bucket=abkt, Key="k", Body=b"small now")
    assert get_bytes(s3, abkt, "k")[1] == b"small now"
    upload_id, done = upload_parts(s3, abkt, "k", parts[::-1])
    complete(s3, abkt, "k", upload_id, done)
    assert get_bytes(api.s3_other, abkt, "k")[1] == parts[1] + parts[0]
    # CopyObject makes a single-part object: MD5 ETag, whole-object checksum (as S3 does).
    data = parts[1] + parts[0]
    copied = s3.copy_object(Bucket=abkt, Key="copy", CopySource={"Bucket": abkt, "Key": "k"})
    assert copied["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    s3.delete_object(Bucket=abkt, Key="k")
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=abkt, Key="k")
    assert error(exc)[0] == 404
    resp, body = get_bytes(s3, abkt, "copy", ChecksumMode="ENABLED")
    assert body == data and resp["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert "PartsCount" not in s3.head_object(Bucket=abkt, Key="copy")


def test_copy_object_of_a_multipart_object_with_checksum(api, abkt):
    parts = [payload(MIN_PART, seed=62), payload(1000, seed=63)]
    upload_id, done = upload_parts(api.s3, abkt, "src", parts, create={"ChecksumAlgorithm": "SHA256"},
                                   part_kw={"ChecksumAlgorithm": "SHA256"})
    complete(api.s3, abkt, "src", upload_id, done)
    api.s3.copy_object(Bucket=abkt, Key="dst", CopySource={"Bucket": abkt, "Key": "src"})
    data = b"".join(parts)
    head = api.s3_other.head_object(Bucket=abkt, Key="dst", ChecksumMode="ENABLED")
    assert (head["ETag"], head["ChecksumSHA256"], head["ChecksumType"]) == \
        (f'"{hashlib.md5(data).hexdigest()}"', checksum("SHA256", data), "FULL_OBJECT")
    resp, body = get_bytes(api.s3, abkt, "dst", ChecksumMode="ENABLED")  # botocore verifies it
    assert body == data
    src = api.s3.head_object(Bucket=abkt, Key="src", ChecksumMode="ENABLED")
    assert src["ChecksumSHA256"] == composite_checksum("SHA256", parts)  # the source is unchanged


def test_empty_and_zero_byte_parts(api, abkt):
    s3 = api.s3
    upload_id = s3.create_multipart_upload(Bucket=abkt, Key="k")["UploadId"]
    etag = s3.upload_part(Bucket=abkt, Key="k", UploadId=upload_id, PartNumber=1, Body=b"")["ETag"]
    assert etag == f'"{hashlib.md5(b"").hexdigest()}"'
    result = complete(s3, abkt, "k", upload_id, [{"PartNumber": 1, "ETag": etag}])
    assert result["ETag"] == multipart_etag([b""])
    resp, body = get_bytes(s3, abkt, "k")
    assert body == b"" and resp["ContentLength"] == 0
    upload_id = s3.create_multipart_upload(Bucket=abkt, Key="k2")["UploadId"]
    with pytest.raises(ClientError) as exc:  # no parts at all
        complete(s3, abkt, "k2", upload_id, [])
    assert error(exc) == (400, "MalformedXML")


# ---- a raw STREAMING-AWS4-HMAC-SHA256-PAYLOAD part (restic's mode over plain HTTP) ---------------

SIGNED_STREAMING = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"


def put_signed_streaming_part(cluster, bucket: str, key: str, upload_id: str, number: int,
                              data: bytes, *, chunk: int = 64 * KiB,
                              bad_chunk: int | None = None) -> tuple[int, dict[str, str], bytes]:
    """UploadPart with signed aws-chunked framing, built with the gateway's own SigV4 helpers."""
    url = f"{cluster.endpoint(0)}/{bucket}/{quote(key)}?partNumber={number}&uploadId={quote(upload_id)}"
    now = datetime.now(timezone.utc).replace(microsecond=0)
    headers = sign_request("PUT", url, Credentials(cluster.access_key, cluster.secret_key), now=now,
                           headers={"x-amz-decoded-content-length": str(len(data))},
                           payload_hash=SIGNED_STREAMING)
    scope = Scope(now.strftime("%Y%m%d"), "us-east-1", SERVICE)
    signing_key = derive_signing_key(cluster.secret_key, scope)
    previous = headers["authorization"].rsplit("Signature=", 1)[1]
    body = []
    pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)] + [b""]
    for index, piece in enumerate(pieces):
        signature = chunk_signature(signing_key, headers["x-amz-date"], scope, previous,
                                    hashlib.sha256(piece).hexdigest())
        previous = signature
        if index == bad_chunk:
            signature = ("1" if signature[0] == "0" else "0") + signature[1:]
        body.append(f"{len(piece):x};chunk-signature={signature}\r\n".encode() + piece + b"\r\n")
    raw = b"".join(body)
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request("PUT", f"{parts.path}?{parts.query}", body=raw,
                     headers={**headers, "content-length": str(len(raw))})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_signed_streaming_part(cluster):
    s3 = cluster.boto3_client(checksums="when_required")
    bucket = f"mp-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    parts = [payload(MIN_PART + 1, seed=70), payload(MIN_PART, seed=71), payload(200 * KiB, seed=72)]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    etag1 = s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=1, Body=parts[0])["ETag"]
    status, headers, body = put_signed_streaming_part(cluster, bucket, "k", upload_id, 2, parts[1])
    assert status == 200, body
    assert headers["etag"] == f'"{hashlib.md5(parts[1]).hexdigest()}"'
    # A tampered chunk signature is refused and stores nothing under part 3.
    status, _, body = put_signed_streaming_part(cluster, bucket, "k", upload_id, 3, parts[2], bad_chunk=2)
    assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in body
    assert [p["PartNumber"] for p in s3.list_parts(Bucket=bucket, Key="k", UploadId=upload_id)["Parts"]] == [1, 2]
    status, headers, body = put_signed_streaming_part(cluster, bucket, "k", upload_id, 3, parts[2],
                                                      chunk=8 * KiB)
    assert status == 200, body
    done = [{"PartNumber": 1, "ETag": etag1}] + [
        {"PartNumber": n, "ETag": f'"{hashlib.md5(d).hexdigest()}"'} for n, d in ((2, parts[1]), (3, parts[2]))]
    assert complete(s3, bucket, "k", upload_id, done)["ETag"] == multipart_etag(parts)
    resp, got = get_bytes(cluster.boto3_client(1), bucket, "k")
    assert got == b"".join(parts)  # no chunk framing stored inside the object


def test_delete_bucket_with_uploads_in_progress(api):
    """S3 deletes a bucket that has only uploads in progress, and they go with it: a bucket
    created again under the same name starts without them."""
    s3 = api.s3
    name = _new_bucket(api)
    upload_id, done = upload_parts(s3, name, "k", [payload(100 * KiB, seed=80)])
    s3.put_object(Bucket=name, Key="obj", Body=b"x")
    with pytest.raises(ClientError) as exc:  # objects still count
        s3.delete_bucket(Bucket=name)
    assert error(exc) == (409, "BucketNotEmpty")
    s3.delete_object(Bucket=name, Key="obj")
    s3.delete_bucket(Bucket=name)
    s3.create_bucket(Bucket=name)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=name)
    for call in (lambda: s3.list_parts(Bucket=name, Key="k", UploadId=upload_id),
                 lambda: complete(s3, name, "k", upload_id, done)):
        with pytest.raises(ClientError) as exc:
            call()
        assert error(exc) == (404, "NoSuchUpload")


def test_conditional_complete(api, abkt):
    """If-None-Match: * on CompleteMultipartUpload (S3's conditional write) refuses to replace an
    existing object, and the refused upload stays open for another attempt."""
    s3 = api.s3
    s3.put_object(Bucket=abkt, Key="k", Body=b"first")
    parts = [payload(MIN_PART, seed=90), payload(5, seed=91)]
    upload_id, done = upload_parts(s3, abkt, "k", parts)
    with pytest.raises(ClientError) as exc:
        complete(s3, abkt, "k", upload_id, done, IfNoneMatch="*")
    assert error(exc) == (412, "PreconditionFailed")
    assert get_bytes(s3, abkt, "k")[1] == b"first"
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=abkt)["Uploads"]] == [upload_id]
    complete(s3, abkt, "k", upload_id, done)
    assert get_bytes(api.s3_other, abkt, "k")[1] == b"".join(parts)
