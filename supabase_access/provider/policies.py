"""TablePolicies: the authoritative set of RLS policies of one table."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from supabase_access import catalog
from supabase_access.model import ModelError
from supabase_access.policy import PolicySpec, policy_from_plain, policy_from_stored
from supabase_access.provider.base import (
    InputError,
    Log,
    ManagedResource,
    Notice,
    identifier,
    lock_tables,
    require_table,
    split_id,
)
from supabase_access.provider.database import Database


def declared_policies(inputs: Mapping[str, Any]) -> dict[str, PolicySpec]:
    raw = inputs.get("policies") or {}
    if not isinstance(raw, Mapping):
        raise InputError("policies", "policies: expected a map of policy name to policy")
    try:
        return {name: policy_from_plain(name, spec, setting=f"policies.{name}") for name, spec in raw.items()}
    except ModelError as exc:
        raise InputError("policies", str(exc)) from exc


def plain_policies(policies: Mapping[str, PolicySpec]) -> dict[str, Any]:
    return {name: spec.to_plain() for name, spec in policies.items()}


def stored_policies(raw: Mapping[str, Any] | None) -> dict[str, PolicySpec]:
    return {name: policy_from_stored(name, spec) for name, spec in (raw or {}).items()}


def check_policies_against_database(
    db: Database, schema: str, table: str, policies: Mapping[str, PolicySpec]
) -> dict[str, PolicySpec]:
    """Table and roles exist, and PostgreSQL accepts every expression; returns the normalised set."""
    with db.connection() as conn:
        require_table(conn, schema, table)
        roles = {r for p in policies.values() for r in p.roles}
        missing = catalog.missing_roles(conn, roles)
        if missing:
            raise InputError("policies", f"policies: role(s) {', '.join(missing)} do not exist in the database")
        try:
            return catalog.normalize_policies(conn, schema, table, policies)
        except catalog.PolicyRejectedError as exc:
            raise InputError("policies", f"policies.{exc}") from exc


class TablePolicies(ManagedResource):
    token = "supabase-access:index:TablePolicies"
    replace_on = ("schema", "table")

    def __init__(self) -> None:
        # Check and diff of one preview parse the same declaration; PostgreSQL is asked once
        # per provider process (which lives for one engine operation).
        self._normalized: dict[str, dict[str, PolicySpec]] = {}

    def _normalize(self, db: Database, schema: str, table: str, inputs: Mapping[str, Any]) -> dict[str, PolicySpec]:
        key = json.dumps([schema, table, inputs.get("policies")], sort_keys=True)
        if key not in self._normalized:
            self._normalized[key] = check_policies_against_database(db, schema, table, declared_policies(inputs))
        return self._normalized[key]

    def check(self, db: Database, olds: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
        schema, table = identifier(inputs, "schema", "public"), identifier(inputs, "table")
        declared_policies(inputs)  # names a malformed policy before the database is asked
        unchanged = olds.get("policies") == inputs.get("policies") and olds.get("table") == table
        if unchanged and olds.get("schema", "public") == schema:
            # Already accepted by PostgreSQL at the last apply: only the table's presence is checked.
            with db.connection() as conn:
                require_table(conn, schema, table)
        else:
            self._normalize(db, schema, table, inputs)
        return {**inputs, "schema": schema}

    def _desired(self, db: Database, state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, PolicySpec]:
        """The declared policies in PostgreSQL's form; reuses the last apply's when the declaration is the same."""
        if state.get("declared") == inputs.get("policies") and state.get("normalized") is not None:
            return stored_policies(state["normalized"])
        return self._normalize(db, inputs["schema"], inputs["table"], inputs)

    def diff_live(self, db: Database, state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, str]:
        schema, table = inputs["schema"], inputs["table"]
        desired = self._desired(db, state, inputs)
        with db.connection() as conn:
            live = catalog.read_policies(conn, schema, table)
        changes: dict[str, str] = {}
        for name in sorted(set(desired) | set(live)):
            if name not in live:
                changes[f"policies.{name}"] = "add"
            elif name not in desired:
                changes[f"policies.{name}"] = "delete"
            else:
                old, new = live[name].to_plain(), desired[name].to_plain()
                changes.update({f"policies.{name}.{k}": "update" for k in new if old[k] != new[k]})
        return changes

    def _apply(
        self, db: Database, schema: str, table: str, policies: Mapping[str, PolicySpec]
    ) -> tuple[dict[str, PolicySpec], dict[str, PolicySpec]]:
        """Replace the table's policies in one transaction; returns (before, after)."""
        with db.connection() as conn, conn.transaction():
            lock_tables(conn, schema, [table])
            # Fail rather than queue the app's requests behind us for long.
            conn.execute("set local lock_timeout = '10s'")
            before = catalog.read_policies(conn, schema, table)
            catalog.replace_policies(conn, schema, table, list(policies.values()))
            return before, catalog.read_policies(conn, schema, table)

    def create(self, db: Database, inputs: dict[str, Any], log: Log) -> tuple[str, dict[str, Any]]:
        schema, table = inputs["schema"], inputs["table"]
        before, after = self._apply(db, schema, table, declared_policies(inputs))
        if before:
            log(
                Notice(
                    f"took over {len(before)} existing polic{'y' if len(before) == 1 else 'ies'} on "
                    f"{schema}.{table} ({', '.join(before)}); destroy puts them back"
                )
            )
        # `adopted` is what was there before we managed the table: destroy restores it.
        outputs = {**self._applied(inputs, after), "adopted": plain_policies(before)}
        return f"{schema}.{table}", outputs

    def _applied(self, inputs: dict[str, Any], after: Mapping[str, PolicySpec]) -> dict[str, Any]:
        # `policies` follows the database (refresh updates it); `declared` and `normalized` record
        # what the last apply was asked for and how PostgreSQL stored it.
        live = plain_policies(after)
        return {
            "schema": inputs["schema"],
            "table": inputs["table"],
            "policies": live,
            "declared": inputs.get("policies") or {},
            "normalized": live,
        }

    def update(self, db: Database, state: dict[str, Any], inputs: dict[str, Any], log: Log) -> dict[str, Any]:
        schema, table = inputs["schema"], inputs["table"]
        _, after = self._apply(db, schema, table, declared_policies(inputs))
        return {**self._applied(inputs, after), "adopted": state.get("adopted") or {}}

    def delete(self, db: Database, state: dict[str, Any], log: Log) -> None:
        schema, table = state["schema"], state["table"]
        with db.connection() as conn:
            if catalog.missing_tables(conn, schema, [table]):
                return
        self._apply(db, schema, table, stored_policies(state.get("adopted")))

    def read(
        self, db: Database, resource_id: str, state: dict[str, Any], inputs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        schema, table = split_id(resource_id, 2, "public.sessions")
        with db.connection() as conn:
            if catalog.missing_tables(conn, schema, [table]):
                return None
            live = plain_policies(catalog.read_policies(conn, schema, table))
        adopted = state.get("adopted") if state else live  # an import adopts what it finds
        recorded = {k: state[k] for k in ("declared", "normalized") if state and k in state}
        outputs = {"schema": schema, "table": table, "policies": live, "adopted": adopted or {}, **recorded}
        if inputs and state.get("policies") == live:
            return outputs, inputs
        return outputs, {"schema": schema, "table": table, "policies": live}
