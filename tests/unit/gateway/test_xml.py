"""S3 XML: exact rendering, hardened parsing, and both checked against botocore itself
(botocore parses our responses; botocore's serializer produces the request bodies we parse)."""
from datetime import datetime, timedelta, timezone
from urllib.parse import unquote_plus

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError

from gateway.s3 import xml
from gateway.s3.errors import InvalidArgument, InvalidPartOrder, InvalidTag, MalformedXML, NotImplemented_
from gateway.s3.xml import DeletedEntry, DeleteError, ObjectEntry, PartEntry, UploadEntry

DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'
NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
T0 = datetime(2009, 10, 12, 17, 50, 30, 123456, tzinfo=timezone.utc)
T0_ISO = "2009-10-12T17:50:30.123Z"
T0_NS = 1255369830_123456789    # T0, to the nanosecond


def doc(root, body):
    return (f"{DECL}<{root} {NS}>{body}</{root}>").encode()


# --- time formats --------------------------------------------------------------------------------

def test_iso8601_ns_is_iso8601_of_the_same_instant():
    assert xml.iso8601_ns(T0_NS) == T0_ISO
    assert xml.iso8601_ns(0) == "1970-01-01T00:00:00.000Z"
    assert xml.iso8601_ns(1_999_999_999) == "1970-01-01T00:00:01.999Z"    # truncated, never rounded up


@given(st.integers(min_value=0, max_value=4_102_444_800 * 10**9))     # to 2100
def test_iso8601_ns_matches_the_datetime_form(ns: int):
    moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=ns // 1000)
    assert xml.utc_from_ns(ns) == moment
    assert xml.iso8601_ns(ns) == xml.iso8601(moment)


def test_iso8601_has_milliseconds_and_z_in_utc():
    assert xml.iso8601(T0) == T0_ISO
    assert xml.iso8601(datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)) == "2024-01-02T03:04:05.000Z"
    plus_two = timezone(timedelta(hours=2))
    assert xml.iso8601(datetime(2024, 1, 1, 1, 0, 0, 999999, tzinfo=plus_two)) == "2023-12-31T23:00:00.999Z"


def test_http_date_is_rfc7231_gmt():
    assert xml.http_date(T0) == "Mon, 12 Oct 2009 17:50:30 GMT"
    plus_two = timezone(timedelta(hours=2))
    assert xml.http_date(datetime(2024, 1, 1, 1, 0, 0, tzinfo=plus_two)) == "Sun, 31 Dec 2023 23:00:00 GMT"


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError):
        xml.iso8601(datetime(2024, 1, 1))
    with pytest.raises(ValueError):
        xml.http_date(datetime(2024, 1, 1))


# --- escaping ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,escaped", [
    ("plain key/é😀", "plain key/é😀"),
    ("a&b<c>d\"e'f", "a&amp;b&lt;c&gt;d&quot;e'f"),
    ("cr\rlf\ntab\t", "cr&#xD;lf\ntab\t"),
    ("nul\x00bel\x07", "nul&#x0;bel&#x7;"),
    ("\ufffe", "&#xFFFE;"),
])
def test_escape(text, escaped):
    assert xml.escape(text) == escaped


@pytest.mark.parametrize("text,encoded", [
    ("photos/2006/", "photos/2006/"),
    ("test_file(3).png", "test_file%283%29.png"),  # AWS's documented example
    ("a b+c", "a%20b%2Bc"),
    ("100%", "100%25"),
    ("é", "%C3%A9"),
    ("\x01", "%01"),
    ("-_.~", "-_.~"),
])
def test_url_encode(text, encoded):
    assert xml.url_encode(text) == encoded
    assert unquote_plus(encoded) == text  # botocore decodes with unquote_plus


# --- exact documents -----------------------------------------------------------------------------

def test_error_xml():
    body = xml.error_xml("NoSuchKey", "The specified key does not exist.", "/b/a&b", "req-1",
                         {"Key": "a&b", "BucketName": "b"})
    assert body == (f"{DECL}<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message>"
                    "<Key>a&amp;b</Key><BucketName>b</BucketName><Resource>/b/a&amp;b</Resource>"
                    "<RequestId>req-1</RequestId></Error>").encode()


def test_error_xml_without_resource_and_with_non_string_extra():
    body = xml.error_xml("EntityTooLarge", "Too big.", None, "r", {"MaxSizeAllowed": 5})
    assert body == (f"{DECL}<Error><Code>EntityTooLarge</Code><Message>Too big.</Message>"
                    "<MaxSizeAllowed>5</MaxSizeAllowed><RequestId>r</RequestId></Error>").encode()


def test_error_xml_refuses_element_names_that_are_not_names():
    with pytest.raises(ValueError):
        xml.error_xml("X", "m", None, "r", {"a><b": "v"})


def test_list_buckets_xml():
    new_year = datetime(2024, 1, 1, tzinfo=timezone.utc)
    body = xml.list_buckets_xml("owner-id", "owner", [("alpha", T0), ("beta", new_year)])
    assert body == doc("ListAllMyBucketsResult",
                       "<Owner><ID>owner-id</ID><DisplayName>owner</DisplayName></Owner><Buckets>"
                       f"<Bucket><Name>alpha</Name><CreationDate>{T0_ISO}</CreationDate></Bucket>"
                       "<Bucket><Name>beta</Name><CreationDate>2024-01-01T00:00:00.000Z</CreationDate></Bucket>"
                       "</Buckets>")
    assert xml.list_buckets_xml("id", None, []) == doc("ListAllMyBucketsResult",
                                                        "<Owner><ID>id</ID></Owner><Buckets></Buckets>")


def test_location_xml():
    assert xml.location_xml("eu-west-1") == doc("LocationConstraint", "eu-west-1")
    empty = f"{DECL}<LocationConstraint {NS}/>".encode()
    assert xml.location_xml("us-east-1") == empty
    assert xml.location_xml(None) == empty


def test_versioning_xml():
    assert xml.versioning_xml(None) == f"{DECL}<VersioningConfiguration {NS}/>".encode()
    assert xml.versioning_xml("Enabled") == doc("VersioningConfiguration", "<Status>Enabled</Status>")
    assert xml.versioning_xml("Suspended") == doc("VersioningConfiguration", "<Status>Suspended</Status>")
    with pytest.raises(ValueError):
        xml.versioning_xml("Disabled")


def test_acl_xml():
    assert xml.acl_xml("id1", "me") == doc(
        "AccessControlPolicy",
        "<Owner><ID>id1</ID><DisplayName>me</DisplayName></Owner><AccessControlList><Grant>"
        '<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser">'
        "<ID>id1</ID><DisplayName>me</DisplayName></Grantee><Permission>FULL_CONTROL</Permission>"
        "</Grant></AccessControlList>")


def test_copy_results():
    assert xml.copy_object_result_xml("abc", T0) == doc(
        "CopyObjectResult", f"<ETag>&quot;abc&quot;</ETag><LastModified>{T0_ISO}</LastModified>")
    assert xml.copy_part_result_xml('"abc"', T0, {"CRC32": "AAAAAA=="}) == doc(
        "CopyPartResult",
        f"<ETag>&quot;abc&quot;</ETag><LastModified>{T0_ISO}</LastModified><ChecksumCRC32>AAAAAA==</ChecksumCRC32>")


def test_delete_result_xml():
    body = xml.delete_result_xml(
        [("a&b", None), ("v", "3"), DeletedEntry("m", None, True, "dm-1")],
        [("locked", "AccessDenied", "Access Denied"), DeleteError("x", "NoSuchVersion", "gone", "7")],
        quiet=False)
    assert body == doc("DeleteResult",
                       "<Deleted><Key>a&amp;b</Key></Deleted>"
                       "<Deleted><Key>v</Key><VersionId>3</VersionId></Deleted>"
                       "<Deleted><Key>m</Key><DeleteMarker>true</DeleteMarker>"
                       "<DeleteMarkerVersionId>dm-1</DeleteMarkerVersionId></Deleted>"
                       "<Error><Key>locked</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
                       "<Error><Key>x</Key><VersionId>7</VersionId><Code>NoSuchVersion</Code>"
                       "<Message>gone</Message></Error>")


def test_delete_result_quiet_lists_only_errors():
    body = xml.delete_result_xml([("a", None)], [("b", "InternalError", "oops")], quiet=True)
    assert body == doc("DeleteResult", "<Error><Key>b</Key><Code>InternalError</Code><Message>oops</Message></Error>")
    assert xml.delete_result_xml([("a", None)], [], quiet=True) == doc("DeleteResult", "")


ENTRY = ObjectEntry("my-image.jpg", T0_NS, "fba9dede5f27731c9771645a39863328", 434234, owner_id="oid")


def test_list_objects_v1_xml():
    body = xml.list_objects_v1_xml("bucket", prefix="", marker="", max_keys=1000, entries=[ENTRY])
    assert body == doc("ListBucketResult",
                       "<Name>bucket</Name><Prefix></Prefix><Marker></Marker><MaxKeys>1000</MaxKeys>"
                       "<IsTruncated>false</IsTruncated><Contents><Key>my-image.jpg</Key>"
                       f"<LastModified>{T0_ISO}</LastModified>"
                       "<ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size>"
                       "<StorageClass>STANDARD</StorageClass><Owner><ID>oid</ID></Owner></Contents>")


def test_list_objects_v1_xml_with_delimiter_truncation_and_url_encoding():
    entry = ObjectEntry("dir/a b+c", T0_NS, '"e"', 0, owner_id="oid", owner_name="me", checksum_algorithm="CRC32")
    body = xml.list_objects_v1_xml("b", prefix="dir/", marker="dir/0 0", next_marker="dir/a b+c", max_keys=2,
                                   delimiter="/", is_truncated=True, encoding_type="url",
                                   entries=[entry], common_prefixes=["dir/sub dir/"])
    assert body == doc("ListBucketResult",
                       "<Name>b</Name><Prefix>dir/</Prefix><Marker>dir/0%200</Marker>"
                       "<NextMarker>dir/a%20b%2Bc</NextMarker><MaxKeys>2</MaxKeys><Delimiter>/</Delimiter>"
                       "<EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
                       f"<Contents><Key>dir/a%20b%2Bc</Key><LastModified>{T0_ISO}</LastModified>"
                       "<ETag>&quot;e&quot;</ETag><ChecksumAlgorithm>CRC32</ChecksumAlgorithm><Size>0</Size>"
                       "<StorageClass>STANDARD</StorageClass><Owner><ID>oid</ID><DisplayName>me</DisplayName>"
                       "</Owner></Contents><CommonPrefixes><Prefix>dir/sub%20dir/</Prefix></CommonPrefixes>")


def test_list_objects_v2_xml():
    body = xml.list_objects_v2_xml("bucket", prefix="E", start_after="ExampleGuide.pdf", max_keys=3,
                                   entries=[ENTRY])
    assert body == doc("ListBucketResult",
                       "<Name>bucket</Name><Prefix>E</Prefix><StartAfter>ExampleGuide.pdf</StartAfter>"
                       "<KeyCount>1</KeyCount><MaxKeys>3</MaxKeys><IsTruncated>false</IsTruncated>"
                       "<Contents><Key>my-image.jpg</Key>"
                       f"<LastModified>{T0_ISO}</LastModified>"
                       "<ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size>"
                       "<StorageClass>STANDARD</StorageClass></Contents>")  # no Owner without fetch-owner


def test_list_objects_v2_xml_tokens_owner_and_encoding():
    body = xml.list_objects_v2_xml("b", prefix="a b/", continuation_token="tok+/=", next_continuation_token="n+",
                                   delimiter="/", is_truncated=True, encoding_type="url", fetch_owner=True,
                                   entries=[ENTRY], common_prefixes=["a b/c/", "a b/d/"])
    assert body == doc("ListBucketResult",
                       "<Name>b</Name><Prefix>a%20b/</Prefix><ContinuationToken>tok+/=</ContinuationToken>"
                       "<NextContinuationToken>n+</NextContinuationToken><KeyCount>3</KeyCount>"
                       "<MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter><EncodingType>url</EncodingType>"
                       "<IsTruncated>true</IsTruncated><Contents><Key>my-image.jpg</Key>"
                       f"<LastModified>{T0_ISO}</LastModified>"
                       "<ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size>"
                       "<StorageClass>STANDARD</StorageClass><Owner><ID>oid</ID></Owner></Contents>"
                       "<CommonPrefixes><Prefix>a%20b/c/</Prefix></CommonPrefixes>"
                       "<CommonPrefixes><Prefix>a%20b/d/</Prefix></CommonPrefixes>")


def test_list_objects_v2_key_count_can_be_given():
    assert b"<KeyCount>7</KeyCount>" in xml.list_objects_v2_xml("b", key_count=7)
    assert b"<KeyCount>0</KeyCount>" in xml.list_objects_v2_xml("b")


def test_unknown_encoding_type_is_a_programming_error():
    with pytest.raises(ValueError):
        xml.list_objects_v1_xml("b", encoding_type="base64")


def test_multipart_documents():
    assert xml.initiate_multipart_xml("b", "a&b", "u-1") == doc(
        "InitiateMultipartUploadResult", "<Bucket>b</Bucket><Key>a&amp;b</Key><UploadId>u-1</UploadId>")
    assert xml.complete_multipart_xml("http://h/b/k", "b", "k", "abc-2", {"SHA256": "s", "CRC32": "c"}) == doc(
        "CompleteMultipartUploadResult",
        "<Location>http://h/b/k</Location><Bucket>b</Bucket><Key>k</Key><ETag>&quot;abc-2&quot;</ETag>"
        "<ChecksumCRC32>c</ChecksumCRC32><ChecksumSHA256>s</ChecksumSHA256>")
    with pytest.raises(ValueError):
        xml.complete_multipart_xml("l", "b", "k", "e", {"MD5": "x"})


def test_list_parts_xml():
    parts = [PartEntry(2, T0, "7778aef83f66abc1fa1e8477f296d394", 10485760),
             PartEntry(3, T0, "aaaa", 5, {"CRC32C": "q"})]
    body = xml.list_parts_xml("example-bucket", "example-object", "U", owner_id="oid", owner_name="me",
                              part_number_marker=1, next_part_number_marker=3, max_parts=2,
                              is_truncated=True, parts=parts, checksum_algorithm="CRC32C")
    owner = "<ID>oid</ID><DisplayName>me</DisplayName>"
    assert body == doc("ListPartsResult",
                       "<Bucket>example-bucket</Bucket><Key>example-object</Key><UploadId>U</UploadId>"
                       f"<Initiator>{owner}</Initiator><Owner>{owner}</Owner><StorageClass>STANDARD</StorageClass>"
                       "<ChecksumAlgorithm>CRC32C</ChecksumAlgorithm><PartNumberMarker>1</PartNumberMarker>"
                       "<NextPartNumberMarker>3</NextPartNumberMarker><MaxParts>2</MaxParts>"
                       "<IsTruncated>true</IsTruncated>"
                       f"<Part><PartNumber>2</PartNumber><LastModified>{T0_ISO}</LastModified>"
                       "<ETag>&quot;7778aef83f66abc1fa1e8477f296d394&quot;</ETag><Size>10485760</Size></Part>"
                       f"<Part><PartNumber>3</PartNumber><LastModified>{T0_ISO}</LastModified>"
                       "<ETag>&quot;aaaa&quot;</ETag><Size>5</Size><ChecksumCRC32C>q</ChecksumCRC32C></Part>")


def test_list_multipart_uploads_xml():
    uploads = [UploadEntry("my divisor", "XMgbGlrZSBlbHZpbmcncyBt", T0, owner_id="oid"),
               UploadEntry("k", "u2", T0)]
    body = xml.list_multipart_uploads_xml("b", key_marker="a b", next_key_marker="my divisor",
                                          next_upload_id_marker="XMgbGlrZSBlbHZpbmcncyBt", max_uploads=2,
                                          is_truncated=True, encoding_type="url", uploads=uploads,
                                          delimiter="/", common_prefixes=["p q/"])
    assert body == doc("ListMultipartUploadsResult",
                       "<Bucket>b</Bucket><KeyMarker>a%20b</KeyMarker><UploadIdMarker></UploadIdMarker>"
                       "<NextKeyMarker>my%20divisor</NextKeyMarker>"
                       "<NextUploadIdMarker>XMgbGlrZSBlbHZpbmcncyBt</NextUploadIdMarker><Prefix></Prefix>"
                       "<Delimiter>/</Delimiter><MaxUploads>2</MaxUploads><EncodingType>url</EncodingType>"
                       "<IsTruncated>true</IsTruncated>"
                       "<Upload><Key>my%20divisor</Key><UploadId>XMgbGlrZSBlbHZpbmcncyBt</UploadId>"
                       "<Initiator><ID>oid</ID></Initiator><Owner><ID>oid</ID></Owner>"
                       f"<StorageClass>STANDARD</StorageClass><Initiated>{T0_ISO}</Initiated></Upload>"
                       "<Upload><Key>k</Key><UploadId>u2</UploadId><StorageClass>STANDARD</StorageClass>"
                       f"<Initiated>{T0_ISO}</Initiated></Upload>"
                       "<CommonPrefixes><Prefix>p%20q/</Prefix></CommonPrefixes>")


# --- botocore parses what we render --------------------------------------------------------------

class _Raw:
    def __init__(self, body):
        self._body = body

    def stream(self, **_):
        yield self._body


def boto_call(operation, body, status=200, **kwargs):
    """Run a boto3 call whose HTTP response is `body`, so botocore's own parser reads our XML."""
    client = boto3.client("s3", endpoint_url="http://127.0.0.1:9000", region_name="us-east-1",
                          aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
                          config=Config(retries={"max_attempts": 1}))

    def respond(request, **_):
        return AWSResponse(request.url, status, {"Content-Type": "application/xml"}, _Raw(body))

    client.meta.events.register("before-send.s3", respond)
    return getattr(client, operation)(**kwargs)


HARD_KEYS = ["a b", "a+b", "100%", "%2F", "\x01ctl", "é/😀", "tab\there", "cr\rlf\n", "<&>\"'", " lead ", "~*()"]


@pytest.mark.parametrize("operation,renderer", [("list_objects", xml.list_objects_v1_xml),
                                                ("list_objects_v2", xml.list_objects_v2_xml)])
def test_botocore_decodes_url_encoded_listings_back_to_the_original_keys(operation, renderer):
    entries = [ObjectEntry(k, T0_NS, "e", 1, owner_id="o") for k in HARD_KEYS]
    body = renderer("b", prefix="p q+", delimiter="/", encoding_type="url", entries=entries,
                    common_prefixes=["x y+/"])
    parsed = boto_call(operation, body, Bucket="b")  # boto3 sets encoding-type=url and decodes
    assert [o["Key"] for o in parsed["Contents"]] == HARD_KEYS
    assert parsed["Delimiter"] == "/"
    # AWS encodes Prefix in both versions, but botocore decodes it only for v2 (boto/boto3#3534):
    # a v1 caller sees the encoded prefix from AWS too.
    assert parsed["Prefix"] == ("p q+" if operation == "list_objects_v2" else "p%20q%2B")
    assert parsed["CommonPrefixes"] == [{"Prefix": "x y+/"}]
    assert parsed["Contents"][0]["ETag"] == '"e"'
    assert parsed["Contents"][0]["LastModified"] == T0.replace(microsecond=123000)


def test_xml_safe_keys_round_trip_without_url_encoding():
    keys = [k for k in HARD_KEYS if k != "\x01ctl"]  # XML 1.0 cannot carry \x01; S3 has the same limit
    body = xml.list_objects_v2_xml("b", entries=[ObjectEntry(k, T0_NS, "e", 1) for k in keys])
    parsed = boto_call("list_objects_v2", body, Bucket="b", EncodingType="url")  # not auto-set: no decoding
    assert [o["Key"] for o in parsed["Contents"]] == keys


def test_botocore_parses_small_documents():
    buckets = boto_call("list_buckets", xml.list_buckets_xml("oid", "me", [("alpha", T0)]))
    assert buckets["Buckets"] == [{"Name": "alpha", "CreationDate": T0.replace(microsecond=123000)}]
    assert buckets["Owner"] == {"ID": "oid", "DisplayName": "me"}
    assert boto_call("get_bucket_location", xml.location_xml(None), Bucket="b")["LocationConstraint"] is None
    assert boto_call("get_bucket_location", xml.location_xml("eu-1"), Bucket="b")["LocationConstraint"] == "eu-1"
    assert "Status" not in boto_call("get_bucket_versioning", xml.versioning_xml(None), Bucket="b")
    assert boto_call("get_bucket_versioning", xml.versioning_xml("Enabled"), Bucket="b")["Status"] == "Enabled"
    grants = boto_call("get_bucket_acl", xml.acl_xml("oid", "me"), Bucket="b")["Grants"]
    assert grants == [{"Grantee": {"ID": "oid", "DisplayName": "me", "Type": "CanonicalUser"},
                       "Permission": "FULL_CONTROL"}]
    copied = boto_call("copy_object", xml.copy_object_result_xml("abc", T0), Bucket="b", Key="k", CopySource="s/k")
    assert copied["CopyObjectResult"]["ETag"] == '"abc"'


def test_botocore_parses_delete_result():
    body = xml.delete_result_xml([("a", None), ("b", "v1")], [("c", "AccessDenied", "no")], quiet=False)
    parsed = boto_call("delete_objects", body, Bucket="b", Delete={"Objects": [{"Key": "a"}]})
    assert parsed["Deleted"] == [{"Key": "a"}, {"Key": "b", "VersionId": "v1"}]
    assert parsed["Errors"] == [{"Key": "c", "Code": "AccessDenied", "Message": "no"}]


def test_botocore_parses_multipart_documents():
    created = boto_call("create_multipart_upload", xml.initiate_multipart_xml("b", "k", "u-1"), Bucket="b", Key="k")
    assert (created["Bucket"], created["Key"], created["UploadId"]) == ("b", "k", "u-1")
    done = boto_call("complete_multipart_upload", xml.complete_multipart_xml("/b/k", "b", "k", "e-2", {"CRC32": "c"}),
                     Bucket="b", Key="k", UploadId="u", MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": "e"}]})
    assert (done["ETag"], done["ChecksumCRC32"]) == ('"e-2"', "c")
    listed = boto_call("list_parts", xml.list_parts_xml("b", "k", "u", owner_id="o", is_truncated=True,
                                                        next_part_number_marker=1,
                                                        parts=[PartEntry(1, T0, "e", 5)]),
                       Bucket="b", Key="k", UploadId="u")
    assert listed["Parts"] == [{"PartNumber": 1, "LastModified": T0.replace(microsecond=123000),
                                "ETag": '"e"', "Size": 5}]
    assert (listed["IsTruncated"], listed["NextPartNumberMarker"]) == (True, 1)
    uploads = boto_call("list_multipart_uploads",
                        xml.list_multipart_uploads_xml("b", uploads=[UploadEntry("k", "u", T0, owner_id="o")]),
                        Bucket="b")
    assert [(u["Key"], u["UploadId"]) for u in uploads["Uploads"]] == [("k", "u")]


def test_botocore_reads_our_error_document():
    body = xml.error_xml("NoSuchKey", "The specified key does not exist.", "/b/k", "req-9", {"Key": "k"})
    with pytest.raises(ClientError) as info:
        boto_call("get_object", body, status=404, Bucket="b", Key="k")
    error = info.value.response["Error"]
    assert (error["Code"], error["Message"], error["Key"]) == ("NoSuchKey", "The specified key does not exist.", "k")


# --- parsing request bodies ----------------------------------------------------------------------

def test_parse_delete_objects():
    body = (b'<?xml version="1.0" encoding="UTF-8"?><Delete><Quiet>true</Quiet>'
            b"<Object><Key> spaced </Key></Object><Object><Key>a&amp;b</Key><VersionId>v1</VersionId></Object>"
            b"<Object><Key>cr&#13;</Key></Object></Delete>")
    assert xml.parse_delete_objects(body) == (True, [(" spaced ", None), ("a&b", "v1"), ("cr\r", None)])


def test_parse_delete_objects_namespace_optional_and_quiet_default():
    body = f'<Delete {NS}><Object><Key>k</Key></Object></Delete>'.encode()
    assert xml.parse_delete_objects(body) == (False, [("k", None)])


def test_parse_delete_objects_accepts_1000_keys_of_1024_bytes():
    key = "k" * 1024
    body = ("<Delete>" + f"<Object><Key>{key}</Key></Object>" * 1000 + "</Delete>").encode()
    quiet, keys = xml.parse_delete_objects(body)
    assert len(keys) == 1000 and keys[0] == (key, None)


@pytest.mark.parametrize("body", [
    b"",
    b"not xml",
    b"<Delete><Object><Key>a</Key></Object>",  # unterminated
    b"<Delete></Delete>",  # no objects
    b"<Delete><Object></Object></Delete>",  # no key
    b"<Delete><Object><Key></Key></Object></Delete>",  # empty key
    b"<Delete><Quiet>yes</Quiet><Object><Key>a</Key></Object></Delete>",
    b"<Remove><Object><Key>a</Key></Object></Remove>",  # wrong root
    ("<Delete>" + "<Object><Key>k</Key></Object>" * 1001 + "</Delete>").encode(),  # > 1000 keys
    b"<Delete><Object><Key>\xff</Key></Object></Delete>",  # not UTF-8
])
def test_parse_delete_objects_rejects_malformed(body):
    with pytest.raises(MalformedXML):
        xml.parse_delete_objects(body)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<Delete><Object><Key>&lol9;</Key></Object></Delete>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Delete><Object><Key>&xxe;</Key></Object></Delete>"""
EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE Delete SYSTEM "http://127.0.0.1:1/evil.dtd">
<Delete><Object><Key>k</Key></Object></Delete>"""
UNDECLARED_ENTITY = b"<Delete><Object><Key>&xxe;</Key></Object></Delete>"


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD, UNDECLARED_ENTITY])
@pytest.mark.parametrize("parser", [xml.parse_delete_objects, xml.parse_create_bucket,
                                    xml.parse_complete_multipart, xml.parse_versioning, xml.parse_tagging])
def test_entities_and_dtds_are_malformed_xml_not_a_crash(body, parser):
    with pytest.raises(MalformedXML):
        parser(body)


@pytest.mark.parametrize("parser,cap", [
    (xml.parse_delete_objects, xml.DELETE_OBJECTS_MAX_BODY),
    (xml.parse_complete_multipart, xml.COMPLETE_MULTIPART_MAX_BODY),
    (xml.parse_create_bucket, xml.SMALL_CONFIG_MAX_BODY),
    (xml.parse_versioning, xml.SMALL_CONFIG_MAX_BODY),
    (xml.parse_tagging, xml.SMALL_CONFIG_MAX_BODY),
])
def test_oversized_bodies_are_refused_before_parsing(parser, cap):
    body = b" " * (cap + 1)  # would parse as an error anyway; the message proves the cap fired first
    with pytest.raises(MalformedXML) as info:
        parser(body)
    assert str(cap) in info.value.detail


def test_parse_create_bucket():
    assert xml.parse_create_bucket(b"") is None
    assert xml.parse_create_bucket(b"  \n") is None
    body = (f"<CreateBucketConfiguration {NS}><LocationConstraint>eu-west-1</LocationConstraint>"
            "</CreateBucketConfiguration>").encode()
    assert xml.parse_create_bucket(body) == "eu-west-1"
    empty = b"<CreateBucketConfiguration><LocationConstraint/></CreateBucketConfiguration>"
    assert xml.parse_create_bucket(empty) is None
    assert xml.parse_create_bucket(b"<CreateBucketConfiguration></CreateBucketConfiguration>") is None
    with pytest.raises(MalformedXML):
        xml.parse_create_bucket(b"<Bucket/>")


def test_parse_complete_multipart():
    body = (f"<CompleteMultipartUpload {NS}><Part><PartNumber>1</PartNumber><ETag>\"a1\"</ETag>"
            "<ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part>"
            "<Part><ETag>&quot;b2&quot;</ETag><PartNumber> 3 </PartNumber></Part>"
            "<Part><PartNumber>10000</PartNumber><ETag>c3</ETag><ChecksumCRC64NVME>x</ChecksumCRC64NVME>"
            "<ChecksumSHA256>y</ChecksumSHA256></Part></CompleteMultipartUpload>").encode()
    assert xml.parse_complete_multipart(body) == [
        (1, "a1", {"CRC32": "AAAAAA=="}), (3, "b2", {}), (10000, "c3", {"CRC64NVME": "x", "SHA256": "y"})]


@pytest.mark.parametrize("parts,error", [
    ("", MalformedXML),
    ("<Part><PartNumber>1</PartNumber></Part>", MalformedXML),  # no ETag
    ("<Part><ETag>e</ETag></Part>", MalformedXML),  # no PartNumber
    ("<Part><PartNumber>one</PartNumber><ETag>e</ETag></Part>", MalformedXML),
    ("<Part><PartNumber>0</PartNumber><ETag>e</ETag></Part>", InvalidArgument),
    ("<Part><PartNumber>10001</PartNumber><ETag>e</ETag></Part>", InvalidArgument),
    ("<Part><PartNumber>2</PartNumber><ETag>e</ETag></Part><Part><PartNumber>1</PartNumber><ETag>e</ETag></Part>",
     InvalidPartOrder),
    ("<Part><PartNumber>2</PartNumber><ETag>e</ETag></Part><Part><PartNumber>2</PartNumber><ETag>e</ETag></Part>",
     InvalidPartOrder),
])
def test_parse_complete_multipart_rejects(parts, error):
    with pytest.raises(error):
        xml.parse_complete_multipart(f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode())


def test_parse_complete_multipart_caps_parts_at_10000():
    parts = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>e</ETag></Part>" for n in range(1, 10002))
    with pytest.raises(MalformedXML):
        xml.parse_complete_multipart(f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode())


def test_parse_versioning():
    assert xml.parse_versioning(f"<VersioningConfiguration {NS}><Status>Enabled</Status>"
                                "</VersioningConfiguration>".encode()) == "Enabled"
    assert xml.parse_versioning(b"<VersioningConfiguration><Status>Suspended</Status>"
                                b"<MfaDelete>Disabled</MfaDelete></VersioningConfiguration>") == "Suspended"
    assert xml.parse_versioning(b"<VersioningConfiguration/>") is None
    with pytest.raises(MalformedXML):
        xml.parse_versioning(b"<VersioningConfiguration><Status>On</Status></VersioningConfiguration>")
    with pytest.raises(NotImplemented_):
        xml.parse_versioning(b"<VersioningConfiguration><Status>Enabled</Status><MfaDelete>Enabled</MfaDelete>"
                             b"</VersioningConfiguration>")


def test_parse_tagging():
    body = (f"<Tagging {NS}><TagSet><Tag><Key>project</Key><Value>cairn &amp; co</Value></Tag>"
            "<Tag><Key> spaced </Key><Value></Value></Tag></TagSet></Tagging>").encode()
    assert xml.parse_tagging(body) == {"project": "cairn & co", " spaced ": ""}
    assert xml.parse_tagging(b"<Tagging><TagSet/></Tagging>") == {}


def _tags(*pairs):
    tags = "".join(f"<Tag><Key>{k}</Key><Value>{v}</Value></Tag>" for k, v in pairs)
    return f"<Tagging><TagSet>{tags}</TagSet></Tagging>".encode()


@pytest.mark.parametrize("body,error", [
    (b"<Tagging/>", MalformedXML),
    (_tags(("", "v")), MalformedXML),
    (_tags(("k", "1"), ("k", "2")), InvalidTag),
    (_tags(("k" * 129, "v")), InvalidTag),
    (_tags(("k", "v" * 257)), InvalidTag),
    (_tags(("aws:cloudformation", "v")), InvalidTag),
    (_tags(*[(f"k{i}", "v") for i in range(11)]), InvalidTag),
])
def test_parse_tagging_rejects(body, error):
    with pytest.raises(error):
        xml.parse_tagging(body)


def test_parse_tagging_bucket_limit_is_a_parameter():
    assert len(xml.parse_tagging(_tags(*[(f"k{i}", "v") for i in range(50)]), max_tags=50)) == 50


# --- botocore builds the request bodies we parse -------------------------------------------------

class _Captured(Exception):
    def __init__(self, body):
        super().__init__("captured")
        self.body = body


def botocore_body(operation, **kwargs):
    client = boto3.client("s3", endpoint_url="http://127.0.0.1:9000", region_name="us-east-1",
                          aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret")

    def capture(request, **_):
        body = request.body
        raise _Captured(body if isinstance(body, bytes) else body.read())

    client.meta.events.register("before-send.s3", capture)
    with pytest.raises(_Captured) as info:
        getattr(client, operation)(**kwargs)
    return info.value.body


def test_botocore_delete_objects_body():
    keys = ["a&b", " lead", "<x>", "é😀", "q\"'"]
    body = botocore_body("delete_objects", Bucket="b", Delete={
        "Objects": [{"Key": k} for k in keys] + [{"Key": "v", "VersionId": "3"}], "Quiet": True})
    assert xml.parse_delete_objects(body) == (True, [(k, None) for k in keys] + [("v", "3")])


def test_botocore_create_bucket_body():
    body = botocore_body("create_bucket", Bucket="b",
                         CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
    assert xml.parse_create_bucket(body) == "eu-central-1"


def test_botocore_complete_multipart_body():
    body = botocore_body("complete_multipart_upload", Bucket="b", Key="k", UploadId="u", MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": '"e1"', "ChecksumCRC32": "AAAAAA=="},
                  {"PartNumber": 2, "ETag": '"e2"', "ChecksumCRC64NVME": "BBBBBBBBBBB="}]})
    assert xml.parse_complete_multipart(body) == [(1, "e1", {"CRC32": "AAAAAA=="}),
                                                  (2, "e2", {"CRC64NVME": "BBBBBBBBBBB="})]


def test_botocore_versioning_and_tagging_bodies():
    body = botocore_body("put_bucket_versioning", Bucket="b", VersioningConfiguration={"Status": "Suspended"})
    assert xml.parse_versioning(body) == "Suspended"
    body = botocore_body("put_object_tagging", Bucket="b", Key="k",
                         Tagging={"TagSet": [{"Key": "a", "Value": "1"}, {"Key": "b&c", "Value": ""}]})
    assert xml.parse_tagging(body) == {"a": "1", "b&c": ""}
