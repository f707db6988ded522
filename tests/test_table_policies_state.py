"""What TablePolicies keeps in state: one copy of the table's policies plus a digest of the declaration,
and how PostgreSQL stored the last apply only once a refresh finds drift."""

from __future__ import annotations

import psycopg
import pytest

from supabase_access.provider.database import Database
from supabase_access.provider.policies import TablePolicies, declaration_digest

pytestmark = pytest.mark.db

DECLARED = {
    "sessions_select_mine": {
        "command": "SELECT",
        "roles": ["authenticated"],
        "permissive": True,
        "using": "user_id = (select auth.uid())",
        "withCheck": None,
    }
}
INPUTS = {"schema": "public", "table": "sessions", "policies": DECLARED}


def no_log(message: str) -> None:
    pass


def test_state_holds_a_digest_and_records_the_apply_when_a_refresh_finds_drift(db: Database, fresh_db: str) -> None:
    resource = TablePolicies()
    _, state = resource.create(db, resource.check(db, {}, dict(INPUTS)), no_log)
    assert state["declaredDigest"] == declaration_digest(DECLARED)
    assert "declared" not in state and "normalized" not in state
    assert not resource.diff(db, state, dict(INPUTS)).has_changes

    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("alter policy sessions_select_mine on sessions using (true)")
    refreshed, inputs = resource.read(db, "public.sessions", state, dict(INPUTS)) or ({}, {})
    assert refreshed["normalized"] == state["policies"]  # what the apply left, kept past the drift
    assert refreshed["policies"]["sessions_select_mine"]["using"] == "true"
    assert resource.diff(db, refreshed, dict(INPUTS)).changes == {"policies.sessions_select_mine.using": "update"}

    # A second refresh keeps the record; the next apply replaces it.
    again, _ = resource.read(db, "public.sessions", refreshed, inputs) or ({}, {})
    assert again["normalized"] == state["policies"]
    applied = resource.update(db, again, dict(INPUTS), no_log)
    assert "normalized" not in applied and not resource.diff(db, applied, dict(INPUTS)).has_changes


def test_state_written_before_the_digest_still_reuses_its_record(db: Database) -> None:
    resource = TablePolicies()
    _, state = resource.create(db, resource.check(db, {}, dict(INPUTS)), no_log)
    older = {k: v for k, v in state.items() if k != "declaredDigest"}
    older |= {"declared": DECLARED, "normalized": state["policies"]}
    assert not resource.diff(db, older, dict(INPUTS)).has_changes
