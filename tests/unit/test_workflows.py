"""The GitHub workflows lint clean with actionlint (built from Go modules by scripts/bootstrap)."""

import os
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


def test_workflows_pass_actionlint() -> None:
    actionlint = os.environ.get("SUPABASE_ACCESS_ACTIONLINT") or (REPO / ".venv/.actionlint").read_text().strip()
    result = subprocess.run(
        [actionlint, "-no-color", "-oneline"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_preview_posts_on_pull_requests_and_prod_is_protected() -> None:
    preview = (REPO / ".github/workflows/preview.yml").read_text()
    deploy = (REPO / ".github/workflows/deploy.yml").read_text()
    assert "comment-on-pr: true" in preview and "command: preview" in preview
    assert "environment: production" in deploy


def test_every_job_uses_the_official_cli_and_builds_no_go() -> None:
    for workflow in (REPO / ".github/workflows").glob("*.yml"):
        jobs = yaml.safe_load(workflow.read_text())["jobs"]
        for name, job in jobs.items():
            steps = job["steps"]
            uses = [step.get("uses", "") for step in steps]
            assert any(u.startswith("pulumi/actions@") for u in uses), f"{workflow.name}:{name}"
            assert not any(u.startswith("actions/setup-go") for u in uses), f"{workflow.name}:{name}"
            assert not any("go build" in step.get("run", "") for step in steps), f"{workflow.name}:{name}"
            installs = [s for s in steps if s.get("uses", "").startswith("pulumi/actions@")]
            assert {s["with"]["pulumi-version"] for s in installs} == {"3.260.0"}, f"{workflow.name}:{name}"


def test_access_review_gates_wider_prod_access_on_a_label() -> None:
    preview = (REPO / ".github/workflows/preview.yml").read_text()
    assert "--json" in preview and "widened-prod" in preview
    assert "contains(github.event.pull_request.labels.*.name, 'access-widening-approved')" in preview
    assert "labeled, unlabeled" in preview  # adding the label runs the review again


def test_pulumi_postgresql_gets_the_bounded_waits_wherever_pulumi_runs() -> None:
    from supabase_access.sql.database import OFFICIAL_PROVIDER_PGOPTIONS

    # The engine starts the official plugin through our wrapper (Pulumi.yaml), which sets them.
    providers = yaml.safe_load((REPO / "Pulumi.yaml").read_text())["plugins"]["providers"]
    assert {"name": "postgresql", "path": "./bin"} in providers
    wrapper = (REPO / "bin/pulumi-resource-postgresql").read_text()
    assert f'PGOPTIONS="{OFFICIAL_PROVIDER_PGOPTIONS}' in wrapper
    assert "setpriv --pdeathsig KILL" in wrapper


def test_drift_is_watched_on_a_schedule_for_every_deployed_stack() -> None:
    drift = yaml.safe_load((REPO / ".github/workflows/drift.yml").read_text())
    # PyYAML reads the `on:` key as True.
    assert "schedule" in drift[True] and "workflow_dispatch" in drift[True]
    job = drift["jobs"]["drift"]
    assert job["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    preview = next(step for step in job["steps"] if step.get("uses", "").startswith("pulumi/actions@"))
    assert preview["with"]["command"] == "preview"
    assert preview["with"]["refresh"] is True and preview["with"]["expect-no-changes"] is True
    assert preview["with"]["comment-on-summary"] is True
