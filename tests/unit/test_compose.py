"""docker-compose.yml runs the real `cairn` subcommands: parse every service's command line with
the real CLI parser, and run the ring/keys/node/gateway ones for real (--check-config) with the
volume paths mapped into a temp dir. Docker itself cannot run on this machine."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from cli.main import build_parser
from tests.harness import REPO


def services():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return compose["services"]


def test_every_service_command_parses_with_the_real_cli():
    parser = build_parser()
    for name, svc in services().items():
        cmd = svc["command"]
        assert cmd[0] == "cairn", name
        parser.parse_args(cmd[1:])  # raises SystemExit on an unknown flag or subcommand


def test_compose_topology_is_six_nodes_in_three_zones_and_a_gateway():
    svcs = services()
    nodes = {n: s for n, s in svcs.items() if s["command"][1] == "node"}
    assert len(nodes) == 6
    assert sorted(s["labels"]["zone"] for s in nodes.values()) == ["z1", "z1", "z2", "z2", "z3", "z3"]
    assert all(any(v.endswith(":/data") for v in s["volumes"]) for s in nodes.values())
    assert sum(1 for s in svcs.values() if s["command"][1] == "gateway") == 1
    ring_cmd = svcs["ring"]["command"]
    node_ids = {s["command"][s["command"].index("--id") + 1] for s in nodes.values()}
    specs = [ring_cmd[i + 1] for i, a in enumerate(ring_cmd) if a == "--node"]
    assert {dict(p.split("=") for p in spec.split(","))["id"] for spec in specs} == node_ids


def test_compose_commands_run_for_real(tmp_path):
    def mapped(cmd):
        return [a.replace("/cluster", str(tmp_path / "cluster")).replace("/data", str(tmp_path / "data"))
                for a in cmd[1:]]

    def cairn(args):
        out = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=REPO,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    svcs = services()
    cairn(mapped(svcs["keys"]["command"]))
    assert (tmp_path / "cluster" / "keys").is_dir()
    cairn(mapped(svcs["ring"]["command"]))
    assert "n6" in cairn(["ring", "show", "--ring", str(tmp_path / "cluster" / "ring.json")])
    for name, svc in svcs.items():
        if svc["command"][1] in ("node", "gateway"):
            out = cairn(mapped(svc["command"]) + ["--check-config"])
            assert "config ok" in out, (name, out)
