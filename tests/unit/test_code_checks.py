"""ruff (lint and format) and mypy over the whole tree, the Python scripts in scripts/ included,
so the README's test command (and CI) runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
TOOLS = Path(sys.executable).parent


def python_scripts() -> list[str]:
    """Executable Python files without a .py ending (ruff and mypy do not find them on their own)."""
    return sorted(
        str(path.relative_to(REPO))
        for path in (REPO / "scripts").iterdir()
        if path.is_file() and path.read_text(errors="replace").startswith("#!/usr/bin/env python")
    )


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False, timeout=600)


def test_the_scripts_are_found() -> None:
    assert "scripts/access-review" in python_scripts() and "scripts/matrix" in python_scripts()


@pytest.mark.parametrize("check", [("check",), ("format", "--check")], ids=["lint", "format"])
def test_ruff(check: tuple[str, ...]) -> None:
    result = run(str(TOOLS / "ruff"), *check, ".", *python_scripts())
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy() -> None:
    # Each script alone: they are all `__main__` to mypy.
    for targets in (["."], *([script] for script in python_scripts())):
        result = run(str(TOOLS / "mypy"), *targets)
        assert result.returncode == 0, f"mypy {' '.join(targets)}:\n{result.stdout}{result.stderr}"
