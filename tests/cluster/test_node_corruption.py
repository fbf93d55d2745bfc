"""Bytes flipped in the LMDB file are reported as corrupt, never served as good."""
from __future__ import annotations

import os
import struct

import pytest

from common.nodeclient import Corrupt, NodeClient
from tests.cluster.nodeproc import NodeCluster, node_cluster  # noqa: F401  (fixture)

pytestmark = pytest.mark.cluster


def flip_everywhere(path: os.PathLike, needle: bytes, offset_in_needle: int) -> int:
    """Flip one bit at the same place in every copy of `needle` in the file (LMDB keeps stale
    copies in freed pages, so there may be more than one). Returns the number of copies."""
    raw = bytearray(open(path, "rb").read())
    count = 0
    pos = raw.find(needle)
    while pos >= 0:
        raw[pos + offset_in_needle] ^= 0x04
        count += 1
        pos = raw.find(needle, pos + 1)
    with open(path, "wb") as f:
        f.write(raw)
    return count


async def test_flipped_bytes_are_detected(node_cluster: NodeCluster) -> None:
    node, = node_cluster.start_nodes(1)
    victim, bystander = os.urandom(64 * 1024), os.urandom(64 * 1024)
    record_value, other_value = os.urandom(300), os.urandom(300)
    stamp = struct.pack(">QQ", 1, 2)
    async with NodeClient(node.address) as client:
        await client.put_shard(b"victim", victim)
        await client.put_shard(b"bystander", bystander)
        await client.put_record(b"rec/a-victim", stamp, record_value)
        await client.put_record(b"rec/b-ok", stamp, other_value)
    assert node.stop() == 0                               # SIGTERM: a clean shutdown

    data_file = node.data_dir / "data.mdb"
    assert flip_everywhere(data_file, victim[40_000:40_064], 10) >= 1
    assert flip_everywhere(data_file, record_value[100:164], 5) >= 1

    node.restart()
    async with NodeClient(node.address) as client:
        with pytest.raises(Corrupt):
            await client.get_shard(b"victim")
        with pytest.raises(Corrupt):                       # a slice far from the damage too
            await client.get_shard(b"victim", 0, 16)
        assert await client.get_shard(b"bystander") == bystander

        with pytest.raises(Corrupt):
            await client.get_record(b"rec/a-victim")
        page = await client.scan_records(b"rec/")
        assert page.corrupt == [b"rec/a-victim"]
        assert page.items == [(b"rec/b-ok", stamp, other_value)]

        # Writing the good bytes again repairs both.
        await client.put_shard(b"victim", victim)
        assert await client.get_shard(b"victim") == victim
        applied = (await client.put_record(b"rec/a-victim", stamp, record_value)).applied
        assert applied
        assert await client.get_record(b"rec/a-victim") == (stamp, record_value)
