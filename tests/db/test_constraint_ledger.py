"""ConstraintRemoval keeps what it dropped in the ledger, in the dropping transaction: a run that
died before the engine recorded the drop blocks nothing, and destroy still restores the key."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from supabase_access.provider.resources.constraint_removal import ConstraintRemoval
from supabase_access.sql.database import Database

pytestmark = pytest.mark.db

FKEY = {"schema": "public", "table": "sessions", "constraint": "sessions_user_id_fkey"}
DEFINITION = "FOREIGN KEY (user_id) REFERENCES auth.users(id) ON DELETE CASCADE"


def foreign_key(dsn: str) -> str | None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select pg_get_constraintdef(oid) from pg_constraint where conname = 'sessions_user_id_fkey'"
        ).fetchone()
    return None if row is None else str(row[0])


def private_schema(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [
            r[0]
            for r in conn.execute(
                "select relname from pg_class where relnamespace = "
                "(select oid from pg_namespace where nspname = 'supabase_access')"
            )
        ]


def create(db: Database, log: Any = print) -> dict[str, Any]:
    resource = ConstraintRemoval()
    _, outputs = resource.create(db, resource.check(db, {}, dict(FKEY)), log)
    return outputs


def test_a_drop_the_engine_never_recorded_is_taken_over_and_restored(db: Database, fresh_db: str) -> None:
    assert foreign_key(fresh_db) == DEFINITION
    create(db)  # the CLI dies here: the engine never records these outputs
    assert foreign_key(fresh_db) is None
    warnings: list[str] = []
    outputs = create(db, warnings.append)  # the next `up` creates the resource again, and passes
    assert outputs["definition"] == DEFINITION and outputs["referencedTable"] == "auth.users"
    assert warnings == []
    ConstraintRemoval().delete(db, outputs, print)
    assert foreign_key(fresh_db) == DEFINITION
    assert private_schema(fresh_db) == []  # the ledger (and its schema) went with its last row


def test_destroy_restores_from_the_ledger_when_state_lost_the_definition(db: Database, fresh_db: str) -> None:
    create(db)
    ConstraintRemoval().delete(db, {**FKEY, "present": False}, print)
    assert foreign_key(fresh_db) == DEFINITION


def test_the_ledger_is_not_for_the_api_roles(db: Database, fresh_db: str) -> None:
    create(db)
    with psycopg.connect(fresh_db) as conn:
        rows = conn.execute(
            "select r, has_table_privilege(r, 'supabase_access.ledger', 'select'), "
            "has_schema_privilege(r, 'supabase_access', 'usage') from unnest(array['anon', 'authenticated']) r"
        ).fetchall()
    assert rows == [("anon", False, False), ("authenticated", False, False)]


def test_a_key_dropped_by_hand_warns_instead_of_blocking(db: Database, fresh_db: str) -> None:
    with psycopg.connect(fresh_db) as conn:
        conn.execute("alter table sessions drop constraint sessions_user_id_fkey")
    warnings: list[str] = []
    outputs = create(db, warnings.append)
    assert warnings == [
        "sessions_user_id_fkey was already gone from public.sessions and not removed by supabase-access, "
        "so its definition is unknown: destroy cannot restore it"
    ]
    warnings.clear()
    ConstraintRemoval().delete(db, outputs, warnings.append)
    assert warnings == ["cannot restore sessions_user_id_fkey on public.sessions: its definition was never known"]
    assert foreign_key(fresh_db) is None
