"""The OwnerCopy resource keeping a copy of the group's key (the model's copyGroup) on the teams app's
comments, two hops below their project: the fill, the triggers (requests made as PostgREST makes
them), moves of the rows above, and destroy leaving the catalog as it was."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from review.postgrest import Persona, as_persona, connect_as_authenticator
from supabase_access.model.access_model import parse_model
from supabase_access.model.owner_copy import marked_by, type_of
from supabase_access.model.profiles import OwnerCopy as PlannedCopy
from supabase_access.model.profiles import plan_access
from supabase_access.model.rule_data import group_lookup_to_plain
from supabase_access.provider import ledger
from supabase_access.provider.base import CURRENT_STACK, InputError
from supabase_access.provider.resources.group_functions import GroupFunctions, prelude_for
from supabase_access.provider.resources.owner_copy import LEDGER_KIND, OwnerCopy
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from tests.support import resources
from tests.support.fault import catalog_snapshot
from tests.support.localdb import legacy_platform
from tests.support.owner_copy import check_warnings_around, copy_counts, group_copy_model
from tests.support.teams_app import load_teams_app

pytestmark = pytest.mark.db

STACK = "gc-test"
PLAN = plan_access(group_copy_model(), "owner")
(COPY,) = PLAN.owner_copies
INPUTS: dict[str, Any] = {
    "schema": "public",
    "table": COPY.table,
    "column": COPY.column,
    "path": [{"table": h.table, "column": h.column, "parent": h.parent, "key": h.key} for h in COPY.hops],
    "rootColumn": COPY.root_column,
    "group": True,
    "batchSize": 5,
}
messages: list[str] = []


def log(message: str) -> None:
    messages.append(message)


@pytest.fixture
def teams_db(db: Database, fresh_db: str) -> Iterator[Database]:
    load_teams_app(fresh_db)
    token = CURRENT_STACK.set(STACK)
    messages.clear()
    yield db
    CURRENT_STACK.reset(token)


def add_projects(dsn: str) -> dict[str, uuid.UUID]:
    """Alice owns p1 (Carol a member), Bob owns p2; two tasks each with three comments by the owner."""
    users = {name: uuid.uuid4() for name in ("alice", "bob", "carol")}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for user in users.values():
            conn.execute("insert into auth.users (id) values (%s)", (user,))
        for project, owner in (("p1", "alice"), ("p2", "bob")):
            row = conn.execute(
                "insert into projects (owner_id, name) values (%s, %s) returning id", (users[owner], project)
            ).fetchone()
            assert row is not None
            users[project] = row[0]
            conn.execute(
                "with t as (insert into tasks (project_id, title) select %s, 't' || n from generate_series(1, 2) n "
                "returning id) insert into comments (task_id, author_id, body) select t.id, %s, 'c' from t, "
                "generate_series(1, 3)",
                (row[0], users[owner]),
            )
        conn.execute(
            "insert into project_members (project_id, user_id, role) values (%s, %s, 'member')",
            (users["p1"], users["carol"]),
        )
    return users


def copies(dsn: str) -> tuple[int, int, int]:
    """(comments, comments with a copy, comments whose copy is their task's project)."""
    return copy_counts(
        dsn,
        "select count(*), count(c.project_id), count(*) filter (where c.project_id = t.project_id) "
        "from comments c join tasks t on t.id = c.task_id",
    )


def task_of(dsn: str, project: uuid.UUID) -> uuid.UUID:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("select id from tasks where project_id = %s order by id limit 1", (project,)).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def apply_owner_profile(db: Database, dsn: str) -> None:
    """RLS, grants, the group functions and the owner policies, as an owner stack applies them."""
    (lookup,) = PLAN.group_lookups
    resources.create(GroupFunctions(), db, {"schema": "public", **group_lookup_to_plain(lookup)}, log)
    tables = [a.table for a in PLAN.tables]
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        for table in tables:
            conn.execute(render.set_row_level_security("public", table, enabled=True))
        conn.execute(render.revoke_all("anon", "public", tables))
        conn.execute(render.revoke_all("authenticated", "public", tables))
        conn.execute(render.grant("authenticated", "public", tables, ("SELECT", "INSERT", "UPDATE", "DELETE")))
        for table, specs in render.plan_policies(PLAN).items():
            catalog.replace_policies(conn, "public", table, specs)


def test_create_fills_existing_rows_and_delete_restores_the_catalog(teams_db: Database, fresh_db: str) -> None:
    add_projects(fresh_db)
    before = catalog_snapshot(fresh_db)
    _, checked, outputs = resources.create(OwnerCopy(), teams_db, INPUTS, log)
    assert copies(fresh_db) == (12, 12, 12)
    assert outputs["validated"] is True
    assert any("a copy of the group's key" in m for m in messages)
    assert any("filled public.comments.project_id: 12 rows" in m for m in messages)
    after = catalog_snapshot(fresh_db)
    column = next(c for c in after["columns"] if c[1:3] == ("comments", "project_id"))
    assert column[3:5] == ("uuid", False) and marked_by(str(column[5])) == STACK
    assert "the group's key (projects.id) along comments -> tasks -> projects" in str(column[5])
    constraints = {c[1]: c for c in after["constraints"] if c[0] == "comments"}
    assert constraints["comments_project_id_copy_check"][3] and constraints["comments_project_id_copy_fkey"][3]
    assert str(constraints["comments_project_id_copy_fkey"][2]) == (
        "FOREIGN KEY (project_id) REFERENCES projects(id) ON DELETE CASCADE"
    )
    triggers = {(t[0], t[1]) for t in after["triggers"]}
    assert {
        ("tasks", "supabase_access_owner_copy_comments_project_id"),
        ("projects", "supabase_access_owner_copy_comments_project_id"),
    } <= triggers
    with psycopg.connect(fresh_db) as conn:
        assert ledger.read(conn, LEDGER_KIND, "public.comments.project_id") == {
            "stack": STACK,
            "path": INPUTS["path"],
        }
    assert OwnerCopy().diff(teams_db, outputs, OwnerCopy().check(teams_db, outputs, INPUTS)).has_changes is False
    found = resources.read(OwnerCopy(), teams_db, "public.comments.project_id", outputs, INPUTS)
    assert found is not None and found[1] == checked
    OwnerCopy().delete(teams_db, outputs, log)
    assert catalog_snapshot(fresh_db) == before


def test_moves_above_pass_down_and_deleting_the_group_cascades(teams_db: Database, fresh_db: str) -> None:
    users = add_projects(fresh_db)
    resources.create(OwnerCopy(), teams_db, INPUTS, log)
    p1, p2 = users["p1"], users["p2"]
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        # A comment moved to a task of p2; a task of p1 moved to p2; a comment inserted with a forged copy.
        conn.execute(
            "update comments set task_id = %s where id = (select c.id from comments c join tasks t on t.id = c.task_id "
            "where t.project_id = %s limit 1)",
            (task_of(fresh_db, p2), p1),
        )
        assert copies(fresh_db) == (12, 12, 12)
        conn.execute("update tasks set project_id = %s where id = %s", (p2, task_of(fresh_db, p1)))
        assert copies(fresh_db) == (12, 12, 12)
        row = conn.execute(
            "insert into comments (task_id, body, project_id) values (%s, 'x', %s) returning project_id",
            (task_of(fresh_db, p1), p2),
        ).fetchone()
        assert row == (p1,)
        conn.execute("update comments set project_id = %s where task_id = %s", (p2, task_of(fresh_db, p1)))
        assert copies(fresh_db) == (13, 13, 13)
        left = conn.execute("select count(*) from comments where project_id = %s", (p1,)).fetchone()
        conn.execute("delete from projects where id = %s", (p2,))
    assert left is not None and copies(fresh_db) == (left[0],) * 3


@legacy_platform
def test_members_reach_their_projects_comments_alone_and_cannot_forge_the_copy(
    teams_db: Database, fresh_db: str
) -> None:
    users = add_projects(fresh_db)
    resources.create(OwnerCopy(), teams_db, INPUTS, log)
    apply_owner_profile(teams_db, fresh_db)
    carol, bob, p1, p2 = users["carol"], users["bob"], users["p1"], users["p2"]
    insert = "insert into comments (task_id, body, project_id) values (%s, 'mine', %s) returning project_id"
    with connect_as_authenticator(fresh_db) as api:
        with as_persona(api, Persona.signed_in(carol, is_anonymous=False)) as cur:
            # She reads p1's comments alone, whatever she asks for.
            assert cur.execute("select count(*), min(project_id::text) from comments").fetchone() == (6, str(p1))
            assert cur.execute("select count(*) from comments where project_id = %s", (p2,)).fetchone() == (0,)
            # Under p1's task, claiming p2: the copy says p1.
            assert cur.execute(insert, (task_of(fresh_db, p1), p2)).fetchone() == (p1,)
            # Her own comment, moved to p2 by its copy: the trigger puts p1 back.
            cur.execute("update comments set project_id = %s where body = 'mine' returning project_id", (p2,))
            assert [r[0] for r in cur.fetchall()] == [p1]
            # Alice's comments are not hers to edit (write: author).
            cur.execute("update comments set body = 'edited' where body = 'c' returning id")
            assert cur.fetchall() == []
        # Under p2's task, claiming p1: the copy says p2, so her policy refuses the row.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with as_persona(api, Persona.signed_in(carol, is_anonymous=False)) as cur:
                cur.execute(insert, (task_of(fresh_db, p2), p1))
        with as_persona(api, Persona.signed_in(bob, is_anonymous=False)) as cur:
            assert cur.execute("select count(*), min(project_id::text) from comments").fetchone() == (6, str(p2))


def test_a_copy_cannot_turn_into_another_kind_and_keys_have_a_copyable_type(teams_db: Database, fresh_db: str) -> None:
    resource = OwnerCopy()
    checked = resource.check(teams_db, {}, INPUTS)
    with pytest.raises(InputError, match="cannot change between a copy of the owner and of a group's key") as caught:
        resource.check(teams_db, checked, {**INPUTS, "group": None, "rootColumn": "owner_id"})
    assert caught.value.property == "group"
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("alter table tasks add column code numeric unique")
    path = [INPUTS["path"][0] | {"key": "code"}]
    with pytest.raises(
        InputError, match=r"rootColumn: public.tasks.code is numeric; a copy of a group's key"
    ) as caught:
        resource.check(teams_db, {}, {**INPUTS, "path": path, "rootColumn": "code"})
    assert caught.value.property == "rootColumn"


BIGINT_GROUPS = """
create table orgs (id bigint generated by default as identity primary key,
  owner_id uuid not null references auth.users (id) on delete cascade);
create table org_members (org_id bigint not null references orgs (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade, primary key (org_id, user_id));
create table boards (id bigint generated by default as identity primary key,
  org_id bigint not null references orgs (id) on delete cascade);
create table cards (id bigint generated by default as identity primary key,
  board_id bigint not null references boards (id) on delete cascade, body text);
"""
BIGINT_MODEL = {
    "tables": {
        "orgs": {"owner": "owner_id"},
        "org_members": {"membership": {"group": "orgs", "column": "org_id", "user": "user_id"}},
        "boards": {"member": {"group": "orgs", "column": "org_id"}, "write": "members"},
        "cards": {"through": {"column": "board_id", "table": "boards"}, "write": "members", "copyGroup": True},
    }
}


def bigint_copy_inputs(copy: PlannedCopy) -> dict[str, Any]:
    """OwnerCopy's inputs for the bigint model's copy on cards."""
    return {
        "schema": "public",
        "table": "cards",
        "column": copy.column,
        "path": [{"table": h.table, "column": h.column, "parent": h.parent, "key": h.key} for h in copy.hops],
        "rootColumn": copy.root_column,
        "group": True,
    }


def test_a_bigint_group_key_is_copied_as_bigint_and_policies_are_checked_before_it_exists(
    teams_db: Database, fresh_db: str
) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(BIGINT_GROUPS)
        user = uuid.uuid4()
        conn.execute("insert into auth.users (id) values (%s)", (user,))
        conn.execute(
            "with o as (insert into orgs (owner_id) values (%s) returning id), "
            "b as (insert into boards (org_id) select id from o returning id) "
            "insert into cards (board_id, body) select id, 'c' from b, generate_series(1, 3)",
            (user,),
        )
    before = catalog_snapshot(fresh_db)
    plan = plan_access(parse_model(BIGINT_MODEL, setting="m"), "owner")
    (copy,) = plan.owner_copies
    specs = {p.name: p for p in render.plan_policies(plan)["cards"]}
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        prelude = prelude_for("public", [group_lookup_to_plain(lookup) for lookup in plan.group_lookups])
        with pytest.raises(catalog.PolicyRejectedError, match="org_id"):
            catalog.normalize_policies(conn, "public", "cards", specs, prelude)
        # The copy's type is the key's: a uuid stand-in would not compare with the group function's bigints.
        with pytest.raises(catalog.PolicyRejectedError, match="bigint"):
            catalog.normalize_policies(conn, "public", "cards", specs, prelude, added={"cards": {"org_id": "uuid"}})
        added = {"cards": {"org_id": type_of(copy.root_table, copy.root_column)}}
        assert set(catalog.normalize_policies(conn, "public", "cards", specs, prelude, added=added)) == set(specs)
    inputs = bigint_copy_inputs(copy)
    _, _, outputs = resources.create(OwnerCopy(), teams_db, inputs, log)
    assert outputs["validated"] is True
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute(
            "select format_type(atttypid, atttypmod) from pg_attribute where attrelid = 'cards'::regclass "
            "and attname = 'org_id'"
        ).fetchone() == ("bigint",)
        assert conn.execute(
            "select count(*) from cards c join boards b on b.id = c.board_id where c.org_id = b.org_id"
        ).fetchone() == (3,)
    OwnerCopy().delete(teams_db, outputs, log)
    assert catalog_snapshot(fresh_db) == before


def test_rows_the_app_keeps_when_their_group_goes_are_warned_of(teams_db: Database, fresh_db: str) -> None:
    """Boards kept (org_id set null) when their org goes: the copy's cascade would delete their cards."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(BIGINT_GROUPS)
    (copy,) = plan_access(parse_model(BIGINT_MODEL, setting="m"), "owner").owner_copies
    before, after = check_warnings_around(
        teams_db,
        fresh_db,
        bigint_copy_inputs(copy),
        "alter table boards drop constraint boards_org_id_fkey, alter column org_id drop not null, "
        "add constraint boards_org_id_fkey foreign key (org_id) references orgs (id) on delete set null",
    )
    assert before == []
    (warning,) = after
    assert warning.startswith("tables.cards.copyGroup: deleting a public.orgs row will delete the public.cards rows")
