"""The access matrix against real databases: the baseline, the open profile's SQL, another app's schema.

Each test runs on a fresh copy of the local Supabase-like database (fixture `fresh_db`); the
matrix probes as PostgREST does, through `authenticator`, never as the tables' owner.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg.errors import InsufficientPrivilege

from review.matrix import (
    AccessMatrix,
    compute_matrix,
    diff,
    matrix_from_rule,
)
from review.postgrest import Persona, as_persona, connect_as_authenticator
from supabase_access.model.access_model import AccessModel, load_model_file, parse_model
from supabase_access.model.profiles import plan_access
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from tests.support.expectations import owner_access
from tests.support.localdb import legacy_platform

REPO = Path(__file__).resolve().parents[2]
MODEL = load_model_file(REPO / "access-model.yaml", setting="access-model.yaml")


def assert_matrix(actual: AccessMatrix, expected: AccessMatrix) -> None:
    # The changed-cell lines say exactly which cells differ.
    assert diff(expected, actual) == []
    assert actual.notes == ()


def fixture_leftovers(dsn: str) -> tuple[int, ...]:
    """Row counts of the model's tables and auth.users."""
    with psycopg.connect(dsn) as conn:
        return tuple(
            conn.execute(f"select count(*) from {table}").fetchone()[0]  # type: ignore[index]
            for table in (*MODEL.table_names, "auth.users")
        )


@pytest.mark.db
@legacy_platform
def test_baseline_gives_each_user_their_own_rows_and_anon_nothing(fresh_db: str) -> None:
    before = fixture_leftovers(fresh_db)
    matrix = compute_matrix(fresh_db, MODEL)
    assert_matrix(matrix, matrix_from_rule(MODEL.table_names, owner_access))
    assert fixture_leftovers(fresh_db) == before  # the fixture rows are gone again


@pytest.mark.db
def test_open_profile_sql_opens_every_row_to_everyone(fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        for script in ("04-allow-anonymous-users.sql", "05-remove-user-fkey-constraint.sql"):
            conn.execute((REPO / "database" / script).read_text())
    matrix = compute_matrix(fresh_db, MODEL)
    assert_matrix(matrix, matrix_from_rule(MODEL.table_names, lambda cell: True))
    assert fixture_leftovers(fresh_db) == (0,) * (len(MODEL.table_names) + 1)


OTHER_APP_SCHEMA = """
set role postgres;
create type project_kind as enum ('internal', 'client');
create table projects (
  id bigint generated always as identity primary key,
  owner uuid not null references auth.users on delete cascade,
  name varchar(20) not null,
  kind project_kind not null,
  budget numeric(10, 2) not null,
  tags text[] not null,
  settings jsonb not null,
  due date not null
);
create table tasks (
  project_id bigint not null references projects on delete cascade,
  position smallint not null,
  done boolean not null,
  primary key (project_id, position)
);
alter table projects enable row level security;
alter table tasks enable row level security;
create policy projects_own on projects for all to authenticated
  using (owner = (select auth.uid())) with check (owner = (select auth.uid()));
create policy tasks_own on tasks for all to authenticated
  using (project_id in (select id from projects where owner = (select auth.uid())))
  with check (project_id in (select id from projects where owner = (select auth.uid())));
reset role;
"""


@pytest.mark.db
@legacy_platform
def test_other_apps_schema_is_filled_from_the_catalog(fresh_db: str) -> None:
    model: AccessModel = parse_model(
        {
            "tables": {
                "projects": {"owner": "owner"},
                "tasks": {"through": {"column": "project_id", "table": "projects"}},
            }
        },
        setting="test model",
    )
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(OTHER_APP_SCHEMA)
    matrix = compute_matrix(fresh_db, model)
    assert_matrix(matrix, matrix_from_rule(model.table_names, owner_access))
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("select count(*) from projects").fetchone() == (0,)


@pytest.mark.db
@legacy_platform
def test_copied_owner_column_keeps_each_user_to_their_own_rows(fresh_db: str) -> None:
    """actions carries its owner (owner + through): reads use the column, writes also need an owned turn."""
    raw = yaml.safe_load((REPO / "access-model.yaml").read_text())
    raw["tables"]["actions"]["owner"] = "user_id"
    model = parse_model(raw, setting="test model")
    policies = render.plan_policies(plan_access(model, "owner"))
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("alter table actions add column user_id uuid not null references auth.users on delete cascade")
        with conn.transaction():
            for table, specs in policies.items():
                catalog.replace_policies(conn, model.schema, table, specs)
    assert_matrix(compute_matrix(fresh_db, model), matrix_from_rule(model.table_names, owner_access))

    me, other = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        for user in (me, other):
            conn.execute("insert into auth.users (id, is_anonymous) values (%s, true)", (user,))
        turns = {}
        for user in (me, other):
            row = conn.execute(
                "with s as (insert into sessions (user_id) values (%s) returning id)"
                " insert into turns (session_id, speaker, content) select id, 'user', 'hi' from s returning id",
                (user,),
            ).fetchone()
            assert row is not None
            turns[user] = row[0]
    insert = "insert into actions (turn_id, user_id, kind) values (%s, %s, 'click')"
    with connect_as_authenticator(fresh_db) as conn:
        with as_persona(conn, Persona.signed_in(me, is_anonymous=True)) as cur:
            cur.execute(insert, (turns[me], me))
            assert cur.rowcount == 1
        for turn, owner in ((turns[other], me), (turns[me], other)):
            with pytest.raises(InsufficientPrivilege, match="row-level security"):
                with as_persona(conn, Persona.signed_in(me, is_anonymous=True)) as cur:
                    cur.execute(insert, (turn, owner))


# An app whose rows are stamped by defaults: the creator from the JWT (`default auth.uid()`), a
# generated column, a composite key whose second column defaults to a constant, a CHECK the probes
# cannot all meet.
DEFAULTED_SCHEMA = """
set role postgres;
create table boards (
  id uuid primary key default gen_random_uuid(),
  owner_id uuid not null references auth.users on delete cascade,
  created_by uuid not null default auth.uid() references auth.users on delete cascade,
  title text not null,
  slug text generated always as (lower(title)) stored,
  created_at timestamptz not null default now()
);
create table board_cards (
  board_id uuid not null references boards on delete cascade,
  position integer not null default 0,
  body text not null,
  primary key (board_id, position)
);
alter table boards enable row level security;
alter table board_cards enable row level security;
create policy boards_own on boards for all to authenticated
  using (owner_id = (select auth.uid())) with check (owner_id = (select auth.uid()));
create policy cards_own on board_cards for all to authenticated
  using (board_id in (select id from boards where owner_id = (select auth.uid())))
  with check (board_id in (select id from boards where owner_id = (select auth.uid())));
reset role;
"""
DEFAULTED_MODEL = parse_model(
    {
        "tables": {
            "boards": {"owner": "owner_id"},
            "board_cards": {"through": {"column": "board_id", "table": "boards"}},
        }
    },
    setting="test model",
)


@pytest.mark.db
@legacy_platform
def test_defaults_from_the_jwt_generated_columns_and_composite_keys(fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(DEFAULTED_SCHEMA)
    matrix = compute_matrix(fresh_db, DEFAULTED_MODEL)
    # No crash on `created_by` (the fixture rows are written with their owner's claims), no insert
    # cell lost to the composite key's constant default, and nothing failed.
    assert matrix.failed == {}
    assert_matrix(matrix, matrix_from_rule(DEFAULTED_MODEL.table_names, owner_access))
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("select count(*) from boards").fetchone() == (0,)


@pytest.mark.db
@legacy_platform
def test_a_probe_that_fails_for_another_reason_is_neither_allowed_nor_denied(fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(DEFAULTED_SCHEMA)
        # A CHECK that refuses every card sent through the API (PostgREST sets request.method), not the
        # fixture's: PostgreSQL checks it after the privileges and the policy.
        conn.execute(
            "alter table board_cards add constraint no_api_cards"
            " check (coalesce(current_setting('request.method', true), '') <> 'POST')"
        )
    matrix = compute_matrix(fresh_db, DEFAULTED_MODEL)
    insert_cells = {cell for cell in matrix.cells() if cell.table == "board_cards" and cell.operation == "insert"}
    # Refused by the privileges or the policy first (anon, other users' boards): still ✗.
    refused = {cell for cell in insert_cells if not owner_access(cell)}
    assert {cell for cell in insert_cells if matrix.state(cell) == "denied"} == refused
    failed = insert_cells - refused
    assert set(matrix.failed) == failed and failed
    assert all("CheckViolation" in matrix.failed[cell] for cell in failed)
    text = matrix.render_text()
    assert "!" in text and "! probe failed" in text
    assert any(note.startswith("! service_role · board_cards · insert own: CheckViolation:") for note in matrix.notes)


# A profile table keyed by its owner (one row per user, the key defaulted to auth.uid()) and a
# server-only table whose every column has a default or may be null.
ONE_ROW_PER_USER_SCHEMA = """
set role postgres;
create table profiles (
  user_id uuid primary key default auth.uid() references auth.users on delete cascade,
  display_name text
);
create table scratch_notes (
  id bigint generated by default as identity primary key,
  body text,
  created_at timestamptz default now()
);
alter table profiles enable row level security;
alter table scratch_notes enable row level security;
create policy profiles_own on profiles for all to authenticated
  using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
grant select, insert, update, delete on profiles to authenticated;
grant select, insert, update, delete on profiles, scratch_notes to service_role;
grant usage on sequence scratch_notes_id_seq to service_role;
reset role;
"""


@pytest.mark.db
def test_one_row_per_user_tables_and_tables_without_a_required_column(fresh_db: str) -> None:
    model = parse_model(
        {"tables": {"profiles": {"owner": "user_id"}, "scratch_notes": {"serviceOnly": True}}},
        setting="test model",
    )
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(ONE_ROW_PER_USER_SCHEMA)
    matrix = compute_matrix(fresh_db, model)
    # No `values ()` crash, and inserting one's own profile is allowed although the fixture's
    # profile already holds the key: nothing failed.
    assert matrix.failed == {}
    for cell in matrix.cells():
        expected = owner_access(cell) if cell.table == "profiles" else cell.persona == "service_role"
        assert matrix.state(cell) == ("allowed" if expected else "denied"), cell
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("select count(*) from profiles").fetchone() == (0,)
        assert conn.execute("select count(*) from scratch_notes").fetchone() == (0,)
