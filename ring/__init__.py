"""Consistent-hash placement: which k+m distinct nodes hold the shards of an object.

Pure: lookups on a Ring are arithmetic and tuple indexing, never I/O. Rings are built offline
(`build_ring`, seeded and deterministic) and stored with `ringfile.save` / `ringfile.load`.
"""
from ring.builder import build_ring
from ring.describe import describe, summarize
from ring.model import MAX_PART_POWER, Node, Ring, zone_cap
from ring.movement import ideal_movement, moved_assignments
from ring.ringfile import RingFileError
from ring.targets import target_assignments

__all__ = [
    "MAX_PART_POWER", "Node", "Ring", "RingFileError", "build_ring", "describe",
    "ideal_movement", "moved_assignments", "summarize", "target_assignments", "zone_cap",
]
