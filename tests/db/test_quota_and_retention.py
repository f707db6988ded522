"""WriteQuota, RetentionPolicy and permanent-users-only policies on a real database, met as PostgREST requests.

The resources are applied through the provider classes themselves (check, create, read,
diff, update, delete) with a `Database` on the test's own database; requests go through
`as_persona`: logged in as authenticator, switched to the request's role, JWT claims set.
"""

from __future__ import annotations

import re
import threading
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import sql

from review.postgrest import Persona, as_persona, assert_rls_applies, connect_as_authenticator
from supabase_access.model import hardening
from supabase_access.model.access_model import load_model_file
from supabase_access.model.profiles import plan_access
from supabase_access.model.rule_data import rule_to_plain
from supabase_access.provider.base import CURRENT_STACK, InputError
from supabase_access.provider.resources.retention_policy import RetentionPolicy
from supabase_access.provider.resources.table_policies import TablePolicies
from supabase_access.provider.resources.write_quota import WriteQuota
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from supabase_access.sql.errors import CatalogError
from supabase_access.sql.statements import plan_policies
from tests.support.localdb import legacy_platform
from tests.support.paths import REPO

pytestmark = [pytest.mark.db, legacy_platform]
MODEL = load_model_file(REPO / "access-model.yaml", setting="supabase-access:modelFile")
HINT = re.compile(r"^Try again after \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(in (\d+) seconds\)\.$")
messages: list[str] = []


def log(message: str) -> None:
    messages.append(message)


def quota_inputs(table: str, limit: int, window: str = "perHour") -> dict[str, Any]:
    (target,) = hardening.write_quota_targets(MODEL, [hardening.WriteQuotaSetting(table, limit, window)])
    return target.to_plain()


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
            "tables": sorted(
                r[0] for r in conn.execute("select tablename from pg_tables where schemaname = 'supabase_access'")
            ),
            "indexes": sorted(
                r[0] for r in conn.execute("select indexname from pg_indexes where schemaname = 'public'")
            ),
        }


USAGE = "supabase_access.write_quota_public_sessions_usage"


def usage_of(dsn: str, user_id: uuid.UUID, table: str = "sessions") -> tuple[Any, ...] | None:
    """(window_start, inserts) of a user in a quota's usage table, read as the admin."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(
            f"select window_start, inserts from supabase_access.write_quota_public_{table}_usage where user_id = %s",
            (user_id,),
        ).fetchone()


def start_window_ago(dsn: str, user_id: uuid.UUID, seconds: int) -> None:
    """Move a user's window back in time, as the admin (as if the hour had passed)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            f"update {USAGE} set window_start = now() - make_interval(secs => %s) where user_id = %s",
            (seconds, user_id),
        )


# --- write quotas ------------------------------------------------------------------------------


def test_quota_fires_at_n_plus_one_per_user_and_not_for_service_role(db: Database, fresh_db: str) -> None:
    outputs = create_quota(db, "sessions", 3)
    assert outputs["sqlstate"] == "PT429" and outputs["function"] == "supabase_access.write_quota_public_sessions"
    assert outputs["usageTable"] == USAGE
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
    assert re.match(
        r"^The window started at the requesting user's first insert in it, at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\.$",
        error.diag.message_detail or "",
    ), error.diag.message_detail

    # User B has a quota of their own.
    for _ in range(3):
        new_session(fresh_db, Persona.signed_in(b, is_anonymous=False), b)
    with pytest.raises(psycopg.Error, match="write quota exceeded"):
        new_session(fresh_db, Persona.signed_in(b, is_anonymous=False), b)

    # The trusted server is never limited, even for A's rows, and does not use up A's quota.
    for _ in range(2):
        new_session(fresh_db, Persona.service(), a)
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("select count(*) from sessions where user_id = %s", (a,)).fetchone() == (5,)
    assert (usage_of(fresh_db, a) or ())[1:] == (3,)


def test_deleting_rows_does_not_free_quota_and_refused_inserts_do_not_count(db: Database, fresh_db: str) -> None:
    create_quota(db, "sessions", 2)
    a, b = add_user(fresh_db, anonymous=True), add_user(fresh_db, anonymous=True)
    first = new_session(fresh_db, anonymous(a), a)
    new_session(fresh_db, anonymous(a), a)
    # The owner policies let A delete their own session: the quota counts inserts, not rows.
    insert_as(fresh_db, anonymous(a), "delete from sessions where id = %s", (first,))
    for _ in range(2):
        with pytest.raises(psycopg.Error) as refused:
            new_session(fresh_db, anonymous(a), a)
        assert refused.value.sqlstate == "PT429"
    # The refused inserts rolled their increments back.
    assert (usage_of(fresh_db, a) or ())[1:] == (2,)
    # B, meanwhile, is untouched by A's use.
    assert usage_of(fresh_db, b) is None
    new_session(fresh_db, anonymous(b), b)
    assert (usage_of(fresh_db, b) or ())[1:] == (1,)


def test_an_expired_window_lets_the_user_insert_again_and_restarts_the_count(db: Database, fresh_db: str) -> None:
    create_quota(db, "sessions", 2)
    a = add_user(fresh_db, anonymous=True)
    for _ in range(2):
        new_session(fresh_db, anonymous(a), a)
    # Still inside the window one second before it ends: refused, with the hint counting down to its end.
    start_window_ago(fresh_db, a, 3600 - 30)
    with pytest.raises(psycopg.Error) as refused:
        new_session(fresh_db, anonymous(a), a)
    hint = HINT.match(refused.value.diag.message_hint or "")
    assert hint is not None and 1 <= int(hint.group(1)) <= 30, refused.value.diag.message_hint

    start_window_ago(fresh_db, a, 3600)  # the window has ended
    new_session(fresh_db, anonymous(a), a)
    usage = usage_of(fresh_db, a)
    assert usage is not None and usage[1] == 1
    with psycopg.connect(fresh_db, autocommit=True) as conn:  # the new window starts at this insert
        assert conn.execute("select now() - %s < interval '1 minute'", (usage[0],)).fetchone() == (True,)
    new_session(fresh_db, anonymous(a), a)
    with pytest.raises(psycopg.Error, match="write quota exceeded"):
        new_session(fresh_db, anonymous(a), a)


def test_concurrent_inserts_of_one_user_cannot_overshoot(db: Database, fresh_db: str) -> None:
    create_quota(db, "sessions", 1)
    a = add_user(fresh_db, anonymous=True)
    outcome: list[BaseException | None] = []
    with connect_as_authenticator(fresh_db) as first, as_persona(first, anonymous(a), commit=True) as cur:
        cur.execute("insert into sessions (user_id) values (%s)", (a,))

        def second() -> None:
            try:
                new_session(fresh_db, anonymous(a), a)
                outcome.append(None)
            except psycopg.Error as exc:
                outcome.append(exc)

        # The second request waits on the user's usage row until the first one commits.
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(1.0)
        assert thread.is_alive() and not outcome
    thread.join(10)
    (error,) = outcome
    assert isinstance(error, psycopg.Error) and error.sqlstate == "PT429"
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("select count(*) from sessions where user_id = %s", (a,)).fetchone() == (1,)


def test_quota_on_a_child_table_counts_the_users_inserts(db: Database, fresh_db: str) -> None:
    create_quota(db, "generated_content", 2)
    a, b = add_user(fresh_db, anonymous=True), add_user(fresh_db, anonymous=True)
    first, second = new_session(fresh_db, anonymous(a), a), new_session(fresh_db, anonymous(a), a)
    insert = "insert into generated_content (session_id, kind) values (%s, 'summary')"
    insert_as(fresh_db, anonymous(a), insert, (first,))
    # A backdated row counts like any other: the quota counts inserts, not timestamps.
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
    # The sessions table has no quota: A's two sessions are not counted here.
    assert (usage_of(fresh_db, a, "generated_content") or ())[1:] == (2,)

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
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        assert conn.execute(f"select count(*) from {USAGE}").fetchone() == (0,)


def test_usage_tables_live_and_die_with_their_quotas(db: Database, fresh_db: str) -> None:
    before = catalog_state(fresh_db)
    sessions = create_quota(db, "sessions", 5)
    content = create_quota(db, "generated_content", 5)
    state = catalog_state(fresh_db)
    assert state["triggers"] == ["generated_content", "sessions"]
    assert state["tables"] == ["write_quota_public_generated_content_usage", "write_quota_public_sessions_usage"]
    assert state["indexes"] == before["indexes"]  # counting needs no index on the app's tables
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        (options,) = conn.execute(f"select reloptions from pg_class where oid = '{USAGE}'::regclass").fetchone() or (
            None,
        )
    assert options == ["fillfactor=50"]
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        # UNLOGGED: the counts write no WAL; a crash restarts the windows.
        assert conn.execute(f"select relpersistence from pg_class where oid = '{USAGE}'::regclass").fetchone() == ("u",)

    WriteQuota().delete(db, sessions, log)
    state = catalog_state(fresh_db)
    assert state["triggers"] == ["generated_content"] and state["schema"] == (1,)  # still used
    assert state["tables"] == ["write_quota_public_generated_content_usage"]
    WriteQuota().delete(db, content, log)
    assert catalog_state(fresh_db) == before  # schema gone too


def test_a_quota_trigger_names_its_stack_and_another_stack_neither_takes_nor_drops_it(
    db: Database, fresh_db: str
) -> None:
    def trigger_comment() -> str | None:
        with psycopg.connect(fresh_db, autocommit=True) as conn:
            row = conn.execute(catalog.read_trigger_query(), ("public", "sessions", hardening.QUOTA_TRIGGER)).fetchone()
        return None if row is None else row[4]

    before = catalog_state(fresh_db)
    token = CURRENT_STACK.set("prod")
    try:
        ours = create_quota(db, "sessions", 5)
    finally:
        CURRENT_STACK.reset(token)
    assert trigger_comment() == render.stack_marker("prod")
    token = CURRENT_STACK.set("staging")
    try:
        with pytest.raises(CatalogError, match=r"public\.sessions already has a write quota, managed by stack 'prod'"):
            WriteQuota().check(db, {}, quota_inputs("sessions", 9))
        with pytest.raises(CatalogError, match="managed by stack 'prod'"):
            WriteQuota().create(db, {**ours, "limit": 9}, log)  # the apply checks again, under the table's lock
        WriteQuota().delete(db, ours, log)
        assert messages[-1] == "left the write quota on public.sessions: stack 'prod' manages it now"
        assert trigger_comment() == render.stack_marker("prod")
    finally:
        CURRENT_STACK.reset(token)
    token = CURRENT_STACK.set("prod")
    try:
        WriteQuota().delete(db, ours, log)
    finally:
        CURRENT_STACK.reset(token)
    assert catalog_state(fresh_db) == before


def test_update_from_a_counting_quota_drops_its_old_index_only_if_ours(db: Database, fresh_db: str) -> None:
    """A state written by the version that counted rows on an index it built (QUOTA_INDEX_MARKER)."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("create index sessions_user_id_created_at_quota_idx on sessions (user_id, created_at)")
        conn.execute(
            sql.SQL("comment on index sessions_user_id_created_at_quota_idx is {}").format(
                sql.Literal(render.QUOTA_INDEX_MARKER)
            )
        )
        conn.execute("create index app_content_by_session_time on generated_content (session_id, created_at)")
    resource = WriteQuota()
    old_inputs = {**quota_inputs("sessions", 3), "privateSchema": "supabase_access"}
    old_sessions = {
        **old_inputs,
        "path": [],
        "ownerColumn": "user_id",
        "timestampColumn": "created_at",
        "index": "sessions_user_id_created_at_quota_idx",
        "indexCreated": True,
    }
    inputs = resource.check(db, old_sessions, old_inputs)
    assert set(inputs) == {"schema", "table", "limit", "windowSeconds", "windowLabel", "privateSchema"}
    assert resource.diff(db, old_sessions, inputs).changes == {
        "trigger": "update",
        "function": "update",
        "usageTable": "update",
        "index": "delete",
    }
    state = resource.update(db, old_sessions, inputs, log)
    assert "index" not in state and "indexCreated" not in state
    assert "sessions_user_id_created_at_quota_idx" not in catalog_state(fresh_db)["indexes"]
    assert resource.diff(db, state, inputs).changes == {}

    # An index the app had, which the old quota used (indexCreated false), stays.
    content_inputs = resource.check(db, {}, quota_inputs("generated_content", 3))
    old_content = {**content_inputs, "index": "app_content_by_session_time", "indexCreated": False}
    resource.delete(db, old_content, log)
    assert "app_content_by_session_time" in catalog_state(fresh_db)["indexes"]


def test_read_and_diff_report_drift_and_update_repairs_it(db: Database, fresh_db: str) -> None:
    resource = WriteQuota()
    inputs = resource.check(db, {}, quota_inputs("sessions", 3))
    resource_id, state = resource.create(db, inputs, log)
    assert resource.diff(db, state, inputs).changes == {}
    outputs, current = resource.read(db, resource_id, state, inputs) or ({}, {})
    assert current == inputs and outputs["triggerEnabled"] is True
    # An import has only the id: the trigger says the rest.
    imported = resource.read(db, resource_id, {}, {})
    assert imported is not None and imported[1] == inputs

    with psycopg.connect(fresh_db, autocommit=True) as conn:  # someone raises the limit by hand
        conn.execute("drop trigger supabase_access_write_quota on sessions")
        conn.execute(
            "create trigger supabase_access_write_quota before insert on sessions for each row "
            "execute function supabase_access.write_quota_public_sessions('99', '3600', 'hour')"
        )
    assert resource.diff(db, state, inputs).changes == {"limit": "update"}
    found = resource.read(db, resource_id, state, inputs)
    assert found is not None and found[1]["limit"] == 99

    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("alter table sessions disable trigger supabase_access_write_quota")
    assert resource.diff(db, state, inputs).changes == {"trigger": "update"}
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("drop trigger supabase_access_write_quota on sessions")
    assert resource.read(db, resource_id, state, inputs) is None
    assert resource.diff(db, state, inputs).changes == {"trigger": "update"}

    resource.update(db, state, inputs, log)
    assert resource.diff(db, state, inputs).changes == {}

    # The counts survive an update (a changed limit); a hand-changed usage table is recreated.
    user = add_user(fresh_db, anonymous=True)
    new_session(fresh_db, anonymous(user), user)
    changed = resource.check(db, inputs, {**inputs, "limit": 7})
    assert resource.diff(db, state, changed).changes == {"limit": "update"}
    resource.update(db, state, changed, log)
    found = resource.read(db, resource_id, state, changed)
    assert found is not None and found[1]["limit"] == 7
    assert (usage_of(fresh_db, user) or ())[1:] == (1,)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(f"alter table {USAGE} drop column inserts")
    assert resource.diff(db, state, changed).changes == {"usageTable": "update"}
    resource.update(db, state, changed, log)
    assert resource.diff(db, state, changed).changes == {}
    new_session(fresh_db, anonymous(user), user)
    assert (usage_of(fresh_db, user) or ())[1:] == (1,)


def test_update_from_a_logged_usage_table_keeps_the_counts(db: Database, fresh_db: str) -> None:
    """A quota applied by the version whose usage table was logged and whose trigger upserted on every insert."""
    resource = WriteQuota()
    inputs = resource.check(db, {}, quota_inputs("sessions", 3))
    _, state = resource.create(db, inputs, log)
    user = add_user(fresh_db, anonymous=True)
    for _ in range(2):
        new_session(fresh_db, anonymous(user), user)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(f"alter table {USAGE} set logged")
        body = conn.execute(
            "select prosrc from pg_proc where oid = 'supabase_access.write_quota_public_sessions'::regproc"
        ).fetchone()
        assert body is not None
        conn.execute(
            sql.SQL(
                "create or replace function supabase_access.write_quota_public_sessions() returns trigger "
                "language plpgsql security definer set search_path = '' as {}"
            ).format(sql.Literal(body[0] + "\n-- an earlier version\n"))
        )
    assert resource.diff(db, state, inputs).changes == {"function": "update", "usageTable": "update"}
    resource.update(db, state, inputs, log)
    assert resource.diff(db, state, inputs).changes == {}
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        assert conn.execute(f"select relpersistence from pg_class where oid = '{USAGE}'::regclass").fetchone() == ("u",)
    assert (usage_of(fresh_db, user) or ())[1:] == (2,)  # the counts survived the rewrite
    new_session(fresh_db, anonymous(user), user)
    with pytest.raises(psycopg.Error, match="write quota exceeded"):
        new_session(fresh_db, anonymous(user), user)


@pytest.mark.parametrize(
    ("change", "property", "message"),
    [
        ({"limit": 0}, "limit", "limit: expected a whole number"),
        ({"windowSeconds": 31 * 86400 + 1}, "windowSeconds", "windowSeconds: expected a whole number"),
        ({"windowLabel": "Hour!"}, "windowLabel", "windowLabel: expected a few lower-case words"),
        ({"table": "nope"}, "table", "public.nope does not exist"),
    ],
)
def test_check_names_the_bad_input(db: Database, change: dict[str, Any], property: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        WriteQuota().check(db, {}, {**quota_inputs("sessions", 3), **change})
    assert info.value.property == property and message in info.value.reason


def test_forced_rls_on_the_table_does_not_matter_to_the_quota(db: Database, fresh_db: str) -> None:
    # The function never reads the table, so FORCE RLS (which would hide its rows from us) is fine.
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("alter table sessions force row level security")
    create_quota(db, "sessions", 1)
    user = add_user(fresh_db, anonymous=True)
    new_session(fresh_db, anonymous(user), user)
    with pytest.raises(psycopg.Error, match="write quota exceeded"):
        new_session(fresh_db, anonymous(user), user)


def test_private_schema_is_closed_to_the_api_roles(db: Database, fresh_db: str) -> None:
    create_quota(db, "sessions", 3)
    RetentionPolicy().create(db, RetentionPolicy().check(db, {}, retention_inputs(30, None)), log)
    user = add_user(fresh_db, anonymous=True)
    new_session(fresh_db, anonymous(user), user)
    for persona in (Persona.anon(), anonymous(user)):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for schema supabase_access"):
            insert_as(fresh_db, persona, "select * from supabase_access.purge_expired()", ())
        for statement in (f"select * from {USAGE}", f"update {USAGE} set inserts = 0"):
            with pytest.raises(
                psycopg.errors.InsufficientPrivilege, match="permission denied for schema supabase_access"
            ):
                insert_as(fresh_db, persona, statement, ())
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        for role in ("anon", "authenticated", "public"):
            grantee = "coalesce((select oid from pg_roles where rolname = %s), 0)"
            functions = conn.execute(
                "select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace, "
                f"aclexplode(p.proacl) a where n.nspname = 'supabase_access' and a.grantee = {grantee}",
                (role,),
            ).fetchone()
            tables = conn.execute(
                "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace, "
                f"aclexplode(c.relacl) a where n.nspname = 'supabase_access' and a.grantee = {grantee}",
                (role,),
            ).fetchone()
            assert functions == (0,) and tables == (0,), role
            if role != "public":
                # Even a grant on the schema would not open the table: it has none for the API roles.
                usable = conn.execute(f"select has_table_privilege(%s, '{USAGE}', 'select')", (role,)).fetchone()
                assert usable == (False,), role


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
    assert resource.diff(db, state, inputs).changes == {}
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("alter function supabase_access.purge_expired(integer, integer) rename to purge_old")
    assert resource.read(db, resource_id, state, inputs) is None
    assert resource.diff(db, state, inputs).changes == {"function": "update"}
    resource.update(db, state, inputs, log)
    changed = resource.check(db, inputs, {**inputs, "sessionsDays": 60})
    assert resource.diff(db, state, changed).changes == {"sessionsDays": "update"}

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
    # pg_cron "installed": the resource asks PostgreSQL with this query (in one round trip with others).
    monkeypatch.setattr(catalog, "cron_installed_query", lambda: sql.SQL("select true"))
    assert resource.diff(db, state, inputs).changes == {"scheduled": "update"}  # pg_cron appeared
    state = resource.update(db, state, inputs, log)
    assert state["scheduled"] is True and state["status"].startswith("scheduled with pg_cron")
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        jobs = conn.execute("select jobname, schedule, command from cron.job").fetchall()
    assert jobs == [
        (hardening.DEFAULT_PURGE_JOB, "17 3 * * *", 'select kind, removed from "supabase_access"."purge_expired"()')
    ]
    assert resource.diff(db, state, inputs).changes == {}
    resource.delete(db, state, log)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        assert conn.execute("select count(*) from cron.job").fetchone() == (0,)


# --- permanent users only ----------------------------------------------------------------------


def test_restrictive_policy_refuses_anonymous_sign_ins_and_allows_permanent_users(db: Database, fresh_db: str) -> None:
    owner_policies = plan_policies(plan_access(MODEL, "owner"))["generated_content"]
    (not_anonymous,) = hardening.permanent_users_only_policies({"generated_content": ("INSERT",)})["generated_content"]
    # As the program sends them: the owner rules as SQL, the restrictive rule still as data (the check renders it).
    policies = {p.name: p.to_plain() for p in owner_policies} | {not_anonymous.name: rule_to_plain(not_anonymous)}
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
