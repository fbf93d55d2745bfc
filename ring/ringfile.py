"""Ring file format, version 1: one JSON document.

    {
      "format": "cairn-ring",
      "format_version": 1,
      "version": 7,                     ring generation
      "k": 4, "m": 2, "part_power": 10, "seed": 42,
      "nodes": [{"id": ..., "address": ..., "zone": ..., "weight": ...}, ...],
      "table": {
        "encoding": "uint16-le-base64", partitions x (k+m) node indices, row-major
        "partitions": 1024, "replicas": 6,
        "xxh3_64": "<hex of the raw table bytes>",
        "data": "<base64>"
      }
    }

JSON keeps the small header readable with any tool (`jq .nodes ring.json`); the table is
base64 so a 4096-partition ring stays ~65 KB. Bump FORMAT_VERSION on any incompatible
change; a loader meeting a version it does not know refuses it rather than guessing.

`save` is atomic (temp file in the same directory, fsync, rename, fsync of the directory):
a reader sees the old ring or the new one, never a torn file. `load` validates everything a
Ring checks (distinct nodes per partition, known node indices, zone cap) plus the format
and the table checksum. Nothing here runs on the lookup path.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
from typing import Any

import numpy as np
import xxhash

from ring.model import Node, Ring

FORMAT = "cairn-ring"
FORMAT_VERSION = 1
_TABLE_ENCODING = "uint16-le-base64"
_TABLE_DTYPE = np.dtype("<u2")


class RingFileError(ValueError):
    """A ring file (or bytes) that cannot be trusted: wrong format, version, or content."""


def dumps(ring: Ring) -> bytes:
    """Serialize a ring to the version-1 file format."""
    raw = ring.table_array().astype(_TABLE_DTYPE).tobytes()
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "version": ring.version,
        "k": ring.k,
        "m": ring.m,
        "part_power": ring.part_power,
        "seed": ring.seed,
        "nodes": [{"id": n.id, "address": n.address, "zone": n.zone, "weight": n.weight}
                  for n in ring.nodes],
        "table": {
            "encoding": _TABLE_ENCODING,
            "partitions": ring.partition_count,
            "replicas": ring.replicas,
            "xxh3_64": xxhash.xxh3_64_hexdigest(raw),
            "data": base64.b64encode(raw).decode("ascii"),
        },
    }
    return (json.dumps(document, indent=1) + "\n").encode("utf-8")


def loads(data: bytes, *, source: str = "ring data") -> Ring:
    """Parse and validate a version-1 ring document. Raises RingFileError."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RingFileError(f"{source}: not a JSON ring file ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise RingFileError(f"{source}: not a {FORMAT} file (format field is "
                            f"{document.get('format') if isinstance(document, dict) else None!r})")
    version = document.get("format_version")
    if version != FORMAT_VERSION:
        raise RingFileError(f"{source}: unsupported ring format_version {version!r}; this build "
                            f"reads format_version {FORMAT_VERSION} only (upgrade cairn?)")
    try:
        nodes = tuple(Node(id=_field(n, "id", str), address=_field(n, "address", str),
                           zone=_field(n, "zone", str), weight=_field(n, "weight", (int, float)))
                      for n in _field(document, "nodes", list))
        ring_fields = {name: _field(document, name, int)
                       for name in ("version", "k", "m", "part_power", "seed")}
        table = _decode_table(_field(document, "table", dict), len(nodes))
        return Ring(nodes=nodes, table=table, **ring_fields)
    except (ValueError, TypeError) as exc:
        raise RingFileError(f"{source}: invalid ring: {exc}") from None


def save(ring: Ring, path: str | os.PathLike[str]) -> None:
    """Write `ring` to `path` atomically and durably."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    data = dumps(ring)
    fd, tmp = tempfile.mkstemp(prefix=".ring-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def load(path: str | os.PathLike[str]) -> Ring:
    """Read and validate a ring file. Raises RingFileError (a ValueError) or OSError."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        return loads(f.read(), source=path)


def _field(mapping: Any, name: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(mapping, dict) or name not in mapping:
        raise ValueError(f"missing field {name!r}")
    value = mapping[name]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(f"field {name!r} has the wrong type ({type(value).__name__})")
    return value


def _decode_table(table: dict, node_count: int) -> tuple[tuple[int, ...], ...]:
    encoding = _field(table, "encoding", str)
    if encoding != _TABLE_ENCODING:
        raise ValueError(f"unknown table encoding {encoding!r}")
    partitions = _field(table, "partitions", int)
    replicas = _field(table, "replicas", int)
    try:
        raw = base64.b64decode(_field(table, "data", str), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"table data is not base64 ({exc})") from None
    if xxhash.xxh3_64_hexdigest(raw) != _field(table, "xxh3_64", str):
        raise ValueError("table checksum mismatch (file damaged?)")
    if partitions < 1 or replicas < 1 or len(raw) != partitions * replicas * _TABLE_DTYPE.itemsize:
        raise ValueError(f"table holds {len(raw)} bytes, not {partitions} x {replicas} uint16")
    arr = np.frombuffer(raw, dtype=_TABLE_DTYPE).reshape(partitions, replicas)
    if arr.size and int(arr.max()) >= node_count:
        raise ValueError(f"table refers to node index {int(arr.max())} but only "
                         f"{node_count} nodes are listed")
    return tuple(map(tuple, arr.tolist()))
