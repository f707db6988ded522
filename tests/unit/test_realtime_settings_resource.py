"""The RealtimeSettings resource against the local Management API server (no engine): a prod stack with
private channels turns Realtime's public access off (`private_only`), drift is seen and repaired, and
destroy puts back what the project had; the program declares it on prod only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from components.realtime import PUBLIC_ACCESS_WARNING
from review.management_api_server import ManagementApiServer
from supabase_access.management_api.access import ManagementApiAccess
from supabase_access.provider.base import InputError
from supabase_access.provider.resources.realtime_settings import MANAGED_REALTIME_SETTINGS, RealtimeSettings
from supabase_access.provider.values import plain_map, state_properties
from tests.support.program import RecordingMocks
from tests.support.program import run_program as run_mocked_program

pytestmark = pytest.mark.unit

TOKEN = "sbp_unit_0123456789abcdef0123456789abcdef0123"
REF = "abcdefghijklmnopqrst"
REPO = Path(__file__).resolve().parents[2]
SPEC = REPO.parent / "shared" / "supabase-management-api" / "openapi.json"
PRIVATE = {"private_only": True}


@pytest.fixture
def server() -> Iterator[ManagementApiServer]:
    with ManagementApiServer(token=TOKEN) as running:
        yield running


@pytest.fixture
def logs() -> list[str]:
    return []


@pytest.fixture
def resource(server: ManagementApiServer) -> RealtimeSettings:
    access = ManagementApiAccess(sleep=lambda seconds: None)
    access.configure({"managementApiUrl": server.base_url, "accessToken": TOKEN, "host": "unused"})
    return RealtimeSettings(access)


def engine_view(values: dict[str, Any]) -> dict[str, Any]:
    return plain_map(state_properties(RealtimeSettings.spec, values))


def created(resource: RealtimeSettings, logs: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    inputs = engine_view(resource.check({}, {"projectRef": REF, "settings": PRIVATE}))
    resource_id, outputs = resource.create(inputs, logs.append)
    assert resource_id == REF
    return inputs, engine_view(outputs)


@pytest.mark.skipif(not SPEC.is_file(), reason="the shared Management API spec is not here")
def test_the_managed_settings_are_the_specs() -> None:
    schemas = json.loads(SPEC.read_text())["components"]["schemas"]
    for name in MANAGED_REALTIME_SETTINGS:
        assert schemas["UpdateRealtimeConfigBody"]["properties"][name]["type"] == "boolean"
        assert name in schemas["RealtimeConfigResponse"]["required"]


def test_create_turns_public_access_off_and_records_what_was_there(
    server: ManagementApiServer, resource: RealtimeSettings, logs: list[str]
) -> None:
    inputs, state = created(resource, logs)
    assert server.realtime_config(REF)["private_only"] is True
    (patch,) = server.requests_with("PATCH")
    assert patch.path == f"/v1/projects/{REF}/config/realtime" and patch.body == PRIVATE
    assert state["previous"] == {"private_only": False} and state["live"] == PRIVATE
    assert "sentSecretHashes" not in state and RealtimeSettings.spec.undeclared(state) == []
    # Converged: every preview reads, none writes.
    for _ in range(2):
        assert resource.diff(state, inputs).has_changes is False
    assert len(server.requests_with("PATCH")) == 1
    # The rest of the project's Realtime config is left alone.
    assert server.realtime_config(REF)["presence_enabled"] is True
    assert logs == []


def test_public_access_turned_on_in_the_dashboard_is_drift_up_repairs(
    server: ManagementApiServer, resource: RealtimeSettings, logs: list[str]
) -> None:
    inputs, state = created(resource, logs)
    server.set_realtime_value(REF, "private_only", False)
    assert resource.diff(state, inputs).changes == {"settings.private_only": "update"}
    found = resource.read(REF, state, inputs)
    assert found is not None
    refreshed = engine_view(found[0])
    assert refreshed["live"] == {"private_only": False} and refreshed["previous"] == {"private_only": False}
    repaired = engine_view(resource.update(refreshed, inputs, logs.append))
    assert server.realtime_config(REF)["private_only"] is True
    assert resource.diff(repaired, inputs).changes == {}


def test_destroy_puts_back_what_the_project_had(
    server: ManagementApiServer, resource: RealtimeSettings, logs: list[str]
) -> None:
    _, state = created(resource, logs)
    resource.delete(state, logs.append)
    assert server.realtime_config(REF)["private_only"] is False
    assert server.requests_with("PATCH")[-1].body == {"private_only": False}


def test_a_project_already_private_stays_private_after_destroy(
    server: ManagementApiServer, resource: RealtimeSettings, logs: list[str]
) -> None:
    server.set_realtime_value(REF, "private_only", True)
    _, state = created(resource, logs)
    assert server.requests_with("PATCH") == []  # nothing to change
    resource.delete(state, logs.append)
    assert server.realtime_config(REF)["private_only"] is True


def test_an_unset_setting_is_left_as_it_is_by_destroy_and_said(
    server: ManagementApiServer, resource: RealtimeSettings, logs: list[str]
) -> None:
    server.set_realtime_value(REF, "private_only", None)  # the spec's nullable answer
    _, state = created(resource, logs)
    resource.delete(state, logs.append)
    assert server.realtime_config(REF)["private_only"] is True
    assert any("private_only left as it is" in line for line in logs)


def test_import_records_the_current_value_as_previous(resource: RealtimeSettings) -> None:
    found = resource.read(REF, {}, {"projectRef": REF, "settings": PRIVATE})
    assert found is not None
    assert engine_view(found[0])["previous"] == {"private_only": False}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"private_only": "yes"}, "settings.private_only must be a bool"),
        ({"max_joins_per_second": 10}, "settings.max_joins_per_second is not a Realtime setting this stack manages"),
    ],
)
def test_bad_inputs_fail_check_naming_the_setting(resource: RealtimeSettings, settings: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        resource.check({}, {"projectRef": REF, "settings": settings})


def test_the_server_follows_the_spec_refusing_unknown_properties(server: ManagementApiServer) -> None:
    import requests

    url = f"{server.base_url}/v1/projects/{REF}/config/realtime"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert requests.patch(url, json={"private_only": "no"}, headers=headers, timeout=5).status_code == 400
    assert requests.patch(url, json={"allow_public": False}, headers=headers, timeout=5).status_code == 400
    answer = requests.patch(url, json={"private_only": True}, headers=headers, timeout=5)
    assert (answer.status_code, answer.content) == (204, b"")
    assert requests.get(url, headers={}, timeout=5).status_code == 401


# -- the program --------------------------------------------------------------------------------


def channel_config(environment: str, **extra: str) -> dict[str, str]:
    model = yaml.safe_load((REPO / "access-model.yaml").read_text())
    model["realtime"] = {"channels": {"user:{id}": {"owner": True}}}
    return {"supabase-access:environment": environment, "supabase-access:model": json.dumps(model), **extra}


def run_program(config: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> tuple[RecordingMocks, list[str]]:
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *args, **kwargs: warnings.append(message))
    return run_mocked_program(config, ()), warnings


def realtime_settings(mocks: RecordingMocks) -> list[Any]:
    return [r for r in mocks.resources if r.typ == "supabase-access:index:RealtimeSettings"]


def test_prod_with_private_channels_turns_public_access_off(monkeypatch: pytest.MonkeyPatch) -> None:
    config = channel_config("prod", **{"supabase-access:projectRef": REF, "supabase-access:accessToken": TOKEN})
    mocks, warnings = run_program(config, monkeypatch)
    (settings,) = realtime_settings(mocks)
    assert settings.inputs == {"projectRef": REF, "settings": PRIVATE}
    assert PUBLIC_ACCESS_WARNING not in warnings


def test_prod_without_the_project_says_public_access_stays(monkeypatch: pytest.MonkeyPatch) -> None:
    mocks, warnings = run_program(channel_config("prod"), monkeypatch)
    assert realtime_settings(mocks) == []
    assert PUBLIC_ACCESS_WARNING in warnings


def test_dev_leaves_public_access_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    config = channel_config("dev", **{"supabase-access:projectRef": REF, "supabase-access:accessToken": TOKEN})
    mocks, warnings = run_program(config, monkeypatch)
    assert realtime_settings(mocks) == []
    assert PUBLIC_ACCESS_WARNING not in warnings
