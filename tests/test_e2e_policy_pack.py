"""The guardrails policy pack (policy/): its rules on plain data, and through the real engine.

End to end, `pulumi preview` runs with the pack the way `pulumi preview --policy-pack policy`
does: the engine starts the pack through Pulumi's Python language host (RunPlugin, which hands
it the stack name and config) and fails the preview on a MANDATORY violation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi import automation as auto

from policy.guardrails import (
    AUTH_SETTINGS_TYPE,
    RLS_TYPE,
    RULES,
    STACK_TYPE,
    TABLE_GRANT_TYPE,
    TABLE_POLICIES_TYPE,
    UNKNOWN,
    StackResource,
    findings,
    is_literally_true,
    stack_environment,
)
from tests.support.engine import REPO, new_stack

POLICY_PACK = REPO / "policy"
PROD_OPEN = {
    "supabase-access:environment": "prod",
    "supabase-access:profile": "open",
    "supabase-access:allowOpenProfileInProd": "true",
}
DEV_OPEN = {"supabase-access:environment": "dev", "supabase-access:profile": "open"}
# What the AuthSettings resource needs to be declared. A preview of its creation only checks
# the inputs; nothing listens on this address, so a preview that called the API would fail loudly.
AUTH_SETTINGS_CONNECTION = {
    "supabase-access:projectRef": "policypackprojectref",
    "supabase-access:managementApiUrl": "http://127.0.0.1:9",
}
FOUND_ON_OPEN_PROFILE = ("no-open-write-policies", "no-constraint-removal", "no-open-profile", "auth-rate-limits")
StackFactory = Callable[[str, dict[str, str]], auto.Stack]


# --- the rules on plain data ---------------------------------------------------------------


def resource(resource_type: str, name: str, stack: str = "dev", **props: Any) -> StackResource:
    return StackResource(resource_type, f"urn:pulumi:{stack}::supabase-access::{resource_type}::{name}", name, props)


def policy(
    command: str, roles: list[str], *, using: str | None = None, with_check: str | None = None
) -> dict[str, Any]:
    return {"command": command, "roles": roles, "permissive": True, "using": using, "withCheck": with_check}


def rules_found(resources: list[StackResource]) -> list[str]:
    return [f.rule for f in findings(resources)]


SAFE_STACK = [
    resource(STACK_TYPE, "supabase-access-dev", environment="dev", profile="owner"),
    resource(RLS_TYPE, "sessions-rls", schema="public", table="sessions", force=False),
    resource(
        TABLE_POLICIES_TYPE,
        "sessions-policies",
        schema="public",
        table="sessions",
        policies={"own": policy("ALL", ["authenticated"], using="user_id = auth.uid()")},
    ),
    resource(
        TABLE_GRANT_TYPE, "anon-sessions-grant", role="anon", schema="public", objects=["sessions"], privileges=[]
    ),
    resource(AUTH_SETTINGS_TYPE, "auth-settings", projectRef="x", settings={"rate_limit_otp": 30}),
]


@pytest.mark.unit
def test_a_safe_stack_has_no_findings() -> None:
    assert findings(SAFE_STACK) == []


@pytest.mark.unit
@pytest.mark.parametrize(
    ("open_policy", "found"),
    [
        (policy("INSERT", ["anon"], with_check="true"), True),
        (policy("UPDATE", ["authenticated"], using="user_id = auth.uid()", with_check=" ( TRUE ) "), True),
        (policy("DELETE", ["service_role", "public"], using="(true)"), True),
        (policy("ALL", [], using="true"), True),  # no roles: PostgreSQL's TO PUBLIC
        (policy("SELECT", ["anon"], using="true"), False),  # reading, not writing
        (policy("INSERT", ["service_role"], with_check="true"), False),
        (policy("UPDATE", ["anon"], using="truethy_column"), False),
        ({**policy("INSERT", ["anon"], with_check="true"), "permissive": False}, False),  # restrictive narrows
    ],
)
def test_open_write_policies(open_policy: dict[str, Any], found: bool) -> None:
    stack = [*SAFE_STACK]
    stack[2] = resource(
        TABLE_POLICIES_TYPE, "sessions-policies", schema="public", table="sessions", policies={"p": open_policy}
    )
    assert rules_found(stack) == (["no-open-write-policies"] if found else [])


@pytest.mark.unit
def test_rls_missing_for_a_table_with_policies_or_grants() -> None:
    without_rls = [r for r in SAFE_STACK if r.type != RLS_TYPE]
    assert rules_found(without_rls) == ["rls-enabled"]
    granted = [
        *SAFE_STACK,
        resource(
            TABLE_GRANT_TYPE, "authenticated-turns-grant", schema="public", objects=["turns"], privileges=["SELECT"]
        ),
    ]
    [finding] = findings(granted)
    assert (finding.rule, finding.message) == ("rls-enabled", "public.turns: no RowLevelSecurity resource keeps RLS on")


@pytest.mark.unit
def test_rate_limits_need_an_auth_settings_resource_with_rate_limit_settings() -> None:
    without_auth = [r for r in SAFE_STACK if r.type != AUTH_SETTINGS_TYPE]
    assert rules_found(without_auth) == ["auth-rate-limits"]
    no_limits = [
        *without_auth,
        resource(AUTH_SETTINGS_TYPE, "auth", projectRef="x", settings={"external_anonymous_users_enabled": True}),
    ]
    assert rules_found(no_limits) == ["auth-rate-limits"]


@pytest.mark.unit
def test_environment_prod_when_anything_says_prod_or_nothing_says() -> None:
    def environment(stack: str | None, declared: object) -> str:
        config = {} if declared is None else {"supabase-access:environment": declared}
        return stack_environment(stack, config).name

    assert environment("dev", "dev") == "dev"
    assert environment("review-42", "dev") == "dev"
    assert environment("staging", "prod") == "prod"
    assert environment("local-prod", "dev") == "prod"  # the name wins over a config saying dev
    assert environment("production", "dev") == "prod"
    assert environment("dev", None) == "prod"  # fail closed
    assert environment("dev", UNKNOWN) == "prod"
    assert environment(None, "dev") == "dev"
    assert stack_environment("dev", None).name == "prod"


@pytest.mark.unit
def test_literally_true() -> None:
    assert all(map(is_literally_true, ["true", "TRUE", "(true)", " ( ( true ) ) "]))
    assert not any(map(is_literally_true, [None, "false", "true = true", "(true) or (false)", "1 = 1"]))


# --- the real engine -----------------------------------------------------------------------


@pytest.fixture
def make_stack(tmp_path: Path, fresh_db: str) -> StackFactory:
    def make(name: str, config: dict[str, str]) -> auto.Stack:
        return new_stack(tmp_path / name, name, fresh_db, config)

    return make


def committed_prod_config() -> dict[str, Any]:
    """The committed prod stack's settings, its connection left out (the test's database is used)."""
    settings = yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())["config"]
    return {key: value for key, value in settings.items() if not key.startswith("postgresql:")}


def add_stack_config(stack: auto.Stack, values: Mapping[str, Any]) -> None:
    """Adds structured values (objects, lists) to the stack's settings file, as a person would edit it."""
    settings_file = Path(stack.workspace.work_dir) / f"Pulumi.{stack.name}.yaml"
    settings = yaml.safe_load(settings_file.read_text())
    settings.setdefault("config", {}).update(values)
    settings_file.write_text(yaml.safe_dump(settings, sort_keys=False))


def preview_with_pack(stack: auto.Stack) -> tuple[str, bool, float]:
    """(output, whether the preview passed, seconds)."""
    started = time.monotonic()
    try:
        result = stack.preview(policy_packs=[str(POLICY_PACK)])
    except auto.CommandError as error:
        return str(error), False, time.monotonic() - started
    return result.stdout, True, time.monotonic() - started


@pytest.mark.e2e
def test_prod_stack_with_the_open_profile_fails_preview(make_stack: StackFactory) -> None:
    output, passed, seconds = preview_with_pack(make_stack("prod", PROD_OPEN))
    assert not passed, output
    print(f"prod/open preview with the pack: {seconds:.1f}s")
    for rule in FOUND_ON_OPEN_PROFILE:
        assert f"[mandatory]  prod-{rule}" in output, rule
    assert "sessions_insert_open (INSERT to anon, authenticated: WITH CHECK (true))" in output
    assert "public.sessions: constraint sessions_user_id_fkey is removed" in output
    assert "the stack declares no AuthSettings resource" in output
    assert "[advisory]" not in output and "rls-enabled" not in output
    assert "preview failed" in output


@pytest.mark.e2e
def test_committed_prod_profile_passes(make_stack: StackFactory) -> None:
    stack = make_stack("prod", AUTH_SETTINGS_CONNECTION)
    stack.set_config(
        "supabase-access:accessToken", auto.ConfigValue("sbp_policy_pack_test_token_0123456789", secret=True)
    )
    committed = committed_prod_config()
    assert committed["supabase-access:profile"] == "owner"
    assert any(key.startswith("rate_limit_") for key in committed["supabase-access:authSettings"])
    add_stack_config(stack, committed)
    output, passed, seconds = preview_with_pack(stack)
    print(f"committed prod preview with the pack: {seconds:.1f}s")
    assert passed, output
    assert "supabase-access-guardrails" in output  # the pack ran
    assert "[mandatory]" not in output and "[advisory]" not in output


@pytest.mark.e2e
def test_dev_stack_with_the_open_profile_gets_advisory_findings(make_stack: StackFactory) -> None:
    output, passed, seconds = preview_with_pack(make_stack("dev", DEV_OPEN))
    print(f"dev/open preview with the pack: {seconds:.1f}s")
    assert passed, output
    for rule in FOUND_ON_OPEN_PROFILE:
        assert f"[advisory]  dev-{rule}" in output, rule
    assert "[mandatory]" not in output
    assert set(RULES) >= set(FOUND_ON_OPEN_PROFILE)
