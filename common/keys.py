"""CurveZMQ key files for a cluster.

Layout of a keys directory (the format of each file is zmq.auth's certificate format):

    node.key, node.key_secret        the keypair every storage node serves with
    client.key, client.key_secret    the keypair gateways and tools connect with
    authorized/client.key            public keys of the clients the nodes accept

A machine that only runs a gateway needs client.key_secret and node.key (the server's public key);
a node needs node.key_secret and authorized/. Secret files are written with mode 0600.
To admit another client, copy its public .key file into authorized/ and restart the nodes.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import zmq.auth

SERVER_NAME = "node"
CLIENT_NAME = "client"
AUTHORIZED_DIR = "authorized"


class ServerKeys(NamedTuple):
    public: bytes
    secret: bytes


class ClientKeys(NamedTuple):
    public: bytes
    secret: bytes
    server_public: bytes


def generate_cluster_keys(keys_dir: Path) -> None:
    """Create the node and client keypairs and authorize the client. Existing keys are kept, so
    running this twice changes nothing."""
    keys_dir = Path(keys_dir)
    authorized = keys_dir / AUTHORIZED_DIR
    authorized.mkdir(parents=True, exist_ok=True)
    os.chmod(keys_dir, 0o700)
    for name in (SERVER_NAME, CLIENT_NAME):
        if not (keys_dir / f"{name}.key_secret").exists():
            _, secret_file = zmq.auth.create_certificates(keys_dir, name)
            os.chmod(secret_file, 0o600)
    client_public = keys_dir / f"{CLIENT_NAME}.key"
    admitted = authorized / client_public.name
    if not admitted.exists():
        admitted.write_bytes(client_public.read_bytes())


def load_server_keys(keys_dir: Path) -> ServerKeys:
    public, secret = zmq.auth.load_certificate(Path(keys_dir) / f"{SERVER_NAME}.key_secret")
    if secret is None:
        raise ValueError(f"{keys_dir}: {SERVER_NAME}.key_secret holds no secret key")
    return ServerKeys(public, secret)


def load_client_keys(keys_dir: Path) -> ClientKeys:
    keys_dir = Path(keys_dir)
    public, secret = zmq.auth.load_certificate(keys_dir / f"{CLIENT_NAME}.key_secret")
    server_public, _ = zmq.auth.load_certificate(keys_dir / f"{SERVER_NAME}.key")
    if secret is None:
        raise ValueError(f"{keys_dir}: {CLIENT_NAME}.key_secret holds no secret key")
    return ClientKeys(public, secret, server_public)


def authorized_dir(keys_dir: Path) -> Path:
    return Path(keys_dir) / AUTHORIZED_DIR
