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


@pytest.mark.unit
def test_versions_sets_each_compared_column_side_by_side_with_every_run() -> None:
    from bench.versions import Run, side_by_side

    def figures(owner: str, load: float) -> dict[str, object]:
        return {
            "server": "17.6",
            "load_before": [load, 0.0, 0.0],
            "load_after": [load, 0.0, 0.0],
            "compare": ["owner/explicit"],
            "rows": {"count my turns": {"owner/explicit": owner, "owner median": "0.2"}},
        }

    runs = [
        Run("17", 0, figures("1.10", 1.0)),
        Run("15", 0, figures("0.90", 2.0)),
        Run("17", 1, figures("1.30 MISS", 3.0)),
    ]
    table = side_by_side(runs, ["17", "15"])
    header, _, row = table.splitlines()[:3]
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "request",
        "owner/explicit, PG 17",
        "owner/explicit, PG 15",
    ]
    assert [c.strip() for c in row.strip("|").split("|")] == ["count my turns", "1.20 (1.10 / 1.30 MISS)", "0.90"]
    assert "run 2, PostgreSQL 17.6: load (1, 5, 15 min) before 3.0" in table
