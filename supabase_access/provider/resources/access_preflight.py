"""AccessPreflight: checks everything the other resources need before any of them runs.

The other resources depend on it, so when a table is missing, an expression does not
parse or the database cannot be reached, `up` stops before anything is applied. Its checks, one
concern each, are in provider/preflight/; what it changes is the claim of the stack on each table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

from supabase_access.provider import claims, ledger, specs
from supabase_access.provider.base import (
    CURRENT_STACK,
    DatabaseResource,
    InputError,
    Log,
    identifier,
    not_importable,
    raise_collected,
)
from supabase_access.provider.preflight.exposed import exposed_problems
from supabase_access.provider.preflight.policies import group_helper_prelude, policy_problems, table_grants
from supabase_access.provider.preflight.tables import table_problems
from supabase_access.provider.preflight.widening import check_no_widening, same_widening_inputs
from supabase_access.provider.resources.table_policies import added_columns, rendered_policies
from supabase_access.provider.specs import AccessPreflightInputs as Inputs
from supabase_access.provider.specs import AccessPreflightState as State
from supabase_access.sql.database import Database
from supabase_access.sql.transaction import write_transaction


class AccessPreflight(DatabaseResource[Inputs, State]):
    spec = specs.ACCESS_PREFLIGHT
    # The preflight is the gate: it asks the database on every preview (one round trip), changed inputs or not.
    validate_every_check: ClassVar[bool] = True

    def normalize(self, inputs: Inputs) -> Inputs:
        schema = identifier(inputs.schema, "schema")
        policies = {}
        for table, raw in inputs.policies.items():
            if not isinstance(raw, Mapping):
                raise InputError(
                    "policies", f"{inputs.source}: policies.{table}: expected a map of policy name to policy"
                )
            # The rendered SQL, not the rules' data, is what the checked inputs keep and previews show.
            policies[table] = rendered_policies(schema, raw)
        return replace(
            inputs,
            schema=schema,
            tables=tuple(identifier(t, "tables") for t in inputs.tables),
            published=tuple(identifier(t, "published") for t in inputs.published) if inputs.published else None,
            roles=tuple(identifier(r, "roles") for r in inputs.roles),
            exposed_schemas=tuple(identifier(s, "exposedSchemas") for s in inputs.exposed_schemas),
            policies=policies,
        )

    def validate(self, db: Database, olds: Inputs | None, checked: Inputs) -> None:
        # Columns the stack adds before the policies that name them (owner copies).
        added = added_columns(checked.added_columns)
        prelude = group_helper_prelude(checked)
        previous = olds if olds is not None and olds.schema == checked.schema else None
        same_rules = olds is not None and _rules(olds) == _rules(checked)
        # Independent problems are collected, so one preview names them all (each with its fix).
        problems: list[InputError] = []
        with db.connection() as conn:
            skip = table_problems(conn, checked, problems)
            if checked.exposed_schemas or checked.published:
                exposed_problems(conn, checked, problems)
            policy_problems(
                conn,
                checked,
                skip=skip,
                previous=previous.policies if previous is not None else {},
                same_rules=same_rules,
                prelude=prelude,
                added=added,
                problems=problems,
            )
            # The probe plays the stack's policies on its tables: only once the rest holds.
            raise_collected(problems)
            if checked.refuse_open_writes and not (
                olds is not None and same_rules and same_widening_inputs(olds, checked)
            ):
                check_no_widening(conn, checked, prelude)

    def diff_live(self, db: Database, state: State, inputs: Inputs) -> dict[str, str]:
        # Its checks are done in check, which the engine runs on every preview and update. What
        # it changes: the claim on each table (a stack made before claims gets them at its next `up`).
        with db.connection() as conn:
            found = claims.read(conn, inputs.schema, inputs.tables)
        stack = CURRENT_STACK.get()
        grants = _claimed_grants(inputs)
        if any((found.get(t) or {}) != {"stack": stack, "grants": grants[t]} for t in inputs.tables):
            return {"tables": "update"}
        return {}

    def _claim(self, db: Database, inputs: Inputs, state: State | None) -> None:
        """Under the ledger's lock: each table claimed for this stack, or refused naming the stack that
        has it; a table the model no longer has is released (its resources are deleted after this).

        Not under the tables' locks: claims are serialised by the ledger's (the private schema's)
        lock, and a stack's first `up` must not wait for every table before changing any.
        """
        kept = state is not None and state.schema == inputs.schema
        dropped = [t for t in state.tables if t not in inputs.tables] if state is not None and kept else []
        with write_transaction(db) as conn:
            claims.claim(conn, inputs.schema, _claimed_grants(inputs))
            if dropped:
                claims.release(conn, inputs.schema, dropped)

    def on_create(self, db: Database, inputs: Inputs, log: Log) -> tuple[str, State]:
        self._claim(db, inputs, None)
        return f"preflight.{inputs.schema}", State.taking(inputs)

    def on_update(self, db: Database, state: State, inputs: Inputs, log: Log) -> State:
        self._claim(db, inputs, state)
        return State.taking(inputs)

    def on_delete(self, db: Database, state: State, log: Log) -> None:
        # Last of the stack's resources (they all depend on it): its claims go, then the ledger if empty.
        with write_transaction(db) as conn:
            claims.release(conn, state.schema, state.tables)
        ledger.tidy(db)

    def on_read(
        self, db: Database, resource_id: str, state: State | None, inputs: Inputs | None
    ) -> tuple[State, Inputs] | None:
        if state is None:
            raise not_importable("AccessPreflight", "it checks the model against the database and makes nothing")
        # Nothing to read back: what it checks is checked again at the next preview.
        known = inputs if inputs is not None else Inputs.taking(state)
        return state, known


def _rules(inputs: Inputs) -> tuple[Any, ...]:
    """What a table's policies were accepted under, besides the policies themselves."""
    return inputs.grants, inputs.table_grants, inputs.refuse_open_writes, inputs.added_columns


def _claimed_grants(inputs: Inputs) -> dict[str, dict[str, list[str]]]:
    """table -> role -> the privileges this stack's Grants give there (what a claim records)."""
    return {t: {r: list(p or ()) for r, p in sorted(table_grants(inputs, t).items())} for t in inputs.tables}
