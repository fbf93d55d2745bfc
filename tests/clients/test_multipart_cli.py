"""The aws CLI (v1) with multipart transfers, against a real Cairn cluster over HTTP and TLS.

The CLI's own defaults: objects of 8 MiB and more go up in 8 MiB parts, up to 10 requests at once,
and come down as parallel 8 MiB ranges. Each test checks the exit code, the output, the ETag
(md5 of the part md5s, "-N", computed here) and every byte moved.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import subprocess
import sys
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.clients, pytest.mark.cluster]

AWS = Path(sys.executable).parent / "aws"
MiB = 1 << 20
PART = 8 * MiB
CONFIG = ("[profile cairn]\nregion = us-east-1\noutput = json\nsignature_version = s3v4\n"
          "s3 =\n  multipart_threshold = 8MB\n  multipart_chunksize = 8MB\n"
          "  max_concurrent_requests = 10\n  signature_version = s3v4\n")


@dataclass
class Cli:
    cluster: object
    env: dict[str, str]

    def run(self, *args: str, gateway: int = 0, timeout: float = 300) -> str:
        return self.process(*args, gateway=gateway, timeout=timeout).stdout.decode()

    def process(self, *args: str, gateway: int = 0, timeout: float = 300) -> subprocess.CompletedProcess:
        argv = [str(AWS), *args, "--endpoint-url", self.cluster.endpoint(gateway)]
        if args[0] == "s3" and args[1] in ("cp", "mv", "sync"):
            argv.append("--no-progress")
        out = subprocess.run(argv, env=self.env, capture_output=True, timeout=timeout)
        if out.returncode != 0:
            stderr = out.stderr.decode(errors="replace")
            raise AssertionError(f"aws {' '.join(args)} exited {out.returncode}:\n"
                                 f"{out.stdout.decode(errors='replace')}\n{stderr[-5000:]}\n"
                                 f"{self.cluster.gateway_log(gateway)}")
        return out

    def api(self, *args: str, gateway: int = 0) -> dict:
        out = self.run("s3api", *args, gateway=gateway)
        return json.loads(out) if out.strip() else {}

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        out = self.api("list-objects-v2", "--bucket", bucket, "--prefix", prefix)
        return [o["Key"] for o in out.get("Contents", [])]


def _cli(cluster, tmp_path_factory) -> Cli:
    config = tmp_path_factory.mktemp("aws") / "config"
    config.write_text(CONFIG)
    return Cli(cluster, {**cluster.aws_env(), "AWS_CONFIG_FILE": str(config)})


@pytest.fixture(params=["http", "tls"])
def cli(request, tmp_path_factory) -> Cli:
    """Transfers run both ways: over TLS the CLI sends parts as aws-chunked with a CRC trailer."""
    return _cli(request.getfixturevalue("cluster" if request.param == "http" else "tls_cluster"),
                tmp_path_factory)


@pytest.fixture
def http_cli(cluster, tmp_path_factory) -> Cli:
    """For calls whose requests do not depend on the transport (each CLI start costs seconds)."""
    return _cli(cluster, tmp_path_factory)


def _bucket(cli: Cli) -> str:
    name = f"mpcli-{uuid.uuid4().hex[:12]}"
    cli.run("s3", "mb", f"s3://{name}")
    return name


@pytest.fixture
def bkt(cli) -> str:
    return _bucket(cli)


@pytest.fixture
def http_bkt(http_cli) -> str:
    return _bucket(http_cli)


def write(path: Path, size: int, seed: int) -> bytes:
    data = random.Random(seed).randbytes(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def multipart_etag(data: bytes, part: int = PART) -> str:
    md5s = [hashlib.md5(data[i:i + part]).digest() for i in range(0, len(data), part)]
    return f'"{hashlib.md5(b"".join(md5s)).hexdigest()}-{len(md5s)}"'


def composite_crc32(data: bytes, part: int = PART) -> str:
    crcs = b"".join(zlib.crc32(data[i:i + part]).to_bytes(4, "big") for i in range(0, len(data), part))
    count = -(-len(data) // part)
    return f"{base64.b64encode(zlib.crc32(crcs).to_bytes(4, 'big')).decode()}-{count}"


def max_in_flight(debug_log: str, operation: str) -> int:
    """The most `operation` requests the CLI had outstanding at once, from its --debug log: a
    worker thread is busy from "Making request" until botocore's needs-retry event for it."""
    busy: set[str] = set()
    most = 0
    for line in debug_log.splitlines():
        fields = line.split(" - ")
        if len(fields) < 4:
            continue
        if f"Making request for OperationModel(name={operation})" in line:
            busy.add(fields[1])
            most = max(most, len(busy))
        elif f"Event needs-retry.s3.{operation}" in line:
            busy.discard(fields[1])
    return most


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_cp_100mb_up_and_down(cli, bkt, tmp_path):
    data = write(tmp_path / "big.bin", 100_000_000, seed=1)
    out = cli.process("s3", "cp", str(tmp_path / "big.bin"), f"s3://{bkt}/dir/big.bin", "--debug")
    assert out.stdout.startswith(b"upload:")
    debug = out.stderr.decode(errors="replace")
    assert debug.count("Making request for OperationModel(name=UploadPart)") == 12
    assert max_in_flight(debug, "UploadPart") >= 4  # the CLI's 10 workers; measured: 10
    head = cli.api("head-object", "--bucket", bkt, "--key", "dir/big.bin", "--checksum-mode", "ENABLED")
    assert head["ContentLength"] == len(data)
    assert head["ETag"] == multipart_etag(data) and head["ETag"].endswith('-12"')
    # The CLI's default checksum behaviour asks for CRC32 on CreateMultipartUpload.
    assert head["ChecksumCRC32"] == composite_crc32(data)
    assert "Uploads" not in cli.api("list-multipart-uploads", "--bucket", bkt)

    last = len(cli.cluster.ports) - 1  # the other gateway, when the cluster has two
    out = cli.run("s3", "cp", f"s3://{bkt}/dir/big.bin", str(tmp_path / "back.bin"), gateway=last)
    assert out.startswith("download:")
    back = (tmp_path / "back.bin").read_bytes()
    assert len(back) == len(data) and back == data


def test_sync_both_ways_with_multipart_files(cli, bkt, tmp_path):
    local = tmp_path / "local"
    write(local / "small.txt", 1000, seed=2)
    write(local / "empty", 0, seed=3)
    nine = write(local / "media" / "nine.bin", 9 * MiB + 1, seed=4)
    seventeen = write(local / "media" / "deep" / "seventeen.bin", 17 * MiB + 3, seed=5)
    out = cli.run("s3", "sync", str(local), f"s3://{bkt}/backup")
    assert out.count("upload:") == 4
    assert sorted(cli.keys(bkt, "backup/")) == ["backup/empty", "backup/media/deep/seventeen.bin",
                                                "backup/media/nine.bin", "backup/small.txt"]
    listed = {o["Key"]: o["ETag"] for o in cli.api("list-objects-v2", "--bucket", bkt)["Contents"]}
    assert listed["backup/media/nine.bin"] == multipart_etag(nine)          # 2 parts
    assert listed["backup/media/deep/seventeen.bin"] == multipart_etag(seventeen)  # 3 parts
    assert cli.run("s3", "sync", str(local), f"s3://{bkt}/backup") == ""  # nothing changed

    back = tmp_path / "back"
    out = cli.run("s3", "sync", f"s3://{bkt}/backup", str(back))
    assert out.count("download:") == 4
    assert tree(back) == tree(local)

    write(local / "media" / "nine.bin", 9 * MiB + 2, seed=6)  # new size: sent again
    out = cli.run("s3", "sync", str(local), f"s3://{bkt}/backup")
    assert [line.split(":")[0] for line in out.splitlines()] == ["upload"]
    cli.run("s3", "sync", f"s3://{bkt}/backup", str(back))
    assert tree(back) == tree(local)


def test_mv_multipart_objects(cli, bkt, tmp_path):
    data = write(tmp_path / "m.bin", 10 * MiB + 7, seed=7)
    cli.run("s3", "mv", str(tmp_path / "m.bin"), f"s3://{bkt}/one")
    assert not (tmp_path / "m.bin").exists()
    assert cli.api("head-object", "--bucket", bkt, "--key", "one")["ETag"] == multipart_etag(data)
    # Above the threshold, an S3-to-S3 move is a multipart copy (UploadPartCopy with ranges).
    cli.run("s3", "mv", f"s3://{bkt}/one", f"s3://{bkt}/two/renamed")
    assert cli.keys(bkt) == ["two/renamed"]
    head = cli.api("head-object", "--bucket", bkt, "--key", "two/renamed")
    assert head["ContentLength"] == len(data) and head["ETag"] == multipart_etag(data)
    cli.run("s3", "mv", f"s3://{bkt}/two/renamed", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == data
    assert cli.keys(bkt) == []


def test_rm_recursive_with_multipart_objects(http_cli, http_bkt, tmp_path):
    cli, bkt = http_cli, http_bkt
    src = tmp_path / "p"
    for i in range(5):
        write(src / f"small{i}", 10 + i, seed=10 + i)
    write(src / "large", 8 * MiB + 1, seed=20)
    cli.run("s3", "sync", str(src), f"s3://{bkt}/p")
    write(tmp_path / "keep", 3, seed=21)
    cli.run("s3", "cp", str(tmp_path / "keep"), f"s3://{bkt}/keep")
    out = cli.run("s3", "rm", f"s3://{bkt}/p", "--recursive")
    assert out.count("delete:") == 6
    assert cli.keys(bkt) == ["keep"]


def test_presign_and_curl(cli, bkt, tmp_path):
    data = write(tmp_path / "p.bin", 12 * MiB + 5, seed=30)
    cli.run("s3", "cp", str(tmp_path / "p.bin"), f"s3://{bkt}/shared file.bin")
    url = cli.run("s3", "presign", f"s3://{bkt}/shared file.bin", "--expires-in", "300").strip()
    assert "X-Amz-Signature=" in url
    argv = ["curl", "-sS", "--fail", "-o", str(tmp_path / "got.bin"), "-D", str(tmp_path / "headers"), url]
    if cli.cluster.ca_file:
        argv[1:1] = ["--cacert", str(cli.cluster.ca_file)]
    subprocess.run(argv, check=True, timeout=120)
    assert (tmp_path / "got.bin").read_bytes() == data
    headers = (tmp_path / "headers").read_text().lower()
    assert f"etag: {multipart_etag(data)}" in headers
    argv[argv.index(url):] = ["-r", f"{PART}-{PART + 99}", url]  # a range across the part boundary
    subprocess.run(argv, check=True, timeout=120)
    assert (tmp_path / "got.bin").read_bytes() == data[PART:PART + 100]


def test_s3api_multipart_calls(http_cli, http_bkt, tmp_path):
    cli, bkt = http_cli, http_bkt
    first = write(tmp_path / "part1", 5 * MiB, seed=40)
    second = write(tmp_path / "part2", 1234, seed=41)
    created = cli.api("create-multipart-upload", "--bucket", bkt, "--key", "api/obj",
                      "--content-type", "application/x-mp", "--metadata", "k=v")
    upload_id = created["UploadId"]
    doomed = cli.api("create-multipart-upload", "--bucket", bkt, "--key", "api/doomed")["UploadId"]
    etags = []
    for number, path in ((1, "part1"), (2, "part2")):
        etags.append(cli.api("upload-part", "--bucket", bkt, "--key", "api/obj", "--upload-id", upload_id,
                             "--part-number", str(number), "--body", str(tmp_path / path))["ETag"])
    assert etags == [f'"{hashlib.md5(first).hexdigest()}"', f'"{hashlib.md5(second).hexdigest()}"']
    listed = cli.api("list-multipart-uploads", "--bucket", bkt, "--prefix", "api/")
    assert sorted((u["Key"], u["UploadId"]) for u in listed["Uploads"]) == \
        [("api/doomed", doomed), ("api/obj", upload_id)]
    parts = cli.api("list-parts", "--bucket", bkt, "--key", "api/obj", "--upload-id", upload_id)
    assert [(p["PartNumber"], p["Size"]) for p in parts["Parts"]] == [(1, len(first)), (2, len(second))]

    cli.run("s3api", "abort-multipart-upload", "--bucket", bkt, "--key", "api/doomed", "--upload-id", doomed)
    listed = cli.api("list-multipart-uploads", "--bucket", bkt)
    assert [(u["Key"], u["UploadId"]) for u in listed["Uploads"]] == [("api/obj", upload_id)]

    spec = tmp_path / "parts.json"
    spec.write_text(json.dumps({"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]}))
    done = cli.api("complete-multipart-upload", "--bucket", bkt, "--key", "api/obj", "--upload-id",
                   upload_id, "--multipart-upload", f"file://{spec}")
    assert done["ETag"] == multipart_etag(first + second, part=5 * MiB)
    assert "Uploads" not in cli.api("list-multipart-uploads", "--bucket", bkt)
    cli.api("get-object", "--bucket", bkt, "--key", "api/obj", str(tmp_path / "out"))
    assert (tmp_path / "out").read_bytes() == first + second
    head = cli.api("head-object", "--bucket", bkt, "--key", "api/obj", "--part-number", "2")
    assert (head["ContentLength"], head["PartsCount"]) == (len(second), 2)
    assert (head["ContentType"], head["Metadata"]) == ("application/x-mp", {"k": "v"})
