"""WriteQuota: a BEFORE INSERT trigger that refuses a user's (N+1)-th new row of one table within
a window, with SQLSTATE PT429 (PostgREST answers it with HTTP 429).

The window is fixed: it starts at the user's first insert, and the next one at their first
insert after it ended. The trigger counts in a usage table of the quota's own in the private
schema, one row per user: one `update` per insert (an upsert for a user's first insert and the
first after a window ended), so its cost does not grow with the user's rows, and deleting rows
does not give quota back. The table keeps a row (a few dozen bytes) for every user who ever
inserted; nothing prunes it. It is UNLOGGED: a crash empties it, so every user's window
restarts (as any rate limiter's counters do); the app's rows are not touched.

Earlier versions counted the table's rows on an index they built (state `index`/`indexCreated`):
an update or delete from such a state drops that index, if it is still ours.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import psycopg

from supabase_access.model import hardening
from supabase_access.provider import specs
from supabase_access.provider.base import (
    CURRENT_STACK,
    DatabaseResource,
    InputError,
    Log,
    Notice,
    compare_fields,
    identifier,
    require_table,
    split_id,
)
from supabase_access.provider.private_schema import (
    check_private_schema,
    drop_private_schema_if_unused,
    dry_run,
    ensure_private_schema,
    lock_private_schema,
    positive_int,
    table_columns,
)
from supabase_access.provider.specs import WriteQuotaInputs as Inputs
from supabase_access.provider.specs import WriteQuotaState as State
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database, execute_together, read_together
from supabase_access.sql.errors import CatalogError
from supabase_access.sql.rows import fetch_one
from supabase_access.sql.transaction import autocommit, lock_tables, write_transaction

MAX_WINDOW_SECONDS = 31 * 86400
WINDOW_LABEL = re.compile(r"^[a-z0-9 ]{1,40}$")
USAGE_COLUMNS = dict(render.QUOTA_USAGE_COLUMNS)
UNLOGGED = "u"  # pg_class.relpersistence


def _quota_target(inputs: Inputs) -> tuple[hardening.WriteQuotaTarget, str]:
    schema, table = identifier(inputs.schema, "schema"), identifier(inputs.table, "table")
    window_seconds = positive_int(inputs.window_seconds, "windowSeconds", MAX_WINDOW_SECONDS)
    assert window_seconds is not None
    label = inputs.window_label or f"{window_seconds} seconds"
    if not WINDOW_LABEL.match(label):
        raise InputError("windowLabel", f"windowLabel: expected a few lower-case words like 'hour', got {label!r}")
    limit = positive_int(inputs.limit, "limit", hardening.MAX_QUOTA_LIMIT)
    assert limit is not None
    target = hardening.WriteQuotaTarget(
        schema=schema, table=table, limit=limit, window_seconds=window_seconds, window_label=label
    )
    private_schema = identifier(inputs.private_schema, "privateSchema")
    return target, private_schema


def _quota_body(target: hardening.WriteQuotaTarget, private_schema: str) -> str:
    usage = hardening.quota_usage_table_name(target.schema, target.table)
    return render.write_quota_function_body(target.schema, target.table, private_schema, usage)


def _quota_statements(target: hardening.WriteQuotaTarget, private_schema: str) -> list[Any]:
    """Usage table, function and trigger, after the private schema exists and under the table's lock."""
    function = hardening.quota_function_name(target.schema, target.table)
    usage = hardening.quota_usage_table_name(target.schema, target.table)
    return [
        # IF NOT EXISTS: an update keeps the users' counts.
        render.create_quota_usage_table(private_schema, usage),
        render.revoke_table_from_api(private_schema, usage),
        render.create_write_quota_function(private_schema, function, _quota_body(target, private_schema)),
        render.revoke_function_from_api(private_schema, function),
        render.drop_trigger(target.schema, target.table, hardening.QUOTA_TRIGGER),
        render.create_write_quota_trigger(
            target.schema,
            target.table,
            hardening.QUOTA_TRIGGER,
            private_schema,
            function,
            limit=target.limit,
            window_seconds=target.window_seconds,
            window_label=target.window_label,
        ),
        render.mark_trigger(
            target.schema, target.table, hardening.QUOTA_TRIGGER, render.stack_marker(CURRENT_STACK.get())
        ),
    ]


def _owning_stack(conn: psycopg.Connection, schema: str, table: str) -> str | None:
    """The other stack whose mark the table's quota trigger carries (None: none, ours, or unmarked,
    as an earlier version left it)."""
    trigger = fetch_one(conn, catalog.TRIGGER, (schema, table, hardening.QUOTA_TRIGGER))
    comment = (trigger.comment or "") if trigger else ""
    if not comment.startswith(render.STACK_MARKER_PREFIX) or comment == render.stack_marker(CURRENT_STACK.get()):
        return None
    return comment.removeprefix(render.STACK_MARKER_PREFIX)


def _refuse_other_stacks_quota(conn: psycopg.Connection, schema: str, table: str) -> None:
    other = _owning_stack(conn, schema, table)
    if other is not None:
        raise CatalogError(
            f"{schema}.{table} already has a write quota, managed by stack {other!r}: one stack per table "
            f"(remove it from that stack's supabase-access:writeQuotas, or this one's)"
        )


def _quota_args(raw: bytes | memoryview) -> tuple[str, str, str]:
    """(limit, window seconds, window label) from pg_trigger.tgargs: each argument followed by a NUL byte."""
    args = [arg.decode() for arg in bytes(raw).split(b"\x00")[:-1]]
    limit, window, label = [*args, "", "", ""][:3]
    return limit, window, label


def _old_index_query(state: State) -> tuple[Any, Any]:
    """Reads the index an earlier version may have built for this quota (no row when the state names none)."""
    name = state.index if state.index_created else None
    return catalog.INDEX_STATE, (state.schema, name or "")


def _old_index(state: State, rows: list[catalog.IndexState]) -> str | None:
    """That index's name, if the state says an earlier version built it and it is still there and ours."""
    found = next(iter(rows), None)
    if not state.index_created or not state.index or found is None:
        return None
    return state.index if found.comment == render.QUOTA_INDEX_MARKER else None


def _drop_old_index(db: Database, state: State, log: Log) -> None:
    if not state.index_created or not state.index:
        return
    with db.connection() as conn:
        name = _old_index(state, read_together(conn, _old_index_query(state))[0])
    if name is not None:
        # CONCURRENTLY, outside a transaction: the app's writes to the table go on meanwhile.
        with autocommit(db, state.schema, state.table) as conn:
            conn.execute(render.drop_index(state.schema, name))
        log(Notice(f"dropped index {state.schema}.{name}, which the write quota no longer needs"))


class WriteQuota(DatabaseResource[Inputs, State]):
    spec = specs.WRITE_QUOTA

    def normalize(self, inputs: Inputs) -> Inputs:
        target, private_schema = _quota_target(inputs)
        return replace(inputs, schema=target.schema, window_label=target.window_label, private_schema=private_schema)

    def validate(self, db: Database, olds: Inputs | None, checked: Inputs) -> None:
        # The dry run replaces the trigger on the live table, in a rolled-back transaction but under its lock.
        target, private_schema = _quota_target(checked)
        with db.connection() as conn:
            require_table(conn, target.schema, target.table)
            check_private_schema(conn, private_schema)
            _refuse_other_stacks_quota(conn, target.schema, target.table)
        dry_run(
            db,
            "table",
            f"write quota trigger on {target.schema}.{target.table}",
            private_schema,
            _quota_statements(target, private_schema),
        )

    def diff_live(self, db: Database, state: State, inputs: Inputs) -> dict[str, str]:
        target, private_schema = _quota_target(inputs)
        function = hardening.quota_function_name(target.schema, target.table)
        usage = hardening.quota_usage_table_name(target.schema, target.table)
        with db.connection() as conn:
            triggers, functions, usage_columns, usage_persistence, old_index_rows = read_together(
                conn,
                (catalog.TRIGGER, (target.schema, target.table, hardening.QUOTA_TRIGGER)),
                (catalog.FUNCTION_SOURCES, (private_schema, function)),
                (catalog.TABLE_COLUMNS, (private_schema, usage)),
                (catalog.PERSISTENCE, (private_schema, usage)),
                _old_index_query(state),
            )
        trigger: catalog.Trigger | None = next(iter(triggers), None)
        old_index = _old_index(state, old_index_rows)
        changes: dict[str, str] = {}
        if (
            trigger is None
            or trigger.enabled == "D"
            or (trigger.function_schema, trigger.function)
            != (
                private_schema,
                function,
            )
        ):
            changes["trigger"] = "update"
        else:
            limit, window, label = _quota_args(trigger.args)
            live = {"limit": limit, "windowSeconds": window, "windowLabel": label}
            desired = {
                "limit": str(target.limit),
                "windowSeconds": str(target.window_seconds),
                "windowLabel": target.window_label,
            }
            changes.update(compare_fields("", live, desired))
        if [f.body for f in functions] != [_quota_body(target, private_schema)]:
            changes["function"] = "update"
        if {c.name: c.type for c in usage_columns} != USAGE_COLUMNS or [p.persistence for p in usage_persistence] != [
            UNLOGGED
        ]:
            changes["usageTable"] = "update"
        if old_index is not None:
            changes["index"] = "delete"
        return changes

    def _apply(self, db: Database, inputs: Inputs, previous: State | None, log: Log) -> State:
        target, private_schema = _quota_target(inputs)
        usage = hardening.quota_usage_table_name(target.schema, target.table)
        with write_transaction(db) as conn:
            lock_tables(conn, target.schema, [target.table])
            _refuse_other_stacks_quota(conn, target.schema, target.table)
            ensure_private_schema(conn, private_schema)
            columns = table_columns(conn, private_schema, usage)
            persistence = fetch_one(conn, catalog.PERSISTENCE, (private_schema, usage)) if columns else None
            if columns and columns != USAGE_COLUMNS:
                # Changed by hand: its counts cannot be trusted, and the function needs these columns.
                conn.execute(render.drop_table(private_schema, usage))
                log(f"recreated {private_schema}.{usage}, whose columns had been changed; every user's count restarts")
            elif columns and (persistence is None or persistence.persistence != UNLOGGED):
                # Made logged by an earlier version: rewritten in place, the counts kept (a short lock).
                conn.execute(render.set_unlogged(private_schema, usage))
                log(Notice(f"made {private_schema}.{usage} UNLOGGED (counts kept); a crash now restarts the windows"))
            execute_together(conn, _quota_statements(target, private_schema))
        # After the new trigger is in: it no longer reads the table, so the old index can go.
        if previous is not None:
            _drop_old_index(db, previous, log)
        function = hardening.quota_function_name(target.schema, target.table)
        return State.taking(
            inputs,
            function=f"{private_schema}.{function}",
            trigger=hardening.QUOTA_TRIGGER,
            usage_table=f"{private_schema}.{usage}",
            sqlstate=hardening.QUOTA_SQLSTATE,
        )

    def on_create(self, db: Database, inputs: Inputs, log: Log) -> tuple[str, State]:
        state = self._apply(db, inputs, None, log)
        return f"{state.schema}.{state.table}", state

    def on_update(self, db: Database, state: State, inputs: Inputs, log: Log) -> State:
        return self._apply(db, inputs, state, log)

    def on_delete(self, db: Database, state: State, log: Log) -> None:
        schema, table = state.schema, state.table
        private_schema = state.private_schema or hardening.PRIVATE_SCHEMA
        with write_transaction(db) as conn:
            present = bool(table_columns(conn, schema, table))
            if present:
                lock_tables(conn, schema, [table])
            lock_private_schema(conn, private_schema)  # after any table's lock, as everywhere
            other = _owning_stack(conn, schema, table) if present else None
            if other is not None:
                log(Notice(f"left the write quota on {schema}.{table}: stack {other!r} manages it now"))
            else:
                if present:
                    conn.execute(render.drop_trigger(schema, table, hardening.QUOTA_TRIGGER))
                conn.execute(render.drop_function(private_schema, hardening.quota_function_name(schema, table)))
                conn.execute(render.drop_table(private_schema, hardening.quota_usage_table_name(schema, table)))
        drop_private_schema_if_unused(db, private_schema)
        _drop_old_index(db, state, log)

    def on_read(
        self, db: Database, resource_id: str, state: State | None, inputs: Inputs | None
    ) -> tuple[State, Inputs] | None:
        schema, table = split_id(resource_id, 2, "public.sessions")
        with db.connection() as conn:
            trigger = fetch_one(conn, catalog.TRIGGER, (schema, table, hardening.QUOTA_TRIGGER))
        if trigger is None:
            return None  # the limit is gone: the next `up` puts it back
        limit, window, label = _quota_args(trigger.args)
        known = state or inputs
        # The id and the trigger say everything, so `pulumi import` needs no inputs; a trigger
        # calling a function elsewhere is diff_live's drift, not a move of the private schema.
        # (Arguments that are not numbers, a hand edit, read as 0: drift, which `up` repairs.)
        current = Inputs(
            schema=schema,
            table=table,
            limit=int(limit) if limit.isdigit() else 0,
            window_seconds=int(window) if window.isdigit() else 0,
            window_label=label,
            private_schema=known.private_schema if known else trigger.function_schema,
        )
        outputs = State.taking(
            state,
            current,
            function=f"{trigger.function_schema}.{trigger.function}",
            trigger=hardening.QUOTA_TRIGGER,
            usage_table=f"{current.private_schema}.{hardening.quota_usage_table_name(schema, table)}",
            sqlstate=hardening.QUOTA_SQLSTATE,
            trigger_enabled=trigger.enabled != "D",
        )
        same = inputs is not None and (inputs.limit, inputs.window_seconds, inputs.window_label) == (
            current.limit,
            current.window_seconds,
            current.window_label,
        )
        return outputs, (inputs if inputs is not None and same else current)
