"""Stripe and shard range arithmetic, checked against real encoded shards."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from common import stripes
from common.codec import ErasureCode

MIB = 1024 * 1024


def object_bytes(size: int) -> bytes:
    return bytes((i * 31 + i // 256) % 256 for i in range(size))


def test_stripe_counts_and_lengths():
    assert stripes.stripe_count(0, 4) == 0
    assert stripes.stripe_count(1, 4) == 1
    assert stripes.stripe_count(8, 4) == 2
    assert stripes.stripe_count(9, 4) == 3
    assert stripes.stripe_count(10 * MIB + 1, MIB) == 11
    assert [stripes.stripe_len(i, 9, 4) for i in range(3)] == [4, 4, 1]
    assert [stripes.stripe_len(i, 8, 4) for i in range(2)] == [4, 4]


def test_stripes_for_range_examples():
    # object of 10 bytes in stripes of 4: [0..3] [4..7] [8..9]
    assert stripes.stripes_for_range(0, 9, 10, 4) == [(0, 0, 4), (1, 0, 4), (2, 0, 2)]
    assert stripes.stripes_for_range(3, 4, 10, 4) == [(0, 3, 4), (1, 0, 1)]
    assert stripes.stripes_for_range(5, 6, 10, 4) == [(1, 1, 3)]
    assert stripes.stripes_for_range(9, 9, 10, 4) == [(2, 1, 2)]
    first = stripes.stripes_for_range(0, 0, 10, 4)[0]
    assert (first.stripe, first.start, first.end) == (0, 0, 1)


def test_data_shard_ranges_examples():
    # stripe of 10 bytes, k=4: shard size 3; shards hold [0..2] [3..5] [6..8] [9 + 2 pad]
    assert stripes.shard_size(10, 4) == 3
    assert stripes.data_shard_ranges(10, 4, 0, 10) == [(0, 0, 3), (1, 0, 3), (2, 0, 3), (3, 0, 1)]
    assert stripes.data_shard_ranges(10, 4, 4, 5) == [(1, 1, 1)]
    assert stripes.data_shard_ranges(10, 4, 2, 7) == [(0, 2, 1), (1, 0, 3), (2, 0, 1)]
    assert stripes.data_shard_ranges(10, 4, 5, 5) == []
    piece = stripes.data_shard_ranges(10, 4, 9, 10)[0]
    assert (piece.shard, piece.offset, piece.length) == (3, 0, 1)


def test_shard_file_offsets():
    # 3 full stripes of 10 bytes (k=4: 3-byte shards) and a last one of 5 (2-byte shards)
    assert [stripes.stripe_shard_offset(i, 10, 4) for i in range(4)] == [0, 3, 6, 9]
    assert stripes.shard_file_size(35, 10, 4) == 11
    assert stripes.shard_file_size(0, 10, 4) == 0
    assert stripes.shard_file_size(40, 10, 4) == 12


@pytest.mark.parametrize("call", [
    lambda: stripes.stripe_count(-1, 4),
    lambda: stripes.stripe_count(10, 0),
    lambda: stripes.stripe_count(10, 2.5),
    lambda: stripes.stripe_len(3, 10, 4),
    lambda: stripes.stripe_len(-1, 10, 4),
    lambda: stripes.stripe_len(0, 0, 4),
    lambda: stripes.stripes_for_range(5, 4, 10, 4),
    lambda: stripes.stripes_for_range(0, 10, 10, 4),
    lambda: stripes.stripes_for_range(-1, 3, 10, 4),
    lambda: stripes.stripes_for_range(0, 0, 0, 4),
    lambda: stripes.data_shard_ranges(10, 4, 3, 11),
    lambda: stripes.data_shard_ranges(10, 4, 6, 5),
    lambda: stripes.data_shard_ranges(10, 0, 0, 1),
    lambda: stripes.shard_size(-1, 4),
    lambda: stripes.stripe_shard_offset(-1, 10, 4),
    lambda: stripes.stripe_shard_offset(1, 0, 4),
])
def test_bad_arguments_are_rejected(call):
    with pytest.raises(ValueError):
        call()


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_stripe_ranges_reassemble_the_requested_bytes(draw):
    object_size = draw.draw(st.integers(1, 3000), label="object_size")
    stripe_size = draw.draw(st.integers(1, 700), label="stripe_size")
    first = draw.draw(st.integers(0, object_size - 1), label="first")
    last = draw.draw(st.integers(first, object_size - 1), label="last")
    obj = object_bytes(object_size)
    count = stripes.stripe_count(object_size, stripe_size)
    cut = [obj[i * stripe_size:(i + 1) * stripe_size] for i in range(count)]
    assert [stripes.stripe_len(i, object_size, stripe_size) for i in range(count)] == list(map(len, cut))
    slices = stripes.stripes_for_range(first, last, object_size, stripe_size)
    assert [s.stripe for s in slices] == list(range(slices[0].stripe, slices[-1].stripe + 1))
    assert all(0 <= s.start < s.end for s in slices)
    assert b"".join(cut[s.stripe][s.start:s.end] for s in slices) == obj[first:last + 1]


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_data_shard_slices_of_real_shards_give_the_stripe_bytes(draw):
    k = draw.draw(st.integers(2, 16), label="k")
    length = draw.draw(st.integers(0, 400), label="stripe_len")
    start = draw.draw(st.integers(0, length), label="start")
    end = draw.draw(st.integers(start, length), label="end")
    stripe = object_bytes(length)
    shards = ErasureCode(k, 1).encode(stripe)
    size = stripes.shard_size(length, k)
    assert len(shards[0]) == size
    pieces = stripes.data_shard_ranges(length, k, start, end)
    assert all(0 <= p.shard < k and p.length > 0 and p.offset + p.length <= size for p in pieces)
    assert b"".join(shards[p.shard][p.offset:p.offset + p.length] for p in pieces) == stripe[start:end]


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 5000), st.integers(1, 700), st.integers(2, 16))
def test_shard_file_size_is_the_sum_of_stripe_shards(object_size, stripe_size, k):
    count = stripes.stripe_count(object_size, stripe_size)
    sizes = [stripes.shard_size(stripes.stripe_len(i, object_size, stripe_size), k) for i in range(count)]
    assert stripes.shard_file_size(object_size, stripe_size, k) == sum(sizes)
    for i in range(count):
        assert stripes.stripe_shard_offset(i, stripe_size, k) == sum(sizes[:i])
