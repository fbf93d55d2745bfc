"""ListObjectVersions on unversioned buckets (every object is version "null", as rclone
--s3-versions and backup tools expect) and object ACLs (private only, anything wider refused)."""
from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.clients


def test_list_object_versions_pages_and_groups(s3, bucket):
    keys = ["a/1", "a/2", "b", "c", "d e"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    seen, marker = [], None
    for _ in range(10):
        kwargs = {"KeyMarker": marker} if marker else {}
        page = s3.list_object_versions(Bucket=bucket, MaxKeys=2, **kwargs)
        for v in page["Versions"]:
            assert v["VersionId"] == "null" and v["IsLatest"] is True
            assert v["Size"] == len(v["Key"])
        seen += [v["Key"] for v in page["Versions"]]
        if not page["IsTruncated"]:
            break
        marker = page["NextKeyMarker"]
    assert seen == sorted(keys)
    grouped = s3.list_object_versions(Bucket=bucket, Delimiter="/")
    assert [v["Key"] for v in grouped["Versions"]] == ["b", "c", "d e"]
    assert grouped["CommonPrefixes"] == [{"Prefix": "a/"}]


def test_object_acl_private_only(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    s3.put_object_acl(Bucket=bucket, Key="k", ACL="private")
    acl = s3.get_object_acl(Bucket=bucket, Key="k")
    assert [g["Permission"] for g in acl["Grants"]] == ["FULL_CONTROL"]
    for kwargs in ({"ACL": "public-read"}, {"GrantRead": 'uri="http://acs.amazonaws.com/groups/global/AllUsers"'}):
        with pytest.raises(ClientError) as err:
            s3.put_object_acl(Bucket=bucket, Key="k", **kwargs)
        assert err.value.response["Error"]["Code"] == "NotImplemented"
    with pytest.raises(ClientError) as err:
        s3.put_object_acl(Bucket=bucket, Key="missing", ACL="private")
    assert err.value.response["Error"]["Code"] == "NoSuchKey"
