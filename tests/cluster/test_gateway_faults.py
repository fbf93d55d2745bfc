"""The gateway with real storage-node processes killed (SIGKILL) before and during operations.

What must hold (docs/architecture.md, "Failure model"): with up to m=2 nodes down every committed
object is readable byte-exact, listable and HEAD-able; a write succeeds while its write quorum is
reachable and otherwise fails with 503 leaving nothing visible; a node killed in the middle of a
PUT or GET never yields wrong bytes; a corrupt shard is decoded around and reported; nothing
acknowledged is lost by a kill -9.

Every test here kills nodes, so each has its own LocalCluster (6 nodes, 3 zones, RS(4,2)).
"""
from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import json
import os
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from common.keys import load_client_keys
from common.nodeclient import NodeClient, NodeError
from gateway.cluster.records import ObjectRecord, bucket_partition, object_key, shard_key
from ring.ringfile import load as load_ring
from tests.harness import LocalCluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

KiB, MiB = 1 << 10, 1 << 20
NODES = [f"n{i}" for i in range(1, 7)]


# ---- helpers ---------------------------------------------------------------------------------
def client(c: LocalCluster, i: int = 0):
    """A client that never retries (a retry would hide a failed attempt) and waits long enough
    for a gateway that has to time out a dead node."""
    return boto3.client(
        "s3", endpoint_url=c.endpoint(i), region_name="us-east-1",
        aws_access_key_id=c.access_key, aws_secret_access_key=c.secret_key,
        config=Config(retries={"total_max_attempts": 1}, s3={"addressing_style": "path"},
                      connect_timeout=5, read_timeout=90,
                      request_checksum_calculation="when_required",
                      response_checksum_validation="when_required"))


def health(c: LocalCluster, i: int = 0) -> dict:
    try:
        with urllib.request.urlopen(f"{c.endpoint(i)}/-/health/ready", timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as exc:   # 503 "degraded" still carries the JSON
        return json.load(exc)


def wait_nodes_up(c: LocalCluster, count: int = 6, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if health(c)["nodes_up"] >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} nodes up after {timeout} s: {health(c)}")


def restart(c: LocalCluster, *node_ids: str) -> None:
    for n in node_ids:
        c.start_node(n)
    wait_nodes_up(c)


def stored_record(c: LocalCluster, bucket: str, key: str) -> ObjectRecord | None:
    """The newest object record as the storage nodes hold it (read straight from every replica
    that answers), to learn where an object's shards are."""
    async def newest() -> tuple[bytes, bytes] | None:
        ring, keys = load_ring(c.ring_path), load_client_keys(c.keys_dir)
        best = None
        for node in ring.nodes_for(bucket_partition(bucket)):
            if not c.node_procs[node.id].alive():
                continue
            async with NodeClient(node.address, keys=keys, timeout=3, retries=0) as nc:
                try:
                    found = await nc.get_record(object_key(bucket, key))
                except NodeError:
                    continue
            best = found if best is None or found[0] > best[0] else best
        return best
    found = asyncio.run(newest())
    return None if found is None else ObjectRecord.decode(found[1])


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def assert_object(s3, bucket: str, key: str, body: bytes) -> None:
    """GET whole and ranged (byte-exact) and HEAD."""
    got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert len(got) == len(body) and got == body, f"{key}: wrong bytes"
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == len(body)
    assert head["ETag"] == f'"{md5(body)}"'
    size = len(body)
    if size == 0:
        return
    ranges = {(0, 0), (size - 1, size - 1), (size // 3, min(size - 1, size // 3 + 300 * KiB))}
    if size > MiB + 10:   # across a stripe boundary
        ranges.add((MiB - 7, MiB + 9))
    for lo, hi in sorted(ranges):
        part = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={lo}-{hi}")["Body"].read()
        assert part == body[lo:hi + 1], f"{key}: wrong bytes in range {lo}-{hi}"


def listed(s3, bucket: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        out.update({o["Key"]: o["ETag"] for o in page.get("Contents", ())})
    return out


def error_of(exc_info) -> tuple[int, str]:
    err = exc_info.value.response
    return err["ResponseMetadata"]["HTTPStatusCode"], err["Error"]["Code"]


def assert_absent(s3, bucket: str, key: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=key)
    assert error_of(exc) == (404, "NoSuchKey")
    assert key not in listed(s3, bucket)


@pytest.fixture
def fresh(tmp_path: Path):
    with LocalCluster(tmp_path / "c") as c:
        yield c


# ---- reads with nodes down -----------------------------------------------------------------
def test_committed_objects_survive_every_pair_of_nodes_down(fresh: LocalCluster) -> None:
    s3 = client(fresh)
    s3.create_bucket(Bucket="pairs")
    bodies = {"empty": b"", "inline-1k": os.urandom(KiB), "inline-max": os.urandom(16 * KiB),
              "coded-min": os.urandom(16 * KiB + 1), "coded-300k": os.urandom(300 * KiB),
              "coded-5m": os.urandom(5 * MiB + 123)}
    for key, body in bodies.items():
        s3.put_object(Bucket="pairs", Key=key, Body=body)
    big = stored_record(fresh, "pairs", "coded-5m")
    assert big is not None and big.data is not None and big.data.missing == ()
    # Every pair of the 5 MiB object's data-shard holders (each forces decoding from parity),
    # and its two parity holders (which also covers every node's metadata replica going away).
    k = big.data.k
    pairs = [*itertools.combinations(big.data.nodes[:k], 2), tuple(big.data.nodes[k:])]
    assert len(pairs) == 7 and {n for p in pairs for n in p} == set(NODES)
    for pair in pairs:
        for n in pair:
            fresh.kill_node(n)
        try:
            for key, body in bodies.items():
                assert_object(s3, "pairs", key, body)
            assert listed(s3, "pairs") == {k: f'"{md5(b)}"' for k, b in bodies.items()}, pair
        except AssertionError as exc:
            raise AssertionError(f"with {pair} down: {exc}") from exc
        restart(fresh, *pair)


# ---- writes and their quorum ---------------------------------------------------------------
def test_writes_need_their_quorum_and_leave_nothing_visible_otherwise(fresh: LocalCluster) -> None:
    s3 = client(fresh)
    s3.create_bucket(Bucket="quorum")
    old_big, old_small = os.urandom(5 * MiB), os.urandom(2 * KiB)
    s3.put_object(Bucket="quorum", Key="big", Body=old_big)
    s3.put_object(Bucket="quorum", Key="small", Body=old_small)

    fresh.kill_node("n1")               # 5 of 6 shard holders: data writes still succeed
    one_down = os.urandom(5 * MiB + 1)
    s3.put_object(Bucket="quorum", Key="one-down", Body=one_down)
    assert_object(s3, "quorum", "one-down", one_down)

    fresh.kill_node("n2")               # 4 of 6: below the data write quorum of k+1 = 5
    for key in ("new-big", "big"):
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket="quorum", Key=key, Body=os.urandom(5 * MiB))
        assert error_of(exc) == (503, "ServiceUnavailable")
    assert_absent(s3, "quorum", "new-big")
    assert_object(s3, "quorum", "big", old_big)
    # ...while metadata (4 of 6 replicas) still takes inline objects and deletes.
    small_2down = os.urandom(3 * KiB)
    s3.put_object(Bucket="quorum", Key="small", Body=small_2down)
    s3.put_object(Bucket="quorum", Key="new-small", Body=b"tiny")
    assert_object(s3, "quorum", "small", small_2down)
    assert_object(s3, "quorum", "new-small", b"tiny")
    s3.delete_object(Bucket="quorum", Key="one-down")
    assert_absent(s3, "quorum", "one-down")

    fresh.kill_node("n3")               # 3 of 6: below the metadata write quorum of 4
    for key in ("small", "newer-small"):
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket="quorum", Key=key, Body=os.urandom(KiB))
        assert error_of(exc) == (503, "ServiceUnavailable")
    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket="quorum", Key="new-small")
    assert error_of(exc) == (503, "ServiceUnavailable")
    # Three replicas still make a read quorum: the failed writes must not show there...
    assert_absent(s3, "quorum", "newer-small")
    assert_object(s3, "quorum", "small", small_2down)
    assert_object(s3, "quorum", "new-small", b"tiny")
    # ...nor once every node is back.
    restart(fresh, "n1", "n2", "n3")
    for key in ("newer-small", "new-big", "one-down"):
        assert_absent(s3, "quorum", key)
    assert_object(s3, "quorum", "small", small_2down)
    assert_object(s3, "quorum", "new-small", b"tiny")
    assert_object(s3, "quorum", "big", old_big)
    assert set(listed(s3, "quorum")) == {"big", "small", "new-small"}


# ---- kills in the middle of an operation ----------------------------------------------------
class SignallingBody(io.BytesIO):
    """A request body that tells when the client has read `after` bytes of it to send."""

    def __init__(self, data: bytes, after: int) -> None:
        super().__init__(data)
        self.after = after
        self.reached = threading.Event()

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        if self.tell() >= self.after:
            self.reached.set()
        return chunk


def test_node_killed_during_a_large_put(fresh: LocalCluster) -> None:
    s3 = client(fresh)
    s3.create_bucket(Bucket="midput")
    body = os.urandom(30 * MiB)
    stream = SignallingBody(body, after=8 * MiB)
    outcome: dict[str, object] = {}

    def upload() -> None:
        try:
            outcome["etag"] = s3.put_object(Bucket="midput", Key="big", Body=stream,
                                            ContentLength=len(body))["ETag"]
        except Exception as exc:    # judged below
            outcome["error"] = exc

    t = threading.Thread(target=upload)
    started = time.monotonic()
    t.start()
    assert stream.reached.wait(60), "the upload never got going"
    fresh.kill_node("n3")
    t.join(120)
    assert not t.is_alive(), "PUT hung after a node was killed"
    took = time.monotonic() - started

    if "error" in outcome:
        # A failure would have to leave nothing visible; but 5 of 6 shard holders were up all
        # along, so the write quorum was reachable and the PUT had to succeed.
        assert_absent(s3, "midput", "big")
        pytest.fail(f"PUT with one node killed failed although its quorum was reachable: "
                    f"{outcome['error']}")
    assert outcome["etag"] == f'"{md5(body)}"'
    assert took < 60, f"PUT took {took:.1f} s with one node killed"
    assert_object(s3, "midput", "big", body)
    rec = stored_record(fresh, "midput", "big")
    assert rec is not None and rec.data is not None
    killed_index = rec.data.nodes.index("n3")
    assert killed_index in rec.data.missing
    # Lose one more node: the object still decodes from the 4 shards left.
    other = next(n for n in rec.data.nodes if n != "n3")
    fresh.kill_node(other)
    assert_object(s3, "midput", "big", body)


def test_node_killed_during_a_large_get(fresh: LocalCluster) -> None:
    s3 = client(fresh)
    s3.create_bucket(Bucket="midget")
    body = os.urandom(30 * MiB)
    s3.put_object(Bucket="midget", Key="big", Body=body)
    rec = stored_record(fresh, "midget", "big")
    victim = rec.data.nodes[1]          # holds data shard 1 of every stripe

    resp = s3.get_object(Bucket="midget", Key="big")["Body"]
    got = bytearray(resp.read(3 * MiB))
    fresh.kill_node(victim)
    started = time.monotonic()
    error = None
    try:
        for _ in range(1000):       # bounded: 30 MiB in 256 KiB reads
            chunk = resp.read(256 * KiB)
            if not chunk:
                break
            got += chunk
    except Exception as exc:        # a truncated body is allowed, wrong bytes never are
        error = exc
    assert bytes(got) == body[:len(got)], "wrong bytes after a node was killed mid-GET"
    assert error is None and len(got) == len(body), (
        f"GET cut after {len(got)} of {len(body)} bytes ({error}); one dead node must be "
        "decoded around")
    assert time.monotonic() - started < 60
    assert_object(s3, "midget", "big", body)


# ---- bit rot -----------------------------------------------------------------------------
def flip_in_file(path: Path, needle: bytes) -> int:
    """Flip one bit in every copy of `needle` in the (stopped) node's LMDB file."""
    raw = bytearray(path.read_bytes())
    count, pos = 0, raw.find(needle)
    while pos >= 0:
        raw[pos + len(needle) // 2] ^= 0x10
        count += 1
        pos = raw.find(needle, pos + 1)
    path.write_bytes(bytes(raw))
    return count


def metric(c: LocalCluster, name: str, **labels: str) -> float:
    with urllib.request.urlopen(f"{c.endpoint()}/-/metrics", timeout=10) as r:
        text = r.read().decode()
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + ("{" if labels else "")) and want in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_corrupt_shard_is_decoded_around_reported_and_healed(fresh: LocalCluster) -> None:
    s3 = client(fresh)
    s3.create_bucket(Bucket="rot")
    body = os.urandom(3 * MiB)
    s3.put_object(Bucket="rot", Key="obj", Body=body)
    rec = stored_record(fresh, "rot", "obj")
    holder = rec.data.nodes[0]          # data shard 0 of the one stripe is body[0 : 768 KiB]
    before = metric(fresh, "cairn_shards_needing_repair_total", reason="corrupt")

    fresh.kill_node(holder)
    assert flip_in_file(fresh.base / "nodes" / holder / "data.mdb", body[5000:5064]) >= 1
    restart(fresh, holder)

    assert s3.get_object(Bucket="rot", Key="obj")["Body"].read() == body
    part = s3.get_object(Bucket="rot", Key="obj", Range="bytes=4000-6000")["Body"].read()
    assert part == body[4000:6001]
    assert metric(fresh, "cairn_shards_needing_repair_total", reason="corrupt") >= before + 1
    log = (fresh.base / "gateway0.log").read_text(errors="replace")
    assert f"shard 0 of stripe 0 (data {rec.data.data_id.hex()}) on {holder} unreadable (corrupt)" in log

    # Healed on read: the holder serves the shard again, rebuilt byte for byte, with no scrub run.
    async def shard_now() -> bytes | None:
        node = next(n for n in load_ring(fresh.ring_path).nodes if n.id == holder)
        async with NodeClient(node.address, keys=load_client_keys(fresh.keys_dir), timeout=3,
                              retries=0) as nc:
            try:
                return bytes(await nc.get_shard(shard_key(rec.data.data_id, 0, 0)))
            except NodeError:
                return None
    deadline = time.monotonic() + 30
    while asyncio.run(shard_now()) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    healed = asyncio.run(shard_now())
    assert healed is not None, f"{holder} still has no good shard 0 of stripe 0"
    assert healed == body[:len(body) // 4]      # one 3 MiB stripe: data shard 0 is its first quarter
    assert metric(fresh, "cairn_shards_healed_total") >= 1


def test_corrupt_record_replica_is_read_around_and_rewritten(fresh: LocalCluster) -> None:
    s3 = client(fresh)
    s3.create_bucket(Bucket="rotrec")
    body = os.urandom(2 * KiB)          # inline: the bytes live in the object record itself
    s3.put_object(Bucket="rotrec", Key="small", Body=body)
    ring = load_ring(fresh.ring_path)
    holder = ring.nodes_for(bucket_partition("rotrec"))[0]      # always among the replicas read
    fresh.kill_node(holder.id)
    assert flip_in_file(fresh.base / "nodes" / holder.id / "data.mdb", body[500:564]) >= 1
    restart(fresh, holder.id)

    async def replica_state() -> str:
        async with NodeClient(holder.address, keys=load_client_keys(fresh.keys_dir), timeout=3,
                              retries=0) as nc:
            try:
                _, value = await nc.get_record(object_key("rotrec", "small"))
            except NodeError as exc:
                return type(exc).__name__
        return "good" if ObjectRecord.decode(bytes(value)).inline == body else "wrong"
    assert asyncio.run(replica_state()) == "Corrupt"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert s3.get_object(Bucket="rotrec", Key="small")["Body"].read() == body
        if asyncio.run(replica_state()) == "good":
            break
        time.sleep(0.2)
    assert asyncio.run(replica_state()) == "good"


# ---- durability across kill -9 -------------------------------------------------------------
def test_acknowledged_puts_survive_a_kill9_restart(fresh: LocalCluster) -> None:
    s3 = client(fresh)
    s3.create_bucket(Bucket="acks")
    acked: list[tuple[str, bytes, float]] = []      # key, body, acknowledged at (monotonic)
    failures: list[str] = []
    stop = threading.Event()
    sizes = [2 * KiB, 40 * KiB, 1536 * KiB]

    def writer() -> None:
        for i in range(200):        # bounded in count and (through `stop`) in time
            if stop.is_set():
                return
            key, body = f"obj-{i:03d}", os.urandom(sizes[i % len(sizes)])
            try:
                s3.put_object(Bucket="acks", Key=key, Body=body)
            except ClientError as exc:      # not acknowledged: allowed, nothing promised
                failures.append(f"{key}: {exc}")
                continue
            acked.append((key, body, time.monotonic()))

    def wait_for(count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(acked) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(acked) >= count, f"only {len(acked)} PUTs acknowledged ({failures[-3:]})"

    t = threading.Thread(target=writer)
    t.start()
    try:
        wait_for(9)
        killed_at = time.monotonic()
        fresh.kill_node("n4")
        wait_for(len(acked) + 6)
        fresh.start_node("n4")
        wait_nodes_up(fresh)
        wait_for(len(acked) + 6)
    finally:
        stop.set()
        t.join(120)
    assert not t.is_alive()
    assert not failures, f"PUTs failed with one node down: {failures[:3]}"

    for key, body, _ in acked:
        assert_object(s3, "acks", key, body)
    assert set(listed(s3, "acks")) == {key for key, _, _ in acked}
    # Objects acknowledged before the kill had shards on n4 (synced before the ack). With two
    # other nodes down they can only be read if n4 really kept them.
    before = [(k, b) for k, b, at in acked if at < killed_at]
    whole = [(k, b) for k, b in before
             if (rec := stored_record(fresh, "acks", k)).data is None or not rec.data.missing]
    assert len(whole) >= 6
    fresh.kill_node("n1")
    fresh.kill_node("n2")
    for key, body in whole:
        assert_object(s3, "acks", key, body)
