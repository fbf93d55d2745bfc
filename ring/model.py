"""The read-only ring: an immutable, versioned partition -> nodes table.

A ring is built offline by `ring.builder.build_ring` and looked up here. Lookups are pure
arithmetic and tuple indexing: no I/O, no locks, no reloading. Swapping in a new ring is one
reference swap by whoever holds it.

    partition = top `part_power` bits of xxh3_64(name)          (unseeded: stable forever)
    nodes     = table[partition]                                 (index i holds shard i)

Every partition lists `k + m` distinct nodes, and no zone holds more than `zone_cap` of them,
so losing a whole zone loses at most `zone_cap` shards of any object (<= m when there are
enough zones). Both invariants are checked when a Ring is constructed, so a ring loaded from
a file is as trustworthy as one fresh from the builder.
"""
from __future__ import annotations

import math
import operator
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np
import xxhash

# 2**16 partitions keep the tuple table small (65536 rows) and the pure-Python builder fast;
# a cluster of this design never needs more than a few hundred partitions per node.
MAX_PART_POWER = 16
# Node indices are stored as uint16 in ring files.
MAX_NODES = 65535


@dataclass(frozen=True)
class Node:
    """One storage node as the ring sees it. `weight` is relative capacity (any unit)."""

    id: str
    address: str
    zone: str
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id or self.id != self.id.strip():
            raise ValueError(f"node id must be a non-empty string without surrounding spaces, got {self.id!r}")
        if not isinstance(self.address, str) or not self.address:
            raise ValueError(f"node {self.id!r}: address must be a non-empty string")
        if not isinstance(self.zone, str) or not self.zone:
            raise ValueError(f"node {self.id!r}: zone must be a non-empty string")
        weight = self.weight
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ValueError(f"node {self.id!r}: weight must be a number, got {weight!r}")
        if not (math.isfinite(weight) and weight > 0):
            raise ValueError(f"node {self.id!r}: weight must be finite and > 0, got {weight!r}")
        object.__setattr__(self, "weight", float(weight))


def zone_cap(replicas: int, zone_sizes: Iterable[int]) -> int:
    """Most shards of one partition that any single zone may hold.

    The smallest c such that the zones can still hold `replicas` distinct nodes when each
    contributes at most min(c, nodes in zone). With every zone holding at least
    ceil(replicas / zones) nodes this is exactly ceil(replicas / zones); a zone too small to
    take its share pushes the cap up just enough for the rest to carry it.
    """
    sizes = [s for s in zone_sizes if s > 0]
    if replicas < 1:
        raise ValueError(f"replicas must be >= 1, got {replicas}")
    if sum(sizes) < replicas:
        raise ValueError(f"{sum(sizes)} nodes cannot hold {replicas} distinct shards per partition")
    cap = math.ceil(replicas / len(sizes))
    while sum(min(cap, s) for s in sizes) < replicas:
        cap += 1
    return cap


@dataclass(frozen=True)
class Ring:
    """An immutable placement snapshot.

    `table[p][i]` is the index into `nodes` of the node holding shard i of partition p.
    `version` is the ring generation (1 for a fresh ring, +1 for every rebuild); `seed` is the
    builder seed that produced it (recorded so a rebuild can be reproduced).
    """

    version: int
    k: int
    m: int
    part_power: int
    seed: int
    nodes: tuple[Node, ...]
    table: tuple[tuple[int, ...], ...] = field(repr=False)
    # Derived lookup structures, built once in __post_init__.
    _rows: tuple[tuple[Node, ...], ...] = field(init=False, repr=False, compare=False)
    _by_id: Mapping[str, Node] = field(init=False, repr=False, compare=False)
    _shift: int = field(init=False, repr=False, compare=False)
    _zones: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._check_header()
        nodes = tuple(self.nodes)
        try:
            table = tuple(tuple(operator.index(i) for i in row) for row in self.table)
        except TypeError:
            raise ValueError("ring table entries must be integer node indices") from None
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "table", table)
        self._check_table()
        rows = tuple(tuple(nodes[i] for i in row) for row in table)
        object.__setattr__(self, "_rows", rows)
        object.__setattr__(self, "_by_id", {n.id: n for n in nodes})  # private, never mutated
        object.__setattr__(self, "_shift", 64 - self.part_power)
        object.__setattr__(self, "_zones", tuple(sorted({n.zone for n in nodes})))

    # -- validation -------------------------------------------------------------------------

    def _check_header(self) -> None:
        for name in ("version", "k", "m", "part_power", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"ring {name} must be an int, got {value!r}")
        if self.version < 1:
            raise ValueError(f"ring version must be >= 1, got {self.version}")
        if self.k < 1 or self.m < 0:
            raise ValueError(f"erasure policy needs k >= 1 and m >= 0, got k={self.k} m={self.m}")
        if not 0 <= self.part_power <= MAX_PART_POWER:
            raise ValueError(f"part_power must be in 0..{MAX_PART_POWER}, got {self.part_power}")
        if not all(isinstance(n, Node) for n in self.nodes):
            raise ValueError("ring nodes must be Node instances")
        ids = [n.id for n in self.nodes]
        dupes = sorted(i for i, c in Counter(ids).items() if c > 1)
        if dupes:
            raise ValueError(f"duplicate node ids in ring: {dupes}")
        if len(ids) > MAX_NODES:
            raise ValueError(f"a ring holds at most {MAX_NODES} nodes, got {len(ids)}")
        if len(ids) < self.replicas:
            raise ValueError(f"{len(ids)} nodes cannot hold k+m={self.replicas} distinct shards")

    def _check_table(self) -> None:
        if len(self.table) != self.partition_count:
            raise ValueError(f"ring table has {len(self.table)} rows, part_power {self.part_power} "
                             f"needs {self.partition_count}")
        if any(len(row) != self.replicas for row in self.table):
            raise ValueError(f"every ring table row must list k+m={self.replicas} nodes")
        arr = np.array(self.table, dtype=np.int64).reshape(self.partition_count, self.replicas)
        if arr.size and (arr.min() < 0 or arr.max() >= len(self.nodes)):
            raise ValueError("ring table refers to a node index that does not exist")
        ordered = np.sort(arr, axis=1)
        duplicate_rows = np.nonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))[0]
        if duplicate_rows.size:
            raise ValueError(f"partition {int(duplicate_rows[0])} lists the same node twice")
        zone_names = sorted({n.zone for n in self.nodes})
        zone_index = np.array([zone_names.index(n.zone) for n in self.nodes], dtype=np.int64)
        sizes = np.bincount(zone_index, minlength=len(zone_names))
        cap = zone_cap(self.replicas, sizes.tolist())
        zones_of_rows = zone_index[arr]
        for z, name in enumerate(zone_names):
            per_row = (zones_of_rows == z).sum(axis=1)
            if per_row.size and per_row.max() > cap:
                p = int(np.argmax(per_row))
                raise ValueError(f"partition {p} puts {int(per_row[p])} shards in zone {name!r}, "
                                 f"over the zone cap of {cap}")

    # -- policy -------------------------------------------------------------------------------

    @property
    def replicas(self) -> int:
        """Shards per partition: k data + m parity."""
        return self.k + self.m

    @property
    def partition_count(self) -> int:
        return 1 << self.part_power

    @property
    def zones(self) -> tuple[str, ...]:
        """The distinct zone names, sorted."""
        return self._zones

    @property
    def zone_cap(self) -> int:
        """Most shards of one partition any zone holds (losing a zone loses at most this many)."""
        return zone_cap(self.replicas, Counter(n.zone for n in self.nodes).values())

    # -- lookups (pure, no I/O) ------------------------------------------------------------

    def partition_for(self, name: bytes) -> int:
        """The partition of an object name: the top part_power bits of xxh3_64(name)."""
        return xxhash.xxh3_64_intdigest(name) >> self._shift

    def nodes_for_partition(self, partition: int) -> tuple[Node, ...]:
        """The k+m distinct nodes of a partition, in shard order (index i holds shard i)."""
        if not 0 <= partition < self.partition_count:
            raise IndexError(f"partition {partition} out of range 0..{self.partition_count - 1}")
        return self._rows[partition]

    def nodes_for(self, name: bytes) -> tuple[Node, ...]:
        """The k+m nodes holding the shards of `name`, in shard order."""
        return self._rows[xxhash.xxh3_64_intdigest(name) >> self._shift]

    def node(self, node_id: str) -> Node:
        try:
            return self._by_id[node_id]
        except KeyError:
            raise KeyError(f"node {node_id!r} is not in ring version {self.version}") from None

    def has_node(self, node_id: str) -> bool:
        return node_id in self._by_id

    def assignments_of(self, node_id: str) -> tuple[tuple[int, int], ...]:
        """Every (partition, shard index) the node holds, by partition (for scrub and repair)."""
        index = self.nodes.index(self.node(node_id))
        return tuple((p, i) for p, row in enumerate(self.table)
                     for i, holder in enumerate(row) if holder == index)

    def table_array(self) -> np.ndarray:
        """The table as a read-only (partitions, k+m) int32 array of node indices."""
        arr = np.array(self.table, dtype=np.int32).reshape(self.partition_count, self.replicas)
        arr.flags.writeable = False
        return arr

