"""Target assignment counts: weight shares, bent only by the zone rule."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from ring.model import Node
from ring.targets import target_assignments, water_fill


def _nodes(zone_weights: list[list[float]]) -> list[Node]:
    nodes = []
    for z, weights in enumerate(zone_weights):
        for w in weights:
            nodes.append(Node(f"n{len(nodes)}", "tcp://127.0.0.1:1", f"z{z}", w))
    return nodes


@given(weights=st.lists(st.floats(0.1, 10), min_size=1, max_size=8), data=st.data())
@settings(max_examples=100, deadline=None)
def test_water_fill_respects_bounds_and_proportions(weights, data):
    upper = [data.draw(st.floats(0.5, 50)) for _ in weights]
    lower = [data.draw(st.floats(0, u)) for u in upper]
    total = data.draw(st.floats(sum(lower), sum(upper)))
    shares = water_fill(weights, lower, upper, total)
    assert sum(shares) == pytest.approx(total, rel=1e-9, abs=1e-9)
    for share, lo, hi in zip(shares, lower, upper):
        assert lo - 1e-9 <= share <= hi + 1e-9
    # Shares strictly inside their bounds are all the same multiple of their weight.
    free = [s / w for s, w, lo, hi in zip(shares, weights, lower, upper)
            if lo + 1e-6 < s < hi - 1e-6]
    assert all(r == pytest.approx(free[0], rel=1e-6) for r in free)


def test_water_fill_refuses_an_impossible_total():
    with pytest.raises(ValueError):
        water_fill([1.0, 1.0], [0.0, 0.0], [1.0, 1.0], 3.0)


def test_feasible_weights_give_plain_weight_shares():
    nodes = _nodes([[1.0, 2.0, 3.0], [2.0, 2.0, 2.0], [3.0, 2.0, 1.0]])
    targets = target_assignments(nodes, 6, 10)
    total_weight = sum(n.weight for n in nodes)
    assert targets == pytest.approx([1024 * 6 * n.weight / total_weight for n in nodes])


def test_a_heavy_zone_is_held_to_the_cap_and_the_rest_share_by_weight():
    # Zone z0 has half the weight (3 of 6 shards) but the cap over 4 zones is 2 of 6.
    nodes = _nodes([[6.0, 6.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 2.0, 2.0]])
    targets = target_assignments(nodes, 6, 10)
    assert targets[:2] == pytest.approx([1024, 1024])
    # The other 4 shards per partition go 3:3:6 by zone weight, then by node weight.
    assert targets[2:8] == pytest.approx([1024 / 3] * 6)
    assert targets[8:] == pytest.approx([2048 / 6, 2048 / 6, 4096 / 6, 4096 / 6])


def test_a_heavy_node_is_held_to_one_shard_per_partition():
    nodes = _nodes([[10.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]])
    targets = target_assignments(nodes, 4, 8)
    assert targets[0] == pytest.approx(256)
    assert targets[1:] == pytest.approx([3 * 256 / 6] * 6)


def test_a_zone_too_small_for_its_share_pushes_work_to_the_others():
    # 6 shards over zones of 1, 1 and 4 nodes: cap 4; the single-node zones hold at most one
    # shard per partition each, so the big zone must hold at least 4.
    nodes = _nodes([[5.0], [5.0], [1.0, 1.0, 1.0, 1.0]])
    targets = target_assignments(nodes, 6, 6)
    assert targets[:2] == pytest.approx([64, 64])
    assert targets[2:] == pytest.approx([64] * 4)
    assert sum(targets) == pytest.approx(64 * 6)


@given(zone_weights=st.lists(st.lists(st.sampled_from([0.5, 1.0, 2.0, 5.0]), min_size=1, max_size=5),
                             min_size=1, max_size=4),
       replicas=st.integers(1, 8))
@settings(max_examples=100, deadline=None)
def test_targets_are_always_achievable_per_partition(zone_weights, replicas):
    nodes = _nodes(zone_weights)
    if len(nodes) < replicas:
        return
    targets = target_assignments(nodes, replicas, 4)
    assert sum(targets) == pytest.approx(16 * replicas, abs=1e-3)
    assert all(-1e-6 <= t <= 16 + 1e-6 for t in targets)
