"""The database benchmarks run at a tiny size and print their figures tables. No test asserts a time.
(The engine ones: tests/e2e/test_e2e_bench_smoke.py; their helpers: tests/unit/test_bench_helpers.py.)"""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from tests.support.bench import REPO, run_bench

TINY_DATA = [
    "--users", "20", "--sessions", "100", "--segments", "200", "--turns", "500",
    "--actions", "1000", "--generated-content", "300",
]  # fmt: skip


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
def test_columns_prints_its_table(localdb_url: str) -> None:
    out = run_bench("columns", "--notes", "200", "--updates", "6", "--blocks", "3")
    for setting in ("table-wide", "column privileges", "column rules", "without either"):
        assert f"| {setting} " in out
    assert "column rules / table-wide: " in out and "target " in out
    assert "column rules and author policies / without either: " in out


@pytest.mark.db
def test_groups_prints_its_table(localdb_url: str) -> None:
    out = run_bench(
        "groups", "--users", "30", "--projects", "20", "--tasks", "5", "--comments", "2", "--repeat", "2",
        "--compare-path",
    )  # fmt: skip
    assert "| request (a plain member)" in out and "owner/explicit" in out
    for request in ("list a project's tasks", "a task's comments", "my projects' members"):
        assert f"| {request}" in out
    assert "initplan(s)" in out
    assert "copyGroup on comments" in out
    assert "on the copy (copyGroup)" in out and "through tasks (no copy)" in out
    assert "hand-written (service_role)" in out


@pytest.mark.db
def test_quota_prints_its_table(localdb_url: str) -> None:
    out = run_bench("quota", "--users", "20", "--turns-per-user", "10", "--inserts", "40", "--blocks", "2")
    if "SKIPPED" in out:
        pytest.skip(out.strip())
    assert "| setting " in out and "inserts/s" in out
    assert "| without quota" in out and "| with quota" in out and "| with quota, a user's first insert" in out
    assert "median of block pairs" in out


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


@pytest.mark.db
def test_storage_prints_its_table(localdb_url: str) -> None:
    out = run_bench("storage", "--objects", "2000", "--users", "50", "--projects", "20", "--repeat", "2")
    assert "| request (a project member)" in out and "policies/by hand" in out
    for request in (
        "download my avatar",
        "list my avatar folder",
        "download a project's file",
        "list a project's files",
    ):
        assert f"| {request}" in out
    assert "initplan(s)" in out
