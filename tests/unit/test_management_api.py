"""The auth-settings model and the Management API client, against a local fake of the API."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from review.management_api_server import PROJECT_DEFAULTS, ManagementApiServer, hash_secret
from supabase_access.management_api.client import (
    DEFAULT_MAX_WAIT_SECONDS,
    RATE_LIMIT_FALLBACK_WAIT_SECONDS,
    ManagementApi,
    ManagementApiAuthError,
    ManagementApiError,
    ManagementApiRateLimitError,
    ManagementApiWriteOutcomeUnknownError,
    seconds_until_rate_limit_reset,
)
from supabase_access.model.auth_settings import (
    BUNDLED_SCHEMA_PATH,
    DEFAULT_OPENAPI_PATH,
    MANAGED_AUTH_SETTINGS,
    load_auth_setting_schemas,
    redact_auth_settings,
    render_auth_config_schema,
    validate_auth_settings,
)

pytestmark = pytest.mark.unit

TOKEN = "sbp_0123456789abcdef0123456789abcdef01234567"
REF = "abcdefghijklmnopqrst"
TOKEN_SETTING = "supabase-access:accessToken"
PREFIX = "supabase-access:authSettings"
CAPTCHA_SECRET = "0x4AAAAAAAcaptcha-secret-value"
REPO_ROOT = Path(__file__).resolve().parents[2]
needs_spec = pytest.mark.skipif(not DEFAULT_OPENAPI_PATH.is_file(), reason="shared OpenAPI spec not present")

ApiFactory = Callable[..., ManagementApi]


@pytest.fixture
def server() -> Iterator[ManagementApiServer]:
    with ManagementApiServer(token=TOKEN) as running:
        yield running


@pytest.fixture
def waits() -> list[float]:
    """Every wait the client asked for, instead of sleeping."""
    return []


@pytest.fixture
def make_api(server: ManagementApiServer, waits: list[float]) -> Iterator[ApiFactory]:
    clients: list[ManagementApi] = []

    def factory(**overrides: Any) -> ManagementApi:
        options: dict[str, Any] = {
            "project_ref": REF,
            "token_setting": TOKEN_SETTING,
            "sleep": waits.append,
        }
        options.update(overrides)
        token = options.pop("token", TOKEN)
        base_url = options.pop("base_url", server.base_url)
        client = ManagementApi(base_url, token, **options)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()


def full_text(error: BaseException) -> str:
    """Everything a person could see of an error: message, repr and traceback."""
    return "\n".join([str(error), repr(error), *traceback.format_exception(error)])


# -- GET / PATCH against the fake ----------------------------------------------------


def test_get_then_patch_round_trip(server: ManagementApiServer, make_api: ApiFactory) -> None:
    api = make_api()
    initial = api.get_auth_config()
    assert {key: initial[key] for key in PROJECT_DEFAULTS} == PROJECT_DEFAULTS
    assert set(initial) == set(server.response_fields)

    after_patch = api.patch_auth_config({"rate_limit_otp": 60, "external_anonymous_users_enabled": True})
    assert after_patch["rate_limit_otp"] == 60
    assert after_patch["external_anonymous_users_enabled"] is True
    assert after_patch["rate_limit_verify"] == 30  # untouched keys keep their value
    assert api.get_auth_config() == after_patch


def test_patch_sends_only_the_given_keys_with_the_bearer_token(
    server: ManagementApiServer, make_api: ApiFactory
) -> None:
    make_api().patch_auth_config({"rate_limit_web3": 5})

    (patch,) = server.requests_with("PATCH")
    assert patch.path == f"/v1/projects/{REF}/config/auth"
    assert patch.body == {"rate_limit_web3": 5}
    assert patch.headers["Authorization"] == f"Bearer {TOKEN}"


def test_empty_patch_sends_no_write(server: ManagementApiServer, make_api: ApiFactory) -> None:
    assert make_api().patch_auth_config({})["rate_limit_otp"] == 30
    assert server.requests_with("PATCH") == []


def test_value_changed_behind_the_stacks_back_is_read(server: ManagementApiServer, make_api: ApiFactory) -> None:
    server.set_value(REF, "rate_limit_token_refresh", 999)
    assert make_api().get_auth_config()["rate_limit_token_refresh"] == 999


@pytest.mark.parametrize(
    ("changes", "expected_message"),
    [
        ({"rate_limit_otp": 0}, "rate_limit_otp must not be less than 1"),
        ({"rate_limit_otp": 2**31}, "rate_limit_otp must not be greater than 2147483647"),
        ({"rate_limit_otp": "30"}, "rate_limit_otp must be an integer number"),
        ({"rate_limit_otp": True}, "rate_limit_otp must be an integer number"),
        ({"rate_limit_otp": 1.5}, "rate_limit_otp must be an integer number"),
        ({"security_captcha_enabled": "yes"}, "security_captcha_enabled must be a boolean"),
        ({"security_captcha_provider": "recaptcha"}, "security_captcha_provider must be one of"),
        ({"no_such_setting": 1}, "property no_such_setting should not exist"),
    ],
)
def test_server_rejects_bodies_the_spec_forbids(
    server: ManagementApiServer,
    make_api: ApiFactory,
    changes: dict[str, object],
    expected_message: str,
) -> None:
    with pytest.raises(ManagementApiError) as caught:
        make_api().patch_auth_config(changes)

    assert caught.value.status == 400
    assert expected_message in str(caught.value)
    assert server.config(REF)["rate_limit_otp"] == 30  # nothing applied
    assert len(server.requests_with("PATCH")) == 1  # a 400 is not retried


@needs_spec
def test_server_accepts_spec_fields_the_stack_does_not_manage(
    server: ManagementApiServer, make_api: ApiFactory
) -> None:
    config = make_api().patch_auth_config({"site_url": "https://app.example.com"})
    assert config["site_url"] == "https://app.example.com"


def test_captcha_secret_comes_back_hashed(server: ManagementApiServer, make_api: ApiFactory) -> None:
    api = make_api()
    answer = api.patch_auth_config(
        {
            "security_captcha_enabled": True,
            "security_captcha_provider": "turnstile",
            "security_captcha_secret": CAPTCHA_SECRET,
        }
    )
    assert answer["security_captcha_secret"] == hash_secret(CAPTCHA_SECRET)
    assert answer["security_captcha_secret"] != CAPTCHA_SECRET
    assert api.get_auth_config()["security_captcha_secret"] == hash_secret(CAPTCHA_SECRET)


def test_api_message_echoing_the_captcha_secret_is_scrubbed(server: ManagementApiServer, make_api: ApiFactory) -> None:
    server.fail_next(400, message=f"secret {CAPTCHA_SECRET} rejected by provider")
    with pytest.raises(ManagementApiError) as caught:
        make_api().patch_auth_config({"security_captcha_secret": CAPTCHA_SECRET})
    assert "rejected by provider" in str(caught.value)
    assert CAPTCHA_SECRET not in full_text(caught.value)


# -- authentication ------------------------------------------------------------------


def test_wrong_token_names_project_and_setting_never_the_token(
    server: ManagementApiServer, make_api: ApiFactory
) -> None:
    wrong_token = "sbp_wrong_token_that_must_not_leak_000000000"
    api = make_api(token=wrong_token)
    with pytest.raises(ManagementApiAuthError) as caught:
        api.get_auth_config()

    message = str(caught.value)
    assert caught.value.status == 401
    assert REF in message and TOKEN_SETTING in message
    assert wrong_token not in full_text(caught.value)
    assert wrong_token not in repr(api)
    assert len(server.requests) == 1  # a refused token is not retried


def test_forbidden_is_an_auth_error_too(server: ManagementApiServer, make_api: ApiFactory) -> None:
    server.fail_next(403)
    with pytest.raises(ManagementApiAuthError) as caught:
        make_api().patch_auth_config({"rate_limit_otp": 10})
    assert caught.value.status == 403
    assert TOKEN_SETTING in str(caught.value) and REF in str(caught.value)
    assert TOKEN not in full_text(caught.value)


def test_client_refuses_to_start_without_token_or_with_a_bad_ref() -> None:
    with pytest.raises(ValueError, match=TOKEN_SETTING):
        ManagementApi("http://127.0.0.1:9", "", project_ref=REF, token_setting=TOKEN_SETTING)
    with pytest.raises(ValueError, match="project ref"):
        ManagementApi("http://127.0.0.1:9", TOKEN, project_ref="Ab", token_setting=TOKEN_SETTING)


# -- 429 -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PATCH"])
def test_rate_limited_then_success_waits_as_told(
    server: ManagementApiServer, make_api: ApiFactory, waits: list[float], method: str
) -> None:
    server.fail_next(429, count=2)  # Retry-After: 1
    api = make_api()
    if method == "GET":
        config = api.get_auth_config()
    else:
        config = api.patch_auth_config({"rate_limit_sms_sent": 12})
        assert config["rate_limit_sms_sent"] == 12
    assert waits == [1.0, 1.0]
    assert len(server.requests_with(method)) == 3


@pytest.mark.parametrize(
    ("reset_header", "expected_wait"),
    [
        ("7", 7.0),  # documented form: seconds until the window resets
        ("1700000012", 12.0),  # Unix timestamp in seconds
        ("1700000012500", 12.5),  # Unix timestamp in milliseconds
        ("1699999990", 0.0),  # a reset already past: go now
    ],
)
def test_rate_limit_reset_header_without_retry_after(
    server: ManagementApiServer,
    make_api: ApiFactory,
    waits: list[float],
    reset_header: str,
    expected_wait: float,
) -> None:
    server.fail_next(429, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset_header})
    make_api(clock=lambda: 1_700_000_000.0).patch_auth_config({"rate_limit_otp": 40})
    assert waits == ([expected_wait] if expected_wait else [])
    assert len(server.requests_with("PATCH")) == 2


def test_rate_limit_without_any_hint_still_waits(
    server: ManagementApiServer, make_api: ApiFactory, waits: list[float]
) -> None:
    server.fail_next(429, headers={})
    make_api().get_auth_config()
    assert waits == [RATE_LIMIT_FALLBACK_WAIT_SECONDS]


def test_a_huge_wait_is_capped(server: ManagementApiServer, make_api: ApiFactory, waits: list[float]) -> None:
    server.fail_next(429, headers={"Retry-After": "86400"})
    make_api().get_auth_config()
    assert waits == [DEFAULT_MAX_WAIT_SECONDS]


def test_rate_limited_forever_gives_up_after_the_bound(
    server: ManagementApiServer, make_api: ApiFactory, waits: list[float]
) -> None:
    server.fail_next(429, count=50)
    with pytest.raises(ManagementApiRateLimitError) as caught:
        make_api(max_attempts=3).patch_auth_config({"rate_limit_otp": 40})

    message = str(caught.value)
    assert "429" in message and "3 attempt" in message and REF in message
    assert "nothing was changed" in message
    assert len(server.requests_with("PATCH")) == 3
    assert waits == [1.0, 1.0]
    assert server.config(REF)["rate_limit_otp"] == 30


# -- 5xx and broken connections ---------------------------------------------------------


def test_server_error_on_get_is_retried_with_backoff(
    server: ManagementApiServer, make_api: ApiFactory, waits: list[float]
) -> None:
    server.fail_next(500, count=2)
    assert make_api().get_auth_config()["rate_limit_otp"] == 30
    assert len(server.requests_with("GET")) == 3
    assert waits == [1.0]  # urllib3 backoff: 0 s before the first retry, then 0.5 * 2


def test_server_error_on_get_gives_up_after_the_bound(server: ManagementApiServer, make_api: ApiFactory) -> None:
    server.fail_next(503, count=50, message="Failed to retrieve project's auth config")
    with pytest.raises(ManagementApiError) as caught:
        make_api(max_attempts=4).get_auth_config()
    assert caught.value.status == 503
    assert "4 attempt" in str(caught.value)
    assert "Failed to retrieve project's auth config" in str(caught.value)
    assert len(server.requests_with("GET")) == 4


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error_on_patch_is_never_repeated(
    server: ManagementApiServer, make_api: ApiFactory, waits: list[float], status: int
) -> None:
    server.fail_next(status, count=5, headers={"Retry-After": "1"})
    with pytest.raises(ManagementApiWriteOutcomeUnknownError) as caught:
        make_api().patch_auth_config({"rate_limit_otp": 40})

    message = str(caught.value)
    assert "may or may not have been applied" in message
    assert "refresh" in message and REF in message
    assert len(server.requests_with("PATCH")) == 1
    assert waits == []


def test_connection_dropped_after_patch_is_never_repeated(server: ManagementApiServer, make_api: ApiFactory) -> None:
    server.drop_next()
    with pytest.raises(ManagementApiWriteOutcomeUnknownError, match="may or may not"):
        make_api().patch_auth_config({"rate_limit_otp": 40})
    assert len(server.requests_with("PATCH")) == 1


def test_connection_dropped_on_get_is_retried(server: ManagementApiServer, make_api: ApiFactory) -> None:
    server.drop_next()
    assert make_api().get_auth_config()["rate_limit_otp"] == 30
    assert len(server.requests_with("GET")) == 2


def test_patch_that_times_out_is_not_repeated_and_may_have_applied(
    server: ManagementApiServer, make_api: ApiFactory
) -> None:
    server.stall_next(0.3)  # the only real wait in this file
    with pytest.raises(ManagementApiWriteOutcomeUnknownError, match="may or may not"):
        make_api(timeout=(1.0, 0.05)).patch_auth_config({"rate_limit_otp": 41})
    assert len(server.requests_with("PATCH")) == 1
    deadline = time.monotonic() + 2
    while server.config(REF)["rate_limit_otp"] != 41 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.config(REF)["rate_limit_otp"] == 41  # it did apply, after the client gave up


def test_unreachable_api_reports_nothing_changed(make_api: ApiFactory, waits: list[float]) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    api = make_api(base_url=f"http://127.0.0.1:{closed_port}", max_attempts=2)
    with pytest.raises(ManagementApiError) as caught:
        api.patch_auth_config({"rate_limit_otp": 40})
    assert not isinstance(caught.value, ManagementApiWriteOutcomeUnknownError)
    assert "nothing was changed" in str(caught.value)
    assert TOKEN not in full_text(caught.value)


def test_other_client_errors_carry_status_and_api_message(server: ManagementApiServer, make_api: ApiFactory) -> None:
    server.fail_next(404, message="Project not found")
    with pytest.raises(ManagementApiError) as caught:
        make_api().get_auth_config()
    assert caught.value.status == 404
    assert "404" in str(caught.value) and "Project not found" in str(caught.value)
    assert len(server.requests) == 1


def test_repr_never_shows_the_token(make_api: ApiFactory) -> None:
    api = make_api()
    assert TOKEN not in repr(api)
    assert REF in repr(api)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("soon", None),
        ("-3", None),
        ("0", 0.0),
        ("42", 42.0),
        ("1700000060", 60.0),
        ("1700000060000", 60.0),
    ],
)
def test_rate_limit_reset_parsing(header: str | None, expected: float | None) -> None:
    assert seconds_until_rate_limit_reset(header, now=1_700_000_000.0) == expected


# -- the settings model ------------------------------------------------------------------


def test_valid_settings_come_back_in_canonical_order() -> None:
    settings = {
        "security_captcha_secret": CAPTCHA_SECRET,
        "rate_limit_otp": 10,
        "external_anonymous_users_enabled": True,
        "security_captcha_provider": "hcaptcha",
    }
    validated = validate_auth_settings(settings, setting_prefix=PREFIX)
    assert validated == settings
    assert list(validated) == [name for name in MANAGED_AUTH_SETTINGS if name in settings]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"rate_limit_anonymous_users": 0},
            f"{PREFIX}.rate_limit_anonymous_users must be an integer between 1 and 2147483647, got 0",
        ),
        (
            {"rate_limit_email_sent": 2147483648},
            f"{PREFIX}.rate_limit_email_sent must be an integer between 1 and 2147483647, got 2147483648",
        ),
        (
            {"rate_limit_verify": "30"},
            f'{PREFIX}.rate_limit_verify must be an integer between 1 and 2147483647, got "30"',
        ),
        (
            {"rate_limit_sms_sent": True},
            f"{PREFIX}.rate_limit_sms_sent must be an integer between 1 and 2147483647, got true",
        ),
        (
            {"external_anonymous_users_enabled": "yes"},
            f'{PREFIX}.external_anonymous_users_enabled must be true or false, got "yes"',
        ),
        (
            {"security_captcha_provider": "recaptcha"},
            f'{PREFIX}.security_captcha_provider must be one of "turnstile", "hcaptcha", got "recaptcha"',
        ),
    ],
)
def test_invalid_settings_name_the_full_setting(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        validate_auth_settings(settings, setting_prefix=PREFIX)
    assert str(caught.value) == message


def test_null_is_refused_with_a_hint() -> None:
    with pytest.raises(ValueError, match=rf"{PREFIX}\.rate_limit_otp .*got null .*leave"):
        validate_auth_settings({"rate_limit_otp": None}, setting_prefix=PREFIX)


def test_unknown_setting_is_named_with_a_suggestion() -> None:
    with pytest.raises(ValueError) as caught:
        validate_auth_settings({"rate_limit_anonymous": 5}, setting_prefix=PREFIX)
    message = str(caught.value)
    assert message.startswith(f"{PREFIX}.rate_limit_anonymous is not an auth setting")
    assert "did you mean rate_limit_anonymous_users?" in message


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ValueError) as caught:
        validate_auth_settings({"rate_limit_otp": 0, "rate_limit_web3": -1, "bogus": 1}, setting_prefix=PREFIX)
    lines = str(caught.value).splitlines()
    assert len(lines) == 3
    assert all(line.startswith(PREFIX + ".") for line in lines)


@pytest.mark.parametrize("bad_secret", [123456789, ["0x4AAAAAAAcaptcha-secret-value"]])
def test_captcha_secret_never_appears_in_messages(bad_secret: object) -> None:
    with pytest.raises(ValueError) as caught:
        validate_auth_settings({"security_captcha_secret": bad_secret}, setting_prefix=PREFIX)
    message = str(caught.value)
    assert f"{PREFIX}.security_captcha_secret must be a string" in message
    assert "123456789" not in message and CAPTCHA_SECRET not in message


def test_redacted_settings_hide_the_captcha_secret() -> None:
    shown = redact_auth_settings({"security_captcha_secret": CAPTCHA_SECRET, "rate_limit_otp": 3})
    assert CAPTCHA_SECRET not in repr(shown)
    assert shown["rate_limit_otp"] == 3


# -- the committed spec extract ------------------------------------------------------------


@needs_spec
def test_committed_extract_is_in_sync_with_the_spec() -> None:
    spec = json.loads(DEFAULT_OPENAPI_PATH.read_text(encoding="utf-8"))
    assert BUNDLED_SCHEMA_PATH.read_text(encoding="utf-8") == render_auth_config_schema(spec), (
        "run scripts/extract-auth-schema"
    )
    assert load_auth_setting_schemas(BUNDLED_SCHEMA_PATH) == load_auth_setting_schemas(DEFAULT_OPENAPI_PATH)


@needs_spec
def test_extract_script_check_mode_passes() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "extract-auth-schema"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_validation_works_from_the_bundled_extract_alone() -> None:
    with pytest.raises(ValueError, match="between 1 and 2147483647"):
        validate_auth_settings({"rate_limit_otp": 0}, setting_prefix=PREFIX, openapi_path=BUNDLED_SCHEMA_PATH)
