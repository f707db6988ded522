"""ConstraintRemoval: a named constraint kept dropped, holding the definition to restore;
ConstraintPresence: a foreign key kept present (re-created, NOT VALID if rows violate it).

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

from supabase_access.provider import ledger
from supabase_access.provider.base import InputError, Log, ManagedResource, Notice, identifier, require_table, split_id
from supabase_access.provider.private_schema import check_private_schema
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from supabase_access.sql.transaction import lock_tables, write_transaction


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
        log(not_valid_warning(schema, table, constraint, violations, "restored"))

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
            return add_foreign_key(conn, schema, table, constraint, definition, _shape(state))

    def read(
        self, db: Database, resource_id: str, state: dict[str, Any], inputs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        live = read_live_foreign_key(db, resource_id, with_ledger=not (state or {}).get("definition"))
        if live is None:
            return None
        schema, table, constraint, info, recorded = live
        current_inputs = {"schema": schema, "table": table, "constraint": constraint}
        if not (state or {}).get("definition"):
            known = _from_ledger(recorded)
            state = self._outputs(current_inputs, known, state or {}) if known else state
        outputs = self._outputs(current_inputs, None, state or {})
        outputs["present"] = info is not None
        if info is not None and not outputs.get("definition"):
            outputs["definition"] = info.definition
        return outputs, inputs or current_inputs


LEDGER_KIND = "constraint-removal"


def read_live_foreign_key(
    db: Database, resource_id: str, *, with_ledger: bool = False
) -> tuple[str, str, str, catalog.ForeignKeyInfo | None, dict[str, Any] | None] | None:
    """(schema, table, constraint, the key as it is, its ledger record if asked) for a resource id, one
    connection; None when the table is gone."""
    schema, table, constraint = split_id(resource_id, 3, "public.sessions.sessions_user_id_fkey")
    with db.connection() as conn:
        if catalog.missing_tables(conn, schema, [table]):
            return None
        info = catalog.read_foreign_key(conn, schema, table, constraint)
        recorded = ledger.read(conn, LEDGER_KIND, _ledger_key(schema, table, constraint)) if with_ledger else None
    return schema, table, constraint, info, recorded


def add_foreign_key(
    conn: psycopg.Connection,
    schema: str,
    table: str,
    constraint: str,
    definition: str,
    shape: tuple[list[str], str, str, list[str]] | None,
) -> str | None:
    """Inside the caller's write_transaction, the table locked: add the constraint, validated when every
    row satisfies it; else NOT VALID (no row is deleted to make it fit) and how many rows violate it."""
    try:
        with conn.transaction():
            conn.execute(render.add_constraint(schema, table, constraint, definition, validate=True))
        return None
    except (psycopg.errors.ForeignKeyViolation, psycopg.errors.CheckViolation):
        pass
    conn.execute(render.add_constraint(schema, table, constraint, definition, validate=False))
    return count_violations(conn, schema, table, shape)


def count_violations(
    conn: psycopg.Connection, schema: str, table: str, shape: tuple[list[str], str, str, list[str]] | None
) -> str:
    """How many rows of the table have a key the referenced table lacks ("some" if the shape is unknown)."""
    if shape is None:
        return "some"
    columns, ref_schema, ref_table, ref_columns = shape
    row = conn.execute(
        render.count_foreign_key_violations(schema, table, columns, ref_schema, ref_table, ref_columns)
    ).fetchone()
    return str(row[0]) if row else "some"


def not_valid_warning(schema: str, table: str, constraint: str, violations: str, verb: str) -> str:
    return (
        f"{verb} {constraint} on {schema}.{table} as NOT VALID: {violations} existing row(s) violate it "
        f"and were kept. New rows are checked. Once those rows are fixed, run: "
        f"{render.validate_constraint(schema, table, constraint).as_string()};"
    )


def _shape(state: dict[str, Any]) -> tuple[list[str], str, str, list[str]] | None:
    columns, ref_columns, referenced = (
        state.get("columns"),
        state.get("referencedColumns"),
        state.get("referencedTable"),
    )
    if not (columns and ref_columns and referenced):
        return None
    ref_schema, ref_table = str(referenced).split(".", 1)
    return list(columns), ref_schema, ref_table, list(ref_columns)


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


class ConstraintPresence(ManagedResource):
    """A foreign key kept present: what the owner profile does with the constraint the open one removes.

    Missing, it is re-created: with the definition a ConstraintRemoval recorded when it dropped it in
    this database, else the one the inputs describe; validated when every row satisfies it, else
    NOT VALID with a warning giving the count of violating rows and the VALIDATE statement (no row is
    deleted). Present but NOT VALID, it is validated once no row violates it. Deleting the resource
    leaves the constraint in place: it only protects data.
    """

    token = "supabase-access:index:ConstraintPresence"
    replace_on = ("schema", "table", "constraint")

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
            if not info.validated and count_violations(conn, schema, table, _shape(inputs)) == "0":
                return {"validated": "update"}
        return {}

    def _ensure(self, db: Database, inputs: dict[str, Any], log: Log) -> dict[str, Any]:
        schema, table, constraint = inputs["schema"], inputs["table"], inputs["constraint"]
        shape = _shape(inputs)
        recreated, violations = False, None
        with write_transaction(db) as conn:
            # A removal's record (ledger) holds the exact definition it dropped here.
            known = _from_ledger(ledger.read(conn, LEDGER_KIND, _ledger_key(schema, table, constraint)))
            lock_tables(conn, schema, [table])
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
