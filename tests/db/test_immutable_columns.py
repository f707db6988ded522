"""ImmutableColumns on a real database: the API's change of an immutable column is refused (a definer
function's included), the server's and an operator's are not, an update leaving the columns alone never
calls the function; drift is seen, refresh reads it back, delete leaves nothing."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from review.postgrest import Persona, as_persona, connect_as_authenticator
from supabase_access.provider.resources.immutable_columns import ImmutableColumns
from supabase_access.sql.database import Database
from tests.support.fault import catalog_snapshot
from tests.support.localdb import both_platforms
from tests.support.resources import create, read

pytestmark = [pytest.mark.db, both_platforms]

INPUTS = {"schema": "public", "table": "sessions", "columns": ["user_id", "created_at"]}


def test_the_api_never_changes_an_immutable_column(db: Database, fresh_db: str) -> None:
    before = catalog_snapshot(fresh_db)
    user = uuid.uuid4()
    with psycopg.connect(fresh_db) as conn:
        conn.execute("insert into auth.users (id) values (%s)", (user,))
        conn.execute("insert into sessions (user_id, title) values (%s, 'a')", (user,))
        # A definer function (runs as postgres, past privileges and RLS) that the API may call.
        conn.execute(
            "create function public.steal(target uuid) returns void language sql security definer "
            "set search_path = '' as $$ update public.sessions set user_id = target $$"
        )
        conn.execute("grant select, update on sessions to authenticated, service_role")
    resource = ImmutableColumns()
    resource_id, checked, state = create(resource, db, dict(INPUTS))
    assert state["function"] == "supabase_access.immutable_public_sessions"
    assert resource.diff(db, state, checked).has_changes is False
    persona = Persona.signed_in(user, is_anonymous=False)
    with connect_as_authenticator(fresh_db) as conn:
        with as_persona(conn, persona) as cur, pytest.raises(psycopg.errors.InsufficientPrivilege, match="user_id"):
            cur.execute("select public.steal(gen_random_uuid())")
        with as_persona(conn, persona) as cur, pytest.raises(psycopg.errors.InsufficientPrivilege):
            cur.execute("update sessions set created_at = now() - interval '1 day'")
        with as_persona(conn, persona) as cur:
            cur.execute("update sessions set title = 'b', user_id = user_id")  # unchanged: allowed
            assert cur.rowcount == 1
        with as_persona(conn, Persona.service()) as cur:
            cur.execute("update sessions set created_at = created_at - interval '1 day'")
            assert cur.rowcount == 1
    # Drift: a disabled trigger is seen and the next update puts it back.
    with psycopg.connect(fresh_db) as conn:
        conn.execute("alter table sessions disable trigger supabase_access_immutable_columns")
    assert resource.diff(db, state, checked).has_changes is True
    state = resource.update(db, state, checked, print)
    assert resource.diff(db, state, checked).has_changes is False
    assert read(resource, db, resource_id, state, checked) == (state, checked)
    # A changed list of columns is an update in place.
    fewer = resource.check(db, checked, {**INPUTS, "columns": ["user_id"]})
    assert resource.diff(db, state, fewer).has_changes is True
    resource.delete(db, state, print)
    with psycopg.connect(fresh_db) as conn:
        conn.execute("drop function public.steal(uuid)")
        conn.execute("revoke select, update on sessions from authenticated, service_role")
    after = catalog_snapshot(fresh_db)
    assert after["triggers"] == before["triggers"] and after["functions"] == before["functions"]
    assert after["schemas"] == before["schemas"]
    assert read(resource, db, resource_id, state, checked) is None


def test_an_unknown_column_is_refused_naming_the_input(db: Database) -> None:
    with pytest.raises(Exception, match=r"columns: public\.sessions has no column nope"):
        ImmutableColumns().check(db, {}, {**INPUTS, "columns": ["nope"]})
