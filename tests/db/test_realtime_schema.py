"""The local database's Realtime stand-in (database/00-supabase-realtime.sql) against what Supabase
documents and a hosted project's catalog shows, on both platforms.

Realtime's own migrations are Elixir (supabase/realtime) and are not among ../shared/supabase-platform's
files, so the facts are written here, each with where it comes from:
- Realtime Authorization guide (supabase.com/docs/guides/realtime/authorization): RLS policies on
  `realtime.messages`, `realtime.topic()` returning the topic joined, `extension` 'broadcast' or 'presence',
  SELECT to receive, INSERT to send; Realtime sets the role, `request.jwt.claims` and the topic, then
  queries the table and rolls back.
- A hosted project's `pg_dump` (schema realtime): the table's columns and defaults, partitioned by range
  on `inserted_at` with primary key (id, inserted_at), owned by supabase_realtime_admin; ALL to postgres,
  SELECT, INSERT, UPDATE to anon, authenticated and service_role; `realtime.topic()` is
  `select nullif(current_setting('realtime.topic', true), '')::text`, SQL, STABLE.
- Supabase's init script (sql/migrations/db/init-scripts/00000000000000-initial-schema.sql):
  `create publication supabase_realtime` (empty, every operation published), run as postgres.

Allowed differences: postgres is a member of supabase_realtime_admin (on Supabase, supautils'
policy_grants let postgres manage the policies without it); one default partition instead of
Realtime's daily ones; no dashboard_user (the stand-in has no dashboard).
"""

from __future__ import annotations

import uuid

import psycopg
import pytest

from review.postgrest import Persona, connect_as_authenticator
from review.realtime import ChannelAccess, join_channel, published_tables
from tests.support.localdb import both_platforms

pytestmark = pytest.mark.db

# name -> (type, not null, default): a hosted project's realtime.messages.
DOCUMENTED_COLUMNS = {
    "topic": ("text", True, None),
    "extension": ("text", True, None),
    "payload": ("jsonb", False, None),
    "event": ("text", False, None),
    "private": ("boolean", False, "false"),
    "updated_at": ("timestamp without time zone", True, "now()"),
    "inserted_at": ("timestamp without time zone", True, "now()"),
    "id": ("uuid", True, "gen_random_uuid()"),
}
API_ROLES = ("anon", "authenticated", "service_role")
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


@both_platforms
def test_messages_table_is_as_documented(fresh_db: str) -> None:
    with psycopg.connect(fresh_db) as conn:
        columns = conn.execute(
            "select a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid)"
            " from pg_attribute a left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum"
            " where a.attrelid = 'realtime.messages'::regclass and a.attnum > 0 and not a.attisdropped"
            " order by a.attnum"
        ).fetchall()
        assert {name: (kind, notnull, default) for name, kind, notnull, default in columns} == DOCUMENTED_COLUMNS
        assert [name for name, *_ in columns] == list(DOCUMENTED_COLUMNS)
        owner, rls, force, kind = conn.execute(
            "select relowner::regrole::text, relrowsecurity, relforcerowsecurity, relkind from pg_class"
            " where oid = 'realtime.messages'::regclass"
        ).fetchone() or (None, None, None, None)
        assert (owner, rls, force, kind) == ("supabase_realtime_admin", True, False, "p")
        partition_key, primary_key = conn.execute(
            "select pg_get_partkeydef('realtime.messages'::regclass),"
            " (select pg_get_constraintdef(oid) from pg_constraint"
            "  where conrelid = 'realtime.messages'::regclass and contype = 'p')"
        ).fetchone() or (None, None)
        assert (partition_key, primary_key) == ("RANGE (inserted_at)", "PRIMARY KEY (id, inserted_at)")
        assert conn.execute("select count(*) from pg_policies where schemaname = 'realtime'").fetchone() == (0,)


@both_platforms
def test_grants_are_supabases(fresh_db: str) -> None:
    with psycopg.connect(fresh_db) as conn:

        def held(role: str, relation: str) -> set[str]:
            return {
                p
                for p in TABLE_PRIVILEGES
                if conn.execute("select has_table_privilege(%s, %s, %s)", (role, relation, p)).fetchone() == (True,)
            }

        for role in API_ROLES:
            assert held(role, "realtime.messages") == {"SELECT", "INSERT", "UPDATE"}, role
            assert held(role, "realtime.messages_default") == set(), role
            assert conn.execute("select has_schema_privilege(%s, 'realtime', 'USAGE')", (role,)).fetchone() == (True,)
            assert conn.execute("select has_schema_privilege(%s, 'realtime', 'CREATE')", (role,)).fetchone() == (False,)
        assert held("postgres", "realtime.messages") >= {"SELECT", "INSERT", "UPDATE", "DELETE"}
        # The allowed difference: postgres manages the table's policies as a member of its owner.
        assert conn.execute("select pg_has_role('postgres', 'supabase_realtime_admin', 'USAGE')").fetchone() == (True,)


@both_platforms
def test_topic_reads_the_setting_realtime_sets(fresh_db: str) -> None:
    with psycopg.connect(fresh_db) as conn:
        volatility, language, owner, source = conn.execute(
            "select p.provolatile, l.lanname, p.proowner::regrole::text, p.prosrc from pg_proc p"
            " join pg_language l on l.oid = p.prolang where p.oid = 'realtime.topic()'::regprocedure"
        ).fetchone() or (None, None, None, "")
        assert (volatility, language, owner) == ("s", "sql", "supabase_realtime_admin")
        assert "current_setting('realtime.topic', true)" in source
        assert conn.execute("select realtime.topic()").fetchone() == (None,)
        with conn.transaction(force_rollback=True):
            conn.execute("select set_config('realtime.topic', '', true)")
            assert conn.execute("select realtime.topic()").fetchone() == (None,)
            conn.execute("select set_config('realtime.topic', 'project:1', true)")
            for role in API_ROLES:
                conn.execute(f"set local role {role}")
                assert conn.execute("select realtime.topic()").fetchone() == ("project:1",)
                conn.execute("reset role")


@both_platforms
def test_publication_is_supabases(fresh_db: str) -> None:
    with psycopg.connect(fresh_db) as conn:
        row = conn.execute(
            "select pubowner::regrole::text, puballtables, pubinsert, pubupdate, pubdelete, pubtruncate"
            " from pg_publication where pubname = 'supabase_realtime'"
        ).fetchone()
        assert row == ("postgres", False, True, True, True, True)
        assert published_tables(conn) == set()


@both_platforms
def test_without_policies_no_private_channel_joins(fresh_db: str) -> None:
    user = Persona.signed_in(uuid.uuid4(), is_anonymous=False)
    # authenticator (as PostgREST and the review connect; it holds nothing on realtime.messages itself)
    # and the database owner: the join is asked the same way on both.
    for connect in (connect_as_authenticator, lambda dsn: psycopg.connect(dsn, autocommit=True)):
        with connect(fresh_db) as conn:
            for persona in (Persona.anon(), user):
                access = join_channel(conn, persona, "project:1")
                assert (access.receive, access.send) == (frozenset(), frozenset())
            # service_role bypasses row-level security, as Realtime's server-side broadcasts do.
            access = join_channel(conn, Persona.service(), "project:1")
            assert access.receive == access.send == frozenset({"broadcast", "presence"})
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("select count(*) from realtime.messages").fetchone() == (0,)


@both_platforms
def test_a_join_on_an_authenticator_connection_writes_as_realtime_would(fresh_db: str) -> None:
    """The login itself writes nothing (authenticator may not); the probe messages are written as service_role,
    the send check's as the persona, whose INSERT policy decides; a policy admitting a user's sends to their
    own topic only is honoured, and the persona's claims are what the policies read."""
    me, other = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(fresh_db) as conn:
        conn.execute(
            "create policy mine on realtime.messages for all to authenticated "
            "using (realtime.topic() = 'user:' || (select auth.uid())::text) "
            "with check (realtime.topic() = 'user:' || (select auth.uid())::text)"
        )
    with connect_as_authenticator(fresh_db) as conn:
        # Not even USAGE on the schema: whatever it writes there, it writes as another role.
        assert conn.execute("select current_user, has_schema_privilege('realtime', 'usage')").fetchone() == (
            "authenticator",
            False,
        )
        persona = Persona.signed_in(me, is_anonymous=False)
        both = frozenset({"broadcast", "presence"})
        assert join_channel(conn, persona, f"user:{me}") == ChannelAccess(both, both)
        assert join_channel(conn, persona, f"user:{other}") == ChannelAccess(frozenset(), frozenset())
        assert conn.execute("select current_user").fetchone() == ("authenticator",)
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("select count(*) from realtime.messages").fetchone() == (0,)
