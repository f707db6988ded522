"""Supabase's own database linter (splinter, ../shared/splinter/splinter.sql) finds nothing to fix
in the reference app, nor in the teams app (every access kind of the model), once the prod stack is
applied: no ERROR or WARN in the security category and none of the performance lints the owner
profile is built to avoid."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from tests.support.engine import new_stack
from tests.support.localdb import legacy_platform
from tests.support.splinter import lint, must_fix
from tests.support.teams_app import OWNER as TEAMS_OWNER
from tests.support.teams_app import load_teams_app

# Written against the legacy platform's auto-grants (what the stack closes or keeps from them).
pytestmark = [pytest.mark.e2e, legacy_platform]

PROD = {
    "supabase-access:environment": "prod",
    "supabase-access:profile": "owner",
    "supabase-access:writeQuotas": json.dumps({"sessions": {"perHour": 20}, "generated_content": {"perHour": 100}}),
    "supabase-access:retention": json.dumps({"anonymousUsersDays": 30, "sessionsDays": 180}),
    "supabase-access:permanentUsersOnly": json.dumps({"generated_content": ["INSERT"]}),
}


def test_the_reference_app_on_prod_passes_supabases_linter(tmp_path: Path, fresh_db: str) -> None:
    # The linter runs and sees the exposed schema: a table without RLS is its first ERROR.
    with psycopg.connect(fresh_db) as conn:
        conn.execute("create table probe (id int)")
    assert [f[:2] for f in must_fix(lint(fresh_db)) if "probe" in f[3]] == [("rls_disabled_in_public", "ERROR")]
    with psycopg.connect(fresh_db) as conn:
        conn.execute("drop table probe")
    stack = new_stack(tmp_path / "prod", "prod", fresh_db, PROD)
    stack.up()
    assert must_fix(lint(fresh_db)) == []


def test_the_teams_app_on_prod_passes_supabases_linter(tmp_path: Path, fresh_db: str) -> None:
    load_teams_app(fresh_db)
    before = {f[0] for f in must_fix(lint(fresh_db))}
    # Unprotected at first: the linter sees the tables without RLS and the unindexed lookups.
    assert {"rls_disabled_in_public", "unindexed_foreign_keys"} <= before
    stack = new_stack(tmp_path / "prod", "prod", fresh_db, TEAMS_OWNER)
    stack.up()
    findings = lint(fresh_db)
    assert must_fix(findings) == []
    # What is left is by design: the service-only table has RLS and no policy (INFO).
    assert [(f[0], f[1]) for f in findings if "audit_log" in f[3] and f[0] == "rls_enabled_no_policy"] == [
        ("rls_enabled_no_policy", "INFO")
    ]
