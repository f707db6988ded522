"""The OwnerCopy resource on a real database: the fill, the triggers (requests made as PostgREST
makes them), re-parenting, an interrupted create finished, and destroy leaving the catalog as it was."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from review.postgrest import Persona, as_persona, connect_as_authenticator
from supabase_access.model.owner_copy import OwnerCopyNames, marked_by
from supabase_access.model.profiles import plan_access
from supabase_access.provider import ledger
from supabase_access.provider.base import CURRENT_STACK, InputError
from supabase_access.provider.resources.owner_copy import LEDGER_KIND, OwnerCopy, _install
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from tests.support import resources
from tests.support.fault import catalog_snapshot
from tests.support.localdb import legacy_platform
from tests.support.owner_copy import check_warnings_around, copy_counts, copy_model
from tests.support.resources import UnreachableDatabase

pytestmark = pytest.mark.db

# --- on a real database ---------------------------------------------------------------------------

STACK = "oc-test"
PATH = [
    {"table": "actions", "column": "turn_id", "parent": "turns", "key": "id"},
    {"table": "turns", "column": "session_id", "parent": "sessions", "key": "id"},
]
INPUTS: dict[str, Any] = {
    "schema": "public",
    "table": "actions",
    "column": "user_id",
    "path": PATH,
    "rootColumn": "user_id",
    "batchSize": 7,
}
messages: list[str] = []


def log(message: str) -> None:
    messages.append(message)


@pytest.fixture
def stack() -> Iterator[None]:
    token = CURRENT_STACK.set(STACK)
    messages.clear()
    yield
    CURRENT_STACK.reset(token)


def add_rows(dsn: str, users: int = 2, sessions: int = 2, turns: int = 3, actions: int = 4) -> list[uuid.UUID]:
    """Users, each with sessions, turns and actions (written as the table owner, as data already there)."""
    ids = [uuid.uuid4() for _ in range(users)]
    with psycopg.connect(dsn, autocommit=True) as conn:
        for user in ids:
            conn.execute("insert into auth.users (id) values (%s)", (user,))
            conn.execute(
                "with s as (insert into sessions (user_id) select %s from generate_series(1, %s) returning id), "
                "t as (insert into turns (session_id, speaker) select s.id, 'user' from s, generate_series(1, %s) "
                "returning id) insert into actions (turn_id, kind) select t.id, 'click' from t, generate_series(1, %s)",
                (user, sessions, turns, actions),
            )
    return ids


def copies(dsn: str) -> tuple[int, int, int]:
    """(actions, actions with a copy, actions whose copy is their session's owner)."""
    return copy_counts(
        dsn,
        "select count(*), count(a.user_id), count(*) filter (where a.user_id = s.user_id) from actions a "
        "join turns t on t.id = a.turn_id join sessions s on s.id = t.session_id",
    )


def apply_owner_profile(dsn: str) -> None:
    """RLS, grants and the owner policies for the copy model, as an owner stack applies them."""
    plan = plan_access(copy_model(), "owner")
    tables = [a.table for a in plan.tables]
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        for table in tables:
            conn.execute(render.set_row_level_security("public", table, enabled=True))
        conn.execute(render.revoke_all("anon", "public", tables))
        conn.execute(render.revoke_all("authenticated", "public", tables))
        conn.execute(render.grant("authenticated", "public", tables, ("SELECT", "INSERT", "UPDATE", "DELETE")))
        for table, specs in render.plan_policies(plan).items():
            catalog.replace_policies(conn, "public", table, specs)


def created(db: Database) -> dict[str, Any]:
    _, _, state = resources.create(OwnerCopy(), db, INPUTS, log)
    return state


def test_create_fills_existing_rows_in_batches_and_delete_restores_the_catalog(
    db: Database, fresh_db: str, stack: None
) -> None:
    add_rows(fresh_db)
    before = catalog_snapshot(fresh_db)
    outputs = created(db)
    assert copies(fresh_db) == (48, 48, 48)
    assert outputs["validated"] is True
    assert any("filled public.actions.user_id: 48 rows" in m for m in messages)
    after = catalog_snapshot(fresh_db)
    column = next(c for c in after["columns"] if c[1:3] == ("actions", "user_id"))
    assert column[3:5] == ("uuid", False) and marked_by(str(column[5])) == STACK
    constraints = {c[1]: c for c in after["constraints"] if c[0] == "actions"}
    assert constraints["actions_user_id_copy_check"][3] and constraints["actions_user_id_copy_fkey"][3]
    assert "ON DELETE CASCADE" in str(constraints["actions_user_id_copy_fkey"][2])
    index = next(i for i in after["indexes"] if i[0] == "actions_user_id_copy_idx")
    assert index[2] is True and marked_by(str(index[3])) == STACK
    with psycopg.connect(fresh_db) as conn:
        assert ledger.read(conn, LEDGER_KIND, "public.actions.user_id") == {"stack": STACK, "path": PATH}
    # Nothing left to do: the live database is what the inputs ask for.
    assert OwnerCopy().diff(db, outputs, OwnerCopy().check(db, outputs, INPUTS)).has_changes is False
    OwnerCopy().delete(db, outputs, log)
    assert catalog_snapshot(fresh_db) == before


@legacy_platform
def test_the_trigger_takes_the_owner_from_the_parent_never_from_the_client(
    db: Database, fresh_db: str, stack: None
) -> None:
    alice, bob = add_rows(fresh_db)
    created(db)
    apply_owner_profile(fresh_db)
    with psycopg.connect(fresh_db) as conn:
        alice_turn, bob_turn = (
            conn.execute(
                "select t.id from turns t join sessions s on s.id = t.session_id where s.user_id = %s limit 1", (u,)
            ).fetchone()[0]  # type: ignore[index]
            for u in (alice, bob)
        )
    insert = "insert into actions (turn_id, kind, user_id) values (%s, 'click', %s) returning user_id"
    with connect_as_authenticator(fresh_db) as api:
        # Alice claims Bob as the owner of a row under her own turn: the copy says Alice.
        with as_persona(api, Persona.signed_in(alice, is_anonymous=True)) as cur:
            assert cur.execute(insert, (alice_turn, bob)).fetchone() == (alice,)
        # Under Bob's turn, claiming herself: the copy says Bob, so her policy refuses the row.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with as_persona(api, Persona.signed_in(alice, is_anonymous=True)) as cur:
                cur.execute(insert, (bob_turn, alice))
        # Nor can she rewrite the copy of her own row to Bob's id: the trigger puts hers back.
        with as_persona(api, Persona.signed_in(alice, is_anonymous=True)) as cur:
            cur.execute("update actions set user_id = %s returning user_id", (bob,))
            assert {row[0] for row in cur.fetchall()} == {alice}
        # Bob sees none of Alice's actions, and the service role's forged value is corrected too.
        with as_persona(api, Persona.signed_in(bob, is_anonymous=False)) as cur:
            assert cur.execute("select count(*) from actions where user_id = %s", (alice,)).fetchone() == (0,)
        with as_persona(api, Persona.service()) as cur:
            assert cur.execute(insert, (alice_turn, bob)).fetchone() == (alice,)


def test_re_parenting_and_owner_changes_pass_down(db: Database, fresh_db: str, stack: None) -> None:
    alice, bob = add_rows(fresh_db)
    created(db)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        # An action moved to Bob's turn; a turn moved to Bob's session; a session given to Bob.
        bob_turn = conn.execute(
            "select t.id from turns t join sessions s on s.id = t.session_id where s.user_id = %s limit 1", (bob,)
        ).fetchone()
        conn.execute(
            "update actions set turn_id = %s where id = (select a.id from actions a join turns t on t.id = a.turn_id "
            "join sessions s on s.id = t.session_id where s.user_id = %s limit 1)",
            (bob_turn[0] if bob_turn else None, alice),
        )
        assert copies(fresh_db) == (48, 48, 48)
        conn.execute(
            "update turns set session_id = (select id from sessions where user_id = %s limit 1) "
            "where id = (select t.id from turns t join sessions s on s.id = t.session_id where s.user_id = %s limit 1)",
            (bob, alice),
        )
        assert copies(fresh_db) == (48, 48, 48)
        conn.execute("update sessions set user_id = %s where user_id = %s", (bob, alice))
        assert copies(fresh_db) == (48, 48, 48)
        assert conn.execute("select count(*) from actions where user_id = %s", (bob,)).fetchone() == (48,)
        # The copy's foreign key cascades: Bob's rows go with him.
        conn.execute("delete from auth.users where id = %s", (bob,))
    assert copies(fresh_db) == (0, 0, 0)


def test_an_interrupted_create_is_finished_by_the_next_one(db: Database, fresh_db: str, stack: None) -> None:
    add_rows(fresh_db)
    before = catalog_snapshot(fresh_db)
    resource = OwnerCopy()
    checked = resource.check(db, {}, INPUTS)
    names = OwnerCopyNames("public", "actions", "user_id", resource_hops(), "user_id")
    # A run killed after its first transaction (column, triggers, CHECK NOT VALID) and during its
    # index build (an invalid index left under our build name).
    _install(db, names, "supabase_access", None, log)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("create unique index concurrently actions_user_id_copy_build on actions (kind)")
    assert copies(fresh_db) == (48, 0, 0)
    assert set(resource.diff(db, checked, checked).changes) == {"checkConstraint", "foreignKey", "index"}
    _, outputs = resource.create(db, checked, log)
    assert copies(fresh_db) == (48, 48, 48)
    with psycopg.connect(fresh_db) as conn:
        indexes = {
            r[0]: r[1] for r in conn.execute(catalog.index_state_query(), ("public", "actions_user_id_copy_idx"))
        }
        assert conn.execute(catalog.index_state_query(), ("public", "actions_user_id_copy_build")).fetchone() is None
    assert list(indexes) == [True]
    resource.delete(db, outputs, log)
    assert catalog_snapshot(fresh_db) == before


def resource_hops() -> Any:
    (copy,) = plan_access(copy_model(), "owner").owner_copies
    return copy.hops


def test_a_column_of_the_apps_own_is_refused_and_kept(db: Database, fresh_db: str, stack: None) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("alter table actions add column user_id uuid")
    with pytest.raises(InputError, match="exists and was not created by supabase-access") as caught:
        OwnerCopy().check(db, {}, INPUTS)
    assert caught.value.property == "column"


def test_rows_the_app_keeps_when_their_owner_goes_are_warned_of(db: Database, fresh_db: str, stack: None) -> None:
    """The copy's foreign key cascades: where the app's keys keep a row when its owner goes, preview says so."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("alter table sessions drop constraint if exists sessions_user_id_fkey")
        conn.execute(
            "alter table sessions add constraint sessions_user_id_fkey foreign key (user_id) "
            "references auth.users (id) on delete cascade"
        )
    before, after = check_warnings_around(
        db,
        fresh_db,
        INPUTS,
        "alter table sessions drop constraint sessions_user_id_fkey, alter column user_id drop not null, "
        "add constraint sessions_user_id_fkey foreign key (user_id) references auth.users (id) on delete set null",
    )
    assert before == []
    (warning,) = after
    assert warning.startswith("tables.actions.copyOwner: deleting a auth.users row will delete the public.actions rows")
    assert "keep them" in warning


def test_policies_naming_the_copy_are_checked_before_it_exists(fresh_db: str) -> None:
    plan = plan_access(copy_model(), "owner")
    specs = {p.name: p for p in render.plan_policies(plan)["actions"]}
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        with pytest.raises(catalog.PolicyRejectedError, match="user_id"):
            catalog.normalize_policies(conn, "public", "actions", specs)
        parsed = catalog.normalize_policies(conn, "public", "actions", specs, added={"actions": {"user_id": "uuid"}})
        assert set(parsed) == set(specs)
        # Nothing was left behind.
        assert not conn.execute(catalog.column_state_query(), ("public", "actions", "user_id")).fetchone()


def test_read_finds_the_copy_and_unchanged_inputs_do_not_ask_the_database(
    db: Database, fresh_db: str, stack: None
) -> None:
    add_rows(fresh_db, users=1)
    _, checked, state = resources.create(OwnerCopy(), db, INPUTS, log)
    found = resources.read(OwnerCopy(), db, "public.actions.user_id", state, INPUTS)
    # The inputs as given, the defaults the spec declares filled in (privateSchema).
    assert found is not None and found[0]["validated"] is True and found[1] == checked
    # What passed at the last apply is not asked again (diff reads the live state anyway).
    assert OwnerCopy().check(UnreachableDatabase(), checked, INPUTS) == checked
    # A column dropped by hand: gone, the next `up` adds it again.
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("alter table actions drop column user_id cascade")
    assert resources.read(OwnerCopy(), db, "public.actions.user_id", state, INPUTS) is None


def test_a_changed_path_computes_every_copy_again_and_destroy_is_exact(
    db: Database, fresh_db: str, stack: None
) -> None:
    # turns: owned through its session, then through its segment (a nullable link): an update.
    alice, _ = add_rows(fresh_db)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("insert into segments (session_id, position) select id, 1 from sessions")
        # Half of Alice's turns under a segment of one of Bob's sessions, the others under none.
        conn.execute(
            "update turns t set segment_id = (select g.id from segments g join sessions s on s.id = g.session_id "
            "where s.user_id <> %s limit 1) where t.session_id in (select id from sessions where user_id = %s) "
            "and t.speaker = 'user'",
            (alice, alice),
        )
    before = catalog_snapshot(fresh_db)
    by_session = {
        "schema": "public",
        "table": "turns",
        "column": "user_id",
        "path": [{"table": "turns", "column": "session_id", "parent": "sessions", "key": "id"}],
        "rootColumn": "user_id",
    }
    by_segment = {
        **by_session,
        "path": [
            {"table": "turns", "column": "segment_id", "parent": "segments", "key": "id"},
            {"table": "segments", "column": "session_id", "parent": "sessions", "key": "id"},
        ],
    }
    resource = OwnerCopy()
    _, checked, state = resources.create(resource, db, by_session, log)
    moved = resource.check(db, checked, by_segment)
    assert set(resource.diff(db, state, moved).changes) >= {"path", "functions", "triggers"}
    state = resource.update(db, state, moved, log)
    assert state["validated"] is True
    with psycopg.connect(fresh_db) as conn:
        rows = conn.execute(
            "select count(*) filter (where t.user_id is not distinct from s.user_id), count(*) from turns t "
            "left join segments g on g.id = t.segment_id left join sessions s on s.id = g.session_id"
        ).fetchone()
    assert rows is not None and rows[0] == rows[1] == 12
    assert resource.diff(db, state, moved).has_changes is False
    resource.delete(db, state, log)
    assert catalog_snapshot(fresh_db) == before
