"""restic end to end against a real Cairn cluster, over plain HTTP and over TLS.

One repository's whole life per transport: init (restic creates the bucket, with Content-MD5 and
a LocationConstraint body), backup of a generated tree (a 20 MiB file among a few hundred small
ones), check --read-data (every pack read back with a Range GET), restore (byte-identical), a
second backup after changing, deleting and adding files, forget --keep-last 1 --prune (packs and
indexes deleted, new ones written), check again and a restore of the latest snapshot. Over plain
HTTP restic signs every chunk (STREAMING-AWS4-HMAC-SHA256-PAYLOAD); over TLS it sends
UNSIGNED-PAYLOAD. Where the cluster has two gateways, reads go through the other one.
"""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.clients.tools import MiB, Tool, assert_same_tree, make_tree, write_file

pytestmark = [pytest.mark.clients, pytest.mark.cluster]


class Restic:
    def __init__(self, cluster, base: Path, bucket: str):
        self.cluster = cluster
        self.bucket = bucket
        self.cache = base / "restic-cache"
        self.tool = Tool(cluster, "restic", env={
            "RESTIC_PASSWORD": "correct horse battery staple",
            "AWS_ACCESS_KEY_ID": cluster.access_key, "AWS_SECRET_ACCESS_KEY": cluster.secret_key,
        }, timeout=120)

    def run(self, *args: str, gateway: int = 0, **kw):
        repo = f"s3:{self.cluster.endpoint(gateway)}/{self.bucket}"
        extra = ["--cacert", str(self.cluster.ca_file)] if self.cluster.tls else []
        return self.tool.run("-r", repo, "--cache-dir", str(self.cache), *extra, *args, **kw)

    def json(self, *args: str, **kw):
        return json.loads(self.run("--json", *args, **kw).stdout)


@pytest.fixture(params=["http", "tls"])
def cluster_for(request):
    return request.getfixturevalue("cluster" if request.param == "http" else "tls_cluster")


def _change_tree(root: Path) -> None:
    """Change, delete and add files, and grow the large file, so that the second backup has
    new blobs, shared blobs and blobs only the first snapshot refers to."""
    small = sorted(p for p in root.rglob("f*.bin"))
    for path in small[:10]:
        write_file(path, path.stat().st_size + 17, seed=len(path.name) + 1000)
    for path in small[10:30]:
        path.unlink()
    for i in range(5):
        write_file(root / "added" / f"new{i}.bin", 3000 * (i + 1), seed=2000 + i)
    with (root / "big" / "large0.bin").open("r+b") as f:
        f.seek(7 * MiB)
        f.write(b"changed in the middle of the large file")


def test_restic_repository_lifecycle(cluster_for, tmp_path):
    cluster = cluster_for
    reader = len(cluster.ports) - 1  # the second gateway where there is one
    restic = Restic(cluster, tmp_path, f"restic-{uuid.uuid4().hex[:10]}")
    src = tmp_path / "src"
    make_tree(src, seed=11, files=250, big=(20 * MiB,))

    # Before init, the repository does not exist (HEAD /bucket/ is 404, restic says so).
    missing = restic.run("snapshots", ok=False)
    assert missing.returncode != 0
    assert b"created restic repository" in restic.run("init").stdout
    again = restic.run("init", ok=False)
    assert again.returncode != 0 and b"already" in again.stderr

    first = _backup(restic, tmp_path)
    assert first["files_new"] == 251 and first["files_changed"] == 0
    assert first["data_added"] > 20 * MiB

    assert b"no errors were found" in restic.run("check", "--read-data", gateway=reader).stdout
    restic.run("restore", "latest", "--target", str(tmp_path / "r1"), gateway=reader)
    assert_same_tree(src, tmp_path / "r1" / "src")

    _change_tree(src)
    second = _backup(restic, tmp_path)
    assert second["files_new"] == 5 and second["files_changed"] == 11
    assert second["data_added"] < 8 * MiB  # the unchanged parts of the large file are deduplicated
    snapshots = restic.json("snapshots")
    assert len(snapshots) == 2

    packs_before = _names(restic, "packs")
    # --max-unused 0: repack every pack holding a blob only the first snapshot used, so that
    # prune reads, rewrites and deletes packs rather than tolerating a little waste.
    out = restic.run("forget", "--keep-last", "1", "--prune", "--max-unused", "0").stdout.decode()
    assert "remove 1 snapshots" in out, out
    remaining = restic.json("snapshots")
    assert [s["short_id"] for s in remaining] == [second["snapshot_id"][:8]]
    packs_after = _names(restic, "packs")
    assert packs_before - packs_after, "prune deleted no pack"
    assert packs_after - packs_before, "prune wrote no repacked pack"
    assert _names(restic, "locks") == set()  # every lock restic wrote was deleted and is gone from listings

    assert b"no errors were found" in restic.run("check", "--read-data", gateway=reader).stdout
    restic.run("restore", "latest", "--target", str(tmp_path / "r2"), gateway=reader)
    assert_same_tree(src, tmp_path / "r2" / "src")


def _backup(restic: Restic, cwd: Path) -> dict:
    """Run a backup of ./src and return restic's summary message."""
    out = restic.run("--json", "backup", "src", "--host", "cairn-test", cwd=cwd).stdout.decode()
    summaries = [json.loads(line) for line in out.splitlines()
                 if line.startswith("{") and '"message_type":"summary"' in line]
    assert len(summaries) == 1, out[-2000:]
    return summaries[0]


def _names(restic: Restic, kind: str) -> set[str]:
    return set(restic.run("list", kind, "--no-lock").stdout.decode().split())
