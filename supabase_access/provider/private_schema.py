"""What WriteQuota and RetentionPolicy share: their private schema, column checks and dry runs.

Both put their functions in a private schema that the provider creates, marks with a comment
and drops once the last of its objects is gone; the API roles get no access to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from supabase_access.provider.base import InputError, missing_table
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database, execute_together
from supabase_access.sql.rows import fetch_all, fetch_one
from supabase_access.sql.transaction import lock_tables, write_transaction

TIMESTAMP_TYPES = ("timestamp with time zone", "timestamp without time zone")
# The schema lock key: a pseudo-table name no real table can have (identifiers are [a-z0-9_]).
SCHEMA_LOCK = "(private schema)"


def positive_int(value: object, setting: str, maximum: int, *, optional: bool = False) -> int | None:
    """`value` as a count from 1 to `maximum` (None when optional and unset), or the input error naming `setting`."""
    if value is None and optional:
        return None
    # bool is an int in Python; `true` is not a count.
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise InputError(setting, f"{setting}: expected a whole number from 1 to {maximum}, got {value!r}")
    return value


def dry_run(db: Database, property: str, what: str, private_schema: str, statements: Sequence[Any]) -> None:
    """Let PostgreSQL check the statements (and our rights to run them) in a transaction that is rolled back.

    The private schema is made the same way an apply makes it (under its lock), so a dry run
    never races another resource creating the schema for real.
    """
    try:
        with write_transaction(db, rollback=True) as conn:
            ensure_private_schema(conn, private_schema)
            execute_together(conn, statements)
    except psycopg.Error as exc:
        message = exc.diag.message_primary or str(exc)
        raise InputError(property, f"{property}: PostgreSQL refused the {what}: {message}") from exc


def check_private_schema(conn: psycopg.Connection, private_schema: str) -> None:
    found = fetch_one(conn, catalog.SCHEMA_COMMENT, (private_schema,))
    if found is None:
        if not catalog.may_create_schemas(conn):
            raise InputError(
                "privateSchema",
                f"privateSchema: schema {private_schema} does not exist and role {conn.info.user} may not create "
                "schemas in this database (grant create on database to it, as Supabase does for postgres)",
            )
    elif found.comment != render.PRIVATE_SCHEMA_MARKER:
        # Our functions are SECURITY DEFINER: they must live where we control who may do what.
        raise InputError(
            "privateSchema",
            f"privateSchema: schema {private_schema} exists but was not created by supabase-access; "
            "choose another name",
        )


def lock_private_schema(conn: psycopg.Connection, private_schema: str) -> None:
    """Taken by every transaction that changes the private schema or an object in it, after its
    table locks (lock_tables) and before any statement: one order for all of them, so they queue
    instead of deadlocking, and none holds the schema while it waits for a table."""
    lock_tables(conn, private_schema, [SCHEMA_LOCK])


def ensure_private_schema(conn: psycopg.Connection, private_schema: str) -> None:
    """Inside the caller's transaction, so the schema cannot be dropped before our object is in it."""
    lock_private_schema(conn, private_schema)
    if fetch_one(conn, catalog.SCHEMA_COMMENT, (private_schema,)) is None:
        conn.execute(render.create_private_schema(private_schema))
        conn.execute(render.mark_private_schema(private_schema))
        conn.execute(render.revoke_private_schema(private_schema))


def drop_private_schema_if_unused(db: Database, private_schema: str) -> None:
    with write_transaction(db) as conn:
        lock_private_schema(conn, private_schema)
        drop_schema_if_empty(conn, private_schema, render.PRIVATE_SCHEMA_MARKER)


def drop_schema_if_empty(conn: psycopg.Connection, schema: str, marker: str) -> None:
    """`schema`, if its comment is `marker` (ours) and nothing (ours or not) is left in it; the caller holds
    its lock. A function another resource keeps there (another quota, the retention function, a group or
    caller function) keeps it."""
    found = fetch_one(conn, catalog.SCHEMA_COMMENT, (schema,))
    if found is None or found.comment != marker:
        return
    try:
        with conn.transaction():
            conn.execute(render.drop_private_schema(schema))
    except psycopg.errors.DependentObjectsStillExist:
        pass


def table_columns(conn: psycopg.Connection, schema: str, table: str) -> dict[str, str]:
    return {column.name: column.type for column in fetch_all(conn, catalog.TABLE_COLUMNS, (schema, table))}


def require_columns(
    conn: psycopg.Connection,
    schema: str,
    table: str,
    wanted: Mapping[str, str],
    *,
    timestamp: str | None = None,
    table_property: str = "table",
) -> None:
    """`wanted`: column -> the input that names it. Fails naming that input."""
    columns = table_columns(conn, schema, table)
    if not columns:
        raise missing_table(table_property, schema, table)
    for column, property in wanted.items():
        if column not in columns:
            raise InputError(property, f"{property}: {schema}.{table} has no column {column}")
    if timestamp is not None and columns.get(timestamp) not in TIMESTAMP_TYPES:
        property = wanted.get(timestamp, "timestamp")
        raise InputError(property, f"{property}: {schema}.{table}.{timestamp} is {columns[timestamp]}, not a timestamp")


def require_rls_not_filtering(conn: psycopg.Connection, property: str, schema: str, tables: Sequence[str]) -> None:
    for table in tables:
        if catalog.row_security_active(conn, schema, table):
            raise InputError(
                property,
                f"{property}: row-level security applies to role {conn.info.user} on {schema}.{table} "
                "(FORCE ROW LEVEL SECURITY, or not its owner, without BYPASSRLS), so the function could not see "
                "its rows; connect as the table owner or a role with BYPASSRLS",
            )
