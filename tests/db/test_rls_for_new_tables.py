"""RlsForNewTables on a real database, as the local cluster's postgres (which may not create event
triggers): the preview says so, nothing is created, and delete has nothing to remove. Where the
login role may (a superuser), the trigger itself: tests/e2e/test_e2e_born_closed.py."""

from __future__ import annotations

import psycopg
import pytest

from supabase_access.provider.base import CHECK_LOG, InputError
from supabase_access.provider.resources.rls_for_new_tables import RlsForNewTables
from supabase_access.sql.database import Database
from tests.support.resources import UnreachableDatabase, create, read

pytestmark = pytest.mark.db


def event_triggers(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("select count(*) from pg_event_trigger").fetchone()
    return int(row[0]) if row else -1


def test_refused_login_role_gets_a_warning_and_nothing_is_created(db: Database, fresh_db: str) -> None:
    resource = RlsForNewTables()
    said: list[str] = []
    token = CHECK_LOG.set(said.append)
    try:
        warnings: list[str] = []
        resource_id, checked, state = create(resource, db, {"schemas": ["public"]}, warnings.append)
    finally:
        CHECK_LOG.reset(token)
    assert resource_id == "supabase_access_rls_on_new_tables"
    assert checked == {"schemas": ["public"], "privateSchema": "supabase_access"}
    assert state["installed"] is False
    assert len(said) == 1 and "may not create event triggers" in said[0]
    assert len(warnings) == 1 and "born closed by the default privileges" in warnings[0]
    assert event_triggers(fresh_db) == 0
    assert resource.diff(db, state, checked).has_changes is False
    found = read(resource, db, resource_id, state, checked)
    assert found is not None and found[0]["installed"] is False
    resource.delete(db, state, print)
    assert event_triggers(fresh_db) == 0


def test_check_names_the_bad_input_and_skips_the_database_for_unchanged_inputs(db: Database) -> None:
    with pytest.raises(InputError, match="name the exposed schemas") as raised:
        RlsForNewTables().check(db, {}, {"schemas": []})
    assert raised.value.property == "schemas"
    checked = RlsForNewTables().check(db, {}, {"schemas": ["public"]})
    assert RlsForNewTables().check(UnreachableDatabase(), checked, {"schemas": ["public"]}) == checked
