#!/usr/bin/env python3
"""Large objects through `cairn dev`: MB/s with the aws CLI and boto3, and the gateway's peak RSS.

    .venv/bin/python bench/large.py --size 2GiB            # one object up and down, both clients
    .venv/bin/python bench/large.py --size 256MiB --concurrent 16

The gateway streams (stripes in flight, never the whole object), so its peak RSS must not grow
with the object size. RSS is sampled every 100 ms over every gateway process (the supervisor and
its workers) and reported as the peak of their sum.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from s3 import start_cairn, stop  # noqa: E402  (bench/s3.py)


def parse_size(text: str) -> int:
    units = {"KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30}
    t = text.upper()
    for u, mult in units.items():
        if t.endswith(u):
            return int(float(t[: -len(u)]) * mult)
    return int(t)


def descendants(pid: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in parents.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def gateway_pids(dev_pid: int) -> list[int]:
    pids = []
    for p in descendants(dev_pid):
        try:
            cmd = Path(f"/proc/{p}/cmdline").read_bytes()
        except OSError:
            continue
        if b"gateway" in cmd or b"multiprocessing" in cmd:
            pids.append(p)
    return pids


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class RssSampler:
    def __init__(self, dev_pid: int):
        self.dev_pid = dev_pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, sum(rss_bytes(p) for p in gateway_pids(self.dev_pid)))
            time.sleep(0.1)

    def __enter__(self):
        self.peak = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._stop.clear()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def make_file(path: Path, size: int) -> str:
    block = os.urandom(64 << 20)
    md5 = hashlib.md5()
    with open(path, "wb") as f:
        left, i = size, 0
        while left:
            piece = block[: min(left, len(block))]
            piece = i.to_bytes(8, "big") + piece[8:] if len(piece) >= 8 else piece  # no two blocks alike
            f.write(piece)
            md5.update(piece)
            left -= len(piece)
            i += 1
    return md5.hexdigest()


def file_md5(path: Path) -> str:
    md5 = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            md5.update(chunk)
    return md5.hexdigest()


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1GiB")
    ap.add_argument("--concurrent", type=int, default=0, help="also run N concurrent boto3 uploads")
    ap.add_argument("--concurrent-size", default="256MiB")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "cairn-bench-large")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    size = parse_size(a.size)
    src = a.work / "object.bin"
    want = make_file(src, size)
    results = {"size": size}
    dev, url, ak, sk = start_cairn(a.work, a.workers)
    try:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config
        s3 = boto3.client("s3", endpoint_url=url, aws_access_key_id=ak, aws_secret_access_key=sk,
                          region_name="us-east-1", config=Config(s3={"addressing_style": "path"}))
        s3.create_bucket(Bucket="large")
        with RssSampler(dev.pid) as idle:
            time.sleep(1)
        results["gateway_rss_idle_MiB"] = round(idle.peak / 2**20, 1)
        env = {**os.environ, "AWS_ACCESS_KEY_ID": ak, "AWS_SECRET_ACCESS_KEY": sk,
               "AWS_DEFAULT_REGION": "us-east-1"}
        aws = ["aws", "--endpoint-url", url, "s3"]
        dst = a.work / "back.bin"
        for label, up, down in [
            ("awscli", lambda: subprocess.run([*aws, "cp", str(src), "s3://large/cli.bin"], env=env,
                                              check=True, capture_output=True),
             lambda: subprocess.run([*aws, "cp", "s3://large/cli.bin", str(dst)], env=env, check=True,
                                    capture_output=True)),
            ("boto3", lambda: s3.upload_file(str(src), "large", "boto3.bin",
                                             Config=TransferConfig(max_concurrency=10)),
             lambda: s3.download_file("large", "boto3.bin", str(dst),
                                      Config=TransferConfig(max_concurrency=10))),
        ]:
            with RssSampler(dev.pid) as put_rss:
                put_s = timed(up)
            with RssSampler(dev.pid) as get_rss:
                get_s = timed(down)
            ok = file_md5(dst) == want
            dst.unlink()
            results[label] = {"put_MBps": round(size / put_s / 1e6, 1), "get_MBps": round(size / get_s / 1e6, 1),
                              "put_peak_rss_MiB": round(put_rss.peak / 2**20, 1),
                              "get_peak_rss_MiB": round(get_rss.peak / 2**20, 1), "bytes_ok": ok}
            print(label, results[label], flush=True)
            if not ok:
                raise SystemExit(f"{label}: downloaded bytes differ")
        if a.concurrent:
            csize = parse_size(a.concurrent_size)
            csrc = a.work / "conc.bin"
            make_file(csrc, csize)
            with RssSampler(dev.pid) as conc_rss:
                t = timed(lambda: list(ThreadPoolExecutor(a.concurrent).map(
                    lambda i: s3.upload_file(str(csrc), "large", f"c{i}",
                                             Config=TransferConfig(multipart_threshold=1 << 40)),
                    range(a.concurrent))))
            results["concurrent"] = {"uploads": a.concurrent, "each": csize,
                                     "aggregate_MBps": round(a.concurrent * csize / t / 1e6, 1),
                                     "peak_rss_MiB": round(conc_rss.peak / 2**20, 1)}
            print("concurrent", results["concurrent"], flush=True)
            csrc.unlink()
    finally:
        stop(dev)
        src.unlink(missing_ok=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
