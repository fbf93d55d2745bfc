"""Garbage: aborted uploads free their space, orphan shards of interrupted writes are collected,
and storage returns to its baseline while every live object stays byte-exact."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time

import pytest
from boto3.s3.transfer import TransferConfig

from common.keys import load_client_keys
from common.nodeclient import NodePool
from ring.ringfile import load as load_ring
from tests.harness import LocalCluster, run_cli

pytestmark = pytest.mark.cluster
MiB = 1 << 20


def shard_totals(cluster: LocalCluster) -> tuple[int, int]:
    """(shards, shard bytes) summed over every node, from the nodes themselves."""
    async def go():
        ring = load_ring(cluster.ring_path)
        async with NodePool({n.id: n.address for n in ring.nodes},
                            keys=load_client_keys(cluster.keys_dir)) as pool:
            count = size = 0
            for node in ring.nodes:
                start = None
                while True:
                    page, more = await pool[node.id].scan_shards(b"", start=start, limit=1000)
                    count += len(page)
                    size += sum(s for _, s in page)
                    if not more or not page:
                        break
                    start = page[-1][0] + b"\x00"
            return count, size
    return asyncio.run(go())


def interrupted_put(cluster: LocalCluster, bucket: str, key: str, declared: int, sent: int) -> None:
    """A raw PUT that promises `declared` bytes and hangs up after `sent`."""
    s3 = cluster.boto3_client()
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=600)
    path = url.split(str(cluster.ports[0]), 1)[1]
    with socket.create_connection(("127.0.0.1", cluster.ports[0])) as sock:
        sock.sendall(f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{cluster.ports[0]}\r\n"
                     f"Content-Length: {declared}\r\n\r\n".encode())
        chunk = os.urandom(MiB)
        for _ in range(sent // MiB):
            sock.sendall(chunk)
        time.sleep(1.0)  # let the gateway store the stripes it has


def test_storage_returns_to_baseline_and_live_data_survives(tmp_path):
    with LocalCluster(tmp_path / "c") as c:
        s3 = c.boto3_client()
        s3.create_bucket(Bucket="gcb")
        assert shard_totals(c) == (0, 0)

        keep = os.urandom(3 * MiB + 11)
        s3.put_object(Bucket="gcb", Key="keep", Body=keep)
        live = shard_totals(c)
        assert live[0] > 0

        # Garbage of every kind:
        s3.put_object(Bucket="gcb", Key="gone", Body=os.urandom(2 * MiB))
        s3.delete_object(Bucket="gcb", Key="gone")                      # deleted object
        s3.put_object(Bucket="gcb", Key="over", Body=os.urandom(2 * MiB))
        s3.put_object(Bucket="gcb", Key="over", Body=os.urandom(2 * MiB))  # replaced version
        up = s3.create_multipart_upload(Bucket="gcb", Key="mp")
        for n in (1, 2):
            s3.upload_part(Bucket="gcb", Key="mp", UploadId=up["UploadId"], PartNumber=n,
                           Body=os.urandom(5 * MiB))
        before_abort = shard_totals(c)
        s3.abort_multipart_upload(Bucket="gcb", Key="mp", UploadId=up["UploadId"])
        deadline = time.monotonic() + 30
        while shard_totals(c)[0] >= before_abort[0] and time.monotonic() < deadline:
            time.sleep(0.5)
        assert shard_totals(c)[0] < before_abort[0], "abort did not free the parts' space"

        interrupted_put(c, "gcb", "cut", declared=20 * MiB, sent=6 * MiB)
        s3.delete_object(Bucket="gcb", Key="over")
        with pytest.raises(s3.exceptions.ClientError):
            s3.head_object(Bucket="gcb", Key="cut")  # never visible

        # A gateway killed mid-upload leaves shards no record refers to.
        big = tmp_path / "big.bin"
        big.write_bytes(os.urandom(160 * MiB))
        uploader = threading.Thread(target=lambda: _try_upload(c, big), daemon=True)
        uploader.start()
        time.sleep(0.8)
        c.gateway_procs[0].stop(signal.SIGKILL)
        uploader.join(60)
        c.gateway_procs[0].start()
        c.wait_ready(0)
        with pytest.raises(s3.exceptions.ClientError):
            s3.head_object(Bucket="gcb", Key="killed")  # the killed upload never committed

        assert shard_totals(c)[0] > live[0], "the scenario should have left garbage"
        out = run_cli("gc", "--grace", "0", "--ring", str(c.ring_path), "--keys", str(c.keys_dir))
        assert "deleted:" in out, out
        assert shard_totals(c) == live, "storage did not return to the live objects' footprint"
        assert s3.get_object(Bucket="gcb", Key="keep")["Body"].read() == keep

        s3.delete_object(Bucket="gcb", Key="keep")
        run_cli("gc", "--grace", "0", "--ring", str(c.ring_path), "--keys", str(c.keys_dir))
        assert shard_totals(c) == (0, 0)


def test_gc_grace_keeps_young_unreferenced_shards(tmp_path):
    with LocalCluster(tmp_path / "c") as c:
        s3 = c.boto3_client()
        s3.create_bucket(Bucket="gcb")
        interrupted_put(c, "gcb", "cut", declared=20 * MiB, sent=4 * MiB)
        s3.put_object(Bucket="gcb", Key="x", Body=os.urandom(2 * MiB))
        s3.delete_object(Bucket="gcb", Key="x")
        before = shard_totals(c)
        out = run_cli("gc", "--ring", str(c.ring_path), "--keys", str(c.keys_dir))  # default grace
        assert "deleted: 0" in out
        assert shard_totals(c) == before


def _try_upload(c: LocalCluster, path) -> None:
    try:
        c.boto3_client().upload_file(
            str(path), "gcb", "killed", Config=TransferConfig(multipart_threshold=1 << 40))
    except Exception:
        pass
