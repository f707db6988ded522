"""The benchmarks' own helpers without a database: the latency proxy's loopback rule, the RLS bench's blocks."""

from __future__ import annotations

import pytest


@pytest.mark.unit
def test_latency_proxy_forwards_on_loopback_only() -> None:
    from bench.latency_proxy import LatencyProxy

    with pytest.raises(ValueError, match="only forwards on loopback"):
        LatencyProxy(5432, delay=0.025, target_host="10.0.0.1")


@pytest.mark.unit
def test_rls_times_the_rls_free_setup_beside_the_first_policy_setup() -> None:
    from bench.rls import Setup, block_groups

    owner, explicit, naive = (Setup(n, p, n) for n, p in (("owner", {}), ("explicit", None), ("naive", {})))
    assert [[s.name for s in g] for g in block_groups([owner, explicit, naive])] == [["owner", "explicit"], ["naive"]]
    assert [[s.name for s in g] for g in block_groups([explicit])] == [["explicit"]]
