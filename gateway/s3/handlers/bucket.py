"""Bucket operations: create, head, delete, list, location, versioning, ACL, and the
configurations Cairn does not keep (answered with S3's own "no such configuration" errors)."""
from __future__ import annotations

import time

from aiohttp import web

from gateway.cluster.records import BucketRecord
from gateway.s3 import errors
from gateway.s3.checksums import BodyDigests
from gateway.s3.handlers.context import READ, RequestContext, may
from gateway.s3.handlers.multipart import abort_all_uploads
from gateway.s3.handlers.object_delete import read_small_body
from gateway.s3.names import validate_bucket_name
from gateway.s3.router import Op
from gateway.s3.xml import (acl_xml, list_buckets_xml, location_xml, parse_create_bucket,
                            utc_from_ns, versioning_xml)

XML = {"Content-Type": "application/xml"}
CANNED_ACLS = {"private", "public-read", "public-read-write", "authenticated-read",
               "bucket-owner-read", "bucket-owner-full-control"}


async def create_bucket(ctx: RequestContext) -> web.StreamResponse:
    name = ctx.bucket
    validate_bucket_name(name)
    acl = ctx.request.headers.get("x-amz-acl")
    if acl is not None and acl not in CANNED_ACLS:
        raise errors.InvalidArgument(f"Unknown canned ACL {acl!r}", ArgumentName="x-amz-acl")
    body = await read_small_body(ctx, 64 * 1024)
    if body:
        digests = BodyDigests.from_headers(ctx.request.headers)
        digests.update(body)
        digests.finish({})
    region = ctx.services.config.region
    constraint = parse_create_bucket(body)
    if constraint and constraint != region:
        raise errors.InvalidLocationConstraint(
            f"The specified location-constraint {constraint!r} is not valid here; this cluster "
            f"serves {region!r}.", LocationConstraint=constraint)
    catalog = ctx.services.catalog
    existing = await catalog.get_bucket(name)
    if existing is not None:
        if existing.owner == ctx.access_key:
            raise errors.BucketAlreadyOwnedByYou(resource=f"/{name}", BucketName=name)
        raise errors.BucketAlreadyExists(resource=f"/{name}", BucketName=name)
    await catalog.put_bucket(BucketRecord(name=name, owner=ctx.access_key,
                                          created_ns=time.time_ns(), region=region))
    return web.Response(status=200, headers={"Location": f"/{name}"})


async def head_bucket(ctx: RequestContext) -> web.StreamResponse:
    await ctx.bucket_record(READ)
    return web.Response(status=200, headers={"x-amz-bucket-region": ctx.services.config.region})


async def delete_bucket(ctx: RequestContext) -> web.StreamResponse:
    rec = await ctx.bucket_record(READ, fresh=True)   # the incarnation whose emptiness counts
    ctx.require_owner(rec)
    objects, _ = await ctx.services.catalog.scan_objects(ctx.bucket, "", None, 1,
                                                         incarnation=rec.created_ns)
    if objects:
        raise errors.BucketNotEmpty(resource=f"/{ctx.bucket}", BucketName=ctx.bucket)
    await abort_all_uploads(ctx)  # uploads in progress do not keep a bucket alive in S3
    await ctx.services.catalog.delete_bucket(rec)
    return web.Response(status=204)


async def list_buckets(ctx: RequestContext) -> web.StreamResponse:
    buckets = await ctx.services.catalog.list_buckets()
    mine = [(b.name, utc_from_ns(b.created_ns))
            for b in buckets if may(b, ctx.access_key, READ)]
    body = list_buckets_xml(ctx.access_key, ctx.access_key, sorted(mine))
    return web.Response(body=body, headers=XML)


async def get_bucket_location(ctx: RequestContext) -> web.StreamResponse:
    rec = await ctx.bucket_record(READ)
    return web.Response(body=location_xml(rec.region), headers=XML)


async def get_bucket_versioning(ctx: RequestContext) -> web.StreamResponse:
    await ctx.bucket_record(READ)
    return web.Response(body=versioning_xml(None), headers=XML)


async def get_acl(ctx: RequestContext) -> web.StreamResponse:
    rec = await ctx.bucket_record(READ)
    if ctx.endpoint.op is Op.GetObjectAcl:
        found = await ctx.services.catalog.get_object(ctx.bucket, ctx.key,
                                                      incarnation=rec.created_ns)
        if found is None or found.record.deleted:
            raise errors.NoSuchKey(Key=ctx.key)
    return web.Response(body=acl_xml(rec.owner, rec.owner), headers=XML)


async def put_acl(ctx: RequestContext) -> web.StreamResponse:
    """Only private ACLs exist in Cairn; access is granted per key with `cairn bucket allow`.
    A request that would grant anything beyond the owner's FULL_CONTROL is refused, never
    silently treated as private."""
    rec = await ctx.bucket_record(READ)
    ctx.require_owner(rec)
    if ctx.endpoint.op is Op.PutObjectAcl:
        found = await ctx.services.catalog.get_object(ctx.bucket, ctx.key,
                                                      incarnation=rec.created_ns)
        if found is None or found.record.deleted:
            raise errors.NoSuchKey(Key=ctx.key)
    acl = ctx.request.headers.get("x-amz-acl", "private")
    body = await read_small_body(ctx, 64 * 1024)
    grants = [h for h in ctx.request.headers if h.lower().startswith("x-amz-grant-")]
    if acl not in ("private", "bucket-owner-full-control") or grants:
        raise errors.NotImplemented_(f"Canned ACL {acl!r} and x-amz-grant-* headers are not supported: "
                                     "use per-key grants (cairn bucket allow)")
    if b"AllUsers" in body or b"AuthenticatedUsers" in body or body.count(b"<Grant>") > 1:
        raise errors.NotImplemented_("ACL grants beyond the owner's FULL_CONTROL are not supported: "
                                     "use per-key grants (cairn bucket allow)")
    return web.Response(status=200)


def _missing_configuration(error: type[errors.S3Error]):
    async def handler(ctx: RequestContext) -> web.StreamResponse:
        await ctx.bucket_record(READ)
        raise error(resource=f"/{ctx.bucket}", BucketName=ctx.bucket)
    return handler


async def _empty_ok(ctx: RequestContext) -> web.StreamResponse:
    """Deleting a configuration Cairn does not keep: nothing to do, as S3 answers."""
    rec = await ctx.bucket_record(READ)
    ctx.require_owner(rec)
    return web.Response(status=204)


async def _xml_answer(ctx: RequestContext, body: bytes) -> web.StreamResponse:
    await ctx.bucket_record(READ)
    return web.Response(body=body, headers=XML)


_NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


def _fixed(body: str):
    payload = ('<?xml version="1.0" encoding="UTF-8"?>\n' + body.format(ns=_NS)).encode()

    async def handler(ctx: RequestContext) -> web.StreamResponse:
        return await _xml_answer(ctx, payload)
    return handler


HANDLERS = {
    Op.CreateBucket: create_bucket,
    Op.HeadBucket: head_bucket,
    Op.DeleteBucket: delete_bucket,
    Op.ListBuckets: list_buckets,
    Op.GetBucketLocation: get_bucket_location,
    Op.GetBucketVersioning: get_bucket_versioning,
    Op.GetBucketAcl: get_acl,
    Op.GetObjectAcl: get_acl,
    Op.PutBucketAcl: put_acl,
    Op.PutObjectAcl: put_acl,
    Op.GetBucketPolicy: _missing_configuration(errors.NoSuchBucketPolicy),
    Op.GetBucketCors: _missing_configuration(errors.NoSuchCORSConfiguration),
    Op.GetBucketLifecycleConfiguration: _missing_configuration(errors.NoSuchLifecycleConfiguration),
    Op.GetBucketWebsite: _missing_configuration(errors.NoSuchWebsiteConfiguration),
    Op.GetBucketTagging: _missing_configuration(errors.NoSuchTagSet),
    Op.GetBucketEncryption: _missing_configuration(errors.ServerSideEncryptionConfigurationNotFoundError),
    Op.GetBucketReplication: _missing_configuration(errors.ReplicationConfigurationNotFoundError),
    Op.GetObjectLockConfiguration: _missing_configuration(errors.ObjectLockConfigurationNotFoundError),
    Op.GetPublicAccessBlock: _missing_configuration(errors.NoSuchPublicAccessBlockConfiguration),
    Op.GetBucketOwnershipControls: _missing_configuration(errors.OwnershipControlsNotFoundError),
    Op.DeleteBucketPolicy: _empty_ok,
    Op.DeleteBucketCors: _empty_ok,
    Op.DeleteBucketLifecycle: _empty_ok,
    Op.DeleteBucketTagging: _empty_ok,
    Op.GetBucketLogging: _fixed("<BucketLoggingStatus {ns}/>"),
    Op.GetBucketNotificationConfiguration: _fixed("<NotificationConfiguration {ns}/>"),
    Op.GetBucketRequestPayment: _fixed("<RequestPaymentConfiguration {ns}><Payer>BucketOwner</Payer></RequestPaymentConfiguration>"),
    Op.GetBucketAccelerateConfiguration: _fixed("<AccelerateConfiguration {ns}/>"),
}
