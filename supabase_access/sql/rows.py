"""Catalog rows by name: each read is paired with the frozen dataclass its rows become (psycopg's
`class_row`, by column name), so no caller reads a row by position."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, LiteralString, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import class_row, scalar_row

R = TypeVar("R")

Params = Sequence[Any] | Mapping[str, Any] | None
# A statement psycopg runs: composed, or a literal with placeholders.
Statement = LiteralString | sql.SQL | sql.Composed


@dataclass(frozen=True)
class Query(Generic[R]):
    """A read and the type of its rows: the query's column names are the type's fields."""

    sql: sql.SQL | sql.Composed
    row: type[R]


def fetch_one(conn: psycopg.Connection[Any], query: Query[R], params: Params = None) -> R | None:
    with conn.cursor(row_factory=class_row(query.row)) as cur:
        return cur.execute(query.sql, params).fetchone()


def fetch_all(conn: psycopg.Connection[Any], query: Query[R], params: Params = None) -> list[R]:
    with conn.cursor(row_factory=class_row(query.row)) as cur:
        return cur.execute(query.sql, params).fetchall()


def fetch_value(conn: psycopg.Connection[Any], query: Statement, params: Params = None) -> Any:
    """The one column of a one-column read's first row (None when there is no row)."""
    with conn.cursor(row_factory=scalar_row) as cur:
        return cur.execute(query, params).fetchone()


def fetch_values(conn: psycopg.Connection[Any], query: Statement, params: Params = None) -> list[Any]:
    """The one column of a one-column read, a value a row."""
    with conn.cursor(row_factory=scalar_row) as cur:
        return cur.execute(query, params).fetchall()
