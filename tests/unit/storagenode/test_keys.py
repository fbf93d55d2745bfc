"""CurveZMQ key files: layout, permissions, idempotence, loaders."""
from __future__ import annotations

import stat

from common.keys import (authorized_dir, generate_cluster_keys, load_client_keys,
                         load_server_keys)


def test_generate_writes_the_layout_with_private_secrets(tmp_path):
    keys_dir = tmp_path / "keys"
    generate_cluster_keys(keys_dir)
    for name in ("node.key", "node.key_secret", "client.key", "client.key_secret"):
        assert (keys_dir / name).is_file()
    for name in ("node.key_secret", "client.key_secret"):
        assert stat.S_IMODE((keys_dir / name).stat().st_mode) == 0o600
    assert [p.name for p in authorized_dir(keys_dir).iterdir()] == ["client.key"]
    assert (authorized_dir(keys_dir) / "client.key").read_bytes() == \
        (keys_dir / "client.key").read_bytes()


def test_generate_is_idempotent_and_loaders_agree(tmp_path):
    generate_cluster_keys(tmp_path)
    server, client = load_server_keys(tmp_path), load_client_keys(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    generate_cluster_keys(tmp_path)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    public, secret, server_public = client
    assert server_public == server.public
    assert len(public) == len(secret) == len(server.secret) == 40     # Z85 text keys
    assert public != server.public and secret != server.secret
