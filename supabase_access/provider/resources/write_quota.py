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
from collections.abc import Mapping
from typing import Any

from supabase_access.model import hardening
from supabase_access.provider import specs
from supabase_access.provider.base import (
    CURRENT_STACK,
    InputError,
    Log,
    Notice,
    PlainDatabaseResource,
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
    private_schema_name,
    table_columns,
)
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database, execute_together, read_together
from supabase_access.sql.errors import CatalogError
from supabase_access.sql.transaction import autocommit, lock_tables, write_transaction

MAX_WINDOW_SECONDS = 31 * 86400
WINDOW_LABEL = re.compile(r"^[a-z0-9 ]{1,40}$")
USAGE_COLUMNS = dict(render.QUOTA_USAGE_COLUMNS)
UNLOGGED = "u"  # pg_class.relpersistence


QUOTA_INPUTS = ("schema", "table", "limit", "windowSeconds", "windowLabel", "privateSchema")


def _quota_target(inputs: Mapping[str, Any]) -> tuple[hardening.WriteQuotaTarget, str]:
    schema, table = identifier(inputs, "schema", "public"), identifier(inputs, "table")
    window_seconds = positive_int(inputs, "windowSeconds", MAX_WINDOW_SECONDS)
    assert window_seconds is not None
    label = inputs.get("windowLabel") or f"{window_seconds} seconds"
    if not isinstance(label, str) or not WINDOW_LABEL.match(label):
        raise InputError("windowLabel", f"windowLabel: expected a few lower-case words like 'hour', got {label!r}")
    limit = positive_int(inputs, "limit", hardening.MAX_QUOTA_LIMIT)
    assert limit is not None
    target = hardening.WriteQuotaTarget(
        schema=schema, table=table, limit=limit, window_seconds=window_seconds, window_label=label
    )
    return target, private_schema_name(inputs)


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


def _owning_stack(conn: Any, schema: str, table: str) -> str | None:
    """The other stack whose mark the table's quota trigger carries (None: none, ours, or unmarked,
    as an earlier version left it)."""
    row = conn.execute(catalog.read_trigger_query(), (schema, table, hardening.QUOTA_TRIGGER)).fetchone()
    comment = (row[4] or "") if row else ""
    if not comment.startswith(render.STACK_MARKER_PREFIX) or comment == render.stack_marker(CURRENT_STACK.get()):
        return None
    return comment.removeprefix(render.STACK_MARKER_PREFIX)


def _refuse_other_stacks_quota(conn: Any, schema: str, table: str) -> None:
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


def _old_index_query(state: Mapping[str, Any]) -> tuple[Any, Any]:
    """Reads the index an earlier version may have built for this quota (no row when the state names none)."""
    name = state.get("index") if state.get("indexCreated") else None
    return catalog.index_state_query(), (state.get("schema") or "public", name or "")


def _old_index(state: Mapping[str, Any], rows: list[tuple[Any, ...]]) -> str | None:
    """That index's name, if the state says an earlier version built it and it is still there and ours."""
    name = state.get("index")
    if not state.get("indexCreated") or not name or not rows:
        return None
    return name if rows[0][1] == render.QUOTA_INDEX_MARKER else None


def _drop_old_index(db: Database, state: Mapping[str, Any], log: Log) -> None:
    if not state.get("indexCreated") or not state.get("index"):
        return
    with db.connection() as conn:
        name = _old_index(state, conn.execute(*_old_index_query(state)).fetchall())
    if name is not None:
        # CONCURRENTLY, outside a transaction: the app's writes to the table go on meanwhile.
        with autocommit(db, state["schema"], state["table"]) as conn:
            conn.execute(render.drop_index(state["schema"], name))
        log(Notice(f"dropped index {state['schema']}.{name}, which the write quota no longer needs"))


class WriteQuota(PlainDatabaseResource):
    spec = specs.WRITE_QUOTA

    def normalize(self, inputs: dict[str, Any]) -> dict[str, Any]:
        target, private_schema = _quota_target(inputs)
        return {
            **{k: inputs[k] for k in QUOTA_INPUTS if k in inputs},
            "schema": target.schema,
            "windowLabel": target.window_label,
            "privateSchema": private_schema,
        }

    def validate(self, db: Database, olds: dict[str, Any], checked: dict[str, Any]) -> None:
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

    def diff_live(self, db: Database, state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, str]:
        target, private_schema = _quota_target(inputs)
        function = hardening.quota_function_name(target.schema, target.table)
        usage = hardening.quota_usage_table_name(target.schema, target.table)
        with db.connection() as conn:
            triggers, functions, usage_columns, usage_persistence, old_index_rows = read_together(
                conn,
                (catalog.read_trigger_query(), (target.schema, target.table, hardening.QUOTA_TRIGGER)),
                (catalog.read_function_query(), (private_schema, function)),
                (catalog.table_columns_query(), (private_schema, usage)),
                (catalog.relation_persistence_query(), (private_schema, usage)),
                _old_index_query(state),
            )
        trigger = triggers[0] if triggers else None
        old_index = _old_index(state, old_index_rows)
        changes: dict[str, str] = {}
        if trigger is None or trigger[0] == "D" or (trigger[2], trigger[3]) != (private_schema, function):
            changes["trigger"] = "update"
        else:
            limit, window, label = _quota_args(trigger[1])
            live = {"limit": limit, "windowSeconds": window, "windowLabel": label}
            desired = {
                "limit": str(target.limit),
                "windowSeconds": str(target.window_seconds),
                "windowLabel": target.window_label,
            }
            changes.update(compare_fields("", live, desired))
        if [row[0] for row in functions] != [_quota_body(target, private_schema)]:
            changes["function"] = "update"
        if dict(usage_columns) != USAGE_COLUMNS or usage_persistence != [(UNLOGGED,)]:
            changes["usageTable"] = "update"
        if old_index is not None:
            changes["index"] = "delete"
        return changes

    def _apply(self, db: Database, inputs: dict[str, Any], previous: Mapping[str, Any], log: Log) -> dict[str, Any]:
        target, private_schema = _quota_target(inputs)
        usage = hardening.quota_usage_table_name(target.schema, target.table)
        with write_transaction(db) as conn:
            lock_tables(conn, target.schema, [target.table])
            _refuse_other_stacks_quota(conn, target.schema, target.table)
            ensure_private_schema(conn, private_schema)
            columns = table_columns(conn, private_schema, usage)
            if columns and columns != USAGE_COLUMNS:
                # Changed by hand: its counts cannot be trusted, and the function needs these columns.
                conn.execute(render.drop_table(private_schema, usage))
                log(f"recreated {private_schema}.{usage}, whose columns had been changed; every user's count restarts")
            elif columns and conn.execute(catalog.relation_persistence_query(), (private_schema, usage)).fetchone() != (
                UNLOGGED,
            ):
                # Made logged by an earlier version: rewritten in place, the counts kept (a short lock).
                conn.execute(render.set_unlogged(private_schema, usage))
                log(Notice(f"made {private_schema}.{usage} UNLOGGED (counts kept); a crash now restarts the windows"))
            execute_together(conn, _quota_statements(target, private_schema))
        # After the new trigger is in: it no longer reads the table, so the old index can go.
        if previous:
            _drop_old_index(db, previous, log)
        function = hardening.quota_function_name(target.schema, target.table)
        return {
            **{k: inputs.get(k) for k in QUOTA_INPUTS},
            "function": f"{private_schema}.{function}",
            "trigger": hardening.QUOTA_TRIGGER,
            "usageTable": f"{private_schema}.{usage}",
            "sqlstate": hardening.QUOTA_SQLSTATE,
        }

    def create(self, db: Database, inputs: dict[str, Any], log: Log) -> tuple[str, dict[str, Any]]:
        outputs = self._apply(db, inputs, {}, log)
        return f"{outputs['schema']}.{outputs['table']}", outputs

    def update(self, db: Database, state: dict[str, Any], inputs: dict[str, Any], log: Log) -> dict[str, Any]:
        return self._apply(db, inputs, state, log)

    def delete(self, db: Database, state: dict[str, Any], log: Log) -> None:
        schema, table = state["schema"], state["table"]
        private_schema = state.get("privateSchema") or hardening.PRIVATE_SCHEMA
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

    def read(
        self, db: Database, resource_id: str, state: dict[str, Any], inputs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        schema, table = split_id(resource_id, 2, "public.sessions")
        with db.connection() as conn:
            trigger = conn.execute(catalog.read_trigger_query(), (schema, table, hardening.QUOTA_TRIGGER)).fetchone()
        if trigger is None:
            return None  # the limit is gone: the next `up` puts it back
        enabled, raw_args, function_schema, function, _comment = trigger
        limit, window, label = _quota_args(raw_args)
        known = state or inputs
        # The id and the trigger say everything, so `pulumi import` needs no inputs; a trigger
        # calling a function elsewhere is diff_live's drift, not a move of the private schema.
        current = {
            "schema": schema,
            "table": table,
            "limit": int(limit) if limit.isdigit() else limit,
            "windowSeconds": int(window) if window.isdigit() else window,
            "windowLabel": label,
            "privateSchema": known.get("privateSchema") or function_schema,
        }
        outputs = {
            **(state or {}),
            **current,
            "function": f"{function_schema}.{function}",
            "trigger": hardening.QUOTA_TRIGGER,
            "usageTable": f"{current['privateSchema']}.{hardening.quota_usage_table_name(schema, table)}",
            "sqlstate": hardening.QUOTA_SQLSTATE,
            "triggerEnabled": enabled != "D",
        }
        same = all(inputs.get(k) == current[k] for k in ("limit", "windowSeconds", "windowLabel"))
        return outputs, (inputs if inputs and same else current)
