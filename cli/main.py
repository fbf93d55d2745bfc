"""The `cairn` command: one entry point, one subcommand per role or admin task."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

DEFAULT_DATA = Path(os.environ.get("CAIRN_DATA_DIR", "cairn-data"))


def _size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    if t and t[-1] in units:
        return int(float(t[:-1]) * units[t[-1]])
    return int(t)


def _cluster_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ring", type=Path, default=Path(os.environ.get("CAIRN_RING", DEFAULT_DATA / "ring.json")),
                   help="ring file (default: $CAIRN_RING or ./cairn-data/ring.json)")
    p.add_argument("--keys", type=Path, default=Path(os.environ.get("CAIRN_KEYS", DEFAULT_DATA / "keys")),
                   help="CurveZMQ key directory (default: $CAIRN_KEYS or ./cairn-data/keys)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cairn", description="Cairn distributed object store")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="start a whole local cluster (nodes + gateway)")
    dev.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    dev.add_argument("--port", type=int, default=9000)
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--nodes", type=int, default=6)
    dev.add_argument("--zones", type=int, default=3)
    dev.add_argument("--k", type=int, default=4)
    dev.add_argument("--m", type=int, default=2)
    dev.add_argument("--node-base-port", type=int, default=7101)
    dev.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    dev.add_argument("--tls", action="store_true", help="serve HTTPS with a self-signed certificate")
    dev.add_argument("--map-size-max", type=_size, default=_size("64GiB"))
    dev.add_argument("--no-curve", action="store_true",
                     help="plain TCP between gateway and nodes (no CurveZMQ authentication or "
                          "encryption): only where nothing else can reach the node ports")

    node = sub.add_parser("node", help="run one storage node")
    node.add_argument("--id", required=True)
    node.add_argument("--listen", required=True, help="e.g. tcp://0.0.0.0:7001")
    node.add_argument("--data-dir", type=Path, required=True)
    node.add_argument("--keys", type=Path, help="CurveZMQ key directory (omit only for tests)")
    node.add_argument("--map-size", type=_size, default=_size("256MiB"))
    node.add_argument("--map-size-max", type=_size, default=_size("64GiB"))
    node.add_argument("--check-config", action="store_true", help="validate and exit")

    gw = sub.add_parser("gateway", help="run the S3 gateway")
    _cluster_args(gw)
    gw.add_argument("--host", default="127.0.0.1")
    gw.add_argument("--port", type=int, default=9000)
    gw.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    gw.add_argument("--tls-cert", type=Path)
    gw.add_argument("--tls-key", type=Path)
    gw.add_argument("--domain", action="append", default=[], help="virtual-hosted-style domain")
    gw.add_argument("--region", default="us-east-1")
    gw.add_argument("--stripe-size", type=_size, default=_size("4MiB"),
                    help="data bytes per erasure-coded stripe (memory per request ~ 3 stripes x (k+m)/k)")
    gw.add_argument("--no-curve", action="store_true",
                    help="plain TCP to nodes started without --keys (a trusted host or network only)")
    gw.add_argument("--clock-offset-ms", type=int, default=0, help=argparse.SUPPRESS)  # fault injection
    gw.add_argument("--check-config", action="store_true", help="validate and exit")

    ring = sub.add_parser("ring", help="build or show the ring")
    ring_sub = ring.add_subparsers(dest="ring_command", required=True)
    create = ring_sub.add_parser("create", help="build a ring from node specs")
    create.add_argument("--out", type=Path, required=True)
    create.add_argument("--if-missing", action="store_true", help="do nothing if --out exists")
    create.add_argument("--k", type=int, default=4)
    create.add_argument("--m", type=int, default=2)
    create.add_argument("--part-power", type=int, default=10)
    create.add_argument("--seed", type=int, default=1)
    create.add_argument("--node", action="append", required=True,
                        help="id=n1,address=tcp://host:7001,zone=z1,weight=1")
    add = ring_sub.add_parser("add-node", help="add a node and rebalance (minimal movement)")
    add.add_argument("--ring", type=Path, required=True)
    add.add_argument("--node", required=True)
    add.add_argument("--out", type=Path)
    rm = ring_sub.add_parser("remove-node", help="remove a node and rebalance")
    rm.add_argument("--ring", type=Path, required=True)
    rm.add_argument("--id", required=True)
    rm.add_argument("--out", type=Path)
    show = ring_sub.add_parser("show", help="print a ring summary")
    show.add_argument("--ring", type=Path, default=DEFAULT_DATA / "ring.json")

    keys = sub.add_parser("keys", help="CurveZMQ transport keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    gen = keys_sub.add_parser("generate", help="create the cluster's node and client keypairs")
    gen.add_argument("--dir", type=Path, required=True)

    key = sub.add_parser("key", help="S3 access keys")
    key_sub = key.add_subparsers(dest="key_command", required=True)
    kc = key_sub.add_parser("create", help="create an access key (the secret is shown once)")
    _cluster_args(kc)
    kc.add_argument("--name", default="")
    kc.add_argument("--if-none", action="store_true", help="only if the cluster has no key yet")
    kl = key_sub.add_parser("list")
    _cluster_args(kl)
    kd = key_sub.add_parser("delete")
    _cluster_args(kd)
    kd.add_argument("access_key")

    bucket = sub.add_parser("bucket", help="bucket administration")
    b_sub = bucket.add_subparsers(dest="bucket_command", required=True)
    ba = b_sub.add_parser("allow", help="grant a key read/write on a bucket")
    _cluster_args(ba)
    ba.add_argument("--bucket", required=True)
    ba.add_argument("--key", required=True, dest="access_key")
    ba.add_argument("--read", action="store_true")
    ba.add_argument("--write", action="store_true")
    bd = b_sub.add_parser("deny", help="remove a key's grant on a bucket")
    _cluster_args(bd)
    bd.add_argument("--bucket", required=True)
    bd.add_argument("--key", required=True, dest="access_key")
    bl = b_sub.add_parser("list")
    _cluster_args(bl)

    gc = sub.add_parser("gc", help="delete shards no committed object or upload refers to")
    _cluster_args(gc)
    gc.add_argument("--grace", type=float, default=6 * 3600,
                    help="keep unreferenced shards younger than this many seconds (writes in flight)")
    gc.add_argument("--dry-run", action="store_true")

    rp = sub.add_parser("repair", help="scrub every object's shards and rebuild missing or corrupt ones")
    _cluster_args(rp)
    rp.add_argument("--rate", type=_size, default=0, help="throttle, bytes read per second (0: none)")

    st = sub.add_parser("status", help="nodes, zones, capacity, up/down, ring version")
    _cluster_args(st)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
    from cli import commands
    handler = getattr(commands, f"cmd_{args.command}")
    return handler(args) or 0


if __name__ == "__main__":
    sys.exit(main())
