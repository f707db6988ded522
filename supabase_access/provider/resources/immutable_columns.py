"""ImmutableColumns: the model's `immutable` columns of one table, refused any change by the API.

Column privileges already keep such a column out of every UPDATE the API roles run (and out of an
upsert's DO UPDATE). What privileges cannot see is a SECURITY DEFINER function an API role calls, which
runs as its owner: a BEFORE UPDATE OF trigger covers it. Its WHEN fires only when one of the columns
changes, so an update that leaves them alone never calls the function; the function then asks whose
request it is (see `render.immutable_function_body`). The function lives in the private schema,
marked with the stack like every trigger of ours; delete drops both (and the schema once unused).
"""

from __future__ import annotations

from typing import Any

from supabase_access.model.access_model import short_identifier
from supabase_access.provider import claims, specs
from supabase_access.provider.base import (
    CURRENT_STACK,
    InputError,
    Log,
    Notice,
    PlainDatabaseResource,
    identifier,
    split_id,
)
from supabase_access.provider.private_schema import (
    check_private_schema,
    drop_private_schema_if_unused,
    dry_run,
    ensure_private_schema,
    lock_private_schema,
    private_schema_name,
    require_columns,
    table_columns,
)
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database, execute_together, read_together
from supabase_access.sql.transaction import lock_tables, write_transaction

INPUTS = ("schema", "table", "columns", "privateSchema")


def function_name(schema: str, table: str) -> str:
    return short_identifier(f"immutable_{schema}_{table}")


def _columns(inputs: dict[str, Any]) -> list[str]:
    raw = inputs.get("columns")
    if not isinstance(raw, list) or not raw:
        raise InputError("columns", "columns: expected a non-empty list of column names")
    return [identifier({"columns": c}, "columns") for c in raw]


def _statements(schema: str, table: str, columns: list[str], private_schema: str) -> list[Any]:
    function = function_name(schema, table)
    return [
        render.create_immutable_function(private_schema, function),
        render.revoke_function_from_api(private_schema, function),
        render.drop_trigger(schema, table, render.IMMUTABLE_TRIGGER),
        render.create_immutable_trigger(schema, table, private_schema, function, columns),
        render.mark_trigger(schema, table, render.IMMUTABLE_TRIGGER, render.stack_marker(CURRENT_STACK.get())),
    ]


class ImmutableColumns(PlainDatabaseResource):
    spec = specs.IMMUTABLE_COLUMNS

    def normalize(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {
            "schema": identifier(inputs, "schema", "public"),
            "table": identifier(inputs, "table"),
            "columns": _columns(inputs),
            "privateSchema": private_schema_name(inputs),
        }

    def validate(self, db: Database, olds: dict[str, Any], checked: dict[str, Any]) -> None:
        schema, table, columns, private_schema = (checked[k] for k in INPUTS)
        with db.connection() as conn:
            require_columns(conn, schema, table, dict.fromkeys(columns, "columns"))
            check_private_schema(conn, private_schema)
        dry_run(
            db,
            "columns",
            f"immutable-columns trigger on {schema}.{table}",
            private_schema,
            _statements(schema, table, columns, private_schema),
        )

    def diff_live(self, db: Database, state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, str]:
        schema, table, columns, private_schema = (inputs[k] for k in INPUTS)
        function = function_name(schema, table)
        with db.connection() as conn:
            triggers, functions = read_together(
                conn,
                (catalog.read_trigger_query(), (schema, table, render.IMMUTABLE_TRIGGER)),
                (catalog.read_function_query(), (private_schema, function)),
            )
        changes: dict[str, str] = {}
        trigger = triggers[0] if triggers else None
        if trigger is None or trigger[0] == "D" or (trigger[2], trigger[3]) != (private_schema, function):
            changes["trigger"] = "update"
        elif bytes(trigger[1]).split(b"\x00")[0].decode() != ", ".join(columns):
            changes["columns"] = "update"
        if [row[0] for row in functions] != [render.immutable_function_body()]:
            changes["function"] = "update"
        return changes

    def _apply(self, db: Database, inputs: dict[str, Any]) -> dict[str, Any]:
        schema, table, columns, private_schema = (inputs[k] for k in INPUTS)
        with write_transaction(db) as conn:
            lock_tables(conn, schema, [table])
            ensure_private_schema(conn, private_schema)
            execute_together(conn, _statements(schema, table, columns, private_schema))
        return {
            **{k: inputs[k] for k in INPUTS},
            "function": f"{private_schema}.{function_name(schema, table)}",
            "trigger": render.IMMUTABLE_TRIGGER,
        }

    def create(self, db: Database, inputs: dict[str, Any], log: Log) -> tuple[str, dict[str, Any]]:
        outputs = self._apply(db, inputs)
        return f"{outputs['schema']}.{outputs['table']}", outputs

    def update(self, db: Database, state: dict[str, Any], inputs: dict[str, Any], log: Log) -> dict[str, Any]:
        return self._apply(db, inputs)

    def delete(self, db: Database, state: dict[str, Any], log: Log) -> None:
        schema, table = state["schema"], state["table"]
        private_schema = state.get("privateSchema") or specs.PRIVATE_SCHEMA
        with write_transaction(db) as conn:
            present = bool(table_columns(conn, schema, table))
            if present:
                lock_tables(conn, schema, [table])
            lock_private_schema(conn, private_schema)  # after any table's lock, as everywhere
            other = claims.other_stack(conn, schema, table) if present else None
            if other is not None:
                log(Notice(f"left the immutable columns of {schema}.{table}: stack {other!r} manages it now"))
                return
            if present:
                conn.execute(render.drop_trigger(schema, table, render.IMMUTABLE_TRIGGER))
            conn.execute(render.drop_function(private_schema, function_name(schema, table)))
        drop_private_schema_if_unused(db, private_schema)

    def read(
        self, db: Database, resource_id: str, state: dict[str, Any], inputs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        schema, table = split_id(resource_id, 2, "public.notes")
        with db.connection() as conn:
            trigger = conn.execute(catalog.read_trigger_query(), (schema, table, render.IMMUTABLE_TRIGGER)).fetchone()
        if trigger is None:
            return None  # gone: the next `up` puts it back
        _enabled, raw_args, function_schema, function, _comment = trigger
        columns = [c for c in bytes(raw_args).split(b"\x00")[0].decode().split(", ") if c]
        current = {"schema": schema, "table": table, "columns": columns, "privateSchema": function_schema}
        outputs = {
            **(state or {}),
            **current,
            "function": f"{function_schema}.{function}",
            "trigger": render.IMMUTABLE_TRIGGER,
        }
        return outputs, (inputs if inputs and inputs.get("columns") == columns else current)
