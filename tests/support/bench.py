"""Runs a benchmark of bench/ from the repository, for the smoke tests of every tier."""

from __future__ import annotations

import subprocess
import sys

from tests.support.paths import REPO

__all__ = ["REPO", "run_bench"]


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
