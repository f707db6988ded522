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
    DatabaseResource,
    InputError,
    Log,
    Notice,
    identifier,
    split_id,
)
from supabase_access.provider.private_schema import (
    check_private_schema,
    drop_private_schema_if_unused,
    dry_run,
    ensure_private_schema,
    lock_private_schema,
    require_columns,
    table_columns,
)
from supabase_access.provider.specs import ImmutableColumnsInputs as Inputs
from supabase_access.provider.specs import ImmutableColumnsState as State
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database, execute_together, read_together
from supabase_access.sql.rows import fetch_one
from supabase_access.sql.transaction import lock_tables, write_transaction


def function_name(schema: str, table: str) -> str:
    return short_identifier(f"immutable_{schema}_{table}")


def _trigger_columns(trigger: catalog.Trigger) -> list[str]:
    """The columns a trigger of ours watches: its first argument, `a, b`."""
    return [c for c in bytes(trigger.args).split(b"\x00")[0].decode().split(", ") if c]


def _statements(inputs: Inputs) -> list[Any]:
    schema, table, private_schema = inputs.schema, inputs.table, inputs.private_schema
    function = function_name(schema, table)
    return [
        render.create_immutable_function(private_schema, function),
        render.revoke_function_from_api(private_schema, function),
        render.drop_trigger(schema, table, render.IMMUTABLE_TRIGGER),
        render.create_immutable_trigger(schema, table, private_schema, function, list(inputs.columns)),
        render.mark_trigger(schema, table, render.IMMUTABLE_TRIGGER, render.stack_marker(CURRENT_STACK.get())),
    ]


class ImmutableColumns(DatabaseResource[Inputs, State]):
    spec = specs.IMMUTABLE_COLUMNS

    def normalize(self, inputs: Inputs) -> Inputs:
        if not inputs.columns:
            raise InputError("columns", "columns: expected a non-empty list of column names")
        return Inputs(
            schema=identifier(inputs.schema, "schema"),
            table=identifier(inputs.table, "table"),
            columns=tuple(identifier(c, "columns") for c in inputs.columns),
            private_schema=identifier(inputs.private_schema, "privateSchema"),
        )

    def validate(self, db: Database, olds: Inputs | None, checked: Inputs) -> None:
        with db.connection() as conn:
            require_columns(conn, checked.schema, checked.table, dict.fromkeys(checked.columns, "columns"))
            check_private_schema(conn, checked.private_schema)
        dry_run(
            db,
            "columns",
            f"immutable-columns trigger on {checked.schema}.{checked.table}",
            checked.private_schema,
            _statements(checked),
        )

    def diff_live(self, db: Database, state: State, inputs: Inputs) -> dict[str, str]:
        function = function_name(inputs.schema, inputs.table)
        with db.connection() as conn:
            triggers, functions = read_together(
                conn,
                (catalog.TRIGGER, (inputs.schema, inputs.table, render.IMMUTABLE_TRIGGER)),
                (catalog.FUNCTION_SOURCES, (inputs.private_schema, function)),
            )
        changes: dict[str, str] = {}
        trigger: catalog.Trigger | None = next(iter(triggers), None)
        if (
            trigger is None
            or trigger.enabled == "D"
            or (trigger.function_schema, trigger.function) != (inputs.private_schema, function)
        ):
            changes["trigger"] = "update"
        elif _trigger_columns(trigger) != list(inputs.columns):
            changes["columns"] = "update"
        if [f.body for f in functions] != [render.immutable_function_body()]:
            changes["function"] = "update"
        return changes

    def _apply(self, db: Database, inputs: Inputs) -> State:
        with write_transaction(db) as conn:
            lock_tables(conn, inputs.schema, [inputs.table])
            ensure_private_schema(conn, inputs.private_schema)
            execute_together(conn, _statements(inputs))
        return State.taking(
            inputs,
            function=f"{inputs.private_schema}.{function_name(inputs.schema, inputs.table)}",
            trigger=render.IMMUTABLE_TRIGGER,
        )

    def on_create(self, db: Database, inputs: Inputs, log: Log) -> tuple[str, State]:
        return f"{inputs.schema}.{inputs.table}", self._apply(db, inputs)

    def on_update(self, db: Database, state: State, inputs: Inputs, log: Log) -> State:
        return self._apply(db, inputs)

    def on_delete(self, db: Database, state: State, log: Log) -> None:
        schema, table = state.schema, state.table
        private_schema = state.private_schema or specs.PRIVATE_SCHEMA
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

    def on_read(
        self, db: Database, resource_id: str, state: State | None, inputs: Inputs | None
    ) -> tuple[State, Inputs] | None:
        schema, table = split_id(resource_id, 2, "public.notes")
        with db.connection() as conn:
            trigger = fetch_one(conn, catalog.TRIGGER, (schema, table, render.IMMUTABLE_TRIGGER))
        if trigger is None:
            return None  # gone: the next `up` puts it back
        columns = tuple(_trigger_columns(trigger))
        current = Inputs(schema=schema, table=table, columns=columns, private_schema=trigger.function_schema)
        outputs = State.taking(
            state,
            current,
            function=f"{trigger.function_schema}.{trigger.function}",
            trigger=render.IMMUTABLE_TRIGGER,
        )
        return outputs, (inputs if inputs is not None and inputs.columns == columns else current)
