"""How many shard assignments each node should hold: weights, bent only by the zone rule.

The ideal is plain weight share: node i holds partitions * replicas * w_i / sum(w). Two hard
limits can make that impossible, and when they do the excess is spread over the others in
proportion to their weights (water-filling), first across zones, then within each zone:

- a zone holds at most min(zone_cap, nodes in zone) shards of every partition, and at least
  what the other zones cannot take;
- a node holds at most one shard of every partition (shards of a partition are distinct).

With equal-weight zones (or any weights that already respect those limits) the targets are
exactly the weight shares.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

from ring.model import Node, zone_cap

_BISECTION_STEPS = 200


def water_fill(weights: Sequence[float], lower: Sequence[float], upper: Sequence[float],
               total: float) -> list[float]:
    """Split `total` in proportion to `weights`, each share clamped to [lower, upper].

    Finds the scale s with sum(clamp(s * w_i, lo_i, hi_i)) == total by bisection (the sum is
    monotone in s). Requires sum(lower) <= total <= sum(upper).
    """
    if not sum(lower) - 1e-9 <= total <= sum(upper) + 1e-9:
        raise ValueError(f"cannot split {total} within bounds [{sum(lower)}, {sum(upper)}]")

    def shares(scale: float) -> list[float]:
        return [min(hi, max(lo, scale * w)) for w, lo, hi in zip(weights, lower, upper)]

    low, high = 0.0, 1.0
    while sum(shares(high)) < total:
        high *= 2.0
    for _ in range(_BISECTION_STEPS):
        mid = (low + high) / 2.0
        if sum(shares(mid)) < total:
            low = mid
        else:
            high = mid
        if high - low <= high * 1e-15:
            break
    return shares(high)


def target_assignments(nodes: Sequence[Node], replicas: int, part_power: int) -> list[float]:
    """Target assignment count per node (aligned with `nodes`); the targets sum to P * replicas."""
    partitions = 1 << part_power
    members: dict[str, list[int]] = defaultdict(list)
    for i, node in enumerate(nodes):
        members[node.zone].append(i)
    zones = sorted(members)
    sizes = [len(members[z]) for z in zones]
    cap = zone_cap(replicas, sizes)
    per_row_max = [min(cap, s) for s in sizes]
    room = sum(per_row_max)
    # A zone must hold whatever the other zones cannot, in every partition.
    per_row_min = [max(0, replicas - (room - hi)) for hi in per_row_max]
    zone_targets = water_fill(
        [sum(nodes[i].weight for i in members[z]) for z in zones],
        [partitions * lo for lo in per_row_min],
        [partitions * hi for hi in per_row_max],
        partitions * replicas,
    )
    targets = [0.0] * len(nodes)
    for zone, zone_total in zip(zones, zone_targets):
        idx = members[zone]
        shares = water_fill([nodes[i].weight for i in idx], [0.0] * len(idx),
                            [float(partitions)] * len(idx), zone_total)
        for i, share in zip(idx, shares):
            # Rounded so that exact targets (e.g. 2048.0) are exact, not 2047.9999999.
            targets[i] = round(share, 6)
    return targets
