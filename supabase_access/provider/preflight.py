"""AccessPreflight: checks everything the other resources need before any of them runs.

The other resources depend on it, so when a table is missing, an expression does not
parse or the database cannot be reached, `up` stops before anything is applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from supabase_access import catalog
from supabase_access.model import ModelError
from supabase_access.policy import policy_from_plain
from supabase_access.provider.base import InputError, Log, ManagedResource, identifier
from supabase_access.provider.database import Database
from supabase_access.provider.policies import NORMALIZED, rendered_policies


class AccessPreflight(ManagedResource):
    token = "supabase-access:index:AccessPreflight"

    def check(self, db: Database, olds: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
        schema = identifier(inputs, "schema", "public")
        source = str(inputs.get("source") or "the access model")
        tables = [identifier({"tables": t}, "tables") for t in inputs.get("tables") or []]
        roles = [identifier({"roles": r}, "roles") for r in inputs.get("roles") or []]
        raw_policies = inputs.get("policies") or {}
        if not isinstance(raw_policies, dict):
            raise InputError("policies", f"{source}: policies: expected a map of table to policies")
        policies_by_table = {table: rendered_policies(schema, raw) for table, raw in raw_policies.items()}
        # Where each policy was declared, e.g. {"sessions.p": "supabase-access:extraPolicies.sessions.p"}.
        policy_settings = inputs.get("policySettings") or {}
        with db.connection() as conn:
            # On every preview (the database can be reached, the tables and roles are there): one round trip.
            missing, missing_roles = catalog.missing_tables_and_roles(conn, schema, tables, roles)
            if missing:
                raise InputError(
                    "tables",
                    f"{source}: table(s) {', '.join(f'{schema}.{t}' for t in missing)} do not exist in the database",
                )
            if missing_roles:
                raise InputError("roles", f"{source}: role(s) {', '.join(missing_roles)} do not exist in the database")
            old_policies = olds.get("policies") or {} if olds.get("schema") == schema else {}
            for table, raw in policies_by_table.items():
                if not isinstance(raw, Mapping):
                    raise InputError("policies", f"{source}: policies.{table}: expected a map of policy name to policy")
                if old_policies.get(table) == raw:
                    continue  # PostgreSQL accepted exactly these before

                def setting(name: str, table: str = table) -> str:
                    return str(policy_settings.get(f"{table}.{name}") or f"{source}: policy {table}.{name}")

                try:
                    specs = {name: policy_from_plain(name, spec, setting=setting(name)) for name, spec in raw.items()}
                    NORMALIZED.get(conn, schema, table, raw, specs)
                except ModelError as exc:
                    raise InputError("policies", str(exc)) from exc
                except catalog.PolicyRejectedError as exc:
                    raise InputError(
                        "policies", f"{setting(exc.policy)}: PostgreSQL rejected the policy: {exc.message}"
                    ) from exc
        # The rendered SQL, not the rules' data, is what state keeps and previews show.
        return {**inputs, "schema": schema, "policies": policies_by_table}

    def diff_live(self, db: Database, state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, str]:
        # Its work is done in check, which the engine runs on every preview and update; a
        # reported change would only add noise to the preview.
        return {}

    def create(self, db: Database, inputs: dict[str, Any], log: Log) -> tuple[str, dict[str, Any]]:
        return f"preflight.{inputs['schema']}", _outputs(inputs)

    def update(self, db: Database, state: dict[str, Any], inputs: dict[str, Any], log: Log) -> dict[str, Any]:
        return _outputs(inputs)

    def delete(self, db: Database, state: dict[str, Any], log: Log) -> None:
        return None

    def read(
        self, db: Database, resource_id: str, state: dict[str, Any], inputs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        return (state, inputs) if state else None


def _outputs(inputs: dict[str, Any]) -> dict[str, Any]:
    # Not the policies again: the engine rewrites the whole state file after every step, so a
    # second copy of every table's policies would cost each step of a large stack.
    return {"schema": inputs["schema"], "tables": inputs.get("tables") or []}
