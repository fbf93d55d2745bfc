"""A real Cairn cluster for tests: storage nodes and gateways as separate `cairn` processes.

    with LocalCluster(tmp_path) as c:        # 6 nodes in 3 zones, RS(4,2), CurveZMQ on, 1 gateway
        s3 = c.boto3_client()
        c.kill_node("n3")                    # kill -9
        c.start_node("n3")                   # same port, same data dir

Everything is started through the real command line (the same subcommands docker-compose
uses) and stopped on exit, whatever happened inside the block.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import ssl
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(*args: str, timeout: float = 60) -> str:
    out = subprocess.run([*CLI, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"cairn {' '.join(args)} failed: {out.stdout}\n{out.stderr}")
    return out.stdout


@dataclass
class Proc:
    argv: list[str]
    log: Path
    popen: subprocess.Popen | None = None

    def start(self) -> None:
        logf = open(self.log, "ab")
        self.popen = subprocess.Popen(self.argv, cwd=REPO, stdout=logf, stderr=subprocess.STDOUT,
                                      env={**os.environ, "PYTHONUNBUFFERED": "1"})
        logf.close()

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.popen = None


@dataclass
class LocalCluster:
    base: Path
    nodes: int = 6
    zones: int = 3
    k: int = 4
    m: int = 2
    gateways: int = 1
    tls: bool = False
    workers: int = 1
    domains: tuple[str, ...] = ()  # virtual-hosted style: each becomes a gateway --domain
    # Extra command-line arguments for gateway i, e.g. {1: ["--clock-offset-ms", "-600000"]}.
    gateway_args: dict[int, list[str]] = field(default_factory=dict)
    node_procs: dict[str, Proc] = field(default_factory=dict)
    gateway_procs: list[Proc] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    access_key: str = ""
    secret_key: str = ""

    @property
    def ring_path(self) -> Path:
        return self.base / "ring.json"

    @property
    def keys_dir(self) -> Path:
        return self.base / "keys"

    @property
    def ca_file(self) -> Path | None:
        return self.base / "tls" / "cert.pem" if self.tls else None

    def endpoint(self, i: int = 0) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.ports[i]}"

    def __enter__(self) -> "LocalCluster":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        run_cli("keys", "generate", "--dir", str(self.keys_dir))
        specs = []
        for i in range(self.nodes):
            node_id = f"n{i + 1}"
            port = free_port()
            specs += ["--node", f"id={node_id},address=tcp://127.0.0.1:{port},zone=z{i % self.zones + 1},weight=1"]
            self.node_procs[node_id] = Proc(
                [*CLI, "node", "--id", node_id, "--listen", f"tcp://127.0.0.1:{port}",
                 "--data-dir", str(self.base / "nodes" / node_id), "--keys", str(self.keys_dir),
                 "--map-size", "64MiB", "--map-size-max", "4GiB"],
                self.base / f"{node_id}.log")
        run_cli("ring", "create", "--out", str(self.ring_path), "--k", str(self.k), "--m", str(self.m),
                "--part-power", "8", "--seed", "7", *specs)
        for proc in self.node_procs.values():
            proc.start()
        out = run_cli("key", "create", "--name", "test", "--ring", str(self.ring_path),
                      "--keys", str(self.keys_dir))
        fields = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
        self.access_key, self.secret_key = fields["access key"], fields["secret key"]
        if self.tls:
            from common.tls import self_signed_certificate
            (self.base / "tls").mkdir(exist_ok=True)
            cert, key = self_signed_certificate(["localhost", "127.0.0.1"])
            (self.base / "tls" / "cert.pem").write_bytes(cert)
            (self.base / "tls" / "key.pem").write_bytes(key)
        for i in range(self.gateways):
            self.ports.append(free_port())
            self.gateway_procs.append(Proc(self._gateway_argv(i), self.base / f"gateway{i}.log"))
            self.gateway_procs[-1].start()
        for i in range(self.gateways):
            self.wait_ready(i)

    def _gateway_argv(self, i: int) -> list[str]:
        argv = [*CLI, "gateway", "--ring", str(self.ring_path), "--keys", str(self.keys_dir),
                "--port", str(self.ports[i]), "--workers", str(self.workers)]
        for domain in self.domains:
            argv += ["--domain", domain]
        argv += self.gateway_args.get(i, [])
        if self.tls:
            argv += ["--tls-cert", str(self.base / "tls" / "cert.pem"),
                     "--tls-key", str(self.base / "tls" / "key.pem")]
        return argv

    def wait_ready(self, i: int = 0, timeout: float = 60) -> None:
        ctx = ssl.create_default_context(cafile=str(self.ca_file)) if self.tls else None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.gateway_procs[i].alive():
                raise RuntimeError(f"gateway {i} exited:\n{self.gateway_log(i)}")
            try:
                with urllib.request.urlopen(f"{self.endpoint(i)}/-/health/ready", timeout=2,
                                            context=ctx) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gateway {i} not ready:\n{self.gateway_log(i)}")

    def gateway_log(self, i: int = 0) -> str:
        path = self.base / f"gateway{i}.log"
        return path.read_text(errors="replace")[-5000:] if path.exists() else ""

    def kill_node(self, node_id: str, sig: int = signal.SIGKILL) -> None:
        self.node_procs[node_id].stop(sig)

    def start_node(self, node_id: str) -> None:
        self.node_procs[node_id].start()

    def stop(self) -> None:
        for proc in self.gateway_procs:
            proc.stop()
        for proc in self.node_procs.values():
            proc.stop()

    # ---- clients ------------------------------------------------------------------------------
    def boto3_client(self, i: int = 0, *, checksums: str = "when_supported", access_key: str | None = None,
                     secret_key: str | None = None, **config):
        import boto3
        from botocore.config import Config
        return boto3.client(
            "s3", endpoint_url=self.endpoint(i), region_name="us-east-1",
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            verify=str(self.ca_file) if self.tls else None,
            config=Config(request_checksum_calculation=checksums,
                          response_checksum_validation=checksums,
                          retries={"max_attempts": 1, "mode": "standard"},
                          s3={"addressing_style": "path"},
                          **{"signature_version": "s3v4", **config}))

    def aws_env(self) -> dict[str, str]:
        creds = self.base / "credentials"
        creds.write_text(f"[cairn]\naws_access_key_id = {self.access_key}\n"
                         f"aws_secret_access_key = {self.secret_key}\n")
        env = {**os.environ, "AWS_SHARED_CREDENTIALS_FILE": str(creds), "AWS_PROFILE": "cairn",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": "/dev/null"}
        if self.tls:
            env["AWS_CA_BUNDLE"] = str(self.ca_file)
        return env
