"""Implementations of the `cairn` subcommands (argument parsing lives in cli/main.py)."""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from cli import admin
from ring.model import Node


def parse_node_spec(spec: str) -> Node:
    fields = dict(part.split("=", 1) for part in spec.split(",") if part)
    try:
        return Node(id=fields["id"], address=fields["address"], zone=fields.get("zone", "default"),
                    weight=float(fields.get("weight", 1)))
    except KeyError as exc:
        raise SystemExit(f"node spec {spec!r} lacks {exc.args[0]}= (id=..,address=..,zone=..,weight=..)")


def cmd_dev(args: argparse.Namespace) -> int:
    from cli.dev import run_dev
    return run_dev(args)


def cmd_node(args: argparse.Namespace) -> int:
    from common.nodeconfig import NodeConfig
    from storagenode.server import run_node
    if not args.listen.startswith("tcp://"):
        raise SystemExit("--listen must look like tcp://HOST:PORT")
    if args.keys is not None and not (args.keys / "node.key_secret").exists() and args.check_config:
        raise SystemExit(f"no node keys in {args.keys} (run `cairn keys generate --dir {args.keys}`)")
    config = NodeConfig(node_id=args.id, listen=args.listen, data_dir=args.data_dir, keys_dir=args.keys,
                        map_size=args.map_size, map_size_max=max(args.map_size, args.map_size_max))
    if args.check_config:
        print(f"node config ok: {config}")
        return 0
    run_node(config)
    return 0


def gateway_config(args: argparse.Namespace):
    from gateway.config import GatewayConfig
    if (args.tls_cert is None) != (args.tls_key is None):
        raise SystemExit("--tls-cert and --tls-key go together")
    return GatewayConfig(ring_path=args.ring, keys_dir=None if args.no_curve else args.keys,
                         host=args.host, port=args.port, workers=max(1, args.workers),
                         tls_cert=args.tls_cert, tls_key=args.tls_key, domains=tuple(args.domain),
                         region=args.region, clock_offset_ms=args.clock_offset_ms,
                         stripe_size=args.stripe_size)


def cmd_gateway(args: argparse.Namespace) -> int:
    from ring.ringfile import load
    config = gateway_config(args)
    if args.check_config:
        ring = load(config.ring_path)
        print(f"gateway config ok: ring v{ring.version}, {len(ring.nodes)} nodes, RS({ring.k},{ring.m})")
        return 0
    from gateway.server import run_gateway
    run_gateway(config)
    return 0


def cmd_ring(args: argparse.Namespace) -> int:
    from ring.builder import build_ring
    from ring.describe import describe
    from ring.ringfile import load, save
    if args.ring_command == "create":
        if args.if_missing and args.out.exists():
            print(f"{args.out} exists; left as it is")
            return 0
        ring = build_ring([parse_node_spec(s) for s in args.node], k=args.k, m=args.m,
                          part_power=args.part_power, seed=args.seed)
        save(ring, args.out)
    elif args.ring_command in ("add-node", "remove-node"):
        old = load(args.ring)
        if args.ring_command == "add-node":
            nodes = [*old.nodes, parse_node_spec(args.node)]
        else:
            nodes = [n for n in old.nodes if n.id != args.id]
            if len(nodes) == len(old.nodes):
                raise SystemExit(f"no node {args.id} in the ring")
        ring = build_ring(nodes, k=old.k, m=old.m, part_power=old.part_power, seed=old.seed,
                          previous=old)
        save(ring, args.out or args.ring)
    else:
        ring = load(args.ring)
    print(describe(ring))
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from common.keys import generate_cluster_keys
    generate_cluster_keys(args.dir)
    print(f"cluster transport keys in {args.dir} (keep *.key_secret private)")
    return 0


def _keys_dir(args: argparse.Namespace) -> Path | None:
    return args.keys if args.keys and args.keys.exists() else None


def cmd_key(args: argparse.Namespace) -> int:
    async def go() -> int:
        async with admin.open_catalog(args.ring, _keys_dir(args)) as (catalog, _, _):
            if args.key_command == "create":
                if args.if_none and await catalog.list_access_keys():
                    print("the cluster already has access keys; none created")
                    return 0
                rec = await admin.create_key(catalog, args.name)
                print(f"access key: {rec.access_key}\nsecret key: {rec.secret_key}\n"
                      "(the secret is shown only now)")
            elif args.key_command == "list":
                for rec in await catalog.list_access_keys():
                    print(f"{rec.access_key}\t{rec.name}")
            else:
                if not await admin.delete_key(catalog, args.access_key):
                    print(f"no such access key: {args.access_key}", file=sys.stderr)
                    return 1
                print(f"deleted {args.access_key}")
        return 0
    return asyncio.run(go())


def cmd_bucket(args: argparse.Namespace) -> int:
    async def go() -> int:
        async with admin.open_catalog(args.ring, _keys_dir(args)) as (catalog, _, _):
            if args.bucket_command == "allow":
                mode = ("read" if args.read else "") + ("write" if args.write else "")
                await admin.allow(catalog, args.bucket, args.access_key, mode or "readwrite")
            elif args.bucket_command == "deny":
                await admin.allow(catalog, args.bucket, args.access_key, None)
            else:
                for b in await catalog.list_buckets():
                    grants = ",".join(f"{k}:{v}" for k, v in sorted(b.grants.items()))
                    print(f"{b.name}\towner={b.owner}\t{grants}")
        return 0
    return asyncio.run(go())


def cmd_status(args: argparse.Namespace) -> int:
    async def go() -> int:
        async with admin.open_catalog(args.ring, _keys_dir(args), timeout=2.0) as (_, ring, pool):
            rows = await admin.status(ring, pool)
        print(f"ring v{ring.version}  RS({ring.k},{ring.m})  {len(ring.nodes)} nodes  "
              f"zones: {', '.join(sorted({n.zone for n in ring.nodes}))}")
        for r in rows:
            state = "up  " if r["up"] else "DOWN"
            extra = (f"shards={r['shards']} records={r['records']} used={r['used_bytes']} "
                     f"disk_free={r['disk_free_bytes']}") if r["up"] else r.get("error", "")
            print(f"  {state} {r['id']:<8} {r['zone']:<8} {r['address']:<24} {extra}")
        return 0 if all(r["up"] for r in rows) else 2
    return asyncio.run(go())


def cmd_gc(args: argparse.Namespace) -> int:
    from gateway.cluster.gc import collect_garbage

    async def go() -> int:
        async with admin.open_catalog(args.ring, _keys_dir(args)) as (catalog, ring, pool):
            report = await collect_garbage(catalog.meta, catalog, pool, ring, grace=args.grace,
                                           dry_run=args.dry_run)
        verb = "would delete" if args.dry_run else "deleted"
        print(f"referenced data ids: {report.referenced}; shards scanned: {report.scanned}; "
              f"{verb}: {report.deleted} ({report.deleted_bytes} bytes); kept as too young: "
              f"{report.young_kept}")
        if report.unreachable_nodes:
            print(f"unreachable nodes (retry later): {', '.join(report.unreachable_nodes)}")
            return 2
        return 0
    return asyncio.run(go())


def cmd_repair(args: argparse.Namespace) -> int:
    from gateway.cluster.repair import scrub

    def progress(report) -> None:
        if report.objects % 100 == 0:
            print(f"... {report.objects} objects, {report.stripes} stripes, "
                  f"{report.shards_rebuilt} shards rebuilt", flush=True)

    async def go() -> int:
        async with admin.open_catalog(args.ring, _keys_dir(args)) as (catalog, _, pool):
            report = await scrub(catalog.meta, catalog, pool, bytes_per_second=args.rate or None,
                                 progress=progress)
        print(f"objects: {report.objects}; stripes: {report.stripes}; shards checked: "
              f"{report.shards_checked}; rebuilt: {report.shards_rebuilt}; records repaired: "
              f"{report.records_repaired}; unrepairable: "
              f"{len(report.unrepairable)}")
        for line in report.unrepairable:
            print(f"  UNREPAIRABLE {line}")
        return 1 if report.unrepairable else 0
    return asyncio.run(go())
