"""The aws CLI (v1) end to end against a real Cairn cluster, over plain HTTP and over TLS.

Every command runs as a real `aws` process with its own config file; exit codes, output and
every byte moved are checked. Files stay below the multipart threshold (raised to 64 MB in the
config), so these tests exercise single PUTs only. Over TLS the CLI uploads with
STREAMING-UNSIGNED-PAYLOAD-TRAILER (aws-chunked, a CRC32 trailer, no Content-Length).
"""
from __future__ import annotations

import filecmp
import hashlib
import json
import random
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.clients, pytest.mark.cluster]

AWS = Path(sys.executable).parent / "aws"
MiB = 1 << 20
BASE_CONFIG = ("[profile cairn]\nregion = us-east-1\noutput = json\n"
               "s3 =\n  multipart_threshold = 64MB\n  multipart_chunksize = 64MB\n")


@dataclass
class Cli:
    cluster: object
    env: dict[str, str]
    s3: object  # boto3, for setup and checks that are not what a test is about

    def run(self, *args: str, ok: bool = True, stdin: bytes | None = None, gateway: int = 0,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        argv = [str(AWS), *args, "--endpoint-url", self.cluster.endpoint(gateway)]
        if args[:2] in (("s3", "cp"), ("s3", "mv"), ("s3", "sync")):
            argv.append("--no-progress")  # keep stdout to one line per file
        out = subprocess.run(argv, env=env or self.env, input=stdin, capture_output=True, timeout=120)
        if ok and out.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {out.returncode}:\n"
                                 f"{out.stdout.decode(errors='replace')}\n"
                                 f"{out.stderr.decode(errors='replace')}\n{self.cluster.gateway_log(gateway)}")
        return out

    def json(self, *args: str, **kw) -> dict:
        out = self.run("s3api", *args, **kw).stdout
        return json.loads(out) if out.strip() else {}

    def text(self, *args: str, **kw) -> str:
        return self.run(*args, **kw).stdout.decode()

    def ssl_context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cafile=str(self.cluster.ca_file)) if self.cluster.tls else None


@pytest.fixture(params=["http", "tls"])
def cli(request, tmp_path_factory) -> Cli:
    cluster = request.getfixturevalue("cluster" if request.param == "http" else "tls_cluster")
    config = tmp_path_factory.mktemp("aws") / "config"
    config.write_text(BASE_CONFIG)
    return Cli(cluster, {**cluster.aws_env(), "AWS_CONFIG_FILE": str(config)}, cluster.boto3_client())


@pytest.fixture
def bkt(cli) -> str:
    name = f"cli-{uuid.uuid4().hex[:12]}"
    cli.s3.create_bucket(Bucket=name)  # `s3 mb` itself is tested in test_mb_ls_rb
    return name


def write(path: Path, size: int, seed: int = 0) -> bytes:
    data = random.Random(seed).randbytes(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def keys(cli: Cli, bucket: str, prefix: str = "") -> list[str]:
    pages = cli.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def head(cli: Cli, bucket: str, key: str) -> dict:
    return cli.s3.head_object(Bucket=bucket, Key=key)


# ---- buckets ------------------------------------------------------------------------------------

def test_mb_ls_rb(cli):
    name = f"cli-{uuid.uuid4().hex[:12]}"
    assert cli.text("s3", "mb", f"s3://{name}").strip() == f"make_bucket: {name}"
    again = cli.run("s3", "mb", f"s3://{name}", ok=False)
    assert again.returncode != 0 and b"BucketAlreadyOwnedByYou" in again.stderr
    listed = cli.text("s3", "ls").splitlines()
    assert any(line.split()[-1] == name for line in listed)
    assert cli.text("s3", "ls", f"s3://{name}") == ""
    assert cli.text("s3", "rb", f"s3://{name}").strip() == f"remove_bucket: {name}"
    gone = cli.run("s3", "ls", f"s3://{name}", ok=False)
    assert gone.returncode != 0 and b"NoSuchBucket" in gone.stderr
    assert cli.run("s3", "rb", f"s3://{name}", ok=False).returncode != 0


def test_rb_force_and_not_empty(cli):
    name = f"cli-{uuid.uuid4().hex[:12]}"
    cli.s3.create_bucket(Bucket=name)
    cli.s3.put_object(Bucket=name, Key="a/f", Body=b"0123456789")
    refused = cli.run("s3", "rb", f"s3://{name}", ok=False)
    assert refused.returncode != 0 and b"BucketNotEmpty" in refused.stderr
    cli.run("s3", "rb", f"s3://{name}", "--force")
    assert name not in cli.text("s3", "ls")


# ---- cp -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, 16 * 1024 + 1, 7 * MiB + 5], ids=["0B", "1B", "16KiB+1", "7MiB"])
def test_cp_up_and_down(cli, bkt, tmp_path, size):
    data = write(tmp_path / "up.bin", size, seed=size)
    out = cli.text("s3", "cp", str(tmp_path / "up.bin"), f"s3://{bkt}/dir/up.bin")
    assert out.startswith("upload:") and f"s3://{bkt}/dir/up.bin" in out
    got = head(cli, bkt, "dir/up.bin")
    assert got["ContentLength"] == size
    assert got["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    # Read back through the other gateway where there is one.
    cli.run("s3", "cp", f"s3://{bkt}/dir/up.bin", str(tmp_path / "down.bin"),
            gateway=len(cli.cluster.ports) - 1)
    assert (tmp_path / "down.bin").read_bytes() == data


def test_cp_headers_and_metadata(cli, bkt, tmp_path):
    data = write(tmp_path / "page.html", 5000)
    cli.run("s3", "cp", str(tmp_path / "page.html"), f"s3://{bkt}/page.html",
            "--content-type", "text/html; charset=utf-8", "--cache-control", "max-age=30",
            "--content-disposition", "inline", "--metadata", "origin=cli,step=2")
    got = head(cli, bkt, "page.html")
    assert got["ContentType"] == "text/html; charset=utf-8"
    assert got["CacheControl"] == "max-age=30"
    assert got["ContentDisposition"] == "inline"
    assert got["Metadata"] == {"origin": "cli", "step": "2"}
    assert "ContentEncoding" not in got  # aws-chunked over TLS is framing, not stored
    # Without --content-type the CLI guesses from the file name.
    cli.run("s3", "cp", str(tmp_path / "page.html"), f"s3://{bkt}/guessed.html")
    assert head(cli, bkt, "guessed.html")["ContentType"] == "text/html"
    cli.run("s3", "cp", f"s3://{bkt}/page.html", str(tmp_path / "back.html"))
    assert (tmp_path / "back.html").read_bytes() == data


def test_cp_stdin_and_stdout(cli, bkt):
    data = random.Random(4).randbytes(300_000)
    cli.run("s3", "cp", "-", f"s3://{bkt}/streamed", stdin=data)
    assert cli.run("s3", "cp", f"s3://{bkt}/streamed", "-").stdout == data


def test_cp_missing_source_fails(cli, bkt, tmp_path):
    out = cli.run("s3", "cp", f"s3://{bkt}/absent", str(tmp_path / "x"), ok=False)
    assert out.returncode != 0 and not (tmp_path / "x").exists()


def test_cp_recursive_and_remote_copy(cli, bkt, tmp_path):
    src = tmp_path / "src"
    for i in range(5):
        write(src / f"d{i % 2}" / f"f{i}.bin", 1000 * i + 1, seed=i)
    cli.run("s3", "cp", str(src), f"s3://{bkt}/r/", "--recursive")
    cli.run("s3", "cp", f"s3://{bkt}/r/", f"s3://{bkt}/copy/", "--recursive")
    cli.run("s3", "cp", f"s3://{bkt}/copy/", str(tmp_path / "dst"), "--recursive")
    assert tree(tmp_path / "dst") == tree(src)


# ---- ls -----------------------------------------------------------------------------------------

def test_ls_bucket_and_prefix(cli, bkt, tmp_path):
    for key in ["top.txt", "dir/a.txt", "dir/b.txt", "dir/sub/c.txt", "other/d.txt"]:
        cli.s3.put_object(Bucket=bkt, Key=key, Body=b"x" * 1234)
    lines = cli.text("s3", "ls", f"s3://{bkt}").splitlines()
    assert [line.split()[-1] for line in lines if "PRE" in line] == ["dir/", "other/"]
    files = [line.split() for line in lines if "PRE" not in line]
    assert [(f[-2], f[-1]) for f in files] == [("1234", "top.txt")]
    sub = cli.text("s3", "ls", f"s3://{bkt}/dir/").splitlines()
    assert [line.split()[-1] for line in sub] == ["sub/", "a.txt", "b.txt"]
    partial = cli.text("s3", "ls", f"s3://{bkt}/dir/a").splitlines()
    assert [line.split()[-1] for line in partial] == ["a.txt"]
    recursive = cli.text("s3", "ls", f"s3://{bkt}", "--recursive", "--summarize").splitlines()
    listed = [line.split()[-1] for line in recursive if line and line[0].isdigit()]
    assert listed == ["dir/a.txt", "dir/b.txt", "dir/sub/c.txt", "other/d.txt", "top.txt"]
    assert "Total Objects: 5" in [line.strip() for line in recursive]
    assert "Total Size: 6170" in [line.strip() for line in recursive]


def test_ls_many_keys_paginates(cli, bkt):
    # More keys than one 1000-key page: the CLI must follow continuation tokens to the end.
    names = [f"many/{i:05d}" for i in range(1003)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: cli.s3.put_object(Bucket=bkt, Key=k, Body=b""), names))
    lines = cli.text("s3", "ls", f"s3://{bkt}/many/").splitlines()
    assert [line.split()[-1] for line in lines] == [n.removeprefix("many/") for n in names]
    assert len(keys(cli, bkt, "many/")) == 1003


# ---- sync, mv, rm -------------------------------------------------------------------------------

def test_sync_both_ways(cli, bkt, tmp_path):
    local = tmp_path / "local"
    write(local / "empty", 0)
    write(local / "one byte", 1, seed=1)
    write(local / "ü nested" / "deep" / "file.txt", 20_000, seed=2)
    write(local / "big.bin", 3 * MiB + 17, seed=3)
    write(local / "a+b=c&d.txt", 99, seed=4)
    first = cli.text("s3", "sync", str(local), f"s3://{bkt}/backup")
    assert first.count("upload:") == 5
    assert cli.text("s3", "sync", str(local), f"s3://{bkt}/backup") == ""  # nothing changed

    back = tmp_path / "back"
    cli.run("s3", "sync", f"s3://{bkt}/backup", str(back))
    assert tree(back) == tree(local)
    assert filecmp.dircmp(local, back).diff_files == []

    write(local / "one byte", 2, seed=5)          # new size: uploaded again
    (local / "a+b=c&d.txt").unlink()
    changed = cli.text("s3", "sync", str(local), f"s3://{bkt}/backup", "--delete")
    assert sorted(line.split(":")[0] for line in changed.splitlines()) == ["delete", "upload"]
    assert sorted(keys(cli, bkt, "backup/")) == sorted(
        ["backup/empty", "backup/one byte", "backup/ü nested/deep/file.txt", "backup/big.bin"])
    cli.run("s3", "sync", f"s3://{bkt}/backup", str(back), "--delete")
    assert tree(back) == tree(local)


def test_sync_bucket_to_bucket(cli, bkt, tmp_path):
    local = tmp_path / "l"
    for i in range(4):
        write(local / f"x{i}", 100 + i, seed=i)
    cli.run("s3", "sync", str(local), f"s3://{bkt}/a")
    other = f"cli-{uuid.uuid4().hex[:12]}"
    cli.s3.create_bucket(Bucket=other)
    cli.run("s3", "sync", f"s3://{bkt}/a", f"s3://{other}/b")
    cli.run("s3", "sync", f"s3://{other}/b", str(tmp_path / "out"))
    assert tree(tmp_path / "out") == tree(local)


def test_mv(cli, bkt, tmp_path):
    data = write(tmp_path / "m.bin", 40_000, seed=8)
    cli.run("s3", "mv", str(tmp_path / "m.bin"), f"s3://{bkt}/one")
    assert not (tmp_path / "m.bin").exists()
    cli.run("s3", "mv", f"s3://{bkt}/one", f"s3://{bkt}/two/renamed")
    assert keys(cli, bkt) == ["two/renamed"]
    cli.run("s3", "mv", f"s3://{bkt}/two/renamed", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == data
    assert keys(cli, bkt) == []


def test_rm_recursive(cli, bkt, tmp_path):
    src = tmp_path / "many"
    for i in range(30):
        write(src / f"{i:02d}", i, seed=i)
    cli.run("s3", "sync", str(src), f"s3://{bkt}/p")
    cli.s3.put_object(Bucket=bkt, Key="keep", Body=b"123")
    out = cli.text("s3", "rm", f"s3://{bkt}/p", "--recursive")
    assert out.count("delete:") == 30
    assert keys(cli, bkt) == ["keep"]
    single = cli.text("s3", "rm", f"s3://{bkt}/keep")
    assert single.startswith("delete:") and keys(cli, bkt) == []


# ---- presign ------------------------------------------------------------------------------------

def test_presign(cli, bkt, tmp_path):
    data = write(tmp_path / "p.bin", 70_000, seed=9)
    cli.s3.put_object(Bucket=bkt, Key="shared file", Body=data)
    # The CLI presigns with SigV2 unless the profile asks for s3v4: both must work.
    v4_config = tmp_path / "config-v4"
    v4_config.write_text(BASE_CONFIG + "  signature_version = s3v4\n")
    v4_env = {**cli.env, "AWS_CONFIG_FILE": str(v4_config)}
    url = cli.text("s3", "presign", f"s3://{bkt}/shared file", "--expires-in", "300", env=v4_env).strip()
    assert "X-Amz-Signature=" in url
    with urllib.request.urlopen(url, timeout=30, context=cli.ssl_context()) as r:
        assert r.status == 200 and r.read() == data
    v2_url = cli.text("s3", "presign", f"s3://{bkt}/shared file").strip()  # the CLI's default
    assert "AWSAccessKeyId=" in v2_url
    with urllib.request.urlopen(v2_url, timeout=30, context=cli.ssl_context()) as r:
        assert r.status == 200 and r.read() == data
    curl = ["curl", "-sS", "--fail", v2_url]
    if cli.cluster.tls:
        curl[1:1] = ["--cacert", str(cli.cluster.ca_file)]
    assert subprocess.run(curl, capture_output=True, timeout=60).stdout == data


# ---- s3api --------------------------------------------------------------------------------------

def test_s3api_calls(cli, bkt, tmp_path):
    data = write(tmp_path / "body", 50_001, seed=10)
    put = cli.json("put-object", "--bucket", bkt, "--key", "api/obj", "--body", str(tmp_path / "body"),
                   "--metadata", "k1=v1", "--content-type", "application/x-test",
                   "--checksum-algorithm", "SHA256")
    assert put["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    head = cli.json("head-object", "--bucket", bkt, "--key", "api/obj", "--checksum-mode", "ENABLED")
    assert head["ContentLength"] == len(data)
    assert head["Metadata"] == {"k1": "v1"} and head["ContentType"] == "application/x-test"
    assert head["ChecksumSHA256"] == put["ChecksumSHA256"]
    got = cli.json("get-object", "--bucket", bkt, "--key", "api/obj", "--range", "bytes=100-199",
                   str(tmp_path / "part"))
    assert got["ContentRange"] == f"bytes 100-199/{len(data)}"
    assert (tmp_path / "part").read_bytes() == data[100:200]

    for i in range(12):
        cli.s3.put_object(Bucket=bkt, Key=f"api/k{i:02d}", Body=b"")
    page = cli.json("list-objects-v2", "--bucket", bkt, "--prefix", "api/k", "--max-keys", "5",
                    "--no-paginate")
    assert page["KeyCount"] == 5 and page["IsTruncated"] is True
    everything = cli.json("list-objects-v2", "--bucket", bkt, "--prefix", "api/", "--page-size", "5")
    assert [o["Key"] for o in everything["Contents"]] == \
        ["api/k%02d" % i for i in range(12)] + ["api/obj"]
    delimited = cli.json("list-objects-v2", "--bucket", bkt, "--delimiter", "/")
    assert delimited["CommonPrefixes"] == [{"Prefix": "api/"}]

    acl = cli.json("get-object-acl", "--bucket", bkt, "--key", "api/obj")
    assert acl["Owner"]["ID"] == cli.cluster.access_key
    assert [g["Permission"] for g in acl["Grants"]] == ["FULL_CONTROL"]
    missing = cli.run("s3api", "get-object-acl", "--bucket", bkt, "--key", "absent", ok=False)
    assert missing.returncode != 0 and b"NoSuchKey" in missing.stderr

    delete = {"Objects": [{"Key": f"api/k{i:02d}"} for i in range(12)] + [{"Key": "api/never"}]}
    result = cli.json("delete-objects", "--bucket", bkt, "--delete", json.dumps(delete))
    assert sorted(d["Key"] for d in result["Deleted"]) == sorted(o["Key"] for o in delete["Objects"])
    assert keys(cli, bkt) == ["api/obj"]
    quiet = cli.json("delete-objects", "--bucket", bkt,
                     "--delete", json.dumps({"Objects": [{"Key": "api/obj"}], "Quiet": True}))
    assert "Deleted" not in quiet and "Errors" not in quiet
    assert keys(cli, bkt) == []
    assert cli.json("get-bucket-location", "--bucket", bkt)["LocationConstraint"] is None
