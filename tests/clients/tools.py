"""Shared helpers for the real-tool tests (restic, rclone, s3cmd): run a tool with a bounded
timeout and a failure message that carries its output and the gateway's log, build a deterministic
tree of files, and compare trees byte for byte.

    tool = Tool(cluster, env={"RESTIC_PASSWORD": "pw"})
    tool.run("restic", "init")                      # raises AssertionError with output + gateway log
    make_tree(tmp_path / "src", seed=1, files=200, big=[20 * MiB])
    assert_same_tree(tmp_path / "src", tmp_path / "restored")
"""
from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

KiB = 1 << 10
MiB = 1 << 20

# Variables that point a tool at another CA bundle, region or credentials than the test's own.
# rclone 1.60 fails outright when AWS_CA_BUNDLE is set together with --ca-cert.
_FOREIGN_ENV = ("AWS_CA_BUNDLE", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE",
                "AWS_SHARED_CREDENTIALS_FILE", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION", "RCLONE_CONFIG",
                "RESTIC_REPOSITORY", "RESTIC_PASSWORD", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy",
                "https_proxy")


def require(program: str) -> str:
    """The tool's path; fails (never skips) when it is missing: scripts/install-tools.sh installs it."""
    path = shutil.which(program)
    if path is None:
        pytest.fail(f"{program} is not installed: run scripts/install-tools.sh")
    return path


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_ENV}
    env.update(extra)
    return env


@dataclass
class Tool:
    """One client program bound to one cluster: `run` starts it with a bounded timeout."""
    cluster: object
    program: str
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = 90

    def run(self, *args: str, ok: bool = True, timeout: float | None = None, cwd: Path | None = None,
            stdin: bytes | None = None) -> subprocess.CompletedProcess:
        argv = [require(self.program), *args]
        feed = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
        try:
            out = subprocess.run(argv, env=clean_env(**self.env), capture_output=True, cwd=cwd,
                                 timeout=timeout or self.timeout, **feed)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"{self._describe(args)} timed out after {exc.timeout}s:\n"
                                 f"{_text(exc.stdout)}\n{_text(exc.stderr)}\n"
                                 f"{self.cluster.gateway_log(0)}") from None
        if ok and out.returncode != 0:
            raise AssertionError(f"{self._describe(args)} exited {out.returncode}:\n"
                                 f"{_text(out.stdout)[-4000:]}\n{_text(out.stderr)[-4000:]}\n"
                                 f"--- gateway log ---\n{self.cluster.gateway_log(0)}")
        return out

    def text(self, *args: str, **kw) -> str:
        return self.run(*args, **kw).stdout.decode()

    def _describe(self, args: tuple[str, ...]) -> str:
        return " ".join([self.program, *args])


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")


# ---- trees ----------------------------------------------------------------------------------------

def _small_size(rng: random.Random) -> int:
    """Mostly small files, some empty, some around the gateway's inline and stripe limits."""
    roll = rng.random()
    if roll < 0.05:
        return 0
    if roll < 0.70:
        return rng.randint(1, 4 * KiB)
    if roll < 0.95:
        return rng.randint(4 * KiB, 128 * KiB)
    return rng.randint(128 * KiB, 2 * MiB)


def make_tree(root: Path, *, seed: int, files: int = 200, big: tuple[int, ...] = (20 * MiB,)) -> dict[str, int]:
    """Write a deterministic tree under root: `files` small files over nested directories, plus one
    file per size in `big`. Returns {relative path: size}."""
    rng = random.Random(seed)
    sizes: dict[str, int] = {}
    for i in range(files):
        depth = rng.randint(0, 3)
        parts = [f"d{rng.randint(0, 4)}" for _ in range(depth)]
        sizes["/".join([*parts, f"f{i:04d}.bin"])] = _small_size(rng)
    for i, size in enumerate(big):
        sizes[f"big/large{i}.bin"] = size
    for rel, size in sizes.items():
        write_file(root / rel, size, seed=_stable_seed(seed, rel))
    return sizes


def _stable_seed(seed: int, rel: str) -> int:
    # hash() of a str differs between processes; the tree must not.
    return int.from_bytes(hashlib.sha256(f"{seed}:{rel}".encode()).digest()[:8], "big")


def write_file(path: Path, size: int, *, seed: int) -> bytes:
    data = random.Random(seed).randbytes(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def tree_digests(root: Path) -> dict[str, tuple[int, str]]:
    """{relative path: (size, sha256)} of every regular file under root."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest = hashlib.sha256()
            with path.open("rb") as f:
                for block in iter(lambda: f.read(MiB), b""):
                    digest.update(block)
            out[path.relative_to(root).as_posix()] = (path.stat().st_size, digest.hexdigest())
    return out


def assert_same_tree(expected: Path, actual: Path) -> None:
    """Same set of files with the same bytes (compared by size and SHA-256 of every byte)."""
    want, got = tree_digests(expected), tree_digests(actual)
    missing, extra = sorted(want.keys() - got.keys()), sorted(got.keys() - want.keys())
    differ = sorted(k for k in want.keys() & got.keys() if want[k] != got[k])
    assert not (missing or extra or differ), (
        f"trees differ: missing {missing[:10]}, extra {extra[:10]}, different {differ[:10]}")
    assert want, f"{expected} holds no files: the comparison would prove nothing"
