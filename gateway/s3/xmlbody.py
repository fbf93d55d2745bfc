"""Hardened parsing of S3 XML request bodies.

Bodies go through defusedxml with DTDs forbidden - so no entity expansion ("billion laughs") and
no external entities - after a size check on the raw bytes, which the caller has read with the same
cap. Every parse failure is MalformedXML (400), never a 500. Namespaces are optional: clients
differ on whether they send xmlns, so elements are matched by local name.
"""
from __future__ import annotations

import re
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree
from defusedxml import DefusedXmlException

from gateway.s3.errors import InvalidArgument, InvalidPartOrder, InvalidTag, MalformedXML, NotImplemented_

CHECKSUM_ALGORITHMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")

# Body caps, checked before parsing; handlers read at most cap + 1 bytes.
DELETE_OBJECTS_MAX_BODY = 2 * 1024 * 1024  # 1000 keys of 1024 bytes, version ids and markup
COMPLETE_MULTIPART_MAX_BODY = 4 * 1024 * 1024  # 10000 parts with ETag and a SHA-256 checksum each
SMALL_CONFIG_MAX_BODY = 64 * 1024  # CreateBucketConfiguration, VersioningConfiguration, Tagging
MAX_DELETE_KEYS = 1000
MAX_PARTS = 10000

_PART_NUMBER = re.compile(r"[0-9]{1,10}")


def _parse(body: bytes, cap: int, root_name: str) -> Element:
    if len(body) > cap:
        raise MalformedXML(f"The XML body is {len(body)} bytes; at most {cap} are accepted.")
    try:
        root = defusedxml.ElementTree.fromstring(body, forbid_dtd=True)
    except DefusedXmlException:
        raise MalformedXML("DTDs and entity declarations are not accepted in request bodies.") from None
    except (ParseError, ValueError) as exc:
        raise MalformedXML(f"The XML you provided was not well-formed: {exc}.") from None
    if _local(root.tag) != root_name:
        raise MalformedXML(f"Expected a <{root_name}> document, got <{_local(root.tag)}>.")
    return root


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _children(element: Element, name: str) -> list[Element]:
    return [child for child in element if _local(child.tag) == name]


def _child_text(element: Element, name: str) -> str | None:
    """The text of the first child `name` ("" if empty), or None if there is no such child.
    Not stripped: keys and tag values may begin or end with spaces."""
    for child in element:
        if _local(child.tag) == name:
            return child.text or ""
    return None


def parse_delete_objects(body: bytes) -> tuple[bool, list[tuple[str, str | None]]]:
    """DeleteObjects' <Delete> body -> (quiet, [(key, version_id)]). Keys are not validated here:
    the handler reports a bad key as a per-key error, as S3 does."""
    root = _parse(body, DELETE_OBJECTS_MAX_BODY, "Delete")
    quiet_text = (_child_text(root, "Quiet") or "false").strip().lower()
    if quiet_text not in ("true", "false"):
        raise MalformedXML(f"Quiet must be true or false, not {quiet_text!r}.")
    objects = _children(root, "Object")
    if not objects:
        raise MalformedXML("A Delete request must list at least one Object.")
    if len(objects) > MAX_DELETE_KEYS:
        raise MalformedXML(f"A Delete request lists at most {MAX_DELETE_KEYS} objects, not {len(objects)}.")
    keys = []
    for obj in objects:
        key = _child_text(obj, "Key")
        if not key:
            raise MalformedXML("Every Object in a Delete request needs a non-empty Key.")
        version_id = (_child_text(obj, "VersionId") or "").strip() or None
        keys.append((key, version_id))
    return quiet_text == "true", keys


def parse_create_bucket(body: bytes) -> str | None:
    """CreateBucketConfiguration -> its LocationConstraint, or None (empty body or element)."""
    if len(body) <= SMALL_CONFIG_MAX_BODY and not body.strip():
        return None
    root = _parse(body, SMALL_CONFIG_MAX_BODY, "CreateBucketConfiguration")
    return (_child_text(root, "LocationConstraint") or "").strip() or None


def parse_complete_multipart(body: bytes) -> list[tuple[int, str, dict[str, str]]]:
    """CompleteMultipartUpload -> [(part_number, etag without quotes, {algorithm: checksum})],
    checked to be strictly ascending in part number."""
    root = _parse(body, COMPLETE_MULTIPART_MAX_BODY, "CompleteMultipartUpload")
    elements = _children(root, "Part")
    if not elements:
        raise MalformedXML("CompleteMultipartUpload must list at least one Part.")
    if len(elements) > MAX_PARTS:
        raise MalformedXML(f"CompleteMultipartUpload lists at most {MAX_PARTS} parts.")
    parts: list[tuple[int, str, dict[str, str]]] = []
    for element in elements:
        number_text = (_child_text(element, "PartNumber") or "").strip()
        if not _PART_NUMBER.fullmatch(number_text):
            raise MalformedXML(f"PartNumber must be an integer, not {number_text!r}.")
        number = int(number_text)
        if not 1 <= number <= MAX_PARTS:
            raise InvalidArgument("Part number must be an integer between 1 and 10000, inclusive.",
                                  ArgumentName="PartNumber", ArgumentValue=number_text)
        if parts and number <= parts[-1][0]:
            raise InvalidPartOrder()
        etag = (_child_text(element, "ETag") or "").strip().strip('"')
        if not etag:
            raise MalformedXML(f"Part {number} has no ETag.")
        checksums = {}
        for algorithm in CHECKSUM_ALGORITHMS:
            value = _child_text(element, f"Checksum{algorithm}")
            if value is not None and value.strip():
                checksums[algorithm] = value.strip()
        parts.append((number, etag, checksums))
    return parts


def parse_versioning(body: bytes) -> str | None:
    """VersioningConfiguration -> "Enabled", "Suspended", or None when Status is absent (no change)."""
    root = _parse(body, SMALL_CONFIG_MAX_BODY, "VersioningConfiguration")
    mfa_delete = (_child_text(root, "MfaDelete") or "").strip()
    if mfa_delete == "Enabled":
        raise NotImplemented_("MFA Delete is not implemented.")
    if mfa_delete not in ("", "Disabled"):
        raise MalformedXML(f"MfaDelete must be Enabled or Disabled, not {mfa_delete!r}.")
    status = _child_text(root, "Status")
    if status is None:
        return None
    if status.strip() not in ("Enabled", "Suspended"):
        raise MalformedXML(f"Status must be Enabled or Suspended, not {status.strip()!r}.")
    return status.strip()


def parse_tagging(body: bytes, *, max_tags: int = 10) -> dict[str, str]:
    """<Tagging><TagSet><Tag><Key/><Value/></Tag>...</TagSet></Tagging> -> {key: value}.
    max_tags: 10 for objects, 50 for buckets (S3's limits)."""
    root = _parse(body, SMALL_CONFIG_MAX_BODY, "Tagging")
    tag_sets = _children(root, "TagSet")
    if len(tag_sets) != 1:
        raise MalformedXML("Tagging must contain exactly one TagSet.")
    tags: dict[str, str] = {}
    for tag in _children(tag_sets[0], "Tag"):
        key = _child_text(tag, "Key")
        value = _child_text(tag, "Value") or ""
        if not key:
            raise MalformedXML("Every Tag needs a non-empty Key.")
        if len(key) > 128 or len(value) > 256:
            raise InvalidTag("Tag keys are at most 128 characters and values at most 256.")
        if key.startswith("aws:"):
            raise InvalidTag("System tags (prefix 'aws:') cannot be set by the requester.")
        if key in tags:
            raise InvalidTag("Cannot provide multiple Tags with the same key.")
        tags[key] = value
    if len(tags) > max_tags:
        raise InvalidTag(f"At most {max_tags} tags are allowed, not {len(tags)}.")
    return tags
