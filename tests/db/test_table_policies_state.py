"""What TablePolicies keeps in state: one copy of the table's policies plus a digest of the declaration,
and how PostgreSQL stored the last apply only once a refresh finds drift."""

from __future__ import annotations

import psycopg
import pytest

from supabase_access.model.policy import PolicySpec
from supabase_access.provider.resources.table_policies import TablePolicies, declaration_digest
from supabase_access.sql import catalog
from supabase_access.sql.database import Database

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


def test_policies_are_parsed_all_at_once_and_a_refused_one_is_named(db: Database) -> None:
    good = PolicySpec("sessions_select_mine", "SELECT", ("authenticated",), True, "user_id = (select auth.uid())")
    bad = PolicySpec("sessions_update_typo", "UPDATE", ("authenticated",), True, "user_idd = (select auth.uid())")
    with db.connection() as conn:
        normalized = catalog.normalize_policies(conn, "public", "sessions", {good.name: good})
        assert normalized[good.name].using == "(user_id = ( SELECT auth.uid() AS uid))"
        with pytest.raises(catalog.PolicyRejectedError) as refused:
            catalog.normalize_policies(conn, "public", "sessions", {good.name: good, bad.name: bad})
        assert refused.value.policy == bad.name and 'column "user_idd" does not exist' in refused.value.message
        # Nothing was kept, and the connection is ready for the next call.
        assert conn.execute("select count(*) from pg_policies where tablename like 'normalize_%'").fetchone() == (0,)
