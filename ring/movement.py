"""How much a rebuild moved, and the least any builder could have moved.

Both work on shard slots: (partition, shard index) pairs. A slot "moves" when its holder
changes, which costs one shard copy in the cluster.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ring.model import Node, Ring, zone_cap
from ring.targets import target_assignments


def moved_assignments(before: Ring, after: Ring) -> int:
    """How many slots changed holder (compared by node id) between two rings.

    Rings of different part_power are compared at the finer one (a partition of the coarser
    ring covers 2**d of the finer). Both rings must have the same shards per partition.
    """
    if before.replicas != after.replicas:
        raise ValueError(f"rings hold {before.replicas} and {after.replicas} shards per "
                         f"partition: every slot changes meaning")
    power = max(before.part_power, after.part_power)
    holders = []
    for ring in (before, after):
        ids = np.array([n.id for n in ring.nodes], dtype=object)
        rows = np.arange(1 << power) >> (power - ring.part_power)
        holders.append(ids[ring.table_array()[rows]])
    return int((holders[0] != holders[1]).sum())


def ideal_movement(previous: Ring, nodes: Sequence[Node]) -> int:
    """A lower bound on the slots any builder must move to turn `previous` into a ring over
    `nodes` (same part_power and k+m) in which every node holds at least floor(target).

    The larger of two counts, each a move-by-move argument:
    - per node: every slot a node is short of its target arrives by one move, and every
      slot above it (or of a removed node) leaves by one;
    - per zone: a zone short of its target gains a slot either in a slot a removed node
      emptied in a partition where the zone is below the cap, or by displacing a node of
      another zone (one more move on top of refilling every emptied slot).
    It ignores that both must hold at once, so the true minimum can be somewhat higher.
    """
    ordered = sorted(nodes, key=lambda n: n.id)
    targets = np.array(target_assignments(ordered, previous.replicas, previous.part_power))
    floor_targets = np.floor(targets + 1e-9).astype(np.int64)
    index = {n.id: i for i, n in enumerate(ordered)}
    remap = np.array([index.get(n.id, -1) for n in previous.nodes] + [-1], dtype=np.int64)
    table = remap[previous.table_array()]
    survivors = table[table >= 0]
    held = np.bincount(survivors, minlength=len(ordered))
    ceil_targets = np.ceil(targets - 1e-9).astype(np.int64)
    emptied = (table < 0).sum(axis=1)
    # Every slot a node lacks arrives by one move; every slot it holds beyond its target
    # (and every slot of a removed node) leaves by one.
    node_bound = max(int(np.maximum(0, floor_targets - held).sum()),
                     int(emptied.sum() + np.maximum(0, held - ceil_targets).sum()))

    zone_names = sorted({n.zone for n in ordered})
    zone_of = np.array([zone_names.index(n.zone) for n in ordered] + [-1])
    cap = zone_cap(previous.replicas, np.bincount(zone_of[:-1]).tolist())
    row_zones = zone_of[table]
    short = 0
    for z in range(len(zone_names)):
        in_zone = (row_zones == z).sum(axis=1)
        usable = np.minimum(emptied, np.maximum(0, cap - in_zone)).sum()
        need = floor_targets[zone_of[:-1] == z].sum() - in_zone.sum()
        short += max(0, int(need - usable))
    zone_bound = int(emptied.sum()) + short
    return max(node_bound, zone_bound)
