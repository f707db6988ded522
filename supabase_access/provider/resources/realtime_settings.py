"""RealtimeSettings: the Supabase Realtime settings a stack manages on one project (Management API).

Realtime Authorization's policies on realtime.messages bind private channels only: while the project
allows public access, a client may join any topic as a public channel and never meet them.
`private_only` (the dashboard's "Allow public access" off) refuses public channels. The spec's
`UpdateRealtimeConfigBody` holds it; its PATCH answers 204 without a body, so the settings are read
back after it.

The life of AuthSettings, without secrets: only the keys the stack sets are sent and watched, drift
shows on every preview (`diff` reads the project) and the next `up` repairs it, the value from before
the stack is recorded in the ledger before the first PATCH and put back by `destroy`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from supabase_access.management_api.access import ManagementApiAccess
from supabase_access.provider import specs
from supabase_access.provider.base import HttpResource, InputError, Log
from supabase_access.provider.resources.auth_settings import (
    check_api_settings,
    forget_baseline,
    project_ref_input,
    record_baseline,
    restorable,
    same_json_value,
)
from supabase_access.provider.specs import RealtimeSettingsInputs as Inputs
from supabase_access.provider.specs import RealtimeSettingsState as State
from supabase_access.sql.database import Database

if TYPE_CHECKING:  # the client (requests) is loaded when a step needs it, as AuthSettings does
    from supabase_access.management_api.client import ManagementApi

# The Realtime settings a stack may manage, with the JSON type the spec gives each.
MANAGED_REALTIME_SETTINGS: dict[str, type] = {"private_only": bool}
LEDGER_KIND = "realtime-settings-baseline"


def managed_realtime_settings(config: Mapping[str, object]) -> dict[str, object]:
    return {name: config[name] for name in MANAGED_REALTIME_SETTINGS if name in config}


def validate_realtime_settings(settings: object, *, setting_prefix: str) -> dict[str, object]:
    """The settings in canonical order; every problem at once in one ValueError, each naming its setting."""
    if not isinstance(settings, Mapping):
        raise ValueError(f"{setting_prefix} must be a mapping of Realtime setting names to values")
    problems = []
    for key, value in settings.items():
        kind = MANAGED_REALTIME_SETTINGS.get(key) if isinstance(key, str) else None
        if kind is None:
            problems.append(f"{setting_prefix}.{key} is not a Realtime setting this stack manages (private_only)")
        elif not isinstance(value, kind):
            problems.append(f"{setting_prefix}.{key} must be a {kind.__name__}, got {value!r}")
    if problems:
        raise ValueError("\n".join(problems))
    return {name: settings[name] for name in MANAGED_REALTIME_SETTINGS if name in settings}


class RealtimeSettings(HttpResource[Inputs, State]):
    spec = specs.REALTIME_SETTINGS

    def __init__(self, api: ManagementApiAccess, database: Callable[[], Database | None] = lambda: None) -> None:
        # `database` holds the ledger of values from before the stack; without one (the resource's API-only
        # tests) the values read at the first change are the baseline.
        self._api = api
        self._database = database

    @staticmethod
    def _live(api: ManagementApi) -> dict[str, object]:
        return managed_realtime_settings(api.get_realtime_config())

    def _write(
        self, api: ManagementApi, desired: Mapping[str, Any], before: Mapping[str, Any], log: Log
    ) -> dict[str, object]:
        """PATCH what differs from `before`; the managed settings after it."""
        writes = {key: value for key, value in desired.items() if not same_json_value(before.get(key), value)}
        if not writes:
            return dict(before)
        live = managed_realtime_settings(api.patch_realtime_config(writes))
        for key, value in writes.items():
            if not same_json_value(live.get(key), value):
                log(
                    f"Supabase Management API (project {api.project_ref}): Realtime's {key} reads {live.get(key)!r} "
                    f"right after setting it to {value!r}; the next preview will show it again"
                )
        return live

    @staticmethod
    def _state(inputs: Inputs, live: Mapping[str, Any], previous: Mapping[str, Any]) -> State:
        return State.taking(inputs, live={key: live.get(key) for key in inputs.settings}, previous=dict(previous))

    def normalize(self, inputs: Inputs) -> Inputs:
        project_ref = project_ref_input(inputs.project_ref, "projectRef")
        try:
            settings = validate_realtime_settings(inputs.settings, setting_prefix="settings")
        except ValueError as exc:
            raise InputError("settings", str(exc)) from exc
        return Inputs(project_ref=project_ref, settings=settings)

    def validate(self, olds: Inputs | None, checked: Inputs) -> None:
        check_api_settings(self._api, checked.project_ref)

    def diff_live(self, state: State, inputs: Inputs) -> dict[str, str]:
        with self._api.client(inputs.project_ref) as api:
            live = self._live(api)
        changes = {f"settings.{k}": "update" for k, v in inputs.settings.items() if not same_json_value(live.get(k), v)}
        # A newly managed key still needs its previous value recorded, even if it already matches.
        changes.update(
            {
                f"settings.{k}": "add"
                for k in inputs.settings
                if k not in state.settings and f"settings.{k}" not in changes
            }
        )
        changes.update({f"settings.{k}": "delete" for k in state.settings if k not in inputs.settings})
        return changes

    def on_create(self, inputs: Inputs, log: Log) -> tuple[str, State]:
        with self._api.client(inputs.project_ref) as api:
            before = self._live(api)
            previous = record_baseline(
                self._database(), inputs.project_ref, before, list(inputs.settings), kind=LEDGER_KIND
            )
            live = self._write(api, inputs.settings, before, log)
        return inputs.project_ref, self._state(inputs, live, previous)

    def on_update(self, state: State, inputs: Inputs, log: Log) -> State:
        project_ref, previous = inputs.project_ref, dict(state.previous or {})
        dropped = [key for key in state.settings if key not in inputs.settings]
        with self._api.client(project_ref) as api:
            before = self._live(api)
            new = [key for key in inputs.settings if key not in previous]
            previous.update(record_baseline(self._database(), project_ref, before, new, kind=LEDGER_KIND))
            restore = restorable({key: previous.pop(key, None) for key in dropped}, project_ref, log)
            live = self._write(api, {**restore, **inputs.settings}, before, log)
        forget_baseline(self._database(), project_ref, dropped, kind=LEDGER_KIND)
        return self._state(inputs, live, previous)

    def on_delete(self, state: State, log: Log) -> None:
        previous = state.previous or {}
        restore = restorable({key: previous.get(key) for key in state.settings}, state.project_ref, log)
        if restore:
            with self._api.client(state.project_ref) as api:
                self._write(api, restore, self._live(api), log)
        forget_baseline(self._database(), state.project_ref, list(state.settings), kind=LEDGER_KIND)

    def on_read(self, resource_id: str, state: State | None, inputs: Inputs | None) -> tuple[State, Inputs] | None:
        from supabase_access.management_api.client import ManagementApiError

        project_ref = project_ref_input(resource_id, "id")
        desired = (inputs and inputs.settings) or (state and state.settings) or {}
        try:
            with self._api.client(project_ref) as api:
                live = self._live(api)
        except ManagementApiError as exc:
            if exc.status == 404:
                return None  # the project is gone, and its settings with it
            raise
        current = Inputs(project_ref=project_ref, settings=desired)
        # Import: nothing changed by the stack yet, so what is there now is what to restore.
        previous = state.previous or {} if state is not None else {key: live.get(key) for key in desired}
        return self._state(current, live, previous), current
