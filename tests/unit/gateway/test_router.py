"""The pure S3 router, tested against AWS documentation examples, real client request shapes
(clients.md) and requests built by botocore itself."""
from urllib.parse import parse_qsl, urlsplit

import boto3
import pytest
from botocore.config import Config
from multidict import CIMultiDict, MultiDict

from gateway.s3.errors import (InvalidArgument, InvalidBucketName, KeyTooLongError, MethodNotAllowed,
                               NotImplemented_, PreconditionFailed)
from gateway.s3.router import CopySource, Endpoint, Op, bucket_from_host, parse_copy_source, route

DOMAIN = "s3.example.test"


def call(method, target, headers=None, host="127.0.0.1:9000", domains=(DOMAIN,)):
    """Route like the gateway does: raw target as sent, query decoded as aiohttp decodes it."""
    query = MultiDict(parse_qsl(urlsplit(target).query, keep_blank_values=True))
    return route(method, target, query, CIMultiDict(headers or {}), host, domains=domains)


# (method, target relative to the bucket, op) - the request examples of the AWS S3 API reference,
# as collected in Garage's router tests. Each runs path style and virtual-hosted style.
AWS_DOC_EXAMPLES = [
    ("DELETE", "/example-object?uploadId=VXBsb2FkIElEIGZvciBlbHZpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZ",
     Op.AbortMultipartUpload),
    ("DELETE", "/Key+?uploadId=UploadId", Op.AbortMultipartUpload),
    ("POST", "/example-object?uploadId=AAAsb2FkIElEIGZvciBlbHZpbmcncyWeeS1tb3ZpZS5tMnRzIRRwbG9hZA",
     Op.CompleteMultipartUpload),
    ("POST", "/Key+?uploadId=UploadId", Op.CompleteMultipartUpload),
    ("PUT", "/", Op.CreateBucket),
    ("POST", "/example-object?uploads", Op.CreateMultipartUpload),
    ("POST", "/{Key+}?uploads", Op.CreateMultipartUpload),
    ("DELETE", "/", Op.DeleteBucket),
    ("DELETE", "/?cors", Op.DeleteBucketCors),
    ("DELETE", "/?lifecycle", Op.DeleteBucketLifecycle),
    ("DELETE", "/?policy", Op.DeleteBucketPolicy),
    ("DELETE", "/?tagging", Op.DeleteBucketTagging),
    ("DELETE", "/my-second-image.jpg", Op.DeleteObject),
    ("DELETE", "/my-third-image.jpg?versionId=UIORUnfndfiufdisojhr398493jfdkjFJjkndnqUifhnw89493jJFJ",
     Op.DeleteObject),
    ("DELETE", "/Key+?versionId=VersionId", Op.DeleteObject),
    ("POST", "/?delete", Op.DeleteObjects),
    ("DELETE", "/exampleobject?tagging", Op.DeleteObjectTagging),
    ("DELETE", "/{Key+}?tagging&versionId=VersionId", Op.DeleteObjectTagging),
    ("GET", "/?accelerate", Op.GetBucketAccelerateConfiguration),
    ("GET", "/?acl", Op.GetBucketAcl),
    ("GET", "/?cors", Op.GetBucketCors),
    ("GET", "/?encryption", Op.GetBucketEncryption),
    ("GET", "/?lifecycle", Op.GetBucketLifecycleConfiguration),
    ("GET", "/?location", Op.GetBucketLocation),
    ("GET", "/?logging", Op.GetBucketLogging),
    ("GET", "/?notification", Op.GetBucketNotificationConfiguration),
    ("GET", "/?ownershipControls", Op.GetBucketOwnershipControls),
    ("GET", "/?policy", Op.GetBucketPolicy),
    ("GET", "/?replication", Op.GetBucketReplication),
    ("GET", "/?requestPayment", Op.GetBucketRequestPayment),
    ("GET", "/?tagging", Op.GetBucketTagging),
    ("GET", "/?versioning", Op.GetBucketVersioning),
    ("GET", "/?website", Op.GetBucketWebsite),
    ("GET", "/my-image.jpg", Op.GetObject),
    ("GET", "/myObject?versionId=3/L4kqtJlcpXroDTDmpUMLUo", Op.GetObject),
    ("GET", "/Junk3.txt?response-cache-control=No-cache&response-content-disposition=attachment%3B%20"
            "filename%3Dtesting.txt&response-content-encoding=x-gzip&response-content-language=mi%2C%20en"
            "&response-expires=Thu%2C%2001%20Dec%201994%2016:00:00%20GMT", Op.GetObject),
    ("GET", "/Key+?partNumber=1&response-cache-control=ResponseCacheControl&response-content-disposition="
            "ResponseContentDisposition&response-content-encoding=ResponseContentEncoding"
            "&response-content-language=ResponseContentLanguage&response-content-type=ResponseContentType"
            "&response-expires=ResponseExpires&versionId=VersionId", Op.GetObject),
    ("GET", "/my-image.jpg?acl", Op.GetObjectAcl),
    ("GET", "/my-image.jpg?versionId=3/L4kqtJlcpXroDVBH40Nr8X8gdRQBpUMLUo&acl", Op.GetObjectAcl),
    ("GET", "/{Key+}?acl&versionId=VersionId", Op.GetObjectAcl),
    ("GET", "/{Key+}?attributes&versionId=VersionId", Op.GetObjectAttributes),
    ("GET", "/{Key+}?legal-hold&versionId=VersionId", Op.GetObjectLegalHold),
    ("GET", "/?object-lock", Op.GetObjectLockConfiguration),
    ("GET", "/{Key+}?retention&versionId=VersionId", Op.GetObjectRetention),
    ("GET", "/example-object?tagging", Op.GetObjectTagging),
    ("GET", "/{Key+}?tagging&versionId=VersionId", Op.GetObjectTagging),
    ("GET", "/?publicAccessBlock", Op.GetPublicAccessBlock),
    ("HEAD", "/", Op.HeadBucket),
    ("HEAD", "/my-image.jpg", Op.HeadObject),
    ("HEAD", "/my-image.jpg?versionId=3HL4kqCxf3vjVBH40Nrjfkd", Op.HeadObject),
    ("HEAD", "/Key+?partNumber=3&versionId=VersionId", Op.HeadObject),
    ("GET", "/?uploads&max-uploads=3", Op.ListMultipartUploads),
    ("GET", "/?uploads&delimiter=/", Op.ListMultipartUploads),
    ("GET", "/?uploads&delimiter=/&prefix=photos/2006/", Op.ListMultipartUploads),
    ("GET", "/?uploads&delimiter=D&encoding-type=url&key-marker=KeyMarker&max-uploads=1&prefix=Prefix"
            "&upload-id-marker=UploadIdMarker", Op.ListMultipartUploads),
    ("GET", "/", Op.ListObjects),
    ("GET", "/?prefix=N&marker=Ned&max-keys=40", Op.ListObjects),
    ("GET", "/?delimiter=/", Op.ListObjects),
    ("GET", "/?prefix=photos/2006/&delimiter=/", Op.ListObjects),
    ("GET", "/?delimiter=D&encoding-type=url&marker=Marker&max-keys=1&prefix=Prefix", Op.ListObjects),
    ("GET", "/?list-type=2", Op.ListObjectsV2),
    ("GET", "/?list-type=2&max-keys=3&prefix=E&start-after=ExampleGuide.pdf", Op.ListObjectsV2),
    ("GET", "/?list-type=2&delimiter=/", Op.ListObjectsV2),
    ("GET", "/?list-type=2&prefix=photos/2006/&delimiter=/", Op.ListObjectsV2),
    ("GET", "/?list-type=2&continuation-token=1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=", Op.ListObjectsV2),
    ("GET", "/?list-type=2&continuation-token=ContinuationToken&delimiter=D&encoding-type=url"
            "&fetch-owner=true&max-keys=1&prefix=Prefix&start-after=StartAfter", Op.ListObjectsV2),
    ("GET", "/?versions", Op.ListObjectVersions),
    ("GET", "/?versions&key-marker=key2", Op.ListObjectVersions),
    ("GET", "/?versions&key-marker=key3&version-id-marker=t46ZenlYTZBnj", Op.ListObjectVersions),
    ("GET", "/?versions&key-marker=key3&version-id-marker=t46Z0menlYTZBnj&max-keys=3", Op.ListObjectVersions),
    ("GET", "/?versions&delimiter=/", Op.ListObjectVersions),
    ("GET", "/?versions&prefix=photos/2006/&delimiter=/", Op.ListObjectVersions),
    ("GET", "/example-object?uploadId=XXBsb2FkIElEIGZvciBlbHZpbmcncyVcdS1tb3ZpZS5tMnRzEEEwbG9hZA&max-parts=2"
            "&part-number-marker=1", Op.ListParts),
    ("GET", "/Key+?max-parts=2&part-number-marker=2&uploadId=UploadId", Op.ListParts),
    ("PUT", "/?acl", Op.PutBucketAcl),
    ("PUT", "/?cors", Op.PutBucketCors),
    ("PUT", "/?lifecycle", Op.PutBucketLifecycleConfiguration),
    ("PUT", "/?policy", Op.PutBucketPolicy),
    ("PUT", "/?tagging", Op.PutBucketTagging),
    ("PUT", "/?versioning", Op.PutBucketVersioning),
    ("PUT", "/my-image.jpg", Op.PutObject),
    ("PUT", "/Key+", Op.PutObject),
    ("PUT", "/my-image.jpg?acl", Op.PutObjectAcl),
    ("PUT", "/my-image.jpg?acl&versionId=3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nrjfkd", Op.PutObjectAcl),
    ("PUT", "/{Key+}?acl&versionId=VersionId", Op.PutObjectAcl),
    ("PUT", "/{Key+}?legal-hold&versionId=VersionId", Op.PutObjectLegalHold),
    ("PUT", "/?object-lock", Op.PutObjectLockConfiguration),
    ("PUT", "/{Key+}?retention&versionId=VersionId", Op.PutObjectRetention),
    ("PUT", "/object-key?tagging", Op.PutObjectTagging),
    ("PUT", "/{Key+}?tagging&versionId=VersionId", Op.PutObjectTagging),
    ("PUT", "/my-movie.m2ts?partNumber=1&uploadId=VCVsb2FkIElEIGZvciBlbZZpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZR",
     Op.UploadPart),
    ("PUT", "/Key+?partNumber=2&uploadId=UploadId", Op.UploadPart),
    ("OPTIONS", "/", Op.Options),
    ("OPTIONS", "/my-image.jpg", Op.Options),
]


@pytest.mark.parametrize("method,target,op", AWS_DOC_EXAMPLES)
def test_aws_doc_examples_path_style(method, target, op):
    endpoint = call(method, "/my-bucket" + target)
    assert endpoint.op is op
    assert endpoint.bucket == "my-bucket"
    expected_key = urlsplit(target).path[1:] or None
    assert endpoint.key == expected_key


@pytest.mark.parametrize("method,target,op", AWS_DOC_EXAMPLES)
def test_aws_doc_examples_virtual_hosted_style(method, target, op):
    endpoint = call(method, target, host=f"my-bucket.{DOMAIN}:9000")
    assert endpoint.op is op
    assert endpoint.bucket == "my-bucket"
    assert endpoint.key == (urlsplit(target).path[1:] or None)


NOT_IMPLEMENTED = [
    ("DELETE", "/?analytics&id=list1"), ("DELETE", "/?encryption"), ("DELETE", "/?intelligent-tiering&id=Id"),
    ("DELETE", "/?inventory&id=list1"), ("DELETE", "/?metrics&id=ExampleMetrics"),
    ("DELETE", "/?ownershipControls"), ("DELETE", "/?publicAccessBlock"), ("DELETE", "/?replication"),
    ("DELETE", "/?website"), ("GET", "/?analytics&id=Id"), ("GET", "/?inventory"), ("GET", "/?metrics"),
    ("GET", "/?intelligent-tiering"), ("GET", "/?policyStatus"), ("GET", "/quotes/Nelson?torrent"),
    ("PUT", "/?accelerate"), ("PUT", "/?analytics&id=report1"), ("PUT", "/?encryption"),
    ("PUT", "/?intelligent-tiering&id=Id"), ("PUT", "/?inventory&id=report1"), ("PUT", "/?logging"),
    ("PUT", "/?metrics&id=EntireBucket"), ("PUT", "/?notification"), ("PUT", "/?ownershipControls"),
    ("PUT", "/?publicAccessBlock"), ("PUT", "/?replication"), ("PUT", "/?requestPayment"),
    ("PUT", "/?website"), ("POST", "/object-one.csv?restore"), ("POST", "/{Key+}?restore&versionId=VersionId"),
    ("POST", "/Key+?select&select-type=2"),
]


@pytest.mark.parametrize("method,target", NOT_IMPLEMENTED)
def test_s3_operations_cairn_does_not_serve_are_501(method, target):
    with pytest.raises(NotImplemented_) as info:
        call(method, "/my-bucket" + target)
    assert info.value.status == 501
    assert "is not implemented" in info.value.detail


# Request shapes of real clients (clients.md): (method, target, headers, op, bucket, key, params).
CLIENT_SHAPES = [
    # restic: HEAD /bucket/ before init; ListObjectsV2 with fetch-owner, delimiter, encoding-type.
    ("HEAD", "/restic/", {}, Op.HeadBucket, "restic", None, {}),
    ("GET", "/restic/?delimiter=%2F&encoding-type=url&fetch-owner=true&list-type=2&prefix=locks%2F", {},
     Op.ListObjectsV2, "restic", None,
     {"delimiter": "/", "encoding-type": "url", "fetch-owner": "true", "prefix": "locks/"}),
    ("PUT", "/restic/", {"Content-MD5": "x"}, Op.CreateBucket, "restic", None, {}),
    ("GET", "/restic/data/ab/abcdef", {"Range": "bytes=0-99"}, Op.GetObject, "restic", "data/ab/abcdef", {}),
    # aws CLI: s3 ls / sync use ListObjectsV2 with delimiter=/ and encoding-type=url; mv = CopyObject.
    ("GET", "/cli?list-type=2&prefix=&delimiter=%2F&encoding-type=url", {}, Op.ListObjectsV2, "cli", None,
     {"prefix": "", "delimiter": "/", "encoding-type": "url"}),
    ("PUT", "/cli/dst.txt", {"x-amz-copy-source": "cli/src.txt"}, Op.CopyObject, "cli", "dst.txt", {}),
    # rclone: ListObjects v1 with marker and max-keys; HEAD ?versionId=null after multipart;
    # metadata change = CopyObject onto itself.
    ("GET", "/rclone?delimiter=%2F&marker=dir%2Fb&max-keys=1000&prefix=dir%2F", {}, Op.ListObjects, "rclone",
     None, {"delimiter": "/", "marker": "dir/b", "max-keys": "1000", "prefix": "dir/"}),
    ("HEAD", "/rclone/big.bin?versionId=null", {}, Op.HeadObject, "rclone", "big.bin", {"versionId": "null"}),
    ("PUT", "/rclone/f.txt", {"X-Amz-Copy-Source": "rclone/f.txt", "x-amz-metadata-directive": "REPLACE"},
     Op.CopyObject, "rclone", "f.txt", {}),
    # s3cmd: path style with trailing slash; info GETs ?location, ?policy, ?cors, ?acl.
    ("GET", "/s3cmd/?location", {}, Op.GetBucketLocation, "s3cmd", None, {}),
    ("GET", "/s3cmd/?policy", {}, Op.GetBucketPolicy, "s3cmd", None, {}),
    ("GET", "/s3cmd/?cors", {}, Op.GetBucketCors, "s3cmd", None, {}),
    ("GET", "/s3cmd/?acl", {}, Op.GetBucketAcl, "s3cmd", None, {}),
    ("POST", "/s3cmd/?delete", {"Content-MD5": "x"}, Op.DeleteObjects, "s3cmd", None, {}),
    ("GET", "/s3cmd/?prefix=a%2F&delimiter=%2F", {}, Op.ListObjects, "s3cmd", None,
     {"prefix": "a/", "delimiter": "/"}),
    # boto3: multipart upload, part copy, presigned GET, the JS/Go SDK's x-id hint.
    ("POST", "/b/big.bin?uploads", {}, Op.CreateMultipartUpload, "b", "big.bin", {}),
    ("PUT", "/b/big.bin?partNumber=3&uploadId=u-1", {}, Op.UploadPart, "b", "big.bin",
     {"partNumber": "3", "uploadId": "u-1"}),
    ("PUT", "/b/big.bin?partNumber=4&uploadId=u-1", {"x-amz-copy-source": "/src/obj"}, Op.UploadPartCopy,
     "b", "big.bin", {"partNumber": "4", "uploadId": "u-1"}),
    ("POST", "/b/big.bin?uploadId=u-1", {}, Op.CompleteMultipartUpload, "b", "big.bin", {"uploadId": "u-1"}),
    ("GET", "/b/big.bin?uploadId=u-1&max-parts=10&part-number-marker=0", {}, Op.ListParts, "b", "big.bin",
     {"uploadId": "u-1", "max-parts": "10", "part-number-marker": "0"}),
    ("GET", "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20240101%2Fus-east-1%2Fs3%2Faws4_request"
            "&X-Amz-Date=20240101T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=ab",
     {}, Op.GetObject, "b", "k", {}),
    ("PUT", "/b/k?x-id=PutObject&X-Amz-Signature=ab", {}, Op.PutObject, "b", "k", {}),
    ("GET", "/b/k?x-id=GetObject&partNumber=2", {}, Op.GetObject, "b", "k", {"partNumber": "2"}),
    # Browser form upload.
    ("POST", "/b", {"Content-Type": "multipart/form-data; boundary=----x"}, Op.PostObject, "b", None, {}),
    ("GET", "/", {}, Op.ListBuckets, None, None, {}),
    ("GET", "/?max-buckets=10&prefix=a", {}, Op.ListBuckets, None, None, {"max-buckets": "10", "prefix": "a"}),
]


@pytest.mark.parametrize("method,target,headers,op,bucket,key,params", CLIENT_SHAPES)
def test_real_client_request_shapes(method, target, headers, op, bucket, key, params):
    assert call(method, target, headers) == Endpoint(op, bucket, key, params)


KEYS = [  # raw path after the bucket -> decoded key: never normalised, decoded exactly once
    ("a//b", "a//b"), ("../a", "../a"), ("a/./b", "a/./b"), ("dir/", "dir/"), ("/lead", "/lead"),
    ("./", "./"), ("a%2Fb", "a/b"), ("a%252Fb", "a%2Fb"), ("a+b", "a+b"), ("a%20b", "a b"),
    ("%26%2B%3F%25%C3%A9/something", "&+?%é/something"), ("what%3F", "what?"), ("%00nul", "\x00nul"),
    ("%F0%9F%98%80", "😀"), ("raw-é", "raw-é"), ("100%", "100%"), ("%zz", "%zz"),
]


@pytest.mark.parametrize("raw,key", KEYS)
def test_keys_come_from_the_raw_path_verbatim(raw, key):
    assert call("GET", "/b/" + raw).key == key
    assert call("GET", "/" + raw, host=f"b.{DOMAIN}").key == key


def test_query_in_raw_path_is_cut_off_and_query_argument_wins():
    endpoint = route("GET", "/b/key?acl", MultiDict({"acl": ""}), {}, "localhost")
    assert (endpoint.op, endpoint.key) == (Op.GetObjectAcl, "key")
    assert route("GET", "/b/key?acl", MultiDict(), {}, "localhost").op is Op.GetObject


@pytest.mark.parametrize("raw", ["%FF", "%C3", "%C3%28", "%ED%A0%80", "ok%80"])
def test_invalid_utf8_after_decoding_is_invalid_argument(raw):
    with pytest.raises(InvalidArgument) as info:
        call("GET", "/b/" + raw)
    assert "UTF-8" in info.value.detail


def test_undecodable_bytes_in_raw_target_are_invalid_argument():
    # aiohttp surfaces non-UTF-8 request-target bytes as surrogate escapes
    with pytest.raises(InvalidArgument):
        route("GET", "/b/\udcff", {}, {}, "localhost")


def test_key_length_limit_is_1024_utf8_bytes():
    assert call("PUT", "/b/" + "a" * 1024).key == "a" * 1024
    with pytest.raises(KeyTooLongError):
        call("PUT", "/b/" + "a" * 1025)
    with pytest.raises(KeyTooLongError):
        call("PUT", "/b/" + "%C3%A9" * 513)  # 513 characters, 1026 bytes


@pytest.mark.parametrize("host,domains,bucket", [
    ("my-bucket.s3.example.test", (DOMAIN,), "my-bucket"),
    ("my-bucket.s3.example.test:9000", (DOMAIN,), "my-bucket"),
    ("my.dotted.bucket.s3.example.test", (DOMAIN,), "my.dotted.bucket"),
    ("My-Bucket.S3.Example.Test.", (DOMAIN,), "my-bucket"),
    ("b.s3.example.test", ("example.test", DOMAIN), "b"),  # the longest domain wins
    ("b.s3.example.test", ("s3.example.test.",), "b"),
    ("s3.example.test", (DOMAIN,), None),
    ("s3.example.test:9000", (DOMAIN,), None),
    ("other.example", (DOMAIN,), None),
    ("xs3.example.test", (DOMAIN,), None),
    ("127.0.0.1:9000", (DOMAIN,), None),
    ("[::1]:9000", (DOMAIN,), None),
    ("::1", (DOMAIN,), None),
    ("", (DOMAIN,), None),
    (".s3.example.test", (DOMAIN,), None),
    ("b.s3.example.test", (), None),
])
def test_bucket_from_host(host, domains, bucket):
    assert bucket_from_host(host, domains) == bucket


def test_host_equal_to_domain_is_path_style():
    endpoint = call("GET", "/b/k/x", host=f"{DOMAIN}:9000")
    assert (endpoint.bucket, endpoint.key) == ("b", "k/x")


def test_virtual_hosted_root_is_a_bucket_request_and_whole_path_is_the_key():
    assert call("GET", "/", host=f"b.{DOMAIN}") == Endpoint(Op.ListObjects, "b", None, {})
    assert call("GET", "/b/k", host=f"b.{DOMAIN}").key == "b/k"


@pytest.mark.parametrize("method,target,headers,error", [
    ("PATCH", "/b/k", {}, MethodNotAllowed),
    ("get", "/b/k", {}, MethodNotAllowed),
    ("PUT", "/", {}, MethodNotAllowed),
    ("DELETE", "/", {}, MethodNotAllowed),
    ("HEAD", "/", {}, MethodNotAllowed),
    ("GET", "/b/k?versioning", {}, MethodNotAllowed),  # a bucket sub-resource on an object
    ("GET", "/b/k?uploads", {}, MethodNotAllowed),
    ("PUT", "/b?uploads", {}, MethodNotAllowed),
    ("POST", "/b/k", {}, MethodNotAllowed),
    ("GET", "/b?delete", {}, MethodNotAllowed),
    ("POST", "/b", {"Content-Type": "application/xml"}, PreconditionFailed),
    ("POST", "/b", {}, PreconditionFailed),
    ("GET", "/b?acl&policy", {}, InvalidArgument),
    ("PUT", "/b/k?uploadId=u", {}, InvalidArgument),  # must not become PutObject and overwrite k
    ("PUT", "/b/k?partNumber=1", {}, InvalidArgument),
    ("PUT", "/b/k?renameObject", {}, NotImplemented_),  # unknown sub-resource on a mutating request
    ("DELETE", "/b?metadataTable", {}, NotImplemented_),  # must never become DeleteBucket
    ("POST", "/b?session", {"Content-Type": "multipart/form-data"}, NotImplemented_),
    ("PUT", "/Bad_Bucket", {}, InvalidBucketName),
    ("PUT", "/ab", {}, InvalidBucketName),
    ("GET", "//key", {}, InvalidBucketName),
    ("GET", "b/k", {}, InvalidArgument),
    ("GET", "/b?list-type=1", {}, InvalidArgument),
    ("GET", "/b?list-type=2&encoding-type=base64", {}, InvalidArgument),
    ("GET", "/b?list-type=2&fetch-owner=maybe", {}, InvalidArgument),
    ("GET", "/b?max-keys=-1", {}, InvalidArgument),
    ("GET", "/b?max-keys=ten", {}, InvalidArgument),
    ("GET", "/b?max-keys=%2B5", {}, InvalidArgument),
    ("GET", "/b?max-keys=99999999999", {}, InvalidArgument),
    ("GET", "/b/k?partNumber=0", {}, InvalidArgument),
    ("GET", "/b/k?partNumber=10001", {}, InvalidArgument),
    ("PUT", "/b/k?partNumber=%C2%B2&uploadId=u", {}, InvalidArgument),  # a Unicode digit
    ("GET", "/b/k?uploadId=u&max-parts=x", {}, InvalidArgument),
])
def test_invalid_requests(method, target, headers, error):
    with pytest.raises(error):
        call(method, target, headers)


def test_unknown_parameters_are_ignored_on_reads():
    assert call("GET", "/b/k?cachebust=123&prefix=x") == Endpoint(Op.GetObject, "b", "k", {})
    assert call("GET", "/b?whatever&list-type=2") == Endpoint(Op.ListObjectsV2, "b", None, {})
    assert call("HEAD", "/b?acl").op is Op.HeadBucket  # HEAD never selects a sub-resource


def test_params_are_normalised():
    endpoint = call("GET", "/b?max-keys=0100&encoding-type=URL&list-type=2&fetch-owner=TRUE")
    assert endpoint.params == {"max-keys": "100", "encoding-type": "url", "fetch-owner": "true"}
    assert endpoint.int_param("max-keys", 1000) == 100
    assert endpoint.int_param("absent", 1000) == 1000


def test_get_object_params_keep_response_overrides_and_drop_the_rest():
    endpoint = call("GET", "/b/k?versionId=v&response-content-type=text%2Fplain&acl-ish=1&prefix=p")
    assert endpoint.params == {"versionId": "v", "response-content-type": "text/plain"}


def test_headers_are_looked_up_case_insensitively_in_plain_dicts():
    plain = {"X-AMZ-COPY-SOURCE": "b/src"}
    assert route("PUT", "/b/dst", {}, plain, "localhost").op is Op.CopyObject
    form = {"content-type": "Multipart/Form-Data; boundary=x"}
    assert route("POST", "/b", {}, form, "localhost").op is Op.PostObject


def test_create_bucket_checks_the_name_but_other_ops_leave_it_to_lookup():
    with pytest.raises(InvalidBucketName):
        call("PUT", "/UPPER")
    assert call("GET", "/UPPER/k").bucket == "UPPER"  # answered by NoSuchBucket, not here


def test_every_op_is_reachable():
    reached = {op for _, _, op in AWS_DOC_EXAMPLES} | {row[3] for row in CLIENT_SHAPES}
    reached |= {Op.CopyObject, Op.UploadPartCopy, Op.PostObject, Op.ListBuckets}
    assert reached == set(Op)


@pytest.mark.parametrize("value,expected", [
    ("bucket/key", CopySource("bucket", "key", None)),
    ("/bucket/key", CopySource("bucket", "key", None)),
    ("bucket/dir/a%20b%2Bc", CopySource("bucket", "dir/a b+c", None)),
    ("bucket/what%3F?versionId=v1", CopySource("bucket", "what?", "v1")),
    ("s/a%20b%3Fc?versionId=v", CopySource("s", "a b?c", "v")),  # as botocore sends it
    ("bucket/k?versionId=null", CopySource("bucket", "k", "null")),
    ("bucket/a//b/", CopySource("bucket", "a//b/", None)),
    ("bucket/%25", CopySource("bucket", "%", None)),
])
def test_parse_copy_source(value, expected):
    assert parse_copy_source(value) == expected


@pytest.mark.parametrize("value,error", [
    ("bucket", InvalidArgument), ("bucket/", InvalidArgument), ("/key-only", InvalidArgument),
    ("", InvalidArgument), ("bucket/%FF", InvalidArgument), ("bucket/k?versionId=", InvalidArgument),
    ("bucket/" + "a" * 1025, KeyTooLongError),
    ("arn:aws:s3:us-west-2:123456789012:accesspoint/ap/object/k", NotImplemented_),
])
def test_parse_copy_source_rejects(value, error):
    with pytest.raises(error):
        parse_copy_source(value)


# --- requests built by botocore itself --------------------------------------------------------

class _Captured(Exception):
    def __init__(self, request):
        super().__init__("captured")
        self.request = request


def _botocore_request(operation, endpoint_url, style, **kwargs):
    client = boto3.client("s3", endpoint_url=endpoint_url, region_name="us-east-1",
                          aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
                          config=Config(s3={"addressing_style": style}, retries={"max_attempts": 1}))

    def capture(request, **_):
        raise _Captured(request)

    client.meta.events.register("before-send.s3", capture)
    with pytest.raises(_Captured) as info:
        getattr(client, operation)(**kwargs)
    request = info.value.request
    url = urlsplit(request.url)
    headers = CIMultiDict({k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()})
    query = MultiDict(parse_qsl(url.query, keep_blank_values=True))
    target = url.path + ("?" + url.query if url.query else "")
    return route(request.method, target, query, headers, url.netloc, domains=(DOMAIN,))


TRICKY_KEY = "../a//b/./c %2F+?&=#é😀;:@$,'()*!~"
BOTOCORE_CALLS = [
    ("list_buckets", {}, Op.ListBuckets, None, {}),
    ("head_bucket", {"Bucket": "bkt"}, Op.HeadBucket, None, {}),
    ("create_bucket", {"Bucket": "bkt", "CreateBucketConfiguration": {"LocationConstraint": "eu-west-1"}},
     Op.CreateBucket, None, {}),
    ("delete_bucket", {"Bucket": "bkt"}, Op.DeleteBucket, None, {}),
    ("get_bucket_location", {"Bucket": "bkt"}, Op.GetBucketLocation, None, {}),
    ("get_bucket_versioning", {"Bucket": "bkt"}, Op.GetBucketVersioning, None, {}),
    ("put_bucket_versioning", {"Bucket": "bkt", "VersioningConfiguration": {"Status": "Enabled"}},
     Op.PutBucketVersioning, None, {}),
    ("get_bucket_acl", {"Bucket": "bkt"}, Op.GetBucketAcl, None, {}),
    ("get_object_lock_configuration", {"Bucket": "bkt"}, Op.GetObjectLockConfiguration, None, {}),
    ("list_objects", {"Bucket": "bkt", "Prefix": "a b/", "Marker": "m+1"}, Op.ListObjects, None,
     {"prefix": "a b/", "marker": "m+1", "encoding-type": "url"}),
    ("list_objects_v2", {"Bucket": "bkt", "Delimiter": "/", "FetchOwner": True, "StartAfter": "x"},
     Op.ListObjectsV2, None, {"delimiter": "/", "fetch-owner": "true", "start-after": "x", "encoding-type": "url"}),
    ("list_object_versions", {"Bucket": "bkt"}, Op.ListObjectVersions, None, {"encoding-type": "url"}),
    ("list_multipart_uploads", {"Bucket": "bkt", "Prefix": "p"}, Op.ListMultipartUploads, None, {"prefix": "p"}),
    ("delete_objects", {"Bucket": "bkt", "Delete": {"Objects": [{"Key": "a"}]}}, Op.DeleteObjects, None, {}),
    ("put_object", {"Bucket": "bkt", "Key": TRICKY_KEY, "Body": b"x"}, Op.PutObject, TRICKY_KEY, {}),
    ("get_object", {"Bucket": "bkt", "Key": TRICKY_KEY, "VersionId": "v/1+"}, Op.GetObject, TRICKY_KEY,
     {"versionId": "v/1+"}),
    ("head_object", {"Bucket": "bkt", "Key": "k", "PartNumber": 2}, Op.HeadObject, "k", {"partNumber": "2"}),
    ("delete_object", {"Bucket": "bkt", "Key": TRICKY_KEY}, Op.DeleteObject, TRICKY_KEY, {}),
    ("copy_object", {"Bucket": "bkt", "Key": "dst", "CopySource": {"Bucket": "src", "Key": TRICKY_KEY}},
     Op.CopyObject, "dst", {}),
    ("get_object_tagging", {"Bucket": "bkt", "Key": "k"}, Op.GetObjectTagging, "k", {}),
    ("put_object_retention", {"Bucket": "bkt", "Key": "k", "Retention": {"Mode": "COMPLIANCE"}},
     Op.PutObjectRetention, "k", {}),
    ("get_object_legal_hold", {"Bucket": "bkt", "Key": "k"}, Op.GetObjectLegalHold, "k", {}),
    ("get_object_attributes", {"Bucket": "bkt", "Key": "k", "ObjectAttributes": ["ETag"]},
     Op.GetObjectAttributes, "k", {}),
    ("create_multipart_upload", {"Bucket": "bkt", "Key": TRICKY_KEY}, Op.CreateMultipartUpload, TRICKY_KEY, {}),
    ("upload_part", {"Bucket": "bkt", "Key": "k", "UploadId": "u+/=", "PartNumber": 7, "Body": b"x"},
     Op.UploadPart, "k", {"uploadId": "u+/=", "partNumber": "7"}),
    ("upload_part_copy", {"Bucket": "bkt", "Key": "k", "UploadId": "u", "PartNumber": 1,
                          "CopySource": {"Bucket": "s", "Key": "a b?c", "VersionId": "v"}},
     Op.UploadPartCopy, "k", {"uploadId": "u", "partNumber": "1"}),
    ("complete_multipart_upload", {"Bucket": "bkt", "Key": "k", "UploadId": "u",
                                   "MultipartUpload": {"Parts": [{"PartNumber": 1, "ETag": '"e"'}]}},
     Op.CompleteMultipartUpload, "k", {"uploadId": "u"}),
    ("abort_multipart_upload", {"Bucket": "bkt", "Key": "k", "UploadId": "u"}, Op.AbortMultipartUpload, "k",
     {"uploadId": "u"}),
    ("list_parts", {"Bucket": "bkt", "Key": "k", "UploadId": "u", "MaxParts": 5}, Op.ListParts, "k",
     {"uploadId": "u", "max-parts": "5"}),
]


@pytest.mark.parametrize("style,endpoint_url", [("path", "http://127.0.0.1:9000"),
                                                ("virtual", f"http://{DOMAIN}:9000")])
@pytest.mark.parametrize("operation,kwargs,op,key,params", BOTOCORE_CALLS)
def test_requests_built_by_botocore(style, endpoint_url, operation, kwargs, op, key, params):
    endpoint = _botocore_request(operation, endpoint_url, style, **kwargs)
    assert endpoint == Endpoint(op, kwargs.get("Bucket"), key, params)
