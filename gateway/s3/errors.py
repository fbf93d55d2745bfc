"""One exception class per S3 error code.

Each class carries its HTTP status and default message as class attributes. Handlers raise them;
exactly one boundary (the error middleware in gateway/app.py) turns them into S3 XML. Nothing else
writes error bodies.
"""
from __future__ import annotations


class S3Error(Exception):
    code = "InternalError"
    status = 500
    message = "We encountered an internal error. Please try again."

    def __init__(self, message: str | None = None, *, resource: str | None = None,
                 headers: dict[str, str] | None = None, **extra: str) -> None:
        super().__init__(message or self.message)
        self.detail = message or self.message
        self.resource = resource
        self.headers = headers or {}
        self.extra = extra  # extra XML elements (e.g. BucketName, Key, ArgumentName)


def _error(name: str, status: int, message: str) -> type[S3Error]:
    return type(name, (S3Error,), {"code": name, "status": status, "message": message,
                                   "__module__": __name__})


# 400
AuthorizationHeaderMalformed = _error("AuthorizationHeaderMalformed", 400, "The authorization header is malformed.")
AuthorizationQueryParametersError = _error("AuthorizationQueryParametersError", 400, "Error parsing the X-Amz-Credential parameter.")
BadDigest = _error("BadDigest", 400, "The Content-MD5 or checksum you specified did not match what we received.")
BucketAlreadyOwnedByYou = _error("BucketAlreadyOwnedByYou", 409, "Your previous request to create the named bucket succeeded and you already own it.")
EntityTooLarge = _error("EntityTooLarge", 400, "Your proposed upload exceeds the maximum allowed object size.")
EntityTooSmall = _error("EntityTooSmall", 400, "Your proposed upload is smaller than the minimum allowed object size.")
ExpiredToken = _error("ExpiredToken", 400, "The provided token has expired.")
IncompleteBody = _error("IncompleteBody", 400, "You did not provide the number of bytes specified by the Content-Length HTTP header.")
InvalidArgument = _error("InvalidArgument", 400, "Invalid Argument.")
InvalidBucketName = _error("InvalidBucketName", 400, "The specified bucket is not valid.")
InvalidDigest = _error("InvalidDigest", 400, "The Content-MD5 or checksum you specified is not valid.")
InvalidPart = _error("InvalidPart", 400, "One or more of the specified parts could not be found.")
InvalidPartOrder = _error("InvalidPartOrder", 400, "The list of parts was not in ascending order.")
InvalidRequest = _error("InvalidRequest", 400, "Invalid Request.")
InvalidStorageClass = _error("InvalidStorageClass", 400, "The storage class you specified is not valid.")
KeyTooLongError = _error("KeyTooLongError", 400, "Your key is too long.")
MalformedXML = _error("MalformedXML", 400, "The XML you provided was not well-formed or did not validate against our published schema.")
MetadataTooLarge = _error("MetadataTooLarge", 400, "Your metadata headers exceed the maximum allowed metadata size.")
MissingContentLength = _error("MissingContentLength", 411, "You must provide the Content-Length HTTP header.")
RequestTimeTooSkewed = _error("RequestTimeTooSkewed", 403, "The difference between the request time and the server's time is too large.")
XAmzContentSHA256Mismatch = _error("XAmzContentSHA256Mismatch", 400, "The provided 'x-amz-content-sha256' header does not match what was computed.")
InvalidChunkSizeError = _error("InvalidChunkSizeError", 403, "Only the last chunk is allowed to have a size less than 8192 bytes.")
InvalidEncryptionAlgorithmError = _error("InvalidEncryptionAlgorithmError", 400, "The encryption request you specified is not valid.")
MalformedPOSTRequest = _error("MalformedPOSTRequest", 400, "The body of your POST request is not well-formed multipart/form-data.")
InvalidLocationConstraint = _error("InvalidLocationConstraint", 400, "The specified location constraint is not valid.")
IllegalLocationConstraintException = _error("IllegalLocationConstraintException", 400, "The unspecified location constraint is incompatible for the region specific endpoint this request was sent to.")
UnexpectedContent = _error("UnexpectedContent", 400, "This request does not support content.")
UserKeyMustBeSpecified = _error("UserKeyMustBeSpecified", 400, "The bucket POST must contain the specified field name.")
InvalidTag = _error("InvalidTag", 400, "The tag provided was not a valid tag.")

# 403
AccessDenied = _error("AccessDenied", 403, "Access Denied")
InvalidAccessKeyId = _error("InvalidAccessKeyId", 403, "The AWS Access Key Id you provided does not exist in our records.")
SignatureDoesNotMatch = _error("SignatureDoesNotMatch", 403, "The request signature we calculated does not match the signature you provided. Check your key and signing method.")

# 404
NoSuchBucket = _error("NoSuchBucket", 404, "The specified bucket does not exist.")
NoSuchKey = _error("NoSuchKey", 404, "The specified key does not exist.")
NoSuchUpload = _error("NoSuchUpload", 404, "The specified multipart upload does not exist. The upload ID might be invalid, or the multipart upload might have been aborted or completed.")
NoSuchVersion = _error("NoSuchVersion", 404, "The specified version does not exist.")
NoSuchBucketPolicy = _error("NoSuchBucketPolicy", 404, "The bucket policy does not exist.")
NoSuchCORSConfiguration = _error("NoSuchCORSConfiguration", 404, "The CORS configuration does not exist.")
NoSuchLifecycleConfiguration = _error("NoSuchLifecycleConfiguration", 404, "The lifecycle configuration does not exist.")
NoSuchWebsiteConfiguration = _error("NoSuchWebsiteConfiguration", 404, "The specified bucket does not have a website configuration.")
NoSuchTagSet = _error("NoSuchTagSet", 404, "The TagSet does not exist.")
ServerSideEncryptionConfigurationNotFoundError = _error("ServerSideEncryptionConfigurationNotFoundError", 404, "The server side encryption configuration was not found.")
ReplicationConfigurationNotFoundError = _error("ReplicationConfigurationNotFoundError", 404, "The replication configuration was not found.")
ObjectLockConfigurationNotFoundError = _error("ObjectLockConfigurationNotFoundError", 404, "Object Lock configuration does not exist for this bucket.")
NoSuchPublicAccessBlockConfiguration = _error("NoSuchPublicAccessBlockConfiguration", 404, "The public access block configuration was not found.")
OwnershipControlsNotFoundError = _error("OwnershipControlsNotFoundError", 404, "The bucket ownership controls were not found.")

# 405 / 409 / 411 / 412 / 416 / 5xx
MethodNotAllowed = _error("MethodNotAllowed", 405, "The specified method is not allowed against this resource.")
BucketAlreadyExists = _error("BucketAlreadyExists", 409, "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.")
BucketNotEmpty = _error("BucketNotEmpty", 409, "The bucket you tried to delete is not empty.")
OperationAborted = _error("OperationAborted", 409, "A conflicting conditional operation is currently in progress against this resource. Please try again.")
ConditionalRequestConflict = _error("ConditionalRequestConflict", 409, "A conflicting operation occurred. Please try again.")
PreconditionFailed = _error("PreconditionFailed", 412, "At least one of the pre-conditions you specified did not hold.")
InvalidPartNumber = _error("InvalidPartNumber", 416, "The requested partnumber is not satisfiable.")
InvalidRange = _error("InvalidRange", 416, "The requested range is not satisfiable.")
NotImplemented_ = type("NotImplemented", (S3Error,), {"code": "NotImplemented", "status": 501,
                      "message": "A header or query you provided implies functionality that is not implemented.",
                      "__module__": __name__})
InternalError = _error("InternalError", 500, "We encountered an internal error. Please try again.")
ServiceUnavailable = _error("ServiceUnavailable", 503, "Reduce your request rate or try again later: not enough storage nodes are reachable.")
SlowDown = _error("SlowDown", 503, "Please reduce your request rate.")


class NotModified(S3Error):
    """304 is not an error to clients, but it ends a request the same way: no body."""
    code = "NotModified"
    status = 304
    message = "Not Modified"
