"""Systematic Reed-Solomon erasure code RS(k, m) over GF(2^8), byte-compatible with reedsolo.

A stripe of data is cut into k data shards of equal length (the last zero-padded); m parity
shards are added so that, for every byte column j, the k data bytes followed by the m parity
bytes are exactly `reedsolo.rs_encode_msg(column, nsym=m)` with reedsolo's default field
(prim 0x11d, generator 2, fcr 0). Any k of the k + m shards give the data back.

Parity is linear in the data, so the code is a (k + m) x k generator matrix [I; P]: decoding
inverts the k x k rows of the shards at hand. Bulk work is done by `gf256.LinearMap` (numpy
lookup tables); the caller always says which shard is which (indices 0..k-1 data, k.. parity).
"""
from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence, Union

import numpy as np
import xxhash

from common import gf256

MIN_K, MAX_K = 2, 16
MIN_M, MAX_M = 1, 8
# Decode maps are cached per erasure pattern; their wide tables can reach 16 MiB at 16+8, so
# the cache is bounded by table memory as well as by count.
DECODE_CACHE_ENTRIES = 128
DECODE_CACHE_BYTES = 64 * 1024 * 1024

Buffer = Union[bytes, bytearray, memoryview]


class CodecError(ValueError):
    """Inconsistent input to the codec, or a failed self-test."""


def _as_array(buf: Buffer, what: str) -> np.ndarray:
    """Zero-copy uint8 view of a contiguous buffer."""
    try:
        return np.frombuffer(memoryview(buf).cast("B"), dtype=np.uint8)
    except (TypeError, ValueError) as exc:
        raise CodecError(f"{what} is not a contiguous bytes-like object: {exc}") from None


class _MapCache:
    """LRU of decode LinearMaps keyed by (shards used, shards wanted), bounded by count and by
    table bytes. Lock-guarded: encode/decode run in executor threads."""

    def __init__(self, max_entries: int, max_bytes: int):
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._maps: OrderedDict[tuple, gf256.LinearMap] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> gf256.LinearMap | None:
        with self._lock:
            found = self._maps.get(key)
            if found is not None:
                self._maps.move_to_end(key)
            return found

    def put(self, key: tuple, linear_map: gf256.LinearMap) -> None:
        with self._lock:
            self._maps[key] = linear_map
            self._maps.move_to_end(key)
            while len(self._maps) > 1 and (
                len(self._maps) > self._max_entries
                or sum(lm.table_bytes for lm in self._maps.values()) > self._max_bytes
            ):
                self._maps.popitem(last=False)


@dataclass(frozen=True)
class ErasureCode:
    """RS(k, m). Immutable; safe to share between threads (decode maps are cached under a lock)."""

    k: int
    m: int
    _generator: tuple[tuple[int, ...], ...] = field(init=False, repr=False, compare=False)
    _encoder: gf256.LinearMap = field(init=False, repr=False, compare=False)
    _decoders: _MapCache = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, value, low, high in (("k", self.k, MIN_K, MAX_K), ("m", self.m, MIN_M, MAX_M)):
            if type(value) is not int or not low <= value <= high:
                raise CodecError(f"{name} must be an int in {low}..{high}, got {value!r}")
        # Row i of the parity part: reedsolo's parity for the unit message e_i, so parity
        # shard j = XOR_i parity_of_unit[i][j] * data shard i.
        parity_of_unit = [gf256.rs_parity([int(i == t) for t in range(self.k)], self.m)
                          for i in range(self.k)]
        identity = [tuple(int(i == t) for t in range(self.k)) for i in range(self.k)]
        parity_rows = [tuple(parity_of_unit[i][j] for i in range(self.k)) for j in range(self.m)]
        object.__setattr__(self, "_generator", tuple(identity + parity_rows))
        object.__setattr__(self, "_encoder", gf256.LinearMap(parity_rows))
        object.__setattr__(self, "_decoders", _MapCache(DECODE_CACHE_ENTRIES, DECODE_CACHE_BYTES))

    @property
    def total(self) -> int:
        return self.k + self.m

    def shard_size(self, data_len: int) -> int:
        if type(data_len) is not int or data_len < 0:
            raise CodecError(f"data length must be a non-negative int, got {data_len!r}")
        return -(-data_len // self.k)

    def encode(self, data: Buffer) -> list[bytes]:
        """k data shards (data[i*s:(i+1)*s], zero-padded) then m parity shards."""
        array = _as_array(data, "data")
        size = self.shard_size(len(array))
        data_shards = []
        for i in range(self.k):
            piece = array[i * size:(i + 1) * size]
            if len(piece) < size:
                padded = np.zeros(size, dtype=np.uint8)
                padded[:len(piece)] = piece
                piece = padded
            data_shards.append(piece)
        parity = self._encoder.apply(data_shards)
        return [piece.tobytes() for piece in data_shards] + [p.tobytes() for p in parity]

    def decode(self, shards: Mapping[int, Buffer], data_len: int) -> bytes:
        """The original data from any >= k shards, given by index."""
        size = self.shard_size(data_len)
        arrays = self._check_shards(shards, expected_size=size)
        missing = [i for i in range(self.k) if i not in arrays]
        if missing:
            arrays.update(self._rebuild(arrays, missing))
        pieces = [arrays[i][:max(0, min(size, data_len - i * size))] for i in range(self.k)]
        return b"".join(pieces)

    def reconstruct(self, shards: Mapping[int, Buffer], wanted: Iterable[int]) -> dict[int, bytes]:
        """Rebuild the shards `wanted` (data or parity, none of them given) from >= k others."""
        arrays = self._check_shards(shards, expected_size=None)
        wanted = sorted(set(self._check_index(i) for i in wanted))
        present = [i for i in wanted if i in arrays]
        if present:
            raise CodecError(f"shards {present} are given, not missing: nothing to reconstruct")
        return {i: a.tobytes() for i, a in self._rebuild(arrays, wanted).items()}

    def verify(self, shards: Sequence[Buffer]) -> bool:
        """True when all k + m shards are present and the parity matches the data."""
        if len(shards) != self.total:
            raise CodecError(f"verify needs all {self.total} shards, got {len(shards)}")
        arrays = self._check_shards(dict(enumerate(shards)), expected_size=None)
        parity = self._encoder.apply([arrays[i] for i in range(self.k)])
        return all(np.array_equal(p, arrays[self.k + j]) for j, p in enumerate(parity))

    # --- internals ---------------------------------------------------------------------------

    def _check_index(self, index: object) -> int:
        if type(index) is not int or not 0 <= index < self.total:
            raise CodecError(f"shard index must be an int in 0..{self.total - 1}, got {index!r}")
        return index

    def _check_shards(self, shards: Mapping[int, Buffer],
                      expected_size: int | None) -> dict[int, np.ndarray]:
        arrays = {self._check_index(i): _as_array(b, f"shard {i}") for i, b in shards.items()}
        if len(arrays) < self.k:
            raise CodecError(f"need at least k={self.k} shards, got {len(arrays)}")
        sizes = {len(a) for a in arrays.values()}
        if len(sizes) != 1:
            raise CodecError(f"shards differ in length: {sorted(sizes)}")
        (size,) = sizes
        if expected_size is not None and size != expected_size:
            raise CodecError(f"shards are {size} bytes but the data length implies {expected_size}")
        return arrays

    def _rebuild(self, arrays: dict[int, np.ndarray], wanted: list[int]) -> dict[int, np.ndarray]:
        if not wanted:
            return {}
        # Data shards first: their generator rows are unit vectors, the cheapest to invert.
        used = tuple(sorted(arrays)[:self.k])
        rebuilt = self._decoder(used, tuple(wanted)).apply([arrays[i] for i in used])
        return dict(zip(wanted, rebuilt))

    def _decoder(self, used: tuple[int, ...], wanted: tuple[int, ...]) -> gf256.LinearMap:
        key = (used, wanted)
        cached = self._decoders.get(key)
        if cached is not None:
            return cached
        # used shards = G[used] . data, so data = inv(G[used]) . used shards and
        # shard w = G[w] . inv(G[used]) . used shards.
        inverse = gf256.matrix_invert([self._generator[i] for i in used])
        rows = []
        for w in wanted:
            row = [0] * self.k
            for t, g in enumerate(self._generator[w]):
                if g:
                    for col in range(self.k):
                        row[col] ^= gf256.mul(g, inverse[t][col])
            rows.append(row)
        linear_map = gf256.LinearMap(rows)
        self._decoders.put(key, linear_map)
        return linear_map


# --- start-up self-test ------------------------------------------------------------------------

# (k, m, data length, xxh3_64 hex of all k + m shards concatenated), computed once with
# reedsolo.rs_encode_msg column by column (tests/unit/common/test_codec.py recomputes them).
# (4, 2) has 16501-byte shards (odd, above gf256.WIDE_MIN_LENGTH): it runs the wide-table path.
SELF_TEST_CASES: tuple[tuple[int, int, int, str], ...] = (
    (2, 1, 1001, "12845cbb2b5b2d11"),
    (4, 2, 66003, "62c518890ed27fcb"),
    (8, 3, 5003, "f9550a636f0283d7"),
    (16, 8, 3001, "99f61cdc3167f8b8"),
)


def self_test_data(length: int) -> bytes:
    """Deterministic, irregular bytes (no RNG whose stream could change between versions)."""
    i = np.arange(length, dtype=np.uint64)
    mixed = i * np.uint64(2654435761) ^ (i >> np.uint64(7)) * np.uint64(40503) ^ (i * i >> np.uint64(3))
    return (mixed & np.uint64(0xFF)).astype(np.uint8).tobytes()


def self_test() -> None:
    """Encode known input, compare against reedsolo-derived digests, decode with erasures.

    Raises CodecError on any mismatch. Meant to run once at node/gateway start-up.
    """
    for k, m, length, expected in SELF_TEST_CASES:
        code = ErasureCode(k, m)
        data = self_test_data(length)
        shards = code.encode(data)
        digest = xxhash.xxh3_64(b"".join(shards)).hexdigest()
        if digest != expected:
            raise CodecError(f"self-test {k}+{m}: shard digest {digest}, expected {expected}")
        # Lose the first m data shards (the most work for the decoder), then the parity.
        survivors = {i: s for i, s in enumerate(shards) if i >= min(m, k)}
        if code.decode(survivors, length) != data:
            raise CodecError(f"self-test {k}+{m}: decode without shards 0..{m - 1} failed")
        rebuilt = code.reconstruct(dict(enumerate(shards[:k])), range(k, k + m))
        if [rebuilt[i] for i in range(k, k + m)] != shards[k:]:
            raise CodecError(f"self-test {k}+{m}: parity reconstruction failed")


# --- event-loop helpers ------------------------------------------------------------------------
# numpy releases the GIL inside the table gathers and XORs, so a thread pool gives real
# parallelism and keeps the event loop responsive during a multi-MiB stripe.

async def encode_async(code: ErasureCode, data: Buffer,
                       executor: Executor | None = None) -> list[bytes]:
    return await asyncio.get_running_loop().run_in_executor(executor, code.encode, data)


async def decode_async(code: ErasureCode, shards: Mapping[int, Buffer], data_len: int,
                       executor: Executor | None = None) -> bytes:
    return await asyncio.get_running_loop().run_in_executor(executor, code.decode, shards, data_len)


async def reconstruct_async(code: ErasureCode, shards: Mapping[int, Buffer], wanted: Iterable[int],
                            executor: Executor | None = None) -> dict[int, bytes]:
    wanted = list(wanted)  # materialise here: an iterator must not be consumed in another thread
    return await asyncio.get_running_loop().run_in_executor(
        executor, code.reconstruct, shards, wanted)
