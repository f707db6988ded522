"""What column rules cost an update, against the same statement without them.

    python -m bench.columns [--notes 20000 --updates 2000 --blocks 4]

Creates a database of its own from the template with the columns app (tests/fixtures/columns_app:
notes are `write: author` under an organisation, with column rules), its group functions and the
owner profile's policies on notes made as `up` makes them, and times a signed-in member's update of
one of their notes, exactly as PostgREST runs it (review.postgrest: `SET LOCAL ROLE authenticated`,
the JWT's claims, one committed transaction per request), in settings that alternate in blocks:

- "table-wide": SELECT, INSERT, UPDATE, DELETE on the whole table (no column rules);
- "column privileges": the privileges the model's readOnly/immutable/hidden leave, column by column
  (the statements the column Grants run), without the trigger;
- "column rules": those and the ImmutableColumns trigger, made by the provider's own resource;
- "without either": table-wide privileges and the notes as `write: members` (no author policies).

Prints the medians and p95 per setting and two ratios: column rules / table-wide (the author
policies in both), and column rules / without either (column rules and author policies against the
same statement without them). Target ≤ 1.2 each.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace

import psycopg
from psycopg import sql

from bench.common import (
    REPO,
    app_conninfo,
    format_table,
    machine_summary,
    median,
    p95,
    print_report,
    provider_database,
    ratio,
    scratch_database,
    write_figures,
)
from components.column_grants import narrowed
from review.postgrest import Persona, as_persona, connect_as_authenticator
from supabase_access.model.access_model import AccessModel, load_model_file
from supabase_access.model.policy import PolicySpec
from supabase_access.model.profiles import plan_access
from supabase_access.model.rule_data import group_lookup_to_plain
from supabase_access.provider.resources.group_functions import GroupFunctions
from supabase_access.provider.resources.immutable_columns import ImmutableColumns
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.rows import fetch_values

APP = REPO / "tests" / "fixtures" / "columns_app"
REFERENCE_TABLES = "sessions, segments, turns, actions, generated_content"
UPDATE = "update public.notes set body = %(body)s where id = %(id)s"
SETTINGS = ("table-wide", "column privileges", "column rules", "without either")
TARGET = 1.2


def models() -> tuple[AccessModel, AccessModel]:
    """The columns app's model, and the same with its notes as `write: members` (no author policies)."""
    model = load_model_file(APP / "access-model.yaml", setting="columns_app")
    members = AccessModel(
        model.schema,
        tuple(
            replace(t, write="members", author_column=None, delete=None) if t.name == "notes" else t
            for t in model.tables
        ),
    )
    return model, members


def notes_policies(model: AccessModel) -> tuple[PolicySpec, ...]:
    return render.plan_policies(plan_access(model, "owner"))["notes"]


def prepare(dbname: str, notes: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """The app, `notes` notes over 100 members of one organisation, its group functions and RLS with the
    model's policies (made as `up` makes them); the writer and its notes."""
    users = [uuid.uuid4() for _ in range(100)]
    with psycopg.connect(app_conninfo(dbname), autocommit=True) as conn, conn.transaction():
        conn.execute(f"drop table {REFERENCE_TABLES} cascade")
        conn.execute((APP / "schema.sql").read_text())
        with conn.cursor() as cur:
            cur.executemany("insert into auth.users (id) values (%s)", [(u,) for u in users])
            cur.execute("insert into orgs (owner_id, name) values (%s, 'O') returning id", (users[0],))
            (org,) = cur.fetchone() or (None,)
            cur.executemany("insert into org_members (org_id, user_id) values (%s, %s)", [(org, u) for u in users[1:]])
            cur.execute(
                "insert into notes (org_id, created_by, body) "
                "select %s, (%s::uuid[])[1 + i %% 100], 'note ' || i from generate_series(1, %s) i",
                (org, users, notes),
            )
        conn.execute("create index on notes (created_by)")
        conn.execute("analyze notes")
        conn.execute("analyze org_members")
    plan = plan_access(models()[0], "owner")
    db = provider_database(dbname)
    try:
        functions = GroupFunctions()
        for lookup in plan.group_lookups:
            inputs = {"schema": plan.schema, **group_lookup_to_plain(lookup)}
            functions.create(db, functions.check(db, {}, inputs), lambda _: None)
    finally:
        db.close()
    with psycopg.connect(app_conninfo(dbname), autocommit=True) as conn, conn.transaction():
        for statement in render.plan_table_statements(plan):
            conn.execute(statement)
        writer = users[1]
        mine = fetch_values(conn, "select id from notes where created_by = %s", (writer,))
    return writer, mine


class Settings:
    """Switches the notes' privileges, policies and the immutable trigger between the settings."""

    def __init__(self, dbname: str) -> None:
        self.dbname = dbname
        self.db = provider_database(dbname)
        self.resource = ImmutableColumns()
        self.state: dict[str, object] | None = None
        rules = load_model_file(APP / "access-model.yaml", setting="columns_app").table("notes").columns
        with psycopg.connect(app_conninfo(dbname)) as conn:
            columns = fetch_values(
                conn,
                "select attname from pg_attribute where attrelid = "
                "'public.notes'::regclass and attnum > 0 and not attisdropped",
            )
        crud = ("SELECT", "INSERT", "UPDATE", "DELETE")
        self.column_grants = [
            sql.SQL("grant {} ({}) on public.notes to authenticated").format(
                sql.SQL(privilege), sql.SQL(", ").join(sql.Identifier(c) for c in allowed)
            )
            for privilege, allowed in narrowed(crud, "authenticated", rules, columns).items()
        ]
        self.immutable = list(rules.immutable)
        author, members = models()
        self.policies = {"author": notes_policies(author), "members": notes_policies(members)}

    def apply(self, setting: str) -> None:
        with psycopg.connect(app_conninfo(self.dbname), autocommit=True) as conn, conn.transaction():
            # As TablePolicies applies a change: in the same transaction as the privileges.
            kind = "members" if setting == "without either" else "author"
            catalog.replace_policies(conn, "public", "notes", self.policies[kind])
            conn.execute("revoke all on public.notes from authenticated")
            if setting in ("table-wide", "without either"):
                conn.execute("grant select, insert, update, delete on public.notes to authenticated")
            else:
                conn.execute("grant delete on public.notes to authenticated")
                for statement in self.column_grants:
                    conn.execute(statement)
        if setting != "column rules" and self.state is not None:
            self.resource.delete(self.db, self.state, lambda _: None)
            self.state = None
        elif setting == "column rules" and self.state is None:
            inputs = self.resource.check(self.db, {}, {"schema": "public", "table": "notes", "columns": self.immutable})
            _, self.state = self.resource.create(self.db, inputs, lambda _: None)

    def close(self) -> None:
        if self.state is not None:
            self.resource.delete(self.db, self.state, lambda _: None)
        self.db.close()


def measure(
    dbname: str, settings: Settings, writer: uuid.UUID, mine: list[uuid.UUID], updates: int, blocks: int
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {s: [] for s in SETTINGS}
    persona = Persona.signed_in(writer, is_anonymous=False)
    per_block = max(1, updates // blocks)
    with connect_as_authenticator(app_conninfo(dbname)) as conn:
        for block in range(blocks):
            for setting in SETTINGS[block % len(SETTINGS) :] + SETTINGS[: block % len(SETTINGS)]:
                settings.apply(setting)
                for i in range(per_block):
                    note = mine[i % len(mine)]
                    start = time.perf_counter()
                    with as_persona(conn, persona, method="PATCH", commit=True) as cur:
                        cur.execute(UPDATE, {"body": f"edited {block} {i}", "id": note})
                        assert cur.rowcount == 1
                    times[setting].append(time.perf_counter() - start)
            print(f"block {block + 1}/{blocks} done", file=sys.stderr)
    return times


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.columns", description=__doc__.split("\n\n")[0])
    parser.add_argument("--notes", type=int, default=20000)
    parser.add_argument("--updates", type=int, default=2000, help="timed updates per setting")
    parser.add_argument("--blocks", type=int, default=4, help="rounds of the settings, each in turn")
    parser.add_argument("--keep", action="store_true", help="keep the generated database")
    args = parser.parse_args(argv)
    for name in ("notes", "updates", "blocks"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.notes < 100:
        parser.error("--notes must be at least 100 (one per user at least)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()
    with scratch_database("bench_columns", keep=args.keep) as dbname:
        writer, mine = prepare(dbname, args.notes)
        settings = Settings(dbname)
        try:
            times = measure(dbname, settings, writer, mine, args.updates, args.blocks)
        finally:
            settings.close()
        machine = machine_summary(app_conninfo(dbname))
        base, ruled = median(times["table-wide"]), median(times["column rules"])
        rows = [
            [
                setting,
                f"{median(times[setting]) * 1000:.3f}",
                f"{p95(times[setting]) * 1000:.3f}",
                str(len(times[setting])),
            ]
            for setting in SETTINGS
        ]
        table = format_table(["setting", "median ms", "p95 ms", "requests"], rows)
        privileges, plain = median(times["column privileges"]), median(times["without either"])
        table += (
            f"\n\ncolumn rules / table-wide: {ratio(ruled, base)} (target ≤ {TARGET}); "
            f"column privileges alone / table-wide: {ratio(privileges, base)}; "
            f"column rules and author policies / without either: {ratio(ruled, plain)} (target ≤ {TARGET})"
        )
        write_figures(
            {
                "update a note": {
                    "column rules/table-wide": ratio(ruled, base),
                    "rules and authors/without": ratio(ruled, plain),
                }
            },
            ["column rules/table-wide", "rules and authors/without"],
            conninfo=app_conninfo(dbname),
            load_before=load_before,
        )
    title = (
        f"bench.columns: a signed-in user's update of their note ({args.notes:,} notes), "
        f"{args.updates:,} updates per setting in {args.blocks} blocks"
    )
    notes = [f"statement: {UPDATE}", f"load average before: {', '.join(f'{x:.2f}' for x in load_before)}"]
    met = base > 0 and plain > 0 and ruled / base <= TARGET and ruled / plain <= TARGET
    print_report(title, machine, table, met, notes=notes, targets="both targets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
