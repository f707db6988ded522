"""End to end: the access matrix after a real `pulumi up`, and scripts/access-review.

The engine runs through the Automation API (tests/support/engine.py); the review runs as the
command people use, on throwaway copies of the local database it makes itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from review.matrix import Cell, compute_matrix, diff, matrix_from_rule
from supabase_access.model.access_model import load_model_file
from tests.support.engine import new_stack
from tests.support.expectations import owner_access

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
MODEL = load_model_file(REPO / "access-model.yaml", setting="access-model.yaml")
OPEN = {"supabase-access:environment": "dev", "supabase-access:profile": "open"}
OWNER = {"supabase-access:environment": "prod", "supabase-access:profile": "owner"}
ALLOW_OPEN = {"supabase-access:allowOpenProfileInProd": "true"}


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


def review_process(
    tmp_path: Path, base: Mapping[str, object], proposed: Mapping[str, object], *extra: str
) -> subprocess.CompletedProcess[str]:
    base_file, proposed_file = tmp_path / "base.yaml", tmp_path / "proposed.yaml"
    base_file.write_text(yaml.safe_dump({"config": dict(base)}))
    proposed_file.write_text(yaml.safe_dump({"config": dict(proposed)}))
    command = [sys.executable, str(REPO / "scripts" / "access-review"), "--base-file", str(base_file)]
    return subprocess.run(
        [*command, "--proposed-file", str(proposed_file), *extra], capture_output=True, text=True, check=False
    )


def run_review(tmp_path: Path, base: Mapping[str, object], proposed: Mapping[str, object], *, code: int) -> str:
    result = review_process(tmp_path, base, proposed)
    assert result.returncode == code, result.stderr
    # Progress while the two sides are applied, not everything at the end.
    assert "access-review: applying" in result.stderr and "access-review: probed" in result.stderr
    return result.stdout


CELL_KEYS = {"persona", "table", "operation", "whose"}
STORAGE_KEYS = {"persona", "bucket", "operation", "whose"}
STATES = {"allowed", "denied", "probe failed", "absent"}


def assert_review_json(document: dict[str, Any]) -> None:
    """The --json document's shape, as the script's docstring gives it."""
    assert set(document) == {
        "version",
        "stack",
        "environment",
        "before",
        "after",
        "changes",
        "widens",
        "declaredWidenings",
        "failed",
        "storage",
    }
    assert document["version"] == 1 and isinstance(document["stack"], str)
    for side in ("before", "after"):
        assert set(document[side]) == {"title", "cells"} and isinstance(document[side]["title"], str)
        for cell in document[side]["cells"]:
            assert set(cell) == CELL_KEYS | {"state"} and cell["state"] in STATES
        for failure in document["failed"][side]:
            assert set(failure) == CELL_KEYS | {"error"}
    for change in document["changes"]:
        assert set(change) == CELL_KEYS | {"before", "after", "widens"}
        assert change["before"] in STATES and change["after"] in STATES and change["before"] != change["after"]
        assert change["widens"] == (change["after"] == "allowed")
    assert set(document["storage"]) == {"after", "changes"}
    for cell in document["storage"]["after"]:
        assert set(cell) == STORAGE_KEYS | {"state"} and cell["state"] in STATES
    for change in document["storage"]["changes"]:
        assert set(change) == STORAGE_KEYS | {"before", "after", "widens"}
    every = [*document["changes"], *document["storage"]["changes"]]
    assert document["widens"] == any(change["widens"] for change in every)


def change_lines(output: str) -> list[str]:
    _, found, changes = output.partition("Access changes (")
    assert found, output
    return [line.strip() for line in changes.splitlines()[1:] if line.startswith("  ")]


def test_review_of_open_to_owner_reports_exactly_the_changed_cells(tmp_path: Path) -> None:
    output = run_review(tmp_path, OPEN, OWNER, code=2)
    expected = diff(OPEN_MATRIX, OWNER_MATRIX)
    # anon loses all 40 cells; A, B and P lose the 20 "other" cells each; service_role keeps everything.
    assert len(expected) == 100
    assert change_lines(output) == expected
    assert "authenticated (anonymous A) · generated_content · insert other: allowed → denied" in output
    assert "service_role ·" not in output.partition("Access changes")[2]


def test_review_of_a_change_without_access_effect_reports_none(tmp_path: Path) -> None:
    # A config change that leaves access alone: the same model inline instead of through the model file.
    inline_model = yaml.safe_load((REPO / "access-model.yaml").read_text())
    output = run_review(tmp_path, OPEN, {**OPEN, "supabase-access:model": inline_model}, code=0)
    assert output.rstrip().endswith("No access change.")
    # Both sides really got the open profile: no ✗ outside the two legends.
    assert output.count("✗") == 2
    assert "Access changes" not in output


def test_review_json_and_exit_codes(tmp_path: Path) -> None:
    # Owner -> open widens access on a prod stack: exit 2, and the JSON says what widened.
    widened = review_process(tmp_path, OWNER, {**OPEN, "supabase-access:environment": "prod", **ALLOW_OPEN}, "--json")
    assert widened.returncode == 2, widened.stderr
    document = json.loads(widened.stdout)
    assert_review_json(document)
    assert document["environment"] == "prod" and document["widens"] is True
    assert len(document["changes"]) == 100 and all(change["widens"] for change in document["changes"])
    assert {"persona": "anon", "table": "sessions", "operation": "select", "whose": "own"}.items() <= next(
        change for change in document["changes"] if change["persona"] == "anon"
    ).items()
    # --json FILE beside the Markdown report.
    written = tmp_path / "review.json"
    unchanged = review_process(tmp_path, OWNER, OWNER, "--markdown", "--json", str(written))
    assert unchanged.returncode == 0, unchanged.stderr
    assert unchanged.stdout.startswith("## Access review")
    document = json.loads(written.read_text())
    assert_review_json(document)
    assert document["changes"] == [] and document["widens"] is False
    # A config the program refuses: exit 1, the setting named.
    broken = review_process(tmp_path, OWNER, {"supabase-access:profile": "owner"}, "--json")
    assert broken.returncode == 1
    assert "supabase-access:environment is not set" in broken.stderr and broken.stdout == ""


PROFILES_SCHEMA = """
create table public.profiles (
  user_id uuid primary key default auth.uid() references auth.users on delete cascade,
  display_name text
);
"""


def test_review_of_a_stack_never_deployed_with_the_apps_schema(tmp_path: Path) -> None:
    # No Pulumi.<stack>.yaml at the base ref: the base is the copy as the schema leaves it, and the
    # schema is loaded as postgres (as `scripts/localdb load` does), so the stack can manage its table.
    schema_file = tmp_path / "profiles.sql"
    schema_file.write_text(PROFILES_SCHEMA)
    model = yaml.safe_load((REPO / "access-model.yaml").read_text())
    model["tables"]["profiles"] = {"owner": "user_id"}
    proposed_file = tmp_path / "proposed.yaml"
    proposed_file.write_text(yaml.safe_dump({"config": {**OWNER, "supabase-access:model": model}}))
    command = [sys.executable, str(REPO / "scripts" / "access-review"), "--stack", "never-deployed-review"]
    result = subprocess.run(
        [*command, "--proposed-file", str(proposed_file), "--schema", str(schema_file), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode in (0, 2), result.stderr
    document = json.loads(result.stdout)
    assert_review_json(document)
    assert "absent: nothing deployed" in document["before"]["title"]
    after = {(c["persona"], c["table"], c["operation"], c["whose"]): c["state"] for c in document["after"]["cells"]}
    for operation in ("select", "insert", "update", "delete"):
        assert after[("authenticated (anonymous A)", "profiles", operation, "own")] == "allowed"
        assert after[("authenticated (anonymous A)", "profiles", operation, "other")] == "denied"
    assert document["failed"]["after"] == []


def test_review_lists_a_declared_widening(tmp_path: Path) -> None:
    # Prod: support staff read every session; the entry says so, so the preflight lets it through.
    support = {
        "command": "SELECT",
        "roles": ["authenticated"],
        "using": "(auth.jwt() ->> 'is_anonymous')::boolean is not true",
        "widens": "support staff read every session",
    }
    proposed = {**OWNER, "supabase-access:extraPolicies": {"sessions": {"support_reads": support}}}
    output = run_review(tmp_path, OWNER, proposed, code=2)
    assert "authenticated (permanent) · sessions · select other: denied → allowed" in change_lines(output)
    assert output.rstrip().endswith(
        "Declared widenings (1):\n  supabase-access:extraPolicies.sessions.support_reads widens access: "
        "support staff read every session"
    )


def test_review_shows_the_storage_section_and_its_changes(tmp_path: Path) -> None:
    # The reference app with an avatar bucket (owner folders): dev opens it to everyone, prod to each user's folder.
    model = {**yaml.safe_load((REPO / "access-model.yaml").read_text()), "buckets": {"avatars": {"owner": "folder"}}}
    base, proposed = {**OPEN, "supabase-access:model": model}, {**OWNER, "supabase-access:model": model}
    result = review_process(tmp_path, base, proposed, "--json")
    assert result.returncode == 2, result.stderr
    document = json.loads(result.stdout)
    assert_review_json(document)
    changes = {(c["persona"], c["operation"], c["whose"]): c["after"] for c in document["storage"]["changes"]}
    assert changes[("anon", "upload", "own")] == "denied" and changes[("anon", "download", "other")] == "denied"
    assert changes[("authenticated (anonymous A)", "delete", "other")] == "denied"
    assert ("authenticated (anonymous A)", "download", "own") not in changes, "a user keeps their own folder"
    assert not any(persona == "service_role" for persona, _, _ in changes)
    text = run_review(tmp_path, base, proposed, code=2)
    assert "Storage after (" in text and "anon · bucket avatars · upload own: allowed → denied" in text
