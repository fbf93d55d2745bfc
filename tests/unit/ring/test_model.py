"""The read-only Ring: validation, lookups, immutability."""
from __future__ import annotations

import dataclasses
import math

import pytest
import xxhash
from hypothesis import given, settings, strategies as st

from ring.builder import build_ring
from ring.model import Node, Ring, zone_cap


def _nodes(count: int, zones: int = 3) -> list[Node]:
    return [Node(f"n{i:02d}", f"tcp://127.0.0.1:{7000 + i}", f"z{i % zones}") for i in range(count)]


@pytest.fixture(scope="module")
def ring() -> Ring:
    return build_ring(_nodes(9), k=4, m=2, part_power=8, seed=3)


# -- Node -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"id": ""}, {"id": " n1"}, {"address": ""}, {"zone": ""},
    {"weight": 0}, {"weight": -1.0}, {"weight": math.inf}, {"weight": math.nan},
    {"weight": True}, {"weight": "1"},
])
def test_node_rejects_bad_fields(kwargs):
    fields = {"id": "n1", "address": "tcp://127.0.0.1:7001", "zone": "a", "weight": 1.0} | kwargs
    with pytest.raises(ValueError):
        Node(**fields)


def test_node_weight_is_stored_as_float():
    node = Node("n1", "tcp://h:1", "a", 2)
    assert node.weight == 2.0 and isinstance(node.weight, float)


# -- zone_cap -------------------------------------------------------------------------------

@pytest.mark.parametrize("replicas, sizes, cap", [
    (6, [2, 2, 2], 2),      # 3 zones: at most 2 of 6 shards per zone (= m for RS(4,2))
    (6, [5, 5, 5], 2),
    (6, [4, 4], 3),
    (6, [3, 3, 3, 3], 2),   # ceil(6/4)
    (6, [6], 6),            # one zone: no spreading possible
    (6, [1, 1, 4], 4),      # zones too small to take 2 push the cap up just enough
    (6, [1, 2, 3], 3),
    (8, [3, 3, 3, 3], 2),
    (1, [1, 1], 1),
])
def test_zone_cap(replicas, sizes, cap):
    assert zone_cap(replicas, sizes) == cap


@given(replicas=st.integers(1, 10), sizes=st.lists(st.integers(1, 8), min_size=1, max_size=6))
@settings(max_examples=200, deadline=None)
def test_zone_cap_is_the_smallest_feasible_cap(replicas, sizes):
    if sum(sizes) < replicas:
        with pytest.raises(ValueError):
            zone_cap(replicas, sizes)
        return
    cap = zone_cap(replicas, sizes)
    assert sum(min(cap, s) for s in sizes) >= replicas
    assert cap == math.ceil(replicas / len(sizes)) or sum(min(cap - 1, s) for s in sizes) < replicas
    if min(sizes) >= math.ceil(replicas / len(sizes)):
        assert cap == math.ceil(replicas / len(sizes))


# -- Ring validation ------------------------------------------------------------------------

def _ring_with(nodes, table, **overrides) -> Ring:
    fields = {"version": 1, "k": 2, "m": 1, "part_power": 1, "seed": 0} | overrides
    return Ring(nodes=tuple(nodes), table=table, **fields)


def test_ring_accepts_a_valid_hand_made_table():
    ring = _ring_with(_nodes(3), ((0, 1, 2), (2, 0, 1)))
    assert ring.nodes_for_partition(1) == (ring.nodes[2], ring.nodes[0], ring.nodes[1])


@pytest.mark.parametrize("table, message", [
    (((0, 1, 2),), "rows"),                       # part_power 1 needs 2 rows
    (((0, 1, 2), (0, 1)), "k\\+m=3"),
    (((0, 1, 2), (0, 0, 1)), "same node twice"),
    (((0, 1, 2), (0, 1, 3)), "does not exist"),
    (((0, 1, 2), (0, 1, -1)), "does not exist"),
])
def test_ring_rejects_bad_tables(table, message):
    with pytest.raises(ValueError, match=message):
        _ring_with(_nodes(3), table)


def test_ring_rejects_a_partition_over_the_zone_cap():
    nodes = _nodes(6, zones=3)  # n00,n03 in z0; cap 1 for 3 shards over 3 zones
    with pytest.raises(ValueError, match="zone cap"):
        _ring_with(nodes, ((0, 3, 1), (1, 2, 4)))


@pytest.mark.parametrize("overrides, message", [
    ({"version": 0}, "version"), ({"k": 0}, "k >= 1"), ({"m": -1}, "m >= 0"),
    ({"part_power": 17}, "part_power"), ({"seed": 1.5}, "seed"),
])
def test_ring_rejects_bad_headers(overrides, message):
    with pytest.raises(ValueError, match=message):
        _ring_with(_nodes(3), ((0, 1, 2), (2, 0, 1)), **overrides)


def test_ring_rejects_duplicate_node_ids_and_too_few_nodes():
    nodes = _nodes(3)
    with pytest.raises(ValueError, match="duplicate"):
        _ring_with([nodes[0], nodes[1], nodes[1]], ((0, 1, 2), (2, 0, 1)))
    with pytest.raises(ValueError, match="cannot hold"):
        _ring_with(nodes[:2], ((0, 1), (1, 0)))


# -- lookups ----------------------------------------------------------------------------------

def test_partition_is_the_top_bits_of_unseeded_xxh3(ring):
    for name in (b"", b"bucket/key", b"\x00" * 100):
        assert ring.partition_for(name) == xxhash.xxh3_64_intdigest(name) >> (64 - 8)
    # Golden value: changing the hash would silently re-home every object in every cluster.
    assert ring.partition_for(b"") == 0x2D06800538D394C2 >> 56


@given(name=st.binary(max_size=64))
@settings(max_examples=100, deadline=None)
def test_nodes_for_is_the_row_of_the_partition(ring, name):
    p = ring.partition_for(name)
    assert 0 <= p < ring.partition_count
    nodes = ring.nodes_for(name)
    assert nodes == ring.nodes_for_partition(p)
    assert len(nodes) == ring.replicas == 6
    assert len({n.id for n in nodes}) == 6
    assert nodes == tuple(ring.nodes[i] for i in ring.table[p])


def test_part_power_zero_has_one_partition():
    ring = build_ring(_nodes(6), k=4, m=2, part_power=0, seed=1)
    assert ring.partition_count == 1
    assert ring.partition_for(b"anything") == 0
    assert len(ring.nodes_for(b"anything")) == 6


def test_nodes_for_partition_rejects_out_of_range(ring):
    with pytest.raises(IndexError):
        ring.nodes_for_partition(ring.partition_count)
    with pytest.raises(IndexError):
        ring.nodes_for_partition(-1)


def test_node_lookup_zones_and_assignments(ring):
    assert ring.node("n04").address == "tcp://127.0.0.1:7004"
    assert ring.has_node("n04") and not ring.has_node("nope")
    with pytest.raises(KeyError, match="nope"):
        ring.node("nope")
    assert ring.zones == ("z0", "z1", "z2")
    assert ring.zone_cap == 2
    held = ring.assignments_of("n04")
    index = ring.nodes.index(ring.node("n04"))
    assert held == tuple((p, i) for p in range(ring.partition_count)
                         for i in range(ring.replicas) if ring.table[p][i] == index)
    assert sum(len(ring.assignments_of(n.id)) for n in ring.nodes) == ring.partition_count * 6


def test_ring_is_immutable(ring):
    with pytest.raises(dataclasses.FrozenInstanceError):
        ring.version = 9  # type: ignore[misc]
    arr = ring.table_array()
    assert not arr.flags.writeable
    with pytest.raises(ValueError):
        arr[0, 0] = 1
    assert isinstance(ring.table, tuple) and isinstance(ring.table[0], tuple)
    assert isinstance(ring.nodes, tuple)


def test_rings_compare_by_content_and_hash():
    a = build_ring(_nodes(7), k=4, m=2, part_power=6, seed=5)
    b = build_ring(_nodes(7), k=4, m=2, part_power=6, seed=5)
    assert a == b and hash(a) == hash(b)
    assert a != dataclasses.replace(a, version=2)


def test_ring_table_entries_must_be_integers():
    with pytest.raises(ValueError, match="integer node indices"):
        _ring_with(_nodes(3), ((0, 1, 2), (2.0, 0, 1)))
