"""AuthSettings: the Supabase Auth settings a stack manages on one project (Management API).

- Only the keys the stack sets are sent (the API's PATCH is partial) and watched for drift;
  every other auth setting of the project is left alone.
- The first change records what the project had for those keys (`previous`); `delete`, and
  an update that stops managing a key, PATCH those values back. There is no "reset to
  default" call, so a value the tool never saw cannot be restored.
- `diff` reads the project, so drift shows on every preview and the next `up` repairs it.
- The access token is provider configuration (`supabase-access:accessToken`) and never
  reaches state, messages or logs; the CAPTCHA secret is kept in state only as a secret.

The CAPTCHA secret comes back from the API hashed, so it cannot be compared with the desired
value. Two fingerprints are kept instead (both stored as secrets):
- `sentSecretHashes`: our own SHA-256 of the value we sent. A different desired secret has
  a different hash, so a change in the stack shows without a change on every preview.
- `appliedSecretHashes`: the hashed value the API answered right after our write. If a later
  read answers anything else, the secret was replaced behind the stack's back: drift.
We do not recompute the API's hash ourselves: the spec does not document it, the local test
server answers a plain SHA-256 while the Supabase CLI compares against an HMAC-SHA256, so
any guess could be wrong for the real API and show a change on every preview. Comparing the
API's answer with its own earlier answer works for any deterministic hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from supabase_access.management_api.access import ManagementApiAccess, ManagementApiConfigError
from supabase_access.model.auth_settings import (
    HASHED_ON_READ_AUTH_SETTINGS,
    PROJECT_REF_PATTERN,
    SECRET_AUTH_SETTINGS,
    managed_auth_settings,
    validate_auth_settings,
)
from supabase_access.provider import ledger, specs
from supabase_access.provider.base import HttpResource, InputError, Log
from supabase_access.provider.spec import Props, prop
from supabase_access.provider.specs import AuthSettingsInputs as Inputs
from supabase_access.provider.specs import AuthSettingsState as State
from supabase_access.provider.values import secret_property
from supabase_access.sql.database import Database
from supabase_access.sql.transaction import write_transaction

if TYPE_CHECKING:
    from supabase_access.management_api.client import ManagementApi

PROJECT_REF_SETTING = "supabase-access:projectRef"


def secret_fingerprint(value: object) -> str:
    """Our own hash of a secret we sent, to notice when the stack wants a different one."""
    return hashlib.sha256(str(value).encode()).hexdigest()


def same_json_value(live: object, desired: object) -> bool:
    # True == 1 in Python; JSON keeps booleans and numbers apart, so do we.
    return live == desired and isinstance(live, bool) == isinstance(desired, bool)


def _marked(settings: Mapping[str, Any], secret: frozenset[str]) -> dict[str, Any]:
    """Settings with the values of `secret` keys marked, ready for the engine (plain values lose the mark)."""
    return {key: secret_property(value) if key in secret else value for key, value in settings.items()}


def project_ref_input(value: str, property_name: str) -> str:
    if not value:
        raise InputError(
            property_name,
            f"{property_name} is not set: set {PROJECT_REF_SETTING} to the project's reference "
            "(the 20 lower-case letters in https://supabase.com/dashboard/project/<ref>)",
        )
    if not PROJECT_REF_PATTERN.match(value):
        raise InputError(
            property_name,
            f"{property_name}: {value!r} is not a Supabase project reference (20 lower-case letters); "
            f"check {PROJECT_REF_SETTING}",
        )
    return value


# The maps of inputs and state holding secrets, and which of their keys are.
def check_api_settings(api: ManagementApiAccess, project_ref: str) -> None:
    """The provider's Management API settings, as far as they tell without a request."""
    if api.configured:  # an unknown provider config (preview) is checked at apply time
        try:
            api.connection()
        except ManagementApiConfigError as exc:
            raise InputError("", f"{exc} (project {project_ref})") from exc


SECRETS_IN = {"settings": SECRET_AUTH_SETTINGS, "live": HASHED_ON_READ_AUTH_SETTINGS}


@dataclass(frozen=True)
class Written:
    """What a write leaves: the managed keys as the project has them after it, and the secrets' fingerprints."""

    live: Mapping[str, Any]
    sent: Mapping[str, str]
    applied: Mapping[str, Any]


class AuthSettings(HttpResource[Inputs, State]):
    spec = specs.AUTH_SETTINGS

    def __init__(self, api: ManagementApiAccess, database: Callable[[], Database | None] = lambda: None) -> None:
        # `database` holds the ledger of values from before the stack; without one (the resource's
        # API-only tests) the values read at the first change are the baseline.
        self._api = api
        self._database = database

    def wire(self, values: Props) -> dict[str, Any]:
        """Secrets inside the maps marked as such: the engine keeps only the marks the provider sends back."""
        return {
            name: _marked(value, SECRETS_IN[name]) if name in SECRETS_IN else value
            for name, value in values.to_wire().items()
        }

    # --- what needs writing --------------------------------------------------------------
    @staticmethod
    def _pending(state: State | None, desired: Mapping[str, Any], live: Mapping[str, Any]) -> Iterator[str]:
        """The desired keys the project does not have (as far as can be known for secrets)."""
        sent = (state and state.sent_secret_hashes) or {}
        applied = (state and state.applied_secret_hashes) or {}
        for key, value in desired.items():
            if key not in HASHED_ON_READ_AUTH_SETTINGS:
                if not same_json_value(live.get(key), value):
                    yield key
            elif sent.get(key) != secret_fingerprint(value):
                yield key  # never sent, or the stack now wants a different secret
            elif applied.get(key) is not None and live.get(key) != applied[key]:
                yield key  # the API's hash moved since our write: replaced behind our back

    @staticmethod
    def _state(inputs: Inputs, written: Written, previous: Mapping[str, Any]) -> State:
        desired = inputs.settings
        return State.taking(
            inputs,
            # What the project had for the managed keys when last read or written.
            live={key: written.live.get(key) for key in desired},
            previous=dict(previous),
            # Secret in state: the spec says so.
            sent_secret_hashes={k: v for k, v in written.sent.items() if k in desired},
            applied_secret_hashes={k: v for k, v in written.applied.items() if k in desired},
        )

    def _write(
        self,
        api: ManagementApi,
        state: State | None,
        desired: Mapping[str, Any],
        before: Mapping[str, Any],
        restore: Mapping[str, Any],
        log: Log,
    ) -> Written:
        """PATCH what differs (plus restored keys)."""
        writes = {key: desired[key] for key in self._pending(state, desired, before)}
        live = managed_auth_settings(api.patch_auth_config({**restore, **writes}))
        sent = dict((state and state.sent_secret_hashes) or {})
        applied = dict((state and state.applied_secret_hashes) or {})
        for key, value in writes.items():
            if key in HASHED_ON_READ_AUTH_SETTINGS:
                sent[key] = secret_fingerprint(value)
                applied[key] = live.get(key)
            elif not same_json_value(live.get(key), value):
                log(
                    f"Supabase Management API (project {api.project_ref}): {key} reads {live.get(key)!r} right "
                    f"after setting it to {value!r}; the next preview will show it again"
                )
        return Written(live, sent, applied)

    # --- HttpResource ------------------------------------------------------------------
    def normalize(self, inputs: Inputs) -> Inputs:
        project_ref = project_ref_input(inputs.project_ref, "projectRef")
        try:
            settings = validate_auth_settings(inputs.settings, setting_prefix="settings")
        except ValueError as exc:
            raise InputError("settings", str(exc)) from exc
        return Inputs(project_ref=project_ref, settings=settings)

    def validate(self, olds: Inputs | None, checked: Inputs) -> None:
        check_api_settings(self._api, checked.project_ref)

    def diff_live(self, state: State, inputs: Inputs) -> dict[str, str]:
        desired, managed = inputs.settings, state.settings
        with self._api.client(inputs.project_ref) as api:
            live = managed_auth_settings(api.get_auth_config())
        changes = {f"settings.{key}": "update" for key in self._pending(state, desired, live)}
        # A newly managed key still needs its previous value recorded, even if it already matches.
        changes.update({f"settings.{key}": "add" for key in desired if key not in managed and key not in changes})
        changes.update({f"settings.{key}": "delete" for key in managed if key not in desired})
        return changes

    def on_create(self, inputs: Inputs, log: Log) -> tuple[str, State]:
        project_ref, desired = inputs.project_ref, inputs.settings
        with self._api.client(project_ref) as api:
            before = managed_auth_settings(api.get_auth_config())
            # A hashed value cannot be sent back, so secrets have no previous value.
            previous = record_baseline(
                self._database(), project_ref, before, [k for k in desired if k not in HASHED_ON_READ_AUTH_SETTINGS]
            )
            written = self._write(api, None, desired, before, {}, log)
        return project_ref, self._state(inputs, written, previous)

    def on_update(self, state: State, inputs: Inputs, log: Log) -> State:
        project_ref, desired = inputs.project_ref, inputs.settings
        previous = dict(state.previous or {})
        dropped = [key for key in state.settings if key not in desired]
        with self._api.client(project_ref) as api:
            before = managed_auth_settings(api.get_auth_config())
            # Managed from now on: remember what it was.
            new = [key for key in desired if key not in previous and key not in HASHED_ON_READ_AUTH_SETTINGS]
            previous.update(record_baseline(self._database(), project_ref, before, new))
            restore = restorable({key: previous.pop(key, None) for key in dropped}, project_ref, log)
            written = self._write(api, state, desired, before, restore, log)
        forget_baseline(self._database(), project_ref, dropped)
        return self._state(inputs, written, previous)

    def on_delete(self, state: State, log: Log) -> None:
        project_ref, previous = state.project_ref, state.previous or {}
        restore = restorable({key: previous.get(key) for key in state.settings}, project_ref, log)
        if restore:
            with self._api.client(project_ref) as api:
                api.patch_auth_config(restore)
        forget_baseline(self._database(), project_ref, list(state.settings))

    def on_read(self, resource_id: str, state: State | None, inputs: Inputs | None) -> tuple[State, Inputs] | None:
        from supabase_access.management_api.client import ManagementApiError

        project_ref = project_ref_input(resource_id, "id")
        desired = (inputs and inputs.settings) or (state and state.settings) or {}
        try:
            with self._api.client(project_ref) as api:
                live = managed_auth_settings(api.get_auth_config())
        except ManagementApiError as exc:
            if exc.status == 404:
                return None  # the project is gone, and its settings with it
            raise
        current = Inputs(project_ref=project_ref, settings=desired)
        if state is not None:
            written = Written(live, state.sent_secret_hashes or {}, state.applied_secret_hashes or {})
            previous = state.previous or {}
        else:  # import: nothing changed by the stack yet, so what is there now is what to restore
            written = Written(live, {}, {})
            previous = {key: live.get(key) for key in desired if key not in HASHED_ON_READ_AUTH_SETTINGS}
        return self._state(current, written, previous), current


def restorable(previous: Mapping[str, Any], project_ref: str, log: Log) -> dict[str, Any]:
    """The values that can be PATCHed back; says which cannot and why (never the values)."""
    hashed = sorted(key for key in previous if key in HASHED_ON_READ_AUTH_SETTINGS)
    unknown = sorted(key for key, value in previous.items() if value is None and key not in hashed)
    if hashed:
        log(
            f"Supabase project {project_ref}: {', '.join(hashed)} left as it is: the API only shows it "
            "hashed, so the earlier value cannot be put back (change it in the dashboard if needed)"
        )
    if unknown:
        log(
            f"Supabase project {project_ref}: {', '.join(unknown)} left as it is: it had no value before "
            "the stack set it, and the API has no call to clear a setting"
        )
    return {key: value for key, value in previous.items() if key not in hashed and value is not None}


# The ledger's record of a setting's value before the stack first changed it.
LEDGER_KIND = "auth-settings-baseline"


@dataclass(frozen=True, kw_only=True)
class BaselineRecord(Props):
    value: Any = prop("The setting's value before the stack first changed it (none: it had none).")


def record_baseline(
    db: Database | None, project_ref: str, before: Mapping[str, Any], keys: list[str], kind: str = LEDGER_KIND
) -> dict[str, Any]:
    """What `keys` were before the stack first changed them, recorded in the ledger before any PATCH;
    a record an earlier, interrupted run left stands (its PATCH may be what `before` shows now).

    Without a database (the resource's API-only tests) the values read now are the baseline.
    """
    if db is None or not keys:
        return {key: before.get(key) for key in keys}
    with write_transaction(db) as conn:
        ledger.prepare(conn)
        for key in keys:
            ledger.record(conn, kind, f"{project_ref}.{key}", BaselineRecord(value=before.get(key)))
        found = {key: ledger.read_as(conn, kind, f"{project_ref}.{key}", BaselineRecord) for key in keys}
        return {key: None if record is None else record.value for key, record in found.items()}


def forget_baseline(db: Database | None, project_ref: str, keys: list[str], kind: str = LEDGER_KIND) -> None:
    """Once the keys are put back (or no longer managed), their records go; the ledger with its last one."""
    if db is None or not keys:
        return
    with write_transaction(db) as conn:
        for key in keys:
            ledger.forget(conn, kind, f"{project_ref}.{key}")
    ledger.tidy(db)
