"""Bucket-name and key validation, table-tested against AWS's naming rules."""
import pytest

from gateway.s3.errors import InvalidArgument, InvalidBucketName, KeyTooLongError
from gateway.s3.names import validate_bucket_name, validate_key

VALID_BUCKETS = [
    "abc", "a" * 63, "my-bucket", "my.bucket.name", "123", "bucket-1.2", "a-b", "0to9",
    "docexamplebucket1", "log-delivery-march-2020", "my-hosted-content",
    "xn-single-hyphen", "sthree", "bucket-s3alias-not-at-end", "b.mrap.x",
]
INVALID_BUCKETS = [
    ("ab", "3 to 63"),
    ("a" * 64, "3 to 63"),
    ("", "3 to 63"),
    ("My-Bucket", "lowercase"),
    ("my_bucket", "lowercase"),
    ("my bucket", "lowercase"),
    ("bücket", "lowercase"),
    ("-bucket", "begin and end"),
    ("bucket-", "begin and end"),
    (".bucket", "begin and end"),
    ("bucket.", "begin and end"),
    ("my..bucket", "adjacent periods"),
    ("192.168.5.4", "IP address"),
    ("10.0.0.1", "IP address"),
    ("xn--bucket", "xn--"),
    ("sthree-bucket", "sthree-"),
    ("sthree-configurator", "sthree-"),
    ("amzn-s3-demo-bucket", "amzn-s3-demo-"),
    ("bucket-s3alias", "-s3alias"),
    ("bucket--ol-s3", "--ol-s3"),
    ("bucket.mrap", ".mrap"),
    ("bucket--x-s3", "--x-s3"),
    ("bucket--table-s3", "--table-s3"),
]


@pytest.mark.parametrize("name", VALID_BUCKETS)
def test_valid_bucket_names_pass(name):
    validate_bucket_name(name)


@pytest.mark.parametrize("name,reason", INVALID_BUCKETS)
def test_invalid_bucket_names_say_which_rule_failed(name, reason):
    with pytest.raises(InvalidBucketName) as info:
        validate_bucket_name(name)
    assert reason in info.value.detail
    assert info.value.extra == {"BucketName": name}
    assert info.value.status == 400


@pytest.mark.parametrize("key", [
    "a", "a" * 1024, "é" * 512, "../a", "a//b", "a/./b", "dir/", "/", " lead and trail ",
    "\x00nul", "\x01control\r\n", "%2F", "a+b", "😀" * 256,
])
def test_keys_are_opaque_and_accepted_up_to_1024_utf8_bytes(key):
    validate_key(key)


@pytest.mark.parametrize("key,size", [("a" * 1025, 1025), ("é" * 513, 1026), ("😀" * 257, 1028)])
def test_key_longer_than_1024_utf8_bytes_is_rejected(key, size):
    with pytest.raises(KeyTooLongError) as info:
        validate_key(key)
    assert str(size) in info.value.detail
    assert info.value.extra["Size"] == str(size)


def test_empty_key_is_rejected():
    with pytest.raises(InvalidArgument):
        validate_key("")


def test_key_with_lone_surrogate_is_rejected_not_a_crash():
    with pytest.raises(InvalidArgument):
        validate_key("bad\udcff")
