"""ConstraintPresence on a real database: a dropped foreign key re-created (validated, or NOT VALID with
a warning when rows violate it), validated once the rows are fixed, and left in place by delete."""

from __future__ import annotations

import psycopg
import pytest

from supabase_access.provider.base import InputError
from supabase_access.provider.resources.constraint_presence import ConstraintPresence
from supabase_access.sql.database import Database
from tests.support.resources import UnreachableDatabase, create, read

pytestmark = pytest.mark.db

INPUTS = {"schema": "public", "table": "sessions", "constraint": "sessions_user_id_fkey", "columns": ["user_id"]}
DEFINITION = "FOREIGN KEY (user_id) REFERENCES auth.users(id) ON DELETE CASCADE"


def foreign_key(dsn: str) -> tuple[str, bool] | None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select pg_get_constraintdef(oid), convalidated from pg_constraint where conname = 'sessions_user_id_fkey'"
        ).fetchone()
    return None if row is None else (str(row[0]), bool(row[1]))


def test_present_key_is_kept_and_delete_leaves_it(db: Database, fresh_db: str) -> None:
    resource = ConstraintPresence()
    resource_id, checked, state = create(resource, db, dict(INPUTS))
    assert resource_id == "public.sessions.sessions_user_id_fkey"
    assert checked["referencedTable"] == "auth.users" and checked["onDelete"] == "cascade"
    assert (state["present"], state["validated"], state["definition"]) == (True, True, DEFINITION)
    assert resource.diff(db, state, checked).has_changes is False
    found = read(resource, db, resource_id, state, checked)
    assert found is not None and found[0]["present"] is True
    resource.delete(db, state, print)
    assert foreign_key(fresh_db) == (DEFINITION, True)


def test_a_dropped_key_with_violating_rows_comes_back_not_valid_then_validated(db: Database, fresh_db: str) -> None:
    resource = ConstraintPresence()
    _, checked, state = create(resource, db, dict(INPUTS))
    with psycopg.connect(fresh_db) as conn:
        conn.execute("alter table sessions drop constraint sessions_user_id_fkey")
        conn.execute("insert into sessions (id, user_id) values (gen_random_uuid(), gen_random_uuid())")
    assert resource.diff(db, state, checked).changes == {"present": "update"}
    warnings: list[str] = []
    state = resource.update(db, state, checked, warnings.append)
    assert foreign_key(fresh_db) == (f"{DEFINITION} NOT VALID", False)
    assert len(warnings) == 1 and "1 existing row(s) violate it" in warnings[0]
    with psycopg.connect(fresh_db) as conn:
        conn.execute("delete from sessions where user_id not in (select id from auth.users)")
    assert resource.diff(db, state, checked).changes == {"validated": "update"}
    state = resource.update(db, state, checked, print)
    assert foreign_key(fresh_db) == (f"{DEFINITION} NOT VALID", True) or foreign_key(fresh_db) == (DEFINITION, True)
    assert resource.diff(db, state, checked).has_changes is False


def test_check_names_the_bad_input_and_skips_the_database_for_unchanged_inputs(db: Database) -> None:
    with pytest.raises(InputError, match="onDelete") as raised:
        ConstraintPresence().check(db, {}, {**INPUTS, "onDelete": "explode"})
    assert raised.value.property == "onDelete"
    with pytest.raises(InputError, match="referencedTable") as raised:
        ConstraintPresence().check(db, {}, {**INPUTS, "referencedTable": "auth.nope"})
    assert raised.value.property == "referencedTable"
    checked = ConstraintPresence().check(db, {}, dict(INPUTS))
    assert ConstraintPresence().check(UnreachableDatabase(), checked, dict(INPUTS)) == checked
