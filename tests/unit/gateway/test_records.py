"""Metadata records: versioned encodings round-trip, keys sort as S3 lists."""
from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.cluster import records
from gateway.cluster.records import (RECORD_FORMAT, RECORD_KEY_MAX, AccessKeyRecord, BucketRecord,
                                     DataRef, ObjectHead, ObjectRecord, PartRef, RecordFormatError,
                                     UploadRecord, decode_part, encode_part, head_length, object_key,
                                     object_key_is_hashed, object_key_stem, object_prefix,
                                     part_key, shard_key, upload_key)

REF = DataRef(data_id=bytes(range(16)), k=4, m=2, stripe_size=1 << 20,
              nodes=("n0", "n1", "n2", "n3", "n4", "n5"), missing=(2, 5))
PART_INLINE = PartRef(number=1, size=3, etag="e1", mtime_ns=11, checksums={"CRC32": "AAAAAA=="},
                      inline=b"abc")
PART_CODED = PartRef(number=2, size=6 << 20, etag="e2", mtime_ns=12, data=REF)


def test_object_record_round_trip_inline() -> None:
    rec = ObjectRecord(size=3, etag="900150983cd24fb0d6963f7d28e17f72", mtime_ns=123,
                       content_type="text/plain", headers={"Cache-Control": "no-cache"},
                       user_meta={"colour": "blue"}, checksums={"CRC32": "NSRBwg=="},
                       inline=b"abc")
    assert ObjectRecord.decode(rec.encode()) == rec


def test_object_record_round_trip_erasure_coded() -> None:
    rec = ObjectRecord(size=5 << 20, etag="x", mtime_ns=1, data=REF)
    back = ObjectRecord.decode(rec.encode())
    assert back == rec and back.data.nodes == REF.nodes and back.data.missing == (2, 5)


def test_object_record_round_trip_multipart_and_long_key() -> None:
    rec = ObjectRecord(size=3 + (6 << 20), etag="abc-2", mtime_ns=5,
                       parts=(PART_INLINE, PART_CODED), key="k" * 1024)
    back = ObjectRecord.decode(rec.encode())
    assert back == rec
    assert back.parts[1].data == REF and back.parts[0].inline == b"abc"


def test_tombstone_round_trip() -> None:
    tomb = ObjectRecord.tombstone(99)
    back = ObjectRecord.decode(tomb.encode())
    assert back.deleted and back.mtime_ns == 99 and back.size == 0


def test_extents_of_a_single_part_object_is_one_piece() -> None:
    coded = ObjectRecord(size=10, etag="e", mtime_ns=1, data=REF)
    (only,) = coded.extents()
    assert (only.number, only.size, only.etag, only.data, only.inline) == (1, 10, "e", REF, None)
    inline = ObjectRecord(size=2, etag="f", mtime_ns=1, inline=b"hi")
    assert [(e.size, e.inline, e.data) for e in inline.extents()] == [(2, b"hi", None)]


def test_extents_of_a_multipart_object_are_its_parts() -> None:
    rec = ObjectRecord(size=3 + (6 << 20), etag="abc-2", mtime_ns=5, parts=(PART_INLINE, PART_CODED))
    assert rec.extents() == (PART_INLINE, PART_CODED)
    assert sum(e.size for e in rec.extents()) == rec.size


def test_bucket_and_access_key_records_round_trip() -> None:
    bucket = BucketRecord(name="photos", owner="AK", created_ns=7, region="eu-west-1",
                          grants={"AK2": "read"}, deleted=True)
    assert BucketRecord.decode(bucket.encode()) == bucket
    key = AccessKeyRecord(access_key="AK", secret_key="s" * 40, name="ci", created_ns=8)
    assert AccessKeyRecord.decode(key.encode()) == key


def test_upload_and_part_records_round_trip() -> None:
    upload = UploadRecord(upload_id="u1", key="a/b", initiated_ns=3, owner="AK",
                          content_type="image/png", headers={"Content-Language": "fr"},
                          user_meta={"m": "v"}, checksum_algorithm="CRC32C", state="aborted")
    assert UploadRecord.decode(upload.encode()) == upload
    for part in (PART_INLINE, PART_CODED):
        assert decode_part(encode_part(part)) == (part, False)
        assert decode_part(encode_part(part, deleted=True)) == (part, True)


def _with(raw: bytes, **changes) -> bytes:
    """raw with its head map changed (a tail after it is kept)."""
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(raw)
    body = next(unpacker)
    body.update(changes)
    return msgpack.packb(body, use_bin_type=True) + raw[unpacker.tell():]


@pytest.mark.parametrize("decode,raw", [
    (ObjectRecord.decode, ObjectRecord(size=0, etag="", mtime_ns=0).encode()),
    (BucketRecord.decode, BucketRecord(name="b", owner="o", created_ns=0).encode()),
    (AccessKeyRecord.decode, AccessKeyRecord("a", "s", "n", 0).encode()),
    (UploadRecord.decode, UploadRecord("u", "k", 0, "o").encode()),
    (lambda raw: decode_part(raw), encode_part(PART_INLINE)),
])
def test_unknown_format_version_or_kind_is_refused(decode, raw: bytes) -> None:
    decode(raw)  # the genuine article decodes
    for bad in (_with(raw, v=99), _with(raw, v=None), _with(raw, t="zzz")):
        with pytest.raises(RecordFormatError):
            decode(bad)
    with pytest.raises(RecordFormatError):
        decode(b"\xc1 not msgpack")
    with pytest.raises(RecordFormatError):
        decode(msgpack.packb([1, 2, 3]))


def test_a_record_of_one_kind_is_not_read_as_another() -> None:
    with pytest.raises(RecordFormatError):
        ObjectRecord.decode(BucketRecord(name="b", owner="o", created_ns=0).encode())


def test_shard_keys_sort_by_data_id_then_stripe_then_shard() -> None:
    a, b = bytes(16), bytes(15) + b"\x01"
    keys = [shard_key(d, s, i) for d in (b, a) for s in (300, 2, 1) for i in (5, 0)]
    expected = [shard_key(d, s, i) for d in (a, b) for s in (1, 2, 300) for i in (0, 5)]
    assert sorted(keys) == expected
    assert all(k.startswith(a) for k in expected[:6])


def test_part_keys_sort_by_number() -> None:
    keys = [part_key("b", "u", n) for n in (10000, 2, 10, 1)]
    assert sorted(keys) == [part_key("b", "u", n) for n in (1, 2, 10, 10000)]


def test_short_object_keys_are_verbatim_and_long_ones_bounded() -> None:
    assert object_key("b", "a/b.txt") == object_prefix("b") + b"a/b.txt"
    stem = object_key_stem("b")
    long_a, long_b = "x" * stem + "a" * 600, "x" * stem + "b" * 600
    assert object_key_is_hashed("b", long_a) and not object_key_is_hashed("b", "short")
    ka, kb = object_key("b", long_a), object_key("b", long_b)
    assert len(ka) <= RECORD_KEY_MAX and len(kb) <= RECORD_KEY_MAX and ka != kb
    assert ka.startswith(object_prefix("b") + b"x" * stem)
    assert object_key("b", long_a) == ka          # deterministic


def test_upload_keys_of_one_key_sort_together() -> None:
    keys = sorted([upload_key("b", "a!", "1"), upload_key("b", "a", "2"), upload_key("b", "a", "1")])
    assert keys == [upload_key("b", "a", "1"), upload_key("b", "a", "2"), upload_key("b", "a!", "1")]
    long_key = "k" * 1024
    assert len(upload_key("b", long_key, "u" * 40)) <= RECORD_KEY_MAX


s3_keys = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(a=s3_keys, b=s3_keys)
def test_verbatim_object_keys_sort_in_s3_order(a: str, b: str) -> None:
    # S3 lists in UTF-8 byte order; the record keys must sort the same way.
    assert (object_key("bkt", a) < object_key("bkt", b)) == (a.encode() < b.encode())


def test_bucket_partitions_differ_per_bucket() -> None:
    assert records.bucket_partition("a") != records.bucket_partition("b")


def test_an_object_record_head_is_what_a_listing_needs_and_no_more() -> None:
    rec = ObjectRecord(size=5, etag="e" * 32, mtime_ns=7, content_type="text/plain",
                       headers={"Cache-Control": "no-cache"}, user_meta={"m": "v"},
                       checksums={"CRC32": "AAAAAA=="}, inline=b"x" * 4000, key="k")
    raw = rec.encode()
    head = raw[:head_length(raw)]
    assert len(head) < 200 and b"x" * 100 not in head and b"no-cache" not in head
    expected = ObjectHead(size=5, etag="e" * 32, mtime_ns=7, content_type="text/plain",
                          checksums={"CRC32": "AAAAAA=="}, key="k")
    assert ObjectHead.decode(head) == ObjectHead.decode(raw) == expected
    assert ObjectRecord.decode(raw) == rec
    with pytest.raises(RecordFormatError):        # a head alone is never taken for the record
        ObjectRecord.decode(head)


def test_format_1_object_records_still_decode() -> None:
    body = {"v": 1, "t": "obj", "size": 3, "etag": "e", "mtime_ns": 1, "content_type": "a/b",
            "headers": {}, "user_meta": {}, "checksums": {}, "inline": b"abc", "data": None,
            "deleted": False, "parts": [], "key": None}
    raw = msgpack.packb(body, use_bin_type=True)
    assert ObjectRecord.decode(raw) == ObjectRecord(size=3, etag="e", mtime_ns=1,
                                                    content_type="a/b", inline=b"abc")
    assert head_length(raw) == len(raw)
    assert ObjectHead.decode(raw).size == 3


def test_head_length_of_single_map_records_is_the_whole_value() -> None:
    raw = BucketRecord(name="b", owner="o", created_ns=0).encode()
    assert head_length(raw) == len(raw)
    assert head_length(b"\xc1 not msgpack") == len(b"\xc1 not msgpack")
