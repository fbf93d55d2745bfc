"""DeleteObjects as raw bytes: required digests, key-count and size limits, and hostile XML
(entity expansion, external entities), which must be MalformedXML and never a 500."""
from __future__ import annotations

import pytest

from tests.clients.test_s3_payloads import b64_crc32, b64_md5
from tests.clients.test_s3_protocol import (RawS3, Reply, exchange, http_chunked, raw, raw_bucket,
                                            request_head, sha256_hex)

pytestmark = pytest.mark.clients

__all__ = ["raw", "raw_bucket"]  # fixtures, re-exported for pytest


def delete_xml(keys: list[str], quiet: bool = False) -> bytes:
    objects = "".join(f"<Object><Key>{k}</Key></Object>" for k in keys)
    return (f'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>{str(quiet).lower()}'
            f"</Quiet>{objects}</Delete>").encode()


def post_delete(raw: RawS3, bucket: str, body: bytes, **headers: str) -> Reply:
    return raw.send("POST", f"/{bucket}?delete", body, headers=headers)


def test_delete_objects_digest_variants(raw, raw_bucket):
    for key in ("a", "b", "c"):
        raw.put(f"/{raw_bucket}/{key}", key.encode()).expect(200)
    body = delete_xml(["a"])
    post_delete(raw, raw_bucket, body).expect(400, "InvalidRequest")
    post_delete(raw, raw_bucket, body, **{"content-md5": b64_md5(b"x")}).expect(400, "BadDigest")
    post_delete(raw, raw_bucket, body, **{"x-amz-checksum-crc32": b64_crc32(b"x")}).expect(
        400, "BadDigest")
    post_delete(raw, raw_bucket, body, **{"content-md5": "zz"}).expect(400, "InvalidDigest")
    raw.get(f"/{raw_bucket}/a").expect(200)
    reply = post_delete(raw, raw_bucket, body, **{"content-md5": b64_md5(body)}).expect(200)
    assert reply.xml.find("{http://s3.amazonaws.com/doc/2006-03-01/}Deleted") is not None
    body = delete_xml(["b", "never-existed"])
    post_delete(raw, raw_bucket, body, **{"x-amz-checksum-crc32": b64_crc32(body),
                                          "x-amz-sdk-checksum-algorithm": "CRC32"}).expect(200)
    for key in ("a", "b"):
        raw.get(f"/{raw_bucket}/{key}").expect(404, "NoSuchKey")
    assert raw.get(f"/{raw_bucket}/c").expect(200).body == b"c"


def test_delete_objects_wrong_payload_sha256(raw, raw_bucket):
    raw.put(f"/{raw_bucket}/a", b"a").expect(200)
    body = delete_xml(["a"])
    raw.send("POST", f"/{raw_bucket}?delete", body, headers={"content-md5": b64_md5(body)},
             payload_hash=sha256_hex(b"other")).expect(400, "XAmzContentSHA256Mismatch")
    raw.get(f"/{raw_bucket}/a").expect(200)


def test_delete_objects_too_many_keys(raw, raw_bucket):
    body = delete_xml([f"k{i}" for i in range(1001)])
    post_delete(raw, raw_bucket, body, **{"content-md5": b64_md5(body)}).expect(400, "MalformedXML")
    # 1000 long keys: ~650 KB of XML, which arrives in many TCP segments.
    keys = [f"{i:04d}" + "k" * 600 for i in range(1000)]
    raw.put(f"/{raw_bucket}/{keys[-1]}", b"last").expect(200)
    body = delete_xml(keys, quiet=True)
    reply = post_delete(raw, raw_bucket, body, **{"content-md5": b64_md5(body)}).expect(200)
    assert b"<Error>" not in reply.body
    raw.get(f"/{raw_bucket}/{keys[-1]}").expect(404, "NoSuchKey")


def test_delete_objects_oversized_body(raw, raw_bucket):
    body = delete_xml(["k" * 1000] * 900) + b" " * (2 * 1024 * 1024)
    reply = post_delete(raw, raw_bucket, body, **{"content-md5": b64_md5(body)})
    assert reply.status == 400, reply.body[:300]
    # The same without a Content-Length to refuse it early: HTTP chunked framing.
    signed = raw.signed_headers("POST", f"/{raw_bucket}?delete", payload_hash="UNSIGNED-PAYLOAD",
                                headers={"content-md5": b64_md5(body)})
    signed["transfer-encoding"] = "chunked"
    reply = exchange(raw.port, request_head("POST", f"/{raw_bucket}?delete", signed),
                     http_chunked(body, 65536), method="POST")
    assert reply.status == 400, reply.body[:300]
    raw.send("GET", "/-/health/ready", sign=False).expect(200)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Delete><Object><Key>&lol9;</Key></Object></Delete>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE Delete [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Delete><Object><Key>&xxe;</Key></Object></Delete>"""
PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE Delete [<!ENTITY % remote SYSTEM "http://127.0.0.1:1/evil.dtd"> %remote;]>
<Delete><Object><Key>a</Key></Object></Delete>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY, PARAMETER_ENTITY,
                                  b"<Delete><Object><Key>a</Key></Object>", b"not xml at all",
                                  b"<Other/>", b"<Delete/>", b""],
                         ids=["billion-laughs", "xxe", "parameter-entity", "unclosed", "text",
                              "wrong-root", "no-objects", "empty"])
def test_delete_objects_hostile_xml(raw, raw_bucket, body):
    raw.put(f"/{raw_bucket}/a", b"a").expect(200)
    post_delete(raw, raw_bucket, body, **{"content-md5": b64_md5(body)}).expect(400, "MalformedXML")
    assert raw.get(f"/{raw_bucket}/a").expect(200).body == b"a"
    raw.send("GET", "/-/health/ready", sign=False).expect(200)
