"""SigV2 (HMAC-SHA1) verification against botocore's own HmacV1 signers."""
from __future__ import annotations

import email.utils
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest
from botocore.auth import HmacV1Auth, HmacV1QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from gateway.s3 import errors
from gateway.s3.sigv2 import canonical_resource
from gateway.s3.sigv4 import authenticate

AK, SK = "AKV2EXAMPLE", "secret/v2+key"
CREDS = Credentials(AK, SK)


def lookup(access_key):
    return SK if access_key == AK else None


def signed(method, url, headers=None, auth_path=None):
    req = AWSRequest(method=method, url=url, headers=headers or {})
    if auth_path:
        req.auth_path = auth_path
    HmacV1Auth(CREDS).add_auth(req)
    return req


@pytest.mark.parametrize("path,query", [
    ("/bucket/key", ""),
    ("/bucket/a%20b/%C3%BC%2B%3D", ""),
    ("/bucket/k", "acl"),
    ("/bucket/k", "uploadId=abc%2Fd&partNumber=3"),
    ("/bucket/k", "response-content-type=text%2Fplain&foo=bar"),
])
def test_header_auth_matches_botocore(path, query):
    url = f"http://h:1{path}" + (f"?{query}" if query else "")
    req = signed("PUT", url, {"Content-Type": "text/plain", "x-amz-meta-a": " 1 ", "Content-MD5": "x=="})
    now = datetime.now(timezone.utc)
    result = authenticate("PUT", path, query, dict(req.headers), now, lookup)
    assert result.access_key == AK and not result.presigned
    tampered = {**dict(req.headers), "x-amz-meta-a": "2"}
    with pytest.raises(errors.SignatureDoesNotMatch):
        authenticate("PUT", path, query, tampered, now, lookup)


def test_bucket_level_request_signed_with_trailing_slash():
    req = signed("GET", "http://h:1/bucket?encoding-type=url", auth_path="/bucket/")
    authenticate("GET", "/bucket", "encoding-type=url", dict(req.headers), datetime.now(timezone.utc), lookup)


def test_header_auth_skew_and_unknown_key():
    req = signed("GET", "http://h:1/b/k")
    later = datetime.now(timezone.utc) + timedelta(minutes=20)
    with pytest.raises(errors.RequestTimeTooSkewed):
        authenticate("GET", "/b/k", "", dict(req.headers), later, lookup)
    with pytest.raises(errors.InvalidAccessKeyId):
        authenticate("GET", "/b/k", "", dict(req.headers), datetime.now(timezone.utc), lambda a: None)


def test_presigned_query_auth_and_expiry():
    req = AWSRequest(method="GET", url="http://h:1/bucket/a%20b?response-content-type=text%2Fplain",
                     headers={})
    HmacV1QueryAuth(CREDS, expires=60).add_auth(req)
    parts = urlsplit(req.url)
    now = datetime.now(timezone.utc)
    result = authenticate("GET", parts.path, parts.query, {"Host": "h:1"}, now, lookup)
    assert result.presigned
    with pytest.raises(errors.AccessDenied, match="expired"):
        authenticate("GET", parts.path, parts.query, {"Host": "h:1"}, now + timedelta(seconds=120), lookup)
    with pytest.raises(errors.SignatureDoesNotMatch):
        authenticate("PUT", parts.path, parts.query, {"Host": "h:1"}, now, lookup)


def test_virtual_hosted_resource_includes_bucket():
    assert canonical_resource("/k", "uploads", "/bkt") == "/bkt/k?uploads"
    assert canonical_resource("/k", "versionId=a%2Fb&x=1") == "/k?versionId=a/b"


def test_date_header_required():
    with pytest.raises(errors.AccessDenied):
        authenticate("GET", "/b/k", "", {"Authorization": f"AWS {AK}:abc"},
                     datetime.now(timezone.utc), lookup)
    assert email.utils  # formatdate is what clients send; parsedate handles it
