"""End to end: the teams app (tests/fixtures/teams_app, every access kind of the model) applied by
the real engine on a dev and a prod stack, then every persona on every table and command, as
PostgREST runs the request (`SET LOCAL ROLE`, `request.jwt.claims`), and the attacks a team
table invites: joining someone else's group, moving a membership or a row to another group."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg.conninfo import make_conninfo
from pulumi import automation as auto

from review.matrix import OPERATIONS, WHOSE, Cell, compute_matrix
from review.postgrest import Persona, as_persona, assert_rls_applies, connect_as_authenticator
from supabase_access.model.profiles import plan_access
from tests.support.catalog_check import undeclared_and_missing
from tests.support.engine import changes, new_stack
from tests.support.fault import catalog_snapshot
from tests.support.localdb import PLATFORMS, create_database_from_template, drop_database
from tests.support.paths import REPO
from tests.support.teams_app import MODEL_FILE, OPEN, OWNER, TABLES, load_teams_app, teams_model

pytestmark = pytest.mark.e2e

COMMANDS = ("select", "insert", "update", "delete")
PERSONAS = ("owner", "admin", "member", "outsider", "anonymous_sign_in", "anon", "service_role")


@dataclass
class Teams:
    """A database with the teams app, a stack applied to it, and its users and rows."""

    dsn: str
    users: dict[str, uuid.UUID]
    rows: dict[str, Any]

    def persona(self, name: str) -> Persona:
        if name == "anon":
            return Persona.anon()
        if name == "service_role":
            return Persona.service()
        return Persona.signed_in(self.users[name], is_anonymous=name == "anonymous_sign_in")

    def run(self, name: str, statement: str, params: dict[str, Any] | None = None, *, commit: bool = False) -> Any:
        """One request as persona `name`: the statement's first row, or its row count when it returns none."""
        with connect_as_authenticator(self.dsn) as conn, as_persona(conn, self.persona(name), commit=commit) as cur:
            if name != "service_role":
                assert_rls_applies(cur)
            cur.execute(statement, {**self.ids, **(params or {})})
            return cur.fetchone() if cur.description else cur.rowcount

    @property
    def ids(self) -> dict[str, Any]:
        return {**{k: v for k, v in self.users.items()}, **self.rows}


def add_user(dsn: str, *, anonymous: bool = False) -> uuid.UUID:
    user_id = uuid.uuid4()
    with psycopg.connect(dsn) as conn:
        conn.execute("insert into auth.users (id, is_anonymous) values (%s, %s)", (user_id, anonymous))
    return user_id


def seed(dsn: str) -> Teams:
    """Project P of `owner`, with `admin`, `member` and `other` in it; a task, a milestone and a comment in
    P; project Q of the anonymous sign-in with a task; a label, a template and an audit row. Each
    row written by whoever may write it on prod, as the app would."""
    users = {name: add_user(dsn, anonymous=name == "anonymous_sign_in") for name in PERSONAS[:5]}
    users["other"] = add_user(dsn)
    users["newcomer"] = add_user(dsn)
    teams = Teams(dsn, users, {})
    rows = teams.rows
    (rows["p"],) = teams.run("owner", "insert into projects (name) values ('P') returning id", commit=True)
    for user, role in (("admin", "admin"), ("member", "member"), ("other", "member")):
        teams.run(
            "owner",
            "insert into project_members (project_id, user_id, role) values (%(p)s, %(user)s, %(role)s)",
            {"user": users[user], "role": role},
            commit=True,
        )
    (rows["task"],) = teams.run(
        "admin", "insert into tasks (project_id, title) values (%(p)s, 'T') returning id", commit=True
    )
    (rows["milestone"],) = teams.run(
        "owner", "insert into milestones (project_id, title) values (%(p)s, 'M') returning id", commit=True
    )
    (rows["comment"],) = teams.run(
        "member", "insert into comments (task_id, body) values (%(task)s, 'C') returning id", commit=True
    )
    (rows["q"],) = teams.run("anonymous_sign_in", "insert into projects (name) values ('Q') returning id", commit=True)
    (rows["q_task"],) = teams.run(
        "anonymous_sign_in", "insert into tasks (project_id, title) values (%(q)s, 'TQ') returning id", commit=True
    )
    (rows["template"],) = teams.run("owner", "insert into templates (title) values ('T') returning id", commit=True)
    (rows["label"],) = teams.run("service_role", "insert into labels (name) values ('bug') returning id", commit=True)
    (rows["audit"],) = teams.run(
        "service_role", "insert into audit_log (actor_id, action) values (%(owner)s, 'x') returning id", commit=True
    )
    return teams


# Each command on a row of project P (or the table's seeded row), written as the app would.
PROBES: dict[str, dict[str, str]] = {
    "projects": {
        "select": "select count(*) from projects where id = %(p)s",
        "insert": "insert into projects (owner_id, name) values (%(owner)s, 'another')",
        "update": "update projects set name = 'renamed' where id = %(p)s",
        "delete": "delete from projects where id = %(p)s",
    },
    "project_members": {
        "select": "select count(*) from project_members where project_id = %(p)s",
        "insert": "insert into project_members (project_id, user_id) values (%(p)s, %(newcomer)s)",
        "update": "update project_members set role = 'admin' where project_id = %(p)s and user_id = %(other)s",
        "delete": "delete from project_members where project_id = %(p)s and user_id = %(other)s",
    },
    "tasks": {
        "select": "select count(*) from tasks where id = %(task)s",
        "insert": "insert into tasks (project_id, title) values (%(p)s, 'new')",
        "update": "update tasks set done = true where id = %(task)s",
        "delete": "delete from tasks where id = %(task)s",
    },
    "milestones": {
        "select": "select count(*) from milestones where id = %(milestone)s",
        "insert": "insert into milestones (project_id, title) values (%(p)s, 'new')",
        "update": "update milestones set title = 'moved' where id = %(milestone)s",
        "delete": "delete from milestones where id = %(milestone)s",
    },
    "comments": {
        "select": "select count(*) from comments where id = %(comment)s",
        "insert": "insert into comments (task_id, body) values (%(task)s, 'new')",
        "update": "update comments set body = 'edited' where id = %(comment)s",
        "delete": "delete from comments where id = %(comment)s",
    },
    "labels": {
        "select": "select count(*) from labels where id = %(label)s",
        "insert": "insert into labels (name) values ('new')",
        "update": "update labels set color = 'red' where id = %(label)s",
        "delete": "delete from labels where id = %(label)s",
    },
    "templates": {
        "select": "select count(*) from templates where id = %(template)s",
        "insert": "insert into templates (created_by, title) values (%(owner)s, 'new')",
        "update": "update templates set title = 'edited' where id = %(template)s",
        "delete": "delete from templates where id = %(template)s",
    },
    "audit_log": {
        "select": "select count(*) from audit_log where id = %(audit)s",
        "insert": "insert into audit_log (action) values ('new')",
        "update": "update audit_log set action = 'edited' where id = %(audit)s",
        "delete": "delete from audit_log where id = %(audit)s",
    },
}


def outcome(teams: Teams, persona: str, statement: str) -> str:
    """✓ done (a row seen, written or removed), ✗ refused (a privilege, a policy, or no row reached)."""
    try:
        result = teams.run(persona, statement)
    except psycopg.errors.InsufficientPrivilege:
        return "✗"
    found = result[0] if isinstance(result, tuple) else result
    return "✓" if found else "✗"


def matrix(teams: Teams) -> dict[str, str]:
    """table.command -> one mark per persona, in PERSONAS order."""
    return {
        f"{table}.{command}": "".join(outcome(teams, persona, PROBES[table][command]) for persona in PERSONAS)
        for table in TABLES
        for command in COMMANDS
    }


# Personas: owner, admin, member, outsider, anonymous sign-in (not in P), anon (no JWT), service_role.
PROD_MATRIX = {
    # The group: its members read it, its owner alone writes it.
    "projects.select": "✓✓✓✗✗✗✓",
    "projects.insert": "✓✗✗✗✗✗✓",
    "projects.update": "✓✗✗✗✗✗✓",
    "projects.delete": "✓✗✗✗✗✗✓",
    # Members see each other; grants: {admin: owner, member: admins}: the owner and admins add and
    # remove members, only the owner makes one an admin (the probe promotes `other`).
    "project_members.select": "✓✓✓✗✗✗✓",
    "project_members.insert": "✓✓✗✗✗✗✓",
    "project_members.update": "✓✗✗✗✗✗✓",
    "project_members.delete": "✓✓✗✗✗✗✓",
    # write: admins
    "tasks.select": "✓✓✓✗✗✗✓",
    "tasks.insert": "✓✓✗✗✗✗✓",
    "tasks.update": "✓✓✗✗✗✗✓",
    "tasks.delete": "✓✓✗✗✗✗✓",
    # write: owner
    "milestones.select": "✓✓✓✗✗✗✓",
    "milestones.insert": "✓✗✗✗✗✗✓",
    "milestones.update": "✓✗✗✗✗✗✓",
    "milestones.delete": "✓✗✗✗✗✗✓",
    # two hops below the group, write: author (the seeded comment is member's), delete: admins
    "comments.select": "✓✓✓✗✗✗✓",
    "comments.insert": "✓✓✓✗✗✗✓",
    "comments.update": "✗✗✓✗✗✗✓",
    "comments.delete": "✓✓✓✗✗✗✓",
    # publicRead: {anon: true}: everyone reads, the server writes
    "labels.select": "✓✓✓✓✓✓✓",
    "labels.insert": "✗✗✗✗✗✗✓",
    "labels.update": "✗✗✗✗✗✗✓",
    "labels.delete": "✗✗✗✗✗✗✓",
    # owner + publicRead: every signed-in user reads, the owner writes
    "templates.select": "✓✓✓✓✓✗✓",
    "templates.insert": "✓✗✗✗✗✗✓",
    "templates.update": "✓✗✗✗✗✗✓",
    "templates.delete": "✓✗✗✗✗✗✓",
    # serviceOnly
    "audit_log.select": "✗✗✗✗✗✗✓",
    "audit_log.insert": "✗✗✗✗✗✗✓",
    "audit_log.update": "✗✗✗✗✗✗✓",
    "audit_log.delete": "✗✗✗✗✗✗✓",
}


@pytest.fixture(scope="module", params=PLATFORMS)
def teams_platform(request: pytest.FixtureRequest) -> str:
    """Every test of the module on each grant platform (its stacks applied once per platform)."""
    return str(request.param)


@pytest.fixture(scope="module")
def teams_dsn(localdb_url: str, localdb_admin_conninfo: str, teams_platform: str) -> Iterator[Any]:
    """A database with the teams app per call, on the module's platform, dropped at the end of the module."""
    made: list[str] = []

    def make() -> str:
        name = create_database_from_template(localdb_admin_conninfo, teams_platform)
        made.append(name)
        dsn = make_conninfo(localdb_url, dbname=name)
        load_teams_app(dsn)
        return dsn

    yield make
    for name in made:
        drop_database(localdb_admin_conninfo, name)


@pytest.fixture(scope="module")
def prod(teams_dsn: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Teams, Any]]:
    dsn = teams_dsn()
    stack = new_stack(tmp_path_factory.mktemp("prod"), "prod", dsn, OWNER)
    stack.up()
    yield seed(dsn), stack


@pytest.fixture(scope="module")
def dev(teams_dsn: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Teams, Any]]:
    dsn = teams_dsn()
    stack = new_stack(tmp_path_factory.mktemp("dev"), "dev", dsn, OPEN)
    stack.up()
    yield seed(dsn), stack


def test_prod_every_persona_on_every_table_and_command(prod: tuple[Teams, Any]) -> None:
    teams, _ = prod
    assert matrix(teams) == PROD_MATRIX


def test_dev_keeps_open_access_on_every_table(dev: tuple[Teams, Any]) -> None:
    teams, _ = dev
    assert matrix(teams) == {cell: "✓" * len(PERSONAS) for cell in PROD_MATRIX}
    # Open means open: on dev anyone may join any group (prod refuses it, below).
    assert teams.run("outsider", PROBES["project_members"]["insert"].replace("newcomer", "outsider")) == 1


REFUSED = pytest.raises(psycopg.errors.InsufficientPrivilege)


def test_prod_refuses_joining_someone_elses_group(prod: tuple[Teams, Any]) -> None:
    teams, _ = prod
    join = "insert into project_members (project_id, user_id, role) values (%(p)s, %(who)s, %(role)s)"
    for attacker, who, role in (
        ("outsider", "outsider", "member"),  # the self-join of issue 14
        ("outsider", "outsider", "admin"),
        ("anonymous_sign_in", "anonymous_sign_in", "member"),
        ("member", "outsider", "member"),  # a plain member does not add people
        ("member", "newcomer", "admin"),
    ):
        with REFUSED:
            teams.run(attacker, join, {"who": teams.users[who], "role": role})
    # An upsert checks the insert first: refused as the insert is.
    with REFUSED:
        teams.run(
            "outsider",
            join + " on conflict (project_id, user_id) do update set role = excluded.role",
            {"who": teams.users["outsider"], "role": "admin"},
        )
    # Having failed to join, the outsider still reaches nothing of P.
    assert teams.run("outsider", "select count(*) from tasks where project_id = %(p)s") == (0,)
    with REFUSED:
        teams.run("outsider", "insert into tasks (project_id, title) values (%(p)s, 'mine now')")


def test_prod_refuses_moving_memberships_and_rows_to_another_group(prod: tuple[Teams, Any]) -> None:
    teams, _ = prod
    # A membership update is checked on both rows: no promotion of oneself (one's own row is not
    # even seen by an update), no move to a group the writer does not administer.
    assert teams.run("member", "update project_members set role = 'admin' where user_id = %(member)s") == 0
    with REFUSED:
        teams.run("admin", "update project_members set project_id = %(q)s where user_id = %(member)s")
    with REFUSED:
        teams.run("admin", "update project_members set user_id = %(admin)s where user_id = %(member)s")
    # Q's owner may not move its task into P, nor write into P.
    with REFUSED:
        teams.run("anonymous_sign_in", "update tasks set project_id = %(p)s where id = %(q_task)s")
    with REFUSED:
        teams.run("anonymous_sign_in", "insert into comments (task_id, body) values (%(task)s, 'x')")
    # P's admin may not move P's task into Q, which it does not administer.
    with REFUSED:
        teams.run("admin", "update tasks set project_id = %(q)s where id = %(task)s")
    # Nobody creates a project in someone else's name, or hands theirs over.
    with REFUSED:
        teams.run("outsider", "insert into projects (owner_id, name) values (%(owner)s, 'spoof')")
    with REFUSED:
        teams.run("owner", "update projects set owner_id = %(outsider)s where id = %(p)s")


def test_prod_a_member_may_leave_and_admins_manage_members(prod: tuple[Teams, Any]) -> None:
    teams, _ = prod
    assert teams.run("member", "delete from project_members where user_id = %(member)s and project_id = %(p)s") == 1
    assert teams.run("outsider", "delete from project_members where user_id = %(member)s") == 0
    add = "insert into project_members (project_id, user_id, role) values (%(p)s, %(newcomer)s, 'member')"
    assert teams.run("admin", add) == 1
    # Members read who else is in their group (with each one's role), outsiders nothing.
    assert teams.run("member", "select count(*) from project_members where project_id = %(p)s") == (3,)
    assert teams.run("outsider", "select count(*) from project_members") == (0,)
    # Inserting and reading back in one request, as PostgREST's `return=representation` does.
    created = teams.run("outsider", "insert into projects (name) values ('mine') returning owner_id")
    assert created == (teams.users["outsider"],)


def test_prod_grants_follow_the_access_kinds(prod: tuple[Teams, Any]) -> None:
    teams, stack = prod
    with psycopg.connect(teams.dsn) as conn:
        rows = conn.execute(
            "select c.relname, r.rolname, c.relrowsecurity, "
            "  array(select p from unnest(array['SELECT','INSERT','UPDATE','DELETE','TRUNCATE']) p "
            "        where has_table_privilege(r.oid, c.oid, p)) "
            "from pg_class c cross join pg_roles r "
            "where c.relnamespace = 'public'::regnamespace and c.relkind = 'r' "
            "and r.rolname in ('anon', 'authenticated')"
        ).fetchall()
        helpers = conn.execute(
            "select p.proname, p.prosecdef, p.proconfig, has_function_privilege('anon', p.oid, 'execute'), "
            "has_function_privilege('authenticated', p.oid, 'execute') from pg_proc p "
            "where p.pronamespace = 'supabase_access_rls'::regnamespace order by 1"
        ).fetchall()
    granted = {(table, role): privileges for table, role, _, privileges in rows}
    assert all(rls for _, _, rls, _ in rows)
    crud = ["SELECT", "INSERT", "UPDATE", "DELETE"]
    assert granted == {
        **{(t, "anon"): [] for t in TABLES},
        ("labels", "anon"): ["SELECT"],
        **{
            (t, "authenticated"): crud
            for t in ("projects", "project_members", "tasks", "milestones", "comments", "templates")
        },
        ("labels", "authenticated"): ["SELECT"],
        ("audit_log", "authenticated"): [],
    }
    config = ['search_path=""', "row_security=off"]
    assert helpers == [
        ("project_members_admin_groups", True, config, False, True),
        ("project_members_group_ids", True, config, False, True),
        ("project_members_groups", True, config, False, True),
    ]
    # One permissive policy per role and command (Supabase's multiple_permissive_policies), none on audit_log.
    with psycopg.connect(teams.dsn) as conn:
        per_command = conn.execute(
            "select tablename, cmd, r, count(*) from pg_policies, unnest(roles) r "
            "where schemaname = 'public' and permissive = 'PERMISSIVE' group by 1, 2, 3 having count(*) > 1"
        ).fetchall()
        audit = conn.execute("select count(*) from pg_policies where tablename = 'audit_log'").fetchone()
    assert per_command == [] and audit == (0,)
    # Applied again, nothing changes.
    assert changes(stack.preview().change_summary) == {}


def test_prod_catalog_holds_what_the_model_gives_and_no_more(prod: tuple[Teams, Any]) -> None:
    teams, _ = prod
    # Its one declared function for signed-in users; purge_audit_log (undeclared) for nobody but the server.
    declared = {"public.open_task_count()": ["authenticated"]}
    found = undeclared_and_missing(teams.dsn, plan_access(teams_model(), "owner"), functions=declared)
    assert found == ([], [])


# Every request names a row (Teams.run passes the seeded ids as parameters).
PURGE = "select public.purge_audit_log() where %(p)s is not null"


def test_prod_functions_are_callable_as_the_model_declares(prod: tuple[Teams, Any]) -> None:
    teams, _ = prod
    assert teams.run("member", "select public.open_task_count() where %(p)s is not null") is not None
    for persona in ("anon", "member", "owner"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for function"):
            teams.run(persona, PURGE)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for function"):
        teams.run("anon", "select public.open_task_count() where %(p)s is not null")
    teams.run("service_role", PURGE)


def test_dev_only_names_the_undeclared_functions(dev: tuple[Teams, Any]) -> None:
    teams, stack = dev
    teams.run("anon", PURGE)  # a dev stack warns and leaves it open
    preview = stack.preview()
    assert "public.purge_audit_log(): add `purge_audit_log: [authenticated]`" in preview.stdout


def test_dev_catalog_holds_what_the_open_profile_gives_and_no_more(dev: tuple[Teams, Any]) -> None:
    teams, _ = dev
    assert undeclared_and_missing(teams.dsn, plan_access(teams_model(), "open")) == ([], [])


def test_prod_destroy_removes_the_group_functions(teams_dsn: Any, tmp_path: Path) -> None:
    dsn = teams_dsn()
    before = catalog_snapshot(dsn)
    stack = new_stack(tmp_path / "prod", "prod", dsn, OWNER)
    stack.up()
    stack.destroy()
    # Exactly what was there: table, sequence and function ACLs (PUBLIC's EXECUTE included), policies, ...
    assert catalog_snapshot(dsn) == before
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select count(*) from pg_namespace where nspname = 'supabase_access_rls'").fetchone() == (
            0,
        )
        assert conn.execute("select count(*) from pg_policies where schemaname = 'public'").fetchone() == (0,)


def test_the_access_matrix_probes_group_personas(prod: tuple[Teams, Any]) -> None:
    teams, _ = prod
    matrix = compute_matrix(teams.dsn, teams_model())
    assert matrix.notes == ()  # every probe was decided by a privilege or a policy
    member, admin = "authenticated (member of A's groups)", "authenticated (admin of A's groups)"
    assert matrix.personas[4:6] == (member, admin)

    def row(persona: str, table: str) -> str:
        return "".join(matrix.symbol(Cell(persona, table, op, whose)) for op in OPERATIONS for whose in WHOSE)

    # select own/other, insert own/other, update own/other, delete own/other; own = A's rows.
    assert row(member, "tasks") == "✓✗✗✗✗✗✗✗"
    assert row(admin, "tasks") == "✓✗✓✗✓✗✓✗"
    # comments are write: author (A's rows are A's): a member reads and adds, an admin also deletes.
    assert row(member, "comments") == "✓✗✓✗✗✗✗✗"
    assert row(admin, "comments") == "✓✗✓✗✗✗✓✗"
    assert row(member, "project_members") == "✓✗✗✗✗✗✗✗"
    # grants: admins add, change and remove members (A's guest is one).
    assert row(admin, "project_members") == "✓✗✓✗✓✗✓✗"
    assert row(admin, "milestones") == "✓✗✗✗✗✗✗✗"
    assert row(admin, "projects") == "✓✗✗✗✗✗✗✗"
    assert row("authenticated (anonymous B)", "tasks") == "✓✗✓✗✓✗✓✗"  # B's own project, not A's
    assert row("anon", "labels") == "✓✓✗✗✗✗✗✗"
    assert row("authenticated (permanent)", "audit_log") == "✗✗✗✗✗✗✗✗"
    assert row("service_role", "audit_log") == "✓✓✓✓✓✓✓✓"
    assert "member of A's groups" in matrix.render_text()


def add_project_r(teams: Teams) -> None:
    """Project R of `boss`: the owner's own row (an admin, as the app's trigger or server writes it),
    `deputy` an admin, `plain` and `plain2` members; a task in R and a comment of plain's on it.
    Committed by the server; the tests' own requests are rolled back."""
    for name in ("boss", "deputy", "plain", "plain2", "fresh"):
        teams.users.setdefault(name, add_user(teams.dsn))
    if "r" in teams.rows:
        return
    rows = teams.rows
    (rows["r"],) = teams.run(
        "service_role", "insert into projects (owner_id, name) values (%(boss)s, 'R') returning id", commit=True
    )
    for user, role in (("boss", "admin"), ("deputy", "admin"), ("plain", "member"), ("plain2", "member")):
        teams.run(
            "service_role",
            "insert into project_members (project_id, user_id, role) values (%(r)s, %(user)s, %(role)s)",
            {"user": teams.users[user], "role": role},
            commit=True,
        )
    (rows["r_task"],) = teams.run(
        "service_role", "insert into tasks (project_id, title) values (%(r)s, 'TR') returning id", commit=True
    )
    (rows["r_comment"],) = teams.run(
        "plain", "insert into comments (task_id, body) values (%(r_task)s, 'mine') returning author_id, id", commit=True
    )[1:]


def role_of(teams: Teams, user: str) -> Any:
    return teams.run(
        "service_role",
        "select role from project_members where project_id = %(r)s and user_id = %(u)s",
        {"u": teams.users[user]},
    )


GRANT = "insert into project_members (project_id, user_id, role) values (%(r)s, %(who)s, %(role)s)"
SET_ROLE = "update project_members set role = %(role)s where project_id = %(r)s and user_id = %(who)s"
REMOVE = "delete from project_members where project_id = %(r)s and user_id = %(who)s"
UPSERT = GRANT + " on conflict (project_id, user_id) do update set role = excluded.role"


def test_prod_group_roles_are_granted_as_the_model_says(prod: tuple[Teams, Any]) -> None:
    """grants: {admin: owner, member: admins}: refused, then allowed, as PostgREST runs each request."""
    teams, _ = prod
    add_project_r(teams)
    users = teams.users

    def ask(persona: str, statement: str, who: str, role: str = "member") -> Any:
        return teams.run(persona, statement, {"who": users[who], "role": role})

    # An admin adding or making an admin; a member promoting themself (by update, insert or upsert).
    for persona, statement, who in (
        ("deputy", GRANT, "fresh"),
        ("deputy", SET_ROLE, "plain"),
        ("deputy", UPSERT, "plain"),
        ("plain", GRANT, "plain"),
        ("plain", UPSERT, "plain"),
        ("fresh", GRANT, "fresh"),
    ):
        with REFUSED:
            ask(persona, statement, who, "admin")
    # Nobody's own row is theirs to change (not even seen by an update); the owner's row is nobody's.
    assert ask("plain", SET_ROLE, "plain", "admin") == 0
    assert ask("deputy", SET_ROLE, "deputy", "member") == 0
    assert ask("deputy", SET_ROLE, "boss", "member") == 0  # demoting the owner
    assert ask("deputy", REMOVE, "boss") == 0  # removing the owner
    assert ask("boss", REMOVE, "boss") == 0  # the owner does not leave
    assert ask("boss", SET_ROLE, "boss", "member") == 0
    assert ask("deputy", REMOVE, "deputy") == 1  # an admin may leave, as any member
    # The owner's row holds an admin role: an admin re-adding the owner as a plain member is refused.
    with psycopg.connect(teams.dsn) as conn:
        conn.execute(
            "delete from project_members where project_id = %s and user_id = %s", (teams.rows["r"], users["boss"])
        )
        # Within this transaction only, as PostgREST would (its claims), an admin adds the owner back as a member.
        conn.execute("set local role authenticated")
        conn.execute(
            "select set_config('request.jwt.claims', %s, true)",
            (Persona.signed_in(users["deputy"], is_anonymous=False).claims_setting(),),
        )
        with REFUSED:
            conn.execute(GRANT, {"r": teams.rows["r"], "who": users["boss"], "role": "member"})
        conn.rollback()
    assert role_of(teams, "boss") == ("admin",)
    # Allowed: everything the model gives.
    for persona, statement, who, role in (
        ("boss", GRANT, "fresh", "admin"),
        ("boss", SET_ROLE, "deputy", "member"),
        ("boss", SET_ROLE, "plain", "admin"),
        ("boss", REMOVE, "deputy", "member"),
        ("deputy", GRANT, "fresh", "member"),
        ("deputy", UPSERT, "fresh", "member"),
        ("deputy", REMOVE, "plain", "member"),
        ("plain", REMOVE, "plain", "member"),
    ):
        assert ask(persona, statement, who, role) == 1, (persona, statement, who, role)
    assert role_of(teams, "deputy") == ("admin",)  # every request above was rolled back


COMMENT = "%(r_comment)s"


def test_prod_authors_edit_their_rows_and_admins_delete_any(prod: tuple[Teams, Any]) -> None:
    """write: author, author: author_id, delete: admins on comments (two hops below the project)."""
    teams, _ = prod
    add_project_r(teams)
    edit = f"update comments set body = 'edited' where id = {COMMENT}"
    remove = f"delete from comments where id = {COMMENT}"
    # A non-author editing a note: the owner, an admin, another member; taking authorship over.
    for persona in ("boss", "deputy", "plain2", "outsider"):
        assert teams.run(persona, edit) == 0
        assert teams.run(persona, f"update comments set author_id = %({persona})s where id = {COMMENT}") == 0
    for persona in ("plain2", "outsider", "fresh"):
        assert teams.run(persona, remove) == 0
    # A forged author on insert, a rewritten one on update, an upsert over someone else's row.
    with REFUSED:
        teams.run("plain2", "insert into comments (task_id, body, author_id) values (%(r_task)s, 'x', %(plain)s)")
    with REFUSED:
        teams.run("plain", f"update comments set author_id = %(plain2)s where id = {COMMENT}")
    with REFUSED:
        teams.run(
            "plain2",
            f"insert into comments (id, task_id, body) values ({COMMENT}, %(r_task)s, 'x') "
            "on conflict (id) do update set body = excluded.body",
        )
    with REFUSED:
        teams.run("fresh", "insert into comments (task_id, body) values (%(r_task)s, 'not a member')")
    # Allowed: members read and write their own; the author edits (also by upsert) and deletes; admins and
    # the owner delete any.
    assert teams.run("plain2", f"select count(*) from comments where id = {COMMENT}") == (1,)
    assert teams.run(
        "plain2", "insert into comments (task_id, body) values (%(r_task)s, 'hers') returning author_id"
    ) == (teams.users["plain2"],)
    assert teams.run("plain", edit) == 1
    assert (
        teams.run(
            "plain",
            f"insert into comments (id, task_id, body) values ({COMMENT}, %(r_task)s, 'x') "
            "on conflict (id) do update set body = excluded.body",
        )
        == 1
    )
    for persona in ("plain", "deputy", "boss"):
        assert teams.run(persona, remove) == 1, persona


def test_prod_a_stack_takes_authors_and_grants_in_place(teams_dsn: Any, tmp_path: Path) -> None:
    """A teams stack from before the new keys (comments write: members, no grants) keeps its policies as
    they were; adding write: author and grants is one in-place up, and then the new rules hold."""
    dsn = teams_dsn()
    model = yaml.safe_load((REPO / MODEL_FILE).read_text())
    before = copy.deepcopy(model)
    before["tables"]["comments"] = {"through": {"column": "task_id", "table": "tasks"}, "write": "members"}
    del before["tables"]["project_members"]["membership"]["grants"]
    config = {**OWNER, "supabase-access:model": json.dumps(before)}
    del config["supabase-access:modelFile"]
    stack = new_stack(tmp_path / "prod", "prod", dsn, config)
    stack.up()
    with psycopg.connect(dsn) as conn:
        old = conn.execute(
            "select tablename, policyname from pg_policies where tablename in ('comments', 'project_members') "
            "order by 1, 2"
        ).fetchall()
    assert [name for _, name in old] == [
        "comments_delete_member",
        "comments_insert_member",
        "comments_select_member",
        "comments_update_member",
        "project_members_delete_admin_or_self",
        "project_members_insert_admin",
        "project_members_select_member",
    ]
    stack.set_config("supabase-access:model", auto.ConfigValue(json.dumps(model)))
    upgrade = stack.up()
    assert "replace" not in (upgrade.summary.resource_changes or {}), upgrade.stdout
    # In place: the two tables' policies, project_members' Grant (UPDATE) and what RLS revokes, the preflight.
    assert set(changes(upgrade.summary.resource_changes)) == {"update"}, upgrade.stdout
    teams = seed(dsn)
    assert matrix(teams) == PROD_MATRIX
    assert changes(stack.preview().change_summary) == {}


def test_prod_copy_group_on_a_stack_with_rows_then_destroy_is_exact(teams_dsn: Any, tmp_path: Path) -> None:
    """`copyGroup: true` on comments of a prod stack holding rows: one up adds, fills and indexes the copy
    and moves the policies onto it; every persona keeps exactly its access; taking it out again drops it;
    destroy gives back the catalog."""
    dsn = teams_dsn()
    before = catalog_snapshot(dsn)
    model = yaml.safe_load((REPO / MODEL_FILE).read_text())
    config = {**OWNER, "supabase-access:model": json.dumps(model)}
    del config["supabase-access:modelFile"]
    stack = new_stack(tmp_path / "prod", "prod", dsn, config)
    stack.up()
    teams = seed(dsn)
    model["tables"]["comments"]["copyGroup"] = True
    stack.set_config("supabase-access:model", auto.ConfigValue(json.dumps(model)))
    upgrade = stack.up()
    assert "replace" not in (upgrade.summary.resource_changes or {}), upgrade.stdout
    with psycopg.connect(dsn) as conn:
        assert conn.execute(
            "select count(*), count(*) filter (where c.project_id = t.project_id) from comments c "
            "join tasks t on t.id = c.task_id"
        ).fetchone() == (1, 1)
        policy = conn.execute(
            "select qual from pg_policies where tablename = 'comments' and policyname = 'comments_select_member'"
        ).fetchone()
    assert policy is not None and "project_id = ANY" in str(policy[0]) and "task_id" not in str(policy[0])
    assert matrix(teams) == PROD_MATRIX
    # A comment under Q's task, claiming P: the copy says Q, so the member of P is refused.
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        teams.run("member", "insert into comments (task_id, body, project_id) values (%(q_task)s, 'x', %(p)s)")
    assert changes(stack.preview().change_summary) == {}
    # Taken back out: the policies walk the path again before the copy goes, column and all.
    del model["tables"]["comments"]["copyGroup"]
    stack.set_config("supabase-access:model", auto.ConfigValue(json.dumps(model)))
    stack.up()
    with psycopg.connect(dsn) as conn:
        assert conn.execute(
            "select count(*) from information_schema.columns where table_name = 'comments' "
            "and column_name = 'project_id'"
        ).fetchone() == (0,)
    assert matrix(teams) == PROD_MATRIX
    stack.destroy()
    assert catalog_snapshot(dsn) == before
