"""The widening probe (sql.widening_probe): extra policies judged by what they let the personas do
on rows the probe makes itself, inside a rolled-back transaction, whatever PostgreSQL can fold."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from supabase_access.model.access_model import AccessModel, load_model_file, model_to_plain, parse_model
from supabase_access.model.hardening import permanent_users_only_policies
from supabase_access.model.policy import PolicySpec
from supabase_access.model.profiles import AccessPlan, plan_access
from supabase_access.model.rule_data import group_lookup_to_plain, rule_to_plain
from supabase_access.provider.base import CHECK_LOG, InputError
from supabase_access.provider.preflight import widening
from supabase_access.provider.resources.access_preflight import AccessPreflight
from supabase_access.provider.resources.group_functions import prelude_for
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from supabase_access.sql.widening_probe import probe_widening
from tests.support.hostile_policies import FOLDABLE, HOSTILE, foldable
from tests.support.teams_app import load_teams_app, teams_model

pytestmark = pytest.mark.db

REPO = Path(__file__).resolve().parents[2]
MODEL = load_model_file(REPO / "access-model.yaml", setting="access-model.yaml")


def planned(model: AccessModel) -> tuple[AccessPlan, dict[str, dict[str, PolicySpec]], dict[str, dict]]:
    """The owner plan of a model, its policies per table and its grants per table."""
    plan = plan_access(model, "owner")
    base = {table: {p.name: p for p in policies} for table, policies in render.plan_policies(plan).items()}
    return plan, base, {access.table: dict(plan.grants_on(access.table)) for access in plan.tables}


PLAN, BASE, GRANTS = planned(MODEL)


def probe(dsn: str, candidates: dict[str, dict[str, PolicySpec]], base=BASE):
    with psycopg.connect(dsn) as conn:
        report = probe_widening(conn, MODEL, base, candidates, GRANTS)
        # Nothing stays behind: the probe's users, rows, policies and grants went with its transaction.
        assert conn.execute("select count(*) from auth.users").fetchone() == (0,)
        assert conn.execute(
            "select count(*) from pg_policies where tablename = 'sessions' and policyname like 'extra%'"
        ).fetchone() == (0,)
    return report


def test_the_planner_folds_none_of_the_hostile_expressions(fresh_db: str) -> None:
    """Why the probe is needed: the folding check sees only FOLDABLE."""
    expressions = {text: text for text in HOSTILE + FOLDABLE}
    with psycopg.connect(fresh_db) as conn:
        folded = catalog.expressions_folded_to_true(conn, "public", "sessions", expressions)
        assert sorted(folded) == sorted(foldable(conn.info.server_version))


@pytest.mark.parametrize("expression", HOSTILE + FOLDABLE)
def test_an_insert_policy_admitting_every_row_is_a_widening(fresh_db: str, expression: str) -> None:
    extra = PolicySpec("extra_insert", "INSERT", ("authenticated",), with_check=expression)
    report = probe(fresh_db, {"sessions": {"extra_insert": extra}})
    assert report.unprobed == {}
    assert ("sessions", "extra_insert") in report.widened, report
    cells = {c.describe() for c in report.widened[("sessions", "extra_insert")]}
    assert "user A may insert a row of user B on sessions" in cells
    assert "an anonymous sign-in may insert a row of user A on sessions" in cells


@pytest.mark.parametrize(
    ("command", "part", "described"),
    [
        ("SELECT", "using", "user A may select a row of user B on turns"),
        ("UPDATE", "using", "user B may update a row of user A on turns"),
        ("DELETE", "using", "an anonymous sign-in may delete a row of user B on turns"),
        ("ALL", "using", "user A may delete a row of user B on turns"),
    ],
)
def test_every_command_is_probed(fresh_db: str, command: str, part: str, described: str) -> None:
    extra = PolicySpec("extra_any", command, ("authenticated",), **{part: "auth.uid() is not null"})  # type: ignore[arg-type]
    report = probe(fresh_db, {"turns": {"extra_any": extra}})
    assert described in {c.describe() for c in report.widened[("turns", "extra_any")]}


@pytest.mark.parametrize(
    "extra",
    [
        # permanentUsersOnly-style: restrictive, it can only narrow.
        *permanent_users_only_policies({"sessions": ("INSERT",)})["sessions"],
        # Narrower than the kind: the owner's rows that have a title.
        PolicySpec("extra_titled", "SELECT", ("authenticated",), using="user_id = (select auth.uid()) and title <> ''"),
        # The kind's own rule, written by hand.
        PolicySpec("extra_mine", "INSERT", ("authenticated",), with_check="user_id = (select auth.uid())"),
        # Only for an identity no API request carries.
        PolicySpec("extra_nobody", "ALL", ("authenticated",), using="coalesce(auth.uid(), user_id) = user_id"),
        # Admits every row, but for a role without the grant (prod gives anon nothing).
        PolicySpec("extra_anon", "SELECT", ("anon",), using="true"),
    ],
    ids=lambda p: p.name,
)
def test_legitimate_extra_policies_widen_nothing(fresh_db: str, extra: PolicySpec) -> None:
    candidates = {"sessions": {extra.name: extra}} if extra.permissive else {}
    base = BASE if extra.permissive else {**BASE, "sessions": {**BASE["sessions"], extra.name: extra}}
    report = probe(fresh_db, candidates, base)
    assert report.widened == {}
    assert report.unprobed == {}
    assert report.inconclusive == {}


def test_a_replacing_policy_is_judged_against_the_one_it_replaces(fresh_db: str) -> None:
    name = "sessions_insert_own"
    same = PolicySpec(name, "INSERT", ("authenticated",), with_check="(select auth.uid()) = user_id")
    wider = PolicySpec(name, "INSERT", ("authenticated",), with_check="(select auth.uid()) is not null")
    assert probe(fresh_db, {"sessions": {name: same}}).widened == {}
    assert ("sessions", name) in probe(fresh_db, {"sessions": {name: wider}}).widened


def test_a_table_whose_rows_cannot_be_made_is_named_not_passed(fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("create type public.mood as (level int)")
        conn.execute("alter table public.turns add column mood public.mood not null")
    extra = PolicySpec("extra_turns", "SELECT", ("authenticated",), using="auth.uid() is not null")
    report = probe(fresh_db, {"turns": {"extra_turns": extra}, "sessions": {"extra_s": extra}})
    assert "public.turns.mood: cannot make up a mood value" in report.unprobed["turns"]
    assert ("turns", "extra_turns") not in report.widened
    # The other tables are still probed.
    assert ("sessions", "extra_s") in report.widened


# --- the preflight: refuses, lists what a declared widening gives, warns what it could not probe ---


def preflight_inputs(extras: dict[str, dict[str, dict]], widenings: dict[str, str] | None = None) -> dict:
    """What AccessRules gives the preflight of a prod stack with these extraPolicies entries."""
    policies = {
        access.table: {r.name: rule_to_plain(r) for r in access.rules} | extras.get(access.table, {})
        for access in PLAN.tables
    }
    return {
        "schema": "public",
        "tables": list(MODEL.table_names),
        "roles": ["anon", "authenticated"],
        "policies": policies,
        "source": "supabase-access:modelFile (access-model.yaml)",
        "policySettings": {
            f"{t}.{n}": f"supabase-access:extraPolicies.{t}.{n}" for t, entries in extras.items() for n in entries
        },
        "grants": {role: list(p) for role, p in PLAN.grants.items()},
        "refuseOpenWrites": True,
        "model": model_to_plain(MODEL),
        "widenings": widenings,
    }


def checked(db: Database, inputs: dict) -> list[str]:
    said: list[str] = []
    token = CHECK_LOG.set(said.append)
    try:
        AccessPreflight().check(db, {}, inputs)
    finally:
        CHECK_LOG.reset(token)
    return said


INSERT_ANY = {"command": "INSERT", "roles": ["authenticated"], "withCheck": "auth.uid() is not null"}


def test_the_preflight_refuses_a_widening_naming_the_setting(db: Database) -> None:
    with pytest.raises(InputError) as info:
        checked(db, preflight_inputs({"sessions": {"insert_any": INSERT_ANY}}))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        "supabase-access:extraPolicies.sessions.insert_any: on a prod stack an extra policy may not give rows"
    )
    assert "user A may insert a row of user B on sessions" in message
    assert 'declare `widens: "<why>"`' in message


def test_a_declared_widening_is_listed_not_refused(db: Database) -> None:
    said = checked(db, preflight_inputs({"sessions": {"insert_any": INSERT_ANY}}, {"sessions.insert_any": "imports"}))
    (line,) = [s for s in said if "widens access as declared" in s]
    assert line.startswith("supabase-access:extraPolicies.sessions.insert_any widens access as declared")
    assert "(widens: 'imports')" in line and "user A may insert a row of user B on sessions" in line


def test_a_narrower_policy_passes_and_an_idle_declaration_is_named(db: Database) -> None:
    narrow = {"command": "SELECT", "roles": ["authenticated"], "using": "user_id = (select auth.uid()) and title <> ''"}
    said = checked(db, preflight_inputs({"sessions": {"titled": narrow}}, {"sessions.titled": "reads"}))
    assert any("declares `widens` ('reads'), but the probe found no row it gives" in s for s in said)


def test_an_unprobed_table_is_a_warning_naming_it(db: Database, fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("create type public.mood as (level int)")
        conn.execute("alter table public.sessions add column mood public.mood not null")
    said = checked(db, preflight_inputs({"sessions": {"insert_any": INSERT_ANY}}))
    (line,) = [s for s in said if "could not check" in s]
    assert line.startswith(
        "supabase-access:extraPolicies.sessions.insert_any: the widening probe could not check public.sessions "
        "(no probe row could be made: public.sessions.mood: cannot make up a mood value"
    )
    assert "not proved to give nothing beyond the table's access kind" in line


def test_a_one_row_per_user_table_is_probed_past_its_key(fresh_db: str) -> None:
    """An insert that passes the policies and only meets the owner's existing row (its key) is let through."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(
            "create table public.profiles (user_id uuid primary key default auth.uid() references auth.users, "
            "display_name text)"
        )
    raw = model_to_plain(MODEL)
    model = parse_model({**raw, "tables": {**raw["tables"], "profiles": {"owner": "user_id"}}}, setting="m")
    _, base, grants = planned(model)
    extra = PolicySpec("extra_any", "INSERT", ("authenticated",), with_check="auth.uid() is not null")
    with psycopg.connect(fresh_db) as conn:
        report = probe_widening(conn, model, base, {"profiles": {"extra_any": extra}}, grants)
    assert report.unprobed == {} and report.inconclusive == {}
    found = {c.describe() for c in report.widened[("profiles", "extra_any")]}
    assert "user A may insert a row of user B on profiles" in found


def test_the_teams_app_rows_under_groups_are_probed(fresh_db: str) -> None:
    """Groups: membership rows, rows under a group, a two-hop child, public-read and service-only tables."""
    load_teams_app(fresh_db)
    model = teams_model()
    plan, base, grants = planned(model)
    prelude = prelude_for(model.schema, [group_lookup_to_plain(lookup) for lookup in plan.group_lookups])
    hostile = PolicySpec("extra_any", "INSERT", ("authenticated",), with_check="auth.uid() is not null")
    narrow = PolicySpec(
        "extra_open_tasks",
        "SELECT",
        ("authenticated",),
        using="project_id = any (array(select supabase_access_rls.project_members_groups())) and not done",
    )
    candidates = {"tasks": {"extra_any": hostile, "extra_open_tasks": narrow}, "comments": {"extra_any": hostile}}
    with psycopg.connect(fresh_db) as conn:
        report = probe_widening(conn, model, base, candidates, grants, prelude)
    assert report.unprobed == {} and report.inconclusive == {}
    assert set(report.widened) == {("tasks", "extra_any"), ("comments", "extra_any")}
    found = {c.describe() for c in report.widened[("tasks", "extra_any")]}
    assert "user B may insert a row of user A on tasks" in found


def test_an_owner_copy_not_made_yet_is_probed(fresh_db: str) -> None:
    """First preview of a `copyOwner` stack: the column its policies name is added in the probe's transaction."""
    raw = model_to_plain(MODEL)
    copied = {"through": {"column": "turn_id", "table": "turns"}, "copyOwner": True}
    model = parse_model({**raw, "tables": {**raw["tables"], "actions": copied}}, setting="m")
    _, base, grants = planned(model)
    hostile = PolicySpec("extra_any", "SELECT", ("authenticated",), using="auth.uid() is not null")
    mine = "user_id = (select auth.uid()) and kind <> ''"
    narrow = PolicySpec("extra_narrow", "SELECT", ("authenticated",), using=mine)
    with psycopg.connect(fresh_db) as conn:
        report = probe_widening(
            conn, model, base, {"actions": {"a": hostile, "b": narrow}}, grants, added={"actions": {"user_id": "uuid"}}
        )
        assert conn.execute(
            "select count(*) from information_schema.columns where table_name = 'actions' and column_name = 'user_id'"
        ).fetchone() == (0,)
    assert set(report.widened) == {("actions", "a")}


@pytest.mark.parametrize("expression", HOSTILE + FOLDABLE)
@pytest.mark.parametrize("command", ["INSERT", "SELECT"])
def test_the_preflight_refuses_every_hostile_expression(db: Database, expression: str, command: str) -> None:
    """Each as an extra policy of a prod stack: refused, naming the setting, whether the planner folds it or not."""
    clause = {"withCheck": expression} if command == "INSERT" else {"using": expression}
    entry = {"command": command, "roles": ["authenticated"], **clause}
    with pytest.raises(InputError) as info:
        checked(db, preflight_inputs({"sessions": {"hostile": entry}}))
    message = str(info.value)
    assert message.startswith("supabase-access:extraPolicies.sessions.hostile")
    with db.connection() as conn:
        folded = foldable(conn.info.server_version)
    if expression in folded and command == "INSERT":
        assert "PostgreSQL reduces" in message  # the folding check comes first (write policies)
    else:
        assert "on a prod stack an extra policy may not give rows the access kind of public.sessions" in message


def test_users_the_probe_cannot_make_leave_every_table_unprobed_not_passed(
    fresh_db: str, localdb_admin_conninfo: str
) -> None:
    dbname = psycopg.conninfo.conninfo_to_dict(fresh_db)["dbname"]
    as_admin = psycopg.conninfo.make_conninfo(localdb_admin_conninfo, dbname=dbname)
    with psycopg.connect(as_admin, autocommit=True) as admin:
        admin.execute(
            "create function auth.no_sign_ups() returns trigger language plpgsql as "
            "$$ begin raise exception 'sign-ups are closed'; end $$"
        )
        admin.execute(
            "create trigger no_sign_ups before insert on auth.users for each row execute function auth.no_sign_ups()"
        )
    extra = PolicySpec("extra_any", "SELECT", ("authenticated",), using="auth.uid() is not null")
    report = probe(fresh_db, {"sessions": {"extra_any": extra}})
    assert report.widened == {}
    assert report.unprobed["sessions"] == "no probe user could be made in auth.users: sign-ups are closed"


def test_a_proved_declaration_is_not_probed_again(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next preview of the same policies, model and declarations asks the probe nothing (it costs locks)."""
    inputs = preflight_inputs({"sessions": {"insert_any": INSERT_ANY}}, {"sessions.insert_any": "imports"})
    olds = AccessPreflight().check(db, {}, dict(inputs))

    def no_probe(*args: object, **kwargs: object) -> None:
        raise AssertionError("probed again")

    monkeypatch.setattr(widening, "probe_widening", no_probe)
    AccessPreflight().check(db, olds, dict(inputs))
    with pytest.raises(AssertionError, match="probed again"):
        AccessPreflight().check(db, olds, {**inputs, "widenings": {"sessions.insert_any": "bulk imports"}})


def test_probes_stopped_by_something_else_than_a_policy_are_inconclusive_not_passed(fresh_db: str) -> None:
    """A trigger refusing every API insert: neither the kind nor the extra policy can be judged on inserts."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(
            "create function public.no_api_inserts() returns trigger language plpgsql as "
            "$$ begin if current_user in ('anon', 'authenticated') then raise exception 'closed for now'; end if; "
            "return new; end $$"
        )
        conn.execute(
            "create trigger no_api_inserts before insert on public.sessions for each row "
            "execute function public.no_api_inserts()"
        )
    extra = PolicySpec("extra_insert", "INSERT", ("authenticated",), with_check="auth.uid() is not null")
    report = probe(fresh_db, {"sessions": {"extra_insert": extra}})
    assert report.widened == {}
    stopped = report.inconclusive[("sessions", "extra_insert")]
    assert {error for _, error in stopped} == {"closed for now"}
    assert "user A may insert a row of user B on sessions" in {cell.describe() for cell, _ in stopped}
