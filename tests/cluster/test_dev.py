"""`cairn dev` as a user runs it: start, use with the aws CLI, stop, restart with data intact."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.s3 import free_port_block
from tests.harness import REPO, free_port

pytestmark = pytest.mark.cluster


def start_dev(data_dir: Path, port: int, node_port: int, log: Path, *extra: str) -> subprocess.Popen:
    logf = open(log, "ab")
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "dev", "--data-dir", str(data_dir),
                             "--port", str(port), "--node-base-port", str(node_port), "--workers", "1",
                             *extra],
                            cwd=REPO, stdout=logf, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    logf.close()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if "Ctrl-C stops the cluster" in log.read_text(errors="replace"):
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    proc.kill()
    raise AssertionError(f"cairn dev did not start:\n{log.read_text(errors='replace')[-4000:]}")


def children_of(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def aws(data_dir: Path, port: int, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AWS_SHARED_CREDENTIALS_FILE": str(data_dir / "credentials")}
    env.pop("AWS_PROFILE", None)
    env.pop("AWS_ACCESS_KEY_ID", None)
    env.pop("AWS_SECRET_ACCESS_KEY", None)
    return subprocess.run(["aws", "--profile", "cairn", "--endpoint-url", f"http://127.0.0.1:{port}", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def wait_gone(pids: set[int], timeout: float = 20) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.2)
    return {p for p in pids if alive(p)}


def test_dev_cluster_lifecycle(tmp_path):
    data_dir, log = tmp_path / "cairn-data", tmp_path / "dev.log"
    port, node_port = free_port(), free_port_block(8)
    payload = tmp_path / "hello.bin"
    payload.write_bytes(os.urandom(300_000))

    proc = start_dev(data_dir, port, node_port, log)
    banner = log.read_text()
    access = re.search(r"access key:\s+(\S+)", banner).group(1)
    assert access in (data_dir / "credentials").read_text()
    assert re.search(r"secret key:\s+\S+", banner)
    assert "aws --profile cairn --endpoint-url" in banner
    children = children_of(proc.pid)
    assert len(children) == 7  # six storage nodes and a gateway
    try:
        assert aws(data_dir, port, "s3", "mb", "s3://demo").returncode == 0
        up = aws(data_dir, port, "s3", "cp", str(payload), "s3://demo/hello.bin")
        assert up.returncode == 0, up.stderr
        listing = aws(data_dir, port, "s3", "ls", "s3://demo")
        assert "hello.bin" in listing.stdout and "300000" in listing.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode == 0
    assert wait_gone(children) == set(), "cairn dev left processes behind"

    # Restart on the same data dir: same key, same data.
    proc = start_dev(data_dir, port, node_port, log)
    children = children_of(proc.pid)
    try:
        down = tmp_path / "back.bin"
        got = aws(data_dir, port, "s3", "cp", "s3://demo/hello.bin", str(down))
        assert got.returncode == 0, got.stderr
        assert down.read_bytes() == payload.read_bytes()
    finally:
        # Even a SIGKILL of `cairn dev` leaves no orphans: children die with their parent.
        proc.kill()
        proc.wait(10)
    assert wait_gone(children) == set(), "children outlived a killed cairn dev"


def test_dev_cluster_without_curve_says_so_and_works(tmp_path):
    data_dir, log = tmp_path / "cairn-data", tmp_path / "dev.log"
    port, node_port = free_port(), free_port_block(8)
    payload = tmp_path / "plain.bin"
    payload.write_bytes(os.urandom(200_000))
    proc = start_dev(data_dir, port, node_port, log, "--no-curve")
    children = children_of(proc.pid)
    try:
        assert "plain TCP (--no-curve)" in log.read_text()
        cmdlines = [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") for pid in children]
        assert len(cmdlines) == 7 and not any(b"--keys" in c for c in cmdlines)
        assert "curve OFF" in log.read_text()           # each node logs how it serves
        assert aws(data_dir, port, "s3", "mb", "s3://plain").returncode == 0
        assert aws(data_dir, port, "s3", "cp", str(payload), "s3://plain/p.bin").returncode == 0
        down = tmp_path / "back.bin"
        assert aws(data_dir, port, "s3", "cp", "s3://plain/p.bin", str(down)).returncode == 0
        assert down.read_bytes() == payload.read_bytes()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert wait_gone(children) == set()
