"""The ListObjects walk (handlers/listing.py) over a Catalog on the node twin: delimiter grouping,
markers that are common prefixes, and pagination that neither skips nor repeats anything."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
import pytest

from gateway.cluster.hlc import Stamp
from gateway.cluster.records import ObjectRecord, bucket_partition, object_key
from gateway.s3.handlers.listing import PAST, Listing, _skip_cursor, walk
from tests.unit.gateway.fakes import fake_cluster

BUCKET = "b"


def seed(cluster, keys, deleted=()) -> None:
    """Put object records straight onto every replica (fast; the catalog's commit path has its
    own tests). Deleted keys get a newer tombstone."""
    replicas = cluster.replicas(bucket_partition(BUCKET))
    for n, key in enumerate(sorted(set(keys) | set(deleted))):
        live = ObjectRecord(size=n, etag=f"e{n}", mtime_ns=10**18 + n)
        for node in replicas:
            node.hold(object_key(BUCKET, key), Stamp(1 << 16, 1).to_bytes(), live.encode())
    for key in deleted:
        for node in replicas:
            node.hold(object_key(BUCKET, key), Stamp(2 << 16, 1).to_bytes(),
                      ObjectRecord.tombstone(1).encode())


def names(listing: Listing) -> list[tuple[str, str]]:
    """Entries and common prefixes of one page, in listing order (names never repeat)."""
    items = [("K", e.key) for e in listing.entries] + [("P", p) for p in listing.prefixes]
    return sorted(items, key=lambda item: item[1].encode("utf-8", "surrogateescape"))


def expected_listing(keys, prefix: str, delimiter: str, marker: str | None) -> list[tuple[str, str]]:
    """The listing computed naively: every key under prefix in byte order, keys with the
    delimiter after the prefix folded into their common prefix; then everything after marker."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for key in sorted(keys, key=str.encode):
        if not key.startswith(prefix):
            continue
        idx = key.find(delimiter, len(prefix)) if delimiter else -1
        if idx >= 0:
            common = key[:idx + len(delimiter)]
            if common not in seen:
                seen.add(common)
                out.append(("P", common))
        else:
            out.append(("K", key))
    return [item for item in out if marker is None or item[1].encode() > marker.encode()]


async def list_all(cluster, prefix: str, delimiter: str, marker: str | None, max_keys: int,
                   max_pages: int = 500) -> list[tuple[str, str]]:
    got: list[tuple[str, str]] = []
    for _ in range(max_pages):
        page = await walk(cluster.catalog, BUCKET, prefix, delimiter, marker, max_keys, None)
        items = names(page)
        assert len(items) <= max_keys
        if items:
            assert page.last == items[-1][1]
        got.extend(items)
        if not page.truncated:
            return got
        assert len(items) == max_keys          # a truncated page is a full page
        marker = page.last
    raise AssertionError("listing did not finish")


@pytest.fixture
async def cluster():
    async with fake_cluster() as c:
        yield c


# ---- _skip_cursor ---------------------------------------------------------------------------------
@pytest.mark.parametrize("prefix,delimiter,marker,expected", [
    ("", "/", None, None),
    ("", "", "a/b", "a/b"),                     # no delimiter: resume right after the marker
    ("", "/", "a", "a"),                        # a plain key
    ("", "/", "a/", "a/" + PAST),               # a common prefix: skip all of it
    ("", "/", "a/b/c", "a/" + PAST),            # a key inside a common prefix: past it too
    ("a/", "/", "a/b/c", "a/b/" + PAST),
    ("a/", "/", "a/b", "a/b"),
    ("x/", "/", "a/b/c", "a/b/c"),              # not under the prefix: used as it is
    ("", "--", "a--b--c", "a--" + PAST),        # a longer delimiter
])
def test_skip_cursor(prefix: str, delimiter: str, marker: str | None, expected: str | None) -> None:
    assert _skip_cursor(prefix, delimiter, marker) == expected


def test_past_sorts_after_every_utf8_continuation() -> None:
    past = ("a/" + PAST).encode("utf-8", "surrogateescape")
    for tail in ("", "z", "\U0010ffff", "\uffff" * 3, "é"):
        assert ("a/" + tail).encode() < past


# ---- examples -------------------------------------------------------------------------------------
AWS_EXAMPLE = ["sample.jpg", "photos/2006/January/sample.jpg", "photos/2006/February/sample2.jpg",
               "photos/2006/February/sample3.jpg", "photos/2006/February/sample4.jpg",
               "photos/2006/index.html"]


async def test_the_aws_documentation_example(cluster) -> None:
    seed(cluster, AWS_EXAMPLE)
    top = await walk(cluster.catalog, BUCKET, "", "/", None, 1000, None)
    assert [e.key for e in top.entries] == ["sample.jpg"] and top.prefixes == ["photos/"]
    assert not top.truncated
    year = await walk(cluster.catalog, BUCKET, "photos/2006/", "/", None, 1000, "owner")
    assert [e.key for e in year.entries] == ["photos/2006/index.html"]
    assert year.prefixes == ["photos/2006/February/", "photos/2006/January/"]
    assert year.entries[0].owner_id == "owner"


async def test_entries_carry_the_record(cluster) -> None:
    seed(cluster, ["a", "b"])
    listing = await walk(cluster.catalog, BUCKET, "", "", None, 10, None)
    assert [(e.key, e.size, e.etag) for e in listing.entries] == [("a", 0, "e0"), ("b", 1, "e1")]
    assert [e.mtime_ns for e in listing.entries] == [10**18, 10**18 + 1]


async def test_a_marker_that_is_a_common_prefix_skips_it(cluster) -> None:
    seed(cluster, ["a/1", "a/2", "b/1", "c"])
    first = await walk(cluster.catalog, BUCKET, "", "/", None, 1, None)
    assert first.prefixes == ["a/"] and first.truncated and first.last == "a/"
    second = await walk(cluster.catalog, BUCKET, "", "/", "a/", 1, None)
    assert second.prefixes == ["b/"] and second.truncated
    third = await walk(cluster.catalog, BUCKET, "", "/", "b/", 1, None)
    assert [e.key for e in third.entries] == ["c"] and not third.truncated


async def test_max_keys_zero_lists_nothing(cluster) -> None:
    seed(cluster, ["a"])
    listing = await walk(cluster.catalog, BUCKET, "", "", None, 0, None)
    assert listing.entries == [] and listing.prefixes == []


async def test_exactly_max_keys_is_not_truncated(cluster) -> None:
    seed(cluster, ["a", "b", "c/1", "c/2"])
    listing = await walk(cluster.catalog, BUCKET, "", "/", None, 3, None)
    assert names(listing) == [("K", "a"), ("K", "b"), ("P", "c/")] and not listing.truncated


async def test_a_common_prefix_over_many_keys_costs_one_seek(cluster) -> None:
    seed(cluster, [f"big/{i:04d}" for i in range(1500)] + ["a", "z"])
    for node in cluster.pool.clients():
        node.calls.clear()
    listing = await walk(cluster.catalog, BUCKET, "", "/", None, 1000, None)
    assert names(listing) == [("K", "a"), ("P", "big/"), ("K", "z")] and not listing.truncated
    scans = max(sum(1 for op, _ in node.calls if op == "scan_records") for node in cluster.pool.clients())
    assert scans <= 4


async def test_tombstones_are_not_listed_and_do_not_end_a_page_early(cluster) -> None:
    seed(cluster, ["a", "b", "c", "d", "e"], deleted=["b", "c", "d"])
    page = await walk(cluster.catalog, BUCKET, "", "", None, 2, None)
    assert [e.key for e in page.entries] == ["a", "e"] and not page.truncated


async def test_pages_over_many_keys(cluster) -> None:
    keys = [f"{d}/{i:03d}" for d in ("x", "y") for i in range(300)] + [f"k{i:03d}" for i in range(250)]
    seed(cluster, keys)
    for max_keys in (1000, 97):
        assert await list_all(cluster, "", "", None, max_keys) == expected_listing(keys, "", "", None)
        assert await list_all(cluster, "", "/", None, max_keys) == expected_listing(keys, "", "/", None)
    assert await list_all(cluster, "y/", "/", "y/150", 64) == expected_listing(keys, "y/", "/", "y/150")


# ---- property: concatenated pages == the naive listing -----------------------------------------
alphabet = st.sampled_from(["a", "b", "/", "é", "-"])
key_text = st.lists(alphabet, min_size=1, max_size=5).map("".join)


@settings(max_examples=60, deadline=None)
@given(keys=st.sets(key_text, max_size=30), deleted=st.sets(key_text, max_size=6),
       prefix=st.lists(alphabet, max_size=2).map("".join),
       delimiter=st.sampled_from(["", "/", "b", "a/", "é"]),
       marker=st.one_of(st.none(), key_text), max_keys=st.integers(1, 5))
async def test_concatenated_pages_are_the_naive_listing(keys, deleted, prefix, delimiter, marker,
                                                        max_keys) -> None:
    async with fake_cluster() as cluster:
        deleted = deleted - keys
        seed(cluster, keys, deleted)
        got = await list_all(cluster, prefix, delimiter, marker, max_keys)
        assert got == expected_listing(keys, prefix, delimiter, marker)
