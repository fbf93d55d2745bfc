"""describe / summarize: the figures behind `cairn ring show`."""
from __future__ import annotations

import pytest

from ring.builder import build_ring
from ring.describe import describe, summarize
from ring.model import Node


@pytest.fixture(scope="module")
def ring():
    nodes = [Node(f"n{i}", f"tcp://127.0.0.1:{7000 + i}", f"z{i % 3}", 2.0 if i < 3 else 1.0)
             for i in range(9)]
    return build_ring(nodes, k=4, m=2, part_power=9, seed=1)


def test_node_summaries_add_up(ring):
    nodes, zones = summarize(ring)
    assert [s.id for s in nodes] == [n.id for n in ring.nodes]
    assert sum(s.assignments for s in nodes) == 512 * 6
    assert sum(s.data_shards for s in nodes) == 512 * 4
    assert sum(s.share for s in nodes) == pytest.approx(1.0)
    assert sum(s.weight_share for s in nodes) == pytest.approx(1.0)
    assert sum(s.target_share for s in nodes) == pytest.approx(1.0)
    heavy = next(s for s in nodes if s.id == "n0")
    light = next(s for s in nodes if s.id == "n3")
    assert (heavy.weight, heavy.zone, heavy.address) == (2.0, "z0", "tcp://127.0.0.1:7000")
    # Each zone weighs 4 (2 + 1 + 1): the heavy node holds half of its zone's third.
    assert heavy.assignments == pytest.approx(512 * 6 / 6, abs=1)
    assert light.assignments == pytest.approx(512 * 6 / 12, abs=1)
    assert abs(heavy.deviation) < 0.01 and abs(light.deviation) < 0.01


def test_zone_summaries_show_the_spread(ring):
    _, zones = summarize(ring)
    assert [z.zone for z in zones] == ["z0", "z1", "z2"]
    for zone in zones:
        assert zone.nodes == 3
        assert zone.assignments == 1024
        assert zone.share == pytest.approx(1 / 3)
        assert zone.max_per_partition == 2


def test_describe_is_a_readable_report(ring):
    text = describe(ring)
    assert text.splitlines()[0] == ("ring version 1: 512 partitions (part_power 9) x 6 shards "
                                    "(k=4, m=2), seed 1")
    assert "zone cap 2 shards per partition" in text
    node_lines = [line for line in text.splitlines() if line.startswith("n") and line[1].isdigit()]
    assert [line.split()[0] for line in node_lines] == [f"n{i}" for i in range(9)]
    n0 = node_lines[0].split()
    assert n0[1] == "z0" and n0[2] == "2" and int(n0[3]) == summarize(ring)[0][0].assignments
    assert n0[-1] == "tcp://127.0.0.1:7000"
