"""Shared fixtures: one real cluster per test session for the S3 tiers (cheap to share, since
every test uses its own bucket), and fresh clusters for tests that break things."""
from __future__ import annotations

import uuid

import pytest

from tests.harness import LocalCluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    with LocalCluster(tmp_path_factory.mktemp("cluster"), gateways=2) as c:
        yield c


@pytest.fixture(scope="session")
def tls_cluster(tmp_path_factory):
    with LocalCluster(tmp_path_factory.mktemp("tls-cluster"), tls=True) as c:
        yield c


@pytest.fixture
def bucket_name():
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def s3(cluster):
    return cluster.boto3_client()


@pytest.fixture
def bucket(s3, bucket_name):
    s3.create_bucket(Bucket=bucket_name)
    return bucket_name
