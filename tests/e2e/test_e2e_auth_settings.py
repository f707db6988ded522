"""End to end: AuthSettings through the real Pulumi engine and provider plugin.

The local Management API server runs in this process; the provider plugin reaches it over
HTTP as it would reach https://api.supabase.com, with the token from the stack's secret config.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi import automation as auto

from review.management_api_server import PROJECT_DEFAULTS, ManagementApiServer, hash_secret
from tests.support.engine import changes, engine_env, new_stack
from tests.support.paths import REPO

pytestmark = pytest.mark.e2e

TOKEN = "sbp_e2e_0123456789abcdef0123456789abcdef01234"
REF = "localprodprojectrefa"
CAPTCHA_SECRET = "0x4AAAAAAAe2e-captcha-secret-value"
DESIRED: dict[str, object] = {
    "rate_limit_anonymous_users": 20,
    "rate_limit_otp": 25,
    "external_anonymous_users_enabled": True,
    "security_captcha_enabled": True,
    "security_captcha_provider": "turnstile",
}
StackFactory = Callable[..., auto.Stack]


@pytest.fixture
def server() -> Iterator[ManagementApiServer]:
    with ManagementApiServer(token=TOKEN) as running:
        yield running


@pytest.fixture
def make_stack(tmp_path: Path, fresh_db: str, server: ManagementApiServer) -> StackFactory:
    def make(token: str = TOKEN, name: str = "local-prod") -> auto.Stack:
        config = {
            "supabase-access:environment": "prod",
            "supabase-access:profile": "owner",
            "supabase-access:projectRef": REF,
            "supabase-access:managementApiUrl": server.base_url,
        }
        stack = new_stack(tmp_path / name, name, fresh_db, config)
        stack.set_config("supabase-access:accessToken", auto.ConfigValue(token, secret=True))
        # As a person would: `pulumi config set --path` per key, the secret with --secret.
        for key, value in DESIRED.items():
            text = json.dumps(value) if isinstance(value, bool) else str(value)
            stack.set_config(f"supabase-access:authSettings.{key}", auto.ConfigValue(text), path=True)
        stack.set_config(
            "supabase-access:authSettings.security_captcha_secret",
            auto.ConfigValue(CAPTCHA_SECRET, secret=True),
            path=True,
        )
        return stack

    return make


def exported_state(stack: auto.Stack) -> str:
    """`pulumi stack export` as stored (Automation API's export_stack adds --show-secrets)."""
    work_dir = Path(stack.workspace.work_dir)
    result = subprocess.run(
        ["pulumi", "stack", "export", "--stack", stack.name],
        cwd=work_dir,
        env={**os.environ, **engine_env(work_dir / "state")},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout


def changed(summary: Mapping[Any, int] | None) -> dict[str, int]:
    """The operations other than 'same' (the Automation API types its keys as OpType)."""
    return changes({str(op): count for op, count in (summary or {}).items()})


def managed_values(server: ManagementApiServer) -> dict[str, object]:
    config = server.config(REF)
    return {key: config[key] for key in DESIRED}


def test_up_converges_drift_is_seen_and_repaired_destroy_restores(
    make_stack: StackFactory, server: ManagementApiServer, tmp_path: Path
) -> None:
    stack = make_stack()
    first = stack.up()
    assert managed_values(server) == DESIRED
    assert server.config(REF)["security_captcha_secret"] == hash_secret(CAPTCHA_SECRET)
    patches = server.requests_with("PATCH")
    assert len(patches) == 1 and patches[0].body == {**DESIRED, "security_captcha_secret": CAPTCHA_SECRET}

    # Converged: nothing to do, the hashed CAPTCHA secret included.
    second = stack.up()
    assert changed(second.summary.resource_changes) == {}
    assert changed(stack.preview().change_summary) == {}
    assert len(server.requests_with("PATCH")) == 1

    server.set_value(REF, "rate_limit_anonymous_users", 999)  # a dashboard edit
    preview = stack.preview(diff=True, refresh=True)
    assert changed(preview.change_summary) == {"update": 1}
    assert "rate_limit_anonymous_users" in preview.stdout
    repair = stack.up()
    assert changed(repair.summary.resource_changes) == {"update": 1}
    assert server.config(REF)["rate_limit_anonymous_users"] == 20
    assert server.requests_with("PATCH")[-1].body == {"rate_limit_anonymous_users": 20}

    state = exported_state(stack)
    assert '"supabase-access:index:AuthSettings"' in state
    outputs = "".join(result.stdout + result.stderr for result in (first, second, preview, repair))
    files = "".join(p.read_text(errors="ignore") for p in (tmp_path / "local-prod").rglob("*") if p.is_file())
    for secret in (TOKEN, CAPTCHA_SECRET):
        assert secret not in state and secret not in outputs and secret not in files

    destroyed = stack.destroy()
    after = server.config(REF)
    assert {key: after[key] for key in DESIRED if key != "security_captcha_provider"} == {
        key: PROJECT_DEFAULTS[key] for key in DESIRED if key != "security_captcha_provider"
    }
    # The two that cannot be put back are said so, by name only.
    assert "security_captcha_secret left as it is" in destroyed.stdout
    assert "security_captcha_provider left as it is" in destroyed.stdout
    assert CAPTCHA_SECRET not in destroyed.stdout and TOKEN not in destroyed.stdout


def test_wrong_token_names_the_setting_and_project_never_the_token(
    make_stack: StackFactory, server: ManagementApiServer
) -> None:
    wrong = "sbp_wrong_e2e_token_that_must_not_leak_0000"
    stack = make_stack(token=wrong)
    with pytest.raises(auto.errors.CommandError) as info:
        stack.up()
    text = str(info.value)
    assert "supabase-access:accessToken" in text and f"project {REF}" in text
    assert wrong not in text and TOKEN not in text
    assert server.requests_with("PATCH") == []


def test_prod_with_private_channels_turns_public_access_off_and_destroy_gives_it_back(
    tmp_path: Path, fresh_db: str, server: ManagementApiServer
) -> None:
    """Issue 25: a prod stack whose model has private channels sets Realtime's private_only (the
    dashboard's "Allow public access" off) through the Management API; a dashboard edit is drift a
    refreshed preview shows and `up` repairs; destroy puts back what the project had."""
    model = yaml.safe_load((REPO / "access-model.yaml").read_text())
    model["realtime"] = {"channels": {"user:{id}": {"owner": True}}}
    config = {
        "supabase-access:environment": "prod",
        "supabase-access:profile": "owner",
        "supabase-access:projectRef": REF,
        "supabase-access:managementApiUrl": server.base_url,
        "supabase-access:model": json.dumps(model),
    }
    stack = new_stack(tmp_path / "local-prod", "local-prod", fresh_db, config)
    stack.set_config("supabase-access:accessToken", auto.ConfigValue(TOKEN, secret=True))
    assert server.realtime_config(REF)["private_only"] is False
    first = stack.up()
    assert server.realtime_config(REF)["private_only"] is True
    assert [p.body for p in server.requests_with("PATCH") if p.path.endswith("/realtime")] == [{"private_only": True}]
    assert "Allow public access" not in first.stdout
    assert changed(stack.preview(refresh=True).change_summary) == {}

    server.set_realtime_value(REF, "private_only", False)  # "Allow public access" turned on in the dashboard
    preview = stack.preview(diff=True, refresh=True)
    assert changed(preview.change_summary) == {"update": 1}
    assert "private_only" in preview.stdout
    stack.up()
    assert server.realtime_config(REF)["private_only"] is True

    stack.destroy()
    assert server.realtime_config(REF)["private_only"] is False
    assert TOKEN not in exported_state(stack)
