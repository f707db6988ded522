"""What the preflight asks PostgreSQL: which policy expressions admit every row, which roles lack a grant."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import sql

from supabase_access.sql import catalog
from tests.support.localdb import legacy_platform

pytestmark = [pytest.mark.db, legacy_platform]

FOLDED = ("true", "1 = 1", "coalesce(true, false)", "true or user_id = auth.uid()", "sessions.id is not null or true")
FILTERING = (
    "user_id = (select auth.uid())",
    "auth.uid() is not null",
    "false",
    "title is not null",
    "sessions.title is not null",
    "exists (select 1 from public.turns t where t.session_id = sessions.id)",
)


def test_only_expressions_postgresql_folds_to_true_are_found(fresh_db: str) -> None:
    expressions = {text: text for text in FOLDED + FILTERING}
    with psycopg.connect(fresh_db) as conn:
        folded = catalog.expressions_folded_to_true(conn, "public", "sessions", expressions)
        # Nothing stays behind: the probe ran on a temporary copy in a rolled-back transaction.
        assert conn.execute("select count(*) from pg_class where relname = 'probe_sessions'").fetchone() == (0,)
    assert sorted(folded) == sorted(FOLDED)


def test_roles_lacking_every_wanted_privilege(fresh_db: str) -> None:
    reader = f"probe_reader_{uuid.uuid4().hex[:8]}"  # roles are the cluster's, shared by every test database
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(sql.SQL("create role {} nologin").format(sql.Identifier(reader)))
        conn.execute(sql.SQL("grant select on public.sessions to {}").format(sql.Identifier(reader)))
        try:
            wanted = {reader: ("INSERT",), "service_role": ("INSERT",)}
            assert catalog.roles_lacking_privilege(conn, "public", "sessions", wanted) == [reader]
            assert catalog.roles_lacking_privilege(conn, "public", "sessions", {reader: ("SELECT",)}) == []
        finally:
            conn.execute(sql.SQL("revoke all on public.sessions from {}").format(sql.Identifier(reader)))
            conn.execute(sql.SQL("drop role {}").format(sql.Identifier(reader)))


OWNER_RIGHTS_OBJECTS = """
create view public.session_titles as select id, title from public.sessions;
create view public.own_titles with (security_invoker = on) as select id, title from public.sessions;
create materialized view public.session_count as select count(*) from public.sessions;
create function public.count_all() returns bigint language sql security definer set search_path = ''
  as 'select count(*) from public.sessions';
create function public.count_mine() returns bigint language sql set search_path = ''
  as 'select count(*) from public.sessions';
create function public.hidden_count() returns bigint language sql security definer set search_path = ''
  as 'select count(*) from public.sessions';
revoke execute on function public.hidden_count() from public, anon, authenticated;
create schema private_things;
create view private_things.titles as select id, title from public.sessions;
grant usage on schema private_things to anon;
grant select on private_things.titles to anon;
"""


def test_objects_running_as_owner_are_the_api_reachable_definer_ones(fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(OWNER_RIGHTS_OBJECTS)
        _, found = catalog.exposed_surface(conn, ["public"], "public", [])
    # Not the security_invoker view, the invoker function, the one nobody may execute, nor what
    # lies outside the exposed schemas.
    assert [(o.kind, o.qualified, o.arguments) for o in found] == [
        ("function", "public.count_all", ""),
        ("materialized view", "public.session_count", ""),
        ("view", "public.session_titles", ""),
    ]
