"""Human and machine summaries of a ring (for `cairn ring show` and rebuild reports)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ring.model import Ring
from ring.targets import target_assignments


@dataclass(frozen=True)
class NodeSummary:
    id: str
    address: str
    zone: str
    weight: float
    assignments: int       # shards of partitions held (any index)
    data_shards: int       # of which shard index < k (read first by GETs)
    share: float           # assignments / all assignments
    weight_share: float    # weight / total weight: the ideal when the zone rule allows it
    target_share: float    # what the builder aims for: weight share bent by the zone rule

    @property
    def deviation(self) -> float:
        """share / target_share - 1 (0.02 = 2 % above target)."""
        return self.share / self.target_share - 1.0


@dataclass(frozen=True)
class ZoneSummary:
    zone: str
    nodes: int
    assignments: int
    share: float
    max_per_partition: int  # most shards of one partition in this zone (<= the zone cap)


def summarize(ring: Ring) -> tuple[tuple[NodeSummary, ...], tuple[ZoneSummary, ...]]:
    """Per-node and per-zone figures, nodes in ring order, zones sorted by name."""
    table = ring.table_array()
    total = table.size
    counts = np.bincount(table.ravel(), minlength=len(ring.nodes))
    data = np.bincount(table[:, :ring.k].ravel(), minlength=len(ring.nodes))
    targets = target_assignments(ring.nodes, ring.replicas, ring.part_power)
    weight_total = sum(n.weight for n in ring.nodes)
    nodes = tuple(
        NodeSummary(id=n.id, address=n.address, zone=n.zone, weight=n.weight,
                    assignments=int(counts[i]), data_shards=int(data[i]),
                    share=counts[i] / total, weight_share=n.weight / weight_total,
                    target_share=targets[i] / total)
        for i, n in enumerate(ring.nodes))
    zone_of = np.array([ring.zones.index(n.zone) for n in ring.nodes])
    in_zone = zone_of[table]
    zones = []
    for z, name in enumerate(ring.zones):
        per_row = (in_zone == z).sum(axis=1)
        held = int(per_row.sum())
        zones.append(ZoneSummary(zone=name, nodes=int((zone_of == z).sum()), assignments=held,
                                 share=held / total, max_per_partition=int(per_row.max())))
    return nodes, tuple(zones)


def describe(ring: Ring) -> str:
    """A plain-text report: header, one line per zone, one line per node."""
    nodes, zones = summarize(ring)
    lines = [
        f"ring version {ring.version}: {ring.partition_count} partitions (part_power "
        f"{ring.part_power}) x {ring.replicas} shards (k={ring.k}, m={ring.m}), seed {ring.seed}",
        f"{len(ring.nodes)} nodes in {len(zones)} zones; zone cap {ring.zone_cap} shards per "
        f"partition (losing one zone loses at most {ring.zone_cap}, m={ring.m})",
        "",
        f"{'zone':<16} {'nodes':>5} {'assigned':>9} {'share':>7} {'max/part':>8}",
    ]
    lines += [f"{z.zone:<16} {z.nodes:>5} {z.assignments:>9} {z.share:>7.2%} "
              f"{z.max_per_partition:>8}" for z in zones]
    lines += ["", f"{'node':<16} {'zone':<10} {'weight':>7} {'assigned':>9} {'data':>6} "
                  f"{'share':>7} {'target':>7} {'weight%':>7} {'dev':>7}  address"]
    lines += [f"{n.id:<16} {n.zone:<10} {n.weight:>7g} {n.assignments:>9} {n.data_shards:>6} "
              f"{n.share:>7.2%} {n.target_share:>7.2%} {n.weight_share:>7.2%} "
              f"{n.deviation:>+7.2%}  {n.address}" for n in nodes]
    return "\n".join(lines)
