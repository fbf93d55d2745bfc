"""Keys, bucket names, bucket sub-resources, per-key grants and virtual-hosted-style addressing,
as raw signed requests.

Keys are opaque: the path is percent-decoded exactly once and never normalised, so every odd
spelling below must come back from GET and from a listing exactly as it went in.
"""
from __future__ import annotations

import hashlib
import random
import time
import uuid
from urllib.parse import quote, unquote

import pytest

from tests.clients.test_s3_protocol import NS, RawS3, raw, raw_bucket, utcnow
from tests.harness import LocalCluster, run_cli

pytestmark = pytest.mark.clients

__all__ = ["raw", "raw_bucket"]  # fixtures, re-exported for pytest


def listed_keys(s3: RawS3, target: str) -> list[str]:
    """Every key of a ListObjectsV2 (encoding-type=url, decoded here), following continuations."""
    keys: list[str] = []
    token = None
    for _ in range(50):
        query = "list-type=2&encoding-type=url&max-keys=3"
        if token:
            query += "&continuation-token=" + quote(token, safe="")
        root = s3.get(f"{target}?{query}").expect(200).xml
        keys += [unquote(c.findtext(f"{NS}Key")) for c in root.findall(f"{NS}Contents")]
        token = root.findtext(f"{NS}NextContinuationToken")
        if root.findtext(f"{NS}IsTruncated") != "true":
            return keys
    raise AssertionError("listing did not end")


# --- keys ------------------------------------------------------------------------------------------

# (path as sent after "/<bucket>/", the key it names)
ODD_KEYS = [
    ("../a", "../a"),
    ("a/../../b", "a/../../b"),
    ("a//b", "a//b"),
    ("a/./b", "a/./b"),
    ("./", "./"),
    ("a%2Fc", "a/c"),           # %2F is "/": the same key as a/c
    ("a%252Fc", "a%2Fc"),       # decoded once only
    ("dir/", "dir/"),
    ("dir", "dir"),
    ("//lead", "//lead"),
    ("sp%20ace+plus", "sp ace+plus"),   # '+' is a plus in a path, never a space
    ("%E2%82%AC%F0%9F%98%80", "\u20ac\U0001F600"),
    ("ctl%01%7F", "ctl\x01\x7f"),
    ("q%3Fx%3Dy%26z", "q?x=y&z"),
    ("h%23frag", "h#frag"),
    ("k" * 1024, "k" * 1024),
    ("%C3%A9" * 512, "\u00e9" * 512),  # 1024 UTF-8 bytes
]


def test_keys_are_stored_and_listed_verbatim(raw, raw_bucket):
    for index, (path, key) in enumerate(ODD_KEYS):
        body = f"object {index}: {key!r}".encode()
        raw.put(f"/{raw_bucket}/{path}", body).expect(200)
    expected = {key: f"object {i}: {key!r}".encode() for i, (_, key) in enumerate(ODD_KEYS)}
    for key, body in expected.items():
        reply = raw.get(f"/{raw_bucket}/{quote(key, safe='')}").expect(200)
        assert reply.body == body, key
    assert raw.get(f"/{raw_bucket}/a/c").expect(200).body == expected["a/c"]
    assert sorted(listed_keys(raw, f"/{raw_bucket}"), key=lambda k: k.encode()) == \
        sorted(expected, key=lambda k: k.encode())
    root = raw.get(f"/{raw_bucket}?delimiter=/&prefix=a/").expect(200).xml  # ListObjects v1
    prefixes = {p.findtext(f"{NS}Prefix") for p in root.findall(f"{NS}CommonPrefixes")}
    assert prefixes == {"a//", "a/./", "a/../"}
    assert [c.findtext(f"{NS}Key") for c in root.findall(f"{NS}Contents")] == ["a/c"]


def test_key_too_long(raw, raw_bucket):
    for path, size in [("k" * 1025, 1025), ("%C3%A9" * 512 + "x", 1025), ("\u20ac" * 342, 1026)]:
        reply = raw.put(f"/{raw_bucket}/{quote(path, safe='%')}", b"x").expect(400, "KeyTooLongError")
        assert reply.xml.findtext("Size") == str(size)
    raw.get(f"/{raw_bucket}/{'k' * 1025}").expect(400, "KeyTooLongError")
    assert listed_keys(raw, f"/{raw_bucket}") == []


@pytest.mark.parametrize("path", ["%FF", "a%C3%28b", "%ED%A0%80", "%C0%AF", "x%E2%82"],
                         ids=["ff", "bad-continuation", "surrogate", "overlong", "truncated"])
def test_invalid_utf8_key(raw, raw_bucket, path):
    raw.put(f"/{raw_bucket}/{path}", b"x").expect(400)
    raw.get(f"/{raw_bucket}/{path}").expect(400)
    assert listed_keys(raw, f"/{raw_bucket}") == []


def test_list_long_keys_in_order(raw, raw_bucket):
    """Keys longer than a storage node's key limit still sort and page like any other."""
    stem = "p" * 600
    keys = sorted([stem + s for s in ("b", "a", "c/d", "c/e", "\u00ff", "")] + [stem[:300], "z"],
                  key=lambda k: k.encode())
    for key in keys:
        raw.put(f"/{raw_bucket}/{quote(key)}", key.encode()[-20:]).expect(200)
    assert listed_keys(raw, f"/{raw_bucket}") == keys
    root = raw.get(f"/{raw_bucket}?list-type=2&delimiter=/&prefix={stem}").expect(200).xml
    assert [c.findtext(f"{NS}Key") for c in root.findall(f"{NS}Contents")] == \
        [k for k in keys if k.startswith(stem) and "/" not in k]
    assert [p.findtext(f"{NS}Prefix") for p in root.findall(f"{NS}CommonPrefixes")] == [stem + "c/"]
    after = quote(stem + "a", safe="")
    root = raw.get(f"/{raw_bucket}?list-type=2&start-after={after}").expect(200).xml
    assert [c.findtext(f"{NS}Key") for c in root.findall(f"{NS}Contents")] == \
        [k for k in keys if k.encode() > (stem + "a").encode()]
    raw.send("DELETE", f"/{raw_bucket}/{quote(stem + 'b')}").expect(204)
    raw.get(f"/{raw_bucket}/{quote(stem + 'b')}").expect(404, "NoSuchKey")
    assert raw.get(f"/{raw_bucket}/{quote(stem + 'a')}").expect(200).body == (stem + "a").encode()[-20:]


def expected_listing(keys: list[str], prefix: str, delimiter: str, after: str = ""
                     ) -> tuple[list[str], list[str]]:
    """What S3 lists: (keys, common prefixes) in UTF-8 byte order."""
    contents, prefixes = [], set()
    for key in keys:
        if not key.startswith(prefix) or key.encode() <= after.encode():
            continue
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        if cut >= 0:
            prefixes.add(key[:cut + len(delimiter)])
        else:
            contents.append(key)
    return sorted(contents, key=str.encode), sorted(prefixes, key=str.encode)


def test_list_many_long_keys_sharing_a_stem(raw, raw_bucket):
    """Keys from just under to far over the storage nodes' key size, sharing 474 bytes."""
    rng = random.Random(5)
    stem = "q" * 474  # record keys keep ~475 bytes of a long key here
    keys = {stem, "q" * 300, "r"}
    while len(keys) < 40:
        tail = "".join(rng.choice("ab/\u00e9\x00") for _ in range(rng.randint(0, 30)))
        keys.add(stem + tail + "z" * rng.choice([0, 0, 5, 150, 500]))
    keys = [k for k in keys if len(k.encode()) <= 1024]
    for key in keys:
        raw.put(f"/{raw_bucket}/{quote(key)}", hashlib.md5(key.encode()).digest()).expect(200)
    assert listed_keys(raw, f"/{raw_bucket}") == sorted(keys, key=str.encode)
    for prefix, delimiter, after in [(stem, "/", ""), (stem + "a", "/", ""), (stem + "ab", "", ""),
                                     ("", "/", stem + "b"), (stem, "", stem + "a/"), ("", "", "q")]:
        query = (f"list-type=2&encoding-type=url&prefix={quote(prefix, safe='')}"
                 f"&delimiter={delimiter}&start-after={quote(after, safe='')}")
        root = raw.get(f"/{raw_bucket}?{query}").expect(200).xml
        got = ([unquote(c.findtext(f"{NS}Key")) for c in root.findall(f"{NS}Contents")],
               [unquote(p.findtext(f"{NS}Prefix")) for p in root.findall(f"{NS}CommonPrefixes")])
        assert got == expected_listing(keys, prefix, delimiter, after), (prefix, delimiter, after)
    for key in keys[:5]:
        reply = raw.get(f"/{raw_bucket}/{quote(key)}").expect(200)
        assert reply.body == hashlib.md5(key.encode()).digest()


def test_multipart_upload_to_a_1024_byte_key(cluster, raw, raw_bucket):
    s3 = cluster.boto3_client()
    key = "m" * 1000 + "/" + "\u00e9" * 11 + "x"  # 1024 UTF-8 bytes
    upload = s3.create_multipart_upload(Bucket=raw_bucket, Key=key)["UploadId"]
    part = s3.upload_part(Bucket=raw_bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"part")
    listed = s3.list_multipart_uploads(Bucket=raw_bucket)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in listed] == [(key, upload)]
    assert [p["PartNumber"] for p in s3.list_parts(Bucket=raw_bucket, Key=key,
                                                    UploadId=upload)["Parts"]] == [1]
    s3.complete_multipart_upload(Bucket=raw_bucket, Key=key, UploadId=upload, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert raw.get(f"/{raw_bucket}/{quote(key)}").expect(200).body == b"part"
    assert listed_keys(raw, f"/{raw_bucket}") == [key]


# --- bucket names and sub-resources ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["ab", "Abc", "a_b", "-abc", "abc-", "a..b", "192.168.1.1",
                                  "x" * 64, "xn--abc", "abc-s3alias", "a%2Fb", "a%20b", ".abc"])
def test_invalid_bucket_names(raw, name):
    raw.put(f"/{name}").expect(400, "InvalidBucketName")


def test_valid_bucket_name_edges(raw):
    for name in ("a" * 63, f"a.b-{uuid.uuid4().hex[:6]}", f"{uuid.uuid4().hex[:3]}"):
        raw.put(f"/{name}").expect(200)
        raw.head(f"/{name}").expect(200)
        raw.send("DELETE", f"/{name}").expect(204)
        raw.head(f"/{name}").expect(404)


@pytest.mark.parametrize("query, code", [
    ("policy", "NoSuchBucketPolicy"), ("cors", "NoSuchCORSConfiguration"),
    ("lifecycle", "NoSuchLifecycleConfiguration"), ("website", "NoSuchWebsiteConfiguration"),
    ("tagging", "NoSuchTagSet"), ("encryption", "ServerSideEncryptionConfigurationNotFoundError")])
def test_missing_bucket_configurations(raw, raw_bucket, query, code):
    reply = raw.get(f"/{raw_bucket}?{query}").expect(404, code)
    assert reply.xml.findtext("BucketName") == raw_bucket
    raw.get(f"/no-such-{uuid.uuid4().hex[:8]}?{query}").expect(404, "NoSuchBucket")


def test_bucket_acl_and_location(raw, raw_bucket):
    root = raw.get(f"/{raw_bucket}?acl").expect(200).xml
    assert root.findtext(f"{NS}Owner/{NS}ID") == raw.access_key
    grants = root.findall(f"{NS}AccessControlList/{NS}Grant")
    assert [(g.findtext(f"{NS}Grantee/{NS}ID"), g.findtext(f"{NS}Permission")) for g in grants] \
        == [(raw.access_key, "FULL_CONTROL")]
    root = raw.get(f"/{raw_bucket}?location").expect(200).xml
    assert root.tag == f"{NS}LocationConstraint"
    raw.put(f"/{raw_bucket}/obj", b"x").expect(200)
    root = raw.get(f"/{raw_bucket}/obj?acl").expect(200).xml
    assert root.findtext(f"{NS}Owner/{NS}ID") == raw.access_key
    raw.get(f"/{raw_bucket}/missing?acl").expect(404, "NoSuchKey")


def test_head_bucket(raw, raw_bucket):
    for target in (f"/{raw_bucket}", f"/{raw_bucket}/"):
        reply = raw.head(target).expect(200)
        assert reply.body == b"" and reply.headers["x-amz-bucket-region"] == "us-east-1"
    missing = f"no-such-{uuid.uuid4().hex[:8]}"
    raw.head(f"/{missing}").expect(404)
    raw.head(f"/{missing}/").expect(404)
    raw.get(f"/{missing}").expect(404, "NoSuchBucket")
    raw.get(f"/{missing}/").expect(404, "NoSuchBucket")
    raw.get(f"/{missing}/key").expect(404, "NoSuchBucket")


def test_create_bucket_twice_and_delete_non_empty(raw, raw_bucket):
    raw.put(f"/{raw_bucket}").expect(409, "BucketAlreadyOwnedByYou")
    raw.put(f"/{raw_bucket}/x", b"x").expect(200)
    raw.send("DELETE", f"/{raw_bucket}").expect(409, "BucketNotEmpty")
    raw.send("DELETE", f"/{raw_bucket}/x").expect(204)
    raw.send("DELETE", f"/{raw_bucket}").expect(204)
    raw.get(f"/{raw_bucket}").expect(404, "NoSuchBucket")


# --- another key's bucket --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def second_key(cluster) -> tuple[str, str]:
    out = run_cli("key", "create", "--name", "second", "--ring", str(cluster.ring_path),
                  "--keys", str(cluster.keys_dir))
    fields = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    return fields["access key"], fields["secret key"]


def allow(cluster, bucket: str, access_key: str, *flags: str) -> None:
    run_cli("bucket", "allow", "--ring", str(cluster.ring_path), "--keys", str(cluster.keys_dir),
            "--bucket", bucket, "--key", access_key, *flags)


def deny(cluster, bucket: str, access_key: str) -> None:
    run_cli("bucket", "deny", "--ring", str(cluster.ring_path), "--keys", str(cluster.keys_dir),
            "--bucket", bucket, "--key", access_key)


def test_bucket_of_another_key(cluster, raw, raw_bucket, second_key):
    other = RawS3(raw.port, *second_key)
    obj = f"/{raw_bucket}/doc"
    raw.put(obj, b"owner's data").expect(200)
    other.put(f"/{raw_bucket}").expect(409, "BucketAlreadyExists")
    other.get(obj).expect(403, "AccessDenied")
    other.head(obj).expect(403)
    other.head(f"/{raw_bucket}").expect(403)
    other.get(f"/{raw_bucket}?list-type=2").expect(403, "AccessDenied")
    other.put(obj, b"intruder").expect(403, "AccessDenied")
    other.send("DELETE", obj).expect(403, "AccessDenied")
    names = [b.findtext(f"{NS}Name") for b in other.get("/").expect(200).xml.iter(f"{NS}Bucket")]
    assert raw_bucket not in names

    allow(cluster, raw_bucket, other.access_key, "--read")  # grants are read per request
    assert other.get(obj).expect(200).body == b"owner's data"
    assert other.get(f"/{raw_bucket}?list-type=2").expect(200).xml.findtext(f"{NS}KeyCount") == "1"
    other.put(obj, b"intruder").expect(403, "AccessDenied")
    other.send("DELETE", obj).expect(403, "AccessDenied")
    names = [b.findtext(f"{NS}Name") for b in other.get("/").expect(200).xml.iter(f"{NS}Bucket")]
    assert raw_bucket in names

    allow(cluster, raw_bucket, other.access_key, "--read", "--write")
    other.put(obj, b"shared write").expect(200)
    assert raw.get(obj).expect(200).body == b"shared write"
    other.send("DELETE", f"/{raw_bucket}").expect(403, "AccessDenied")  # only the owner

    deny(cluster, raw_bucket, other.access_key)
    time.sleep(1.1)  # reads may use a bucket record up to 1 s old (docs/architecture.md)
    other.get(obj).expect(403, "AccessDenied")
    assert raw.get(obj).expect(200).body == b"shared write"


def test_new_key_works_and_deleted_key_stops_within_cache_ttl(cluster, raw):
    """Access keys are cached for 5 s by each gateway: a new key works at once (never looked up
    before), a deleted one is refused on every gateway once the cached entry has expired."""
    out = run_cli("key", "create", "--name", "short-lived", "--ring", str(cluster.ring_path),
                  "--keys", str(cluster.keys_dir))
    fields = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    gateways = [RawS3(port, fields["access key"], fields["secret key"]) for port in cluster.ports]
    for gateway in gateways:
        gateway.get("/").expect(200)
    run_cli("key", "delete", "--ring", str(cluster.ring_path), "--keys", str(cluster.keys_dir),
            fields["access key"])
    deleted_at = time.monotonic()
    for gateway in gateways:
        while gateway.get("/").status == 200:
            assert time.monotonic() - deleted_at < 10, "a deleted key still works after 10 s"
            time.sleep(0.25)
        gateway.get("/").expect(403, "InvalidAccessKeyId")


# --- virtual-hosted style --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vhost_cluster(tmp_path_factory):
    with LocalCluster(tmp_path_factory.mktemp("vhost"), nodes=3, zones=3, k=2, m=1,
                      domains=("s3.local",)) as c:
        yield c


def test_virtual_hosted_style(vhost_cluster):
    c = vhost_cluster
    name = f"v-{uuid.uuid4().hex[:10]}"
    vhost = RawS3(c.ports[0], c.access_key, c.secret_key, host_name=f"{name}.s3.local")
    path_style = RawS3(c.ports[0], c.access_key, c.secret_key)
    vhost.put("/").expect(200)
    vhost.head("/").expect(200)
    vhost.put("/dir/key.txt", b"virtual").expect(200)
    vhost.put("//lead", b"leading slash").expect(200)
    assert vhost.get("/dir/key.txt").expect(200).body == b"virtual"
    assert path_style.get(f"/{name}/dir/key.txt").expect(200).body == b"virtual"
    assert path_style.get(f"/{name}//lead").expect(200).body == b"leading slash"
    assert listed_keys(vhost, "/") == ["/lead", "dir/key.txt"]
    assert vhost.get("/?acl").expect(200).xml.findtext(f"{NS}Owner/{NS}ID") == c.access_key
    vhost.get("/?policy").expect(404, "NoSuchBucketPolicy")
    # The bucket comes from the Host header, so "/<bucket>/..." in the path is part of the key.
    vhost.get(f"/{name}/dir/key.txt").expect(404, "NoSuchKey")
    target = vhost.presigned_target("GET", "/dir/key.txt", now=utcnow(), expires=60)
    assert vhost.send("GET", target, sign=False).expect(200).body == b"virtual"
    # Case and a trailing dot in the Host do not change the bucket.
    upper = RawS3(c.ports[0], c.access_key, c.secret_key, host_name=f"{name.upper()}.S3.LOCAL.")
    assert upper.get("/dir/key.txt").expect(200).body == b"virtual"
    # The bare domain is path style: GET / lists buckets.
    bare = RawS3(c.ports[0], c.access_key, c.secret_key, host_name="s3.local")
    names = [b.findtext(f"{NS}Name") for b in bare.get("/").expect(200).xml.iter(f"{NS}Bucket")]
    assert name in names
    assert bare.get(f"/{name}/dir/key.txt").expect(200).body == b"virtual"
    missing = RawS3(c.ports[0], c.access_key, c.secret_key, host_name="nope-x1.s3.local")
    missing.get("/k").expect(404, "NoSuchBucket")
    bad = RawS3(c.ports[0], c.access_key, c.secret_key, host_name="Bad_Name.s3.local")
    bad.put("/").expect(400, "InvalidBucketName")
