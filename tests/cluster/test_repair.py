"""Scrub and repair with real nodes: a node whose disk is replaced (data dir wiped) gets every
shard it should hold rebuilt by `cairn repair`, proven by then losing two *other* nodes and still
reading every object byte for byte."""
from __future__ import annotations

import os
import shutil

import pytest

from tests.cluster.test_gc import shard_totals
from tests.harness import LocalCluster, run_cli

pytestmark = pytest.mark.cluster
MiB = 1 << 20


def test_repair_rebuilds_a_replaced_node(tmp_path):
    with LocalCluster(tmp_path / "c") as c:
        s3 = c.boto3_client()
        s3.create_bucket(Bucket="rep")
        bodies = {f"obj{i}": os.urandom(size) for i, size in enumerate([3 * MiB + 7, 1 * MiB, 40_000, 100])}
        for key, body in bodies.items():
            s3.put_object(Bucket="rep", Key=key, Body=body)
        before = shard_totals(c)

        clean = run_cli("repair", "--ring", str(c.ring_path), "--keys", str(c.keys_dir))
        assert "rebuilt: 0" in clean and "unrepairable: 0" in clean

        c.kill_node("n1")
        shutil.rmtree(tmp_path / "c" / "nodes" / "n1")  # the disk is gone; a blank one replaces it
        c.start_node("n1")
        assert shard_totals(c)[0] < before[0]

        out = run_cli("repair", "--ring", str(c.ring_path), "--keys", str(c.keys_dir), timeout=300)
        assert "unrepairable: 0" in out, out
        assert "rebuilt: 0" not in out
        assert shard_totals(c) == before
        assert "records repaired: 0" not in out  # the blank node got its metadata replicas back
        again = run_cli("repair", "--ring", str(c.ring_path), "--keys", str(c.keys_dir))
        assert "rebuilt: 0" in again and "records repaired: 0" in again

        c.kill_node("n2")
        c.kill_node("n3")
        for key, body in bodies.items():
            assert s3.get_object(Bucket="rep", Key=key)["Body"].read() == body
