"""Indexes for the owner policies' lookups on a real database: the SQL that finds a serving index
(the app's own first), and the PolicyIndex resource (which lookups a plan needs:
tests/unit/test_policy_lookups.py)."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from supabase_access.model.access_model import load_model_file
from supabase_access.provider.base import CURRENT_STACK, InputError
from supabase_access.provider.resources.policy_index import LookupIndex, PolicyIndex, find_serving_index
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from supabase_access.sql.errors import CatalogError
from tests.support.paths import REPO

MODEL = load_model_file(REPO / "access-model.yaml", setting="supabase-access:modelFile")
OURS = "turns_session_id_id_rls_idx"
APP_INDEX = "turns_session_id_idx"  # database/01-app-schema.sql: the reference app's own index
TURNS_LOOKUP = {"schema": "public", "table": "turns", "column": "session_id", "include": "id"}
messages: list[str] = []


def log(message: str) -> None:
    messages.append(message)


# --- the finder on a real database --------------------------------------------------------------


def serving(dsn: str, table: str = "turns", column: str = "session_id", include: str = "id") -> LookupIndex | None:
    with psycopg.connect(dsn) as conn:
        return find_serving_index(conn, "public", table, column, include)


def run(dsn: str, *statements: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def add_duplicate_turns(dsn: str) -> None:
    """Two turns of one session, so a unique index on turns (session_id) fails to build."""
    user_id = uuid.uuid4()
    with psycopg.connect(dsn) as conn:
        conn.execute("insert into auth.users (id) values (%s)", (user_id,))
        (session_id,) = conn.execute(
            "insert into sessions (user_id) values (%s) returning id", (user_id,)
        ).fetchone() or (None,)
        conn.execute("insert into turns (session_id, speaker) values (%s, 'a'), (%s, 'b')", (session_id, session_id))


def add_invalid_index(dsn: str, name: str, *, marked: bool) -> None:
    add_duplicate_turns(dsn)
    with pytest.raises(psycopg.errors.UniqueViolation):
        run(dsn, f"create unique index concurrently {name} on turns (session_id) include (id)")
    if marked:
        run(dsn, f"comment on index {name} is '{render.POLICY_INDEX_MARKER}'")
    with psycopg.connect(dsn) as conn:
        assert conn.execute(catalog.index_state_query(), ("public", name)).fetchone() == (
            False,
            render.POLICY_INDEX_MARKER if marked else None,
        )


@pytest.mark.db
def test_the_apps_plain_indexes_serve_the_lookups(fresh_db: str) -> None:
    assert serving(fresh_db) == (APP_INDEX, False, False)
    assert serving(fresh_db, "sessions", "user_id", "id") == ("sessions_user_id_idx", False, False)


@pytest.mark.db
@pytest.mark.parametrize(
    "definition",
    ["(session_id, id)", "(session_id) include (id)", "(session_id, created_at) include (speaker, id)"],
)
def test_an_index_leading_with_the_column_and_holding_the_key_serves_first(fresh_db: str, definition: str) -> None:
    run(fresh_db, f"create index users_own on turns {definition}")
    assert serving(fresh_db) == ("users_own", False, True)


@pytest.mark.db
@pytest.mark.parametrize("definition", ["(session_id) include (speaker)", "(session_id, created_at)"])
def test_an_index_leading_with_the_column_serves_without_the_key(fresh_db: str, definition: str) -> None:
    run(fresh_db, f"drop index {APP_INDEX}", f"create index users_own on turns {definition}")
    assert serving(fresh_db) == ("users_own", False, False)


@pytest.mark.db
@pytest.mark.parametrize(
    "definition",
    [
        "(id, session_id)",  # the searched column is not first
        "(session_id) include (id) where speaker = 'a'",  # partial
        "((session_id::text), id)",  # an expression
        "using hash (session_id)",  # not a b-tree
    ],
)
def test_an_index_that_cannot_answer_the_lookup_does_not_serve(fresh_db: str, definition: str) -> None:
    run(fresh_db, f"drop index {APP_INDEX}", f"create index not_serving on turns {definition}")
    assert serving(fresh_db) is None


@pytest.mark.db
def test_an_invalid_index_does_not_serve(fresh_db: str) -> None:
    run(fresh_db, f"drop index {APP_INDEX}")
    add_invalid_index(fresh_db, "broken", marked=False)
    assert serving(fresh_db) is None


@pytest.mark.db
def test_our_index_is_preferred_and_recognised_by_its_marker(fresh_db: str) -> None:
    run(
        fresh_db,
        "create index a_users_own on turns (session_id, id)",
        render.create_policy_index("public", "turns", OURS, "session_id", "id").as_string(),
        render.mark_policy_index("public", OURS).as_string(),
    )
    assert serving(fresh_db) == (OURS, True, True)


# --- the PolicyIndex resource -------------------------------------------------------------------


def indexes(dsn: str, table: str = "turns") -> dict[str, str | None]:
    """Index name -> comment, of a table."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select indexname, obj_description(format('%%I.%%I', schemaname, indexname)::regclass, 'pg_class') "
            "from pg_indexes where schemaname = 'public' and tablename = %s",
            (table,),
        ).fetchall()
    return dict(rows)


@pytest.fixture
def db(db: Database, fresh_db: str) -> Database:
    """The resource on turns without the app's own index, so it builds one (reuse: the tests below)."""
    run(fresh_db, f"drop index {APP_INDEX}")
    return db


def create(db: Database, inputs: dict[str, Any] = TURNS_LOOKUP) -> dict[str, Any]:
    resource = PolicyIndex()
    resource_id, outputs = resource.create(db, resource.check(db, {}, dict(inputs)), log)
    assert resource_id == "public.turns.session_id.id"
    return outputs


@pytest.mark.db
def test_create_builds_ours_a_second_create_adopts_it_and_only_the_builder_drops_it(
    db: Database, fresh_db: str
) -> None:
    messages.clear()
    first = create(db)
    assert first == {**TURNS_LOOKUP, "index": OURS, "created": True}
    assert indexes(fresh_db)[OURS] == render.POLICY_INDEX_MARKER
    assert messages == [
        f"created index public.{OURS} on public.turns (session_id) include (id) for RLS policy lookups; "
        "destroy drops it"
    ]
    assert PolicyIndex().diff(db, first, dict(TURNS_LOOKUP)).has_changes is False

    token = CURRENT_STACK.set("another-stack")
    try:
        second = create(db)  # another stack on the same database: it uses ours, never drops it
    finally:
        CURRENT_STACK.reset(token)
    assert second == {**TURNS_LOOKUP, "index": OURS, "created": False}
    PolicyIndex().delete(db, second, log)
    assert OURS in indexes(fresh_db)
    PolicyIndex().delete(db, first, log)
    assert OURS not in indexes(fresh_db)


@pytest.mark.db
@pytest.mark.parametrize(("definition", "covers"), [("(session_id)", False), ("(session_id) include (id)", True)])
def test_the_apps_own_index_is_used_said_so_and_kept(
    db: Database, fresh_db: str, definition: str, covers: bool
) -> None:
    run(fresh_db, f"create index {APP_INDEX} on turns {definition}")
    messages.clear()
    outputs = create(db)
    assert outputs == {**TURNS_LOOKUP, "index": APP_INDEX, "created": False}
    assert OURS not in indexes(fresh_db)
    (said,) = messages
    assert said.startswith(f"using the app's index public.{APP_INDEX} on public.turns (session_id) for RLS policy")
    assert ("give that index `include (id)`" in said) is not covers
    assert PolicyIndex().diff(db, outputs, dict(TURNS_LOOKUP)).has_changes is False
    PolicyIndex().delete(db, {**outputs, "created": True}, log)  # no marker of ours: never dropped
    assert APP_INDEX in indexes(fresh_db)


@pytest.mark.db
def test_a_rerun_of_the_building_stack_knows_the_index_as_its_own(db: Database, fresh_db: str) -> None:
    create(db)  # built and marked, then the CLI died before the engine recorded it
    again = create(db)
    assert again == {**TURNS_LOOKUP, "index": OURS, "created": True}
    PolicyIndex().delete(db, again, log)
    assert OURS not in indexes(fresh_db)


@pytest.mark.db
def test_a_users_serving_index_is_used_and_never_dropped(db: Database, fresh_db: str) -> None:
    run(fresh_db, "create index turns_by_session on turns (session_id, id)")
    outputs = create(db)
    assert outputs["index"] == "turns_by_session" and outputs["created"] is False
    assert OURS not in indexes(fresh_db)
    PolicyIndex().delete(db, outputs, log)
    # Even a state that claims to have built it: the index carries no marker of ours.
    PolicyIndex().delete(db, {**outputs, "created": True}, log)
    assert "turns_by_session" in indexes(fresh_db)


@pytest.mark.db
def test_an_index_of_ours_someone_took_over_is_not_dropped(db: Database, fresh_db: str) -> None:
    outputs = create(db)
    run(fresh_db, f"comment on index {OURS} is 'ours now, the reporting team'")
    PolicyIndex().delete(db, outputs, log)
    assert OURS in indexes(fresh_db)


@pytest.mark.db
def test_an_index_dropped_by_hand_is_drift_that_update_repairs(db: Database, fresh_db: str) -> None:
    resource = PolicyIndex()
    outputs = create(db)
    run(fresh_db, f"drop index {OURS}")
    assert resource.diff(db, outputs, dict(TURNS_LOOKUP)).changes == {"index": "update"}
    assert resource.read(db, "public.turns.session_id.id", outputs, dict(TURNS_LOOKUP)) is None
    updated = resource.update(db, outputs, dict(TURNS_LOOKUP), log)
    assert updated["created"] is True and indexes(fresh_db)[OURS] == render.POLICY_INDEX_MARKER
    assert resource.diff(db, updated, dict(TURNS_LOOKUP)).has_changes is False


@pytest.mark.db
def test_an_invalid_leftover_of_ours_is_rebuilt(db: Database, fresh_db: str) -> None:
    add_invalid_index(fresh_db, OURS, marked=True)
    outputs = create(db)
    assert outputs["created"] is True
    assert serving(fresh_db) == (OURS, True, True)


BUILD = "turns_session_id_id_rls_build"


@pytest.mark.db
def test_an_interrupted_build_under_our_build_name_is_rebuilt(db: Database, fresh_db: str) -> None:
    # What a run killed mid `create index concurrently` leaves: an invalid index, unmarked.
    add_invalid_index(fresh_db, BUILD, marked=False)
    assert PolicyIndex().diff(db, {**TURNS_LOOKUP, "index": OURS, "created": True}, dict(TURNS_LOOKUP)).changes == {
        "index": "update"
    }
    run(fresh_db, "delete from turns")  # the duplicates that made it fail
    outputs = create(db)
    assert outputs["created"] is True
    assert serving(fresh_db) == (OURS, True, True)
    assert BUILD not in indexes(fresh_db)


@pytest.mark.db
def test_a_build_a_killed_run_finished_is_named_marked_and_ours(db: Database, fresh_db: str) -> None:
    # The CLI died, the backend finished the build: valid, unmarked, under our build name.
    run(fresh_db, f"create index {BUILD} on turns (session_id) include (id)")
    messages.clear()
    outputs = create(db)
    assert outputs == {**TURNS_LOOKUP, "index": OURS, "created": True}
    assert indexes(fresh_db)[OURS] == render.POLICY_INDEX_MARKER and BUILD not in indexes(fresh_db)
    assert messages == [
        f"finished index public.{OURS} on public.turns (session_id) include (id), which an interrupted run had built"
    ]
    PolicyIndex().delete(db, outputs, log)
    assert OURS not in indexes(fresh_db)


@pytest.mark.db
def test_delete_drops_a_leftover_build_too(db: Database, fresh_db: str) -> None:
    outputs = create(db)
    add_invalid_index(fresh_db, BUILD, marked=False)
    PolicyIndex().delete(db, outputs, log)
    assert OURS not in indexes(fresh_db) and BUILD not in indexes(fresh_db)


@pytest.mark.db
def test_our_build_name_on_another_table_is_not_touched(db: Database, fresh_db: str) -> None:
    run(fresh_db, f"create index {BUILD} on sessions (user_id)")
    with pytest.raises(CatalogError, match="exists on sessions and was not created by supabase-access"):
        create(db)
    assert BUILD in indexes(fresh_db, "sessions")


@pytest.mark.db
def test_a_foreign_relation_with_our_name_is_not_touched(db: Database, fresh_db: str) -> None:
    add_invalid_index(fresh_db, OURS, marked=False)
    with pytest.raises(CatalogError, match="was not created by supabase-access"):
        create(db)
    assert indexes(fresh_db)[OURS] is None


@pytest.mark.db
def test_read_reports_the_serving_index_for_refresh_and_import(db: Database, fresh_db: str) -> None:
    resource = PolicyIndex()
    outputs = create(db)
    assert resource.read(db, "public.turns.session_id.id", outputs, dict(TURNS_LOOKUP)) == (
        outputs,
        dict(TURNS_LOOKUP),
    )
    # Import: no state; the index carries our marker, so it counts as ours.
    assert resource.read(db, "public.turns.session_id.id", {}, {}) == (outputs, TURNS_LOOKUP)
    with pytest.raises(InputError, match="expected an id like"):
        resource.read(db, "turns.session_id", {}, {})


@pytest.mark.db
@pytest.mark.parametrize(
    ("change", "property", "message"),
    [
        ({"table": "nope"}, "table", "table: public.nope does not exist in the database"),
        ({"column": "nope"}, "column", "column: public.turns has no column nope"),
        ({"include": "nope"}, "include", "include: public.turns has no column nope"),
        ({"include": 'id"; drop'}, "include", "not a valid identifier"),
        ({"include": "session_id"}, "include", "the searched column itself"),
    ],
)
def test_check_names_the_bad_input(db: Database, change: dict[str, Any], property: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        PolicyIndex().check(db, {}, {**TURNS_LOOKUP, **change})
    assert info.value.property == property
