"""The baseline access rules reproduce the guide's two errors, as PostgREST requests meet them.

Each test gets a database of its own and acts through `as_persona`: logged in as
authenticator, switched to the request's role, with the JWT claims set per transaction.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg.errors import ForeignKeyViolation, InsufficientPrivilege

from review.postgrest import Persona, RlsBypassError, as_persona, assert_rls_applies, connect_as_authenticator
from tests.support.localdb import legacy_platform

pytestmark = [pytest.mark.db, legacy_platform]

INSERT_SESSION = "insert into sessions (user_id, title) values (%s, 'first session')"


def add_user(dsn: str, *, is_anonymous: bool = True) -> uuid.UUID:
    """A row in auth.users, as Supabase Auth creates on sign-in (postgres may write auth.users)."""
    user_id = uuid.uuid4()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("insert into auth.users (id, is_anonymous) values (%s, %s)", (user_id, is_anonymous))
    return user_id


def test_anon_insert_without_jwt_violates_row_level_security(fresh_db: str) -> None:
    with connect_as_authenticator(fresh_db) as conn:
        with pytest.raises(InsufficientPrivilege) as raised, as_persona(conn, Persona.anon()) as cur:
            assert_rls_applies(cur)
            cur.execute(INSERT_SESSION, (uuid.uuid4(),))
    assert str(raised.value.diag.message_primary) == 'new row violates row-level security policy for table "sessions"'


def test_open_insert_policy_then_invented_user_id_violates_foreign_key(fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as owner:
        owner.execute("create policy t on sessions for insert to anon, authenticated with check (true)")
    with connect_as_authenticator(fresh_db) as conn:
        with pytest.raises(ForeignKeyViolation) as raised, as_persona(conn, Persona.anon()) as cur:
            assert_rls_applies(cur)
            cur.execute(INSERT_SESSION, (uuid.uuid4(),))
    assert (
        str(raised.value.diag.message_primary)
        == 'insert or update on table "sessions" violates foreign key constraint "sessions_user_id_fkey"'
    )


def test_signed_in_user_reaches_own_session_only(fresh_db: str) -> None:
    me, other = add_user(fresh_db), add_user(fresh_db)
    with psycopg.connect(fresh_db, autocommit=True) as owner:
        other_session = owner.execute("insert into sessions (user_id) values (%s) returning id", (other,)).fetchone()
    assert other_session is not None
    with connect_as_authenticator(fresh_db) as conn, as_persona(conn, Persona.signed_in(me, is_anonymous=True)) as cur:
        assert_rls_applies(cur)
        cur.execute(INSERT_SESSION + " returning id", (me,))
        mine = cur.fetchone()
        cur.execute("select id, user_id from sessions")
        assert cur.fetchall() == [(mine[0] if mine else None, me)]
        cur.execute("select id from sessions where id = %s", (other_session[0],))
        assert cur.fetchall() == []


def test_service_role_bypasses_rls_and_the_guard_says_so(fresh_db: str) -> None:
    user_id = add_user(fresh_db)
    with connect_as_authenticator(fresh_db) as conn, as_persona(conn, Persona.service()) as cur:
        cur.execute(INSERT_SESSION, (user_id,))
        assert cur.rowcount == 1
        with pytest.raises(RlsBypassError, match="has BYPASSRLS"):
            assert_rls_applies(cur)
    # The table owner is exempt too (no FORCE ROW LEVEL SECURITY).
    with psycopg.connect(fresh_db) as owner, owner.cursor() as cur:
        with pytest.raises(RlsBypassError, match=r"owns .*sessions"):
            assert_rls_applies(cur)
