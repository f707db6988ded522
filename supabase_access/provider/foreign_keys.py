"""What ConstraintRemoval and ConstraintPresence share: a foreign key read live, its ledger record (the
definition a removal dropped), and adding one back validated, or NOT VALID with the count of violating rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from supabase_access.provider import ledger
from supabase_access.provider.base import split_id
from supabase_access.provider.spec import Props
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from supabase_access.sql.rows import fetch_value

LEDGER_KIND = "constraint-removal"


@dataclass(frozen=True, kw_only=True)
class ForeignKeyRecord(Props):
    """The ledger's record of a foreign key a removal dropped: its definition, and its shape for counting the
    rows that violate it once it is back."""

    definition: str | None = None
    columns: tuple[str, ...] = ()
    ref_schema: str = ""
    ref_table: str = ""
    ref_columns: tuple[str, ...] = ()


def read_live_foreign_key(
    db: Database, resource_id: str, *, with_ledger: bool = False
) -> tuple[str, str, str, catalog.ForeignKeyInfo | None, ForeignKeyRecord | None] | None:
    """(schema, table, constraint, the key as it is, its ledger record if asked) for a resource id, one
    connection; None when the table is gone."""
    schema, table, constraint = split_id(resource_id, 3, "public.sessions.sessions_user_id_fkey")
    with db.connection() as conn:
        if catalog.missing_tables(conn, schema, [table]):
            return None
        info = catalog.read_foreign_key(conn, schema, table, constraint)
        recorded = read_record(conn, schema, table, constraint) if with_ledger else None
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
    count = fetch_value(
        conn, render.count_foreign_key_violations(schema, table, columns, ref_schema, ref_table, ref_columns)
    )
    return "some" if count is None else str(count)


def not_valid_warning(schema: str, table: str, constraint: str, violations: str, verb: str) -> str:
    return (
        f"{verb} {constraint} on {schema}.{table} as NOT VALID: {violations} existing row(s) violate it "
        f"and were kept. New rows are checked. Once those rows are fixed, run: "
        f"{render.validate_constraint(schema, table, constraint).as_string()};"
    )


def foreign_key_shape(
    columns: Sequence[str] | None, referenced_table: str | None, referenced_columns: Sequence[str] | None
) -> tuple[list[str], str, str, list[str]] | None:
    """(columns, referenced schema, table, columns) for counting violations; None when a part is unknown."""
    if not (columns and referenced_columns and referenced_table):
        return None
    ref_schema, ref_table = referenced_table.split(".", 1)
    return list(columns), ref_schema, ref_table, list(referenced_columns)


def ledger_key(schema: str, table: str, constraint: str) -> str:
    return f"{schema}.{table}.{constraint}"


def read_record(conn: psycopg.Connection, schema: str, table: str, constraint: str) -> ForeignKeyRecord | None:
    return ledger.read_as(conn, LEDGER_KIND, ledger_key(schema, table, constraint), ForeignKeyRecord)


def to_ledger(info: catalog.ForeignKeyInfo) -> ForeignKeyRecord:
    return ForeignKeyRecord(
        definition=info.definition,
        columns=info.columns,
        ref_schema=info.ref_schema,
        ref_table=info.ref_table,
        ref_columns=info.ref_columns,
    )


def from_ledger(record: ForeignKeyRecord | None) -> catalog.ForeignKeyInfo | None:
    if record is None or not record.definition:
        return None
    return catalog.ForeignKeyInfo(
        record.definition, record.columns, record.ref_schema, record.ref_table, record.ref_columns
    )
