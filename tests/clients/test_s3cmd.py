"""s3cmd end to end against a real Cairn cluster, over plain HTTP and over TLS (ca_certs_file).

s3cmd signs with SigV4 and a hex SHA-256 of every body, addresses buckets path style with a
trailing slash ("/bucket/"), lists with ListObjects v1, keeps its own attributes (with the file's
MD5) in x-amz-meta-s3cmd-attrs, uploads in parts above --multipart-chunk-size-mb, deletes
recursively with DeleteObjects (Content-MD5), and `info` reads ?location, ?policy, ?cors and ?acl.
s3cmd retries failed requests silently after a pause; a retry would hide a gateway error, so
every command's stderr is checked for one.
"""
from __future__ import annotations

import hashlib
import random
import uuid
from pathlib import Path

import botocore.exceptions
import pytest

from tests.clients.tools import MiB, Tool, assert_same_tree, make_tree, write_file

pytestmark = [pytest.mark.clients, pytest.mark.cluster]

# What s3cmd prints when it retries or when a download does not match its MD5.
_TROUBLE = (b"Retrying", b"Waiting ", b"MD5 signatures do not match", b"ERROR")


class S3cmd:
    def __init__(self, cluster, conf_dir: Path):
        self.cluster = cluster
        host = cluster.endpoint(0).split("://", 1)[1]
        self.conf = conf_dir / "s3cfg"
        lines = ["[default]", f"access_key = {cluster.access_key}", f"secret_key = {cluster.secret_key}",
                 f"host_base = {host}", f"host_bucket = {host}", "bucket_location = us-east-1",
                 "signature_v2 = False", "progress_meter = False", "check_ssl_certificate = True",
                 "check_ssl_hostname = True", f"use_https = {cluster.tls}"]
        if cluster.tls:
            lines.append(f"ca_certs_file = {cluster.ca_file}")
        self.conf.write_text("\n".join(lines) + "\n")
        self.tool = Tool(cluster, "s3cmd", timeout=120)

    def run(self, *args: str, ok: bool = True, **kw):
        out = self.tool.run("-c", str(self.conf), *args, ok=ok, **kw)
        if ok:
            trouble = [t for t in _TROUBLE if t in out.stderr]
            assert not trouble, f"s3cmd {' '.join(args)}: {trouble}\n{out.stderr.decode(errors='replace')}"
        return out

    def text(self, *args: str, **kw) -> str:
        return self.run(*args, **kw).stdout.decode()


@pytest.fixture(params=["http", "tls"])
def s3cmd(request, tmp_path_factory) -> S3cmd:
    cluster = request.getfixturevalue("cluster" if request.param == "http" else "tls_cluster")
    return S3cmd(cluster, tmp_path_factory.mktemp("s3cmd"))


@pytest.fixture
def bkt(s3cmd) -> str:
    name = f"sc-{uuid.uuid4().hex[:12]}"
    assert s3cmd.text("mb", f"s3://{name}").strip() == f"Bucket 's3://{name}/' created"
    return name


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def listed(s3cmd: S3cmd, url: str) -> dict[str, int]:
    """{url: size} from `s3cmd ls -r` (date, time, size, url per line)."""
    out = {}
    for line in s3cmd.text("ls", "-r", url).splitlines():
        _, _, size, name = line.split(None, 3)
        out[name] = int(size)
    return out


# ---- one bucket's life ----------------------------------------------------------------------------

def test_bucket_and_object_lifecycle(s3cmd, tmp_path):
    name = f"sc-{uuid.uuid4().hex[:12]}"
    s3 = s3cmd.cluster.boto3_client()
    assert s3cmd.text("mb", f"s3://{name}").strip() == f"Bucket 's3://{name}/' created"
    assert f"s3://{name}" in s3cmd.text("ls").split()

    small = write_file(tmp_path / "small.txt", 1500, seed=1)
    big = write_file(tmp_path / "big.bin", 20 * MiB + 5, seed=2)
    s3cmd.run("put", str(tmp_path / "small.txt"), f"s3://{name}/docs/small.txt")
    s3cmd.run("put", "--multipart-chunk-size-mb=5", str(tmp_path / "big.bin"), f"s3://{name}/big.bin")
    assert s3.head_object(Bucket=name, Key="docs/small.txt")["ETag"] == f'"{md5(small)}"'
    assert s3.head_object(Bucket=name, Key="big.bin")["ETag"].endswith('-5"')  # five 5 MiB parts

    s3cmd.run("get", f"s3://{name}/docs/small.txt", str(tmp_path / "small.back"))
    s3cmd.run("get", f"s3://{name}/big.bin", str(tmp_path / "big.back"))
    assert (tmp_path / "small.back").read_bytes() == small
    assert (tmp_path / "big.back").read_bytes() == big

    # info on the bucket reads ?location, ?policy, ?cors and ?acl; every one must answer.
    info = s3cmd.text("info", f"s3://{name}")
    assert "Location:  us-east-1" in info and "Policy:    none" in info and "CORS:      none" in info
    assert f"ACL:       {s3cmd.cluster.access_key}: FULL_CONTROL" in info
    info = s3cmd.text("info", f"s3://{name}/big.bin")
    assert f"File size: {len(big)}" in info
    assert f"MD5 sum:   {md5(big)}" in info  # from s3cmd's own attributes: multipart ETag is no MD5

    top = s3cmd.text("ls", f"s3://{name}").splitlines()
    assert top[0].split() == ["DIR", f"s3://{name}/docs/"]
    assert top[1].split()[-2:] == [str(len(big)), f"s3://{name}/big.bin"]
    assert listed(s3cmd, f"s3://{name}") == {f"s3://{name}/big.bin": len(big),
                                             f"s3://{name}/docs/small.txt": len(small)}
    assert s3cmd.text("du", f"s3://{name}").split() == [str(len(big) + len(small)), "2", "objects",
                                                         f"s3://{name}/"]

    refused = s3cmd.run("rb", f"s3://{name}", ok=False)
    assert refused.returncode != 0 and b"BucketNotEmpty" in refused.stderr
    s3cmd.run("del", "--recursive", "--force", f"s3://{name}")
    assert listed(s3cmd, f"s3://{name}") == {}
    assert s3cmd.text("rb", f"s3://{name}").strip() == f"Bucket 's3://{name}/' removed"
    assert f"s3://{name}" not in s3cmd.text("ls").split()
    with pytest.raises(botocore.exceptions.ClientError) as err:
        s3.head_bucket(Bucket=name)
    assert err.value.response["Error"]["Code"] == "404"


# ---- sync -------------------------------------------------------------------------------------------

def test_sync_up_and_back(s3cmd, bkt, tmp_path):
    src = tmp_path / "src"
    sizes = make_tree(src, seed=41, files=120, big=(20 * MiB,))
    s3cmd.run("sync", "--multipart-chunk-size-mb=5", f"{src}/", f"s3://{bkt}/tree/")
    assert listed(s3cmd, f"s3://{bkt}/tree/") == {f"s3://{bkt}/tree/{k}": v for k, v in sizes.items()}
    # Nothing changed: the second sync compares sizes and MD5s (ETag, or s3cmd-attrs for the
    # multipart file) and uploads nothing.
    assert "upload:" not in s3cmd.text("sync", "--multipart-chunk-size-mb=5", f"{src}/", f"s3://{bkt}/tree/")

    (tmp_path / "back").mkdir()
    s3cmd.run("sync", f"s3://{bkt}/tree/", f"{tmp_path / 'back'}/")
    assert_same_tree(src, tmp_path / "back")

    # Change, delete, add, then mirror with --delete-removed both ways.
    names = sorted(k for k in sizes if k.startswith("d"))
    write_file(src / names[0], 4321, seed=7)
    for gone in names[1:4]:
        (src / gone).unlink()
    write_file(src / "new" / "file.bin", 123_456, seed=8)
    out = s3cmd.text("sync", "--delete-removed", f"{src}/", f"s3://{bkt}/tree/")
    assert out.count("delete: ") == 3 and out.count("upload: ") == 2, out
    s3cmd.run("sync", "--delete-removed", f"s3://{bkt}/tree/", f"{tmp_path / 'back'}/")
    assert_same_tree(src, tmp_path / "back")


def test_awkward_names(s3cmd, bkt, tmp_path):
    src = tmp_path / "odd"
    names = ["a b.txt", "ü-ñ/ß.bin", "plus+sign", "pct%41", "semi;colon", "eq=amp&x", "tilde~q",
             "star*", "quote'", "hash#1", "dots..x", "(paren)[br]{c}", "日本語/ファイル"]
    for i, name in enumerate(names):
        write_file(src / name, 10 + i * 997, seed=i)
    s3cmd.run("sync", f"{src}/", f"s3://{bkt}/odd/")
    keys = {o["Key"] for o in s3cmd.cluster.boto3_client().list_objects_v2(Bucket=bkt)["Contents"]}
    assert keys == {f"odd/{n}" for n in names}
    (tmp_path / "back").mkdir()
    s3cmd.run("sync", f"s3://{bkt}/odd/", f"{tmp_path / 'back'}/")
    assert_same_tree(src, tmp_path / "back")


# ---- streams and server-side operations ---------------------------------------------------------

def test_stdin_copy_move_modify(s3cmd, bkt, tmp_path):
    s3 = s3cmd.cluster.boto3_client()
    data = random.Random(3).randbytes(12 * MiB + 1)
    # From stdin the length is unknown: s3cmd always uploads in parts, as they fill.
    s3cmd.run("put", "--multipart-chunk-size-mb=5", "-", f"s3://{bkt}/stdin.bin", stdin=data)
    assert s3cmd.run("get", f"s3://{bkt}/stdin.bin", "-").stdout == data
    assert s3.head_object(Bucket=bkt, Key="stdin.bin")["ETag"].endswith('-3"')

    s3cmd.run("cp", f"s3://{bkt}/stdin.bin", f"s3://{bkt}/copy.bin")
    s3cmd.run("mv", f"s3://{bkt}/copy.bin", f"s3://{bkt}/moved.bin")
    assert set(listed(s3cmd, f"s3://{bkt}")) == {f"s3://{bkt}/stdin.bin", f"s3://{bkt}/moved.bin"}
    # modify: a CopyObject onto itself with REPLACE and the new header.
    s3cmd.run("modify", "--add-header=x-amz-meta-color:blue", "--add-header=Cache-Control:max-age=9",
              f"s3://{bkt}/moved.bin")
    head = s3.head_object(Bucket=bkt, Key="moved.bin")
    assert head["Metadata"]["color"] == "blue" and head["CacheControl"] == "max-age=9"
    s3cmd.run("get", f"s3://{bkt}/moved.bin", str(tmp_path / "moved"))
    assert (tmp_path / "moved").read_bytes() == data
