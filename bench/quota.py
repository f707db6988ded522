"""What a per-user write quota costs the app's inserts: throughput with and without the WriteQuota trigger.

    python -m bench.quota [--users 1000 --turns-per-user 100 --inserts 2000 --blocks 4]

Creates a database of its own from `supabase_template_legacy`, applies the owner profile's policies,
fills it with users, sessions and turns, and then inserts turns as signed-in users exactly as
PostgREST does (one committed transaction per request), alternately without and with the quota.
The quota is created and deleted by the provider's own WriteQuota resource
(supabase_access.provider.resources.write_quota): usage table, function and trigger; no index. Each "with"
block starts on a new, empty usage table: first every user of the block inserts once, untimed
by the target (a user's first insert ever, which creates their usage row, timed as a row of its
own), then the timed inserts, which count in existing rows as nearly every insert does on a
live project (a user's row lives on across windows). Issue 16's target: the trigger adds at
most 10%.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, LiteralString

import psycopg
from psycopg.types.numeric import Int4

from bench.common import (
    REPO,
    ProgressBar,
    admin_conninfo,
    app_conninfo,
    format_table,
    machine_summary,
    median,
    p95,
    print_report,
    provider_database,
    scratch_database,
)
from review.postgrest import Persona, as_persona, connect_as_authenticator
from supabase_access.model.access_model import AccessModel, load_model_file
from supabase_access.model.profiles import plan_access
from supabase_access.sql import catalog
from supabase_access.sql import statements as render

MAX_OVERHEAD = 0.10  # issue 6: the trigger adds at most 10%
# Existing turns, spread over twice the window (the quota no longer reads them; the table's size stays realistic).
GENERATE: tuple[tuple[str, LiteralString], ...] = (
    (
        "auth.users",
        "insert into auth.users (id, is_anonymous)"
        " select md5('u' || n)::uuid, true from generate_series(1, %(users)s) n",
    ),
    (
        "sessions",
        "insert into public.sessions (id, user_id, title)"
        " select md5('s' || n)::uuid, md5('u' || ((n - 1) %% %(users)s + 1))::uuid, 'Session ' || n"
        " from generate_series(1, %(sessions)s) n",
    ),
    (
        "turns",
        "insert into public.turns (session_id, speaker, content, created_at)"
        " select md5('s' || ((n - 1) %% %(sessions)s + 1))::uuid, 'user', 'Turn ' || n,"
        " now() - random() * make_interval(secs => 2 * %(window_seconds)s)"
        " from generate_series(1, %(turns)s) n",
    ),
)
INSERT_TURN: LiteralString = "insert into turns (session_id, speaker, content) values (%s, 'user', 'a new turn')"


@dataclass
class Phase:
    """The inserts timed in one setting (with or without the quota)."""

    seconds: list[float] = field(default_factory=list)
    wall: float = 0.0
    # The server process's CPU time over the phase (Linux, local cluster), when it can be read.
    backend_cpu: float = 0.0
    # Per block: (wall seconds, inserts), to pair each block with its neighbour of the other setting.
    blocks: list[tuple[float, int]] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return len(self.seconds) / self.wall if self.wall else 0.0


def load_write_quota() -> Any | None:
    """The provider's WriteQuota resource, or None when this checkout does not have it yet."""
    try:
        from supabase_access.provider.resources.write_quota import WriteQuota
    except ImportError:
        return None
    return WriteQuota


def quota_inputs(model: AccessModel, table: str, limit: int, window: str) -> dict[str, Any]:
    """The WriteQuota inputs the program would register for `supabase-access:writeQuotas` (see components)."""
    from supabase_access.model import hardening

    (target,) = hardening.write_quota_targets(model, [hardening.WriteQuotaSetting(table, limit, window)])
    return {**target.to_plain(), "privateSchema": hardening.PRIVATE_SCHEMA}


class QuotaSwitch:
    """Creates and deletes the quota through the provider resource, exactly as `pulumi up`/`destroy` would."""

    def __init__(self, resource_class: Any, dbname: str, inputs: dict[str, Any]) -> None:
        self.db = provider_database(dbname)
        self.resource = resource_class()
        self.inputs = self.resource.check(self.db, {}, inputs)
        self.state: dict[str, Any] | None = None
        self.messages: list[str] = []

    def on(self) -> None:
        if self.state is None:
            _, self.state = self.resource.create(self.db, self.inputs, self.messages.append)

    def off(self) -> None:
        if self.state is not None:
            self.resource.delete(self.db, self.state, self.messages.append)
            self.state = None

    def close(self) -> None:
        self.off()
        self.db.close()


def prepare_database(dbname: str, model: AccessModel, args: argparse.Namespace) -> None:
    sessions = args.users * args.sessions_per_user
    params = {
        "users": args.users,
        "sessions": sessions,
        "turns": args.users * args.turns_per_user,
        "window_seconds": window_seconds(args.window),
    }
    progress = ProgressBar(len(GENERATE) + 1, "data")
    with psycopg.connect(admin_conninfo(dbname), autocommit=True) as admin:
        admin.execute("set session_replication_role = replica")  # consistent by construction: no FK triggers
        for table, statement in GENERATE:
            admin.execute(statement, {k: Int4(v) for k, v in params.items()})
            progress.advance(1, table)
            progress.note(table)
        admin.execute("reset session_replication_role")
        admin.execute("vacuum analyze auth.users, public.sessions, public.turns")
    # The owner profile, applied with supabase_access's own rendering, as on a prod stack.
    plan = plan_access(model, "owner")
    with psycopg.connect(app_conninfo(dbname), autocommit=True) as conn, conn.transaction():
        for table, specs in render.plan_policies(plan).items():
            conn.execute(render.set_row_level_security(plan.schema, table, enabled=True))
            catalog.replace_policies(conn, plan.schema, table, specs)
    progress.advance(1, "owner policies")
    progress.finish()


def window_seconds(window: str) -> int:
    from supabase_access.model import hardening

    return hardening.QUOTA_WINDOWS[window][1]


def pick_writers(dbname: str, count: int) -> list[tuple[Any, Any]]:
    """(user, one of their sessions) pairs, every user in turn, so no user nears the limit."""
    with psycopg.connect(admin_conninfo(dbname)) as admin:
        rows = admin.execute(
            "select distinct on (user_id) user_id, id from sessions order by user_id, id limit %s", (count,)
        ).fetchall()
    return [(user, session) for user, session in rows]


def backend_cpu_seconds(pid: int) -> float | None:
    """CPU time the server process of a connection has used (Linux /proc; the cluster is local), or None."""
    try:
        with open(f"/proc/{pid}/schedstat") as stat:
            return int(stat.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def insert_block(
    conn: psycopg.Connection[Any], writers: Sequence[tuple[Any, Any]], start: int, count: int, backend_pid: int = 0
) -> Phase:
    """`count` inserts, each one PostgREST request (its own committed transaction); the clock covers all of it."""
    phase = Phase()
    cpu_before = backend_cpu_seconds(backend_pid) if backend_pid else None
    began = time.perf_counter()
    for index in range(start, start + count):
        user, session = writers[index % len(writers)]
        started = time.perf_counter()
        with as_persona(conn, Persona.signed_in(user, is_anonymous=True), method="POST", commit=True) as cur:
            cur.execute(INSERT_TURN, (session,))
        phase.seconds.append(time.perf_counter() - started)
    phase.wall = time.perf_counter() - began
    cpu_after = backend_cpu_seconds(backend_pid) if backend_pid else None
    if cpu_before is not None and cpu_after is not None:
        phase.backend_cpu = cpu_after - cpu_before
    phase.blocks.append((phase.wall, count))
    return phase


def add_phase(total: Phase, phase: Phase) -> None:
    total.seconds += phase.seconds
    total.wall += phase.wall
    total.backend_cpu += phase.backend_cpu
    total.blocks += phase.blocks


FIRST_INSERTS = "with quota, a user's first insert"


def measure(
    dbname: str, switch: QuotaSwitch, writers: Sequence[tuple[Any, Any]], *, inserts: int, blocks: int
) -> dict[str, Phase]:
    """Blocks alternate without/with the quota (starting with each in turn), so drift hits both alike."""
    totals = {"without quota": Phase(), "with quota": Phase(), FIRST_INSERTS: Phase()}
    per_block = max(1, inserts // blocks)
    progress = ProgressBar(blocks * 2, "inserts")
    done = 0
    with connect_as_authenticator(app_conninfo(dbname)) as conn:
        backend_pid = conn.info.backend_pid
        # Warm-up: caches and prepared statements, in both settings.
        for setting in (switch.on, switch.off):
            setting()
            insert_block(conn, writers, done, min(50, per_block))
            done += min(50, per_block)
        for block in range(blocks):
            order: list[tuple[str, Callable[[], None]]] = [("without quota", switch.off), ("with quota", switch.on)]
            for name, setting in order if block % 2 == 0 else reversed(order):
                setting()
                if name == "with quota":
                    # The block's users' first inserts (a new usage row each), before the timed ones.
                    first = min(per_block, len(writers))
                    add_phase(totals[FIRST_INSERTS], insert_block(conn, writers, done, first, backend_pid))
                    done += first
                    # The timed block starts where the first inserts began: the same users, now with a row.
                    done -= first
                add_phase(totals[name], insert_block(conn, writers, done, per_block, backend_pid))
                done += per_block
                progress.advance(1, f"block {block + 1}/{blocks}: {name}")
    switch.off()
    progress.finish()
    return totals


def paired_overhead(without: Phase, with_quota: Phase) -> float:
    """Median over block pairs (each "with" block and the "without" block next to it) of the time added."""
    ratios = [
        (w_wall / w_count) / (o_wall / o_count) - 1
        for (o_wall, o_count), (w_wall, w_count) in zip(without.blocks, with_quota.blocks, strict=False)
        if o_wall and w_count
    ]
    return median(ratios) if ratios else float("nan")


def report(totals: dict[str, Phase]) -> tuple[str, bool]:
    without, with_quota = totals["without quota"], totals["with quota"]
    overhead = without.throughput / with_quota.throughput - 1 if with_quota.throughput else float("inf")
    rows = [
        [
            name,
            str(len(phase.seconds)),
            f"{phase.throughput:.0f}",
            f"{median(phase.seconds) * 1000:.3f}",
            f"{p95(phase.seconds) * 1000:.3f}",
            f"{phase.backend_cpu / len(phase.seconds) * 1e6:.0f}" if phase.backend_cpu else "-",
        ]
        for name, phase in totals.items()
        if phase.seconds
    ]
    met = overhead <= MAX_OVERHEAD
    table = format_table(["setting", "inserts", "inserts/s", "median ms", "p95 ms", "server CPU µs/insert"], rows)
    table += (
        f"\n\nthroughput ratio with/without: {with_quota.throughput / without.throughput:.3f}; "
        f"time added per insert: {overhead * 100:.1f}% (target <= {MAX_OVERHEAD * 100:.0f}%: "
        f"{'met' if met else 'MISSED'}); median of block pairs: {paired_overhead(without, with_quota) * 100:.1f}%"
    )
    if without.backend_cpu and with_quota.backend_cpu:
        cpu_added = (with_quota.backend_cpu / len(with_quota.seconds)) / (without.backend_cpu / len(without.seconds))
        table += f"; server CPU added per insert: {(cpu_added - 1) * 100:.1f}%"
    return table, met


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.quota", description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--sessions-per-user", type=int, default=10)
    parser.add_argument("--turns-per-user", type=int, default=100, help="existing turns, spread over two windows")
    parser.add_argument("--table", default="turns", help="the table under the quota (and inserted into)")
    parser.add_argument("--limit", type=int, default=500, help="the quota: new rows per user per window")
    parser.add_argument("--window", default="perHour", choices=("perMinute", "perHour", "perDay"))
    parser.add_argument("--inserts", type=int, default=4000, help="timed inserts per setting")
    parser.add_argument("--blocks", type=int, default=4, help="alternations of the two settings")
    parser.add_argument("--keep", action="store_true", help="keep the generated database")
    args = parser.parse_args(argv)
    for name in ("users", "sessions_per_user", "turns_per_user", "limit", "inserts", "blocks"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.table != "turns":
        parser.error("--table: only turns is benchmarked (its inserts are the app's most frequent writes)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    write_quota = load_write_quota()
    if write_quota is None:
        print(
            "bench.quota: SKIPPED: supabase_access.provider.resources.write_quota (the WriteQuota resource) "
            "is not in this checkout yet; nothing was measured."
        )
        return 0
    model = load_model_file(REPO / "access-model.yaml", setting="supabase-access:modelFile")
    with scratch_database("bench_quota", keep=args.keep) as dbname:
        prepare_database(dbname, model, args)
        switch = QuotaSwitch(write_quota, dbname, quota_inputs(model, args.table, args.limit, args.window))
        try:
            writers = pick_writers(dbname, args.users)
            # Every user inserts about the same number of rows; they must stay under the limit.
            per_user = -(-(args.inserts * 3 + 100) // len(writers))
            if per_user >= args.limit:
                raise SystemExit(f"bench.quota: {per_user} inserts per user would hit the limit; raise --users")
            totals = measure(dbname, switch, writers, inserts=args.inserts, blocks=args.blocks)
            machine = machine_summary(app_conninfo(dbname))
        finally:
            switch.close()
    table, met = report(totals)
    title = (
        f"bench.quota: {args.users:,} users, {args.sessions_per_user} sessions and {args.turns_per_user} turns "
        f"each; quota {args.limit} {args.table} per user {args.window}; {args.inserts:,} inserts per setting in "
        f"{args.blocks} blocks"
    )
    notes = [f"WriteQuota: {message}" for message in dict.fromkeys(switch.messages)]
    print_report(title, machine, table, met, notes=notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
