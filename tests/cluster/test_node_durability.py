"""kill -9 a node in the middle of a stream of writes: every acknowledged write survives."""
from __future__ import annotations

import asyncio
import os
import random
import struct

import pytest

from common.nodeclient import NodeClient, NodeError
from tests.cluster.nodeproc import NodeCluster, node_cluster  # noqa: F401  (fixture)

pytestmark = pytest.mark.cluster

WRITERS = 16
KILL_AFTER_ACKS = 400


def stamp(n: int) -> bytes:
    return struct.pack(">QQ", n, 0)


async def test_acknowledged_writes_survive_kill_9(node_cluster: NodeCluster) -> None:
    node, = node_cluster.start_nodes(1)
    rng = random.Random(7)
    shards: dict[bytes, bytes] = {}                       # acknowledged shard puts
    records: dict[bytes, tuple[bytes, bytes]] = {}        # key -> last acknowledged (stamp, value)
    acks = [0]

    async with NodeClient(node.address, timeout=2.0, retries=0) as client:
        async def writer(w: int) -> None:
            record_key = f"rec/{w}".encode()
            for i in range(1, 5000):
                try:
                    if i % 2:
                        key = f"shard/{w}/{i}".encode()
                        data = os.urandom(rng.choice((100, 4096, 70_000)))
                        await client.put_shard(key, data)
                        shards[key] = data
                        acks[0] += 1
                    else:
                        value = os.urandom(rng.randrange(1, 600))
                        applied, winner, _ = await client.put_record(record_key, stamp(i), value)
                        assert applied and winner == stamp(i)
                        records[record_key] = (stamp(i), value)
                        acks[0] += 1
                except NodeError:
                    return                                # the node is gone

        tasks = [asyncio.create_task(writer(w)) for w in range(WRITERS)]
        async with asyncio.timeout(60):
            while acks[0] < KILL_AFTER_ACKS:
                await asyncio.sleep(0.005)
        node.kill()                                       # writes are still in flight here
        await asyncio.gather(*tasks)
        assert acks[0] >= KILL_AFTER_ACKS and len(records) == WRITERS

        node.restart()
        # The same client reconnects to the restarted node by itself.
        assert (await client.ping(timeout=10))["node_id"] == node.node_id
        for key, data in shards.items():
            assert await client.get_shard(key) == data, key
        for key, (want_stamp, value) in records.items():
            got_stamp, got_value = await client.get_record(key)
            # A put that was applied but whose ack was lost to the kill may be newer.
            assert got_stamp >= want_stamp, key
            if got_stamp == want_stamp:
                assert got_value == value, key
        stats = await client.stats()
        assert stats["shards"] >= len(shards)
