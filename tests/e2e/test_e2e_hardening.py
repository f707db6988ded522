"""End to end: a prod stack with writeQuotas, retention and permanentUsersOnly, through the real engine.

`pulumi up` through the Automation API on a database of the test's own; the limits are then
met as PostgREST requests; `destroy` leaves the database as it found it.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pulumi import automation as auto

from review.postgrest import Persona, as_persona, connect_as_authenticator
from tests.support.engine import changes, new_stack

pytestmark = pytest.mark.e2e

HARDENED = {
    "supabase-access:environment": "prod",
    "supabase-access:profile": "owner",
    "supabase-access:writeQuotas": json.dumps({"sessions": {"perHour": 2}, "generated_content": {"perHour": 3}}),
    "supabase-access:retention": json.dumps({"anonymousUsersDays": 30, "sessionsDays": 180}),
    "supabase-access:permanentUsersOnly": json.dumps({"generated_content": ["INSERT"]}),
}
INSERT_CONTENT = "insert into generated_content (session_id, kind) values (%s, 'summary')"


def add_user(dsn: str, *, anonymous: bool) -> uuid.UUID:
    user_id = uuid.uuid4()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("insert into auth.users (id, is_anonymous) values (%s, %s)", (user_id, anonymous))
    return user_id


def request(dsn: str, persona: Persona, statement: str, params: tuple[Any, ...]) -> Any:
    with connect_as_authenticator(dsn) as conn, as_persona(conn, persona, commit=True) as cur:
        cur.execute(statement, params)
        row = cur.fetchone() if cur.description else None
    return None if row is None else row[0]


def database_state(dsn: str) -> dict[str, Any]:
    """What the hardening touches: the app's triggers, private schema and its tables, indexes,
    generated_content's policies (Storage's own triggers are the platform's)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return {
            "triggers": sorted(
                r[0]
                for r in conn.execute(
                    "select t.tgname || ' on ' || t.tgrelid::regclass from pg_trigger t "
                    "join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace "
                    "where not t.tgisinternal and n.nspname = 'public'"
                )
            ),
            "schemas": sorted(
                r[0] for r in conn.execute("select nspname from pg_namespace where nspname like 'supabase%'")
            ),
            "private tables": sorted(
                r[0] for r in conn.execute("select tablename from pg_tables where schemaname = 'supabase_access'")
            ),
            "indexes": sorted(
                r[0] for r in conn.execute("select indexname from pg_indexes where schemaname = 'public'")
            ),
            "policies": sorted(
                r[0] for r in conn.execute("select policyname from pg_policies where tablename = 'generated_content'")
            ),
        }


def test_up_enforces_quotas_retention_and_permanent_users_only_and_destroy_removes_them(
    tmp_path: Path,
    fresh_db: str,
) -> None:
    before = database_state(fresh_db)
    stack = new_stack(tmp_path / "local-prod", "local-prod", fresh_db, HARDENED)
    up = stack.up()
    summary = up.outputs["hardening"].value
    assert summary["writeQuotas"] == {
        "sessions": "at most 2 new rows per user per hour",
        "generated_content": "at most 3 new rows per user per hour",
    }
    assert summary["quotaSqlstate"] == "PT429"
    retention = summary["retention"]
    assert retention["scheduled"] is False and retention["status"].startswith("not scheduled: pg_cron is not installed")
    assert retention["runManually"] == 'select kind, removed from "supabase_access"."purge_expired"();'

    applied = database_state(fresh_db)
    assert applied["triggers"] == [
        "supabase_access_write_quota on generated_content",
        "supabase_access_write_quota on sessions",
    ]
    assert applied["schemas"] == ["supabase_access"]
    # One usage row per user and quota; no index on the app's tables. The ledger: what destroy restores.
    assert applied["private tables"] == [
        "ledger",
        "write_quota_public_generated_content_usage",
        "write_quota_public_sessions_usage",
    ]
    # The quotas build no index on the app's tables, and the app's own indexes serve the owner policies' lookups.
    assert applied["indexes"] == before["indexes"]
    assert "generated_content_insert_not_anonymous" in applied["policies"]

    # The quota fires at N+1, per user, through the owner profile's policies.
    guest, member = add_user(fresh_db, anonymous=True), add_user(fresh_db, anonymous=False)
    as_guest, as_member = Persona.signed_in(guest, is_anonymous=True), Persona.signed_in(member, is_anonymous=False)
    new_session = "insert into sessions (user_id) values (%s) returning id"
    guest_session = request(fresh_db, as_guest, new_session, (guest,))
    second = request(fresh_db, as_guest, new_session, (guest,))
    # Deleting a row does not give the quota back.
    request(fresh_db, as_guest, "delete from sessions where id = %s", (second,))
    with pytest.raises(psycopg.Error) as refused:
        request(fresh_db, as_guest, new_session, (guest,))
    assert refused.value.sqlstate == "PT429"
    assert (refused.value.diag.message_hint or "").startswith("Try again after ")
    member_session = request(fresh_db, as_member, new_session, (member,))

    # Only permanent users may add generated content, and they too within their quota.
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="generated_content_insert_not_anonymous"):
        request(fresh_db, as_guest, INSERT_CONTENT, (guest_session,))
    for _ in range(3):
        request(fresh_db, as_member, INSERT_CONTENT, (member_session,))
    with pytest.raises(psycopg.Error, match=r"write quota exceeded: at most 3 new rows in public\.generated_content"):
        request(fresh_db, as_member, INSERT_CONTENT, (member_session,))

    # The purge runs as the output says; nothing is old enough yet.
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        assert dict(conn.execute(retention["runManually"]).fetchall()) == {
            "sessions_of_anonymous_users": 0,
            "anonymous_users": 0,
            "expired_sessions": 0,
        }

    # Converged: nothing to do on a second up or a refresh.
    assert changes(stack.up().summary.resource_changes) == {}
    assert changes(stack.refresh().summary.resource_changes) == {}

    stack.destroy()
    assert database_state(fresh_db) == before


def test_a_bad_hardening_value_fails_preview_naming_the_setting(
    tmp_path: Path,
    fresh_db: str,
) -> None:
    config = {**HARDENED, "supabase-access:retention": json.dumps({"anonymousUsersDays": "soon"})}
    stack = new_stack(tmp_path / "bad", "bad", fresh_db, config)
    with pytest.raises(auto.errors.CommandError) as info:
        stack.preview()
    assert "supabase-access:retention.anonymousUsersDays: expected a whole number from 1 to 36500" in str(info.value)
