"""ConstraintPresence: a foreign key kept present, the owner profile's side of ConstraintRemoval."""

from __future__ import annotations

from dataclasses import replace

from supabase_access.provider import specs
from supabase_access.provider.base import DatabaseResource, InputError, Log, Notice, identifier, require_table
from supabase_access.provider.foreign_keys import (
    add_foreign_key,
    count_violations,
    foreign_key_shape,
    from_ledger,
    not_valid_warning,
    read_live_foreign_key,
    read_record,
)
from supabase_access.provider.specs import ConstraintPresenceInputs as Inputs
from supabase_access.provider.specs import ConstraintPresenceState as State
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from supabase_access.sql.transaction import lock_tables, write_transaction


def _shape(inputs: Inputs) -> tuple[list[str], str, str, list[str]] | None:
    return foreign_key_shape(inputs.columns, inputs.referenced_table, inputs.referenced_columns)


class ConstraintPresence(DatabaseResource[Inputs, State]):
    """A foreign key kept present: what the owner profile does with the constraint the open one removes.

    Missing, it is re-created: with the definition a ConstraintRemoval recorded when it dropped it in
    this database, else the one the inputs describe; validated when every row satisfies it, else
    NOT VALID with a warning giving the count of violating rows and the VALIDATE statement (no row is
    deleted). Present but NOT VALID, it is validated once no row violates it. Deleting the resource
    leaves the constraint in place: it only protects data.
    """

    spec = specs.CONSTRAINT_PRESENCE

    def normalize(self, inputs: Inputs) -> Inputs:
        referenced = inputs.referenced_table or "auth.users"
        ref_schema, _, ref_table = referenced.rpartition(".")
        on_delete = (inputs.on_delete or "cascade").lower()
        if on_delete not in render.ON_DELETE_ACTIONS:
            raise InputError("onDelete", f"onDelete: {on_delete!r} is not one of {', '.join(render.ON_DELETE_ACTIONS)}")
        columns = tuple(identifier(c, "columns") for c in inputs.columns)
        ref_columns = tuple(identifier(c, "referencedColumns") for c in inputs.referenced_columns or ("id",))
        if not columns or len(columns) != len(ref_columns):
            raise InputError("columns", "columns: give as many columns as referencedColumns (at least one)")
        return Inputs(
            schema=identifier(inputs.schema, "schema"),
            table=identifier(inputs.table, "table"),
            constraint=identifier(inputs.constraint, "constraint"),
            columns=columns,
            referenced_table=f"{identifier(ref_schema or 'public', 'referencedTable')}."
            f"{identifier(ref_table, 'referencedTable')}",
            referenced_columns=ref_columns,
            on_delete=on_delete,
        )

    def validate(self, db: Database, olds: Inputs | None, checked: Inputs) -> None:
        ref_schema, ref_table = checked.referenced_table.split(".", 1)
        with db.connection() as conn:
            require_table(conn, checked.schema, checked.table)
            require_table(conn, ref_schema, ref_table, "referencedTable")

    def diff_live(self, db: Database, state: State, inputs: Inputs) -> dict[str, str]:
        schema, table, constraint = inputs.schema, inputs.table, inputs.constraint
        with db.connection() as conn:
            info = catalog.read_foreign_key(conn, schema, table, constraint)
            if info is None:
                return {"present": "update"}
            # NOT VALID and the violating rows fixed since: the next `up` validates it.
            if not info.validated and count_violations(conn, schema, table, _shape(inputs)) == "0":
                return {"validated": "update"}
        return {}

    def _ensure(self, db: Database, inputs: Inputs, log: Log) -> State:
        schema, table, constraint = inputs.schema, inputs.table, inputs.constraint
        shape = _shape(inputs)
        recreated, violations = False, None
        with write_transaction(db) as conn:
            lock_tables(conn, schema, [table])
            # A removal's record (ledger) holds the exact definition it dropped here.
            known = from_ledger(read_record(conn, schema, table, constraint))
            info = catalog.read_foreign_key(conn, schema, table, constraint)
            if info is None:
                ref_schema, ref_table = inputs.referenced_table.split(".", 1)
                definition = (
                    known.definition
                    if known is not None
                    else render.foreign_key_definition(
                        list(inputs.columns), ref_schema, ref_table, list(inputs.referenced_columns), inputs.on_delete
                    )
                )
                violations = add_foreign_key(conn, schema, table, constraint, definition, shape)
                recreated = True
            elif not info.validated:
                violations = count_violations(conn, schema, table, shape)
                if violations == "0":
                    conn.execute(render.validate_constraint(schema, table, constraint))
                    violations = None
            info = catalog.read_foreign_key(conn, schema, table, constraint)
        if violations is not None:
            log(not_valid_warning(schema, table, constraint, violations, "re-created" if recreated else "kept"))
        elif recreated:
            log(Notice(f"re-created {constraint} on {schema}.{table}: every row satisfies it (validated)"))
        return _with_live(State.taking(inputs), info)

    def on_create(self, db: Database, inputs: Inputs, log: Log) -> tuple[str, State]:
        return f"{inputs.schema}.{inputs.table}.{inputs.constraint}", self._ensure(db, inputs, log)

    def on_update(self, db: Database, state: State, inputs: Inputs, log: Log) -> State:
        return self._ensure(db, inputs, log)

    def on_delete(self, db: Database, state: State, log: Log) -> None:
        return None  # the constraint stays: dropping it is the open profile's ConstraintRemoval

    def on_read(
        self, db: Database, resource_id: str, state: State | None, inputs: Inputs | None
    ) -> tuple[State, Inputs] | None:
        live = read_live_foreign_key(db, resource_id)
        if live is None:
            return None
        schema, table, constraint, info, _ = live
        current_inputs = inputs or Inputs(
            schema=schema,
            table=table,
            constraint=constraint,
            columns=info.columns if info is not None else (),
            referenced_table=f"{info.ref_schema}.{info.ref_table}" if info is not None else "auth.users",
            referenced_columns=info.ref_columns if info is not None else ("id",),
        )
        return _with_live(state or State.taking(current_inputs), info), current_inputs


def _with_live(state: State, info: catalog.ForeignKeyInfo | None) -> State:
    return replace(
        state,
        present=info is not None,
        validated=bool(info and info.validated),
        definition=info.definition if info else None,
    )
