"""Consistency across gateways (docs/architecture.md, "Consistency model").

- Read-after-write and list-after-write across two gateways of one cluster, deletes included.
- Concurrent writers to one key: every read returns one whole version, and when the writers stop
  every gateway agrees on the same last writer.
- Causality with skewed clocks: a PUT that starts after another completed wins even through a
  gateway whose clock is 10 minutes behind (which wall-clock last-writer-wins would get wrong).

The first two use the session's shared 2-gateway cluster (each test its own bucket); the clock
test needs a gateway started with a clock offset, so it has its own cluster.
"""
from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.harness import LocalCluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

KiB, MiB = 1 << 10, 1 << 20


def client(c: LocalCluster, i: int):
    return boto3.client(
        "s3", endpoint_url=c.endpoint(i), region_name="us-east-1",
        aws_access_key_id=c.access_key, aws_secret_access_key=c.secret_key,
        config=Config(retries={"total_max_attempts": 1}, s3={"addressing_style": "path"},
                      read_timeout=60, max_pool_connections=16,
                      request_checksum_calculation="when_required",
                      response_checksum_validation="when_required"))


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def keys_listed(s3, bucket: str, prefix: str = "") -> dict[str, str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", ())}


def status_of(call) -> int:
    try:
        call()
    except ClientError as exc:
        return exc.response["ResponseMetadata"]["HTTPStatusCode"]
    return 200


def test_writes_through_one_gateway_are_visible_through_the_other(cluster: LocalCluster,
                                                                  bucket: str) -> None:
    gw = [client(cluster, 0), client(cluster, 1)]
    sizes = [0, 100, 16 * KiB, 16 * KiB + 1, 200 * KiB, 1 * MiB + 5]   # inline and erasure-coded
    for i in range(50):
        writer, reader = gw[i % 2], gw[1 - i % 2]
        key = f"rw/{i:02d}"
        body = os.urandom(sizes[i % len(sizes)])
        etag = writer.put_object(Bucket=bucket, Key=key, Body=body)["ETag"]
        assert etag == f'"{md5(body)}"'
        assert reader.get_object(Bucket=bucket, Key=key)["Body"].read() == body, key
        head = reader.head_object(Bucket=bucket, Key=key)
        assert (head["ETag"], head["ContentLength"]) == (etag, len(body)), key
        assert keys_listed(reader, bucket, "rw/").get(key) == etag, key
        # An overwrite through the reader is seen by the writer at once...
        newer = os.urandom(sizes[(i + 3) % len(sizes)])
        reader.put_object(Bucket=bucket, Key=key, Body=newer)
        assert writer.get_object(Bucket=bucket, Key=key)["Body"].read() == newer, key
        # ...and so is a delete, in GET, HEAD and the listing.
        if i % 2:
            reader.delete_object(Bucket=bucket, Key=key)
            assert status_of(lambda: writer.get_object(Bucket=bucket, Key=key)) == 404, key
            assert status_of(lambda: writer.head_object(Bucket=bucket, Key=key)) == 404, key
            assert key not in keys_listed(writer, bucket, "rw/"), key
    expected = {f"rw/{i:02d}" for i in range(0, 50, 2)}
    assert set(keys_listed(gw[0], bucket)) == set(keys_listed(gw[1], bucket)) == expected


def test_a_write_into_a_just_deleted_bucket_never_shows_in_its_successor(cluster: LocalCluster,
                                                                         bucket: str) -> None:
    """Gateways cache bucket records for a second, writes included (as MinIO and RGW do). A PUT
    through a gateway that has not yet seen the bucket deleted may be acknowledged, but it lands
    in the deleted bucket's incarnation: when a bucket of the same name is created again, that
    object is neither listed nor readable: at once through the gateway that created it, and
    through every gateway once their cached record (the old bucket's) has expired."""
    stale_writes = []
    for attempt in range(3):
        writer, other = client(cluster, 0), client(cluster, 1)   # one connection: one worker
        name = f"{bucket}-{attempt}"
        writer.create_bucket(Bucket=name)
        writer.put_object(Bucket=name, Key="warm", Body=b"w")    # the worker caches the bucket
        other.delete_object(Bucket=name, Key="warm")
        other.delete_bucket(Bucket=name)
        if status_of(lambda: writer.put_object(Bucket=name, Key="ghost", Body=b"g" * 100)) == 200:
            stale_writes.append(name)
        other.create_bucket(Bucket=name)
        for s3 in (other, writer):
            if s3 is writer:
                time.sleep(1.1)                                  # BUCKET_CACHE_SECONDS
            assert keys_listed(s3, name) == {}
            assert status_of(lambda: s3.head_object(Bucket=name, Key="ghost")) == 404
            assert status_of(lambda: s3.get_object(Bucket=name, Key="ghost")) == 404
        writer.put_object(Bucket=name, Key="ghost", Body=b"new")  # the name is free for reuse
        assert other.get_object(Bucket=name, Key="ghost")["Body"].read() == b"new"
        assert keys_listed(other, name) == {"ghost": f'"{md5(b"new")}"'}
        if stale_writes:
            break
    assert stale_writes, "the cached bucket record was never used for a write"


def test_concurrent_writers_to_one_key_converge_on_one_whole_version(cluster: LocalCluster,
                                                                     bucket: str) -> None:
    gw = [client(cluster, 0), client(cluster, 1)]
    key = "contended"
    rng = random.Random(7)
    # 8 writers x 10 PUTs, inline and erasure-coded bodies, all distinct (md5 identifies each).
    bodies = [[os.urandom(rng.choice([300, 9 * KiB, 40 * KiB, 300 * KiB])) for _ in range(10)]
              for _ in range(8)]
    by_md5 = {md5(b): b for row in bodies for b in row}
    assert len(by_md5) == 80
    acked: set[str] = set()
    problems: list[str] = []
    reads = [0]
    writers_done = threading.Event()
    deadline = time.monotonic() + 120

    def writer(w: int) -> None:
        s3 = gw[w % 2]
        for body in bodies[w]:
            if time.monotonic() > deadline:
                return
            try:
                etag = s3.put_object(Bucket=bucket, Key=key, Body=body)["ETag"].strip('"')
            except Exception as exc:
                problems.append(f"writer {w}: {exc}")
                continue
            if etag != md5(body):
                problems.append(f"writer {w}: ETag {etag} for a body with md5 {md5(body)}")
            acked.add(etag)

    def reader(r: int) -> None:
        s3 = gw[r % 2]
        while not writers_done.is_set() and time.monotonic() < deadline:
            try:
                obj = s3.get_object(Bucket=bucket, Key=key)
            except ClientError as exc:
                if exc.response["ResponseMetadata"]["HTTPStatusCode"] != 404:  # before the first PUT
                    problems.append(f"reader {r}: {exc}")
                continue
            data = obj["Body"].read()
            etag = obj["ETag"].strip('"')
            reads[0] += 1
            if md5(data) != etag or by_md5.get(etag) != data:
                problems.append(f"reader {r}: {len(data)} bytes, md5 {md5(data)}, ETag {etag}: "
                                "not one whole uploaded version")

    readers = [threading.Thread(target=reader, args=(r,)) for r in range(2)]
    writers = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join(150)
    writers_done.set()
    for t in readers:
        t.join(30)
    assert not any(t.is_alive() for t in readers + writers)
    assert not problems, problems[:5]
    assert len(acked) == 80 and reads[0] > 0

    # Quiet now: both gateways, asked repeatedly, name the same last writer, whole.
    seen = set()
    for _ in range(3):
        for s3 in gw:
            obj = s3.get_object(Bucket=bucket, Key=key)
            data, etag = obj["Body"].read(), obj["ETag"].strip('"')
            assert md5(data) == etag and by_md5[etag] == data
            seen.add(etag)
            assert s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"') == etag
            assert keys_listed(s3, bucket) == {key: f'"{etag}"'}
    assert len(seen) == 1, f"gateways disagree on the last writer: {seen}"


@pytest.fixture
def skewed(tmp_path: Path):
    """Two gateways; gateway 1's wall clock runs 10 minutes behind."""
    with LocalCluster(tmp_path / "c", gateways=2,
                      gateway_args={1: ["--clock-offset-ms", str(-10 * 60 * 1000)]}) as c:
        yield c


def test_a_later_put_wins_even_through_a_gateway_whose_clock_is_behind(skewed: LocalCluster) -> None:
    ahead, behind = client(skewed, 0), client(skewed, 1)
    ahead.create_bucket(Bucket="hlc")
    for i, size in enumerate([100, 64 * KiB]):      # inline and erasure-coded
        key = f"k{i}"
        first, second = os.urandom(size), os.urandom(size)
        ahead.put_object(Bucket="hlc", Key=key, Body=first)
        first_time = ahead.head_object(Bucket="hlc", Key=key)["LastModified"]
        # This PUT starts after the first one completed: it must win, on both gateways.
        behind.put_object(Bucket="hlc", Key=key, Body=second)
        for s3 in (ahead, behind):
            assert s3.get_object(Bucket="hlc", Key=key)["Body"].read() == second
            assert s3.head_object(Bucket="hlc", Key=key)["ETag"] == f'"{md5(second)}"'
            assert keys_listed(s3, "hlc")[key] == f'"{md5(second)}"'
        # Raw wall-clock ordering would have kept `first`: the winner's own time is 10 minutes
        # earlier than the version it replaced.
        second_time = ahead.head_object(Bucket="hlc", Key=key)["LastModified"]
        assert (first_time - second_time).total_seconds() > 9 * 60, (first_time, second_time)
    # A delete through the lagging gateway also orders after the write it follows.
    ahead.put_object(Bucket="hlc", Key="gone", Body=b"soon deleted")
    behind.delete_object(Bucket="hlc", Key="gone")
    assert status_of(lambda: ahead.get_object(Bucket="hlc", Key="gone")) == 404
    assert "gone" not in keys_listed(ahead, "hlc")
    # And a write through the fast gateway after one through the slow gateway wins as well.
    ahead.put_object(Bucket="hlc", Key="k0", Body=b"third")
    assert behind.get_object(Bucket="hlc", Key="k0")["Body"].read() == b"third"
