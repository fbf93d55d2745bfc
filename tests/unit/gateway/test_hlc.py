"""Hybrid logical clock: stamps only ever grow, whatever the wall clock does, and order as bytes."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.cluster.hlc import STAMP_SIZE, HybridClock, Stamp

T0 = 1_700_000_000_000            # a wall-clock time in ms
TEN_MINUTES = 10 * 60 * 1000


class WallClock:
    """A wall clock the test sets by hand (ms)."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def test_stamps_strictly_increase_within_one_millisecond() -> None:
    clock = HybridClock(writer_id=7, wall_ms=WallClock(T0))
    stamps = [clock.now() for _ in range(1000)]
    assert all(a < b for a, b in zip(stamps, stamps[1:]))
    assert all(s.wall_ms == T0 for s in stamps)      # the logical counter did the work
    raw = [s.to_bytes() for s in stamps]
    assert all(a < b for a, b in zip(raw, raw[1:]))


def test_stamps_follow_the_wall_clock_when_it_advances() -> None:
    wall = WallClock(T0)
    clock = HybridClock(writer_id=1, wall_ms=wall)
    first = clock.now()
    wall.ms += 5
    second = clock.now()
    assert second.wall_ms == T0 + 5 and second > first


def test_wall_clock_going_backwards_never_makes_a_stamp_smaller() -> None:
    wall = WallClock(T0)
    clock = HybridClock(writer_id=1, wall_ms=wall)
    before = clock.now()
    wall.ms -= TEN_MINUTES
    after = [clock.now() for _ in range(5)]
    assert before < after[0] < after[-1]
    assert after[0].wall_ms == T0                     # held at the highest time seen


def test_observing_a_clock_ten_minutes_ahead_makes_the_next_stamp_greater() -> None:
    ahead = HybridClock(writer_id=2**64 - 1, wall_ms=WallClock(T0 + TEN_MINUTES)).now()
    behind = HybridClock(writer_id=0, wall_ms=WallClock(T0))
    assert behind.now() < ahead
    behind.observe(ahead.to_bytes())
    nxt = behind.now()
    assert nxt > ahead and nxt.to_bytes() > ahead.to_bytes()
    assert nxt.writer == 0     # greater through the HLC part, not the writer id tiebreak


def test_stamp_after_exceeds_every_seen_stamp_and_everything_issued() -> None:
    clock = HybridClock(writer_id=5, wall_ms=WallClock(T0))
    issued = clock.now().to_bytes()
    far = Stamp(hlc=(T0 + TEN_MINUTES) << 16 | 3, writer=9).to_bytes()
    near = Stamp(hlc=(T0 + 1) << 16, writer=2**63).to_bytes()
    out = clock.stamp_after(near, None, far)
    assert out > far and out > near and out > issued
    assert clock.stamp_after(None) > out               # nothing seen: still after what it issued


def test_observe_accepts_stamp_objects_and_none() -> None:
    clock = HybridClock(writer_id=1, wall_ms=WallClock(T0))
    clock.observe(None)
    seen = Stamp(hlc=(T0 + 1000) << 16, writer=3)
    clock.observe(seen)
    assert clock.now() > seen


def test_stamp_bytes_round_trip_and_size() -> None:
    s = Stamp(hlc=(T0 << 16) | 0xBEEF, writer=0x0123456789ABCDEF)
    raw = s.to_bytes()
    assert len(raw) == STAMP_SIZE and Stamp.from_bytes(raw) == s
    with pytest.raises(ValueError):
        Stamp.from_bytes(raw[:-1])


def test_writer_ids_are_random_per_clock() -> None:
    assert HybridClock().writer_id != HybridClock().writer_id


def test_wall_ns_is_the_wall_clock_not_the_hlc() -> None:
    wall = WallClock(T0)
    clock = HybridClock(writer_id=1, wall_ms=wall)
    clock.observe(Stamp(hlc=(T0 + TEN_MINUTES) << 16, writer=1))
    assert clock.wall_ns() == T0 * 1_000_000


u64 = st.integers(0, 2**64 - 1)


@settings(max_examples=300, deadline=None)
@given(a=st.tuples(u64, u64), b=st.tuples(u64, u64))
def test_byte_order_is_stamp_order(a: tuple[int, int], b: tuple[int, int]) -> None:
    sa, sb = Stamp(*a), Stamp(*b)
    assert (sa < sb) == (sa.to_bytes() < sb.to_bytes())
    assert (sa == sb) == (sa.to_bytes() == sb.to_bytes())


@settings(max_examples=100, deadline=None)
@given(steps=st.lists(st.one_of(
    st.tuples(st.just("tick"), st.integers(-TEN_MINUTES, TEN_MINUTES)),
    st.tuples(st.just("observe"), st.integers(-TEN_MINUTES, TEN_MINUTES)),
    st.tuples(st.just("now"), st.just(0))), max_size=40))
def test_issued_stamps_always_increase_and_exceed_what_was_observed(steps) -> None:
    wall = WallClock(T0)
    clock = HybridClock(writer_id=42, wall_ms=wall)
    last = clock.now()
    highest_seen = last
    for kind, delta in steps:
        if kind == "tick":
            wall.ms = max(0, wall.ms + delta)
        elif kind == "observe":
            seen = Stamp(hlc=max(0, T0 + delta) << 16, writer=2**64 - 1)
            clock.observe(seen.to_bytes())
            highest_seen = max(highest_seen, seen)
        else:
            nxt = clock.now()
            assert nxt > last and nxt > highest_seen
            last = highest_seen = nxt
