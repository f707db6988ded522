"""scripts/access-review (the real engine) on generated apps (tests/support/generated_apps.py): a stack never
deployed, the app's schema given with --schema and its model inline in the proposed config. The review
works, and its after-matrix agrees cell by cell with what the model's kinds say."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, seed, settings

from review.matrix import Cell, personas_for
from supabase_access.model.access_model import parse_model
from tests.support.generated_apps import GeneratedApp, generated_apps
from tests.support.paths import REPO

pytestmark = pytest.mark.e2e

SCHEMA = "generated_app"
EXIT_NO_CHANGE, EXIT_CHANGED = 0, 2


# Three apps of four tables or more (each review applies one side with `pulumi up`: about a minute).
@seed(22)
@settings(
    max_examples=3,
    deadline=None,
    database=None,
    phases=[Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
@given(app=generated_apps().filter(lambda app: len(app.tables) >= 4))
def test_access_review_of_a_generated_app(tmp_path: Path, app: GeneratedApp) -> None:
    work = tmp_path / f"review-{len(list(tmp_path.iterdir()))}"
    work.mkdir()
    schema_file = work / "schema.sql"
    schema_file.write_text(app.ddl(SCHEMA))
    model = app.model(SCHEMA)
    config = {
        "supabase-access:environment": "prod",
        "supabase-access:profile": "owner",
        "supabase-access:schemas": [SCHEMA],
        "supabase-access:model": model,
    }
    proposed = work / "proposed.yaml"
    proposed.write_text(yaml.safe_dump({"config": config}))
    command = [sys.executable, str(REPO / "scripts" / "access-review"), "--stack", "generated-never-deployed"]
    result = subprocess.run(
        [*command, "--proposed-file", str(proposed), "--schema", str(schema_file), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode in (EXIT_NO_CHANGE, EXIT_CHANGED), result.stderr
    document = json.loads(result.stdout)
    assert "absent: nothing deployed" in document["before"]["title"]
    personas = {p.label: p for p in personas_for(parse_model(model, setting="test model"))}
    wrong = [
        f"{cell.label()}: {state}, the model says {expected}"
        for entry in document["after"]["cells"]
        for cell, state in (
            (Cell(entry["persona"], entry["table"], entry["operation"], entry["whose"]), entry["state"]),
        )
        if state != (expected := app.expected(cell, personas[cell.persona]))
    ]
    assert wrong == [], "\n".join(wrong)
    assert all(entry["error"].startswith("ForeignKeyViolation") for entry in document["failed"]["after"])
