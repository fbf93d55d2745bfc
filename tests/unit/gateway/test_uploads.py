"""Multipart upload and part records over the node twin."""
from __future__ import annotations

import pytest

from common.nodeclient import NodeUnavailable
from gateway.cluster.hlc import Stamp
from gateway.cluster.records import (DataRef, PartRef, UploadRecord, bucket_partition, encode_part,
                                     part_key, upload_key)
from gateway.cluster.uploads import Uploads

PAGE = 1000  # MetaStore.scan_all default page size: part listings must cross pages
from tests.unit.gateway.fakes import fake_cluster

BUCKET = "b"


@pytest.fixture
async def cluster():
    async with fake_cluster() as c:
        yield c


@pytest.fixture
def uploads(cluster) -> Uploads:
    return Uploads(cluster.meta, cluster.clock)


def part(number: int, tag: str = "", size: int = 5) -> PartRef:
    return PartRef(number=number, size=size, etag=f"etag{number}{tag}", mtime_ns=number,
                   inline=b"p" * size)


def upload(key: str, upload_id: str, state: str = "open") -> UploadRecord:
    return UploadRecord(upload_id=upload_id, key=key, initiated_ns=1, owner="AK", state=state)


async def all_parts(uploads: Uploads, upload_id: str, after: int = 0) -> list[PartRef]:
    return [p async for p in uploads.parts(BUCKET, upload_id, after)]


async def open_uploads(uploads: Uploads, prefix: str = "", start_after: bytes | None = None
                       ) -> list[tuple[str, str]]:
    return [(rec.key, rec.upload_id) async for _, rec in uploads.uploads(BUCKET, prefix, start_after)]


async def test_upload_record_round_trip(uploads) -> None:
    assert await uploads.get_upload(BUCKET, "k", "u1") is None
    rec = UploadRecord(upload_id="u1", key="k", initiated_ns=5, owner="AK",
                       content_type="text/plain", user_meta={"a": "b"}, checksum_algorithm="CRC32")
    await uploads.put_upload(BUCKET, rec)
    assert await uploads.get_upload(BUCKET, "k", "u1") == rec
    assert await uploads.get_upload(BUCKET, "k", "u2") is None
    assert await uploads.get_upload(BUCKET, "other", "u1") is None


async def test_parts_in_number_order_after_a_marker(uploads) -> None:
    for n in (3, 1, 10, 2, 10000):
        assert await uploads.put_part(BUCKET, "u", part(n)) is None
    assert [p.number for p in await all_parts(uploads, "u")] == [1, 2, 3, 10, 10000]
    assert [p.number for p in await all_parts(uploads, "u", after=2)] == [3, 10, 10000]
    assert [p.number for p in await all_parts(uploads, "u", after=4)] == [10, 10000]
    assert await all_parts(uploads, "u", after=10000) == []
    assert await all_parts(uploads, "other-upload") == []
    assert (await all_parts(uploads, "u"))[0] == part(1)


async def test_a_replaced_part_is_returned_for_forgetting(uploads) -> None:
    coded = PartRef(2, 6 << 20, "old", data=DataRef(bytes(16), 4, 2, 1 << 20, ("n0",) * 6))
    assert await uploads.put_part(BUCKET, "u", coded) is None
    replaced = await uploads.put_part(BUCKET, "u", part(2, "new"))
    assert replaced == coded                          # its data can now be forgotten
    assert [p.etag for p in await all_parts(uploads, "u")] == ["etag2new"]


async def test_dropped_parts_are_not_listed_and_not_returned_as_replaced(uploads) -> None:
    for n in (1, 2, 3):
        await uploads.put_part(BUCKET, "u", part(n))
    await uploads.drop_part(BUCKET, "u", part(2))
    assert [p.number for p in await all_parts(uploads, "u")] == [1, 3]
    assert [p.number for p in await all_parts(uploads, "u", after=1)] == [3]
    assert await uploads.put_part(BUCKET, "u", part(2, "again")) is None
    assert [p.etag for p in await all_parts(uploads, "u")] == ["etag1", "etag2again", "etag3"]


async def test_parts_page_through_more_than_one_scan(cluster, uploads) -> None:
    stamp = Stamp(1 << 16, 1).to_bytes()
    count = PAGE + 150
    for node in cluster.replicas(bucket_partition(BUCKET)):
        for n in range(1, count + 1):
            node.hold(part_key(BUCKET, "u", n), stamp, encode_part(part(n), deleted=(n % 7 == 0)))
    numbers = [p.number for p in await all_parts(uploads, "u")]
    assert numbers == [n for n in range(1, count + 1) if n % 7]
    assert [p.number for p in await all_parts(uploads, "u", after=PAGE)] == \
        [n for n in range(PAGE + 1, count + 1) if n % 7]


async def test_a_part_survives_m_nodes_down(cluster, uploads) -> None:
    replicas = cluster.replicas(bucket_partition(BUCKET))
    replicas[0].fail(NodeUnavailable)
    replicas[3].fail(NodeUnavailable)
    await uploads.put_part(BUCKET, "u", part(1))
    replicas[0].recover()
    replicas[3].recover()
    replicas[1].fail(NodeUnavailable)
    replicas[2].fail(NodeUnavailable)
    assert [p.number for p in await all_parts(uploads, "u")] == [1]


async def test_open_uploads_in_key_then_id_order(uploads) -> None:
    for key, uid in [("b", "2"), ("a!", "1"), ("a", "9"), ("a", "10"), ("a/x", "1"), ("b", "1")]:
        await uploads.put_upload(BUCKET, upload(key, uid))
    # keys in byte order; uploads of one key by upload id (as strings)
    assert await open_uploads(uploads) == [("a", "10"), ("a", "9"), ("a!", "1"), ("a/x", "1"),
                                           ("b", "1"), ("b", "2")]


async def test_completed_and_aborted_uploads_are_not_listed(uploads) -> None:
    await uploads.put_upload(BUCKET, upload("a", "1"))
    await uploads.put_upload(BUCKET, upload("b", "1"))
    await uploads.put_upload(BUCKET, upload("c", "1"))
    await uploads.put_upload(BUCKET, upload("a", "1", state="completed"))
    await uploads.put_upload(BUCKET, upload("c", "1", state="aborted"))
    assert await open_uploads(uploads) == [("b", "1")]
    assert (await uploads.get_upload(BUCKET, "a", "1")).state == "completed"


async def test_uploads_by_prefix_and_after_a_cursor(uploads) -> None:
    for key, uid in [("docs/a", "1"), ("docs/a", "2"), ("docs/b", "1"), ("img/c", "1")]:
        await uploads.put_upload(BUCKET, upload(key, uid))
    assert await open_uploads(uploads, "docs/") == [("docs/a", "1"), ("docs/a", "2"), ("docs/b", "1")]
    assert await open_uploads(uploads, "img") == [("img/c", "1")]
    assert await open_uploads(uploads, "zzz") == []
    after = upload_key(BUCKET, "docs/a", "1")
    assert await open_uploads(uploads, "", after) == [("docs/a", "2"), ("docs/b", "1"), ("img/c", "1")]
    assert await open_uploads(uploads, "docs/", upload_key(BUCKET, "docs/b", "1")) == []
    # a cursor before the prefix starts at the prefix
    assert await open_uploads(uploads, "img", upload_key(BUCKET, "docs/a", "1")) == [("img/c", "1")]
    # raw record keys come back with each upload, for the next page's cursor
    listed = [rkey async for rkey, _ in uploads.uploads(BUCKET, "", None)]
    assert listed == sorted(listed) and listed[0] == upload_key(BUCKET, "docs/a", "1")


async def test_uploads_of_a_long_key(uploads) -> None:
    key = "k" * 1024
    await uploads.put_upload(BUCKET, upload(key, "u1"))
    assert (await uploads.get_upload(BUCKET, key, "u1")).key == key
    assert await open_uploads(uploads) == [(key, "u1")]
