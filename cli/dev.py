"""`cairn dev`: a whole local cluster as separate processes, stopped cleanly on Ctrl-C/SIGTERM.

Layout of the data directory (kept across restarts, so data survives):
    ring.json            the ring (6 nodes in 3 zones by default, RS(4,2))
    keys/                CurveZMQ keys for node <-> gateway traffic
    nodes/<id>/          each node's LMDB environment
    credentials          the dev access key, AWS shared-credentials format, profile "cairn"
    tls/                 self-signed certificate (with --tls)
"""
from __future__ import annotations

import argparse
import asyncio
import configparser
import ctypes
import os
import signal
import subprocess
import sys
import time
import urllib.request
import ssl
from pathlib import Path

from cli import admin
from common.keys import generate_cluster_keys
from ring.builder import build_ring
from ring.model import Node
from ring.ringfile import load as load_ring, save as save_ring

PROFILE = "cairn"


def _die_with_parent() -> None:
    """Runs in each child before exec: if `cairn dev` dies, even by SIGKILL, the child gets SIGTERM."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def ensure_ring(data_dir: Path, args: argparse.Namespace):
    path = data_dir / "ring.json"
    if path.exists():
        return load_ring(path)
    nodes = [Node(id=f"n{i + 1}", address=f"tcp://127.0.0.1:{args.node_base_port + i}",
                  zone=f"z{i % args.zones + 1}", weight=1.0) for i in range(args.nodes)]
    ring = build_ring(nodes, k=args.k, m=args.m, part_power=10, seed=1)
    save_ring(ring, path)
    return ring


def ensure_tls(data_dir: Path) -> tuple[Path, Path]:
    tls = data_dir / "tls"
    cert, key = tls / "cert.pem", tls / "key.pem"
    if cert.exists() and key.exists():
        return cert, key
    from common.tls import self_signed_certificate
    tls.mkdir(parents=True, exist_ok=True)
    cert_pem, key_pem = self_signed_certificate(["localhost", "127.0.0.1"])
    key.write_bytes(key_pem)
    key.chmod(0o600)
    cert.write_bytes(cert_pem)
    return cert, key


def read_credentials(path: Path) -> tuple[str, str] | None:
    if not path.exists():
        return None
    cfg = configparser.ConfigParser()
    cfg.read(path)
    if PROFILE not in cfg:
        return None
    return cfg[PROFILE]["aws_access_key_id"], cfg[PROFILE]["aws_secret_access_key"]


def write_credentials(path: Path, access: str, secret: str) -> None:
    path.write_text(f"[{PROFILE}]\naws_access_key_id = {access}\naws_secret_access_key = {secret}\n")
    path.chmod(0o600)


async def ensure_access_key(data_dir: Path, keys_dir: Path | None) -> tuple[str, str]:
    creds_path = data_dir / "credentials"
    creds = read_credentials(creds_path) or admin.new_access_key()
    deadline = time.monotonic() + 30
    while True:
        try:
            async with admin.open_catalog(data_dir / "ring.json", keys_dir, timeout=2.0) as (cat, _, _):
                existing = await cat.get_access_key(creds[0])
                if existing is None:
                    await admin.create_key(cat, "dev", creds[0], creds[1])
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
    write_credentials(creds_path, *creds)
    return creds


def wait_http(url: str, timeout: float, procs: list[subprocess.Popen], cafile: Path | None) -> None:
    ctx = ssl.create_default_context(cafile=str(cafile)) if cafile else None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise SystemExit("a cluster process exited during start-up (see the log above)")
        try:
            with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the gateway did not become ready at {url}")


def run_dev(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    keys_dir = data_dir / "keys"
    generate_cluster_keys(keys_dir)
    # Without CURVE, nodes get no --keys (they accept any peer) and the gateway none either.
    transport_keys = [] if args.no_curve else ["--keys", str(keys_dir)]
    ring = ensure_ring(data_dir, args)
    cli = [sys.executable, "-m", "cli.main"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs: list[subprocess.Popen] = []

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        for node in ring.nodes:
            procs.append(subprocess.Popen(
                [*cli, "node", "--id", node.id, "--listen", node.address,
                 "--data-dir", str(data_dir / "nodes" / node.id), *transport_keys,
                 "--map-size-max", str(args.map_size_max)],
                env=env, preexec_fn=_die_with_parent))
        access, secret = asyncio.run(ensure_access_key(data_dir, None if args.no_curve else keys_dir))
        gw = [*cli, "gateway", "--ring", str(data_dir / "ring.json"),
              *(transport_keys or ["--no-curve"]),
              "--host", args.host, "--port", str(args.port), "--workers", str(args.workers)]
        cafile = None
        if args.tls:
            cert, key = ensure_tls(data_dir)
            gw += ["--tls-cert", str(cert), "--tls-key", str(key)]
            cafile = cert
        procs.append(subprocess.Popen(gw, env=env, preexec_fn=_die_with_parent))
        scheme = "https" if args.tls else "http"
        endpoint = f"{scheme}://{args.host}:{args.port}"
        wait_http(f"{endpoint}/-/health/ready", 60, procs, cafile)
        print_banner(endpoint, access, secret, data_dir, cafile, ring)
        if args.no_curve:
            print("WARNING: gateway <-> node traffic is plain TCP (--no-curve): unauthenticated "
                  "and unencrypted", flush=True)
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        print("a cluster process exited; stopping the cluster", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping the cluster ...", flush=True)
        return 0
    finally:
        shutdown(procs)


def shutdown(procs: list[subprocess.Popen], grace: float = 10.0) -> None:
    for p in reversed(procs):  # gateway first, then the nodes
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def print_banner(endpoint: str, access: str, secret: str, data_dir: Path, cafile: Path | None, ring) -> None:
    creds = data_dir / "credentials"
    trust = f"AWS_CA_BUNDLE={cafile} " if cafile else ""
    print(f"""
Cairn is running: {len(ring.nodes)} storage nodes in {len({n.zone for n in ring.nodes})} zones, RS({ring.k},{ring.m})
  endpoint:    {endpoint}
  access key:  {access}
  secret key:  {secret}
  data:        {data_dir}
  credentials: {creds} (profile {PROFILE})
{f"  TLS: self-signed; trust it with AWS_CA_BUNDLE={cafile} (or --ca-bundle / --ca-cert)" if cafile else ""}
Try:
  {trust}AWS_SHARED_CREDENTIALS_FILE={creds} aws --profile {PROFILE} --endpoint-url {endpoint} s3 mb s3://demo
  {trust}AWS_SHARED_CREDENTIALS_FILE={creds} aws --profile {PROFILE} --endpoint-url {endpoint} s3 cp README.md s3://demo/
  {trust}AWS_SHARED_CREDENTIALS_FILE={creds} aws --profile {PROFILE} --endpoint-url {endpoint} s3 ls s3://demo

Ctrl-C stops the cluster (data stays in {data_dir}).
""", flush=True)
