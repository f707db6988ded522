"""The guardrails policy pack's rules (policy/) on plain data, without the engine (through the real
engine: tests/e2e/test_e2e_policy_pack.py)."""

from __future__ import annotations

from typing import Any

import pytest

from policy.guardrails import (
    ACCESS_RULES_TYPE,
    AUTH_SETTINGS_TYPE,
    RLS_TYPE,
    STACK_TYPE,
    TABLE_GRANT_TYPE,
    TABLE_POLICIES_TYPE,
    UNKNOWN,
    StackResource,
    findings,
    is_literally_true,
    row_blind,
    stack_environment,
)
from tests.support.hostile_policies import NAMING_A_COLUMN, SEEN_BY_THEIR_TEXT


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


# Extra policies that name no column of the row, or compare one with itself: found by their text.
ROW_AWARE = (
    "user_id = (select auth.uid())",
    "title <> 'x' and user_id = auth.uid()",
    "session_id = any (array(select id from public.sessions where user_id = (select auth.uid())))",
    # Caught by the preflight's probe only: they name a column.
    *NAMING_A_COLUMN,
    "coalesce(auth.uid(), user_id) = user_id",
)


def extra_stack(expression: str, *, declared: bool = False, permissive: bool = True) -> list[StackResource]:
    component: dict[str, Any] = {"extraPolicies": {"sessions": ["extra"]}}
    if declared:
        component["widenings"] = {"sessions.extra": "why"}
    extra = {**policy("INSERT", ["authenticated"], with_check=expression), "permissive": permissive}
    generated = policy("SELECT", ["anon", "authenticated"], using="true")  # a public-read table's own: not extra
    stack = [*SAFE_STACK, resource(ACCESS_RULES_TYPE, "access", **component)]
    stack[2] = resource(
        TABLE_POLICIES_TYPE, "sessions-policies", table="sessions", policies={"extra": extra, "read": generated}
    )
    return stack


@pytest.mark.unit
@pytest.mark.parametrize("expression", SEEN_BY_THEIR_TEXT)
def test_an_extra_policy_blind_to_the_row_is_found(expression: str) -> None:
    (finding,) = [f for f in findings(extra_stack(expression)) if f.rule == "no-row-blind-extra-policies"]
    assert finding.message.startswith("public.sessions: supabase-access:extraPolicies.sessions.extra (INSERT to ")
    assert row_blind(expression)
    # Declared, or restrictive: nothing to find.
    assert "no-row-blind-extra-policies" not in rules_found(extra_stack(expression, declared=True))
    assert "no-row-blind-extra-policies" not in rules_found(extra_stack(expression, permissive=False))


@pytest.mark.unit
@pytest.mark.parametrize("expression", ROW_AWARE)
def test_an_extra_policy_that_reads_the_row_is_left_to_the_preflight(expression: str) -> None:
    assert not row_blind(expression)
    assert "no-row-blind-extra-policies" not in rules_found(extra_stack(expression))
