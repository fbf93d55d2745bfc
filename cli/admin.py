"""Cluster administration through the replicated metadata: access keys, grants, status.

The CLI talks to the storage nodes directly (with the cluster's client keys), through the same
quorum code the gateway uses; no gateway needs to be running.
"""
from __future__ import annotations

import contextlib
import secrets
import string
import time
from dataclasses import replace
from pathlib import Path
from typing import AsyncIterator

from common.keys import load_client_keys
from common.nodeclient import NodePool
from gateway.cluster.catalog import Catalog
from gateway.cluster.hlc import HybridClock
from gateway.cluster.metastore import MetaStore
from gateway.cluster.quorum import derive_quorums
from gateway.cluster.records import AccessKeyRecord
from ring.model import Ring
from ring.ringfile import load as load_ring

_KEY_ALPHABET = string.ascii_uppercase + string.digits


@contextlib.asynccontextmanager
async def open_catalog(ring_path: Path, keys_dir: Path | None, timeout: float = 5.0
                       ) -> AsyncIterator[tuple[Catalog, Ring, NodePool]]:
    ring = load_ring(ring_path)
    quorums = derive_quorums(ring.k, ring.m)
    keys = load_client_keys(keys_dir) if keys_dir else None
    async with NodePool({n.id: n.address for n in ring.nodes}, keys=keys,
                        timeout=timeout) as pool:
        meta = MetaStore(pool, lambda: ring, quorums, timeout=timeout)
        try:
            yield Catalog(meta, HybridClock(), key_cache_ttl=0.0), ring, pool
        finally:
            await meta.close()


def new_access_key() -> tuple[str, str]:
    access = "CK" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(18))
    secret = secrets.token_urlsafe(30)[:40]
    return access, secret


async def create_key(catalog: Catalog, name: str, access: str | None = None,
                     secret: str | None = None) -> AccessKeyRecord:
    if access is None or secret is None:
        access, secret = new_access_key()
    rec = AccessKeyRecord(access_key=access, secret_key=secret, name=name, created_ns=time.time_ns())
    await catalog.put_access_key(rec)
    return rec


async def delete_key(catalog: Catalog, access: str) -> bool:
    rec = await catalog.get_access_key(access)
    if rec is None:
        return False
    await catalog.put_access_key(replace(rec, deleted=True))
    return True


async def allow(catalog: Catalog, bucket: str, access: str, mode: str | None) -> None:
    rec = await catalog.get_bucket(bucket)
    if rec is None:
        raise SystemExit(f"no such bucket: {bucket}")
    if await catalog.get_access_key(access) is None:
        raise SystemExit(f"no such access key: {access}")
    grants = dict(rec.grants)
    if mode:
        grants[access] = mode
    else:
        grants.pop(access, None)
    await catalog.put_bucket(replace(rec, grants=grants))


async def status(ring: Ring, pool: NodePool) -> list[dict]:
    rows = []
    for node in ring.nodes:
        row = {"id": node.id, "zone": node.zone, "address": node.address, "weight": node.weight}
        try:
            stats = await pool[node.id].stats(timeout=2.0)
            row.update(up=True, **{k: stats.get(k) for k in
                                   ("shards", "records", "used_bytes", "map_size_max", "disk_free_bytes")})
        except Exception as exc:  # any failure means "down" for a status line
            row.update(up=False, error=type(exc).__name__)
        rows.append(row)
    return rows
