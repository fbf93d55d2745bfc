"""Pure range arithmetic for erasure-coded objects (no I/O, no codec calls).

An object of `object_size` bytes is cut into stripes of `stripe_size` data bytes (the last one
shorter); stripe i covers object bytes [i * stripe_size, i * stripe_size + stripe_len(i)).
Each stripe is encoded into k + m shards of ceil(stripe_len / k) bytes; the code is systematic,
so stripe byte b lives in data shard b // s at offset b % s, where s is that stripe's shard size.
That lets a ranged GET read only the slices of the data shards it needs while they are healthy.

Byte ranges of objects are inclusive, as in HTTP `Range: bytes=first-last`; ranges inside a
stripe or shard are half-open [start, end), as in Python slices.
"""
from __future__ import annotations

from typing import NamedTuple


class StripeSlice(NamedTuple):
    stripe: int   # stripe index within the object
    start: int    # first byte within the stripe
    end: int      # one past the last byte within the stripe


class ShardSlice(NamedTuple):
    shard: int    # data shard index, 0..k-1
    offset: int   # first byte within the shard
    length: int


def _check_positive(name: str, value: int) -> None:
    if type(value) is not int or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_size(object_size: int, stripe_size: int) -> None:
    if type(object_size) is not int or object_size < 0:
        raise ValueError(f"object size must be a non-negative int, got {object_size!r}")
    _check_positive("stripe size", stripe_size)


def shard_size(stripe_len: int, k: int) -> int:
    """Bytes in each of the k + m shards of a stripe of `stripe_len` data bytes."""
    _check_positive("k", k)
    if type(stripe_len) is not int or stripe_len < 0:
        raise ValueError(f"stripe length must be a non-negative int, got {stripe_len!r}")
    return -(-stripe_len // k)


def stripe_count(object_size: int, stripe_size: int) -> int:
    """Number of stripes; an empty object has none."""
    _check_size(object_size, stripe_size)
    return -(-object_size // stripe_size)


def stripe_len(index: int, object_size: int, stripe_size: int) -> int:
    """Data bytes in stripe `index` (stripe_size, except possibly for the last)."""
    count = stripe_count(object_size, stripe_size)
    if type(index) is not int or not 0 <= index < count:
        raise ValueError(f"stripe index {index!r} out of range 0..{count - 1}")
    return min(stripe_size, object_size - index * stripe_size)


def stripes_for_range(first: int, last: int, object_size: int, stripe_size: int) -> list[StripeSlice]:
    """The stripes holding object bytes first..last (inclusive) and the part of each needed."""
    _check_size(object_size, stripe_size)
    if type(first) is not int or type(last) is not int or not 0 <= first <= last < object_size:
        raise ValueError(f"byte range {first!r}-{last!r} is not within an object of {object_size} bytes")
    slices = []
    for index in range(first // stripe_size, last // stripe_size + 1):
        base = index * stripe_size
        slices.append(StripeSlice(index, max(first, base) - base,
                                  min(last + 1, base + stripe_size) - base))
    return slices


def data_shard_ranges(stripe_len: int, k: int, start: int, end: int) -> list[ShardSlice]:
    """Which bytes of which data shards hold stripe bytes [start, end), in stripe order.

    Concatenating the listed slices gives exactly those stripe bytes. Padding bytes at the end
    of the last data shards are never listed.
    """
    size = shard_size(stripe_len, k)
    if type(start) is not int or type(end) is not int or not 0 <= start <= end <= stripe_len:
        raise ValueError(f"range [{start!r}, {end!r}) is not within a stripe of {stripe_len} bytes")
    slices = []
    position = start
    while position < end:
        shard, offset = divmod(position, size)
        length = min(size - offset, end - position)
        slices.append(ShardSlice(shard, offset, length))
        position += length
    return slices


def stripe_shard_offset(index: int, stripe_size: int, k: int) -> int:
    """Where stripe `index`'s bytes start in a shard file holding one shard of every stripe
    back to back (all earlier stripes are full, so each contributed ceil(stripe_size / k))."""
    if type(index) is not int or index < 0:
        raise ValueError(f"stripe index must be a non-negative int, got {index!r}")
    _check_positive("stripe size", stripe_size)
    return index * shard_size(stripe_size, k)


def shard_file_size(object_size: int, stripe_size: int, k: int) -> int:
    """Total bytes of one shard file of the object (cf. MinIO's ShardFileSize)."""
    count = stripe_count(object_size, stripe_size)
    if count == 0:
        return 0
    last = stripe_len(count - 1, object_size, stripe_size)
    return stripe_shard_offset(count - 1, stripe_size, k) + shard_size(last, k)
