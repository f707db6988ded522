"""Hardening stack settings: writeQuotas, retention, permanentUsersOnly. Bad values name the setting."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from supabase_access.model import hardening
from supabase_access.model.access_model import load_model_file
from supabase_access.model.policy import PolicySpec
from supabase_access.model.stack_config import (
    ConfigError,
    extra_policies_with_hardening,
    parse_hardening_settings,
)
from supabase_access.sql.statements import policy_from_rule
from tests.support.program import by_type, run_program

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
NOT_ANONYMOUS = "((select auth.jwt()) ->> 'is_anonymous')::boolean is not true"


def model():
    return load_model_file(REPO / "access-model.yaml", setting="supabase-access:modelFile")


def parse(**access: Any) -> hardening.HardeningSettings:
    return parse_hardening_settings(access, model())


def test_absent_settings_mean_no_hardening() -> None:
    settings = parse()
    assert settings == hardening.HardeningSettings()
    assert not settings.any


def test_write_quotas_per_window() -> None:
    settings = parse(writeQuotas={"sessions": {"perHour": 20}, "generated_content": {"perDay": "500"}})
    sessions, content = settings.write_quotas
    assert (sessions.table, sessions.limit, sessions.window_seconds, sessions.window_label) == (
        "sessions",
        20,
        3600,
        "hour",
    )
    # `pulumi config set --path` stores numbers as strings.
    assert (content.limit, content.window_seconds, content.window_label) == (500, 86400, "day")


def test_quota_targets_carry_table_limit_and_window() -> None:
    quotas = parse(writeQuotas={"sessions": {"perHour": 3}, "actions": {"perMinute": 5}}).write_quotas
    sessions, actions = hardening.write_quota_targets(model(), quotas)
    assert sessions == hardening.WriteQuotaTarget("public", "sessions", 3, 3600, "hour")
    # Counting is per user in the quota's usage table, whatever the table's ownership path.
    assert actions == hardening.WriteQuotaTarget("public", "actions", 5, 60, "minute")


def test_retention_defaults_and_target() -> None:
    retention = parse(retention={"anonymousUsersDays": 30}).retention
    assert retention == hardening.RetentionSetting(30, None, "sessions", hardening.DEFAULT_PURGE_SCHEDULE)
    target = hardening.retention_target(model(), retention)
    # Only root tables (those holding the owner) are purged by owner; the rest follows by cascade.
    assert target.owned_tables == (hardening.OwnedTable("sessions", "user_id"),)
    assert target.sessions_days is None and target.schedule == "17 3 * * *"


def test_permanent_users_only_become_restrictive_policies() -> None:
    settings = parse(permanentUsersOnly={"generated_content": ["insert", "UPDATE", "INSERT"]})
    assert settings.permanent_users_only == {"generated_content": ("INSERT", "UPDATE")}
    rules = hardening.permanent_users_only_policies(settings.permanent_users_only)
    insert, update = (policy_from_rule("public", rule) for rule in rules["generated_content"])
    assert insert == PolicySpec(
        "generated_content_insert_not_anonymous", "INSERT", ("authenticated",), False, None, NOT_ANONYMOUS
    )
    assert update.name == "generated_content_update_not_anonymous"
    assert update.using == update.with_check == NOT_ANONYMOUS and update.permissive is False


def test_permanent_users_only_join_the_extra_policies() -> None:
    extra = {"sessions": (PolicySpec("sessions_extra", "SELECT", ("authenticated",), False, "true", None),)}
    settings = parse(permanentUsersOnly={"sessions": ["DELETE"]})
    merged = extra_policies_with_hardening(extra, settings)
    assert [p.name for p in merged["sessions"]] == ["sessions_extra", "sessions_delete_not_anonymous"]
    clashing = {"sessions": (PolicySpec("sessions_delete_not_anonymous", "DELETE", ("anon",), True, "true"),)}
    with pytest.raises(ConfigError, match=r"supabase-access:permanentUsersOnly\.sessions: .*extraPolicies"):
        extra_policies_with_hardening(clashing, settings)


@pytest.mark.parametrize(
    ("access", "message"),
    [
        ({"writeQuotas": ["sessions"]}, "supabase-access:writeQuotas: expected a map"),
        ({"writeQuotas": {"nope": {"perHour": 1}}}, "supabase-access:writeQuotas.nope: unknown table 'nope'"),
        ({"writeQuotas": {"sessions": {"perWeek": 1}}}, "supabase-access:writeQuotas.sessions.perWeek: unknown key"),
        (
            {"writeQuotas": {"sessions": {"perHour": 1, "perDay": 5}}},
            "supabase-access:writeQuotas.sessions: expected exactly one",
        ),
        ({"writeQuotas": {"sessions": {"perHour": 0}}}, "supabase-access:writeQuotas.sessions.perHour: expected"),
        ({"writeQuotas": {"sessions": {"perHour": True}}}, "supabase-access:writeQuotas.sessions.perHour"),
        ({"writeQuotas": {"sessions": {"perHour": "ten"}}}, "supabase-access:writeQuotas.sessions.perHour"),
        ({"retention": 30}, "supabase-access:retention: expected"),
        ({"retention": {}}, "supabase-access:retention: set anonymousUsersDays and/or sessionsDays"),
        (
            {"retention": {"anonymousDays": 3}},
            "supabase-access:retention.anonymousDays: unknown key (did you mean anonymousUsersDays?)",
        ),
        (
            {"writeQuotas": {"sessions": {"perHuor": 3}}},
            "supabase-access:writeQuotas.sessions.perHuor: unknown key (did",
        ),
        ({"retention": {"anonymousUsersDays": -1}}, "supabase-access:retention.anonymousUsersDays"),
        ({"retention": {"sessionsDays": 1.5}}, "supabase-access:retention.sessionsDays"),
        (
            {"retention": {"sessionsDays": 9, "sessionsTable": "chats"}},
            "supabase-access:retention.sessionsTable: unknown table 'chats'",
        ),
        (
            {"retention": {"sessionsDays": 9, "schedule": "daily; drop table x"}},
            "supabase-access:retention.schedule",
        ),
        ({"permanentUsersOnly": ["INSERT"]}, "supabase-access:permanentUsersOnly: expected a map"),
        ({"permanentUsersOnly": {"nope": ["INSERT"]}}, "supabase-access:permanentUsersOnly.nope: unknown table"),
        ({"permanentUsersOnly": {"turns": []}}, "supabase-access:permanentUsersOnly.turns: expected a non-empty"),
        (
            {"permanentUsersOnly": {"turns": ["TRUNCATE"]}},
            "supabase-access:permanentUsersOnly.turns: unknown command(s) ['TRUNCATE']",
        ),
    ],
)
def test_bad_values_name_the_setting(access: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(**access)
    assert message in str(info.value)


def test_long_names_are_shortened_without_collisions() -> None:
    long_a, long_b = "t" * 60 + "_a", "t" * 60 + "_b"
    names = {hardening.quota_function_name("public", t) for t in (long_a, long_b)}
    assert len(names) == 2 and all(len(n) <= 63 for n in names)
    assert hardening.quota_function_name("public", "sessions") == "write_quota_public_sessions"
    assert hardening.not_anonymous_policy_name("turns", "DELETE") == "turns_delete_not_anonymous"


@pytest.mark.parametrize("stack", ["prod", "local-prod"])
def test_committed_prod_stacks_declare_valid_hardening(stack: str) -> None:
    config = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())["config"]
    access = {key.split(":", 1)[1]: value for key, value in config.items() if key.startswith("supabase-access:")}
    settings = parse(**{k: access.get(k) for k in ("writeQuotas", "retention", "permanentUsersOnly")})
    assert settings.write_quotas and settings.retention and settings.permanent_users_only


@pytest.mark.parametrize("stack", ["dev", "local"])
def test_dev_stacks_declare_no_hardening(stack: str) -> None:
    config = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())["config"]
    assert not {k for k in config if k.split(":")[-1] in ("writeQuotas", "retention", "permanentUsersOnly")}


HARDENED = {
    "supabase-access:environment": "prod",
    "supabase-access:writeQuotas": json.dumps({"sessions": {"perHour": 20}, "generated_content": {"perHour": 100}}),
    "supabase-access:retention": json.dumps({"anonymousUsersDays": 30, "sessionsDays": 90}),
    "supabase-access:permanentUsersOnly": json.dumps({"generated_content": ["INSERT"]}),
}


def test_program_declares_quotas_retention_and_restrictive_policies() -> None:
    resources = by_type(run_program(HARDENED))
    assert len(resources["supabase-access:components:ProductionHardening"]) == 1
    quotas = {r.inputs["table"]: r.inputs for r in resources["supabase-access:index:WriteQuota"]}
    assert set(quotas) == {"sessions", "generated_content"}
    assert quotas["generated_content"] == {
        "schema": "public",
        "table": "generated_content",
        "limit": 100,
        "windowSeconds": 3600,
        "windowLabel": "hour",
        "privateSchema": "supabase_access",
    }
    assert quotas["sessions"]["limit"] == 20 and quotas["sessions"]["windowSeconds"] == 3600
    (retention,) = resources["supabase-access:index:RetentionPolicy"]
    assert retention.inputs["anonymousUsersDays"] == 30 and retention.inputs["sessionsDays"] == 90
    assert retention.inputs["ownedTables"] == [{"table": "sessions", "ownerColumn": "user_id"}]
    policies = {r.inputs["table"]: r.inputs["policies"] for r in resources["supabase-access:index:TablePolicies"]}
    restrictive = policies["generated_content"]["generated_content_insert_not_anonymous"]
    # (the mocks drop the None-valued `using`; the predicate goes as data, the provider's check
    # renders it to NOT_ANONYMOUS: see test_rule_data)
    assert restrictive == {
        "command": "INSERT",
        "roles": ["authenticated"],
        "permissive": False,
        "withCheck": {"notAnonymous": True},
    }


def test_dev_program_declares_no_hardening() -> None:
    resources = by_type(run_program({"supabase-access:environment": "dev"}))
    assert "supabase-access:components:ProductionHardening" not in resources
    assert "supabase-access:index:WriteQuota" not in resources


def test_program_stops_at_a_bad_hardening_value() -> None:
    with pytest.raises(Exception, match=r"supabase-access:writeQuotas\.sessions\.perHour"):
        run_program({**HARDENED, "supabase-access:writeQuotas": json.dumps({"sessions": {"perHour": 0}})})
