"""Each benchmark runs at a tiny size and prints its figures table. No test asserts a time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

REPO = Path(__file__).resolve().parents[1]
TINY_DATA = [
    "--users", "20", "--sessions", "100", "--segments", "200", "--turns", "500",
    "--actions", "1000", "--generated-content", "300",
]  # fmt: skip


def run_bench(module: str, *args: str, timeout: float = 300) -> str:
    """Run `python -m bench.<module>` from the repository; return its standard output, failing with both streams."""
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"bench.{module} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.db
def test_rls_prints_its_table(localdb_url: str) -> None:
    out = run_bench("rls", *TINY_DATA, "--repeat", "3", "--blocks", "1")
    assert "| request " in out and "owner/explicit" in out and "naive/owner" in out
    for request in ("list my sessions", "count my turns", "delete an action"):
        assert f"| {request}" in out
    assert "targets " in out


@pytest.mark.db
def test_rls_unprepared_with_variant_and_explain(localdb_url: str) -> None:
    out = run_bench(
        "rls", *TINY_DATA, "--repeat", "2", "--blocks", "2", "--no-prepare",
        "--owner-variant", "deep-exists", "--explain", "owner",
    )  # fmt: skip
    assert "### EXPLAIN owner: list my sessions" in out
    assert "variant/explicit" in out and "statements not prepared" in out


@pytest.mark.db
def test_quota_prints_its_table(localdb_url: str) -> None:
    out = run_bench("quota", "--users", "20", "--turns-per-user", "10", "--inserts", "40", "--blocks", "2")
    if "SKIPPED" in out:
        pytest.skip(out.strip())
    assert "| setting " in out and "inserts/s" in out
    assert "| without quota" in out and "| with quota" in out and "| with quota, a user's first insert" in out
    assert "median of block pairs" in out


@pytest.mark.e2e
def test_engine_prints_its_table(localdb_url: str) -> None:
    out = run_bench("engine", "--tables", "10", "--repeat", "1", "--previews", "1", timeout=600)
    assert "| program " in out and "preview median s" in out
    for program in ("empty program", "5 tables", "10 tables"):
        assert f"| {program}" in out


@pytest.mark.e2e
def test_remote_prints_its_table(localdb_url: str) -> None:
    out = run_bench("remote", "--repeat", "1", "--previews", "1", "--delay-ms", "5", timeout=600)
    assert "| database " in out and "round trips per preview" in out
    for setting in ("direct", "remote"):
        assert f"| {setting}" in out
    assert "Round trips per provider call" in out and "| WriteQuota" in out


@pytest.mark.db
def test_latency_proxy_stops_by_itself(localdb_url: str) -> None:
    port = psycopg.conninfo.conninfo_to_dict(localdb_url).get("port") or "5432"
    result = subprocess.run(
        [sys.executable, "-m", "bench.latency_proxy", "--target-port", str(port), "--delay-ms", "1", "--seconds", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "stopped after its lifetime" in result.stderr and "round trips 0" in result.stderr


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
