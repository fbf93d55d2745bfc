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

        # Several big reads go out first and keep the node's reader threads busy for a while
        # (each is read, checksummed and sent whole), so the ordering below does not hinge on
        # one 64 MiB read happening to be quick on a loaded machine.
        large = [asyncio.create_task(timed(f"big{i}", client.get_shard(b"big"))) for i in range(6)]
        await asyncio.sleep(0)
        small = await asyncio.gather(*(timed(f"r{i}", client.get_record(b"r%02d" % i))
                                       for i in range(40)))
        assert all(got == big for got in await asyncio.gather(*large))
        assert [v for _, v in small] == [b"v%d" % i for i in range(40)]
        last_small = max(t for name, t in done.items() if name.startswith("r"))
        last_big = max(t for name, t in done.items() if name.startswith("big"))
        assert last_small < last_big, "small reads waited for the 64 MiB reads"
