"""The erasure codec: byte-compatibility with reedsolo, decoding from any k shards, errors."""
from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import reedsolo
import xxhash
from hypothesis import given, settings, strategies as st

from common import codec, gf256
from common.codec import CodecError, ErasureCode


@pytest.fixture(autouse=True, scope="module")
def reedsolo_default_field():
    # reedsolo keeps its field tables in module globals; the reference is its default field.
    reedsolo.init_tables()


def reedsolo_shards(k: int, m: int, data: bytes) -> list[bytes]:
    """The reference: each byte column encoded by reedsolo on its own."""
    size = -(-len(data) // k)
    columns = np.frombuffer(data + bytes(k * size - len(data)), dtype=np.uint8).reshape(k, size)
    parity = np.zeros((m, size), dtype=np.uint8)
    for j in range(size):
        parity[:, j] = list(reedsolo.rs_encode_msg(bytes(columns[:, j]), nsym=m)[k:])
    return [columns[i].tobytes() for i in range(k)] + [parity[j].tobytes() for j in range(m)]


def random_bytes(rng: random.Random, n: int) -> bytes:
    return rng.randbytes(n)


# --- byte-compatibility with reedsolo ----------------------------------------------------------

@pytest.mark.parametrize("k,m", [(2, 1), (3, 3), (4, 2), (8, 3), (10, 4), (16, 8)])
def test_each_column_is_a_reedsolo_codeword(k, m):
    rng = random.Random(k * 100 + m)
    data = random_bytes(rng, k * 257 - 5)  # padded last shard
    shards = ErasureCode(k, m).encode(data)
    assert shards == reedsolo_shards(k, m, data)
    for j in rng.sample(range(len(shards[0])), 50):
        column = bytes(s[j] for s in shards)
        assert reedsolo.rs_check(column, nsym=m)
        assert column == bytes(reedsolo.rs_encode_msg(column[:k], nsym=m))


def test_wide_table_path_is_reedsolo_compatible():
    # Shards above WIDE_MIN_LENGTH, odd length: the pair tables plus the odd-byte tail.
    k, m = 4, 2
    data = random_bytes(random.Random(7), k * (gf256.WIDE_MIN_LENGTH + 1001) - 3)
    assert len(data) // k >= gf256.WIDE_MIN_LENGTH
    assert ErasureCode(k, m).encode(data) == reedsolo_shards(k, m, data)


@pytest.mark.parametrize("rows,cols", [(1, 2), (2, 4), (3, 8), (4, 5), (5, 16), (8, 16)])
@pytest.mark.parametrize("length", [0, 1, 2, 3, 1001, 70001])
def test_wide_and_narrow_paths_agree(rows, cols, length):
    rng = np.random.default_rng(rows * 1000 + cols + length)
    coeffs = rng.integers(0, 256, (rows, cols)).tolist()
    coeffs[0][0] = 0            # a zero coefficient
    coeffs[-1][cols - 1] = 1    # a one coefficient
    for row in coeffs:
        row[cols // 2] = 0       # an input no row uses: skipped entirely
    linear_map = gf256.LinearMap(coeffs)
    inputs = [rng.integers(0, 256, length, dtype=np.uint8) for _ in range(cols)]
    narrow = linear_map.apply_narrow(inputs)
    wide = linear_map.apply_wide(inputs)
    expected = [np.bitwise_xor.reduce(
        [gf256.multiplication_table()[c][x] for c, x in zip(row, inputs)]
        + [np.zeros(length, dtype=np.uint8)]) for row in coeffs]
    for n, w, e in zip(narrow, wide, expected):
        assert np.array_equal(n, e) and np.array_equal(w, e)


def test_gf_tables_match_reedsolo():
    table = gf256.multiplication_table()
    for a in range(256):
        for b in range(0, 256, 7):
            assert table[a, b] == reedsolo.gf_mul(a, b) == gf256.mul(a, b)
    for nsym in range(1, 9):
        assert gf256.rs_generator_poly(nsym) == list(reedsolo.rs_generator_poly(nsym))


def test_matrix_invert_round_trips_and_rejects_singular():
    rng = random.Random(3)
    for n in range(1, 7):
        matrix = [[rng.randrange(256) for _ in range(n)] for _ in range(n)]
        try:
            inverse = gf256.matrix_invert(matrix)
        except ValueError:
            continue
        product = [[0] * n for _ in range(n)]
        for i, j, t in itertools.product(range(n), range(n), range(n)):
            product[i][j] ^= gf256.mul(matrix[i][t], inverse[t][j])
        assert product == [[int(i == j) for j in range(n)] for i in range(n)]
    with pytest.raises(ValueError):
        gf256.matrix_invert([[1, 2], [2, 4]])


# --- decoding from any k shards ----------------------------------------------------------------

@pytest.mark.parametrize("k,m", [(4, 2), (3, 3), (2, 1)])
@pytest.mark.parametrize("length", [0, 1, 97, 2 * 16 * 1024 * 4 + 3])
def test_every_erasure_pattern_decodes(k, m, length):
    code = ErasureCode(k, m)
    data = random_bytes(random.Random(length), length)
    shards = code.encode(data)
    for lost in range(m + 1):
        for missing in itertools.combinations(range(k + m), lost):
            survivors = {i: s for i, s in enumerate(shards) if i not in missing}
            assert code.decode(survivors, len(data)) == data, missing
            if missing:
                rebuilt = code.reconstruct(survivors, missing)
                assert rebuilt == {i: shards[i] for i in missing}, missing


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_k_shards_give_the_data_back(draw):
    k = draw.draw(st.integers(2, 16), label="k")
    m = draw.draw(st.integers(1, 8), label="m")
    data = draw.draw(st.binary(max_size=600), label="data")
    missing = draw.draw(st.lists(st.integers(0, k + m - 1), max_size=m, unique=True), label="missing")
    code = ErasureCode(k, m)
    shards = code.encode(data)
    assert len(shards) == k + m
    assert all(len(s) == code.shard_size(len(data)) for s in shards)
    assert b"".join(shards[:k])[:len(data)] == data  # systematic
    survivors = {i: memoryview(s) for i, s in enumerate(shards) if i not in missing}
    assert code.decode(survivors, len(data)) == data
    if missing:
        assert code.reconstruct(survivors, missing) == {i: shards[i] for i in missing}
    assert code.verify(shards)


def test_decoding_ignores_extra_shards_and_accepts_buffers():
    code = ErasureCode(4, 2)
    data = bytearray(random_bytes(random.Random(1), 1000))
    shards = code.encode(memoryview(data))
    assert shards == code.encode(bytes(data))
    given = {i: bytearray(s) for i, s in enumerate(shards) if i != 1}
    assert code.decode(given, len(data)) == data


def test_empty_data():
    code = ErasureCode(3, 2)
    shards = code.encode(b"")
    assert shards == [b""] * 5
    assert code.decode({2: b"", 3: b"", 4: b""}, 0) == b""
    assert code.verify(shards)


def test_shard_size_rounds_up():
    code = ErasureCode(4, 2)
    assert [code.shard_size(n) for n in (0, 1, 4, 5, 8, 9)] == [0, 1, 1, 2, 2, 3]


def test_verify_detects_a_flipped_byte_anywhere():
    code = ErasureCode(5, 3)
    shards = code.encode(random_bytes(random.Random(2), 5000))
    assert code.verify(shards)
    for index in (0, 4, 5, 7):
        damaged = list(shards)
        damaged[index] = bytes([shards[index][0] ^ 0x40]) + shards[index][1:]
        assert not code.verify(damaged)


def test_decode_caches_and_survives_concurrent_use():
    code = ErasureCode(6, 3)
    rng = random.Random(5)
    jobs = []
    for _ in range(24):
        data = random_bytes(rng, rng.randrange(1, 40000))
        missing = set(rng.sample(range(9), 3))
        jobs.append((data, missing))

    def run(job):
        data, missing = job
        shards = code.encode(data)
        return code.decode({i: s for i, s in enumerate(shards) if i not in missing}, len(data)) == data

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(run, jobs))


def test_decode_map_cache_is_bounded_by_count_and_bytes():
    cache = codec._MapCache(max_entries=3, max_bytes=10**9)
    maps = [gf256.LinearMap([[i + 1, 1]]) for i in range(5)]
    for i, lm in enumerate(maps):
        cache.put((i,), lm)
    assert [cache.get((i,)) is not None for i in range(5)] == [False, False, True, True, True]
    small = codec._MapCache(max_entries=100, max_bytes=maps[0].table_bytes)
    small.put(("a",), maps[0])
    small.put(("b",), maps[1])
    assert small.get(("a",)) is None and small.get(("b",)) is maps[1]


# --- errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("k,m", [(1, 1), (17, 2), (4, 0), (4, 9), (True, 2), (4.0, 2), ("4", 2)])
def test_unsupported_parameters_are_rejected(k, m):
    with pytest.raises(CodecError):
        ErasureCode(k, m)


def test_code_is_immutable():
    code = ErasureCode(4, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        code.k = 5
    assert code == ErasureCode(4, 2) and code != ErasureCode(4, 3)


def test_inconsistent_shards_are_rejected():
    code = ErasureCode(4, 2)
    shards = code.encode(bytes(range(200)))
    full = dict(enumerate(shards))
    with pytest.raises(CodecError, match="at least k"):
        code.decode({0: shards[0], 1: shards[1], 5: shards[5]}, 200)
    with pytest.raises(CodecError, match="index"):
        code.decode({**full, 6: shards[0]}, 200)
    with pytest.raises(CodecError, match="index"):
        code.decode({**full, -1: shards[0]}, 200)
    with pytest.raises(CodecError, match="index"):
        code.decode({"0": shards[0], 1: shards[1], 2: shards[2], 3: shards[3]}, 200)
    with pytest.raises(CodecError, match="differ in length"):
        code.decode({**full, 2: shards[2][:-1]}, 200)
    with pytest.raises(CodecError, match="data length"):
        code.decode(full, 300)
    with pytest.raises(CodecError, match="non-negative"):
        code.decode(full, -1)
    with pytest.raises(CodecError, match="contiguous"):
        code.decode({**full, 0: memoryview(shards[0] * 2)[::2]}, 200)
    with pytest.raises(CodecError, match="all 6"):
        code.verify(shards[:5])
    with pytest.raises(CodecError, match="not missing"):
        code.reconstruct(full, [1])
    with pytest.raises(CodecError, match="index"):
        code.reconstruct({i: shards[i] for i in range(4)}, [6])
    with pytest.raises(CodecError):
        code.encode("text is not bytes")


def test_codec_error_is_a_value_error():
    assert issubclass(CodecError, ValueError)


# --- self-test ---------------------------------------------------------------------------------

def test_self_test_passes():
    codec.self_test()


def test_self_test_digests_are_reedsolos():
    for k, m, length, digest in codec.SELF_TEST_CASES:
        reference = reedsolo_shards(k, m, codec.self_test_data(length))
        assert xxhash.xxh3_64(b"".join(reference)).hexdigest() == digest


def test_self_test_fails_on_a_wrong_digest(monkeypatch):
    k, m, length, _ = codec.SELF_TEST_CASES[0]
    monkeypatch.setattr(codec, "SELF_TEST_CASES", ((k, m, length, "0" * 16),))
    with pytest.raises(CodecError, match="digest"):
        codec.self_test()


# --- event-loop helpers ------------------------------------------------------------------------

async def test_async_helpers_match_sync_and_leave_the_loop_free():
    code = ErasureCode(4, 2)
    data = random_bytes(random.Random(9), 4 * 1024 * 1024)
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    tick_task = asyncio.create_task(ticker())
    with ThreadPoolExecutor(1) as pool:
        shards = await codec.encode_async(code, data, executor=pool)
        survivors = {i: s for i, s in enumerate(shards) if i not in (0, 2)}
        assert await codec.decode_async(code, survivors, len(data), executor=pool) == data
        rebuilt = await codec.reconstruct_async(code, survivors, iter([0, 2]), executor=pool)
    assert await codec.encode_async(code, data) == shards
    tick_task.cancel()
    assert shards == code.encode(data)
    assert rebuilt == {0: shards[0], 2: shards[2]}
    assert ticks > 3  # the loop kept running while the work was in threads
