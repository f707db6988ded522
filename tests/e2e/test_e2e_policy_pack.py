"""The guardrails policy pack (policy/) through the real engine (its rules on plain data:
tests/unit/test_policy_pack_rules.py).

End to end, `pulumi preview` runs with the pack the way `pulumi preview --policy-pack policy`
does: the engine starts the pack through Pulumi's Python language host (RunPlugin, which hands
it the stack name and config) and fails the preview on a MANDATORY violation.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi import automation as auto

from policy.guardrails import (
    RULES,
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
    # And an extra policy blind to the row (no-row-blind-extra-policies: the static subset of the probe).
    blind = {"command": "UPDATE", "roles": ["authenticated"], "using": "auth.uid() is not null"}
    extra = {"supabase-access:extraPolicies": json.dumps({"sessions": {"signed_in_updates": blind}})}
    output, passed, seconds = preview_with_pack(make_stack("dev", {**DEV_OPEN, **extra}))
    print(f"dev/open preview with the pack: {seconds:.1f}s")
    assert passed, output
    for rule in (*FOUND_ON_OPEN_PROFILE, "no-row-blind-extra-policies"):
        assert f"[advisory]  dev-{rule}" in output, rule
    assert "supabase-access:extraPolicies.sessions.signed_in_updates (UPDATE to authenticated): USING" in output
    assert "[mandatory]" not in output
    assert set(RULES) >= set(FOUND_ON_OPEN_PROFILE)
