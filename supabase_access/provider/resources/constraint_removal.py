"""ConstraintRemoval: a named constraint kept dropped, holding the definition to restore (its
counterpart, a foreign key kept present, is constraint_presence.py).

Deleting the resource restores the constraint. If existing rows would violate it, it is
restored NOT VALID (no row is ever deleted to make it fit) and a warning says how many
rows and how to validate.

The definition is written to the ledger in the transaction that drops the constraint, so a
run killed before the engine recorded the drop leaves it known: the next `up` takes the
removal over and `destroy` restores it.
"""

from __future__ import annotations

from dataclasses import replace

from supabase_access.provider import claims, ledger, specs
from supabase_access.provider.base import DatabaseResource, Log, identifier, require_table
from supabase_access.provider.foreign_keys import (
    LEDGER_KIND,
    add_foreign_key,
    foreign_key_shape,
    from_ledger,
    ledger_key,
    not_valid_warning,
    read_live_foreign_key,
    read_record,
    to_ledger,
)
from supabase_access.provider.private_schema import check_private_schema
from supabase_access.provider.specs import ConstraintRemovalInputs as Inputs
from supabase_access.provider.specs import ConstraintRemovalState as State
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from supabase_access.sql.transaction import lock_tables, write_transaction


class ConstraintRemoval(DatabaseResource[Inputs, State]):
    spec = specs.CONSTRAINT_REMOVAL

    def normalize(self, inputs: Inputs) -> Inputs:
        return replace(
            inputs,
            schema=identifier(inputs.schema, "schema"),
            table=identifier(inputs.table, "table"),
            constraint=identifier(inputs.constraint, "constraint"),
        )

    def validate(self, db: Database, olds: Inputs | None, checked: Inputs) -> None:
        with db.connection() as conn:
            require_table(conn, checked.schema, checked.table)
            check_private_schema(conn, ledger.LEDGER_SCHEMA)

    def diff_live(self, db: Database, state: State, inputs: Inputs) -> dict[str, str]:
        with db.connection() as conn:
            present = catalog.read_foreign_key(conn, inputs.schema, inputs.table, inputs.constraint) is not None
        return {"present": "update"} if present else {}

    def _drop(self, db: Database, inputs: Inputs) -> catalog.ForeignKeyInfo | None:
        """Drop the constraint, its definition in the ledger first; (what was dropped, else what the ledger knows)."""
        schema, table, constraint = inputs.schema, inputs.table, inputs.constraint
        key = ledger_key(schema, table, constraint)
        with write_transaction(db) as conn:
            lock_tables(conn, schema, [table])
            known = read_record(conn, schema, table, constraint)
            info = catalog.read_foreign_key(conn, schema, table, constraint)
            if info is None:
                return from_ledger(known)
            # The definition dropped now (not an older record), in the dropping transaction.
            ledger.record(conn, LEDGER_KIND, key, to_ledger(info), replace=True)
            info = catalog.read_foreign_key(conn, schema, table, constraint)
            if info is not None:
                conn.execute(render.drop_constraint(schema, table, constraint))
            return info or from_ledger(known)

    def _outputs(self, inputs: Inputs, info: catalog.ForeignKeyInfo | None, state: State | None) -> State:
        """The state: the names from `inputs`, the key as `info` shows it (else as `state` held it), not present."""
        if info is not None:
            captured = State(
                schema=inputs.schema,
                table=inputs.table,
                constraint=inputs.constraint,
                definition=info.definition,
                columns=info.columns,
                referenced_table=f"{info.ref_schema}.{info.ref_table}" if info.ref_table else None,
                referenced_columns=info.ref_columns,
            )
        else:
            captured = State.taking(state, schema=inputs.schema, table=inputs.table, constraint=inputs.constraint)
        return replace(captured, present=False, definition=captured.definition or inputs.definition)

    def on_create(self, db: Database, inputs: Inputs, log: Log) -> tuple[str, State]:
        info = self._drop(db, inputs)
        if info is None and not inputs.definition:
            log(
                f"{inputs.constraint} was already gone from {inputs.schema}.{inputs.table} and not "
                "removed by supabase-access, so its definition is unknown: destroy cannot restore it"
            )
        return f"{inputs.schema}.{inputs.table}.{inputs.constraint}", self._outputs(inputs, info, None)

    def on_update(self, db: Database, state: State, inputs: Inputs, log: Log) -> State:
        info = self._drop(db, inputs)
        return self._outputs(inputs, info, state)

    def on_delete(self, db: Database, state: State, log: Log) -> None:
        schema, table, constraint = state.schema, state.table, state.constraint
        key = ledger_key(schema, table, constraint)
        with db.connection() as conn:
            known = from_ledger(read_record(conn, schema, table, constraint))
        definition = state.definition or (known.definition if known else None)
        if not definition:
            log(f"cannot restore {constraint} on {schema}.{table}: its definition was never known")
            return
        if known is not None and not state.columns:
            state = self._outputs(state, known, None)
        violations = self._restore(db, state, definition, key)
        ledger.tidy(db)
        if violations is None:
            return
        log(not_valid_warning(schema, table, constraint, violations, "restored"))

    def _restore(self, db: Database, state: State, definition: str, key: str) -> str | None:
        """Put the constraint back (NOT VALID if rows violate it: then how many) and forget its ledger row."""
        schema, table, constraint = state.schema, state.table, state.constraint
        with write_transaction(db) as conn:
            lock_tables(conn, schema, [table])
            if claims.other_stack(conn, schema, table) is not None:
                return None  # another stack manages the table now: its constraints are that stack's
            ledger.forget(conn, LEDGER_KIND, key)
            if catalog.missing_tables(conn, schema, [table]) or catalog.read_foreign_key(
                conn, schema, table, constraint
            ):
                return None
            shape = foreign_key_shape(state.columns, state.referenced_table, state.referenced_columns)
            return add_foreign_key(conn, schema, table, constraint, definition, shape)

    def on_read(
        self, db: Database, resource_id: str, state: State | None, inputs: Inputs | None
    ) -> tuple[State, Inputs] | None:
        live = read_live_foreign_key(db, resource_id, with_ledger=not (state and state.definition))
        if live is None:
            return None
        schema, table, constraint, info, recorded = live
        current_inputs = Inputs(schema=schema, table=table, constraint=constraint)
        if not (state and state.definition):
            known = from_ledger(recorded)
            state = self._outputs(current_inputs, known, state) if known else state
        outputs = self._outputs(current_inputs, None, state)
        outputs = replace(
            outputs,
            present=info is not None,
            definition=outputs.definition or (info.definition if info is not None else None),
        )
        return outputs, inputs or current_inputs
