"""The widening probe: proves on rows it makes itself that an extra policy gives nobody more than
the table's access kind does.

Inside one rolled-back transaction, as the login role (the tables' owner): the stack's policies
without the extra ones under test (the kind's own, the restrictive extras, and a generated policy an
entry replaces), the stack's grants, three users (A and B, permanent; S, an anonymous sign-in) and,
in every table of the model, a row owned by A and one owned by B. Each persona (A, B, S and anon)
then selects, inserts, updates and deletes A's and B's rows as PostgREST runs a request (`SET LOCAL
ROLE` and `request.jwt.claims`), once with those policies and once more with each extra permissive
policy added alone: a probe allowed with the extra policy and denied without it is a widening.
All probes of a round run in one statement (a function in pg_temp), so a round is one round trip.

PostgreSQL folds nothing here: `auth.uid() is not null`, `exists (select 1)` or `user_id = user_id`
are judged by what they let a persona do, not by their text.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from supabase_access.model.access_model import AccessModel
from supabase_access.model.policy import PolicySpec
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.fixture_rows import (
    AUTH_USERS,
    Fixture,
    ShapeError,
    creation_order,
    harmless_column,
    insert_statement,
    insert_user,
    read_shape,
)

# The roles an API request takes; the login role must be able to act as them.
PROBED_ROLES = ("anon", "authenticated")
OPERATIONS = ("select", "insert", "update", "delete")
# Owners of the probed rows; S, the anonymous sign-in, owns none.
OWNERS = ("A", "B")


@dataclass(frozen=True)
class ProbePersona:
    label: str
    role: str
    user: str | None = None
    is_anonymous: bool = False


PERSONAS = (
    ProbePersona("user A", "authenticated", "A"),
    ProbePersona("user B", "authenticated", "B"),
    ProbePersona("an anonymous sign-in", "authenticated", "S", is_anonymous=True),
    ProbePersona("anon (no JWT)", "anon"),
)
# Users of the membership rows: a guest of each owner's group, and a newcomer that inserts add.
GROUP_USERS = ("G_A", "G_B", "N")


@dataclass(frozen=True)
class Cell:
    persona: str
    table: str
    operation: str
    owner: str

    def describe(self) -> str:
        return f"{self.persona} may {self.operation} a row of user {self.owner} on {self.table}"


@dataclass
class WideningReport:
    # (table, policy) -> the probes its policy allows that the others deny.
    widened: dict[tuple[str, str], list[Cell]] = field(default_factory=dict)
    # Tables (or a table's operations) left unprobed, and why: each is a warning, never a pass.
    unprobed: dict[str, str] = field(default_factory=dict)
    # (table, policy) -> probes stopped by something other than a privilege or policy, with the error.
    inconclusive: dict[tuple[str, str], list[tuple[Cell, str]]] = field(default_factory=dict)
    # Rounds run (the baseline and one per policy), for the record.
    rounds: int = 0


def covered_operations(command: str) -> tuple[str, ...]:
    return OPERATIONS if command == "ALL" else (command.lower(),)


def probe_widening(
    conn: psycopg.Connection[TupleRow],
    model: AccessModel,
    base: Mapping[str, Mapping[str, PolicySpec]],
    candidates: Mapping[str, Mapping[str, PolicySpec]],
    grants: Mapping[str, Mapping[str, Sequence[str]]],
    prelude: Sequence[sql.Composed] = (),
    added: Mapping[str, Mapping[str, str]] | None = None,
) -> WideningReport:
    """Which of `candidates` (table -> permissive policies, each tried alone; one named like a `base`
    policy takes its place) let a persona reach rows `base` (table -> every policy of the model's
    tables without the candidates) does not; `grants` is table -> role -> privileges; `added` the
    columns the stack adds before its policies name them (owner copies: table -> column -> type)."""
    report = WideningReport()
    if not any(candidates.values()):
        return report
    schema = model.schema
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        cannot = _roles_not_assumable(cur)
        if cannot:
            reason = (
                f"the login role cannot act as {', '.join(cannot)} (`grant {', '.join(cannot)} to <login role>`), "
                "so the probe cannot run requests as the API does"
            )
            report.unprobed.update({table: reason for table in candidates if candidates[table]})
            return report
        fixture = _make_fixture(conn, cur, model, base, grants, prelude, added or {}, report)
        cur.execute(render.create_probe_function())
        probed = [t for t in candidates if candidates[t] and t not in report.unprobed]
        cells = {t: _cells(fixture, t, OPERATIONS, report) for t in probed}
        baseline = _run_round(conn, cur, schema, [p for t in probed for p in cells[t]])
        report.rounds += 1
        for table in probed:
            for name, policy in candidates[table].items():
                wanted = set(covered_operations(policy.command))
                round_cells = [p for p in cells[table] if p.cell.operation in wanted]
                with conn.transaction(force_rollback=True):
                    if name in base.get(table, {}):
                        cur.execute(render.drop_policy(schema, table, name))
                    cur.execute(render.create_policy(schema, table, policy))
                    outcomes = _run_round(conn, cur, schema, round_cells)
                report.rounds += 1
                for cell, outcome in outcomes.items():
                    before = baseline[cell]
                    if outcome is True and before is False:
                        report.widened.setdefault((table, name), []).append(cell)
                    elif (isinstance(outcome, str) and before is not True) or (
                        isinstance(before, str) and outcome is not False
                    ):
                        # Stopped by something else than a policy, with or without the extra one: unknown.
                        error = outcome if isinstance(outcome, str) else str(before)
                        report.inconclusive.setdefault((table, name), []).append((cell, error))
    return report


def _roles_not_assumable(cur: psycopg.Cursor[TupleRow]) -> list[str]:
    rows = cur.execute(
        "select r from unnest(%s::text[]) r where not exists (select from pg_roles where rolname = r) "
        "or not pg_has_role(current_user, r, 'MEMBER')",
        (list(PROBED_ROLES),),
    ).fetchall()
    return [row[0] for row in rows]


def _make_fixture(
    conn: psycopg.Connection[TupleRow],
    cur: psycopg.Cursor[TupleRow],
    model: AccessModel,
    base: Mapping[str, Mapping[str, PolicySpec]],
    grants: Mapping[str, Mapping[str, Sequence[str]]],
    prelude: Sequence[sql.Composed],
    added: Mapping[str, Mapping[str, str]],
    report: WideningReport,
) -> Fixture:
    """The stack's policies without the candidates, its grants, the users and A's and B's rows."""
    schema = model.schema
    shapes = {}
    for name in model.table_names:
        try:
            shapes[name] = read_shape(cur, schema, name)
        except ShapeError as exc:
            report.unprobed[name] = str(exc)
    fixture = Fixture(model, shapes, creation_order(model, shapes))
    existing = cur.execute(
        "select tablename, policyname from pg_policies where schemaname = %s and tablename = any(%s)",
        (schema, list(model.table_names)),
    ).fetchall()
    users = read_shape(cur, *AUTH_USERS)
    keys = ("A", "B", "S", *(GROUP_USERS if model.group_names else ()))
    added_types = catalog.resolve_added_types(conn, schema, added)
    with conn.pipeline():
        for statement in prelude:
            cur.execute(statement)
        # An owner copy not made yet: its column, for the policies that name it (left empty: its rows
        # are then nobody's, which can only make the extra policies look wider, never narrower).
        for table, columns in added_types.items():
            for column, kind in columns.items():
                cur.execute(render.add_column_if_missing(schema, table, column, kind))
        for table, name in existing:
            cur.execute(render.drop_policy(schema, table, name))
        for table in model.table_names:
            # The login role owns the tables: without FORCE, RLS does not filter the rows it writes.
            cur.execute(render.set_row_level_security(schema, table, enabled=True))
            cur.execute(render.set_force_row_level_security(schema, table, force=False))
            for policy in base.get(table, {}).values():
                cur.execute(render.create_policy(schema, table, policy))
            for role in PROBED_ROLES:
                cur.execute(render.revoke_all(role, schema, [table]))
            for role, privileges in grants.get(table, {}).items():
                if role in PROBED_ROLES and privileges:
                    cur.execute(render.grant(role, schema, [table], privileges))
    try:
        with conn.transaction(), conn.pipeline():
            for key in keys:
                fixture.user_ids[key] = uuid.uuid4()
                insert_user(cur, users, fixture.values, fixture.user_ids[key], is_anonymous=key == "S")
    except (ShapeError, psycopg.Error) as exc:
        reason = f"no probe user could be made in auth.users: {str(exc).splitlines()[0]}"
        report.unprobed.update({table: reason for table in model.table_names})
        return fixture
    for table in fixture.order:
        for owner in OWNERS:
            if table in report.unprobed:
                break
            try:
                with conn.transaction():
                    # Written as its owner would: a default of auth.uid() gives the owner.
                    cur.execute("select set_config('request.jwt.claims', %s, true)", (_claims(fixture, owner),))
                    fixture.insert_row(cur, table, owner)
            except KeyError:
                report.unprobed[table] = "a table its rows hang under could not be given probe rows"
            except (ShapeError, psycopg.Error) as exc:
                report.unprobed[table] = f"no probe row could be made: {str(exc).splitlines()[0]}"
    cur.execute("select set_config('request.jwt.claims', '', true)")
    return fixture


def _claims(fixture: Fixture, user: str | None, *, is_anonymous: bool = False) -> str:
    if user is None:
        return ""
    claims = {"sub": str(fixture.user_ids[user]), "role": "authenticated", "is_anonymous": is_anonymous}
    return json.dumps({**claims, "aud": "authenticated"}, separators=(",", ":"))


@dataclass(frozen=True)
class Probe:
    cell: Cell
    role: str
    claims: str
    statement: sql.Composable
    # A SELECT gives its count of rows; a write, the rows it changed.
    counts: bool


def _cells(fixture: Fixture, table: str, operations: Sequence[str], report: WideningReport) -> list[Probe]:
    """Every persona, operation and owner of one table, with the request that probes it."""
    schema = fixture.model.schema
    shape = fixture.shapes[table]
    probes: list[Probe] = []
    try:
        column: str | None = harmless_column(fixture.model.table(table), shape)
    except ShapeError as exc:
        column = None
        report.unprobed[f"{table} (update)"] = str(exc)
    member = "N" if fixture.model.table(table).membership is not None else None
    for persona in PERSONAS:
        for operation in operations:
            for owner in OWNERS:
                where = fixture.key_condition(table, owner)
                if operation == "select":
                    statement: sql.Composable = render.count_rows(schema, table, where)
                elif operation == "insert":
                    row = fixture.new_row(table, owner, as_user=persona.user is not None, member=member)
                    statement = insert_statement(shape, row)
                elif operation == "update":
                    if column is None:
                        continue
                    statement = render.update_to_itself(schema, table, column, where)
                else:
                    statement = render.delete_rows(schema, table, where)
                claims = _claims(fixture, persona.user, is_anonymous=persona.is_anonymous)
                cell = Cell(persona.label, table, operation, owner)
                probes.append(Probe(cell, persona.role, claims, statement, counts=operation == "select"))
    return probes


# Who may see a row is the SELECT policies' question: an UPDATE or DELETE whose WHERE names a column
# must see the row first, but one without a WHERE (PostgREST's PATCH or DELETE with no filter) is
# judged by the UPDATE and DELETE policies alone. Their probes therefore run with every row readable
# (this policy, in a savepoint), so that what they reach is what those policies give.
READ_ALL = PolicySpec("supabase_access_probe_read_all", "SELECT", PROBED_ROLES, using="true")


def _run_round(
    conn: psycopg.Connection[TupleRow], cur: psycopg.Cursor[TupleRow], schema: str, probes: Sequence[Probe]
) -> dict[Cell, bool | str]:
    reads = [p for p in probes if p.cell.operation in ("select", "insert")]
    writes = [p for p in probes if p.cell.operation not in ("select", "insert")]
    outcomes = _run(cur, reads)
    if writes:
        with conn.transaction(force_rollback=True):
            for table in dict.fromkeys(p.cell.table for p in writes):
                cur.execute(render.create_policy(schema, table, READ_ALL))
            outcomes |= _run(cur, writes)
    return outcomes


def _run(cur: psycopg.Cursor[TupleRow], probes: Sequence[Probe]) -> dict[Cell, bool | str]:
    """One round trip: True (rows reached), False (denied) or the error that stopped the probe."""
    if not probes:
        return {}
    payload = [
        {"role": p.role, "claims": p.claims, "statement": p.statement.as_string(cur), "counts": p.counts}
        for p in probes
    ]
    rows = cur.execute(render.run_probes(), (json.dumps(payload),)).fetchall()
    outcomes: dict[Cell, bool | str] = {}
    for index, outcome in rows:
        cell = probes[index].cell
        if outcome == "denied":
            outcomes[cell] = False
        elif outcome == "unique":
            # Privileges and WITH CHECK come before the unique index: the insert was let through and only
            # met a row already there (a one-row-per-user table keyed by its owner).
            outcomes[cell] = True if cell.operation == "insert" else "unique key met"
        elif outcome.startswith("failed: "):
            outcomes[cell] = outcome.removeprefix("failed: ")
        else:
            outcomes[cell] = int(outcome) > 0
    return outcomes
