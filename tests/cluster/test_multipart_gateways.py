"""Multipart uploads across gateways and gateway failures, with real node and gateway processes.

An upload lives only in quorum-replicated records (upload record, part records) and erasure-coded
shards, never in a gateway's memory: so its parts can arrive through one gateway and be listed
and completed through another, and an upload outlives the gateway that started it.
"""
from __future__ import annotations

import hashlib
import random
import signal
import socket
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.cluster.test_gc import shard_totals
from tests.harness import LocalCluster

pytestmark = pytest.mark.cluster

MiB = 1 << 20
PART = 5 * MiB


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def multipart_etag(parts: list[bytes]) -> str:
    digests = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'


def md5_etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def error(excinfo) -> tuple[int, str]:
    resp = excinfo.value.response
    return resp["ResponseMetadata"]["HTTPStatusCode"], resp["Error"]["Code"]


class PartInFlight:
    """A presigned UploadPart whose body is sent in two steps, so that something can happen to
    the upload or the gateway while the gateway is in the middle of storing the part."""

    def __init__(self, cluster: LocalCluster, gateway: int, bucket: str, key: str, upload_id: str,
                 number: int, data: bytes) -> None:
        s3 = cluster.boto3_client(gateway)
        url = s3.generate_presigned_url("upload_part", ExpiresIn=600, Params={
            "Bucket": bucket, "Key": key, "UploadId": upload_id, "PartNumber": number})
        port = cluster.ports[gateway]
        target = url.split(f"127.0.0.1:{port}", 1)[1]
        self.data = data
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.sendall(f"PUT {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                          f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode())

    def send(self, first: int, last: int) -> None:
        self.sock.sendall(self.data[first:last])

    def response(self) -> bytes:
        chunks = []
        for _ in range(10_000):  # bounded: the gateway closes the connection after answering
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        self.sock.close()
        return b"".join(chunks)


def test_parts_through_one_gateway_completed_through_the_other(cluster):
    s0, s1 = cluster.boto3_client(0), cluster.boto3_client(1)
    bucket = f"mpg-{uuid.uuid4().hex[:12]}"
    s0.create_bucket(Bucket=bucket)
    parts = [payload(PART, 1), payload(PART + 3, 2), payload(777, 3)]
    upload_id = s0.create_multipart_upload(Bucket=bucket, Key="k", ContentType="text/x-g",
                                           Metadata={"via": "gw0"})["UploadId"]
    etags = [s0.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=1, Body=parts[0])["ETag"],
             s1.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=2, Body=parts[1])["ETag"],
             s0.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=3, Body=parts[2])["ETag"]]
    assert etags == [md5_etag(p) for p in parts]

    (listed,) = s1.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert (listed["Key"], listed["UploadId"]) == ("k", upload_id)
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in
            s1.list_parts(Bucket=bucket, Key="k", UploadId=upload_id)["Parts"]] == \
        [(n, len(d), e) for n, (d, e) in enumerate(zip(parts, etags), 1)]
    result = s1.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=upload_id, MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]})
    assert result["ETag"] == multipart_etag(parts)
    for s3 in (s0, s1):
        got = s3.get_object(Bucket=bucket, Key="k")
        assert got["Body"].read() == b"".join(parts)
        assert (got["ETag"], got["ContentType"], got["Metadata"]) == \
            (multipart_etag(parts), "text/x-g", {"via": "gw0"})
        with pytest.raises(ClientError) as exc:  # closed for every gateway
            s3.list_parts(Bucket=bucket, Key="k", UploadId=upload_id)
        assert error(exc) == (404, "NoSuchUpload")

    # Aborted through gateway 1, an upload is gone for gateway 0 too.
    doomed = s0.create_multipart_upload(Bucket=bucket, Key="d")["UploadId"]
    s0.upload_part(Bucket=bucket, Key="d", UploadId=doomed, PartNumber=1, Body=b"x" * 1000)
    s1.abort_multipart_upload(Bucket=bucket, Key="d", UploadId=doomed)
    with pytest.raises(ClientError) as exc:
        s0.upload_part(Bucket=bucket, Key="d", UploadId=doomed, PartNumber=2, Body=b"y")
    assert error(exc) == (404, "NoSuchUpload")
    assert "Uploads" not in s0.list_multipart_uploads(Bucket=bucket)


def test_upload_survives_a_gateway_crash(tmp_path):
    with LocalCluster(tmp_path / "c", gateways=2) as c:
        s0, s1 = c.boto3_client(0), c.boto3_client(1)
        s0.create_bucket(Bucket="crash")
        # Part 3 spans several stripes (4 MiB by default), so half of it completes at least one.
        parts = [payload(PART + 11, 10), payload(PART, 11), payload(12 * MiB + 5, 12)]
        upload_id = s0.create_multipart_upload(Bucket="crash", Key="big", Metadata={"m": "1"})["UploadId"]
        etags = [s0.upload_part(Bucket="crash", Key="big", UploadId=upload_id, PartNumber=n,
                                Body=parts[n - 1])["ETag"] for n in (1, 2)]

        # Part 3 is half sent, and its first stripes stored, when gateway 0 dies.
        stored = shard_totals(c)[0]
        in_flight = PartInFlight(c, 0, "crash", "big", upload_id, 3, parts[2])
        in_flight.send(0, len(parts[2]) // 2)
        deadline = time.monotonic() + 30
        while shard_totals(c)[0] == stored and time.monotonic() < deadline:
            time.sleep(0.2)
        assert shard_totals(c)[0] > stored
        c.gateway_procs[0].stop(signal.SIGKILL)
        in_flight.sock.close()

        listed = s1.list_parts(Bucket="crash", Key="big", UploadId=upload_id)["Parts"]
        assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in listed] == \
            [(1, len(parts[0]), etags[0]), (2, len(parts[1]), etags[1])]
        assert [u["UploadId"] for u in s1.list_multipart_uploads(Bucket="crash")["Uploads"]] == [upload_id]
        # Part 3 again, through the surviving gateway.
        etags.append(s1.upload_part(Bucket="crash", Key="big", UploadId=upload_id, PartNumber=3,
                                    Body=parts[2])["ETag"])

        c.gateway_procs[0].start()
        c.wait_ready(0)
        s0 = c.boto3_client(0)
        assert [p["PartNumber"] for p in s0.list_parts(Bucket="crash", Key="big", UploadId=upload_id)["Parts"]] \
            == [1, 2, 3]
        result = s0.complete_multipart_upload(Bucket="crash", Key="big", UploadId=upload_id, MultipartUpload={
            "Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]})
        assert result["ETag"] == multipart_etag(parts)
        for s3 in (s0, s1):
            got = s3.get_object(Bucket="crash", Key="big")
            assert got["Body"].read() == b"".join(parts)
            assert got["Metadata"] == {"m": "1"} and got["ContentLength"] == sum(map(len, parts))
            assert s3.get_object(Bucket="crash", Key="big", PartNumber=3)["Body"].read() == parts[2]


def test_part_arriving_after_abort_is_not_kept(tmp_path):
    """AbortMultipartUpload while a part is still arriving: the part must not outlive the upload
    (its record would keep its shards referenced forever, beyond garbage collection's reach)."""
    # 1 MiB stripes, so that part 2's first stripe is stored while most of its body is unsent.
    with LocalCluster(tmp_path / "c", gateway_args={0: ["--stripe-size", "1MiB"]}) as c:
        s3 = c.boto3_client()
        s3.create_bucket(Bucket="late")
        assert shard_totals(c) == (0, 0)
        upload_id = s3.create_multipart_upload(Bucket="late", Key="k")["UploadId"]
        s3.upload_part(Bucket="late", Key="k", UploadId=upload_id, PartNumber=1, Body=payload(MiB, 20))
        one_stripe = shard_totals(c)[0]  # part 1 is one 1 MiB stripe: k+m shards
        late = payload(3 * MiB, 21)
        in_flight = PartInFlight(c, 0, "late", "k", upload_id, 2, late)
        in_flight.send(0, MiB)
        # Abort only once the gateway has stored part 2's first stripe: it is past its check
        # that the upload is open, in the middle of the body.
        deadline = time.monotonic() + 30
        while shard_totals(c)[0] < 2 * one_stripe and time.monotonic() < deadline:
            time.sleep(0.2)
        assert shard_totals(c)[0] == 2 * one_stripe
        s3.abort_multipart_upload(Bucket="late", Key="k", UploadId=upload_id)
        in_flight.send(MiB, len(late))
        reply = in_flight.response()
        assert reply.startswith(b"HTTP/1.1 404") and b"<Code>NoSuchUpload</Code>" in reply, reply[:300]

        deadline = time.monotonic() + 30
        while shard_totals(c) != (0, 0) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert shard_totals(c) == (0, 0), "the late part's shards are still stored"
        assert "Uploads" not in s3.list_multipart_uploads(Bucket="late")
        with pytest.raises(ClientError) as exc:
            s3.list_parts(Bucket="late", Key="k", UploadId=upload_id)
        assert error(exc) == (404, "NoSuchUpload")
