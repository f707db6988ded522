"""End to end: the access matrix after a real `pulumi up`, and scripts/access-review.

The engine runs through the Automation API (tests/support/engine.py); the review runs as the
command people use, on throwaway copies of the local database it makes itself.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml

from supabase_access.matrix import Cell, compute_matrix, diff, matrix_from_rule
from supabase_access.model import load_model_file
from tests.support.engine import new_stack
from tests.support.expectations import owner_access

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
MODEL = load_model_file(REPO / "access-model.yaml", setting="access-model.yaml")
OPEN = {"supabase-access:environment": "dev", "supabase-access:profile": "open"}
OWNER = {"supabase-access:environment": "prod", "supabase-access:profile": "owner"}


OPEN_MATRIX = matrix_from_rule(MODEL.table_names, lambda cell: True)
OWNER_MATRIX = matrix_from_rule(MODEL.table_names, owner_access)


def test_owner_profile_up_gives_exactly_the_owner_matrix(tmp_path: Path, fresh_db: str) -> None:
    new_stack(tmp_path / "local-prod", "local-prod", fresh_db, OWNER).up()
    matrix = compute_matrix(fresh_db, MODEL)
    assert diff(OWNER_MATRIX, matrix) == []
    # The two hops to actions (actions → turns → sessions) included.
    for persona in ("authenticated (anonymous A)", "authenticated (anonymous B)", "authenticated (permanent)"):
        for operation in ("select", "insert", "update", "delete"):
            assert matrix.allowed[Cell(persona, "actions", operation, "own")]
            assert not matrix.allowed[Cell(persona, "actions", operation, "other")]


def run_review(tmp_path: Path, base: Mapping[str, object], proposed: Mapping[str, object]) -> str:
    base_file, proposed_file = tmp_path / "base.yaml", tmp_path / "proposed.yaml"
    base_file.write_text(yaml.safe_dump({"config": dict(base)}))
    proposed_file.write_text(yaml.safe_dump({"config": dict(proposed)}))
    result = subprocess.run(
        [
            sys.executable,
            REPO / "scripts" / "access-review",
            "--base-file",
            base_file,
            "--proposed-file",
            proposed_file,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def change_lines(output: str) -> list[str]:
    _, found, changes = output.partition("Access changes (")
    assert found, output
    return [line.strip() for line in changes.splitlines()[1:] if line.startswith("  ")]


def test_review_of_open_to_owner_reports_exactly_the_changed_cells(tmp_path: Path) -> None:
    output = run_review(tmp_path, OPEN, OWNER)
    expected = diff(OPEN_MATRIX, OWNER_MATRIX)
    # anon loses all 40 cells; A, B and P lose the 20 "other" cells each; service_role keeps everything.
    assert len(expected) == 100
    assert change_lines(output) == expected
    assert "authenticated (anonymous A) · generated_content · insert other: allowed → denied" in output
    assert "service_role ·" not in output.partition("Access changes")[2]


def test_review_of_a_change_without_access_effect_reports_none(tmp_path: Path) -> None:
    # A config change that leaves access alone: the same model inline instead of through the model file.
    inline_model = yaml.safe_load((REPO / "access-model.yaml").read_text())
    output = run_review(tmp_path, OPEN, {**OPEN, "supabase-access:model": inline_model})
    assert output.rstrip().endswith("No access change.")
    # Both sides really got the open profile: no ✗ outside the two legends.
    assert output.count("✗") == 2
    assert "Access changes" not in output
