"""Store against a real LMDB environment in a temp dir."""
from __future__ import annotations

import struct

import lmdb
import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from storagenode import layout
from storagenode.store import (CorruptError, FormatError, FullError, NotFoundError, Store,
                               StoreError, delete_reserve)
from storagenode.writeops import RecordDelete, RecordPut, ShardDelete, ShardPut

MiB = 1 << 20


def stamp(n: int) -> bytes:
    return struct.pack(">QQ", n, 0)


def put_shard(key: bytes, data: bytes) -> ShardPut:
    return ShardPut(key, xxhash.xxh3_128_digest(data), data)


def open_store(path, node_id="n1", map_size=1 * MiB, map_size_max=64 * MiB) -> Store:
    return Store(path, node_id, map_size=map_size, map_size_max=map_size_max)


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "db") as s:
        yield s


def raw_env(path) -> lmdb.Environment:
    return lmdb.open(str(path), max_dbs=4)


def test_shard_round_trip_and_ranges(store):
    data = bytes(range(256)) * 40
    assert store.write_batch([put_shard(b"s", data)]) == [None]
    whole = store.get_shard(b"s")
    assert whole == (len(data), xxhash.xxh3_128_digest(data), data)
    assert store.get_shard(b"s", 10, 5).data == data[10:15]
    assert store.get_shard(b"s", len(data) - 3, 100).data == data[-3:]     # clamped at the end
    assert store.get_shard(b"s", len(data)).data == b""
    with pytest.raises(ValueError):
        store.get_shard(b"s", len(data) + 1)
    with pytest.raises(NotFoundError):
        store.get_shard(b"missing")
    assert store.write_batch([ShardDelete(b"s"), ShardDelete(b"s")]) == [True, False]
    with pytest.raises(NotFoundError):
        store.get_shard(b"s")


def test_values_on_disk_carry_version_and_checksum(tmp_path):
    with open_store(tmp_path / "db") as s:
        s.write_batch([put_shard(b"s", b"payload"), RecordPut(b"r", stamp(5), b"value", 2)])
    env = raw_env(tmp_path / "db")
    with env.begin() as txn:
        shard = txn.get(b"s", db=env.open_db(b"shards", txn=txn, create=False))
        record = txn.get(b"r", db=env.open_db(b"records", txn=txn, create=False))
    env.close()
    assert shard == b"\x01" + xxhash.xxh3_128_digest(b"payload") + b"payload"
    head = struct.pack(">I", 2)
    check = struct.pack(">Q", xxhash.xxh3_64_intdigest(stamp(5) + head + b"value"))
    assert record == b"\x02" + stamp(5) + check + head + b"value"


def test_version_1_records_are_still_read(tmp_path):
    check = struct.pack(">Q", xxhash.xxh3_64_intdigest(stamp(5) + b"value"))
    v1 = b"\x01" + stamp(5) + check + b"value"
    assert layout.decode_record(v1) == (stamp(5), b"value")
    assert layout.decode_record(v1, head_only=True) == (stamp(5), b"value")
    with pytest.raises(layout.CorruptValue):
        layout.decode_record(v1[:-1] + b"x")


def test_a_heads_scan_returns_each_record_cut_to_its_head(tmp_path):
    with open_store(tmp_path / "db") as s:
        s.write_batch([RecordPut(b"p/a", stamp(1), b"HEADtail", 4),
                       RecordPut(b"p/b", stamp(2), b"whole")])
        page = s.scan_records(b"p/", None, 10, heads=True)
        assert page.values == [b"HEAD", b"whole"] and page.stamps == [stamp(1), stamp(2)]
        assert s.scan_records(b"p/", None, 10).values == [b"HEADtail", b"whole"]
        assert s.get_record(b"p/a") == (stamp(1), b"HEADtail")
        with pytest.raises(ValueError):
            s.write_batch([RecordPut(b"p/c", stamp(3), b"ab", 3)])


@pytest.mark.parametrize("position", [0, 1, 16, 17, 500])   # version, digest, first/middle data
def test_damaged_shard_is_corrupt_even_for_a_small_slice(tmp_path, position):
    data = b"d" * 1000
    with open_store(tmp_path / "db") as s:
        s.write_batch([put_shard(b"s", data)])
    env = raw_env(tmp_path / "db")
    with env.begin(write=True) as txn:
        db = env.open_db(b"shards", txn=txn, create=False)
        value = bytearray(txn.get(b"s", db=db))
        value[position] ^= 0x80
        txn.put(b"s", bytes(value), db=db)
    env.close()
    with open_store(tmp_path / "db") as s:
        with pytest.raises(CorruptError):
            s.get_shard(b"s", 900, 10)
        s.write_batch([put_shard(b"s", data)])          # a repeated put repairs it
        assert s.get_shard(b"s").data == data


def test_damaged_record_is_reported_and_replaceable(tmp_path):
    with open_store(tmp_path / "db") as s:
        s.write_batch([RecordPut(b"a", stamp(1), b"x" * 50), RecordPut(b"b", stamp(9), b"y" * 50)])
    env = raw_env(tmp_path / "db")
    with env.begin(write=True) as txn:
        db = env.open_db(b"records", txn=txn, create=False)
        value = bytearray(txn.get(b"b", db=db))
        value[-1] ^= 1
        txn.put(b"b", bytes(value), db=db)
    env.close()
    with open_store(tmp_path / "db") as s:
        with pytest.raises(CorruptError):
            s.get_record(b"b")
        page = s.scan_records(b"", None, 10)
        assert (page.keys, page.corrupt) == ([b"a"], [b"b"])
        # A conditional delete cannot compare stamps, so it keeps the record ...
        assert s.write_batch([RecordDelete(b"b", stamp(100))]) == [(True, False)]
        # ... and any put replaces it, whatever its stamp.
        assert s.write_batch([RecordPut(b"b", stamp(2), b"new")]) == [(True, stamp(2), None)]
        assert s.get_record(b"b") == (stamp(2), b"new")


def test_last_writer_wins(store):
    assert store.write_batch([RecordPut(b"k", stamp(5), b"five")]) == [(True, stamp(5), None)]
    assert store.write_batch([RecordPut(b"k", stamp(3), b"three")]) == [(False, stamp(5), None)]
    assert store.write_batch([RecordPut(b"k", stamp(5), b"other")]) == [(False, stamp(5), None)]
    assert store.get_record(b"k") == (stamp(5), b"five")
    # Within one batch the ops apply in order.
    assert store.write_batch([RecordPut(b"k", stamp(7), b"seven"),
                              RecordPut(b"k", stamp(6), b"six")]) == [(True, stamp(7), None),
                                                                      (False, stamp(7), None)]
    assert store.get_record(b"k") == (stamp(7), b"seven")
    # Bytewise comparison: the high byte decides.
    assert store.write_batch([RecordPut(b"k", b"\x01" + bytes(15), b"hi")])[0][0] is True


def test_record_delete_with_and_without_stamp(store):
    store.write_batch([RecordPut(b"k", stamp(5), b"v")])
    assert store.write_batch([RecordDelete(b"k", stamp(4))]) == [(True, False)]   # stored is newer
    assert store.get_record(b"k") == (stamp(5), b"v")
    assert store.write_batch([RecordDelete(b"k", stamp(5))]) == [(True, True)]
    with pytest.raises(NotFoundError):
        store.get_record(b"k")
    assert store.write_batch([RecordDelete(b"k")]) == [(False, False)]
    store.write_batch([RecordPut(b"k", stamp(5), b"v")])
    assert store.write_batch([RecordDelete(b"k", stamp(9))]) == [(True, True)]   # older: removed
    store.write_batch([RecordPut(b"k", stamp(5), b"v")])
    assert store.write_batch([RecordDelete(b"k")]) == [(True, True)]


def test_scans_respect_prefix_start_and_limit(store):
    keys = [b"a/1", b"a/2", b"a/3", b"a0", b"b/1", b"a/"]
    store.write_batch([put_shard(k, k * 3) for k in keys]
                      + [RecordPut(k, stamp(i), k) for i, k in enumerate(keys)])
    page = store.scan_shards(b"a/", None, 10)
    assert page == ([b"a/", b"a/1", b"a/2", b"a/3"], [6, 9, 9, 9], False)
    assert store.scan_shards(b"a/", None, 2) == ([b"a/", b"a/1"], [6, 9], True)
    assert store.scan_shards(b"a/", b"a/2", 10).keys == [b"a/2", b"a/3"]          # inclusive
    assert store.scan_shards(b"a/", b"0", 10).keys[0] == b"a/"                      # before prefix
    assert store.scan_shards(b"a/", b"a/9", 10) == ([], [], False)
    assert store.scan_shards(b"", None, 100).keys == sorted(keys)
    assert store.scan_shards(b"zz", None, 10) == ([], [], False)

    rec = store.scan_records(b"a/", b"a/1", 2)
    assert (rec.keys, rec.values, rec.stamps, rec.more) == (
        [b"a/1", b"a/2"], [b"a/1", b"a/2"], [stamp(0), stamp(1)], True)
    assert store.scan_records(b"a/", None, 10).more is False
    # The byte budget ends a page early, but never before the first value.
    assert store.scan_records(b"", None, 100, max_bytes=1).keys == [b"a/"]


@settings(max_examples=25, deadline=None)
@given(keys=st.sets(st.binary(min_size=1, max_size=6), max_size=40),
       prefix=st.binary(max_size=2), limit=st.integers(1, 7))
def test_paging_through_a_scan_yields_every_key_once(tmp_path_factory, keys, prefix, limit):
    with open_store(tmp_path_factory.mktemp("scan")) as s:
        s.write_batch([RecordPut(k, stamp(1), b"") for k in keys])
        seen, start = [], None
        for _ in range(len(keys) + 2):
            page = s.scan_records(prefix, start, limit)
            seen += page.keys
            if not page.more:
                break
            start = page.keys[-1] + b"\x00"
        assert seen == sorted(k for k in keys if k.startswith(prefix))


def test_map_grows_then_full_fails_only_what_does_not_fit(tmp_path):
    with open_store(tmp_path / "db", map_size=256 * 1024, map_size_max=4 * MiB) as s:
        s.write_batch([put_shard(b"first", b"1" * 400_000)])
        assert s.stats()["map_size"] > 256 * 1024                         # grew
        outcomes = s.write_batch([put_shard(b"small", b"s" * 1000),
                                  put_shard(b"huge", b"h" * 5 * MiB),
                                  RecordPut(b"rec", stamp(1), b"r")])
        assert outcomes[0] is None and outcomes[2] == (True, stamp(1), None)
        assert isinstance(outcomes[1], FullError) and "full" in str(outcomes[1])
        # Fill it up with 256 KiB shards until FULL.
        stored = []
        for i in range(40):
            outcome = s.write_batch([put_shard(b"f%02d" % i, bytes([i]) * 256 * 1024)])[0]
            if isinstance(outcome, FullError):
                break
            stored.append(i)
        else:
            pytest.fail("never became full")
        assert s.stats()["map_size"] <= 4 * MiB - delete_reserve(4 * MiB)
        # Reads still work; deletes work and make room again.
        assert s.get_shard(b"f%02d" % stored[0]).data == bytes([stored[0]]) * 256 * 1024
        assert s.write_batch([ShardDelete(b"f%02d" % i) for i in stored[:3]]) == [True] * 3
        assert s.write_batch([put_shard(b"again", b"a" * 256 * 1024)]) == [None]
        assert s.stats()["map_size"] <= 4 * MiB


def test_refuses_unknown_format_and_other_node(tmp_path):
    with open_store(tmp_path / "db", node_id="n1"):
        pass
    with pytest.raises(FormatError, match="n1"):
        open_store(tmp_path / "db", node_id="n2")
    env = raw_env(tmp_path / "db")
    with env.begin(write=True) as txn:
        txn.put(b"format_version", struct.pack(">I", 99), db=env.open_db(b"meta", txn=txn))
    env.close()
    with pytest.raises(FormatError, match="99"):
        open_store(tmp_path / "db", node_id="n1")


def test_data_survives_reopen_and_stats_count_it(tmp_path):
    with open_store(tmp_path / "db") as s:
        s.write_batch([put_shard(b"s%d" % i, b"x" * 5000) for i in range(5)]
                      + [RecordPut(b"r", stamp(1), b"v")])
    with open_store(tmp_path / "db") as s:
        stats = s.stats()
        assert (stats["shards"], stats["records"], stats["node_id"]) == (5, 1, "n1")
        assert stats["format_version"] == 1
        assert 5 * 5000 < stats["used_bytes"] <= stats["file_bytes"] <= stats["map_size"]
        assert stats["disk_free_bytes"] > 0
        assert s.get_record(b"r") == (stamp(1), b"v")


def test_a_failing_op_does_not_fail_its_batch(store):
    too_long = b"k" * (store.max_key_size + 1)
    outcomes = store.write_batch([put_shard(b"ok", b"1"), put_shard(too_long, b"2"),
                                  RecordPut(b"r", stamp(1), b"3")])
    assert outcomes[0] is None and outcomes[2] == (True, stamp(1), None)
    assert isinstance(outcomes[1], StoreError)
    assert store.get_shard(b"ok").data == b"1"


def test_layout_rejects_unknown_value_version():
    good = layout.shard_header(layout.shard_digest(b"abc")) + b"abc"
    assert bytes(layout.open_shard(good).data) == b"abc"
    with pytest.raises(layout.CorruptValue):
        layout.open_shard(b"\x02" + good[1:])
    with pytest.raises(layout.CorruptValue):
        layout.decode_record(b"\x07" + layout.encode_record(stamp(1), b"v")[1:])
    with pytest.raises(layout.CorruptValue):
        layout.open_shard(b"\x01short")


class _DiskFullPut:
    """Stands in for a put that hits ENOSPC (a real full filesystem needs a mount)."""
    frees_space = False

    def apply(self, txn, dbs):
        raise lmdb.DiskError("No space left on device")


def test_a_full_disk_is_reported_as_full(store):
    outcomes = store.write_batch([put_shard(b"a", b"1"), _DiskFullPut(), put_shard(b"b", b"2")])
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], FullError) and "disk full" in str(outcomes[1])
    assert store.get_shard(b"b").data == b"2"
