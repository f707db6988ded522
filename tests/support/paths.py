"""Where the repository is, for the tests of every tier (tests/unit, tests/db, tests/e2e)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODEL_FILE = REPO / "access-model.yaml"
