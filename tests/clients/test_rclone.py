"""rclone (provider Other, path style) end to end against a real Cairn cluster, over plain HTTP
and over TLS (--ca-cert, with AWS_CA_BUNDLE unset: rclone 1.60 fails when both are set).

rclone lists with ListObjects v1 (marker, max-keys), HEADs every object it uploads and compares
size and MD5 ETag, keeps the modification time in x-amz-meta-mtime and changes it with a
CopyObject onto itself (REPLACE), uploads above --s3-upload-cutoff as multipart and copies above
--s3-copy-cutoff with UploadPartCopy ranges. Retries are off, so that any error the gateway
returns fails the command instead of being retried away.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import uuid
from datetime import datetime, timezone
from pathlib import Path

import botocore.exceptions
import pytest

from tests.clients.tools import MiB, Tool, assert_same_tree, make_tree, write_file

pytestmark = [pytest.mark.clients, pytest.mark.cluster]

NO_RETRIES = ("--retries", "1", "--low-level-retries", "1")


class Rclone:
    def __init__(self, cluster, conf_dir: Path):
        self.cluster = cluster
        self.conf = conf_dir / "rclone.conf"
        self.conf.write_text(
            "[cairn]\ntype = s3\nprovider = Other\n"
            f"access_key_id = {cluster.access_key}\nsecret_access_key = {cluster.secret_key}\n"
            f"endpoint = {cluster.endpoint(0)}\nregion = us-east-1\n"
            "force_path_style = true\nacl = private\n")
        self.tool = Tool(cluster, "rclone", timeout=120)

    def run(self, *args: str, **kw):
        extra = ["--ca-cert", str(self.cluster.ca_file)] if self.cluster.tls else []
        return self.tool.run("--config", str(self.conf), *NO_RETRIES, *extra, *args, **kw)

    def text(self, *args: str, **kw) -> str:
        out = self.run(*args, **kw)
        return out.stdout.decode() + out.stderr.decode()

    def lsjson(self, *args: str) -> list[dict]:
        return json.loads(self.run("lsjson", *args).stdout)

    def cat(self, *args: str) -> bytes:
        return self.run("cat", *args).stdout


@pytest.fixture(params=["http", "tls"])
def rclone(request, tmp_path_factory) -> Rclone:
    cluster = request.getfixturevalue("cluster" if request.param == "http" else "tls_cluster")
    return Rclone(cluster, tmp_path_factory.mktemp("rclone"))


@pytest.fixture
def remote(rclone) -> str:
    """A fresh bucket, created by rclone (x-amz-acl: private)."""
    name = f"rc-{uuid.uuid4().hex[:12]}"
    rclone.run("mkdir", f"cairn:{name}")
    return f"cairn:{name}"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def local_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def parse_time(value: str) -> datetime:
    whole_seconds = value.rstrip("Z").partition(".")[0]
    return datetime.fromisoformat(whole_seconds).replace(tzinfo=timezone.utc)


# ---- sync, check, copy back -----------------------------------------------------------------------

def test_sync_check_copy_back(rclone, remote, tmp_path):
    src = tmp_path / "src"
    make_tree(src, seed=21, files=120, big=(20 * MiB,))
    rclone.run("mkdir", remote)  # again: BucketAlreadyOwnedByYou is success for rclone
    rclone.run("sync", str(src), f"{remote}/data")
    assert "0 differences found" in rclone.text("check", str(src), f"{remote}/data")

    # Every object listed with the local size and its MD5 (the ETag of a single-part upload).
    listed = {e["Path"]: e for e in rclone.lsjson("-R", "--files-only", "--hash", f"{remote}/data")}
    local = local_files(src)
    assert listed.keys() == local.keys()
    for rel, data in local.items():
        assert listed[rel]["Size"] == len(data), rel
        assert listed[rel]["Hashes"]["md5"] == md5(data), rel

    # ListObjects v1 paged by marker: small pages see exactly the same keys.
    paged = rclone.run("lsf", "-R", "--files-only", "--s3-list-chunk", "17", f"{remote}/data").stdout
    assert sorted(paged.decode().splitlines()) == sorted(local)

    rclone.run("copy", f"{remote}/data", str(tmp_path / "back"))
    assert_same_tree(src, tmp_path / "back")

    # A second sync finds nothing to do.
    assert "Copied" not in rclone.text("sync", "-v", str(src), f"{remote}/data")

    # Only the local mtime changes: rclone updates it in place (a CopyObject onto itself with
    # x-amz-metadata-directive: REPLACE), uploading nothing.
    touched = sorted(local)[3]
    stamp = datetime(2001, 2, 3, 4, 5, 6, tzinfo=timezone.utc).timestamp()
    os.utime(src / touched, (stamp, stamp))
    out = rclone.text("sync", "-v", str(src), f"{remote}/data")
    assert "Updated modification time in destination" in out and "Copied" not in out, out
    [entry] = rclone.lsjson(f"{remote}/data/{touched}")
    assert parse_time(entry["ModTime"]).timestamp() == stamp
    assert rclone.cat(f"{remote}/data/{touched}") == local[touched]

    # Content changed, files deleted and added: sync converges, check agrees, bytes agree.
    names = sorted(local)
    write_file(src / names[0], 5000, seed=99)
    (src / names[1]).unlink()
    (src / names[2]).unlink()
    write_file(src / "brand" / "new.bin", 70_000, seed=98)
    rclone.run("sync", str(src), f"{remote}/data")
    assert "0 differences found" in rclone.text("check", "--download", str(src), f"{remote}/data")
    rclone.run("sync", f"{remote}/data", str(tmp_path / "back"))
    assert_same_tree(src, tmp_path / "back")


def test_awkward_names(rclone, remote, tmp_path):
    src = tmp_path / "odd"
    names = ["a b.txt", "ü-ñ/ß.bin", "plus+sign", "pct%41%2F", "semi;colon", "eq=amp&x", "tilde~q?",
             "star*", "quote'\"", "hash#1", "dots..x", "sub/ space ", "sub/./dot", "(paren)[br]{c}",
             "日本語/ファイル"]
    for i, name in enumerate(names):
        write_file(src / name, 10 + i * 97, seed=i)
    rclone.run("sync", str(src), f"{remote}/odd")
    assert "0 differences found" in rclone.text("check", "--download", str(src), f"{remote}/odd")
    rclone.run("copy", f"{remote}/odd", str(tmp_path / "back"))
    assert_same_tree(src, tmp_path / "back")


# ---- metadata-only changes ------------------------------------------------------------------------

def test_touch_and_settier_change_metadata_only(rclone, remote, tmp_path):
    s3 = rclone.cluster.boto3_client()
    bucket = remote.split(":", 1)[1]
    data = write_file(tmp_path / "f.bin", 300_000, seed=5)
    rclone.run("copyto", str(tmp_path / "f.bin"), f"{remote}/dir/f.bin")
    before = s3.head_object(Bucket=bucket, Key="dir/f.bin")
    assert before["ETag"] == f'"{md5(data)}"' and before["ContentLength"] == len(data)

    rclone.run("touch", "-t", "2020-01-02T03:04:05", f"{remote}/dir/f.bin")
    [entry] = rclone.lsjson(f"{remote}/dir/f.bin")
    assert entry["ModTime"].startswith("2020-01-02T03:04:05") and entry["Size"] == len(data)
    after = s3.head_object(Bucket=bucket, Key="dir/f.bin")
    assert after["ETag"] == before["ETag"] and after["ContentLength"] == len(data)
    assert after["Metadata"]["mtime"] != before["Metadata"]["mtime"]
    assert rclone.cat(f"{remote}/dir/f.bin") == data

    # settier: a CopyObject onto itself with COPY and x-amz-storage-class (S3 allows it).
    rclone.run("settier", "STANDARD", f"{remote}/dir/f.bin")
    tiered = s3.head_object(Bucket=bucket, Key="dir/f.bin")
    assert tiered["ETag"] == before["ETag"] and tiered["Metadata"] == after["Metadata"]
    assert rclone.lsjson(f"{remote}/dir/f.bin")[0]["Tier"] == "STANDARD"
    assert rclone.cat(f"{remote}/dir/f.bin") == data


# ---- multipart, ranges, server-side copy, streaming -----------------------------------------------

def test_multipart_ranges_and_server_side_copy(rclone, remote, tmp_path):
    s3 = rclone.cluster.boto3_client()
    bucket = remote.split(":", 1)[1]
    data = write_file(tmp_path / "big.bin", 23 * MiB + 7, seed=23)
    rclone.run("copyto", str(tmp_path / "big.bin"), f"{remote}/mp/big.bin",
               "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M")
    head = s3.head_object(Bucket=bucket, Key="mp/big.bin")
    assert head["ContentLength"] == len(data) and head["ETag"].endswith('-5"')
    [entry] = rclone.lsjson("--hash", f"{remote}/mp/big.bin")
    assert entry["Hashes"]["md5"] == md5(data)  # rclone's own x-amz-meta-md5chksum, read back
    assert rclone.cat(f"{remote}/mp/big.bin") == data

    # Ranged GETs, across part boundaries and from the end.
    for offset, count in [(0, 1), (5 * MiB - 3, 10), (20 * MiB - 100, 2 * MiB), (len(data) - 1, 5),
                          (7 * MiB + 11, 3 * MiB)]:
        assert rclone.cat("--offset", str(offset), "--count", str(count),
                          f"{remote}/mp/big.bin") == data[offset:offset + count], (offset, count)
    assert rclone.cat("--tail", "1000", f"{remote}/mp/big.bin") == data[-1000:]

    # Server-side copy above --s3-copy-cutoff: CreateMultipartUpload + UploadPartCopy ranges.
    rclone.run("copyto", f"{remote}/mp/big.bin", f"{remote}/copy/big.bin", "--s3-copy-cutoff", "5M")
    copied = s3.head_object(Bucket=bucket, Key="copy/big.bin")
    assert copied["ContentLength"] == len(data) and copied["ETag"].endswith('-5"')
    assert rclone.cat(f"{remote}/copy/big.bin") == data
    assert "0 differences found" in rclone.text("check", "--download", str(tmp_path),
                                                f"{remote}/copy", "--include", "big.bin")

    # rcat: a stream of unknown length, uploaded in 5 MiB parts as it arrives.
    streamed = random.Random(7).randbytes(12 * MiB + 3)
    rclone.run("rcat", f"{remote}/stream.bin", "--s3-chunk-size", "5M",
               "--streaming-upload-cutoff", "1M", stdin=streamed)
    assert rclone.cat(f"{remote}/stream.bin") == streamed
    assert s3.head_object(Bucket=bucket, Key="stream.bin")["ETag"].endswith('-3"')


# ---- purge --------------------------------------------------------------------------------------

def test_purge_removes_objects_and_bucket(rclone, remote, tmp_path):
    make_tree(tmp_path / "src", seed=31, files=40, big=())
    rclone.run("copy", str(tmp_path / "src"), f"{remote}/p")
    rclone.run("copyto", str(tmp_path / "src" / sorted(local_files(tmp_path / "src"))[0]), f"{remote}/top")
    assert len(rclone.lsjson("-R", "--files-only", remote)) == 41
    rclone.run("purge", remote)
    bucket = remote.split(":", 1)[1]
    assert bucket not in rclone.text("lsd", "cairn:")
    with pytest.raises(botocore.exceptions.ClientError) as err:
        rclone.cluster.boto3_client().head_bucket(Bucket=bucket)
    assert err.value.response["Error"]["Code"] == "404"
