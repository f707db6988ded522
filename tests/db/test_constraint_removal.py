"""ConstraintRemoval on a real database: the key dropped with its definition recorded, a re-created key
seen as drift and dropped again, and delete restoring it (NOT VALID with a warning when rows violate it)."""

from __future__ import annotations

import psycopg
import pytest

from supabase_access.provider.base import InputError
from supabase_access.provider.resources.constraint_removal import ConstraintRemoval
from supabase_access.sql.database import Database
from tests.support.resources import UnreachableDatabase, create, read

pytestmark = pytest.mark.db

INPUTS = {"schema": "public", "table": "sessions", "constraint": "sessions_user_id_fkey"}
DEFINITION = "FOREIGN KEY (user_id) REFERENCES auth.users(id) ON DELETE CASCADE"


def foreign_key(dsn: str) -> tuple[str, bool] | None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select pg_get_constraintdef(oid), convalidated from pg_constraint where conname = 'sessions_user_id_fkey'"
        ).fetchone()
    return None if row is None else (str(row[0]), bool(row[1]))


def test_create_read_drift_update_delete(db: Database, fresh_db: str) -> None:
    resource = ConstraintRemoval()
    resource_id, checked, state = create(resource, db, dict(INPUTS))
    assert resource_id == "public.sessions.sessions_user_id_fkey"
    assert foreign_key(fresh_db) is None
    assert state["present"] is False and state["definition"] == DEFINITION
    assert state["columns"] == ["user_id"] and state["referencedTable"] == "auth.users"
    assert resource.diff(db, state, checked).has_changes is False
    found = read(resource, db, resource_id, state, checked)
    assert found is not None and found[0]["present"] is False

    with psycopg.connect(fresh_db) as conn:  # put back by hand: drift
        conn.execute(f"alter table sessions add constraint sessions_user_id_fkey {DEFINITION}")
    assert resource.diff(db, state, checked).changes == {"present": "update"}
    state = resource.update(db, state, checked, print)
    assert foreign_key(fresh_db) is None

    resource.delete(db, state, print)
    assert foreign_key(fresh_db) == (DEFINITION, True)


def test_delete_restores_not_valid_when_rows_violate_it(db: Database, fresh_db: str) -> None:
    resource = ConstraintRemoval()
    _, _, state = create(resource, db, dict(INPUTS))
    with psycopg.connect(fresh_db) as conn:
        conn.execute("insert into sessions (user_id) values (gen_random_uuid())")
    warnings: list[str] = []
    resource.delete(db, state, warnings.append)
    assert foreign_key(fresh_db) == (f"{DEFINITION} NOT VALID", False)
    assert len(warnings) == 1 and "NOT VALID: 1 existing row(s) violate it" in warnings[0]


def test_check_names_the_bad_input_and_skips_the_database_for_unchanged_inputs(db: Database) -> None:
    with pytest.raises(InputError, match=r"public\.nope does not exist") as raised:
        ConstraintRemoval().check(db, {}, {**INPUTS, "table": "nope"})
    assert raised.value.property == "table"
    checked = ConstraintRemoval().check(db, {}, dict(INPUTS))
    assert ConstraintRemoval().check(UnreachableDatabase(), checked, dict(INPUTS)) == checked
    assert ConstraintRemoval().diff(db, checked, {**checked, "constraint": "other"}).replaces == ["constraint"]
