"""WriteQuota: a BEFORE INSERT trigger that refuses a user's (N+1)-th new row of one table within
a window, with SQLSTATE PT429 (PostgREST answers it with HTTP 429).

It counts the rows of the table that belong to `auth.uid()` along the model's ownership path and
were created in the window, so it needs an index on (the path's first column, the timestamp
column): an existing one is used, otherwise the resource builds one (CONCURRENTLY) and only then
drops it on delete.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import psycopg

from supabase_access import hardening
from supabase_access import sql as render
from supabase_access.catalog import CatalogError
from supabase_access.model import Hop
from supabase_access.profiles import OwnedByCurrentUser
from supabase_access.provider.base import (
    InputError,
    Log,
    ManagedResource,
    compare_fields,
    identifier,
    lock_tables,
    split_id,
)
from supabase_access.provider.database import Database
from supabase_access.provider.private_schema import (
    autocommit,
    check_private_schema,
    drop_private_schema_if_unused,
    dry_run,
    ensure_private_schema,
    lock_private_schema,
    positive_int,
    private_schema_name,
    require_columns,
    require_rls_not_filtering,
    table_columns,
)

MAX_WINDOW_SECONDS = 31 * 86400
WINDOW_LABEL = re.compile(r"^[a-z0-9 ]{1,40}$")


QUOTA_INPUTS = (
    "schema",
    "table",
    "path",
    "ownerColumn",
    "timestampColumn",
    "limit",
    "windowSeconds",
    "windowLabel",
    "privateSchema",
)


def _path(inputs: Mapping[str, Any], table: str) -> tuple[Hop, ...]:
    raw = inputs.get("path") or []
    if not isinstance(raw, list):
        raise InputError("path", "path: expected a list of {table, column, parent, key} hops")
    hops = []
    expected_table = table
    for position, hop in enumerate(raw):
        if not isinstance(hop, Mapping):
            raise InputError("path", f"path[{position}]: expected {{table, column, parent, key}}")
        parsed = Hop(
            table=identifier(hop, "table"),
            column=identifier(hop, "column"),
            parent=identifier(hop, "parent"),
            key=identifier(hop, "key", "id"),
        )
        if parsed.table != expected_table:
            raise InputError("path", f"path[{position}].table: expected {expected_table}, got {parsed.table}")
        hops.append(parsed)
        expected_table = parsed.parent
    return tuple(hops)


def _quota_target(inputs: Mapping[str, Any]) -> tuple[hardening.WriteQuotaTarget, str]:
    schema, table = identifier(inputs, "schema", "public"), identifier(inputs, "table")
    window_seconds = positive_int(inputs, "windowSeconds", MAX_WINDOW_SECONDS)
    assert window_seconds is not None
    label = inputs.get("windowLabel") or f"{window_seconds} seconds"
    if not isinstance(label, str) or not WINDOW_LABEL.match(label):
        raise InputError("windowLabel", f"windowLabel: expected a few lower-case words like 'hour', got {label!r}")
    limit = positive_int(inputs, "limit", 1_000_000)
    assert limit is not None
    target = hardening.WriteQuotaTarget(
        schema=schema,
        table=table,
        hops=_path(inputs, table),
        owner_column=identifier(inputs, "ownerColumn"),
        timestamp_column=identifier(inputs, "timestampColumn", hardening.DEFAULT_TIMESTAMP_COLUMN),
        limit=limit,
        window_seconds=window_seconds,
        window_label=label,
    )
    return target, private_schema_name(inputs)


def _quota_body(target: hardening.WriteQuotaTarget) -> str:
    root = target.hops[-1].parent if target.hops else target.table
    owned = OwnedByCurrentUser(target.hops, root, target.owner_column)
    return render.write_quota_function_body(target.schema, target.table, owned, target.timestamp_column)


def _quota_statements(target: hardening.WriteQuotaTarget, private_schema: str) -> list[Any]:
    """Function and trigger, after the private schema exists (the index is built separately)."""
    function = hardening.quota_function_name(target.schema, target.table)
    return [
        render.create_write_quota_function(private_schema, function, _quota_body(target)),
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
    ]


def _quota_args(raw: bytes | memoryview) -> tuple[str, str, str]:
    """(limit, window seconds, window label) from pg_trigger.tgargs: each argument followed by a NUL byte."""
    args = [arg.decode() for arg in bytes(raw).split(b"\x00")[:-1]]
    limit, window, label = [*args, "", "", ""][:3]
    return limit, window, label


def _find_index(conn: psycopg.Connection, target: hardening.WriteQuotaTarget) -> tuple[str, bool] | None:
    """(name, created by us) of a usable index leading with (key column, timestamp column)."""
    preferred = hardening.quota_index_name(target.table, target.key_column, target.timestamp_column)
    row = conn.execute(
        render.find_leading_index_query(),
        (target.schema, target.table, target.key_column, target.timestamp_column, preferred),
    ).fetchone()
    return None if row is None else (row[0], row[1] == render.QUOTA_INDEX_MARKER)


def _ensure_index(db: Database, target: hardening.WriteQuotaTarget, log: Log) -> tuple[str, bool]:
    name = hardening.quota_index_name(target.table, target.key_column, target.timestamp_column)
    with db.connection() as conn:
        found = _find_index(conn, target)
        leftover = conn.execute(render.index_state_query(), (target.schema, name)).fetchone()
    if found is not None:
        return found
    with autocommit(db) as conn:
        if leftover is not None:
            if leftover[1] != render.QUOTA_INDEX_MARKER:
                raise CatalogError(
                    f"index {target.schema}.{name} exists but does not lead with "
                    f"({target.key_column}, {target.timestamp_column}) and is not ours; rename or drop it"
                )
            # An invalid index left by an interrupted concurrent build of ours.
            conn.execute(render.drop_index(target.schema, name))
        try:
            conn.execute(
                render.create_quota_index(target.schema, target.table, name, target.key_column, target.timestamp_column)
            )
        except psycopg.Error:
            # A failed concurrent build leaves an invalid index behind.
            conn.execute(render.drop_index(target.schema, name))
            raise
        conn.execute(render.mark_quota_index(target.schema, name))
    log(
        f"created index {target.schema}.{name} on {target.table} ({target.key_column}, {target.timestamp_column}) "
        "for the write quota; destroy drops it"
    )
    return name, True


def _drop_index_if_ours(db: Database, schema: str, name: str) -> None:
    with db.connection() as conn:
        row = conn.execute(render.index_state_query(), (schema, name)).fetchone()
    if row is not None and row[1] == render.QUOTA_INDEX_MARKER:
        with autocommit(db) as conn:
            conn.execute(render.drop_index(schema, name))


class WriteQuota(ManagedResource):
    token = "supabase-access:index:WriteQuota"
    replace_on = ("schema", "table", "privateSchema")

    def check(self, db: Database, olds: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
        target, private_schema = _quota_target(inputs)
        with db.connection() as conn:
            key_property = "path" if target.hops else "ownerColumn"
            require_columns(
                conn,
                target.schema,
                target.table,
                {target.key_column: key_property, target.timestamp_column: "timestampColumn"},
                timestamp=target.timestamp_column,
            )
            for hop in target.hops:
                require_columns(conn, target.schema, hop.table, {hop.column: "path"}, table_property="path")
                require_columns(conn, target.schema, hop.parent, {hop.key: "path"}, table_property="path")
            root = target.hops[-1].parent if target.hops else target.table
            require_columns(conn, target.schema, root, {target.owner_column: "ownerColumn"}, table_property="path")
            tables = [target.table, *(hop.parent for hop in target.hops)]
            require_rls_not_filtering(conn, "table", target.schema, tables)
            check_private_schema(conn, private_schema)
        checked = {
            **inputs,
            "schema": target.schema,
            "path": [asdict(hop) for hop in target.hops],
            "timestampColumn": target.timestamp_column,
            "windowLabel": target.window_label,
            "privateSchema": private_schema,
        }
        # The dry run replaces the trigger on the live table (in a rolled-back transaction, but
        # under its lock): only for a quota PostgreSQL has not accepted at the last apply.
        if checked != olds:
            dry_run(
                db,
                "table",
                f"write quota trigger on {target.schema}.{target.table}",
                private_schema,
                _quota_statements(target, private_schema),
            )
        return checked

    def diff_live(self, db: Database, state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, str]:
        target, private_schema = _quota_target(inputs)
        function = hardening.quota_function_name(target.schema, target.table)
        with db.connection() as conn:
            trigger = conn.execute(
                render.read_trigger_query(), (target.schema, target.table, hardening.QUOTA_TRIGGER)
            ).fetchone()
            functions = conn.execute(render.read_function_query(), (private_schema, function)).fetchall()
            index = _find_index(conn, target)
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
        if [row[0] for row in functions] != [_quota_body(target)]:
            changes["function"] = "update"
        if index is None:
            changes["index"] = "update"
        return changes

    def _apply(self, db: Database, inputs: dict[str, Any], previous: Mapping[str, Any], log: Log) -> dict[str, Any]:
        target, private_schema = _quota_target(inputs)
        # The index first: from its first insert on, the trigger's query is an index range scan.
        index, index_created = _ensure_index(db, target, log)
        with db.connection() as conn, conn.transaction():
            ensure_private_schema(conn, private_schema)
            lock_tables(conn, target.schema, [target.table])
            for statement in _quota_statements(target, private_schema):
                conn.execute(statement)
        old_index = previous.get("index")
        if previous.get("indexCreated") and old_index and old_index != index:
            _drop_index_if_ours(db, target.schema, old_index)
        function = hardening.quota_function_name(target.schema, target.table)
        return {
            **{k: inputs.get(k) for k in QUOTA_INPUTS},
            "function": f"{private_schema}.{function}",
            "trigger": hardening.QUOTA_TRIGGER,
            "index": index,
            "indexCreated": index_created,
            "sqlstate": render.QUOTA_SQLSTATE,
        }

    def create(self, db: Database, inputs: dict[str, Any], log: Log) -> tuple[str, dict[str, Any]]:
        outputs = self._apply(db, inputs, {}, log)
        return f"{outputs['schema']}.{outputs['table']}", outputs

    def update(self, db: Database, state: dict[str, Any], inputs: dict[str, Any], log: Log) -> dict[str, Any]:
        return self._apply(db, inputs, state, log)

    def delete(self, db: Database, state: dict[str, Any], log: Log) -> None:
        schema, table = state["schema"], state["table"]
        private_schema = state.get("privateSchema") or hardening.PRIVATE_SCHEMA
        with db.connection() as conn, conn.transaction():
            lock_private_schema(conn, private_schema)
            if table_columns(conn, schema, table):
                lock_tables(conn, schema, [table])
                conn.execute(render.drop_trigger(schema, table, hardening.QUOTA_TRIGGER))
            conn.execute(render.drop_function(private_schema, hardening.quota_function_name(schema, table)))
        drop_private_schema_if_unused(db, private_schema)
        if state.get("indexCreated") and state.get("index"):
            _drop_index_if_ours(db, schema, state["index"])

    def read(
        self, db: Database, resource_id: str, state: dict[str, Any], inputs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        schema, table = split_id(resource_id, 2, "public.sessions")
        known = state or inputs
        if not known:
            raise InputError("id", "import a WriteQuota with its inputs set in the program (the id names no path)")
        with db.connection() as conn:
            trigger = conn.execute(render.read_trigger_query(), (schema, table, hardening.QUOTA_TRIGGER)).fetchone()
        if trigger is None:
            return None  # the limit is gone: the next `up` puts it back
        enabled, raw_args, function_schema, function = trigger
        limit, window, label = _quota_args(raw_args)
        current = {
            **{k: known.get(k) for k in QUOTA_INPUTS},
            "schema": schema,
            "table": table,
            "limit": int(limit) if limit.isdigit() else limit,
            "windowSeconds": int(window) if window.isdigit() else window,
            "windowLabel": label,
        }
        outputs = {
            **(state or {}),
            **current,
            "function": f"{function_schema}.{function}",
            "triggerEnabled": enabled != "D",
        }
        same = all(inputs.get(k) == current[k] for k in ("limit", "windowSeconds", "windowLabel"))
        return outputs, (inputs if inputs and same else current)
