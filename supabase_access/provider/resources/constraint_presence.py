"""ConstraintPresence: a foreign key kept present, the owner profile's side of ConstraintRemoval."""

from __future__ import annotations

from typing import Any

from supabase_access.provider import ledger, specs
from supabase_access.provider.base import DatabaseResource, InputError, Log, Notice, identifier, require_table
from supabase_access.provider.foreign_keys import (
    LEDGER_KIND,
    add_foreign_key,
    count_violations,
    foreign_key_shape,
    from_ledger,
    ledger_key,
    not_valid_warning,
    read_live_foreign_key,
)
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from supabase_access.sql.transaction import lock_tables, write_transaction


class ConstraintPresence(DatabaseResource):
    """A foreign key kept present: what the owner profile does with the constraint the open one removes.

    Missing, it is re-created: with the definition a ConstraintRemoval recorded when it dropped it in
    this database, else the one the inputs describe; validated when every row satisfies it, else
    NOT VALID with a warning giving the count of violating rows and the VALIDATE statement (no row is
    deleted). Present but NOT VALID, it is validated once no row violates it. Deleting the resource
    leaves the constraint in place: it only protects data.
    """

    spec = specs.CONSTRAINT_PRESENCE

    def normalize(self, inputs: dict[str, Any]) -> dict[str, Any]:
        referenced = str(inputs.get("referencedTable") or "auth.users")
        ref_schema, _, ref_table = referenced.rpartition(".")
        on_delete = str(inputs.get("onDelete") or "cascade").lower()
        if on_delete not in render.ON_DELETE_ACTIONS:
            raise InputError("onDelete", f"onDelete: {on_delete!r} is not one of {', '.join(render.ON_DELETE_ACTIONS)}")
        columns = [identifier({"columns": c}, "columns") for c in inputs.get("columns") or []]
        ref_columns = [
            identifier({"referencedColumns": c}, "referencedColumns") for c in inputs.get("referencedColumns") or ["id"]
        ]
        if not columns or len(columns) != len(ref_columns):
            raise InputError("columns", "columns: give as many columns as referencedColumns (at least one)")
        return {
            "schema": identifier(inputs, "schema", "public"),
            "table": identifier(inputs, "table"),
            "constraint": identifier(inputs, "constraint"),
            "columns": columns,
            "referencedTable": f"{identifier({'referencedTable': ref_schema or 'public'}, 'referencedTable')}."
            f"{identifier({'referencedTable': ref_table}, 'referencedTable')}",
            "referencedColumns": ref_columns,
            "onDelete": on_delete,
        }

    def validate(self, db: Database, olds: dict[str, Any], checked: dict[str, Any]) -> None:
        ref_schema, ref_table = checked["referencedTable"].split(".", 1)
        with db.connection() as conn:
            require_table(conn, checked["schema"], checked["table"])
            require_table(conn, ref_schema, ref_table, "referencedTable")

    def diff_live(self, db: Database, state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, str]:
        schema, table, constraint = inputs["schema"], inputs["table"], inputs["constraint"]
        with db.connection() as conn:
            info = catalog.read_foreign_key(conn, schema, table, constraint)
            if info is None:
                return {"present": "update"}
            # NOT VALID and the violating rows fixed since: the next `up` validates it.
            if not info.validated and count_violations(conn, schema, table, foreign_key_shape(inputs)) == "0":
                return {"validated": "update"}
        return {}

    def _ensure(self, db: Database, inputs: dict[str, Any], log: Log) -> dict[str, Any]:
        schema, table, constraint = inputs["schema"], inputs["table"], inputs["constraint"]
        shape = foreign_key_shape(inputs)
        recreated, violations = False, None
        with write_transaction(db) as conn:
            lock_tables(conn, schema, [table])
            # A removal's record (ledger) holds the exact definition it dropped here.
            known = from_ledger(ledger.read(conn, LEDGER_KIND, ledger_key(schema, table, constraint)))
            info = catalog.read_foreign_key(conn, schema, table, constraint)
            if info is None:
                ref_schema, ref_table = inputs["referencedTable"].split(".", 1)
                definition = (
                    known.definition
                    if known is not None
                    else render.foreign_key_definition(
                        inputs["columns"], ref_schema, ref_table, inputs["referencedColumns"], inputs["onDelete"]
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
        return {
            **inputs,
            "present": info is not None,
            "validated": bool(info and info.validated),
            "definition": info.definition if info else None,
        }

    def create(self, db: Database, inputs: dict[str, Any], log: Log) -> tuple[str, dict[str, Any]]:
        return f"{inputs['schema']}.{inputs['table']}.{inputs['constraint']}", self._ensure(db, inputs, log)

    def update(self, db: Database, state: dict[str, Any], inputs: dict[str, Any], log: Log) -> dict[str, Any]:
        return self._ensure(db, inputs, log)

    def delete(self, db: Database, state: dict[str, Any], log: Log) -> None:
        return None  # the constraint stays: dropping it is the open profile's ConstraintRemoval

    def read(
        self, db: Database, resource_id: str, state: dict[str, Any], inputs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        live = read_live_foreign_key(db, resource_id)
        if live is None:
            return None
        schema, table, constraint, info, _ = live
        current_inputs = inputs or {
            "schema": schema,
            "table": table,
            "constraint": constraint,
            **(
                {
                    "columns": list(info.columns),
                    "referencedTable": f"{info.ref_schema}.{info.ref_table}",
                    "referencedColumns": list(info.ref_columns),
                }
                if info is not None
                else {}
            ),
        }
        outputs = {
            **(state or current_inputs),
            "present": info is not None,
            "validated": bool(info and info.validated),
            "definition": info.definition if info else None,
        }
        return outputs, current_inputs
