"""Hybrid logical clock and the causal version stamps that order every metadata write.

A stamp is 16 bytes, compared bytewise (the storage nodes do exactly that, see common/wire.py):

    8 bytes  HLC: 48-bit wall-clock milliseconds, 16-bit logical counter (big-endian)
    8 bytes  writer id: random per gateway process, breaks ties between concurrent writers

Why not wall-clock time alone: a PUT that starts after another PUT completed must win even if its
gateway's clock is behind. Before writing, the gateway reads the current record from a read quorum
(which intersects the write quorum of any completed write) and `observe`s its stamp, so the stamp
it then issues is strictly greater, whatever its own clock says. A write that does not read first
(MetaStore.put_unread) gets the same guarantee afterwards: a replica holding a newer stamp
refuses it and names that stamp, and the write is made again after it.
"""
from __future__ import annotations

import os
import struct
import threading
import time
from dataclasses import dataclass

STAMP_SIZE = 16
_STAMP = struct.Struct(">QQ")
_LOGICAL_BITS = 16
ZERO_STAMP = bytes(STAMP_SIZE)


@dataclass(frozen=True, order=True)
class Stamp:
    hlc: int
    writer: int

    def to_bytes(self) -> bytes:
        return _STAMP.pack(self.hlc, self.writer)

    @classmethod
    def from_bytes(cls, raw: bytes) -> "Stamp":
        if len(raw) != STAMP_SIZE:
            raise ValueError(f"stamp must be {STAMP_SIZE} bytes, got {len(raw)}")
        return cls(*_STAMP.unpack(raw))

    @property
    def wall_ms(self) -> int:
        return self.hlc >> _LOGICAL_BITS


class HybridClock:
    """Thread-safe HLC; one per gateway process (never module-level)."""

    def __init__(self, writer_id: int | None = None, wall_ms=lambda: time.time_ns() // 1_000_000):
        self.writer_id = writer_id if writer_id is not None else int.from_bytes(os.urandom(8), "big")
        self._wall_ms = wall_ms
        self._last = 0
        self._lock = threading.Lock()

    def wall_ns(self) -> int:
        """This gateway's wall-clock time, for the times shown to users (Last-Modified). Never
        used to order writes: stamps do that."""
        return self._wall_ms() * 1_000_000

    def observe(self, stamp: bytes | Stamp | None) -> None:
        if stamp is None:
            return
        if isinstance(stamp, (bytes, bytearray)):
            stamp = Stamp.from_bytes(bytes(stamp))
        with self._lock:
            self._last = max(self._last, stamp.hlc)

    def now(self) -> Stamp:
        physical = self._wall_ms() << _LOGICAL_BITS
        with self._lock:
            self._last = max(self._last + 1, physical)
            return Stamp(self._last, self.writer_id)

    def stamp_after(self, *seen: bytes | None) -> bytes:
        """A stamp strictly greater than every stamp in `seen` and than anything issued before."""
        for s in seen:
            self.observe(s)
        return self.now().to_bytes()
