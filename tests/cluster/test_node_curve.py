"""CurveZMQ: only clients whose key is in authorized/ get an answer."""
from __future__ import annotations

import pytest
import zmq

from common.keys import ClientKeys, generate_cluster_keys, load_client_keys
from common.nodeclient import NodeClient, NodeTimeout, NodeUnavailable
from tests.cluster.nodeproc import NodeCluster

pytestmark = pytest.mark.cluster


async def test_only_authorised_clients_are_served(tmp_path) -> None:
    keys_dir = tmp_path / "keys"
    generate_cluster_keys(keys_dir)
    good = load_client_keys(keys_dir)
    rogue_public, rogue_secret = zmq.curve_keypair()
    rogue = ClientKeys(rogue_public, rogue_secret, good.server_public)
    wrong_server = ClientKeys(good.public, good.secret, zmq.curve_keypair()[0])

    with NodeCluster(tmp_path / "nodes", keys_dir=keys_dir) as cluster:
        node, = cluster.start_nodes(1)                    # its readiness check uses CURVE
        async with NodeClient(node.address, keys=good) as client:
            await client.put_shard(b"k", b"secret bytes")
            assert await client.get_shard(b"k") == b"secret bytes"

        for keys in (None, rogue, wrong_server):
            async with NodeClient(node.address, keys=keys, timeout=1.0, retries=0) as outsider:
                with pytest.raises((NodeUnavailable, NodeTimeout)):
                    await outsider.get_shard(b"k")
                with pytest.raises((NodeUnavailable, NodeTimeout)):
                    await outsider.put_shard(b"k2", b"intruder")

        async with NodeClient(node.address, keys=good) as client:
            assert await client.get_shard(b"k") == b"secret bytes"
            assert (await client.scan_shards(b""))[0] == [(b"k", 12)]   # nothing was let in
