#!/usr/bin/env python3
"""The ceiling of any aiohttp S3 front end on this machine: a bare object server, no cluster behind it.

    .venv/bin/python bench/ceiling.py --port 9400 --workers 2 --dir /dev/shm/cairn-ceiling
    .venv/bin/python bench/s3.py --ceiling        # measured in the same run as Cairn and SeaweedFS

It answers PUT (MD5 ETag, the body streamed into one tmpfs file), GET/HEAD (the file back) and a
one-page ListObjectsV2 with the same aiohttp, worker processes and shared listening port as Cairn's
gateway, but with no authentication, no erasure coding, no replication, no fsync and no network
hop. Whatever it cannot reach in a cell, no aiohttp gateway can, however fast its back end.
Bench use only: no auth, and keys are only escaped into flat file names.
"""
from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import shutil
import signal
import socket
import uuid
from pathlib import Path
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape

from aiohttp import web

LIST_PAGE = 1000


def make_app(root: Path) -> web.Application:
    def locate(request: web.Request) -> tuple[Path, str]:
        bucket, _, key = request.path.lstrip("/").partition("/")
        return root / quote(bucket, safe=""), key

    async def put(request: web.Request) -> web.Response:
        bucket_dir, key = locate(request)
        if not key:
            bucket_dir.mkdir(exist_ok=True)     # CreateBucket
            return web.Response()
        md5 = hashlib.md5()
        path = bucket_dir / quote(key, safe="")
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")   # concurrent PUTs of one key
        with open(tmp, "wb") as f:
            async for chunk in request.content.iter_chunked(1 << 20):
                md5.update(chunk)
                f.write(chunk)
        tmp.replace(path)
        return web.Response(headers={"ETag": f'"{md5.hexdigest()}"'})

    async def get(request: web.Request) -> web.StreamResponse:
        bucket_dir, key = locate(request)
        if not key:
            return list_objects(bucket_dir, request.query.get("prefix", ""))
        path = bucket_dir / quote(key, safe="")
        if not path.exists():
            return web.Response(status=404)
        return web.FileResponse(path)

    def list_objects(bucket_dir: Path, prefix: str) -> web.Response:
        keys = sorted(k for k in (unquote(n) for n in os.listdir(bucket_dir) if not n.startswith("."))
                      if k.startswith(prefix))
        items = "".join(f"<Contents><Key>{escape(k)}</Key></Contents>" for k in keys[:LIST_PAGE])
        body = (f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><KeyCount>'
                f"{min(len(keys), LIST_PAGE)}</KeyCount><IsTruncated>false</IsTruncated>{items}"
                f"</ListBucketResult>")
        return web.Response(body=body.encode(), content_type="application/xml")

    app = web.Application(client_max_size=1 << 40)
    app.router.add_route("PUT", "/{tail:.*}", put)
    app.router.add_route("GET", "/{tail:.*}", get)
    return app


def serve(sock: socket.socket, root: Path) -> None:
    web.run_app(make_app(root), sock=sock, print=None, access_log=None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=9400)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--dir", type=Path, default=Path("/dev/shm/cairn-ceiling"))
    a = ap.parse_args()
    shutil.rmtree(a.dir, ignore_errors=True)
    a.dir.mkdir(parents=True)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", a.port))
    sock.listen(1024)
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=serve, args=(sock, a.dir), daemon=True) for _ in range(a.workers)]
    for w in workers:
        w.start()
    print(f"ceiling server on http://127.0.0.1:{a.port} with {a.workers} workers", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        for w in workers:
            w.join()
    except KeyboardInterrupt:
        pass
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.join(10)
        shutil.rmtree(a.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
