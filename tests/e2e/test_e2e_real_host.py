"""What Pulumi's own Python language host gives users, end to end: import with code generation,
`pulumi about` and `pulumi install`, the host running the program, one message per program error."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import psycopg
import pytest
from pulumi import automation as auto
from pulumi.automation._stack import ImportResult

from tests.support.engine import new_stack

pytestmark = pytest.mark.e2e

OPEN = {"supabase-access:environment": "dev", "supabase-access:profile": "open"}


def pulumi_cli(stack: auto.Stack, *args: str, stack_flag: bool = True) -> subprocess.CompletedProcess[str]:
    """The pulumi CLI itself, in the stack's project folder, with the stack's engine settings."""
    workspace = stack.workspace
    assert isinstance(workspace, auto.LocalWorkspace)
    return subprocess.run(
        ["pulumi", *args, *(["--stack", stack.name] if stack_flag else [])],
        cwd=workspace.work_dir,
        env={**os.environ, **workspace.env_vars},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def provider_urn(stack: auto.Stack, package: str) -> str:
    deployment = stack.export_stack().deployment
    assert deployment is not None
    return next(r["urn"] for r in deployment["resources"] if r["type"] == f"pulumi:providers:{package}")


def test_import_of_hand_made_policies_with_generated_code(tmp_path: Path, fresh_db: str) -> None:
    stack = new_stack(tmp_path / "dev", "dev", fresh_db, OPEN)
    stack.up()
    with psycopg.connect(fresh_db) as conn:
        conn.execute("create table notes (id bigint primary key, owner uuid not null)")
        conn.execute("alter table notes enable row level security")
        conn.execute("create policy notes_own on notes for select to authenticated using (owner = auth.uid())")

    imported = stack.import_resources(
        resources=[
            {
                "type": "supabase-access:index:TablePolicies",
                "name": "notes-policies",
                "id": "public.notes",
                "provider": "db",
            }
        ],
        name_table={"db": provider_urn(stack, "supabase-access")},
        generate_code=True,
    )
    assert changes_of(imported) == {"import": 1}
    code = imported.generated_code
    assert 'TablePolicies("notes-policies"' in code, code
    assert "notes_own" in code and "owner = auth.uid()" in code, code
    deployment = stack.export_stack().deployment
    assert deployment is not None
    (record,) = [r for r in deployment["resources"] if r["urn"].endswith("::notes-policies")]
    assert record["outputs"]["adopted"]["notes_own"]["roles"] == ["authenticated"]


def changes_of(result: ImportResult) -> dict[str, int]:
    return {str(op): n for op, n in (result.summary.resource_changes or {}).items() if op != "same" and n}


def test_a_grant_cannot_be_imported_by_id(tmp_path: Path, fresh_db: str) -> None:
    """pulumi-postgresql's Grant has no importer (its Terraform resource declares none): a declared
    Grant takes the privileges over at its first `up` instead (revoke and grant in one transaction)."""
    stack = new_stack(tmp_path / "dev", "dev", fresh_db, OPEN)
    stack.up()
    database = psycopg.conninfo.conninfo_to_dict(fresh_db)["dbname"]
    with pytest.raises(auto.CommandError, match="does not exist"):
        stack.import_resources(
            resources=[
                {
                    "type": "postgresql:index/grant:Grant",
                    "name": "anon-notes-grant",
                    "id": f"anon_{database}_public_table_sessions",
                    "provider": "pg",
                }
            ],
            name_table={"pg": provider_urn(stack, "postgresql")},
        )


def test_about_install_and_the_host_running_the_program(tmp_path: Path, fresh_db: str) -> None:
    stack = new_stack(tmp_path / "dev", "dev", fresh_db, OPEN)
    about = pulumi_cli(stack, "about")
    assert about.returncode == 0, about.stderr
    assert "python" in about.stdout.lower() and "postgresql" in about.stdout
    installed = pulumi_cli(stack, "install", stack_flag=False)
    assert installed.returncode == 0, installed.stderr
    # Pulumi's own host answers the engine's About call: its version and the toolchain it drives
    # (a stand-in would not know them). Read from `about --json`, not from a verbose log that a
    # loaded machine may cut.
    about_json = pulumi_cli(stack, "about", "--json")
    assert about_json.returncode == 0, about_json.stderr
    document = json.loads(about_json.stdout)
    assert {"name": "python", "version": "3.260.0", "kind": "language"} in document["plugins"]
    assert document["runtime"]["language"] == "python" and document["runtime"]["toolchain"] == "Pip"
    assert Path(document["runtime"]["executable"]).parent.parent.name == ".venv"
    preview = pulumi_cli(stack, "preview")
    assert preview.returncode == 0, preview.stderr[-3000:]


def test_a_program_error_is_printed_once(tmp_path: Path, fresh_db: str) -> None:
    stack = new_stack(tmp_path / "dev", "dev", fresh_db, {**OPEN, "supabase-access:profile": "opne"})
    with pytest.raises(auto.CommandError) as failed:
        stack.preview()
    diagnostics = str(failed.value).split("Diagnostics:")[1]
    assert diagnostics.count("supabase-access:profile: 'opne' is not one of open, owner") == 1, diagnostics
