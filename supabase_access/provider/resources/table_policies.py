"""TablePolicies: the authoritative set of RLS policies of one table."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from psycopg.sql import Composed

from supabase_access.model.access_model import IDENTIFIER, ModelError
from supabase_access.model.policy import PolicySpec, policy_from_plain, policy_from_stored
from supabase_access.provider import claims, ledger, specs
from supabase_access.provider.base import (
    CURRENT_STACK,
    DatabaseResource,
    InputError,
    Log,
    Notice,
    identifier,
    require_table,
    split_id,
)
from supabase_access.provider.spec import Props
from supabase_access.provider.specs import PolicyMap
from supabase_access.provider.specs import TablePoliciesInputs as Inputs
from supabase_access.provider.specs import TablePoliciesState as State
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from supabase_access.sql.errors import PolicyRejectedError
from supabase_access.sql.transaction import lock_tables, write_transaction

# The ledger's record of the policies a table had before the stack first changed it.
LEDGER_KIND = "table-policies-baseline"


@dataclass(frozen=True, kw_only=True)
class PoliciesRecord(Props):
    """The ledger's record of a table's policies before the stack (as PostgreSQL stored them)."""

    policies: PolicyMap = field(default_factory=dict)


def declared_policies(raw: object) -> dict[str, PolicySpec]:
    """The declared policies (policy name -> the model's plain data), parsed."""
    if not isinstance(raw, Mapping):
        raise InputError("policies", "policies: expected a map of policy name to policy")
    try:
        return {name: policy_from_plain(name, spec, setting=f"policies.{name}") for name, spec in raw.items()}
    except ModelError as exc:
        raise InputError("policies", str(exc)) from exc


def added_columns(raw: Mapping[str, Any] | None) -> dict[str, dict[str, str]]:
    """`addedColumns`: table -> column -> type, the columns the stack adds before the policies
    (an owner copy), which the policies may name before they exist. A type `table.column` is that
    column's (a group's copy takes its key's type)."""
    raw = raw or {}
    problem = "addedColumns: expected a map of table to {column: type}"
    if not isinstance(raw, Mapping):
        raise InputError("addedColumns", problem)
    added: dict[str, dict[str, str]] = {}
    for table, columns in raw.items():
        if not isinstance(columns, Mapping):
            raise InputError("addedColumns", problem)
        for column, kind in columns.items():
            if not isinstance(kind, str) or not (
                kind in render.ADDABLE_COLUMN_TYPES
                or (kind.count(".") == 1 and all(IDENTIFIER.match(part) for part in kind.split(".")))
            ):
                raise InputError("addedColumns", f"addedColumns.{table}.{column}: unsupported type {kind!r}")
            added.setdefault(identifier(table, "addedColumns"), {})[identifier(column, "addedColumns")] = kind
    return added


def rendered_policies(schema: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Policy inputs with rule predicates (sent as data by the program) rendered to SQL."""
    try:
        return render.render_declared_policies(schema, raw)
    except ModelError as exc:
        raise InputError("policies", str(exc)) from exc


def declaration_digest(declared: Mapping[str, Any]) -> str:
    """Stands for a declaration in state: equal digests, equal declarations."""
    return hashlib.sha256(json.dumps(declared, sort_keys=True).encode()).hexdigest()


def plain_policies(policies: Mapping[str, PolicySpec]) -> dict[str, Any]:
    return {name: spec.to_plain() for name, spec in policies.items()}


def stored_policies(raw: Mapping[str, Any] | None) -> dict[str, PolicySpec]:
    return {name: policy_from_stored(name, spec) for name, spec in (raw or {}).items()}


class NormalizedPolicies:
    """PostgreSQL's form of each declared policy set, asked once per provider process (one engine
    operation): the preflight's check, then each table's check and diff, parse the same declarations."""

    def __init__(self) -> None:
        self._known: dict[str, dict[str, PolicySpec]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(schema: str, table: str, declared: Mapping[str, Any]) -> str:
        return json.dumps([schema, table, declared], sort_keys=True)

    def known(self, schema: str, table: str, declared: Mapping[str, Any]) -> dict[str, PolicySpec] | None:
        """The set PostgreSQL already parsed in this process, if any."""
        with self._lock:
            return self._known.get(self._key(schema, table, declared))

    def get(
        self,
        conn: Any,
        schema: str,
        table: str,
        declared: Mapping[str, Any],
        policies: Mapping[str, PolicySpec],
        prelude: Sequence[Composed] = (),
        added: catalog.AddedColumns | None = None,
    ) -> dict[str, PolicySpec]:
        """`policies` parsed from `declared` (their plain form, the cache key); errors are never kept.
        `prelude`: what the policies call that the apply creates first (see catalog.normalize_policies);
        `added`: columns the stack adds before it applies them (see `added_columns`)."""
        known = self.known(schema, table, declared)
        if known is None:
            known = catalog.normalize_policies(conn, schema, table, policies, prelude, added)
            with self._lock:
                self._known[self._key(schema, table, declared)] = known
        return known


NORMALIZED = NormalizedPolicies()


def check_policies_against_database(db: Database, inputs: Inputs) -> dict[str, PolicySpec]:
    """Table and roles exist, and PostgreSQL accepts every expression; returns the normalised set."""
    schema, table, declared = inputs.schema, inputs.table, inputs.policies
    policies = declared_policies(declared)
    known = NORMALIZED.known(schema, table, declared)
    if known is not None:
        return known  # parsed on this very table moments ago (the preflight's check), roles and all
    with db.connection() as conn:
        require_table(conn, schema, table)
        roles = {r for p in policies.values() for r in p.roles}
        missing = catalog.missing_roles(conn, roles)
        if missing:
            raise InputError("policies", f"policies: role(s) {', '.join(missing)} do not exist in the database")
        try:
            return NORMALIZED.get(conn, schema, table, declared, policies, added=added_columns(inputs.added_columns))
        except PolicyRejectedError as exc:
            raise InputError("policies", f"policies.{exc}") from exc


class TablePolicies(DatabaseResource[Inputs, State]):
    spec = specs.TABLE_POLICIES

    def normalize(self, inputs: Inputs) -> Inputs:
        schema = identifier(inputs.schema, "schema")
        checked = Inputs.taking(
            inputs,
            schema=schema,
            table=identifier(inputs.table, "table"),
            policies=rendered_policies(schema, inputs.policies),
        )
        declared_policies(checked.policies)  # names a malformed policy before the database is asked
        return checked

    def validate(self, db: Database, olds: Inputs | None, checked: Inputs) -> None:
        check_policies_against_database(db, checked)

    def _desired(self, db: Database, state: State, inputs: Inputs) -> dict[str, PolicySpec]:
        """The declared policies in PostgreSQL's form; reuses the last apply's when the declaration is the same."""
        declared = inputs.policies
        # States written before `declaredDigest` kept the declaration itself.
        same = state.declared_digest == declaration_digest(declared) or state.declared == declared
        applied = state.normalized if state.normalized is not None else state.policies
        if same and applied is not None:
            return stored_policies(applied)
        return check_policies_against_database(db, inputs)

    def diff_live(self, db: Database, state: State, inputs: Inputs) -> dict[str, str]:
        schema, table = inputs.schema, inputs.table
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
        self, db: Database, schema: str, table: str, policies: Mapping[str, PolicySpec], *, baseline: bool = False
    ) -> tuple[dict[str, PolicySpec], dict[str, PolicySpec], list[str]]:
        """Replace the table's policies in one transaction, marked as ours; returns (baseline, after, made by us).

        `baseline` (the first create): what was there before the stack, recorded in the ledger in
        this same transaction, or the record an earlier, interrupted run left (the first stands).
        Policies carrying our mark are never part of it. Otherwise: the policies just replaced.
        """
        marker = render.stack_marker(CURRENT_STACK.get())
        with write_transaction(db) as conn:
            lock_tables(conn, schema, [table])
            if baseline:
                ledger.prepare(conn)  # the private schema's lock after the table's
            before = catalog.read_policies(conn, schema, table)
            comments = catalog.policy_comments(conn, schema, table)
            made_by_us = sorted(n for n in before if (comments.get(n) or "").startswith(render.STACK_MARKER_PREFIX))
            if baseline:
                found = {n: p.to_plain() for n, p in before.items() if n not in made_by_us}
                key = f"{schema}.{table}"
                ledger.record(conn, LEDGER_KIND, key, PoliciesRecord(policies=found))
                recorded = ledger.read_as(conn, LEDGER_KIND, key, PoliciesRecord) or PoliciesRecord()
                before = stored_policies(recorded.policies)
            catalog.replace_policies(conn, schema, table, list(policies.values()), marker=marker)
            return before, catalog.read_policies(conn, schema, table), made_by_us

    def _restore(self, db: Database, schema: str, table: str, adopted: Mapping[str, PolicySpec], log: Log) -> None:
        """Put back the policies found before the stack (unmarked: they are the user's) and forget the record.

        A table another stack manages keeps its policies and that stack's record; only policies
        carrying this stack's mark go.
        """
        with write_transaction(db) as conn:
            lock_tables(conn, schema, [table])
            other = claims.other_stack(conn, schema, table)
            if other is not None:
                ours = render.stack_marker(CURRENT_STACK.get())
                comments = catalog.policy_comments(conn, schema, table)
                for name in sorted(n for n, c in comments.items() if c == ours):
                    conn.execute(render.drop_policy(schema, table, name))
                log(Notice(f"left the policies of {schema}.{table} as they are: stack {other!r} manages them"))
                return
            ledger.forget(conn, LEDGER_KIND, f"{schema}.{table}")
            catalog.replace_policies(conn, schema, table, list(adopted.values()))
        ledger.tidy(db)

    def on_create(self, db: Database, inputs: Inputs, log: Log) -> tuple[str, State]:
        schema, table = inputs.schema, inputs.table
        adopted, after, made_by_us = self._apply(db, schema, table, declared_policies(inputs.policies), baseline=True)
        if made_by_us:
            log(
                Notice(
                    f"replaced {len(made_by_us)} polic{'y' if len(made_by_us) == 1 else 'ies'} on {schema}.{table} "
                    f"that supabase-access had created ({', '.join(made_by_us)}); destroy does not put them back"
                )
            )
        if adopted:
            log(
                Notice(
                    f"took over {len(adopted)} existing polic{'y' if len(adopted) == 1 else 'ies'} on "
                    f"{schema}.{table} ({', '.join(adopted)}); destroy puts them back"
                )
            )
        # `adopted` is what was there before we managed the table: destroy restores it.
        return f"{schema}.{table}", self._applied(inputs, after, plain_policies(adopted))

    def _applied(self, inputs: Inputs, after: Mapping[str, PolicySpec], adopted: Mapping[str, Any]) -> State:
        # `policies` follows the database (refresh updates it). What the last apply was asked for is
        # kept as a digest, and how PostgreSQL stored it (`normalized`) is `policies` until a refresh
        # finds drift, which is when `read` records it. The engine rewrites the whole state file
        # after every step, so copies of every table's policies cost each step of a large stack.
        return State(
            schema=inputs.schema,
            table=inputs.table,
            policies=plain_policies(after),
            declared_digest=declaration_digest(inputs.policies),
            adopted=adopted,
        )

    def on_update(self, db: Database, state: State, inputs: Inputs, log: Log) -> State:
        _, after, _ = self._apply(db, inputs.schema, inputs.table, declared_policies(inputs.policies))
        return self._applied(inputs, after, state.adopted or {})

    def on_delete(self, db: Database, state: State, log: Log) -> None:
        schema, table = state.schema, state.table
        with db.connection() as conn:
            missing = bool(catalog.missing_tables(conn, schema, [table]))
        if missing:
            with write_transaction(db) as conn:
                ledger.forget(conn, LEDGER_KIND, f"{schema}.{table}")
            ledger.tidy(db)
            return
        self._restore(db, schema, table, stored_policies(state.adopted), log)

    def on_read(
        self, db: Database, resource_id: str, state: State | None, inputs: Inputs | None
    ) -> tuple[State, Inputs] | None:
        schema, table = split_id(resource_id, 2, "public.sessions")
        with db.connection() as conn:
            if catalog.missing_tables(conn, schema, [table]):
                return None
            live = plain_policies(catalog.read_policies(conn, schema, table))
        current = Inputs(schema=schema, table=table, policies=live)
        if state is None:
            return State.taking(current, adopted=live), current  # an import adopts what it finds
        # What the last apply left, before the drift, unless recorded already.
        normalized = state.normalized if state.normalized is not None or state.policies == live else state.policies
        outputs = replace(State.taking(state, current), adopted=state.adopted or {}, normalized=normalized)
        if inputs is not None and state.policies == live:
            return outputs, inputs
        return outputs, current
