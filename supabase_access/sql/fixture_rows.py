"""Rows made up to probe access: each table's shape read from the catalog, values for the columns a
new row needs, and one row per owner that follows the model's ownership paths.

Used by the preflight's widening probe (inside its rolled-back transaction) and by the access
matrix of the review tooling.
"""

from __future__ import annotations

import itertools
import random
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from supabase_access.model.access_model import AccessModel, Table


class ShapeError(RuntimeError):
    """No row can be made up for a table (a type without a value to make up, a required reference
    outside the model's paths, no primary key); the message names the table and column."""


# --- reading the tables' shape from the catalog -----------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    not_null: bool
    has_default: bool
    # Identity ALWAYS or generated: can only be set to DEFAULT.
    read_only: bool
    type_sql: str
    base_type: str
    category: str
    first_enum_label: str | None
    # The column's default as PostgreSQL prints it (None: none, or identity / generated).
    default_sql: str | None = None
    # Identity (BY DEFAULT or ALWAYS) or a sequence default: new rows get fresh values by themselves.
    self_numbered: bool = False

    @property
    def default_is_the_requesting_user(self) -> bool:
        # e.g. `author_id uuid not null default auth.uid()`: a request without a user of its own
        # (anon, service_role) must send the value, as a client using those keys would.
        return self.default_sql is not None and "auth.uid()" in self.default_sql


@dataclass(frozen=True)
class TableShape:
    schema: str
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    # Single-column foreign keys: column -> (schema, table, referenced column).
    foreign_keys: Mapping[str, tuple[str, str, str]]

    @property
    def ref(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)


_COLUMNS = """
select a.attname,
       a.attnotnull or t.typnotnull,
       a.atthasdef or a.attidentity <> '' or a.attgenerated <> '' or t.typdefault is not null,
       a.attidentity = 'a' or a.attgenerated <> '',
       format_type(a.atttypid, a.atttypmod),
       b.typname, b.typcategory,
       (select e.enumlabel from pg_enum e where e.enumtypid = b.oid order by e.enumsortorder limit 1),
       case when a.attgenerated = '' then pg_get_expr(d.adbin, d.adrelid) end,
       a.attidentity <> '' or coalesce(pg_get_expr(d.adbin, d.adrelid) like 'nextval(%%', false)
from pg_attribute a
left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
join pg_type t on t.oid = a.atttypid
join pg_type b on b.oid = case when t.typtype = 'd' then t.typbasetype else t.oid end
where a.attrelid = %(oid)s and a.attnum > 0 and not a.attisdropped
order by a.attnum
"""
_PRIMARY_KEY = """
select a.attname from pg_index i
join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any (i.indkey)
where i.indrelid = %(oid)s and i.indisprimary
order by array_position(i.indkey::int2[], a.attnum)
"""
_FOREIGN_KEYS = """
select a.attname, rn.nspname, rc.relname, ra.attname
from pg_constraint k
join pg_attribute a on a.attrelid = k.conrelid and a.attnum = k.conkey[1]
join pg_class rc on rc.oid = k.confrelid
join pg_namespace rn on rn.oid = rc.relnamespace
join pg_attribute ra on ra.attrelid = k.confrelid and ra.attnum = k.confkey[1]
where k.conrelid = %(oid)s and k.contype = 'f' and cardinality(k.conkey) = 1
"""


def read_shape(cur: psycopg.Cursor[TupleRow], schema: str, table: str) -> TableShape:
    found = cur.execute(
        "select c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = %s and c.relname = %s and c.relkind in ('r', 'p')",
        (schema, table),
    ).fetchone()
    if found is None:
        raise ShapeError(f"table {schema}.{table} does not exist in the database")
    params = {"oid": found[0]}
    columns = tuple(Column(*row) for row in cur.execute(_COLUMNS, params).fetchall())
    primary_key = tuple(row[0] for row in cur.execute(_PRIMARY_KEY, params).fetchall())
    if not primary_key:
        raise ShapeError(f"table {schema}.{table} has no primary key, so probed rows cannot be singled out")
    foreign_keys = {row[0]: (row[1], row[2], row[3]) for row in cur.execute(_FOREIGN_KEYS, params).fetchall()}
    return TableShape(schema, table, columns, primary_key, foreign_keys)


# --- made-up values for the NOT NULL columns the model says nothing about ---------------------


def _numeric_bound(type_sql: str) -> int:
    """One more than the largest whole number a `numeric(p, s)` holds (10^(p-s)); else no bound worth a limit."""
    found = re.fullmatch(r"numeric\((\d+),(\d+)\)", type_sql.replace(" ", ""))
    return 10 ** max(int(found[1]) - int(found[2]), 0) if found else 10**9


class MadeUpValues:
    """Values any column of a type accepts; strings and numbers differ per row (unique columns)."""

    def __init__(self) -> None:
        self._token = uuid.uuid4().hex[:8]
        # Fits a smallint, and unlikely to meet an existing row's value.
        self._serial = itertools.count(random.randint(1000, 30000))

    def for_column(self, table: TableShape, column: Column) -> sql.Composable:
        as_type = sql.SQL(column.type_sql)
        serial = next(self._serial)
        category, base = column.category, column.base_type
        text: str | None = None
        if column.first_enum_label is not None:
            text = column.first_enum_label
        elif category == "B":
            text = "false"
        elif category == "N":
            text = str(serial % _numeric_bound(column.type_sql))
        elif category == "S":
            text = f"matrix probe {self._token} {serial}"
        elif category == "D":
            return sql.SQL("now()::{}").format(as_type)
        elif category == "T":
            text = "1 minute"
        elif category == "A" or base in ("json", "jsonb"):
            text = "{}"
        elif base == "uuid":
            return sql.SQL("gen_random_uuid()::{}").format(as_type)
        elif base == "bytea":
            text = "\\x00"
        elif category == "I":
            text = "127.0.0.1"
        elif category == "R":
            text = "empty"
        if text is None:
            raise ShapeError(
                f"{table.schema}.{table.name}.{column.name}: cannot make up a {column.type_sql} value for the "
                "probe rows; give the column a default"
            )
        return sql.SQL("{}::{}").format(sql.Literal(text), as_type)


# --- fixture data ------------------------------------------------------------------------------


@dataclass
class Fixture:
    """The users and rows the probes point at, by user key ('A', 'B', 'P')."""

    model: AccessModel
    shapes: Mapping[str, TableShape]
    # Parents first, so each row's parent already exists.
    order: tuple[str, ...]
    user_ids: dict[str, uuid.UUID] = field(default_factory=dict)
    # (user key, table) -> the row's primary key and referenced columns.
    rows: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    values: MadeUpValues = field(default_factory=MadeUpValues)
    # Membership rows of the group personas: (table, key condition values).
    memberships: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def new_row(
        self,
        table_name: str,
        owner: str,
        *,
        as_user: bool = True,
        member: str | None = None,
        by_owner: bool = False,
    ) -> dict[str, sql.Composable]:
        """Column values of a new row owned by `owner`: its owner column, or its parents' keys; in a
        membership table, `member` (default: the owner's guest G_<owner>) joining the owner's group.

        Columns with a default keep it (the row is written with the owner's claims set, so a
        default of `auth.uid()` is the owner), except a key column whose default is no fresh
        value (it would repeat the fixture row's key) and, unless `as_user`, a default of the
        requesting user, which a request without a user of its own must send.
        """
        table: Table = self.model.table(table_name)
        shape = self.shapes[table_name]
        values: dict[str, sql.Composable] = {}
        # A copy of the owner (copyOwner) is the triggers' to set (and on an open stack not there at all).
        # A readOnly owner column is its default's to fill (`by_owner`: the owner sends the request), as the app does.
        by_default = by_owner and table.owner_column in table.columns.read_only
        if table.owner_column is not None and not table.owner_copy and not by_default:
            values[table.owner_column] = sql.Literal(self.user_ids[owner])
        if table.parent is not None:
            parent_row = self.rows[(owner, table.parent.table)]
            values[table.parent.column] = sql.Literal(parent_row[table.parent.key])
        if table.membership is not None:
            group_row = self.rows[(owner, table.membership.group)]
            values[table.membership.column] = sql.Literal(group_row[table.membership.key])
            values[table.membership.user] = sql.Literal(self.user_ids[member or f"G_{owner}"])
        for column in shape.columns:
            if column.name in values or column.read_only:
                continue
            if column.has_default and not as_user and column.default_is_the_requesting_user:
                values[column.name] = sql.Literal(self.user_ids[owner])
                continue
            in_key = column.name in shape.primary_key
            # A key default that gives each row a new value (identity, sequence, random uuid).
            fresh_default = column.self_numbered or any(
                word in (column.default_sql or "") for word in ("random", "uuid_generate")
            )
            if not column.not_null and not in_key:
                continue
            if column.has_default and not (in_key and not fresh_default and column.name not in shape.foreign_keys):
                continue
            reference = shape.foreign_keys.get(column.name)
            if reference is None:
                values[column.name] = self.values.for_column(shape, column)
            elif reference[0] == self.model.schema and (owner, reference[1]) in self.rows:
                # Another required link inside the model: to the same owner's row.
                values[column.name] = sql.Literal(self.rows[(owner, reference[1])][reference[2]])
            else:
                raise ShapeError(
                    f"{shape.schema}.{shape.name}.{column.name}: a required reference to "
                    f"{reference[0]}.{reference[1]} outside the model's ownership paths; no probe row can fill it"
                )
        return values

    def insert_row(self, cur: psycopg.Cursor[TupleRow], table_name: str, owner: str) -> None:
        """One row of `owner` in the table, written by the connection's role; its keys are kept in `rows`."""
        returned = self.returned_columns(table_name)
        statement = sql.SQL("{} returning {}").format(
            insert_statement(self.shapes[table_name], self.new_row(table_name, owner)),
            sql.SQL(", ").join(map(sql.Identifier, returned)),
        )
        row = cur.execute(statement).fetchone()
        assert row is not None  # RETURNING of a one-row insert
        self.rows[(owner, table_name)] = dict(zip(returned, row, strict=True))

    def returned_columns(self, table_name: str) -> list[str]:
        """The row's primary key plus every column other model tables point at."""
        wanted = list(self.shapes[table_name].primary_key)
        for table in self.model.tables:
            if table.parent is not None and table.parent.table == table_name:
                wanted.append(table.parent.key)
            if table.membership is not None and table.membership.group == table_name:
                wanted.append(table.membership.key)
            for schema, referenced, column in self.shapes[table.name].foreign_keys.values():
                if (schema, referenced) == (self.model.schema, table_name):
                    wanted.append(column)
        return list(dict.fromkeys(wanted))

    def key_condition(self, table_name: str, owner: str) -> sql.Composable:
        row = self.rows[(owner, table_name)]
        return sql.SQL(" and ").join(
            sql.SQL("{} = {}").format(sql.Identifier(column), sql.Literal(row[column]))
            for column in self.shapes[table_name].primary_key
        )


def insert_statement(shape: TableShape, values: Mapping[str, sql.Composable]) -> sql.Composed:
    if not values:
        # Every column has a default or may be null: `values ()` is not SQL.
        return sql.SQL("insert into {} default values").format(shape.ref)
    return sql.SQL("insert into {} ({}) values ({})").format(
        shape.ref,
        sql.SQL(", ").join(sql.Identifier(name) for name in values),
        sql.SQL(", ").join(values.values()),
    )


def creation_order(model: AccessModel, shapes: Mapping[str, TableShape]) -> tuple[str, ...]:
    """Tables (those of `shapes`) parents first."""
    graph: dict[str, set[str]] = {}
    for table in model.tables:
        if table.name not in shapes:
            continue
        needs = {table.parent.table} if table.parent is not None else set()
        if table.membership is not None:
            needs.add(table.membership.group)
        shape = shapes[table.name]
        for column in shape.columns:
            reference = shape.foreign_keys.get(column.name)
            if column.not_null and reference is not None and reference[0] == model.schema:
                if reference[1] in shapes and reference[1] != table.name:
                    needs.add(reference[1])
        graph[table.name] = needs
    try:
        return tuple(t for t in TopologicalSorter(graph).static_order() if t in shapes)
    except CycleError as exc:
        raise ShapeError(f"required references between {exc.args[1]} form a cycle; no row could be created") from exc


def harmless_column(table: Table, shape: TableShape) -> str:
    """A column an UPDATE can set to itself, preferably one that is no key nor ownership column nor one a
    column rule names (the API roles may not update those)."""
    avoid = set(shape.primary_key) | set(shape.foreign_keys) | {table.owner_column} | set(table.columns.named)
    if table.parent is not None:
        avoid.add(table.parent.column)
    if table.membership is not None:
        avoid |= {table.membership.column, table.membership.user}
    writable = [c.name for c in shape.columns if not c.read_only]
    candidates = [name for name in writable if name not in avoid]
    # Else a key or an ownership column, set to itself: nothing moves, the policies still judge the row.
    fallback = [name for name in writable if name in shape.primary_key] + writable
    if not fallback:
        raise ShapeError(f"{shape.schema}.{shape.name}: no column an UPDATE could set (every one is generated)")
    return (candidates or fallback)[0]


AUTH_USERS = ("auth", "users")


def insert_user(
    cur: psycopg.Cursor[TupleRow], users: TableShape, values: MadeUpValues, user_id: uuid.UUID, *, is_anonymous: bool
) -> None:
    """A user in auth.users: an anonymous sign-in, or a permanent user with an e-mail address."""
    columns = {c.name: c for c in users.columns}
    row: dict[str, sql.Composable] = {"id": sql.Literal(user_id)}
    if "is_anonymous" in columns:
        row["is_anonymous"] = sql.Literal(is_anonymous)
    if "email" in columns and not is_anonymous:
        row["email"] = sql.Literal(f"matrix-probe-{user_id}@example.invalid")
    for column in users.columns:
        if column.name not in row and column.not_null and not column.has_default:
            row[column.name] = values.for_column(users, column)
    cur.execute(insert_statement(users, row))
