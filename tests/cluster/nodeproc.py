"""Real storage-node processes for cluster tests and benchmarks.

    with NodeCluster(tmp_path, keys_dir=None) as cluster:
        a, b = cluster.start_nodes(2)            # running and answering PING
        cluster.addresses                        # {"n1": "tcp://127.0.0.1:PORT", ...}
        a.kill(); a.restart()                    # kill -9, then the same port and data dir

Each node runs `python -m storagenode` on a free loopback port with its own data dir and log file
under the base dir. Leaving the block stops every node (SIGTERM, then SIGKILL after a timeout),
whatever happened inside it. `node_cluster` is the same thing as a pytest fixture.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import zmq

from common import keys as cluster_keys
from common import wire
from common.nodeclient import configure_client_socket

REPO_ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NodeProc:
    """One node process; the port and data dir survive restarts."""

    def __init__(self, node_id: str, data_dir: Path, log_path: Path, *,
                 keys_dir: Path | None = None, map_size: int = 16 * MiB,
                 map_size_max: int = 1024 * MiB, sync: bool = True,
                 group_commit_max: int = 64) -> None:
        self.node_id = node_id
        self.data_dir = data_dir
        self.log_path = log_path
        self.keys_dir = keys_dir
        self.port = free_port()
        self._options = ["--map-size", str(map_size), "--map-size-max", str(map_size_max),
                         "--group-commit-max", str(group_commit_max)]
        if not sync:
            self._options.append("--no-sync")
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Spawn the process (see wait_ready)."""
        assert not self.running, f"{self.node_id} is already running"
        cmd = [sys.executable, "-m", "storagenode", "--id", self.node_id, "--listen", self.address,
               "--data-dir", str(self.data_dir), *self._options]
        if self.keys_dir is not None:
            cmd += ["--keys", str(self.keys_dir)]
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the node answers PING (over CURVE if it has keys)."""
        client_keys = (cluster_keys.load_client_keys(self.keys_dir)
                       if self.keys_dir is not None else None)
        deadline = time.monotonic() + timeout
        ctx = zmq.Context()
        sock = ctx.socket(zmq.DEALER)
        try:
            configure_client_socket(sock, client_keys)
            sock.connect(self.address)
            request_id = 0
            while time.monotonic() < deadline:
                if not self.running:
                    raise RuntimeError(f"node {self.node_id} exited with "
                                       f"{self.process and self.process.returncode}:\n{self.log_tail()}")
                request_id += 1
                try:
                    sock.send_multipart(wire.encode(wire.Op.PING, request_id), flags=zmq.NOBLOCK)
                except zmq.Again:        # not connected yet
                    time.sleep(0.05)
                    continue
                if sock.poll(250, zmq.POLLIN):
                    reply = wire.decode(sock.recv_multipart())
                    if reply.code == wire.Status.OK and reply.args.get("node_id") == self.node_id:
                        return
            raise TimeoutError(f"node {self.node_id} not ready in {timeout} s:\n{self.log_tail()}")
        finally:
            sock.close(linger=0)
            ctx.term()

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within timeout. Returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        """kill -9: no chance to close anything."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self, timeout: float = 30.0) -> None:
        self.start()
        self.wait_ready(timeout)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class NodeCluster:
    """Starts node processes under one base dir and always stops them on exit."""

    def __init__(self, base_dir: Path, *, keys_dir: Path | None = None) -> None:
        self.base_dir = Path(base_dir)
        self.keys_dir = keys_dir
        self.nodes: list[NodeProc] = []

    def __enter__(self) -> NodeCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def stop_all(self) -> None:
        for node in self.nodes:
            node.stop()

    @property
    def addresses(self) -> dict[str, str]:
        return {node.node_id: node.address for node in self.nodes}

    def add_node(self, node_id: str | None = None, **options: object) -> NodeProc:
        """A node that is not started yet (options: those of NodeProc)."""
        node_id = node_id or f"n{len(self.nodes) + 1}"
        data_dir = self.base_dir / node_id / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        options.setdefault("keys_dir", self.keys_dir)
        node = NodeProc(node_id, data_dir, self.base_dir / node_id / "node.log", **options)
        self.nodes.append(node)
        return node

    def start_nodes(self, count: int, ready_timeout: float = 30.0, **options: object
                    ) -> list[NodeProc]:
        """Start `count` new nodes at once and wait until all answer PING. A node that lost its
        port to another process in the meantime is moved to a fresh port once."""
        new = [self.add_node(**options) for _ in range(count)]
        for node in new:
            node.start()
        for node in new:
            try:
                node.wait_ready(ready_timeout)
            except RuntimeError:
                if "Address already in use" not in node.log_tail():
                    raise
                node.port = free_port()
                node.restart(ready_timeout)
        return new

    def start_node(self, node_id: str | None = None, ready_timeout: float = 30.0,
                   **options: object) -> NodeProc:
        node = self.add_node(node_id, **options)
        node.restart(ready_timeout)
        return node


@pytest.fixture
def node_cluster(tmp_path: Path) -> Iterator[NodeCluster]:
    with NodeCluster(tmp_path / "nodes") as cluster:
        yield cluster
