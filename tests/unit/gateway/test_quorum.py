"""Quorum sizes derived in one place, and quorum as a reduction over per-node outcomes."""
from __future__ import annotations

import pytest

from common.codec import MAX_K, MAX_M, MIN_K, MIN_M
from common.nodeclient import NodeTimeout, NodeUnavailable
from gateway.cluster.quorum import derive_quorums, reachable, require
from gateway.s3.errors import ServiceUnavailable

POLICIES = [(k, m) for k in range(MIN_K, MAX_K + 1) for m in range(MIN_M, MAX_M + 1)]


@pytest.mark.parametrize("k,m", POLICIES)
def test_derived_quorums_intersect_and_survive_m_failures(k: int, m: int) -> None:
    n = k + m
    majority = n // 2 + 1
    if n - m < majority:
        # More parity than a majority of replicas can survive losing: refused, not weakened.
        with pytest.raises(ValueError, match="majority"):
            derive_quorums(k, m)
        return
    q = derive_quorums(k, m)
    assert (q.k, q.m, q.meta_replicas) == (k, m, n)
    assert q.meta_write + q.meta_read > n           # every read meets every completed write
    assert q.meta_write * 2 > n                     # two writes always share a replica
    assert n - m >= q.meta_write and n - m >= q.meta_read
    assert q.meta_read == n - q.meta_write + 1      # the smallest read quorum that intersects
    assert q.data_write == k + 1                    # the documented default


def test_the_default_policy() -> None:
    q = derive_quorums(4, 2)
    assert (q.data_write, q.meta_replicas, q.meta_write, q.meta_read) == (5, 6, 4, 3)


@pytest.mark.parametrize("data_write", [4, 5, 6])
def test_explicit_data_quorum_within_k_to_n(data_write: int) -> None:
    assert derive_quorums(4, 2, data_write).data_write == data_write


@pytest.mark.parametrize("data_write", [0, 3, 7, 100])
def test_data_quorum_outside_k_to_n_is_refused(data_write: int) -> None:
    with pytest.raises(ValueError, match="data write quorum"):
        derive_quorums(4, 2, data_write)


def test_require_counts_successes() -> None:
    assert require([None, None, None, NodeTimeout("x")], 3, "write") == 3
    assert require([None] * 6, 6, "write") == 6
    assert require([], 0, "nothing needed") == 0


def test_require_raises_service_unavailable_naming_the_failures() -> None:
    outcomes = [None, NodeTimeout("a"), NodeUnavailable("b"), NodeTimeout("c"), None]
    with pytest.raises(ServiceUnavailable) as info:
        require(outcomes, 3, "metadata write")
    text = str(info.value)
    assert "metadata write" in text and "2 of 5" in text and "3 needed" in text
    assert "NodeTimeout" in text and "NodeUnavailable" in text
    assert info.value.status == 503


def test_reachable() -> None:
    assert reachable(5, 5) and reachable(6, 5) and not reachable(4, 5)
