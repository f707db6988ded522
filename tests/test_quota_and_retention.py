"""WriteQuota, RetentionPolicy and permanent-users-only policies on a real database, met as PostgREST requests.

The resources are applied through the provider classes themselves (check, create, read,
diff, update, delete) with a `Database` on the test's own database; requests go through
`as_persona`: logged in as authenticator, switched to the request's role, JWT claims set.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from supabase_access import hardening
from supabase_access.model import load_model_file
from supabase_access.postgrest import Persona, as_persona, assert_rls_applies, connect_as_authenticator
from supabase_access.profiles import plan_access
from supabase_access.provider import retention
from supabase_access.provider.base import InputError
from supabase_access.provider.database import Database
from supabase_access.provider.policies import TablePolicies
from supabase_access.provider.quotas import WriteQuota
from supabase_access.provider.retention import RetentionPolicy
from supabase_access.sql import plan_policies
from tests.test_hardening_settings import REPO

pytestmark = pytest.mark.db
MODEL = load_model_file(REPO / "access-model.yaml", setting="supabase-access:modelFile")
HINT = re.compile(r"^Try again after \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(in (\d+) seconds\)\.$")
messages: list[str] = []


def log(message: str) -> None:
    messages.append(message)


@pytest.fixture
def db(fresh_db: str) -> Iterator[Database]:
    params = conninfo_to_dict(fresh_db)
    database = Database(
        {
            "host": params["host"],
            "port": params.get("port", 5432),
            "database": params["dbname"],
            "username": params["user"],
            "password": params["password"],
        }
    )
    yield database
    database.close()


def quota_inputs(table: str, limit: int, window: str = "perHour") -> dict[str, Any]:
    (target,) = hardening.write_quota_targets(MODEL, [hardening.WriteQuotaSetting(table, limit, window)])
    return {
        "schema": target.schema,
        "table": target.table,
        "path": [asdict(hop) for hop in target.hops],
        "ownerColumn": target.owner_column,
        "limit": target.limit,
        "windowSeconds": target.window_seconds,
        "windowLabel": target.window_label,
    }


def create_quota(db: Database, table: str, limit: int) -> dict[str, Any]:
    resource = WriteQuota()
    checked = resource.check(db, {}, quota_inputs(table, limit))
    resource_id, outputs = resource.create(db, checked, log)
    assert resource_id == f"public.{table}"
    return outputs


def retention_inputs(anonymous_users_days: int | None, sessions_days: int | None) -> dict[str, Any]:
    target = hardening.retention_target(
        MODEL, hardening.RetentionSetting(anonymous_users_days, sessions_days, "sessions")
    )
    return {
        "schema": target.schema,
        "ownedTables": [{"table": t.table, "ownerColumn": t.owner_column} for t in target.owned_tables],
        "sessionsTable": target.sessions_table,
        "sessionsTimestampColumn": target.sessions_timestamp_column,
        "anonymousUsersDays": anonymous_users_days,
        "sessionsDays": sessions_days,
    }


def add_user(dsn: str, *, anonymous: bool, days_old: int = 0) -> uuid.UUID:
    """A row in auth.users as Supabase Auth creates it (postgres may write auth.users)."""
    user_id = uuid.uuid4()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "insert into auth.users (id, is_anonymous, created_at) values (%s, %s, now() - make_interval(days => %s))",
            (user_id, anonymous, days_old),
        )
    return user_id


def insert_as(dsn: str, persona: Persona, statement: str, params: tuple[Any, ...]) -> Any:
    """One committed API request; returns the first column of its first row, if any."""
    with connect_as_authenticator(dsn) as conn, as_persona(conn, persona, commit=True) as cur:
        if persona.role != "service_role":
            assert_rls_applies(cur)
        cur.execute(statement, params)
        row = cur.fetchone() if cur.description else None
    return None if row is None else row[0]


def new_session(dsn: str, persona: Persona, user_id: uuid.UUID) -> uuid.UUID:
    return insert_as(dsn, persona, "insert into sessions (user_id) values (%s) returning id", (user_id,))  # type: ignore[no-any-return]


def anonymous(user_id: uuid.UUID) -> Persona:
    return Persona.signed_in(user_id, is_anonymous=True)


def catalog_state(dsn: str) -> dict[str, Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return {
            "schema": conn.execute("select count(*) from pg_namespace where nspname = 'supabase_access'").fetchone(),
            "triggers": sorted(
                r[0]
                for r in conn.execute(
                    "select tgrelid::regclass::text from pg_trigger where tgname = 'supabase_access_write_quota'"
                )
            ),
            "indexes": sorted(
                r[0] for r in conn.execute("select indexname from pg_indexes where schemaname = 'public'")
            ),
        }


# --- write quotas ------------------------------------------------------------------------------


def test_quota_fires_at_n_plus_one_per_user_and_not_for_service_role(db: Database, fresh_db: str) -> None:
    outputs = create_quota(db, "sessions", 3)
    assert outputs["sqlstate"] == "PT429" and outputs["function"] == "supabase_access.write_quota_public_sessions"
    a, b = add_user(fresh_db, anonymous=True), add_user(fresh_db, anonymous=False)

    for _ in range(3):  # N inserts: all allowed
        new_session(fresh_db, anonymous(a), a)
    with pytest.raises(psycopg.Error) as refused:
        new_session(fresh_db, anonymous(a), a)
    error = refused.value
    assert error.sqlstate == "PT429"
    assert error.diag.message_primary == "write quota exceeded: at most 3 new rows in public.sessions per user per hour"
    hint = HINT.match(error.diag.message_hint or "")
    assert hint is not None and 3500 < int(hint.group(1)) <= 3600, error.diag.message_hint

    # User B has a quota of their own.
    for _ in range(3):
        new_session(fresh_db, Persona.signed_in(b, is_anonymous=False), b)
    with pytest.raises(psycopg.Error, match="write quota exceeded"):
        new_session(fresh_db, Persona.signed_in(b, is_anonymous=False), b)

    # The trusted server is never limited, even for A's rows.
    for _ in range(2):
        new_session(fresh_db, Persona.service(), a)
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("select count(*) from sessions where user_id = %s", (a,)).fetchone() == (5,)


def test_quota_on_a_child_table_counts_the_users_rows_through_the_ownership_path(db: Database, fresh_db: str) -> None:
    create_quota(db, "generated_content", 2)
    a, b = add_user(fresh_db, anonymous=True), add_user(fresh_db, anonymous=True)
    first, second = new_session(fresh_db, anonymous(a), a), new_session(fresh_db, anonymous(a), a)
    insert = "insert into generated_content (session_id, kind) values (%s, 'summary')"
    insert_as(fresh_db, anonymous(a), insert, (first,))
    # Backdating the row does not hide it from the quota: the trigger stamps created_at.
    insert_as(
        fresh_db,
        anonymous(a),
        "insert into generated_content (session_id, kind, created_at) values (%s, 'x', '2000-01-01')",
        (second,),
    )
    with pytest.raises(psycopg.Error) as refused:
        insert_as(fresh_db, anonymous(a), insert, (first,))
    assert refused.value.sqlstate == "PT429"
    assert "public.generated_content" in (refused.value.diag.message_primary or "")

    # B's rows are counted apart; a multi-row insert over the limit is refused as a whole.
    mine = new_session(fresh_db, anonymous(b), b)
    many = "insert into generated_content (session_id, kind) values (%s, 'a'), (%s, 'b'), (%s, 'c')"
    with pytest.raises(psycopg.Error, match="write quota exceeded"):
        insert_as(fresh_db, anonymous(b), many, (mine, mine, mine))
    insert_as(
        fresh_db,
        anonymous(b),
        "insert into generated_content (session_id, kind) values (%s, 'a'), (%s, 'b')",
        (mine, mine),
    )
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("select count(*) from generated_content where session_id = %s", (mine,)).fetchone() == (2,)


def test_requests_without_a_user_are_left_to_rls(db: Database, fresh_db: str) -> None:
    create_quota(db, "sessions", 1)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        new_session(fresh_db, Persona.anon(), uuid.uuid4())


def test_index_is_created_when_missing_and_dropped_only_if_ours(db: Database, fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("create index app_content_by_session_time on generated_content (session_id, created_at)")
    before = catalog_state(fresh_db)
    sessions = create_quota(db, "sessions", 5)
    content = create_quota(db, "generated_content", 5)
    # sessions had only (user_id): the quota built (user_id, created_at); generated_content had one already.
    assert (sessions["index"], sessions["indexCreated"]) == ("sessions_user_id_created_at_quota_idx", True)
    assert (content["index"], content["indexCreated"]) == ("app_content_by_session_time", False)
    assert catalog_state(fresh_db)["triggers"] == ["generated_content", "sessions"]
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        plan = conn.execute(
            "explain select 1 from sessions where user_id = %s and created_at > now() - interval '1 hour' "
            "order by created_at desc limit 1",
            (uuid.uuid4(),),
        ).fetchall()
    assert "sessions_user_id_created_at_quota_idx" in str(plan)

    WriteQuota().delete(db, sessions, log)
    state = catalog_state(fresh_db)
    assert state["triggers"] == ["generated_content"] and state["schema"] == (1,)  # still used
    WriteQuota().delete(db, content, log)
    assert catalog_state(fresh_db) == before  # the app's own index stays, ours is gone, schema too


def test_read_and_diff_report_drift_and_update_repairs_it(db: Database, fresh_db: str) -> None:
    resource = WriteQuota()
    inputs = resource.check(db, {}, quota_inputs("sessions", 3))
    resource_id, state = resource.create(db, inputs, log)
    assert resource.diff_live(db, state, inputs) == {}
    outputs, current = resource.read(db, resource_id, state, inputs) or ({}, {})
    assert current == inputs and outputs["triggerEnabled"] is True

    with psycopg.connect(fresh_db, autocommit=True) as conn:  # someone raises the limit by hand
        conn.execute("drop trigger supabase_access_write_quota on sessions")
        conn.execute(
            "create trigger supabase_access_write_quota before insert on sessions for each row "
            "execute function supabase_access.write_quota_public_sessions('99', '3600', 'hour')"
        )
    assert resource.diff_live(db, state, inputs) == {"limit": "update"}
    found = resource.read(db, resource_id, state, inputs)
    assert found is not None and found[1]["limit"] == 99

    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("alter table sessions disable trigger supabase_access_write_quota")
    assert resource.diff_live(db, state, inputs) == {"trigger": "update"}
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("drop trigger supabase_access_write_quota on sessions")
    assert resource.read(db, resource_id, state, inputs) is None
    assert resource.diff_live(db, state, inputs) == {"trigger": "update"}

    resource.update(db, state, inputs, log)
    assert resource.diff_live(db, state, inputs) == {}
    changed = resource.check(db, inputs, {**inputs, "limit": 7})
    assert resource.diff_live(db, state, changed) == {"limit": "update"}
    resource.update(db, state, changed, log)
    found = resource.read(db, resource_id, state, changed)
    assert found is not None and found[1]["limit"] == 7


@pytest.mark.parametrize(
    ("change", "property", "message"),
    [
        ({"timestampColumn": "title"}, "timestampColumn", "is text, not a timestamp"),
        ({"timestampColumn": "nope"}, "timestampColumn", "has no column nope"),
        ({"ownerColumn": "owner"}, "ownerColumn", "public.sessions has no column owner"),
        ({"limit": 0}, "limit", "limit: expected a whole number"),
        ({"table": "nope"}, "table", "public.nope does not exist"),
    ],
)
def test_check_names_the_bad_input(db: Database, change: dict[str, Any], property: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        WriteQuota().check(db, {}, {**quota_inputs("sessions", 3), **change})
    assert info.value.property == property and message in info.value.reason


def test_forced_rls_the_function_could_not_see_through_is_refused(db: Database, fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("alter table sessions force row level security")
    with pytest.raises(InputError, match=r"row-level security applies to role postgres on public\.sessions"):
        WriteQuota().check(db, {}, quota_inputs("generated_content", 3))


def test_private_schema_is_closed_to_the_api_roles(db: Database, fresh_db: str) -> None:
    create_quota(db, "sessions", 3)
    RetentionPolicy().create(db, RetentionPolicy().check(db, {}, retention_inputs(30, None)), log)
    user = add_user(fresh_db, anonymous=True)
    for persona in (Persona.anon(), anonymous(user)):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for schema supabase_access"):
            insert_as(fresh_db, persona, "select * from supabase_access.purge_expired()", ())
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        for role in ("anon", "authenticated", "public"):
            grants = conn.execute(
                "select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace, "
                "aclexplode(p.proacl) a where n.nspname = 'supabase_access' "
                "and a.grantee = coalesce((select oid from pg_roles where rolname = %s), 0)",
                (role,),
            ).fetchone()
            assert grants == (0,), role


# --- retention ---------------------------------------------------------------------------------


def add_owned_rows(dsn: str, user_id: uuid.UUID, *, days_old: int = 0) -> uuid.UUID:
    """A session with one row in every child table (written as the table owner, as a fixture)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "insert into sessions (user_id, created_at) values (%s, now() - make_interval(days => %s)) returning id",
            (user_id, days_old),
        ).fetchone()
        assert row is not None
        session = row[0]
        conn.execute("insert into segments (session_id, position) values (%s, 1)", (session,))
        turn = conn.execute(
            "insert into turns (session_id, speaker) values (%s, 'user') returning id", (session,)
        ).fetchone()
        assert turn is not None
        conn.execute("insert into actions (turn_id, kind) values (%s, 'click')", (turn[0],))
        conn.execute("insert into generated_content (session_id, kind) values (%s, 'summary')", (session,))
    return session  # type: ignore[no-any-return]


def rows_of(dsn: str, user_id: uuid.UUID) -> dict[str, int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        counts = conn.execute(
            """
            select (select count(*) from auth.users where id = %(u)s),
                   (select count(*) from sessions where user_id = %(u)s),
                   (select count(*) from segments g join sessions s on s.id = g.session_id where s.user_id = %(u)s),
                   (select count(*) from turns t join sessions s on s.id = t.session_id where s.user_id = %(u)s),
                   (select count(*) from actions a join turns t on t.id = a.turn_id
                      join sessions s on s.id = t.session_id where s.user_id = %(u)s),
                   (select count(*) from generated_content g join sessions s on s.id = g.session_id
                      where s.user_id = %(u)s)
            """,
            {"u": user_id},
        ).fetchone()
    assert counts is not None
    return dict(zip(("users", "sessions", "segments", "turns", "actions", "generated_content"), counts, strict=True))


def test_purge_removes_old_anonymous_users_and_their_rows_and_nothing_else(db: Database, fresh_db: str) -> None:
    old_anonymous = add_user(fresh_db, anonymous=True, days_old=40)
    recent_anonymous = add_user(fresh_db, anonymous=True, days_old=5)
    old_permanent = add_user(fresh_db, anonymous=False, days_old=400)
    for user in (old_anonymous, recent_anonymous, old_permanent):
        add_owned_rows(fresh_db, user)
    everything = {"users": 1, "sessions": 1, "segments": 1, "turns": 1, "actions": 1, "generated_content": 1}

    resource = RetentionPolicy()
    resource_id, outputs = resource.create(db, resource.check(db, {}, retention_inputs(30, None)), log)
    assert resource_id == "supabase_access.purge_expired"
    # No pg_cron here: the outputs say so and give the exact SQL to run.
    assert outputs["scheduled"] is False
    assert outputs["runManually"] == 'select kind, removed from "supabase_access"."purge_expired"();'
    assert outputs["status"].startswith("not scheduled: pg_cron is not installed")
    assert outputs["runManually"] in outputs["status"]

    with psycopg.connect(fresh_db, autocommit=True) as conn:  # as postgres, as pg_cron would run it
        removed: dict[str, int] = dict(conn.execute(outputs["runManually"]).fetchall())
    assert removed == {"sessions_of_anonymous_users": 1, "anonymous_users": 1}
    assert rows_of(fresh_db, old_anonymous) == dict.fromkeys(everything, 0)
    assert rows_of(fresh_db, recent_anonymous) == everything
    assert rows_of(fresh_db, old_permanent) == everything

    resource.delete(db, outputs, log)
    assert catalog_state(fresh_db)["schema"] == (0,)


def test_purge_of_old_sessions_keeps_users_and_recent_sessions(db: Database, fresh_db: str) -> None:
    permanent = add_user(fresh_db, anonymous=False, days_old=400)
    old_session = add_owned_rows(fresh_db, permanent, days_old=100)
    add_owned_rows(fresh_db, permanent, days_old=10)
    resource = RetentionPolicy()
    _, outputs = resource.create(db, resource.check(db, {}, retention_inputs(30, 90)), log)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        removed: dict[str, int] = dict(conn.execute(outputs["runManually"]).fetchall())
        assert conn.execute("select count(*) from sessions where id = %s", (old_session,)).fetchone() == (0,)
    assert removed == {"sessions_of_anonymous_users": 0, "anonymous_users": 0, "expired_sessions": 1}
    assert rows_of(fresh_db, permanent) == {
        "users": 1,
        "sessions": 1,
        "segments": 1,
        "turns": 1,
        "actions": 1,
        "generated_content": 1,
    }


def test_retention_drift_and_a_pg_cron_stand_in(db: Database, fresh_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    resource = RetentionPolicy()
    inputs = resource.check(db, {}, retention_inputs(30, 90))
    resource_id, state = resource.create(db, inputs, log)
    assert resource.diff_live(db, state, inputs) == {}
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("alter function supabase_access.purge_expired(integer, integer) rename to purge_old")
    assert resource.read(db, resource_id, state, inputs) is None
    assert resource.diff_live(db, state, inputs) == {"function": "update"}
    resource.update(db, state, inputs, log)
    changed = resource.check(db, inputs, {**inputs, "sessionsDays": 60})
    assert resource.diff_live(db, state, changed) == {"sessionsDays": "update"}

    # A stand-in with pg_cron's cron.job, cron.schedule(name, schedule, command) and cron.unschedule(id):
    # the SQL the resource sends when the extension exists runs against it.
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("create schema cron")
        conn.execute(
            "create table cron.job (jobid bigserial primary key, jobname text unique, schedule text, command text)"
        )
        conn.execute(
            "create function cron.schedule(job_name text, schedule text, command text) returns bigint language sql as "
            "$$ insert into cron.job (jobname, schedule, command) values (job_name, schedule, command) "
            "on conflict (jobname) do update set schedule = excluded.schedule, command = excluded.command "
            "returning jobid $$"
        )
        conn.execute(
            "create function cron.unschedule(job_id bigint) returns boolean language sql as "
            "$$ delete from cron.job where jobid = job_id returning true $$"
        )
    monkeypatch.setattr(retention, "_cron_installed", lambda conn: True)
    assert resource.diff_live(db, state, inputs) == {"scheduled": "update"}  # pg_cron appeared
    state = resource.update(db, state, inputs, log)
    assert state["scheduled"] is True and state["status"].startswith("scheduled with pg_cron")
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        jobs = conn.execute("select jobname, schedule, command from cron.job").fetchall()
    assert jobs == [
        (hardening.DEFAULT_PURGE_JOB, "17 3 * * *", 'select kind, removed from "supabase_access"."purge_expired"()')
    ]
    assert resource.diff_live(db, state, inputs) == {}
    resource.delete(db, state, log)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        assert conn.execute("select count(*) from cron.job").fetchone() == (0,)


# --- permanent users only ----------------------------------------------------------------------


def test_restrictive_policy_refuses_anonymous_sign_ins_and_allows_permanent_users(db: Database, fresh_db: str) -> None:
    owner_policies = plan_policies(plan_access(MODEL, "owner"))["generated_content"]
    (not_anonymous,) = hardening.permanent_users_only_policies("public", {"generated_content": ("INSERT",)})[
        "generated_content"
    ]
    policies = {p.name: p.to_plain() for p in (*owner_policies, not_anonymous)}
    resource = TablePolicies()
    resource.create(db, resource.check(db, {}, {"table": "generated_content", "policies": policies}), log)

    guest, member = add_user(fresh_db, anonymous=True), add_user(fresh_db, anonymous=False)
    guest_session = new_session(fresh_db, anonymous(guest), guest)
    member_persona = Persona.signed_in(member, is_anonymous=False)
    member_session = new_session(fresh_db, member_persona, member)
    insert = "insert into generated_content (session_id, kind) values (%s, 'summary')"
    with pytest.raises(
        psycopg.errors.InsufficientPrivilege,
        match='violates row-level security policy "generated_content_insert_not_anonymous"',
    ):
        insert_as(fresh_db, anonymous(guest), insert, (guest_session,))
    insert_as(fresh_db, member_persona, insert, (member_session,))
    # Reading stays open to the guest: only the reserved command is restricted.
    with connect_as_authenticator(fresh_db) as conn, as_persona(conn, anonymous(guest)) as cur:
        cur.execute("select count(*) from generated_content")
        assert cur.fetchone() == (0,)
