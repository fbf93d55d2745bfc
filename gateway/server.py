"""Running the gateway: N worker processes share one listening port (SO_REUSEPORT).

Gateways are stateless, so workers need no coordination: each opens its own node connections.
The parent only supervises: it forwards SIGTERM/SIGINT and exits when the workers have.
"""
from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import signal
import ssl
import sys

from aiohttp import web

from gateway.app import create_app
from gateway.config import GatewayConfig

log = logging.getLogger("cairn.gateway")


def ssl_context(config: GatewayConfig) -> ssl.SSLContext | None:
    if config.tls_cert is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(config.tls_cert), str(config.tls_key) if config.tls_key else None)
    return ctx


async def serve(config: GatewayConfig, *, reuse_port: bool) -> None:
    app = create_app(config)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port, ssl_context=ssl_context(config),
                           reuse_port=reuse_port, backlog=1024)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each hashing/coding thread a malloc arena of its own; their freed stripe
    buffers are not returned to one another, so RSS creeps up with the thread count."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-8, arenas)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def _worker(config: GatewayConfig, reuse_port: bool, log_level: int) -> None:
    _limit_malloc_arenas()
    logging.basicConfig(level=log_level, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
    try:
        import uvloop
        uvloop.install()
    except ImportError:  # optional speed-up
        pass
    asyncio.run(serve(config, reuse_port=reuse_port))


def run_gateway(config: GatewayConfig) -> None:
    level = logging.getLogger().getEffectiveLevel()
    scheme = "https" if config.tls else "http"
    if config.workers <= 1:
        print(f"cairn gateway listening on {scheme}://{config.host}:{config.port}", flush=True)
        _worker(config, False, level)
        return
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_worker, args=(config, True, level), daemon=False,
                           name=f"cairn-gateway-{i}") for i in range(config.workers)]
    for w in workers:
        w.start()
    print(f"cairn gateway listening on {scheme}://{config.host}:{config.port} "
          f"({config.workers} workers)", flush=True)

    def forward(signum, frame):
        for w in workers:
            if w.is_alive():
                w.terminate()
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = []
    for w in workers:
        w.join()
        codes.append(w.exitcode)
    if any(c not in (0, -signal.SIGTERM) for c in codes):
        sys.exit(1)
