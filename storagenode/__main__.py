"""`python -m storagenode`: run one node from command-line flags (a convenience for tests and
benchmarks; `cairn node` is the supported entry point)."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from common.nodeconfig import NodeConfig
from storagenode.server import run_node
from storagenode.store import FormatError


def parse_config(argv: list[str] | None = None) -> tuple[NodeConfig, str]:
    p = argparse.ArgumentParser(prog="python -m storagenode", description="Run a Cairn storage node.")
    p.add_argument("--id", required=True, help="node id (must match the data dir, once created)")
    p.add_argument("--listen", required=True, help="zmq endpoint, e.g. tcp://127.0.0.1:7001")
    p.add_argument("--data-dir", required=True, type=Path)
    p.add_argument("--keys", type=Path, default=None,
                   help="CurveZMQ keys dir (common.keys layout); omit for plain TCP (tests only)")
    p.add_argument("--map-size", type=int, default=NodeConfig.map_size)
    p.add_argument("--map-size-max", type=int, default=NodeConfig.map_size_max)
    p.add_argument("--group-commit-max", type=int, default=NodeConfig.group_commit_max)
    p.add_argument("--no-sync", action="store_true", help="do not fsync commits (benchmarks only)")
    p.add_argument("--log-level", default="INFO")
    a = p.parse_args(argv)
    config = NodeConfig(node_id=a.id, listen=a.listen, data_dir=a.data_dir, keys_dir=a.keys,
                        map_size=a.map_size, map_size_max=a.map_size_max,
                        group_commit_max=a.group_commit_max, sync=not a.no_sync)
    return config, a.log_level


def main(argv: list[str] | None = None) -> None:
    config, level = parse_config(argv)
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run_node(config)
    except FormatError as exc:
        raise SystemExit(f"refusing to start: {exc}") from None


if __name__ == "__main__":
    main()
