"""The ledger: what the provider must still know when a run dies between a change and the engine's
record of it, kept in the database in the same transaction as the change.

A table in the private schema (created on first use, revoked from the API roles, dropped with
the schema once its last row is forgotten). A record is written once: the first one stands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb

from supabase_access.model import hardening
from supabase_access.provider.private_schema import (
    drop_private_schema_if_unused,
    ensure_private_schema,
    lock_private_schema,
)
from supabase_access.provider.spec import Props
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from supabase_access.sql.rows import fetch_value
from supabase_access.sql.transaction import write_transaction

LEDGER_SCHEMA = hardening.PRIVATE_SCHEMA


def prepare(conn: psycopg.Connection) -> None:
    """Inside the caller's write_transaction, after its table locks (the private schema's lock comes last)."""
    ensure_private_schema(conn, LEDGER_SCHEMA)
    if not _exists(conn):
        conn.execute(render.create_ledger(LEDGER_SCHEMA))
        conn.execute(render.revoke_table_from_api(LEDGER_SCHEMA, render.LEDGER_TABLE))


def record(conn: psycopg.Connection, kind: str, obj: str, detail: Props, *, replace: bool = False) -> None:
    """Inside the caller's write_transaction, after its table locks. `detail`: the record, a `Props` type
    declared beside the resource that keeps it (read back with `read_as`).

    The first record of an object stands (a baseline), unless `replace` (what is true right now).
    """
    prepare(conn)
    conn.execute(render.ledger_record(LEDGER_SCHEMA, replace=replace), (kind, obj, Jsonb(detail.to_wire())))


def read(conn: psycopg.Connection, kind: str, obj: str) -> dict[str, Any] | None:
    """In a transaction, after its table locks: the private schema's lock comes first, so a reader
    never holds the ledger while it waits for that lock (tidy drops the ledger under it)."""
    if conn.info.transaction_status != TransactionStatus.IDLE:
        lock_private_schema(conn, LEDGER_SCHEMA)
    if not _exists(conn):
        return None
    detail = fetch_value(conn, render.ledger_read(LEDGER_SCHEMA), (kind, obj))
    return None if detail is None else dict(detail)


RecordT = TypeVar("RecordT", bound=Props)


@dataclass(frozen=True, kw_only=True)
class MadeBy(Props):
    """A record of the stack that made an object, written in the transaction that made it: a run killed before
    the engine recorded the object knows it as its own."""

    stack: str | None = None


def read_as(conn: psycopg.Connection, kind: str, obj: str, record_type: type[RecordT]) -> RecordT | None:
    """`read`, the record parsed into its type (keys the type does not declare are ignored)."""
    detail = read(conn, kind, obj)
    return None if detail is None else record_type.from_wire(detail)


def forget(conn: psycopg.Connection, kind: str, obj: str) -> None:
    """Inside the caller's write_transaction, after its table locks; call `tidy` after it commits."""
    lock_private_schema(conn, LEDGER_SCHEMA)
    if _exists(conn):
        conn.execute(render.ledger_forget(LEDGER_SCHEMA), (kind, obj))


def tidy(db: Database) -> None:
    """Drop the ledger once empty, and the private schema once nothing else lives there."""
    try:
        with write_transaction(db) as conn:
            lock_private_schema(conn, LEDGER_SCHEMA)
            if not _exists(conn):
                return
            (empty,) = conn.execute(render.ledger_is_empty(LEDGER_SCHEMA)).fetchone() or (False,)
            if not empty:
                return
            conn.execute(render.drop_table(LEDGER_SCHEMA, render.LEDGER_TABLE))
    except psycopg.errors.UndefinedTable:
        # Another resource's tidy dropped it while this one waited for the lock (an advisory lock
        # does not refresh the catalog cache, so the existence check above can be stale).
        return
    drop_private_schema_if_unused(db, LEDGER_SCHEMA)


def lock(conn: psycopg.Connection) -> None:
    """The private schema's lock, inside the caller's write_transaction after its table locks."""
    lock_private_schema(conn, LEDGER_SCHEMA)


def exists(conn: psycopg.Connection) -> bool:
    return _exists(conn)


def _exists(conn: psycopg.Connection) -> bool:
    return catalog.relation_exists(conn, LEDGER_SCHEMA, render.LEDGER_TABLE)
