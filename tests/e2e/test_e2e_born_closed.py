"""Born closed on prod: what postgres creates after `up` in an exposed schema gives anon and
authenticated nothing (default privileges), the next preview names it, destroy puts Supabase's
defaults back."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest
from pulumi import automation as auto

from review.postgrest import Persona, as_persona, connect_as_authenticator
from tests.support.engine import changes, new_stack
from tests.support.localdb import legacy_platform

# Written against the legacy platform's auto-grants (what the stack closes or keeps from them).
pytestmark = [pytest.mark.e2e, legacy_platform]

OWNER = {"supabase-access:environment": "prod", "supabase-access:profile": "owner"}


def default_acls(dsn: str) -> list[tuple[str, str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select d.defaclobjtype::text, d.defaclacl::text from pg_default_acl d "
            "where d.defaclrole = 'postgres'::regrole and d.defaclnamespace = 'public'::regnamespace order by 1"
        ).fetchall()
    return [(str(t), str(acl)) for t, acl in rows]


def test_a_table_created_after_up_is_closed_and_named_by_the_next_preview(tmp_path: Path, fresh_db: str) -> None:
    before = default_acls(fresh_db)
    assert any("anon=arwdDxt" in acl for _, acl in before)  # Supabase's defaults: everything
    stack = new_stack(tmp_path / "prod", "prod", fresh_db, OWNER)
    preview = stack.preview()
    # The local postgres role, like any non-superuser on plain PostgreSQL, may not create event triggers.
    assert "RLS is not switched on automatically for new tables: the login role may not create event triggers" in (
        " ".join(preview.stdout.split())
    )
    stack.up()
    assert changes(stack.preview().change_summary) == {}
    with psycopg.connect(fresh_db) as conn:
        conn.execute("create table notes (id bigint generated always as identity primary key, body text)")
        conn.execute("create function public.shout(t text) returns text language sql as $$ select upper(t) $$")
        conn.execute("insert into notes (body) values ('written by the app owner')")
        grantees = conn.execute(
            "select distinct grantee from information_schema.role_table_grants where table_name = 'notes'"
        ).fetchall()
    assert {g for (g,) in grantees} <= {"postgres", "service_role"}
    user = uuid.uuid4()
    with psycopg.connect(fresh_db) as conn:
        conn.execute("insert into auth.users (id) values (%s)", (user,))
    with connect_as_authenticator(fresh_db) as conn:
        for persona in (Persona.anon(), Persona.signed_in(user, is_anonymous=True)):
            for statement in ("select * from notes", "insert into notes (body) values ('x')", "delete from notes"):
                with as_persona(conn, persona) as cur, pytest.raises(psycopg.errors.InsufficientPrivilege):
                    cur.execute(statement)
    # The next preview names it (on prod: fails, nothing applied).
    with pytest.raises(auto.errors.CommandError) as info:
        stack.preview()
    assert "public.notes (RLS off)" in " ".join(str(info.value).split())
    with psycopg.connect(fresh_db) as conn:
        conn.execute("drop table notes")
    stack.destroy()
    assert default_acls(fresh_db) == before


def test_where_the_login_role_may_the_event_trigger_switches_rls_on_for_new_tables(
    fresh_db: str, localdb_admin_conninfo: str
) -> None:
    """The trigger itself, installed as a superuser (as Supabase lets its postgres role)."""
    from supabase_access.provider.resources.rls_for_new_tables import RlsForNewTables
    from supabase_access.sql.database import Database

    params = psycopg.conninfo.conninfo_to_dict(fresh_db)
    socket = psycopg.conninfo.conninfo_to_dict(localdb_admin_conninfo)
    admin = Database(
        {
            # The local superuser over the cluster's unix socket (trust): no password of its own to know.
            "host": socket["host"],
            "port": socket.get("port", 5432),
            "database": params["dbname"],
            "username": "supabase_admin",
            "password": "unused-over-the-socket",
        }
    )
    resource = RlsForNewTables()
    messages: list[str] = []
    try:
        inputs = resource.check(admin, {}, {"schemas": ["public"]})
        _, state = resource.create(admin, inputs, messages.append)
        assert state["installed"] is True and messages == []
        with psycopg.connect(fresh_db) as conn:
            conn.execute("create schema internal")
            conn.execute("create table public.born (id int)")
            conn.execute("create table public.copied as select 1 as id")
            conn.execute("create table internal.elsewhere (id int)")
            rows = conn.execute(
                "select relname, relrowsecurity from pg_class where relname in ('born', 'copied', 'elsewhere') "
                "order by 1"
            ).fetchall()
        assert rows == [("born", True), ("copied", True), ("elsewhere", False)]
        resource.delete(admin, state, messages.append)
        with psycopg.connect(fresh_db) as conn:
            assert conn.execute("select count(*) from pg_event_trigger").fetchone() == (0,)
    finally:
        admin.close()
