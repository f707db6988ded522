"""Rendered SQL of the hardening resources: quota trigger, private schema, purge and pg_cron."""

from __future__ import annotations

import pytest

from supabase_access.model import hardening
from supabase_access.provider.resources.retention_policy import purge_command
from supabase_access.sql import statements as render

pytestmark = pytest.mark.unit


def quota_function(table: str) -> str:
    usage = hardening.quota_usage_table_name("public", table)
    body = render.write_quota_function_body("public", table, "supabase_access", usage)
    return render.create_write_quota_function("supabase_access", f"write_quota_public_{table}", body).as_string()


def test_sqlstate_is_a_valid_user_defined_code_postgrest_maps_to_429() -> None:
    code = hardening.QUOTA_SQLSTATE
    # Five digits/upper-case letters; class PT ("PTxyz" -> HTTP xyz in PostgREST), not PL/pgSQL's P0.
    assert len(code) == 5 and code.isalnum() and code.upper() == code
    assert code == "PT429" and not code.startswith("P0")


def test_quota_function_is_a_locked_down_security_definer() -> None:
    text = quota_function("sessions")
    assert text.startswith(
        'create or replace function "supabase_access"."write_quota_public_sessions"() returns trigger\n'
        "language plpgsql security definer\n"
        "set search_path = ''\n"
        "as $quota$"
    )


def test_quota_function_limits_users_only_and_raises_with_sqlstate_message_and_hint() -> None:
    text = quota_function("sessions")
    # auth.uid() parses the JWT claims: read once per insert.
    assert "_quota_user uuid := auth.uid();" in text
    assert "if _quota_user is null or current_setting('role', true) = 'service_role' then\n    return new;" in text
    assert "errcode = 'PT429'" in text
    assert "message = format('write quota exceeded: at most %s new rows in %s per user per %s'" in text
    assert "detail = format('The window started at the requesting user''s first insert in it, at %s.'" in text
    assert "hint = format('Try again after %s (in %s seconds).'" in text
    assert "_quota_retry_at := _quota_window_start + _quota_window;" in text
    assert "if _quota_inserts > tg_argv[0]::integer then" in text
    assert "tg_argv[0]::integer" in text and "make_interval(secs => tg_argv[1]::integer)" in text


def test_quota_counts_with_one_update_and_upserts_only_to_open_a_window() -> None:
    text = quota_function("actions")
    update = (
        'update "supabase_access"."write_quota_public_actions_usage" as u set inserts = u.inserts + 1\n'
        "  where u.user_id = _quota_user and u.window_start > now() - _quota_window\n"
        "  returning u.window_start, u.inserts into _quota_window_start, _quota_inserts;\n"
        "  if not found then\n"
    )
    upsert = (
        'insert into "supabase_access"."write_quota_public_actions_usage" as u (user_id, window_start, inserts) '
        "values (_quota_user, now(), 1)\n"
        "    on conflict (user_id) do update set\n"
        "      window_start = case when u.window_start <= now() - _quota_window then now() else u.window_start end,\n"
        "      inserts = case when u.window_start <= now() - _quota_window then 1 else u.inserts + 1 end\n"
        "    returning u.window_start, u.inserts into _quota_window_start, _quota_inserts;"
    )
    assert update in text and upsert in text and text.index(update) < text.index(upsert)
    # No counting of the table's rows, no lock of our own (the row lock serialises), no stamping.
    assert '"public"."actions"' not in text
    assert "pg_advisory_xact_lock" not in text and "new." not in text


def test_quota_usage_table_is_hot_friendly_and_closed_to_the_api_roles() -> None:
    usage = hardening.quota_usage_table_name("public", "sessions")
    assert usage == "write_quota_public_sessions_usage"
    assert render.create_quota_usage_table("supabase_access", usage).as_string() == (
        'create unlogged table if not exists "supabase_access"."write_quota_public_sessions_usage" '
        "(user_id uuid primary key, window_start timestamptz not null, inserts integer not null) "
        "with (fillfactor = 50)"
    )
    assert render.revoke_table_from_api("supabase_access", usage).as_string() == (
        'revoke all on table "supabase_access"."write_quota_public_sessions_usage" from public, "anon", "authenticated"'
    )
    assert render.drop_table("supabase_access", usage).as_string() == (
        'drop table if exists "supabase_access"."write_quota_public_sessions_usage"'
    )
    # A shortened function name still leaves room for the suffix.
    long_usage = hardening.quota_usage_table_name("public", "t" * 60)
    assert len(long_usage) <= 63 and long_usage != hardening.quota_function_name("public", "t" * 60)


def test_function_body_cannot_be_broken_out_of() -> None:
    with pytest.raises(ValueError, match=r"\$quota\$"):
        render.create_write_quota_function("s", "f", "begin end $quota$; drop table x; --")


def test_trigger_passes_limit_and_window_as_arguments() -> None:
    text = render.create_write_quota_trigger(
        "public",
        "generated_content",
        hardening.QUOTA_TRIGGER,
        "supabase_access",
        "write_quota_public_generated_content",
        limit=100,
        window_seconds=3600,
        window_label="hour",
    ).as_string()
    assert text == (
        'create trigger "supabase_access_write_quota" before insert on "public"."generated_content" '
        'for each row execute function "supabase_access"."write_quota_public_generated_content"'
        "('100', '3600', 'hour')"
    )
    dropped = render.drop_trigger("public", "generated_content", hardening.QUOTA_TRIGGER).as_string()
    assert dropped == 'drop trigger if exists "supabase_access_write_quota" on "public"."generated_content"'


def test_old_quota_index_is_dropped_concurrently() -> None:
    name = "generated_content_session_id_created_at_quota_idx"
    assert render.drop_index("public", name).as_string() == f'drop index concurrently if exists "public"."{name}"'


def test_private_schema_and_functions_are_closed_to_the_api_roles() -> None:
    assert (
        render.create_private_schema("supabase_access").as_string() == 'create schema if not exists "supabase_access"'
    )
    assert render.revoke_private_schema("supabase_access").as_string() == (
        'revoke all on schema "supabase_access" from public, "anon", "authenticated"'
    )
    assert render.revoke_function_from_api("supabase_access", "purge_expired", ("integer", "integer")).as_string() == (
        'revoke all on function "supabase_access"."purge_expired"(integer, integer) '
        'from public, "anon", "authenticated"'
    )
    # RESTRICT: never takes anything else with it.
    assert render.drop_private_schema("supabase_access").as_string().endswith(" restrict")


def purge_sql(anonymous_users_days: int | None = 30, sessions_days: int | None = 90) -> str:
    body = render.purge_function_body("purge_expired", "public", [("sessions", "user_id")], "sessions", "created_at")
    return render.create_purge_function(
        "supabase_access",
        "purge_expired",
        body,
        anonymous_users_days=anonymous_users_days,
        sessions_days=sessions_days,
    ).as_string()


def test_purge_function_signature_defaults_and_settings() -> None:
    text = purge_sql(30, None)
    assert text.startswith(
        'create or replace function "supabase_access"."purge_expired"(\n'
        "  anonymous_users_days integer default 30,\n"
        "  sessions_days integer default NULL\n"
        ") returns table (kind text, removed bigint)\n"
        "language plpgsql\n"
        "set search_path = ''\n"
        "set row_security = off\n"
    )
    assert "security definer" not in text


def test_purge_touches_only_anonymous_users_and_their_rows() -> None:
    text = purge_sql()
    older = 'u.created_at < now() - make_interval(days => "purge_expired".anonymous_users_days)'
    assert (
        'delete from "public"."sessions" t using auth.users u\n'
        f'     where t."user_id" = u.id and u.is_anonymous is true and {older};'
    ) in text
    assert f"delete from auth.users u where u.is_anonymous is true and {older};" in text
    # Every delete of users is limited to anonymous ones.
    assert text.count("delete from auth.users") == text.count("delete from auth.users u where u.is_anonymous is true")
    assert "kind := 'sessions_of_anonymous_users'" in text and "kind := 'anonymous_users'" in text


def test_purge_of_old_sessions_is_separate() -> None:
    text = purge_sql()
    assert (
        'delete from "public"."sessions" t where t."created_at" < now() - make_interval(days => '
        '"purge_expired".sessions_days);'
    ) in text
    assert "kind := 'expired_sessions'" in text
    assert text.index('if "purge_expired".anonymous_users_days is not null') < text.index(
        'if "purge_expired".sessions_days is not null'
    )


def test_pg_cron_schedule_and_unschedule() -> None:
    command = purge_command("supabase_access")
    assert command == 'select kind, removed from "supabase_access"."purge_expired"()'
    assert render.cron_schedule("supabase-access-purge-expired", "17 3 * * *", command).as_string() == (
        "select cron.schedule('supabase-access-purge-expired', '17 3 * * *', "
        '\'select kind, removed from "supabase_access"."purge_expired"()\')'
    )
    assert render.cron_unschedule("supabase-access-purge-expired").as_string() == (
        "select cron.unschedule(jobid) from cron.job where jobname = 'supabase-access-purge-expired'"
    )
    # A quote in a job name stays inside the literal.
    assert render.cron_unschedule("a'b").as_string().endswith("jobname = 'a''b'")


@pytest.mark.parametrize(
    ("schedule", "valid"),
    [
        ("17 3 * * *", True),
        ("*/15 * * * *", True),
        ("0 4 * * MON", True),
        ("30 seconds", True),
        ("@daily", True),
        ("17 3 * *", False),
        ("17 3 * * *; select 1", False),
    ],
)
def test_cron_schedule_shape(schedule: str, valid: bool) -> None:
    assert bool(hardening.CRON_SCHEDULE.match(schedule)) is valid
