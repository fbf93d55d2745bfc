"""Ring file format v1: round trip, atomic save, and refusal of anything untrustworthy."""
from __future__ import annotations

import base64
import json
import os

import numpy as np
import pytest
import xxhash
from hypothesis import given, settings, strategies as st

from ring import ringfile
from ring.builder import build_ring
from ring.model import Node, Ring
from ring.ringfile import FORMAT_VERSION, RingFileError


def _nodes(count: int, zones: int = 3) -> list[Node]:
    return [Node(f"node-{i}", f"tcp://127.0.0.1:{7000 + i}", f"zone-{i % zones}", 1.0 + (i % 3) / 2)
            for i in range(count)]


@pytest.fixture(scope="module")
def ring() -> Ring:
    return build_ring(_nodes(9), k=4, m=2, part_power=8, seed=11)


def _document(ring: Ring) -> dict:
    return json.loads(ringfile.dumps(ring))


def _with_table(document: dict, table: np.ndarray) -> bytes:
    raw = table.astype("<u2").tobytes()
    document["table"]["data"] = base64.b64encode(raw).decode()
    document["table"]["xxh3_64"] = xxhash.xxh3_64_hexdigest(raw)
    return json.dumps(document).encode()


# -- round trip ---------------------------------------------------------------------------------

@given(count=st.integers(6, 14), zones=st.integers(1, 4), part_power=st.integers(0, 7),
       seed=st.integers(-2**63, 2**63), version_bumps=st.integers(0, 2))
@settings(max_examples=25, deadline=None)
def test_save_load_round_trip(tmp_path_factory, count, zones, part_power, seed, version_bumps):
    nodes = _nodes(count, zones)
    ring = build_ring(nodes, k=4, m=2, part_power=part_power, seed=seed)
    for _ in range(version_bumps):
        ring = build_ring(nodes, k=4, m=2, part_power=part_power, seed=seed, previous=ring)
    path = tmp_path_factory.mktemp("ring") / "ring.json"
    ringfile.save(ring, path)
    loaded = ringfile.load(path)
    assert loaded == ring
    assert loaded.version == 1 + version_bumps
    for name in (b"", b"a", b"bucket/key"):
        assert loaded.nodes_for(name) == ring.nodes_for(name)


def test_the_file_is_readable_json_with_the_format_header(tmp_path, ring):
    path = tmp_path / "ring.json"
    ringfile.save(ring, path)
    document = json.loads(path.read_text())
    assert document["format"] == "cairn-ring"
    assert document["format_version"] == FORMAT_VERSION == 1
    assert (document["version"], document["k"], document["m"], document["part_power"],
            document["seed"]) == (1, 4, 2, 8, 11)
    assert document["nodes"][0] == {"id": "node-0", "address": "tcp://127.0.0.1:7000",
                                    "zone": "zone-0", "weight": 1.0}
    assert document["table"]["partitions"] == 256 and document["table"]["replicas"] == 6
    assert len(base64.b64decode(document["table"]["data"])) == 256 * 6 * 2


def test_save_replaces_atomically_and_leaves_no_temp_files(tmp_path, ring):
    path = tmp_path / "ring.json"
    ringfile.save(ring, path)
    newer = build_ring(ring.nodes, k=4, m=2, part_power=8, seed=11, previous=ring)
    ringfile.save(newer, str(path))  # str paths work too
    assert ringfile.load(path).version == 2
    assert os.listdir(tmp_path) == ["ring.json"]


def test_a_failed_save_keeps_the_old_file(tmp_path, ring, monkeypatch):
    path = tmp_path / "ring.json"
    ringfile.save(ring, path)
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk on fire")
    monkeypatch.setattr(ringfile.os, "replace", broken_replace)
    newer = build_ring(ring.nodes, k=4, m=2, part_power=8, seed=11, previous=ring)
    with pytest.raises(OSError, match="disk on fire"):
        ringfile.save(newer, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ring.json"]


# -- refusal ------------------------------------------------------------------------------------

def test_unknown_format_version_is_a_clear_error(ring):
    document = _document(ring)
    document["format_version"] = 2
    with pytest.raises(RingFileError, match="unsupported ring format_version 2"):
        ringfile.loads(json.dumps(document).encode())


@pytest.mark.parametrize("data, message", [
    (b"not json", "not a JSON ring file"),
    (b"[]", "not a cairn-ring file"),
    (b'{"format": "something-else", "format_version": 1}', "not a cairn-ring file"),
    (b'{"format": "cairn-ring"}', "format_version None"),
])
def test_foreign_documents_are_refused(data, message):
    with pytest.raises(RingFileError, match=message):
        ringfile.loads(data)


def test_load_names_the_file_in_its_error(tmp_path):
    path = tmp_path / "broken.json"
    path.write_bytes(b"{")
    with pytest.raises(RingFileError, match="broken.json"):
        ringfile.load(path)


def test_a_damaged_table_fails_its_checksum(ring):
    document = _document(ring)
    raw = bytearray(base64.b64decode(document["table"]["data"]))
    raw[0] ^= 1
    document["table"]["data"] = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(RingFileError, match="checksum"):
        ringfile.loads(json.dumps(document).encode())


def test_a_partition_listing_a_node_twice_is_refused(ring):
    table = ring.table_array().copy()
    table[5, 1] = table[5, 0]
    with pytest.raises(RingFileError, match="partition 5 lists the same node twice"):
        ringfile.loads(_with_table(_document(ring), table))


def test_a_table_naming_an_unknown_node_is_refused(ring):
    table = ring.table_array().copy()
    table[0, 0] = len(ring.nodes)
    with pytest.raises(RingFileError, match="node index 9"):
        ringfile.loads(_with_table(_document(ring), table))


def test_a_table_breaking_the_zone_cap_is_refused(ring):
    document = _document(ring)
    table = ring.table_array().copy()
    zone0 = [i for i, n in enumerate(ring.nodes) if n.zone == "zone-0"]
    row = [i for i in table[0] if i not in zone0][: 6 - 3] + zone0  # 3 shards in zone-0
    table[0] = row
    with pytest.raises(RingFileError, match="zone cap"):
        ringfile.loads(_with_table(document, table))


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("nodes"), "missing field 'nodes'"),
    (lambda d: d.update(k="4"), "field 'k' has the wrong type"),
    (lambda d: d.update(version=True), "field 'version' has the wrong type"),
    (lambda d: d["nodes"].append(dict(d["nodes"][0])), "duplicate node ids"),
    (lambda d: d["nodes"][0].update(weight=0), "weight must be finite and > 0"),
    (lambda d: d["table"].update(encoding="npy"), "unknown table encoding"),
    (lambda d: d["table"].update(partitions=128), "not 128 x 6"),
    (lambda d: d["table"].update(data="***"), "not base64"),
    (lambda d: d.update(part_power=7), "part_power 7 needs 128"),
])
def test_malformed_fields_are_refused(ring, mutate, message):
    document = _document(ring)
    mutate(document)
    with pytest.raises(RingFileError, match=message):
        ringfile.loads(json.dumps(document).encode())


def test_ring_file_error_is_a_value_error():
    assert issubclass(RingFileError, ValueError)
