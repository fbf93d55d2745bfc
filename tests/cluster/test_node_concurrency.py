"""Many requests over one client connection, completing out of order."""
from __future__ import annotations

import asyncio
import os
import struct
import time

import pytest

from common.nodeclient import NodeClient, NotFound
from tests.cluster.nodeproc import MiB, NodeCluster, node_cluster  # noqa: F401  (fixture)

pytestmark = pytest.mark.cluster


async def test_many_concurrent_requests_complete(node_cluster: NodeCluster) -> None:
    node, = node_cluster.start_nodes(1)
    blobs = {b"c/%04d" % i: os.urandom(512 + i) for i in range(300)}
    async with NodeClient(node.address) as client:
        await asyncio.gather(*(client.put_shard(k, v) for k, v in blobs.items()),
                             *(client.put_record(k, struct.pack(">QQ", 1, i), v[:64])
                               for i, (k, v) in enumerate(blobs.items())))
        got = await asyncio.gather(*(client.get_shard(k) for k in blobs))
        assert got == list(blobs.values())
        records = await asyncio.gather(*(client.get_record(k) for k in blobs))
        assert [v for _, v in records] == [v[:64] for v in blobs.values()]
        with pytest.raises(NotFound):
            await client.get_shard(b"c/none")
        stats = await client.stats()
        assert stats["shards"] == stats["records"] == 300
        # 600 concurrent writes were group-committed into far fewer transactions.
        assert stats["write_batches"] < stats["write_ops"] // 4


async def test_large_read_does_not_hold_up_small_ones(node_cluster: NodeCluster) -> None:
    node, = node_cluster.start_nodes(1)
    big = os.urandom(64 * MiB)
    async with NodeClient(node.address, timeout=30) as client:
        await client.put_shard(b"big", big)
        await asyncio.gather(*(client.put_record(b"r%02d" % i, bytes(16), b"v%d" % i)
                               for i in range(40)))
        done: dict[str, float] = {}

        async def timed(name: str, call) -> object:
            result = await call
            done[name] = time.monotonic()
            return result

        large = asyncio.create_task(timed("big", client.get_shard(b"big")))
        await asyncio.sleep(0)                            # the big request goes out first
        small = await asyncio.gather(*(timed(f"r{i}", client.get_record(b"r%02d" % i))
                                       for i in range(40)))
        assert await large == big
        assert [v for _, v in small] == [b"v%d" % i for i in range(40)]
        last_small = max(t for name, t in done.items() if name != "big")
        assert last_small < done["big"], "small reads waited for the 64 MiB read"
