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
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

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
from review.realtime import WHOSE as REALTIME_WHOSE
from review.realtime import ChannelAccess, RealtimeSection, join_channel, published_tables
from supabase_access.model.access_model import AccessModel, Channel, RealtimeModel
from supabase_access.sql.fixture_rows import (
    Fixture,
    ShapeError,
    TableShape,
    creation_order,
    harmless_column,
    insert_statement,
    insert_user,
    read_shape,
)
from supabase_access.sql.rows import fetch_value

OPERATIONS = ("select", "insert", "update", "delete")
WHOSE = ("own", "other")
# The PostgREST request method of each operation (GET runs read-only, as in PostgREST).
METHODS = {"select": "GET", "insert": "POST", "update": "PATCH", "delete": "DELETE"}
ALLOWED, DENIED, FAILED = "✓", "✗", "!"
AUTH_SCHEMA, AUTH_USERS = "auth", "users"


# The matrix cannot be computed (a schema the fixture cannot satisfy, unexpected error).
MatrixError = ShapeError


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
# Column headings of the compact form.
SHORT_LABELS = {
    "authenticated (anonymous A)": "A",
    "authenticated (anonymous B)": "B",
    "authenticated (permanent)": "P",
    "authenticated (member of A's groups)": "member",
    "authenticated (admin of A's groups)": "admin",
    "service_role": "service",
}
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
    # Channels and published tables, when the model has `realtime:`.
    realtime: RealtimeSection | None = None
    # One line per table with column rules (the cells probe rows; these say what no role but the server may do
    # to single columns).
    column_rules: tuple[str, ...] = ()

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
            persona, *_ = row
            if number > 1 and persona:
                lines.append("")  # a blank line between personas
            lines.append("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())
        legend = f"{ALLOWED} allowed  {DENIED} denied" + (f"  {FAILED} probe failed (see below)" if self.failed else "")
        legend += "  * changed" if marked else ""
        section = ["", self.realtime.render_text()] if self.realtime else []
        return "\n".join([*lines, "", legend, self.convention, *self._column_rule_lines(), *section])

    def _column_rule_lines(self) -> list[str]:
        if not self.column_rules:
            return []
        return ["", "Column rules (anon and authenticated; PostgREST needs select= of the allowed columns):"] + [
            f"  {line}" for line in self.column_rules
        ]

    def render_compact(self) -> str:
        """One line per table, one column per persona, each cell its eight probes in the full table's
        order (select own, select other, insert own, ...): fits a screen for ten tables."""
        personas = [(label, SHORT_LABELS.get(label, label)) for label in self.personas]
        header = ["table", *(short for _, short in personas)]
        rows = [header] + [
            [
                table,
                *(
                    "".join(
                        self.symbol(Cell(label, table, op, whose)) for op, whose in itertools.product(OPERATIONS, WHOSE)
                    )
                    for label, _ in personas
                ),
            ]
            for table in self.tables
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = [
            "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip() for row in rows
        ]
        legend = f"each cell: select, insert, update, delete, own then other; {ALLOWED} allowed  {DENIED} denied"
        legend += f"  {FAILED} probe failed (see below)" if self.failed else ""
        section = [self.realtime.render_text()] if self.realtime else []
        return "\n".join([*lines, legend, f"A, B: anonymous sign-ins; P: permanent; {self.convention}", *section])

    def render_markdown(self, marked: Collection[Cell] = ()) -> str:
        """A Markdown table (PR comments, job summaries); changed cells in `marked` are bold."""
        header = ["persona", "table", *(f"{op} {whose}" for op, whose in itertools.product(OPERATIONS, WHOSE))]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in self._rows(marked, "**{} (changed)**")]
        failed = f", {FAILED} probe failed for another reason (see the notes)" if self.failed else ""
        legend = f"{ALLOWED} allowed, {DENIED} denied{failed}. {self.convention}."
        section = ["", self.realtime.render_markdown()] if self.realtime else []
        return "\n".join([*lines, "", legend, *self._column_rule_lines(), *section])


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


def _rls_needs_bypass(cur: psycopg.Cursor[TupleRow], shapes: Collection[TableShape]) -> bool:
    """True when FORCE ROW LEVEL SECURITY would stop the connecting role from writing the fixture."""
    needs_bypass = fetch_value(
        cur.connection,
        "select exists (select from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        "  where (n.nspname, c.relname) in (select * from unnest(%s::text[], %s::text[])) and c.relforcerowsecurity)"
        " and not (select rolsuper or rolbypassrls from pg_roles where rolname = current_user)",
        ([s.schema for s in shapes], [s.name for s in shapes]),
    )
    return bool(needs_bypass)


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
        for user in fixture_users(model):
            user_id = uuid.uuid4()
            insert_user(cur, users, fixture.values, user_id, is_anonymous=user.is_anonymous)
            fixture.user_ids[user.key] = user_id
        _bypass_rls_if_forced(cur, fixture)
        for table_name in fixture.order:
            for user in FIXTURE_USERS:
                # Written as its owner would write it: defaults such as auth.uid() give the owner.
                claims = Persona.signed_in(fixture.user_ids[user.key], is_anonymous=user.is_anonymous)
                cur.execute("select set_config('request.jwt.claims', %s, true)", (claims.claims_setting(),))
                fixture.insert_row(cur, table_name, user.key)
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
    fixture: Fixture, table_name: str, operation: str, owner: str, *, as_user: bool = True, own: bool = False
) -> sql.Composed:
    shape = fixture.shapes[table_name]
    if operation == "insert":
        # Into a membership table: a newcomer joins the owner's group.
        member = "N" if fixture.model.table(table_name).membership is not None else None
        row = fixture.new_row(table_name, owner, as_user=as_user, member=member, by_owner=own and as_user)
        return insert_statement(shape, row)
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
                    statement = probe_statement(
                        fixture, table_name, operation, owner, as_user=spec.user is not None, own=whose == "own"
                    )
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
                realtime = realtime_section(api, fixture, allowed) if model.realtime != RealtimeModel() else None
        finally:
            delete_fixture(admin, fixture)
    labels = tuple(p.label for p in personas_for(model))
    return AccessMatrix(labels, model.table_names, allowed, failed, tuple(notes), realtime, column_rule_lines(model))


def _topic(fixture: Fixture, channel: Channel, spec: ProbePersona, whose: str) -> str:
    """The persona's own topic of a channel pattern (its group's or user's id), or another's."""
    if not channel.has_id:
        return channel.prefix
    user = spec.own if whose == "own" else spec.other
    membership = fixture.model.membership_of(channel.group) if channel.group else None
    if channel.group and membership is not None and membership.membership is not None:
        return f"{channel.prefix}{fixture.rows[(user, channel.group)][membership.membership.key]}"
    return f"{channel.prefix}{fixture.user_ids[user]}"


def realtime_section(api: psycopg.Connection, fixture: Fixture, allowed: Mapping[Cell, bool]) -> RealtimeSection:
    """Joins as Realtime authorizes them, on the authenticator connection `api` (see join_channel); a
    published table's changes reach whom its select cells admit (Realtime selects the row as the
    subscriber's role)."""
    model = fixture.model
    specs = personas_for(model)
    joins: dict[tuple[str, str, str], ChannelAccess] = {}
    for spec in specs:
        persona = persona_of(spec, fixture)
        for channel, whose in itertools.product(model.realtime.channels, REALTIME_WHOSE):
            joins[(spec.label, channel.pattern, whose)] = join_channel(
                api, persona, _topic(fixture, channel, spec, whose)
            )
    live = published_tables(api)
    published = tuple(t for t in model.table_names if (model.schema, t) in live)
    changes = {
        (spec.label, table, whose): allowed.get(Cell(spec.label, table, "select", whose), False)
        for spec in specs
        for table in published
        for whose in REALTIME_WHOSE
    }
    return RealtimeSection(
        tuple(s.label for s in specs), tuple(c.pattern for c in model.realtime.channels), joins, published, changes
    )


def column_rule_lines(model: AccessModel) -> tuple[str, ...]:
    """One line per table with column rules: `notes: readOnly created_by; immutable org_id; hidden from
    authenticated: internal_note`."""
    lines = []
    for table in model.tables:
        rules = table.columns
        parts = [f"readOnly {', '.join(rules.read_only)}"] if rules.read_only else []
        parts += [f"immutable {', '.join(rules.immutable)}"] if rules.immutable else []
        parts += [f"hidden from {role}: {', '.join(columns)}" for role, columns in rules.hidden]
        if parts:
            lines.append(f"{table.name}: {'; '.join(parts)}")
    return tuple(lines)
