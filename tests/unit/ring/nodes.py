"""Node lists for the ring tests."""
from __future__ import annotations

from ring.model import Node


def make_nodes(zone_weights: list[list[float]]) -> list[Node]:
    """Nodes named n00.., zone z<i> holding the weights listed for it."""
    nodes = []
    for z, weights in enumerate(zone_weights):
        for w in weights:
            i = len(nodes)
            nodes.append(Node(f"n{i:02d}", f"tcp://127.0.0.1:{7000 + i}", f"z{z}", w))
    return nodes
