"""ConstraintRemoval: a named constraint kept dropped, holding the definition to restore.

Deleting the resource restores the constraint. If existing rows would violate it, it is
restored NOT VALID (no row is ever deleted to make it fit) and a warning says how many
rows and how to validate.

The definition is written to the ledger in the transaction that drops the constraint, so a
run killed before the engine recorded the drop leaves it known: the next `up` takes the
removal over and `destroy` restores it.
"""

from __future__ import annotations

from typing import Any

import psycopg

from supabase_access import catalog
from supabase_access import sql as render
from supabase_access.provider import ledger
from supabase_access.provider.base import (
    Log,
    ManagedResource,
    identifier,
    lock_tables,
    require_table,
    split_id,
    write_transaction,
)
from supabase_access.provider.database import Database
from supabase_access.provider.private_schema import check_private_schema


class ConstraintRemoval(ManagedResource):
    token = "supabase-access:index:ConstraintRemoval"
    replace_on = ("schema", "table", "constraint")

    def normalize(self, inputs: dict[str, Any]) -> dict[str, Any]:
        schema, table = identifier(inputs, "schema", "public"), identifier(inputs, "table")
        return {**inputs, "schema": schema, "table": table, "constraint": identifier(inputs, "constraint")}

    def validate(self, db: Database, olds: dict[str, Any], checked: dict[str, Any]) -> None:
        with db.connection() as conn:
            require_table(conn, checked["schema"], checked["table"])
            check_private_schema(conn, ledger.LEDGER_SCHEMA)

    def diff_live(self, db: Database, state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, str]:
        with db.connection() as conn:
            present = (
                catalog.read_foreign_key(conn, inputs["schema"], inputs["table"], inputs["constraint"]) is not None
            )
        return {"present": "update"} if present else {}

    def _drop(self, db: Database, inputs: dict[str, Any]) -> catalog.ForeignKeyInfo | None:
        """Drop the constraint, its definition in the ledger first; (what was dropped, else what the ledger knows)."""
        schema, table, constraint = inputs["schema"], inputs["table"], inputs["constraint"]
        key = _ledger_key(schema, table, constraint)
        with write_transaction(db) as conn:
            known = ledger.read(conn, LEDGER_KIND, key)
            info = catalog.read_foreign_key(conn, schema, table, constraint)
            if info is None:
                return _from_ledger(known)
            lock_tables(conn, schema, [table])
            # The definition dropped now (not an older record), in the dropping transaction.
            ledger.record(conn, LEDGER_KIND, key, _to_ledger(info), replace=True)
            info = catalog.read_foreign_key(conn, schema, table, constraint)
            if info is not None:
                conn.execute(render.drop_constraint(schema, table, constraint))
            return info or _from_ledger(known)

    def _outputs(
        self, inputs: dict[str, Any], info: catalog.ForeignKeyInfo | None, state: dict[str, Any]
    ) -> dict[str, Any]:
        captured: dict[str, Any] = (
            {
                "definition": info.definition,
                "columns": list(info.columns),
                "referencedTable": f"{info.ref_schema}.{info.ref_table}" if info.ref_table else None,
                "referencedColumns": list(info.ref_columns),
            }
            if info is not None
            else {k: state.get(k) for k in ("definition", "columns", "referencedTable", "referencedColumns")}
        )
        if not captured.get("definition"):
            captured["definition"] = inputs.get("definition")
        return {
            "schema": inputs["schema"],
            "table": inputs["table"],
            "constraint": inputs["constraint"],
            "present": False,
            **captured,
        }

    def create(self, db: Database, inputs: dict[str, Any], log: Log) -> tuple[str, dict[str, Any]]:
        info = self._drop(db, inputs)
        if info is None and not inputs.get("definition"):
            log(
                f"{inputs['constraint']} was already gone from {inputs['schema']}.{inputs['table']} and not "
                "removed by supabase-access, so its definition is unknown: destroy cannot restore it"
            )
        return f"{inputs['schema']}.{inputs['table']}.{inputs['constraint']}", self._outputs(inputs, info, {})

    def update(self, db: Database, state: dict[str, Any], inputs: dict[str, Any], log: Log) -> dict[str, Any]:
        info = self._drop(db, inputs)
        return self._outputs(inputs, info, state)

    def delete(self, db: Database, state: dict[str, Any], log: Log) -> None:
        schema, table, constraint = state["schema"], state["table"], state["constraint"]
        key = _ledger_key(schema, table, constraint)
        with db.connection() as conn:
            known = _from_ledger(ledger.read(conn, LEDGER_KIND, key))
        definition = state.get("definition") or (known.definition if known else None)
        if not definition:
            log(f"cannot restore {constraint} on {schema}.{table}: its definition was never known")
            return
        if known is not None and not state.get("columns"):
            state = {**state, **self._outputs(state, known, {})}
        violations = self._restore(db, state, definition, key)
        ledger.tidy(db)
        if violations is None:
            return
        log(
            f"restored {constraint} on {schema}.{table} as NOT VALID: {violations} existing row(s) violate it "
            f"and were kept. New rows are checked. Once those rows are fixed, run: "
            f"{render.validate_constraint(schema, table, constraint).as_string()};"
        )

    def _restore(self, db: Database, state: dict[str, Any], definition: str, key: str) -> str | None:
        """Put the constraint back (NOT VALID if rows violate it: then how many) and forget its ledger row."""
        schema, table, constraint = state["schema"], state["table"], state["constraint"]
        with write_transaction(db) as conn:
            lock_tables(conn, schema, [table])
            ledger.forget(conn, LEDGER_KIND, key)
            if catalog.missing_tables(conn, schema, [table]) or catalog.read_foreign_key(
                conn, schema, table, constraint
            ):
                return None
            try:
                with conn.transaction():
                    conn.execute(render.add_constraint(schema, table, constraint, definition, validate=True))
                return None
            except (psycopg.errors.ForeignKeyViolation, psycopg.errors.CheckViolation):
                pass
            conn.execute(render.add_constraint(schema, table, constraint, definition, validate=False))
            return self._count_violations(conn, state)

    def _count_violations(self, conn: psycopg.Connection, state: dict[str, Any]) -> str:
        columns, ref_columns, referenced = (
            state.get("columns"),
            state.get("referencedColumns"),
            state.get("referencedTable"),
        )
        if not (columns and ref_columns and referenced):
            return "some"
        ref_schema, ref_table = referenced.split(".", 1)
        query = render.count_foreign_key_violations(
            state["schema"], state["table"], columns, ref_schema, ref_table, ref_columns
        )
        row = conn.execute(query).fetchone()
        return str(row[0]) if row else "some"

    def read(
        self, db: Database, resource_id: str, state: dict[str, Any], inputs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        schema, table, constraint = split_id(resource_id, 3, "public.sessions.sessions_user_id_fkey")
        with db.connection() as conn:
            if catalog.missing_tables(conn, schema, [table]):
                return None
            info = catalog.read_foreign_key(conn, schema, table, constraint)
        current_inputs = {"schema": schema, "table": table, "constraint": constraint}
        if not (state or {}).get("definition"):
            with db.connection() as conn:
                known = _from_ledger(ledger.read(conn, LEDGER_KIND, _ledger_key(schema, table, constraint)))
            state = self._outputs(current_inputs, known, state or {}) if known else state
        outputs = self._outputs(current_inputs, None, state or {})
        outputs["present"] = info is not None
        if info is not None and not outputs.get("definition"):
            outputs["definition"] = info.definition
        return outputs, inputs or current_inputs


LEDGER_KIND = "constraint-removal"


def _ledger_key(schema: str, table: str, constraint: str) -> str:
    return f"{schema}.{table}.{constraint}"


def _to_ledger(info: catalog.ForeignKeyInfo) -> dict[str, Any]:
    return {
        "definition": info.definition,
        "columns": list(info.columns),
        "refSchema": info.ref_schema,
        "refTable": info.ref_table,
        "refColumns": list(info.ref_columns),
    }


def _from_ledger(detail: dict[str, Any] | None) -> catalog.ForeignKeyInfo | None:
    if not detail or not detail.get("definition"):
        return None
    return catalog.ForeignKeyInfo(
        str(detail["definition"]),
        tuple(detail.get("columns") or ()),
        str(detail.get("refSchema") or ""),
        str(detail.get("refTable") or ""),
        tuple(detail.get("refColumns") or ()),
    )
