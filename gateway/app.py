"""The aiohttp application: lifecycle of every resource, and the one S3 error boundary.

Resources are opened in `cluster_context` (an aiohttp cleanup context) in dependency order and
closed in reverse. A request goes: request id -> route (pure) -> authenticate -> handler; any
S3Error raised anywhere below becomes S3 XML in `s3_boundary`, and nowhere else.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone

from aiohttp import web

from common.codec import self_test
from common.keys import load_client_keys
from common.nodeclient import NodePool
from gateway.cluster.catalog import Catalog
from gateway.cluster.uploads import Uploads
from gateway.cluster.datapath import DataPath
from gateway.cluster.heal import ShardHealer
from gateway.cluster.health import NodeWatch
from gateway.cluster.hlc import HybridClock
from gateway.cluster.metastore import MetaStore
from gateway.cluster.quorum import Quorums, derive_quorums
from gateway.cluster.records import DataRef
from gateway.config import GatewayConfig
from gateway.metrics import Metrics
from gateway.s3 import errors
from gateway.s3.handlers import HANDLERS, RequestContext
from gateway.s3.router import bucket_from_host, route
from gateway.s3.sigv4 import authenticate
from gateway.s3.xml import error_xml
from ring.model import Ring
from ring.ringfile import load as load_ring

log = logging.getLogger("cairn.gateway")

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


@dataclass(frozen=True)
class Services:
    config: GatewayConfig
    ring: Ring
    quorums: Quorums
    pool: NodePool
    catalog: Catalog
    uploads: Uploads
    data: DataPath
    executor: ThreadPoolExecutor
    metrics: Metrics


SERVICES = web.AppKey("services", Services)


def create_app(config: GatewayConfig) -> web.Application:
    app = web.Application(client_max_size=1024 ** 2, middlewares=[s3_boundary],
                          handler_args={"max_field_size": 16384})
    app.cleanup_ctx.append(cluster_context(config))
    app.on_response_prepare.append(stamp_response)
    app.router.add_get("/-/health/live", health_live)
    app.router.add_get("/-/health/ready", health_ready)
    app.router.add_get("/-/metrics", metrics_endpoint)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app


def cluster_context(config: GatewayConfig):
    async def ctx(app: web.Application):
        self_test()  # refuse to serve with a codec that does not reproduce known digests
        ring = load_ring(config.ring_path)
        quorums = derive_quorums(ring.k, ring.m, config.data_write_quorum)
        keys = load_client_keys(config.keys_dir) if config.keys_dir else None
        executor = ThreadPoolExecutor(max_workers=config.io_threads, thread_name_prefix="cairn-io")
        metrics = Metrics()
        async with NodePool({n.id: n.address for n in ring.nodes}, keys=keys,
                            timeout=config.node_timeout) as pool, \
                NodeWatch(pool, interval=config.node_probe_interval), \
                ShardHealer(pool, timeout=config.node_timeout,
                            on_healed=lambda o: metrics.healed.inc(len(o.rebuilt))) as healer:
            def repair_hint(ref: DataRef, stripe_no: int, shard: int, why: str) -> None:
                metrics.repair_hint(why)
                healer.report(ref, stripe_no, shard, why)

            meta = MetaStore(pool, lambda: ring, quorums, timeout=config.node_timeout)
            data = DataPath(pool, lambda: ring, quorums, executor, stripe_size=config.stripe_size,
                            read_window=config.read_window, write_budget=config.write_budget,
                            window=config.stripe_window, timeout=config.node_timeout * 2,
                            straggler_grace=config.straggler_grace, repair_hint=repair_hint)
            clock = HybridClock(wall_ms=lambda: time.time_ns() // 1_000_000 + config.clock_offset_ms)
            app[SERVICES] = Services(config=config, ring=ring, quorums=quorums, pool=pool,
                                     catalog=Catalog(meta, clock), uploads=Uploads(meta, clock),
                                     data=data, executor=executor, metrics=metrics)
            try:
                yield
            finally:
                await data.close()
                await meta.close()
        executor.shutdown(wait=False, cancel_futures=True)
    return ctx


@web.middleware
async def s3_boundary(request: web.Request, handler) -> web.StreamResponse:
    request_id = uuid.uuid4().hex[:16].upper()
    request["request_id"] = request_id
    started = time.monotonic()
    services = request.app.get(SERVICES)
    try:
        response = await handler(request)
    except errors.S3Error as exc:
        response = _error_response(request, exc, request_id)
    except web.HTTPException:
        raise
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception:
        log.exception("request %s %s failed (request id %s)", request.method, request.path, request_id)
        response = _error_response(request, errors.InternalError(), request_id)
    if services is not None:
        services.metrics.observe(request.method, request.get("op", "-"), response.status,
                                 time.monotonic() - started)
    return response


async def stamp_response(request: web.Request, response: web.StreamResponse) -> None:
    """Headers every response carries. A signal, not the middleware: a streamed GET has sent its
    headers before the middleware sees the response again."""
    request_id = request.get("request_id")
    if request_id is not None:
        response.headers["x-amz-request-id"] = request_id
        response.headers["x-amz-id-2"] = request_id
    response.headers["Server"] = "Cairn"


def _error_response(request: web.Request, exc: errors.S3Error, request_id: str) -> web.Response:
    level = logging.WARNING if exc.status >= 500 else logging.INFO
    log.log(level, "%s %s -> %s %s: %s (request id %s)", request.method, request.path, exc.status,
            exc.code, exc.detail, request_id)
    headers = {"Content-Type": "application/xml", **exc.headers}
    if exc.status == 304 or request.method == "HEAD":
        return web.Response(status=exc.status, headers=headers)
    body = error_xml(exc.code, exc.detail, exc.resource or request.path, request_id, exc.extra)
    return web.Response(status=exc.status, body=body, headers=headers)


async def dispatch(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    endpoint = route(request.method, request.raw_path.split("?", 1)[0], request.query,
                     request.headers, request.host, domains=services.config.domains)
    request["op"] = endpoint.op.value
    auth = await _authenticate(request, services)
    handler = HANDLERS.get(endpoint.op)
    if handler is None:
        raise errors.NotImplemented_(f"{endpoint.op.value} is not implemented")
    ctx = RequestContext(request=request, endpoint=endpoint, auth=auth, services=services,
                         request_id=request["request_id"])
    return await handler(ctx)


async def _authenticate(request: web.Request, services: Services):
    header = request.headers.get("Authorization", "")
    match = _CREDENTIAL.search(header)
    access_key = match.group(1) if match else None
    if access_key is None and "X-Amz-Credential" in request.query:
        access_key = request.query["X-Amz-Credential"].split("/", 1)[0]
    if access_key is None and header.startswith("AWS "):  # SigV2 "AWS AK:signature"
        access_key = header[4:].rpartition(":")[0] or None
    if access_key is None:
        access_key = request.query.get("AWSAccessKeyId")
    if access_key:
        await services.catalog.get_access_key(access_key)  # warms the cache used below
    raw_query = request.raw_path.split("?", 1)[1] if "?" in request.raw_path else ""
    vhost_bucket = bucket_from_host(request.host, services.config.domains)
    return authenticate(request.method, request.raw_path.split("?", 1)[0], raw_query,
                        request.headers, datetime.now(timezone.utc),
                        services.catalog.cached_secret,
                        v2_bucket_prefix=f"/{vhost_bucket}" if vhost_bucket else "")


async def health_live(request: web.Request) -> web.Response:
    return web.json_response({"status": "live"})


async def health_ready(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    up = 0
    results = await asyncio.gather(*(services.pool[n.id].ping(timeout=1.0) for n in services.ring.nodes),
                                   return_exceptions=True)
    up = sum(1 for r in results if not isinstance(r, BaseException))
    ready = up >= services.quorums.meta_write
    return web.json_response({"status": "ready" if ready else "degraded", "nodes_up": up,
                              "nodes": len(services.ring.nodes), "ring_version": services.ring.version},
                             status=200 if ready else 503)


async def metrics_endpoint(request: web.Request) -> web.Response:
    body, content_type = request.app[SERVICES].metrics.render()
    return web.Response(body=body, headers={"Content-Type": content_type})
