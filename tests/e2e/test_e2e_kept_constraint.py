"""The owner profile keeps `sessions_user_id_fkey` present: a prod stack on a database whose FK was
dropped (the seed guide's 05 script) re-creates it, NOT VALID with a warning when rows violate it."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest
from pulumi import automation as auto

from tests.support.engine import changes, new_stack

pytestmark = pytest.mark.e2e

OWNER = {"supabase-access:environment": "prod", "supabase-access:profile": "owner"}
GUIDE_SCRIPT = Path(__file__).resolve().parents[2] / "database" / "05-remove-user-fkey-constraint.sql"


def user_fkey(dsn: str) -> tuple[bool, str] | None:
    """(validated, definition) of sessions_user_id_fkey, or None when it is missing."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select convalidated, pg_get_constraintdef(oid) from pg_constraint where conname = 'sessions_user_id_fkey'"
        ).fetchone()
    return None if row is None else (bool(row[0]), str(row[1]))


def drop_as_the_guide_does(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(GUIDE_SCRIPT.read_text())


def session_count(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("select count(*) from sessions").fetchone()
    return int(row[0]) if row else 0


def test_a_dropped_fk_with_no_orphans_comes_back_validated(tmp_path: Path, fresh_db: str) -> None:
    drop_as_the_guide_does(fresh_db)
    user = uuid.uuid4()
    with psycopg.connect(fresh_db) as conn:
        conn.execute("insert into auth.users (id) values (%s)", (user,))
        conn.execute("insert into sessions (user_id) values (%s)", (user,))
    stack = new_stack(tmp_path / "local-prod", "local-prod", fresh_db, OWNER)
    assert "sessions-sessions_user_id_fkey-presence" in stack.preview().stdout
    up = stack.up()
    assert "re-created sessions_user_id_fkey on public.sessions: every row satisfies it (validated)" in up.stdout
    assert user_fkey(fresh_db) == (
        True,
        "FOREIGN KEY (user_id) REFERENCES auth.users(id) ON DELETE CASCADE",
    )
    assert changes(stack.preview().change_summary) == {}
    # Dropped again by hand: drift, repaired by the next up.
    drop_as_the_guide_does(fresh_db)
    assert changes(stack.preview().change_summary) == {"update": 1}
    stack.up()
    assert user_fkey(fresh_db) is not None
    # Destroy leaves the FK: it only protects data.
    stack.destroy()
    assert user_fkey(fresh_db) == (True, "FOREIGN KEY (user_id) REFERENCES auth.users(id) ON DELETE CASCADE")


def test_orphans_keep_their_rows_and_the_fk_comes_back_not_valid_until_fixed(tmp_path: Path, fresh_db: str) -> None:
    drop_as_the_guide_does(fresh_db)
    invented = [uuid.uuid4(), uuid.uuid4()]  # ids a client made up under the open profile
    with psycopg.connect(fresh_db) as conn:
        for user in invented:
            conn.execute("insert into sessions (user_id) values (%s)", (user,))
    stack = new_stack(tmp_path / "local-prod", "local-prod", fresh_db, OWNER)
    up = stack.up()
    text = " ".join(up.stdout.split())
    assert (
        "re-created sessions_user_id_fkey on public.sessions as NOT VALID: 2 existing row(s) violate it and were "
        'kept. New rows are checked. Once those rows are fixed, run: alter table "public"."sessions" validate '
        'constraint "sessions_user_id_fkey";'
    ) in text
    assert session_count(fresh_db) == 2  # no row deleted
    assert user_fkey(fresh_db) == (False, "FOREIGN KEY (user_id) REFERENCES auth.users(id) ON DELETE CASCADE NOT VALID")
    with psycopg.connect(fresh_db) as conn, pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute("insert into sessions (user_id) values (%s)", (uuid.uuid4(),))  # new rows are checked
    # Still violated: nothing to do, nothing said.
    assert changes(stack.preview().change_summary) == {}
    # The rows fixed (their users exist now): the next up validates the constraint.
    with psycopg.connect(fresh_db) as conn:
        for user in invented:
            conn.execute("insert into auth.users (id) values (%s)", (user,))
    assert changes(stack.preview().change_summary) == {"update": 1}
    stack.up()
    assert user_fkey(fresh_db) == (True, "FOREIGN KEY (user_id) REFERENCES auth.users(id) ON DELETE CASCADE")
    assert changes(stack.preview().change_summary) == {}


def test_switching_a_database_from_open_to_owner_restores_the_fk_it_removed(tmp_path: Path, fresh_db: str) -> None:
    stack = new_stack(tmp_path / "local", "local", fresh_db, {"supabase-access:environment": "dev"})
    stack.up()
    assert user_fkey(fresh_db) is None
    stack.set_config("supabase-access:environment", auto.ConfigValue("prod"))
    stack.up()
    assert user_fkey(fresh_db) == (True, "FOREIGN KEY (user_id) REFERENCES auth.users(id) ON DELETE CASCADE")
    stack.destroy()
    assert user_fkey(fresh_db) is not None
