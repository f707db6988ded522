"""The engine benchmarks run at a tiny size and print their figures tables. No test asserts a time."""

from __future__ import annotations

import pytest

from tests.support.bench import run_bench


@pytest.mark.e2e
def test_engine_prints_its_table(localdb_url: str) -> None:
    out = run_bench("engine", "--tables", "10", "--repeat", "1", "--previews", "1", "--state-writes", timeout=600)
    assert "| program " in out and "preview median s" in out
    for program in (
        "empty program",
        "5 tables",
        "10 tables",
        "5 tables, state written once",
        "10 tables, state written once",
    ):
        assert f"| {program}" in out
    assert "spent writing the state around each step" in out


@pytest.mark.e2e
def test_remote_prints_its_table(localdb_url: str) -> None:
    out = run_bench("remote", "--repeat", "1", "--previews", "1", "--delay-ms", "5", timeout=600)
    assert "| database " in out and "round trips per preview" in out
    for setting in ("direct", "remote"):
        assert f"| {setting}" in out
    assert "Round trips per provider call" in out and "| WriteQuota" in out
