"""Shard put/get throughput of one real storage node, through the real zmq path.

    python bench/node.py [--curve on off] [--sizes 4096 1048576] [--concurrency 1 64]
                         [--seconds 5] [--count 4000] [--no-sync]

Starts `python -m storagenode` (fsync on unless --no-sync) on loopback, then for each
(CURVE mode, shard size, concurrency) runs puts of fresh keys, then gets of those keys, each
phase bounded by --count operations and --seconds. MB/s counts payload bytes (10^6 per second).
Client and node share this machine's cores, so the figures are a floor for separate machines.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script

from common.keys import generate_cluster_keys, load_client_keys  # noqa: E402
from common.nodeclient import NodeClient  # noqa: E402
from tests.cluster.nodeproc import MiB, NodeCluster  # noqa: E402


async def run_phase(concurrency: int, count: int, seconds: float, op) -> tuple[int, float]:
    """Run op(i) for i = 0.. from `concurrency` workers until count or seconds runs out."""
    counter = itertools.count()
    deadline = time.perf_counter() + seconds
    done = 0

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            i = next(counter)
            if i >= count:
                return
            await op(i)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, time.perf_counter() - started


async def bench_node(address: str, keys, mode: str, sizes: list[int], concurrencies: list[int],
                     count: int, seconds: float) -> None:
    async with NodeClient(address, keys=keys, timeout=30, retries=0) as client:
        for size in sizes:
            payload = os.urandom(size)
            # Bound the bytes written per cell so that 1 MiB shards do not fill the disk.
            cell_count = min(count, max(64, (2048 * MiB) // size))
            for conc in concurrencies:
                prefix = f"{size}/{conc}/".encode()
                n, secs = await run_phase(conc, cell_count, seconds,
                                          lambda i: client.put_shard(prefix + b"%08d" % i, payload))
                report(mode, "put", size, conc, n, secs)
                order = list(range(n))
                random.shuffle(order)

                async def get(i: int) -> None:
                    data = await client.get_shard(prefix + b"%08d" % order[i % n])
                    assert len(data) == size
                n_get, secs = await run_phase(conc, cell_count, seconds, get)
                report(mode, "get", size, conc, n_get, secs)
        stats = await client.stats()
        print(f"# {mode}: {stats['write_ops']} writes in {stats['write_batches']} commits "
              f"(group commit x{stats['write_ops'] / max(stats['write_batches'], 1):.1f})",
              flush=True)


def report(mode: str, op: str, size: int, conc: int, n: int, secs: float) -> None:
    label = f"{size // 1024} KiB" if size < MiB else f"{size // MiB} MiB"
    print(f"{mode:>9} {op:>4} {label:>7} c={conc:<3} {n:>6} ops {secs:6.2f} s "
          f"{n / secs:9.0f} ops/s {n * size / secs / 1e6:9.1f} MB/s", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--curve", nargs="+", choices=["on", "off"], default=["on", "off"])
    p.add_argument("--sizes", nargs="+", type=int, default=[4096, MiB])
    p.add_argument("--concurrency", nargs="+", type=int, default=[1, 64])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--count", type=int, default=4000)
    p.add_argument("--no-sync", action="store_true")
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="cairn-bench-node-") as tmp:
        base = Path(tmp)
        for mode in a.curve:
            keys_dir = None
            if mode == "on":
                keys_dir = base / "keys"
                generate_cluster_keys(keys_dir)
            with NodeCluster(base / f"curve-{mode}", keys_dir=keys_dir) as cluster:
                node, = cluster.start_nodes(1, map_size=256 * MiB, map_size_max=16 * 1024 * MiB,
                                            sync=not a.no_sync)
                keys = load_client_keys(keys_dir) if keys_dir else None
                label = f"curve-{mode}" + ("" if not a.no_sync else "/nosync")
                asyncio.run(bench_node(node.address, keys, label, a.sizes, a.concurrency,
                                       a.count, a.seconds))


if __name__ == "__main__":
    main()
