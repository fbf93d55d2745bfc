"""A node whose map reaches its maximum refuses writes with FULL and keeps serving the rest."""
from __future__ import annotations

import os
import struct

import pytest

from common.nodeclient import NodeClient, NodeFull
from tests.cluster.nodeproc import MiB, NodeCluster, node_cluster  # noqa: F401  (fixture)

pytestmark = pytest.mark.cluster

SHARD = 128 * 1024


async def test_full_node_refuses_writes_but_reads_and_deletes(node_cluster: NodeCluster) -> None:
    node, = node_cluster.start_nodes(1, map_size=1 * MiB, map_size_max=4 * MiB)
    stored: dict[bytes, bytes] = {}
    async with NodeClient(node.address) as client:
        await client.put_record(b"rec", struct.pack(">QQ", 1, 0), b"before full")
        with pytest.raises(NodeFull, match="full"):
            for i in range(100):                          # 12.5 MiB: far beyond the 4 MiB map
                data = os.urandom(SHARD)
                await client.put_shard(b"s%03d" % i, data)
                stored[b"s%03d" % i] = data
        assert len(stored) >= 10                          # the map did grow from its 1 MiB
        stats = await client.stats()
        assert 2 * MiB <= stats["map_size"] <= stats["map_size_max"] == 4 * MiB

        # Reads still work, byte-exact.
        for key, data in stored.items():
            assert await client.get_shard(key) == data
        assert await client.get_record(b"rec") == (struct.pack(">QQ", 1, 0), b"before full")
        page, more = await client.scan_shards(b"s")
        assert [k for k, _ in page] == sorted(stored) and not more

        # Deletes work while full, and the space they free takes new writes.
        for key in sorted(stored)[:4]:
            assert await client.delete_shard(key) is True
            del stored[key]
        assert await client.delete_record(b"rec") is True
        await client.put_shard(b"after", b"x" * SHARD)
        assert await client.get_shard(b"after") == b"x" * SHARD
        assert (await client.ping())["node_id"] == node.node_id
        assert (await client.stats())["map_size"] <= 4 * MiB
