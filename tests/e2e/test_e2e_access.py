"""End to end: the real Pulumi engine and provider plugin against a real Supabase-like PostgreSQL.

Every test runs `pulumi preview/up/refresh/destroy` through the Automation API on a database
of its own, and checks the result the way the app sees it: as PostgREST's roles.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from pulumi import automation as auto

from review.postgrest import Persona, as_persona, connect_as_authenticator
from supabase_access.sql.statements import POLICY_INDEX_MARKER
from tests.support.catalog_check import public_acls, reference_plan, undeclared_and_missing
from tests.support.engine import changes, new_stack
from tests.support.fault import catalog_snapshot
from tests.support.localdb import both_platforms

pytestmark = pytest.mark.e2e

OPEN = {"supabase-access:environment": "dev", "supabase-access:profile": "open"}
OWNER = {"supabase-access:environment": "prod", "supabase-access:profile": "owner"}
StackFactory = Callable[..., auto.Stack]


@pytest.fixture
def make_stack(tmp_path: Path, fresh_db: str) -> StackFactory:
    def make(config: dict[str, str], name: str = "local", dsn: str | None = None) -> auto.Stack:
        return new_stack(tmp_path / name, name, dsn or fresh_db, config)

    return make


def policies(dsn: str, table: str) -> dict[str, str | None]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select policyname, coalesce(qual, with_check) from pg_policies where tablename = %s", (table,)
        ).fetchall()
    return dict(rows)


OPEN_PRIVILEGES = {"SELECT", "INSERT", "UPDATE", "DELETE"}


def table_privileges(dsn: str, table: str, role: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select privilege_type from information_schema.role_table_grants where table_name = %s and grantee = %s",
            (table, role),
        ).fetchall()
    return {privilege for (privilege,) in rows}


def add_user(dsn: str, *, anonymous: bool) -> uuid.UUID:
    user_id = uuid.uuid4()
    with psycopg.connect(dsn) as conn:
        conn.execute("insert into auth.users (id, is_anonymous) values (%s, %s)", (user_id, anonymous))
    return user_id


def insert_session(dsn: str, persona: Persona, user_id: uuid.UUID) -> None:
    with connect_as_authenticator(dsn) as conn, as_persona(conn, persona, commit=True) as cur:
        cur.execute("insert into sessions (user_id, title) values (%s, 'mine')", (user_id,))


def table_acls(dsn: str) -> dict[str, list[str]]:
    return public_acls(dsn, "table")


def server_reaches_every_table(dsn: str, user_id: uuid.UUID) -> None:
    """service_role (the secret key) writes and reads what it should, whatever the platform granted."""
    with connect_as_authenticator(dsn) as conn, as_persona(conn, Persona.service()) as cur:
        cur.execute("insert into sessions (user_id, title) values (%s, 'server') returning id", (user_id,))
        (session,) = cur.fetchone() or (None,)
        cur.execute("insert into turns (session_id, speaker) values (%s, 's') returning id", (session,))
        (turn,) = cur.fetchone() or (None,)
        cur.execute("insert into actions (turn_id, kind) values (%s, 'k')", (turn,))
        cur.execute("update sessions set title = 'edited' where id = %s", (session,))
        for table in ("sessions", "segments", "turns", "actions", "generated_content"):
            cur.execute(f"select count(*) from {table}")
        cur.execute("delete from sessions where id = %s", (session,))


@both_platforms
def test_open_profile_up_refresh_drift_and_destroy(make_stack: StackFactory, fresh_db: str, platform: str) -> None:
    acls_before = table_acls(fresh_db)
    visitor = uuid.uuid4()  # an id the client made up: not in auth.users
    # The guide's first error on the legacy platform; today's grants nothing to anon at all.
    refused = 'row-level security policy for table "sessions"' if platform == "legacy" else "permission denied"
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=refused):
        insert_session(fresh_db, Persona.anon(), visitor)

    stack = make_stack(OPEN)
    stack.up()
    insert_session(fresh_db, Persona.anon(), visitor)  # both of the guide's errors are gone
    server_reaches_every_table(fresh_db, visitor)
    assert undeclared_and_missing(fresh_db, reference_plan("open")) == ([], [])
    assert set(policies(fresh_db, "sessions")) == {
        f"sessions_{c}_open" for c in ("select", "insert", "update", "delete")
    }

    assert changes(stack.up().summary.resource_changes) == {}
    refreshed = stack.refresh()
    assert changes(refreshed.summary.resource_changes) == {}

    with psycopg.connect(fresh_db) as conn:
        conn.execute("create policy stray on sessions for select using (true)")
        conn.execute("alter policy segments_select_open on segments using (position > 0)")
    preview = stack.preview(diff=True, refresh=True)
    assert changes(preview.change_summary) == {"update": 2}
    assert "- stray: {" in preview.stdout
    assert 'using: "(\\"position\\" > 0)" => "true"' in preview.stdout
    stack.up()
    assert "stray" not in policies(fresh_db, "sessions")
    assert policies(fresh_db, "segments")["segments_select_open"] == "true"

    # Hand-made GRANT/REVOKE: pulumi-postgresql reads grants on refresh, so `--refresh` shows and repairs them.
    with psycopg.connect(fresh_db) as conn:
        conn.execute("revoke select on sessions from anon")
        conn.execute("grant truncate on segments to authenticated")
    preview = stack.preview(diff=True, refresh=True)
    assert changes(preview.change_summary) == {"update": 3}, preview.stdout
    for drifted in ("anon-sessions-grant", "authenticated-segments-grant", "segments-rls"):
        assert drifted in preview.stdout
    stack.up(refresh=True)
    assert table_privileges(fresh_db, "sessions", "anon") == OPEN_PRIVILEGES
    assert table_privileges(fresh_db, "segments", "authenticated") == OPEN_PRIVILEGES
    assert changes(stack.preview(refresh=True).change_summary) == {}

    with psycopg.connect(fresh_db) as conn:
        rows_before = conn.execute("select count(*) from sessions").fetchone()
    destroyed = stack.destroy()
    assert "restored sessions_user_id_fkey on public.sessions as NOT VALID: 1 existing row(s)" in destroyed.stdout
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("select count(*) from sessions").fetchone() == rows_before
        assert conn.execute(
            "select convalidated from pg_constraint where conname = 'sessions_user_id_fkey'"
        ).fetchone() == (False,)
    assert set(policies(fresh_db, "sessions")) == {
        f"sessions_{c}_own" for c in ("select", "insert", "update", "delete")
    }
    # Destroy gives back the privileges from before the stack (the legacy platform's defaults: everything
    # to the API roles and the server; today's: nothing), recorded in the ledger by the stack's first change.
    assert table_acls(fresh_db) == acls_before


def lookup_indexes(dsn: str) -> dict[str, str]:
    """Name -> definition of the indexes supabase-access built for policy lookups."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select i.relname, pg_get_indexdef(i.oid) from pg_class i join pg_index x on x.indexrelid = i.oid "
            "where obj_description(i.oid, 'pg_class') = %s",
            (POLICY_INDEX_MARKER,),
        ).fetchall()
    return dict(rows)


@both_platforms
def test_owner_profile_each_user_reaches_only_their_rows(make_stack: StackFactory, fresh_db: str) -> None:
    acls_before = table_acls(fresh_db)
    stack = make_stack(OWNER, name="local-prod")
    up = stack.up()
    # The app's own indexes on the lookup columns serve the policies' lookups: none is built beside them.
    assert lookup_indexes(fresh_db) == {}
    assert "using the app's index public.turns_session_id_idx on public.turns (session_id)" in up.stdout
    assert changes(stack.preview().change_summary) == {}
    assert changes(stack.up().summary.resource_changes) == {}
    a, b = add_user(fresh_db, anonymous=True), add_user(fresh_db, anonymous=True)
    as_a, as_b = Persona.signed_in(a, is_anonymous=True), Persona.signed_in(b, is_anonymous=True)
    insert_session(fresh_db, as_a, a)
    insert_session(fresh_db, as_b, b)
    server_reaches_every_table(fresh_db, b)
    assert undeclared_and_missing(fresh_db, reference_plan("owner"), functions={}) == ([], [])
    with connect_as_authenticator(fresh_db) as conn:
        with as_persona(conn, as_a) as cur:
            assert cur.execute("select user_id from sessions").fetchall() == [(a,)]
            (mine,) = cur.execute("select id from sessions").fetchall()
            (turn,) = cur.execute(
                "insert into turns (session_id, speaker) values (%s, 'a') returning id", (mine[0],)
            ).fetchall()
            cur.execute("insert into actions (turn_id, kind) values (%s, 'click')", (turn[0],))
            assert cur.execute("select count(*) from actions").fetchone() == (1,)
        with as_persona(conn, as_a) as cur:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
                cur.execute("update sessions set user_id = %s", (b,))
        with as_persona(conn, Persona.anon()) as cur:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
                cur.execute("select * from sessions")
        # The FK is kept: a made-up user id fails even for a signed-in user claiming it.
        ghost = uuid.uuid4()
        with as_persona(conn, Persona.signed_in(ghost, is_anonymous=True)) as cur:
            with pytest.raises(psycopg.errors.ForeignKeyViolation, match="sessions_user_id_fkey"):
                cur.execute("insert into sessions (user_id) values (%s)", (ghost,))

    # The app's index dropped by a migration is drift: the next `up` builds a covering one; destroy drops it.
    with psycopg.connect(fresh_db) as conn:
        conn.execute("drop index turns_session_id_idx")
    assert changes(stack.preview().change_summary) == {"update": 1}
    stack.up()
    assert lookup_indexes(fresh_db) == {
        "turns_session_id_id_rls_idx": (
            "CREATE INDEX turns_session_id_id_rls_idx ON public.turns USING btree (session_id) INCLUDE (id)"
        ),
    }
    stack.destroy()
    assert lookup_indexes(fresh_db) == {}
    assert table_acls(fresh_db) == acls_before


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {**OPEN, "supabase-access:model": json.dumps({"tables": {"nope": {"owner": "user_id"}}})},
            "supabase-access:model: table(s) public.nope do not exist in the database",
        ),
        (
            {**OPEN, "supabase-access:model": json.dumps({"tables": {'x";drop': {"owner": "user_id"}}})},
            "supabase-access:model.tables",
        ),
        (
            {
                **OPEN,
                "supabase-access:extraPolicies": json.dumps(
                    {"sessions": {"broken": {"command": "SELECT", "using": "user_id = = 1"}}}
                ),
            },
            "supabase-access:extraPolicies.sessions.broken: PostgreSQL rejected the policy: syntax error",
        ),
        (
            {"supabase-access:environment": "prod", "supabase-access:profile": "open"},
            "supabase-access:profile: a prod stack cannot use the open profile",
        ),
        (
            {
                **OPEN,
                "supabase-access:extraPolicies": json.dumps(
                    {"sessions": {"escape": {"roles": ["anon"], "using": "user_id = auth.uid()) with check (true"}}}
                ),
            },
            "supabase-access:extraPolicies.sessions.escape.using: a ')' closes more than it opened",
        ),
        (
            {
                **OPEN,
                "supabase-access:extraPolicies": json.dumps(
                    {"sessions": {"hidden": {"command": "SELECT", "using": "true -- and user_id = auth.uid()"}}}
                ),
            },
            "supabase-access:extraPolicies.sessions.hidden.using: comments are not allowed",
        ),
        (
            {
                **OPEN,
                "supabase-access:extraPolicies": json.dumps(
                    {"sessions": {"quoted": {"command": "SELECT", "using": "title = ''); drop table sessions; --'"}}}
                ),
            },
            "supabase-access:extraPolicies.sessions.quoted.using: ';' is not allowed",
        ),
        ({**OPEN, "postgresql:port": "1"}, "cannot connect to PostgreSQL"),
        # A generated policy's name, without `replaces: true`.
        (
            {
                **OPEN,
                "supabase-access:extraPolicies": json.dumps(
                    {
                        "sessions": {
                            "sessions_select_open": {
                                "command": "SELECT",
                                "roles": ["anon", "authenticated"],
                                "using": "title is not null",
                            }
                        }
                    }
                ),
            },
            "supabase-access:extraPolicies.sessions.sessions_select_open: the open profile already generates a policy",
        ),
        # Declared in Pulumi.yaml: the engine checks the type before the program runs.
        ({**OPEN, "supabase-access:forceRls": "maybe"}, "configuration key 'forceRls' must be of type 'boolean'"),
        # No environment: no silent default.
        ({"supabase-access:profile": "owner"}, "`pulumi config set supabase-access:environment prod`"),
        ({**OPEN, "supabase-access:enviroment": "prod"}, "did you mean supabase-access:environment?"),
        ({**OPEN, "supabase-access:writeQuota": "{}"}, "did you mean supabase-access:writeQuotas?"),
        # Secrets set without --secret.
        ({**OPEN, "postgresql:password": "typed-in-plain"}, "postgresql:password is stored in plain text"),
        ({**OPEN, "supabase-access:accessToken": "sbp_plain"}, "supabase-access:accessToken is stored in plain text"),
        # A policy for a role the stack grants nothing (owner: anon has no table privileges).
        (
            {
                **OWNER,
                "supabase-access:extraPolicies": json.dumps(
                    {"sessions": {"sessions_anon_read": {"command": "SELECT", "roles": ["anon"], "using": "true"}}}
                ),
            },
            "supabase-access:extraPolicies.sessions.sessions_anon_read.roles: anon has no SELECT grant on "
            "public.sessions (this stack grants anon no privileges)",
        ),
        # Prod: a write policy PostgreSQL folds to constant true, whatever its text.
        *(
            (
                {
                    **OWNER,
                    "supabase-access:extraPolicies": json.dumps(
                        {"sessions": {"sessions_insert_any": {"command": "INSERT", **rule}}}
                    ),
                },
                f"supabase-access:extraPolicies.sessions.sessions_insert_any.{part}: on a prod stack",
            )
            for rule, part in (
                ({"roles": ["authenticated"], "withCheck": "1 = 1"}, "withCheck"),
                ({"roles": ["authenticated"], "withCheck": "true or user_id = auth.uid()"}, "withCheck"),
            )
        ),
        # Prod: a write policy no planner folds, that still lets a user write another user's rows (the probe).
        (
            {
                **OWNER,
                "supabase-access:extraPolicies": json.dumps(
                    {
                        "sessions": {
                            "sessions_insert_signed_in": {
                                "command": "INSERT",
                                "roles": ["authenticated"],
                                "withCheck": "auth.uid() is not null",
                            }
                        }
                    }
                ),
            },
            "supabase-access:extraPolicies.sessions.sessions_insert_signed_in: on a prod stack an extra policy may "
            "not give rows the access kind of public.sessions does not, and the preflight's probe",
        ),
    ],
)
def test_bad_input_fails_at_preview_and_applies_nothing(
    make_stack: StackFactory, fresh_db: str, config: dict[str, str], message: str
) -> None:
    stack = make_stack(config)
    before = catalog_snapshot(fresh_db)
    with pytest.raises(auto.errors.CommandError) as info:
        stack.up()
    assert message in " ".join(str(info.value).split())
    assert catalog_snapshot(fresh_db) == before
    state = (stack.export_stack().deployment or {}).get("resources") or []
    assert [r["urn"] for r in state if r["type"].startswith("supabase-access:index:")] == []


def test_a_widening_is_refused_in_one_line_unless_declared(make_stack: StackFactory) -> None:
    """Prod: an extra policy PostgreSQL cannot fold, proved by the preflight's probe to let user A read
    user B's turns, stops the preview with one line naming the setting; `widens:` lets it through, listed."""
    entry = {"command": "SELECT", "roles": ["authenticated"], "using": "exists (select 1)"}
    stack = make_stack({**OWNER, "supabase-access:extraPolicies": json.dumps({"turns": {"turns_any": entry}})})
    with pytest.raises(auto.errors.CommandError) as info:
        stack.preview()
    setting = "supabase-access:extraPolicies.turns.turns_any"
    # Wherever the engine shows the error (the resource's diagnostic, the summary), it is one whole line.
    lines = [line for line in str(info.value).splitlines() if setting in line]
    assert lines, str(info.value)
    for line in lines:
        assert "user A may select a row of user B on turns" in line and 'declare `widens: "<why>"`' in line, line
    declared = {**entry, "widens": "everyone signed in reads every turn"}
    stack.set_config("supabase-access:extraPolicies", auto.ConfigValue(json.dumps({"turns": {"turns_any": declared}})))
    preview = stack.preview()
    assert f"{setting} widens access as declared (widens: 'everyone signed in reads every turn')" in " ".join(
        preview.stdout.split()
    )


def test_an_extra_policy_that_says_it_replaces_a_generated_one_is_named_at_preview(make_stack: StackFactory) -> None:
    extra = {
        "sessions": {
            "sessions_select_open": {
                "command": "SELECT",
                "roles": ["anon", "authenticated"],
                "using": "title is not null",
                "replaces": True,
            }
        }
    }
    stack = make_stack({**OPEN, "supabase-access:extraPolicies": json.dumps(extra)})
    preview = stack.preview()
    assert (
        "supabase-access:extraPolicies.sessions.sessions_select_open replaces the open profile's own policy "
        "sessions_select_open on sessions" in preview.stdout
    )


def test_a_tautology_is_allowed_on_a_dev_stack(make_stack: StackFactory, fresh_db: str) -> None:
    # One boolean expression, however wide: a dev stack applies it (prod stacks: issue 15's guardrails).
    extra = {"sessions": {"anyone_reads": {"command": "SELECT", "roles": ["anon"], "using": "true"}}}
    stack = make_stack({**OPEN, "supabase-access:extraPolicies": json.dumps(extra)})
    stack.up()
    assert policies(fresh_db, "sessions")["anyone_reads"] == "true"
    stack.destroy()


def test_a_table_the_login_role_cannot_alter_stops_up_before_anything(
    make_stack: StackFactory, fresh_db: str, localdb_admin_conninfo: str
) -> None:
    admin = psycopg.conninfo.make_conninfo(
        localdb_admin_conninfo, dbname=psycopg.conninfo.conninfo_to_dict(fresh_db)["dbname"]
    )
    stranger = f"owner_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("create role {}").format(psycopg.sql.Identifier(stranger)))
        conn.execute(psycopg.sql.SQL("alter table turns owner to {}").format(psycopg.sql.Identifier(stranger)))
    try:
        before = catalog_snapshot(fresh_db)
        with pytest.raises(auto.errors.CommandError) as info:
            make_stack(OPEN).up()
        # (The engine masks the local password, `postgres`, wherever it appears: in the role and setting too.)
        text = " ".join(str(info.value).split())
        assert f"cannot alter every table: public.turns is owned by {stranger}. Log in as the owner" in text
        assert catalog_snapshot(fresh_db) == before
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("alter table turns owner to postgres")
            conn.execute(psycopg.sql.SQL("drop role {}").format(psycopg.sql.Identifier(stranger)))


def test_wrong_password_is_named_and_never_shown(make_stack: StackFactory, fresh_db: str) -> None:
    wrong = psycopg.conninfo.make_conninfo(fresh_db, password="not-the-password-4711")
    stack = make_stack(OPEN, dsn=wrong)
    with pytest.raises(auto.errors.CommandError) as info:
        stack.preview()
    text = str(info.value)
    assert "postgresql:password" in text and "password authentication failed" in text
    assert "not-the-password-4711" not in text


def test_state_and_output_hold_no_plaintext_password(
    make_stack: StackFactory, fresh_db: str, localdb_admin_conninfo: str, tmp_path: Path
) -> None:
    secret = f"pw-{uuid.uuid4().hex}"
    role = f"deployer_{uuid.uuid4().hex[:8]}"
    # A login role acting as postgres, made as Supabase makes its cli_login_postgres: by supabase_admin.
    # Since PostgreSQL 16 only a role with ADMIN OPTION on postgres may grant membership in it, which
    # postgres itself lacks ("permission denied to grant role"); on 15 postgres could.
    with psycopg.connect(localdb_admin_conninfo, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("create role {} login password {} in role postgres").format(
                psycopg.sql.Identifier(role), psycopg.sql.Literal(secret)
            )
        )
    dsn = psycopg.conninfo.make_conninfo(fresh_db, user=role, password=secret)
    stack = make_stack(OPEN, dsn=dsn)
    up = stack.up()
    assert secret not in up.stdout
    # The backend's files as written (export_stack() would decrypt): the state and the stack config.
    stored = {p: p.read_text(errors="ignore") for p in (tmp_path / "local").rglob("*") if p.is_file()}
    assert stored and not [p for p, text in stored.items() if secret in text]
    assert any('"ciphertext"' in text for p, text in stored.items() if p.suffix == ".json")
    stack.destroy()
    with psycopg.connect(localdb_admin_conninfo, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("drop role {}").format(psycopg.sql.Identifier(role)))


def test_preview_diff_shows_old_and_new_expression_of_a_changed_policy(make_stack: StackFactory) -> None:
    def with_title_policy(using: str) -> dict[str, str]:
        extra = {"sessions": {"sessions_titled": {"command": "SELECT", "roles": ["authenticated"], "using": using}}}
        return {**OPEN, "supabase-access:extraPolicies": json.dumps(extra)}

    stack = make_stack(with_title_policy("title is not null"))
    stack.up()
    stack.set_config(
        "supabase-access:extraPolicies",
        auto.ConfigValue(with_title_policy("length(title) > 0")["supabase-access:extraPolicies"]),
    )
    preview = stack.preview(diff=True)
    assert changes(preview.change_summary) == {"update": 1}
    assert 'using: "(title IS NOT NULL)" => "length(title) > 0"' in preview.stdout
