"""Single-threaded throughput of the erasure codec.

    python bench/codec.py [--k-m 4+2 8+3] [--sizes 1 4 16 64] [--repeat 5]

MB/s is measured on the data size (10^6 bytes per second), best of --repeat runs after one
warm-up (which builds the lookup tables). Decode loses m data shards, the worst case.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script

import numpy as np  # noqa: E402
import reedsolo  # noqa: E402

from common import gf256  # noqa: E402
from common.codec import ErasureCode  # noqa: E402

MIB = 1024 * 1024


def best_seconds(run, repeat: int) -> float:
    run()  # warm-up: builds and caches the tables
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def bench_code(k: int, m: int, size: int, repeat: int, rng: np.random.Generator) -> tuple[float, ...]:
    code = ErasureCode(k, m)
    data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    shards = code.encode(data)
    lost = range(min(m, k))
    survivors = {i: s for i, s in enumerate(shards) if i not in lost}
    assert code.decode(survivors, size) == data
    encode = best_seconds(lambda: code.encode(data), repeat)
    decode = best_seconds(lambda: code.decode(survivors, size), repeat)
    # The plain per-coefficient 256-entry-table approach, on the same parity rows, for comparison.
    data_shards = [np.frombuffer(s, dtype=np.uint8) for s in shards[:k]]
    narrow = best_seconds(lambda: code._encoder.apply_narrow(data_shards), repeat)
    return size / encode / 1e6, size / decode / 1e6, size / narrow / 1e6


def bench_reedsolo(k: int, m: int, size: int) -> float:
    """reedsolo encoding the same layout column by column, in pure Python."""
    reedsolo.init_tables()
    columns = np.frombuffer(os.urandom(size), dtype=np.uint8).reshape(k, -1).T.copy()
    messages = [bytes(c) for c in columns]
    started = time.perf_counter()
    for message in messages:
        reedsolo.rs_encode_msg(message, m)
    return size / (time.perf_counter() - started) / 1e6


def parse_km(text: str) -> tuple[int, int]:
    k, _, m = text.partition("+")
    return int(k), int(m)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k-m", nargs="+", type=parse_km, default=[(4, 2), (8, 3)],
                        metavar="K+M", help="code parameters (default: 4+2 8+3)")
    parser.add_argument("--sizes", nargs="+", type=int, default=[1, 4, 16, 64], metavar="MIB",
                        help="stripe sizes in MiB (default: 1 4 16 64)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per figure (default 5)")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(1)
    print(f"numpy {np.__version__}, one thread, wide path from {gf256.WIDE_MIN_LENGTH} B shards")
    print(f"{'code':>5} {'stripe':>7} {'encode MB/s':>12} {'decode MB/s':>12} {'narrow MB/s':>12}")
    for k, m in args.k_m:
        for mib in args.sizes:
            enc, dec, narrow = bench_code(k, m, mib * MIB, args.repeat, rng)
            print(f"{k}+{m:<3} {mib:>4} MiB {enc:>12.0f} {dec:>12.0f} {narrow:>12.0f}", flush=True)
    print("(decode: m data shards missing; narrow: per-coefficient 256-entry tables, encode only)")
    for k, m in args.k_m:
        rate = bench_reedsolo(k, m, 64 * 1024)
        print(f"reedsolo pure Python, {k}+{m}, 64 KiB column by column: {rate:.2f} MB/s")


if __name__ == "__main__":
    main()
