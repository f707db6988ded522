"""The access matrix: what each API persona can do on each table of the model, in a live database.

Personas are what PostgREST sees: `anon` (no JWT), two anonymous sign-ins A and B, a permanent
user P and `service_role`. Each is probed for select / insert / update / delete on its own rows
and on another user's. Convention for the personas without a user of their own: for `anon`
and `service_role`, "own" means the rows of user A and "other" the rows of user B.

When the model has membership tables (groups), two more: a member and an admin of A's groups
(users M and D, in every membership table with A's group), for whom "own" means A's rows and
"other" B's; B and P are the non-members. Each user's row of a membership table is the
membership of a guest user (G_A, G_B, G_P) in that user's group; an inserted row adds a
newcomer N to it.

How: as the role of the given connection (an admin that owns the tables, e.g. `postgres`,
never one of the judged roles) fixture data is created in one committed transaction: the
three users in `auth.users` and, for each, one row in every table of the model, following the
model's ownership paths. Every cell is then probed over a single `authenticator` connection
exactly as PostgREST runs a request (`as_persona`), each probe inside a savepoint that is
rolled back. The fixture rows are deleted at the end.
"""

from __future__ import annotations

import itertools
import json
import random
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
from psycopg import errors, sql
from psycopg.rows import TupleRow

from review.postgrest import (
    LOCAL_AUTHENTICATOR_PASSWORD,
    ApiRole,
    Persona,
    as_persona,
    connect_as_authenticator,
)
from supabase_access.model.access_model import AccessModel, Table
from supabase_access.model.stack_config import NAMESPACE, ConfigError, StackSettings, parse_stack_settings

OPERATIONS = ("select", "insert", "update", "delete")
WHOSE = ("own", "other")
# The PostgREST request method of each operation (GET runs read-only, as in PostgREST).
METHODS = {"select": "GET", "insert": "POST", "update": "PATCH", "delete": "DELETE"}
ALLOWED, DENIED, FAILED = "✓", "✗", "!"
AUTH_SCHEMA, AUTH_USERS = "auth", "users"


class MatrixError(RuntimeError):
    """The matrix cannot be computed (schema the fixture cannot satisfy, unexpected error)."""


class Cell(NamedTuple):
    persona: str
    table: str
    operation: str
    whose: str

    def label(self) -> str:
        return f"{self.persona} · {self.table} · {self.operation} {self.whose}"


@dataclass(frozen=True)
class ProbePersona:
    label: str
    role: ApiRole
    # The fixture user whose JWT the persona carries (None: no user of its own).
    user: str | None
    own: str
    other: str


@dataclass(frozen=True)
class FixtureUser:
    key: str
    is_anonymous: bool


FIXTURE_USERS = (FixtureUser("A", True), FixtureUser("B", True), FixtureUser("P", False))
# Users of the group personas and of the membership rows (only when the model has groups).
GROUP_USERS = (
    FixtureUser("M", False),
    FixtureUser("D", False),
    FixtureUser("N", False),
    *(FixtureUser(f"G_{user.key}", False) for user in FIXTURE_USERS),
)
PERSONAS = (
    ProbePersona("anon", "anon", None, own="A", other="B"),
    ProbePersona("authenticated (anonymous A)", "authenticated", "A", own="A", other="B"),
    ProbePersona("authenticated (anonymous B)", "authenticated", "B", own="B", other="A"),
    ProbePersona("authenticated (permanent)", "authenticated", "P", own="P", other="A"),
    ProbePersona("service_role", "service_role", None, own="A", other="B"),
)
GROUP_PERSONAS = (
    ProbePersona("authenticated (member of A's groups)", "authenticated", "M", own="A", other="B"),
    ProbePersona("authenticated (admin of A's groups)", "authenticated", "D", own="A", other="B"),
)
PERSONA_LABELS = tuple(p.label for p in PERSONAS)
OWN_CONVENTION = "own = the persona's rows; for anon and service_role, own = user A's rows and other = user B's"
GROUP_CONVENTION = "for the member and the admin of A's groups, own = user A's rows and other = user B's"


def personas_for(model: AccessModel) -> tuple[ProbePersona, ...]:
    """The standard personas, and the group ones when the model has membership tables."""
    if not model.group_names:
        return PERSONAS
    return (*PERSONAS[:-1], *GROUP_PERSONAS, PERSONAS[-1])


@dataclass(frozen=True)
class AccessMatrix:
    personas: tuple[str, ...]
    tables: tuple[str, ...]
    allowed: Mapping[Cell, bool]
    # Probes that failed for another reason than a privilege or policy check (a NOT NULL, unique or
    # CHECK constraint, a trigger, a quota): the cell says neither allowed nor denied. Cell -> error.
    failed: Mapping[Cell, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def convention(self) -> str:
        groups = any(label in self.personas for label in (p.label for p in GROUP_PERSONAS))
        return f"{OWN_CONVENTION}; {GROUP_CONVENTION}" if groups else OWN_CONVENTION

    def cells(self) -> Iterator[Cell]:
        for persona, table, operation, whose in itertools.product(self.personas, self.tables, OPERATIONS, WHOSE):
            yield Cell(persona, table, operation, whose)

    def state(self, cell: Cell) -> str:
        if cell in self.failed:
            return "probe failed"
        if cell not in self.allowed:
            return "absent"
        return "allowed" if self.allowed[cell] else "denied"

    def symbol(self, cell: Cell) -> str:
        if cell in self.failed:
            return FAILED
        return "?" if cell not in self.allowed else ALLOWED if self.allowed[cell] else DENIED

    def _rows(self, marked: Collection[Cell], mark: str) -> Iterator[list[str]]:
        for persona in self.personas:
            for index, table in enumerate(self.tables):
                row = [persona if index == 0 else "", table]
                for operation, whose in itertools.product(OPERATIONS, WHOSE):
                    cell = Cell(persona, table, operation, whose)
                    symbol = self.symbol(cell)
                    row.append(mark.format(symbol) if cell in marked else symbol)
                yield row

    def render_text(self, marked: Collection[Cell] = ()) -> str:
        """An aligned terminal table; cells in `marked` get a `*`."""
        # Two header lines (operation, then own/other) keep the table within ~110 columns.
        header = ["persona", "table", *(whose for _, whose in itertools.product(OPERATIONS, WHOSE))]
        rows = [header, *self._rows(marked, "{}*")]
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        spans = [widths[0], widths[1]] + [widths[i] + 2 + widths[i + 1] for i in range(2, len(widths), 2)]
        operations = ["", "", *OPERATIONS]
        lines = ["  ".join(value.ljust(width) for value, width in zip(operations, spans, strict=True)).rstrip()]
        for number, row in enumerate(rows):
            if number > 1 and row[0]:
                lines.append("")  # a blank line between personas
            lines.append("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())
        legend = f"{ALLOWED} allowed  {DENIED} denied" + (f"  {FAILED} probe failed (see below)" if self.failed else "")
        legend += "  * changed" if marked else ""
        return "\n".join([*lines, "", legend, self.convention])

    def render_markdown(self, marked: Collection[Cell] = ()) -> str:
        """A Markdown table (PR comments, job summaries); changed cells in `marked` are bold."""
        header = ["persona", "table", *(f"{op} {whose}" for op, whose in itertools.product(OPERATIONS, WHOSE))]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in self._rows(marked, "**{} (changed)**")]
        failed = f", {FAILED} probe failed for another reason (see the notes)" if self.failed else ""
        legend = f"{ALLOWED} allowed, {DENIED} denied{failed}. {self.convention}."
        return "\n".join([*lines, "", legend])


def matrix_from_rule(tables: Sequence[str], rule: Callable[[Cell], bool]) -> AccessMatrix:
    """A matrix over the standard personas whose cells `rule` decides (e.g. what a profile should give)."""
    cells = (Cell(*key) for key in itertools.product(PERSONA_LABELS, tables, OPERATIONS, WHOSE))
    return AccessMatrix(PERSONA_LABELS, tuple(tables), {cell: rule(cell) for cell in cells})


def changed_cells(before: AccessMatrix, after: AccessMatrix) -> list[Cell]:
    """Cells whose state differs, in the order of `after` (then cells only `before` has)."""
    ordered = list(after.cells()) + [cell for cell in before.cells() if cell not in after.allowed]
    return [cell for cell in ordered if before.state(cell) != after.state(cell)]


def diff(before: AccessMatrix, after: AccessMatrix) -> list[str]:
    """One line per changed cell: 'persona · table · operation whose: allowed → denied'."""
    return [f"{cell.label()}: {before.state(cell)} → {after.state(cell)}" for cell in changed_cells(before, after)]


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
        raise MatrixError(f"table {schema}.{table} does not exist in the database")
    params = {"oid": found[0]}
    columns = tuple(Column(*row) for row in cur.execute(_COLUMNS, params).fetchall())
    primary_key = tuple(row[0] for row in cur.execute(_PRIMARY_KEY, params).fetchall())
    if not primary_key:
        raise MatrixError(f"table {schema}.{table} has no primary key, so probed rows cannot be singled out")
    foreign_keys = {row[0]: (row[1], row[2], row[3]) for row in cur.execute(_FOREIGN_KEYS, params).fetchall()}
    return TableShape(schema, table, columns, primary_key, foreign_keys)


# --- made-up values for the NOT NULL columns the model says nothing about ---------------------


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
            text = str(serial)
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
            raise MatrixError(
                f"{table.schema}.{table.name}.{column.name}: cannot make up a {column.type_sql} value for the "
                "matrix's fixture rows; give the column a default"
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
        self, table_name: str, owner: str, *, as_user: bool = True, member: str | None = None
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
        if table.owner_column is not None and not table.owner_copy:
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
                raise MatrixError(
                    f"{shape.schema}.{shape.name}.{column.name}: a required reference to "
                    f"{reference[0]}.{reference[1]} outside the model's ownership paths; the matrix cannot fill it"
                )
        return values

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
    graph: dict[str, set[str]] = {}
    for table in model.tables:
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
        return tuple(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise MatrixError(f"required references between {exc.args[1]} form a cycle; no row could be created") from exc


def harmless_column(table: Table, shape: TableShape) -> str:
    """A column an UPDATE can set to itself without touching ownership or keys."""
    avoid = set(shape.primary_key) | set(shape.foreign_keys) | {table.owner_column}
    if table.parent is not None:
        avoid.add(table.parent.column)
    if table.membership is not None:
        avoid |= {table.membership.column, table.membership.user}
    candidates = [c.name for c in shape.columns if not c.read_only and c.name not in avoid]
    fallback = [c.name for c in shape.columns if not c.read_only and c.name in shape.primary_key]
    if not candidates and not fallback:
        raise MatrixError(f"{shape.schema}.{shape.name}: no column an UPDATE could set to itself")
    return (candidates or fallback)[0]


def _rls_needs_bypass(cur: psycopg.Cursor[TupleRow], shapes: Collection[TableShape]) -> bool:
    """True when FORCE ROW LEVEL SECURITY would stop the connecting role from writing the fixture."""
    row = cur.execute(
        "select exists (select from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        "  where (n.nspname, c.relname) in (select * from unnest(%s::text[], %s::text[])) and c.relforcerowsecurity)"
        " and not (select rolsuper or rolbypassrls from pg_roles where rolname = current_user)",
        ([s.schema for s in shapes], [s.name for s in shapes]),
    ).fetchone()
    return bool(row and row[0])


def _bypass_rls_if_forced(cur: psycopg.Cursor[TupleRow], fixture: Fixture) -> None:
    # With FORCE RLS even the owner is filtered; service_role (BYPASSRLS) writes the fixture then.
    if _rls_needs_bypass(cur, fixture.shapes.values()):
        cur.execute("set local role service_role")


def create_fixture(conn: psycopg.Connection[TupleRow], model: AccessModel) -> Fixture:
    """Users A, B, P and one row per table for each, committed in one transaction."""
    with conn.transaction(), conn.cursor() as cur:
        shapes = {t.name: read_shape(cur, model.schema, t.name) for t in model.tables}
        fixture = Fixture(model, shapes, creation_order(model, shapes))
        users = read_shape(cur, AUTH_SCHEMA, AUTH_USERS)
        user_columns = {c.name: c for c in users.columns}
        for user in fixture_users(model):
            user_id = uuid.uuid4()
            values: dict[str, sql.Composable] = {"id": sql.Literal(user_id)}
            if "is_anonymous" in user_columns:
                values["is_anonymous"] = sql.Literal(user.is_anonymous)
            if "email" in user_columns and not user.is_anonymous:
                values["email"] = sql.Literal(f"matrix-probe-{user_id}@example.invalid")
            for column in users.columns:
                if column.name not in values and column.not_null and not column.has_default:
                    values[column.name] = fixture.values.for_column(users, column)
            cur.execute(insert_statement(users, values))
            fixture.user_ids[user.key] = user_id
        _bypass_rls_if_forced(cur, fixture)
        for table_name in fixture.order:
            shape = shapes[table_name]
            returned = fixture.returned_columns(table_name)
            for user in FIXTURE_USERS:
                # Written as its owner would write it: defaults such as auth.uid() give the owner.
                claims = Persona.signed_in(fixture.user_ids[user.key], is_anonymous=user.is_anonymous)
                cur.execute("select set_config('request.jwt.claims', %s, true)", (claims.claims_setting(),))
                statement = sql.SQL("{} returning {}").format(
                    insert_statement(shape, fixture.new_row(table_name, user.key)),
                    sql.SQL(", ").join(map(sql.Identifier, returned)),
                )
                row = cur.execute(statement).fetchone()
                assert row is not None  # RETURNING of a one-row insert
                fixture.rows[(user.key, table_name)] = dict(zip(returned, row, strict=True))
        _add_group_personas(cur, fixture)
    return fixture


def fixture_users(model: AccessModel) -> tuple[FixtureUser, ...]:
    return (*FIXTURE_USERS, *GROUP_USERS) if model.group_names else FIXTURE_USERS


def _add_group_personas(cur: psycopg.Cursor[TupleRow], fixture: Fixture) -> None:
    """M joins A's group of every membership table; D joins it as an admin (its first admin role)."""
    for table in fixture.model.tables:
        membership = table.membership
        if membership is None:
            continue
        shape = fixture.shapes[table.name]
        for user, role in (("M", None), ("D", membership.admins[0] if membership.admins else None)):
            values = fixture.new_row(table.name, "A", member=user)
            if role is not None and membership.role is not None:
                values[membership.role] = sql.Literal(role)
            cur.execute(insert_statement(shape, values))
            key = {membership.column: fixture.rows[("A", membership.group)][membership.key]}
            fixture.memberships.append((table.name, {**key, membership.user: fixture.user_ids[user]}))


def delete_fixture(conn: psycopg.Connection[TupleRow], fixture: Fixture) -> None:
    """Remove the fixture rows, children first (the user FK may be gone, so no cascade is relied on)."""
    with conn.transaction(), conn.cursor() as cur:
        _bypass_rls_if_forced(cur, fixture)
        for table_name, key in fixture.memberships:
            condition = sql.SQL(" and ").join(
                sql.SQL("{} = {}").format(sql.Identifier(column), sql.Literal(value)) for column, value in key.items()
            )
            cur.execute(sql.SQL("delete from {} where {}").format(fixture.shapes[table_name].ref, condition))
        for table_name in reversed(fixture.order):
            for user in FIXTURE_USERS:
                if (user.key, table_name) in fixture.rows:
                    cur.execute(
                        sql.SQL("delete from {} where {}").format(
                            fixture.shapes[table_name].ref, fixture.key_condition(table_name, user.key)
                        )
                    )
        cur.execute("reset role")
        if fixture.user_ids:
            cur.execute(
                sql.SQL("delete from {} where id = any(%s)").format(sql.Identifier(AUTH_SCHEMA, AUTH_USERS)),
                (list(fixture.user_ids.values()),),
            )


# --- probing -----------------------------------------------------------------------------------

# A privilege or a policy said no (42501: "permission denied", "new row violates row-level
# security policy"). Any other error is a probe that failed, shown as neither allowed nor denied.
_REFUSALS = (errors.InsufficientPrivilege,)


def probe_statement(
    fixture: Fixture, table_name: str, operation: str, owner: str, *, as_user: bool = True
) -> sql.Composed:
    shape = fixture.shapes[table_name]
    if operation == "insert":
        # Into a membership table: a newcomer joins the owner's group.
        member = "N" if fixture.model.table(table_name).membership is not None else None
        return insert_statement(shape, fixture.new_row(table_name, owner, as_user=as_user, member=member))
    where = fixture.key_condition(table_name, owner)
    if operation == "select":
        return sql.SQL("select 1 from {} where {}").format(shape.ref, where)
    if operation == "update":
        column = sql.Identifier(harmless_column(fixture.model.table(table_name), shape))
        return sql.SQL("update {} set {} = {} where {}").format(shape.ref, column, column, where)
    return sql.SQL("delete from {} where {}").format(shape.ref, where)


def persona_of(spec: ProbePersona, fixture: Fixture) -> Persona:
    if spec.role == "anon":
        return Persona.anon()
    if spec.role == "service_role":
        return Persona.service()
    assert spec.user is not None
    user = next(u for u in (*FIXTURE_USERS, *GROUP_USERS) if u.key == spec.user)
    return Persona.signed_in(fixture.user_ids[user.key], is_anonymous=user.is_anonymous)


def probe_all(
    conn: psycopg.Connection[TupleRow], fixture: Fixture
) -> tuple[dict[Cell, bool], dict[Cell, str], list[str]]:
    """Every cell, one request transaction per persona and operation, one savepoint per probe."""
    allowed: dict[Cell, bool] = {}
    failed: dict[Cell, str] = {}
    notes: list[str] = []
    for spec in personas_for(fixture.model):
        persona = persona_of(spec, fixture)
        for operation in OPERATIONS:
            with as_persona(conn, persona, method=METHODS[operation]) as cur:
                for table_name, whose in itertools.product(fixture.model.table_names, WHOSE):
                    cell = Cell(spec.label, table_name, operation, whose)
                    owner = spec.own if whose == "own" else spec.other
                    statement = probe_statement(fixture, table_name, operation, owner, as_user=spec.user is not None)
                    try:
                        with conn.transaction(force_rollback=True):
                            cur.execute(statement)
                            affected = len(cur.fetchall()) if operation == "select" else cur.rowcount
                        allowed[cell] = affected > 0
                    except _REFUSALS:
                        allowed[cell] = False
                    except errors.UniqueViolation:
                        if operation != "insert":
                            raise
                        # PostgreSQL checks privileges and the policies' WITH CHECK before the
                        # unique index: the insert was allowed and only met the fixture's own row
                        # (a one-row-per-user table keyed by its owner).
                        allowed[cell] = True
                    except psycopg.Error as exc:
                        # Neither allowed nor denied: a constraint, trigger or quota stopped the probe.
                        error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
                        failed[cell] = error
                        notes.append(f"{FAILED} {cell.label()}: {error}")
    return allowed, failed, notes


def compute_matrix(
    dsn: str, model: AccessModel, *, authenticator_password: str = LOCAL_AUTHENTICATOR_PASSWORD
) -> AccessMatrix:
    """The matrix of the database `dsn`, whose role (e.g. postgres) writes and removes the fixture."""
    with psycopg.connect(dsn) as admin:
        fixture = create_fixture(admin, model)
        try:
            with connect_as_authenticator(dsn, authenticator_password) as api:
                allowed, failed, notes = probe_all(api, fixture)
        finally:
            delete_fixture(admin, fixture)
    labels = tuple(p.label for p in personas_for(model))
    return AccessMatrix(labels, model.table_names, allowed, failed, tuple(notes))


# --- a stack's settings from its config values ------------------------------------------------


def stack_settings_from_config(config: Mapping[str, str], *, project_dir: Path) -> StackSettings:
    """Settings from `pulumi config` values (all strings, objects as JSON), read as __main__.py reads them."""

    def text(key: str) -> str | None:
        return config.get(f"{NAMESPACE}:{key}")

    def flag(key: str) -> bool | None:
        value = text(key)
        return None if value is None else value.strip().lower() == "true"

    def data(key: str) -> Any:
        value = text(key)
        try:
            return None if value is None else json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{NAMESPACE}:{key}: not valid JSON: {exc}") from exc

    access = {
        "environment": text("environment"),
        "profile": text("profile"),
        "allowOpenProfileInProd": flag("allowOpenProfileInProd"),
        "model": data("model"),
        "modelFile": text("modelFile"),
        "forceRls": flag("forceRls") or False,
        "extraPolicies": data("extraPolicies"),
    }
    postgresql = {key: config.get(f"postgresql:{key}") for key in ("host", "port", "database", "username", "sslmode")}
    return parse_stack_settings(access, postgresql, project_dir=project_dir)
