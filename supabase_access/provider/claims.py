"""Which stack manages each table: one stack per table of a database.

The ledger holds a claim per table (kind "stack", object "schema.table"): the stack that manages
it and the privileges that stack grants there (pulumi_postgresql's Grants cannot carry a mark, so
the claim speaks for them). AccessPreflight refuses, at preview, a table another stack claims,
and claims its tables under the ledger's lock when it is applied, so of two concurrent `up`s on one
table the second is refused. Every delete path asks `other_stack` under the table's lock and
leaves a table another stack manages as it is. The claim goes with the stack's AccessPreflight
(last on destroy) or the table's RowLevelSecurity, so the ledger is tidied last.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from supabase_access.provider import ledger
from supabase_access.provider.base import CURRENT_STACK
from supabase_access.sql import statements as render
from supabase_access.sql.errors import CatalogError

LEDGER_KIND = "stack"


@dataclass(frozen=True, kw_only=True)
class Claim(ledger.MadeBy):
    """A table's claim: the stack that manages it, and role -> the privileges that stack grants there."""

    grants: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def _key(schema: str, table: str) -> str:
    return f"{schema}.{table}"


def read(conn: psycopg.Connection, schema: str, tables: Iterable[str]) -> dict[str, dict[str, Any]]:
    """table -> its claim (stack, grants), for the tables some stack claims.

    Outside a transaction: one round trip (no ledger yet: none). Inside a write transaction,
    after the tables' locks (the private schema's lock is taken first).
    """
    wanted = {_key(schema, t): t for t in tables}
    in_transaction = conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
    if in_transaction:
        ledger.lock(conn)
        if not ledger.exists(conn):
            return {}
        rows = conn.execute(render.ledger_read_many(ledger.LEDGER_SCHEMA), (LEDGER_KIND, list(wanted))).fetchall()
    else:
        try:
            rows = conn.execute(render.ledger_read_many(ledger.LEDGER_SCHEMA), (LEDGER_KIND, list(wanted))).fetchall()
        except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
            return {}
    return {wanted[obj]: dict(detail) for obj, detail in rows}


def read_claims(conn: psycopg.Connection, schema: str, tables: Iterable[str]) -> dict[str, Claim]:
    """`read`, each claim parsed into its type."""
    return {table: Claim.from_wire(detail) for table, detail in read(conn, schema, tables).items()}


def others(conn: psycopg.Connection, schema: str, tables: Iterable[str]) -> dict[str, str]:
    """table -> the other stack that manages it (none for this stack's own or unclaimed tables)."""
    stack = CURRENT_STACK.get()
    return {
        t: claim.stack for t, claim in read_claims(conn, schema, tables).items() if claim.stack and claim.stack != stack
    }


def other_stack(conn: psycopg.Connection, schema: str, table: str) -> str | None:
    """The other stack that manages the table; inside a write transaction after the table's lock."""
    return others(conn, schema, [table]).get(table)


def owner_grants(conn: psycopg.Connection, schema: str, table: str) -> dict[str, list[str]]:
    """Role -> privileges the stack that claims the table grants there (as its claim recorded them)."""
    claim = read_claims(conn, schema, [table]).get(table) or Claim()
    return {r: list(p) for r, p in claim.grants.items()}


def refusal(schema: str, taken: Mapping[str, str]) -> str:
    described = ", ".join(f"{schema}.{t} (stack {s!r})" for t, s in sorted(taken.items()))
    return (
        f"another stack manages {described} on this database: one stack per table, so this stack may not change "
        "it. Take the table out of one stack's model (and `pulumi destroy` or `pulumi up` that stack first)"
    )


def claim(conn: psycopg.Connection, schema: str, grants: Mapping[str, Mapping[str, list[str]]]) -> None:
    """Inside a write transaction: claim each table (table -> role -> the privileges this stack grants
    there) for this stack, or fail naming the stack that has one. The ledger's lock (taken first)
    serialises claims: of two stacks racing for a table, the second sees the first's claim."""
    taken = others(conn, schema, grants)
    if taken:
        raise CatalogError(refusal(schema, taken))
    stack = CURRENT_STACK.get()
    ledger.prepare(conn)
    for table, by_role in sorted(grants.items()):
        detail = Claim(stack=stack, grants={r: tuple(p) for r, p in by_role.items()})
        conn.execute(
            render.ledger_record(ledger.LEDGER_SCHEMA, replace=True),
            (LEDGER_KIND, _key(schema, table), Jsonb(detail.to_wire())),
        )


def release(conn: psycopg.Connection, schema: str, tables: Iterable[str]) -> None:
    """Inside a write transaction (after any table's lock): forget this stack's claims on them."""
    stack = CURRENT_STACK.get()
    for table, found in read_claims(conn, schema, tables).items():
        if found.stack == stack:
            ledger.forget(conn, LEDGER_KIND, _key(schema, table))
