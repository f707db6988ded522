"""The AuthSettings resource class against the local Management API server (no engine).

State goes through the same conversions the provider server applies (property values and
back), so secret marks and number types are what the engine would store.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pulumi
import pytest
import yaml
from pulumi.provider.experimental.property_value import PropertyValue

from review.management_api_server import PROJECT_DEFAULTS, ManagementApiServer, hash_secret
from supabase_access.management_api.access import ManagementApiAccess
from supabase_access.management_api.client import ManagementApiAuthError, ManagementApiWriteOutcomeUnknownError
from supabase_access.model.stack_config import ConfigError, parse_auth_stack_settings
from supabase_access.provider.base import InputError
from supabase_access.provider.resources.auth_settings import AuthSettings, secret_fingerprint
from supabase_access.provider.values import plain_map, state_properties
from tests.support.program import RecordingMocks
from tests.support.program import run_program as run_mocked_program

pytestmark = pytest.mark.unit

TOKEN = "sbp_unit_0123456789abcdef0123456789abcdef0123"
REF = "abcdefghijklmnopqrst"
CAPTCHA_SECRET = "0x4AAAAAAAunit-captcha-secret"
REPO = Path(__file__).resolve().parents[2]
DESIRED: dict[str, Any] = {
    "rate_limit_anonymous_users": 25,
    "rate_limit_verify": 30,  # already the project's value: nothing to send
    "external_anonymous_users_enabled": True,
    "security_captcha_enabled": True,
    "security_captcha_provider": "turnstile",
    "security_captcha_secret": CAPTCHA_SECRET,
}


@pytest.fixture
def server() -> Iterator[ManagementApiServer]:
    with ManagementApiServer(token=TOKEN) as running:
        yield running


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def logs() -> list[str]:
    return []


@pytest.fixture
def api(server: ManagementApiServer, waits: list[float]) -> ManagementApiAccess:
    access = ManagementApiAccess(sleep=waits.append)
    access.configure({"managementApiUrl": server.base_url, "accessToken": TOKEN, "host": "unused"})
    return access


@pytest.fixture
def resource(api: ManagementApiAccess) -> AuthSettings:
    return AuthSettings(api)


def engine_view(values: dict[str, Any]) -> dict[str, Any]:
    """What the provider gets back from the engine: property values made plain again."""
    return plain_map(state_properties(AuthSettings.spec, values))


def checked(resource: AuthSettings, settings: dict[str, Any], olds: dict[str, Any] | None = None) -> dict[str, Any]:
    return engine_view(resource.check(olds or {}, {"projectRef": REF, "settings": settings}))


def created(resource: AuthSettings, logs: list[str], settings: dict[str, Any] = DESIRED) -> tuple[dict, dict]:
    inputs = checked(resource, settings)
    resource_id, outputs = resource.create(inputs, logs.append)
    assert resource_id == REF
    return inputs, engine_view(outputs)


def plain_strings(value: PropertyValue, *, inside_secret: bool = False) -> Iterator[str]:
    """Every string the engine would store in clear (not under a secret mark)."""
    secret = inside_secret or value.is_secret
    inner = value.value
    if isinstance(inner, str) and not secret:
        yield inner
    elif isinstance(inner, dict):
        for item in inner.values():
            yield from plain_strings(item, inside_secret=secret)
    elif isinstance(inner, (list, tuple)):
        for item in inner:
            yield from plain_strings(item, inside_secret=secret)


# -- converge ------------------------------------------------------------------------------


def test_create_sends_only_what_differs_and_records_previous(
    server: ManagementApiServer, resource: AuthSettings, logs: list[str]
) -> None:
    _, state = created(resource, logs)

    config = server.config(REF)
    assert config["rate_limit_anonymous_users"] == 25
    assert config["external_anonymous_users_enabled"] is True
    assert config["security_captcha_provider"] == "turnstile"
    assert config["security_captcha_secret"] == hash_secret(CAPTCHA_SECRET)
    (patch,) = server.requests_with("PATCH")
    assert patch.body == {key: value for key, value in DESIRED.items() if key != "rate_limit_verify"}
    assert state["previous"] == {key: PROJECT_DEFAULTS[key] for key in DESIRED if key != "security_captcha_secret"}
    assert state["live"]["rate_limit_anonymous_users"] == 25
    assert logs == []


def test_converged_stack_shows_no_diff_on_every_preview(
    server: ManagementApiServer, resource: AuthSettings, logs: list[str]
) -> None:
    inputs, state = created(resource, logs)
    for _ in range(3):
        assert resource.diff(state, inputs).changes == {}
    assert resource.diff(state, inputs).has_changes is False
    assert len(server.requests_with("PATCH")) == 1


def test_update_with_nothing_to_change_sends_no_write(
    server: ManagementApiServer, resource: AuthSettings, logs: list[str]
) -> None:
    inputs, state = created(resource, logs)
    again = engine_view(resource.update(state, inputs, logs.append))
    assert len(server.requests_with("PATCH")) == 1
    assert again["previous"] == state["previous"]


# -- drift -----------------------------------------------------------------------------------


def test_value_changed_behind_the_stacks_back_is_drift_and_up_repairs_it(
    server: ManagementApiServer, resource: AuthSettings, logs: list[str]
) -> None:
    inputs, state = created(resource, logs)
    server.set_value(REF, "rate_limit_anonymous_users", 999)
    server.set_value(REF, "external_anonymous_users_enabled", False)

    assert resource.diff(state, inputs).changes == {
        "settings.rate_limit_anonymous_users": "update",
        "settings.external_anonymous_users_enabled": "update",
    }
    found = resource.read(REF, state, inputs)
    assert found is not None
    refreshed = engine_view(found[0])
    assert refreshed["live"]["rate_limit_anonymous_users"] == 999
    assert refreshed["previous"] == state["previous"]  # a refresh never forgets what to restore

    repaired = engine_view(resource.update(refreshed, inputs, logs.append))
    assert server.config(REF)["rate_limit_anonymous_users"] == 25
    assert server.requests_with("PATCH")[-1].body == {
        "rate_limit_anonymous_users": 25,
        "external_anonymous_users_enabled": True,
    }
    assert resource.diff(repaired, inputs).changes == {}


def test_unmanaged_settings_are_neither_watched_nor_sent(
    server: ManagementApiServer, resource: AuthSettings, logs: list[str]
) -> None:
    inputs, state = created(resource, logs, {"rate_limit_otp": 12})
    server.set_value(REF, "rate_limit_token_refresh", 7)  # not the stack's business
    assert resource.diff(state, inputs).changes == {}
    assert [p.body for p in server.requests_with("PATCH")] == [{"rate_limit_otp": 12}]


# -- the CAPTCHA secret ----------------------------------------------------------------------


def test_changed_secret_in_the_stack_is_a_diff_once(
    server: ManagementApiServer, resource: AuthSettings, logs: list[str]
) -> None:
    _, state = created(resource, logs)
    new_inputs = checked(resource, {**DESIRED, "security_captcha_secret": "0x4AAAAAAAanother-secret"})
    assert resource.diff(state, new_inputs).changes == {"settings.security_captcha_secret": "update"}

    state = engine_view(resource.update(state, new_inputs, logs.append))
    assert server.requests_with("PATCH")[-1].body == {"security_captcha_secret": "0x4AAAAAAAanother-secret"}
    assert server.config(REF)["security_captcha_secret"] == hash_secret("0x4AAAAAAAanother-secret")
    assert resource.diff(state, new_inputs).changes == {}


def test_secret_replaced_behind_the_stacks_back_is_drift(
    server: ManagementApiServer, resource: AuthSettings, logs: list[str]
) -> None:
    inputs, state = created(resource, logs)
    server.set_value(REF, "security_captcha_secret", "someone-pasted-another-secret")
    assert resource.diff(state, inputs).changes == {"settings.security_captcha_secret": "update"}

    state = engine_view(resource.update(state, inputs, logs.append))
    assert server.config(REF)["security_captcha_secret"] == hash_secret(CAPTCHA_SECRET)
    assert resource.diff(state, inputs).changes == {}


def test_secrets_reach_the_engine_only_marked_secret(
    server: ManagementApiServer, resource: AuthSettings, logs: list[str]
) -> None:
    inputs = resource.check({}, {"projectRef": REF, "settings": DESIRED})
    _, outputs = resource.create(engine_view(inputs), logs.append)
    found = resource.read(REF, engine_view(outputs), engine_view(inputs))
    assert found is not None

    hidden = {CAPTCHA_SECRET, hash_secret(CAPTCHA_SECRET), secret_fingerprint(CAPTCHA_SECRET), TOKEN}
    for values in (inputs, outputs, *found):
        # As the server sends them: the spec's secret outputs marked.
        shown = [
            text for value in state_properties(AuthSettings.spec, values).values() for text in plain_strings(value)
        ]
        assert not hidden & set(shown), shown
        assert all(TOKEN not in text and CAPTCHA_SECRET not in text for text in shown)
    assert not any(CAPTCHA_SECRET in line or TOKEN in line for line in logs)


# -- 429 and 5xx -----------------------------------------------------------------------------


def test_rate_limits_and_server_errors_are_survived(
    server: ManagementApiServer, resource: AuthSettings, logs: list[str], waits: list[float]
) -> None:
    server.fail_next(429, count=2)  # the first GET of create, twice
    inputs, state = created(resource, logs)
    assert waits == [1.0, 1.0]  # Retry-After: 1, as the server said

    server.fail_next(500, count=2)  # reads are retried with backoff
    assert resource.diff(state, inputs).changes == {}
    server.fail_next(503)
    assert resource.read(REF, state, inputs) is not None

    server.stall_next(0.0)  # the GET of the update answers normally ...
    server.fail_next(429)  # ... its PATCH is rate limited once: not processed, so sent again
    new_inputs = checked(resource, {**DESIRED, "rate_limit_anonymous_users": 20})
    resource.update(state, new_inputs, logs.append)
    assert server.config(REF)["rate_limit_anonymous_users"] == 20
    assert len(server.requests_with("PATCH")) == 3  # create, the 429, the retry


def test_a_write_that_failed_after_sending_is_never_repeated(
    server: ManagementApiServer, resource: AuthSettings, logs: list[str]
) -> None:
    server.stall_next(0.0)  # GET answers normally
    server.fail_next(500)  # PATCH: the server may have applied it
    with pytest.raises(ManagementApiWriteOutcomeUnknownError) as caught:
        created(resource, logs)
    assert "refresh" in str(caught.value) and REF in str(caught.value)
    assert len(server.requests_with("PATCH")) == 1


# -- delete and dropped keys ------------------------------------------------------------------


def test_delete_restores_previous_values(server: ManagementApiServer, resource: AuthSettings, logs: list[str]) -> None:
    _, state = created(resource, logs)
    resource.delete(state, logs.append)

    config = server.config(REF)
    for key in ("rate_limit_anonymous_users", "external_anonymous_users_enabled", "security_captcha_enabled"):
        assert config[key] == PROJECT_DEFAULTS[key]
    restore = server.requests_with("PATCH")[-1].body
    assert restore == {
        "rate_limit_anonymous_users": 30,
        "rate_limit_verify": 30,
        "external_anonymous_users_enabled": False,
        "security_captcha_enabled": False,
    }
    # No value to send back for these; said so, by name only.
    assert any("security_captcha_secret left as it is" in line for line in logs)
    assert any("security_captcha_provider left as it is" in line for line in logs)
    assert not any(CAPTCHA_SECRET in line for line in logs)


def test_previous_is_what_the_project_had_before_the_first_change(
    server: ManagementApiServer, resource: AuthSettings, logs: list[str]
) -> None:
    server.set_value(REF, "rate_limit_anonymous_users", 45)  # someone's earlier choice
    _, state = created(resource, logs, {"rate_limit_anonymous_users": 25})
    second = checked(resource, {"rate_limit_anonymous_users": 10})
    state = engine_view(resource.update(state, second, logs.append))
    assert state["previous"] == {"rate_limit_anonymous_users": 45}
    resource.delete(state, logs.append)
    assert server.config(REF)["rate_limit_anonymous_users"] == 45


def test_key_dropped_from_the_stack_is_restored_and_new_key_remembered(
    server: ManagementApiServer, resource: AuthSettings, logs: list[str]
) -> None:
    _, state = created(resource, logs, {"rate_limit_otp": 12, "rate_limit_web3": 9})
    new_inputs = checked(resource, {"rate_limit_otp": 12, "rate_limit_sms_sent": 30})
    assert resource.diff(state, new_inputs).changes == {
        "settings.rate_limit_web3": "delete",
        "settings.rate_limit_sms_sent": "add",  # already right, but its previous value is recorded
    }
    state = engine_view(resource.update(state, new_inputs, logs.append))
    assert server.config(REF)["rate_limit_web3"] == 30
    assert state["previous"] == {"rate_limit_otp": 30, "rate_limit_sms_sent": 30}
    assert resource.diff(state, new_inputs).changes == {}


def test_read_of_a_project_that_is_gone(server: ManagementApiServer, resource: AuthSettings, logs: list[str]) -> None:
    inputs, state = created(resource, logs)
    server.fail_next(404, message="Project not found")
    assert resource.read(REF, state, inputs) is None


def test_import_records_the_current_values_as_previous(server: ManagementApiServer, resource: AuthSettings) -> None:
    found = resource.read(REF, {}, {"projectRef": REF, "settings": {"rate_limit_otp": 40}})
    assert found is not None
    assert engine_view(found[0])["previous"] == {"rate_limit_otp": 30}


# -- errors ------------------------------------------------------------------------------------


def test_wrong_token_names_project_and_setting_never_the_token(
    server: ManagementApiServer, api: ManagementApiAccess, resource: AuthSettings, logs: list[str]
) -> None:
    inputs, state = created(resource, logs)
    wrong = "sbp_wrong_unit_token_must_not_leak_00000000"
    api.configure({"managementApiUrl": server.base_url, "accessToken": wrong})
    with pytest.raises(ManagementApiAuthError) as caught:
        resource.diff(state, inputs)
    message = str(caught.value)
    assert "supabase-access:accessToken" in message and REF in message
    assert wrong not in message and TOKEN not in message


def test_missing_token_fails_check_naming_the_setting(api: ManagementApiAccess, resource: AuthSettings) -> None:
    api.configure({"host": "unused"})
    with pytest.raises(InputError) as caught:
        resource.check({}, {"projectRef": REF, "settings": {"rate_limit_otp": 3}})
    assert "supabase-access:accessToken" in caught.value.reason and REF in caught.value.reason


def test_missing_token_at_apply_time_is_a_clear_error(logs: list[str]) -> None:
    never_configured = AuthSettings(ManagementApiAccess())  # as with a provider config unknown at preview
    never_configured.check({}, {"projectRef": REF, "settings": {"rate_limit_otp": 3}})
    with pytest.raises(Exception, match="set supabase-access:accessToken"):
        never_configured.create({"projectRef": REF, "settings": {"rate_limit_otp": 3}}, logs.append)


@pytest.mark.parametrize(
    ("inputs", "property_name", "message"),
    [
        ({"settings": {}}, "projectRef", "set supabase-access:projectRef"),
        ({"projectRef": "Not-A-Ref", "settings": {}}, "projectRef", "is not a Supabase project reference"),
        (
            {"projectRef": REF, "settings": {"rate_limit_anonymous_users": 0}},
            "settings",
            "settings.rate_limit_anonymous_users must be an integer between 1 and 2147483647, got 0",
        ),
        (
            {"projectRef": REF, "settings": {"security_captcha_secret": 12345678}},
            "settings",
            "settings.security_captcha_secret must be a string",
        ),
    ],
)
def test_bad_inputs_fail_check_naming_the_property(
    resource: AuthSettings, inputs: dict[str, Any], property_name: str, message: str
) -> None:
    with pytest.raises(InputError) as caught:
        resource.check({}, inputs)
    assert caught.value.property == property_name
    assert message in caught.value.reason
    assert "12345678" not in caught.value.reason


def test_bad_management_api_url_is_named(api: ManagementApiAccess, resource: AuthSettings) -> None:
    api.configure({"accessToken": TOKEN, "managementApiUrl": "api.supabase.com"})
    with pytest.raises(InputError, match="supabase-access:managementApiUrl"):
        resource.check({}, {"projectRef": REF, "settings": {}})


# -- stack settings --------------------------------------------------------------------------


def test_dev_stack_without_auth_settings_declares_nothing() -> None:
    assert parse_auth_stack_settings({}, environment="dev", token_set=False) is None


def test_prod_stack_without_project_or_token_is_skipped_loudly() -> None:
    auth = parse_auth_stack_settings({"authSettings": {"rate_limit_otp": 10}}, environment="prod", token_set=False)
    assert auth is not None and not auth.declared
    assert auth.missing == ("supabase-access:projectRef", "supabase-access:accessToken")
    assert "supabase-access:projectRef" in auth.skip_message()
    assert "pulumi config set --secret supabase-access:accessToken" in auth.skip_message()

    nothing = parse_auth_stack_settings({}, environment="prod", token_set=False)
    assert nothing is not None and "supabase-access:authSettings" in nothing.missing


@pytest.mark.parametrize(
    ("access", "message"),
    [
        (
            {"authSettings": {"rate_limit_anonymous_users": 0}},
            "supabase-access:authSettings.rate_limit_anonymous_users must be an integer between 1 and 2147483647",
        ),
        ({"authSettings": {"rate_limit_anonymus_users": 3}}, "did you mean rate_limit_anonymous_users?"),
        ({"authSettings": {"security_captcha_provider": "recaptcha"}}, "security_captcha_provider must be one of"),
        ({"authSettings": [1]}, "supabase-access:authSettings must be a mapping"),
        ({"projectRef": "my-project"}, "supabase-access:projectRef: 'my-project' is not a Supabase project reference"),
        ({"managementApiUrl": "api.supabase.com"}, "supabase-access:managementApiUrl"),
    ],
)
def test_bad_auth_stack_settings_are_named(access: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_auth_stack_settings(access, environment="dev", token_set=True)
    assert message in str(caught.value)


def test_captcha_secret_is_hidden_from_repr_and_its_absence_is_warned() -> None:
    auth = parse_auth_stack_settings(
        {"projectRef": REF, "authSettings": {"security_captcha_secret": CAPTCHA_SECRET}},
        environment="dev",
        token_set=True,
    )
    assert auth is not None and auth.declared and CAPTCHA_SECRET not in repr(auth)
    enabled_only = parse_auth_stack_settings(
        {"projectRef": REF, "authSettings": {"security_captcha_enabled": True}}, environment="prod", token_set=True
    )
    assert enabled_only is not None
    assert "security_captcha_secret is not set" in enabled_only.warnings[0]


def test_committed_prod_stack_settings_are_valid_production_values() -> None:
    config = yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())["config"]
    auth = parse_auth_stack_settings(
        {"projectRef": REF, "authSettings": config["supabase-access:authSettings"]}, environment="prod", token_set=True
    )
    assert auth is not None and auth.declared
    assert auth.settings["external_anonymous_users_enabled"] is True
    assert auth.settings["rate_limit_anonymous_users"] == 30
    assert auth.settings["security_captcha_enabled"] is True
    assert auth.settings["security_captcha_provider"] == "turnstile"
    assert "security_captcha_secret" not in auth.settings  # never committed
    for key, default in PROJECT_DEFAULTS.items():
        if key.startswith("rate_limit_") and key in auth.settings:
            assert cast(int, auth.settings[key]) <= cast(int, default)  # the documented default or stricter


# -- the program ---------------------------------------------------------------------------


def unwrap_secret(value: Any) -> Any:
    """The value inside the SDK's secret wrapper; fails if `value` is not one."""
    assert isinstance(value, dict) and set(value) == {pulumi.runtime.rpc._special_sig_key, "value"}, value
    assert value[pulumi.runtime.rpc._special_sig_key] == pulumi.runtime.rpc._special_secret_sig
    return value["value"]


def run_program(
    config: dict[str, str], monkeypatch: pytest.MonkeyPatch, secret_keys: tuple[str, ...] = ()
) -> tuple[RecordingMocks, list[str]]:
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *args, **kwargs: warnings.append(message))
    return run_mocked_program(config, secret_keys), warnings


def test_program_declares_auth_settings_when_the_stack_sets_them(monkeypatch: pytest.MonkeyPatch) -> None:
    mocks, warnings = run_program(
        {
            "supabase-access:environment": "prod",
            "supabase-access:projectRef": REF,
            "supabase-access:accessToken": TOKEN,
            "supabase-access:managementApiUrl": "http://127.0.0.1:9",
            "supabase-access:authSettings": '{"rate_limit_anonymous_users": 30, "security_captcha_secret": "x"}',
        },
        monkeypatch,
        # As `pulumi config set --secret --path supabase-access:authSettings.security_captcha_secret` stores it.
        secret_keys=("supabase-access:authSettings",),
    )
    (auth,) = [r for r in mocks.resources if r.typ == "supabase-access:index:AuthSettings"]
    assert auth.inputs["projectRef"] == REF
    # Holding a secret, the settings reach the engine marked secret.
    assert unwrap_secret(auth.inputs["settings"]) == {"rate_limit_anonymous_users": 30, "security_captcha_secret": "x"}
    (provider,) = [r for r in mocks.resources if r.typ == "pulumi:providers:supabase-access"]
    assert provider.inputs["managementApiUrl"] == "http://127.0.0.1:9"
    assert unwrap_secret(provider.inputs["accessToken"]) == TOKEN
    assert warnings == []


def test_prod_program_without_project_or_token_warns_and_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    mocks, warnings = run_program({"supabase-access:environment": "prod"}, monkeypatch)
    assert not [r for r in mocks.resources if r.typ == "supabase-access:index:AuthSettings"]
    assert len(warnings) == 1
    assert "supabase-access:projectRef, supabase-access:accessToken" in warnings[0]


def test_dev_program_says_nothing_about_auth_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    mocks, warnings = run_program({"supabase-access:environment": "dev"}, monkeypatch)
    assert not [r for r in mocks.resources if r.typ == "supabase-access:index:AuthSettings"]
    (provider,) = [r for r in mocks.resources if r.typ == "pulumi:providers:supabase-access"]
    assert "accessToken" not in provider.inputs and "managementApiUrl" not in provider.inputs
    assert warnings == []


def test_program_stops_at_preview_naming_the_bad_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(Exception, match=r"supabase-access:authSettings\.rate_limit_anonymous_users must be"):
        run_program(
            {"supabase-access:environment": "dev", "supabase-access:authSettings": '{"rate_limit_anonymous_users": 0}'},
            monkeypatch,
        )


def test_program_managing_auth_settings_without_the_token_stops_instead_of_reverting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(Exception, match=r"supabase-access:accessToken is not set, but this stack manages"):
        run_program(
            {
                "supabase-access:environment": "prod",
                "supabase-access:projectRef": REF,
                "supabase-access:authSettings": '{"rate_limit_anonymous_users": 30}',
            },
            monkeypatch,
        )


def test_state_is_declared_in_the_spec(server: ManagementApiServer, resource: AuthSettings, logs: list[str]) -> None:
    inputs, state = created(resource, logs)
    found = resource.read(REF, state, inputs)
    assert found is not None
    for values in (inputs, state, *found):
        assert AuthSettings.spec.undeclared(values) == []
