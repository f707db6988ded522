"""GroupFunctions on a real database, through the provider class itself (check, create, diff,
update, read, delete): bad input names the input, a hand edit is drift, delete leaves nothing."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest

from review.postgrest import Persona, as_persona, connect_as_authenticator
from supabase_access.model.profiles import plan_access
from supabase_access.model.rule_data import group_lookup_to_plain
from supabase_access.provider.base import InputError
from supabase_access.provider.resources.group_functions import GroupFunctions
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from tests.support.resources import UnreachableDatabase, create, read
from tests.support.teams_app import load_teams_app, teams_model

pytestmark = pytest.mark.db


def inputs(**changes: Any) -> dict[str, Any]:
    (lookup,) = plan_access(teams_model(), "owner").group_lookups
    return {"schema": "public", **group_lookup_to_plain(lookup), **changes}


def helpers(dsn: str) -> list[tuple[str, bool]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select p.proname, has_function_privilege('authenticated', p.oid, 'execute') from pg_proc p "
            "join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'supabase_access_rls' order by 1"
        ).fetchall()
    return [(str(name), bool(usable)) for name, usable in rows]


@pytest.fixture
def teams_db(db: Database, fresh_db: str) -> Database:
    load_teams_app(fresh_db)
    return db


def test_create_diff_repair_and_delete(teams_db: Database, fresh_db: str) -> None:
    resource = GroupFunctions()
    resource_id, checked, state = create(resource, teams_db, inputs())
    assert resource_id == "public.project_members"
    assert helpers(fresh_db) == [
        ("project_members_admin_groups", True),
        ("project_members_group_ids", True),
        ("project_members_groups", True),
    ]
    assert resource.diff(teams_db, state, checked).changes == {}
    assert read(resource, teams_db, resource_id, state, checked) == (state, checked)
    # Unchanged inputs do not ask the database again.
    assert resource.check(UnreachableDatabase(), checked, inputs()) == checked
    with psycopg.connect(fresh_db) as conn:
        # A hand edit that would let every signed-in user into every project.
        conn.execute(
            "create or replace function supabase_access_rls.project_members_groups() returns setof uuid "
            "language sql stable security definer set search_path = '' set row_security = off "
            "as $$ select id from public.projects $$"
        )
    assert resource.diff(teams_db, state, checked).changes == {"memberFunction": "update"}
    resource.update(teams_db, state, checked, print)
    assert resource.diff(teams_db, state, checked).changes == {}
    resource.delete(teams_db, state, print)
    assert helpers(fresh_db) == []
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("select to_regnamespace('supabase_access_rls')").fetchone() == (None,)


def test_the_group_ids_function_gives_the_member_groups_as_text(teams_db: Database, fresh_db: str) -> None:
    """The text[] form member buckets read gives the same groups as the member function; a stack made
    before it (the function missing) is still found by read, previews an update, and the update makes it."""
    resource = GroupFunctions()
    resource_id, checked, state = create(resource, teams_db, inputs())
    owner, member, outsider = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(fresh_db) as conn:
        conn.execute("insert into auth.users (id) select unnest(%s::uuid[])", ([owner, member, outsider],))
        owned, joined = (
            row[0]
            for row in conn.execute(
                "insert into projects (owner_id, name) values (%s, 'a'), (%s, 'b') returning id::text", (owner, member)
            ).fetchall()
        )
        conn.execute("insert into project_members (project_id, user_id) values (%s, %s)", (owned, member))
    with connect_as_authenticator(fresh_db) as conn:
        for who, expected in ((owner, [owned]), (member, sorted([owned, joined])), (outsider, [])):
            with as_persona(conn, Persona.signed_in(who, is_anonymous=False)) as cur:
                (ids,) = cur.execute("select supabase_access_rls.project_members_group_ids()").fetchone() or (None,)
                (groups,) = cur.execute(
                    "select array(select g::text from supabase_access_rls.project_members_groups() g)"
                ).fetchone() or (None,)
            assert sorted(ids) == sorted(groups) == expected
    with psycopg.connect(fresh_db) as conn:
        conn.execute("drop function supabase_access_rls.project_members_group_ids()")
    assert read(resource, teams_db, resource_id, state, checked) == (state, checked)
    assert resource.diff(teams_db, state, checked).changes == {"memberFunction": "update"}
    resource.update(teams_db, state, checked, print)
    assert resource.diff(teams_db, state, checked).changes == {}
    assert ("project_members_group_ids", True) in helpers(fresh_db)


@pytest.mark.parametrize(
    ("changes", "prop", "message"),
    [
        ({"user": "member_id"}, "user", "user: public.project_members has no column member_id"),
        ({"groupOwnerColumn": "nobody"}, "groupOwnerColumn", "groupOwnerColumn: public.projects has no column nobody"),
        ({"membershipTable": "nope"}, "membershipTable", "membershipTable: public.nope does not exist"),
        ({"admins": ["x" * 64]}, "admins", "admins: expected a list of role values"),
        ({"role": 'role"; drop'}, "role", "is not a valid identifier"),
    ],
)
def test_bad_input_names_the_input(teams_db: Database, changes: dict[str, Any], prop: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        GroupFunctions().check(teams_db, {}, inputs(**changes))
    assert info.value.property == prop and message in str(info.value)


def test_a_schema_of_someone_elses_is_refused(teams_db: Database, fresh_db: str) -> None:
    with psycopg.connect(fresh_db) as conn:
        conn.execute("create schema supabase_access_rls")
    with pytest.raises(InputError, match="helperSchema: schema supabase_access_rls exists but was not created"):
        GroupFunctions().check(teams_db, {}, inputs())


def test_forced_rls_on_the_membership_table_is_refused(teams_db: Database, fresh_db: str) -> None:
    # The functions read as the tables' owner; with FORCE their policies (which call them) would apply.
    with psycopg.connect(fresh_db) as conn:
        conn.execute("alter table project_members enable row level security, force row level security")
    with pytest.raises(InputError, match="membershipTable: row-level security applies to role postgres"):
        GroupFunctions().check(teams_db, {}, inputs())


def test_force_rls_needs_a_login_role_that_bypasses_rls(teams_db: Database) -> None:
    # The local postgres, like a self-hosted one, has no BYPASSRLS (Supabase's has).
    with pytest.raises(InputError, match="supabase-access:forceRls: FORCE ROW LEVEL SECURITY would apply to role"):
        GroupFunctions().check(teams_db, {}, inputs(forceRls=True))


def test_grants_and_author_policies_ask_once_per_statement(teams_db: Database, fresh_db: str) -> None:
    """The policies of grants (project_members) and write: author (comments) as PostgREST's writes meet
    them: every lookup is an InitPlan (once per statement), none a SubPlan (once per row)."""
    plan = plan_access(teams_model(), "owner")
    create(GroupFunctions(), teams_db, inputs())
    with psycopg.connect(fresh_db) as conn:
        for statement in render.plan_table_statements(plan):
            conn.execute(statement)
    user = uuid.uuid4()
    with psycopg.connect(fresh_db) as conn:
        conn.execute("insert into auth.users (id) values (%s)", (user,))
    writes = (
        "insert into project_members (project_id, user_id, role) values (gen_random_uuid(), gen_random_uuid(), "
        "'member') on conflict (project_id, user_id) do update set role = excluded.role returning role",
        "update project_members set role = 'admin' where user_id = gen_random_uuid() returning role",
        "delete from project_members where user_id = gen_random_uuid()",
        "update comments set body = 'edited' where id = gen_random_uuid() returning id",
        "insert into comments (task_id, body) values (gen_random_uuid(), 'x') returning id",
        "delete from comments where id = gen_random_uuid()",
    )
    with connect_as_authenticator(fresh_db) as conn:
        for write in writes:
            with as_persona(conn, Persona.signed_in(user, is_anonymous=False), method="POST") as cur:
                cur.execute("explain (format json, costs off) " + write)
                row = cur.fetchone()
            assert row is not None
            text = json.dumps(row[0])
            assert '"SubPlan' not in text, (write, text)
            assert '"Parent Relationship": "InitPlan"' in text, write
