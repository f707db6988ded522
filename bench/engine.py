"""How long the Pulumi engine takes over this program: no-change preview and first up, 5 tables and 50.

    python -m bench.engine [--tables 50 --repeat 2 --previews 3]

Sets the stacks up through the Automation API (as tests/support/engine.py does) and times the
real `pulumi` CLI and provider plugin, each stack on a throwaway database cloned from
`supabase_template_legacy` and a file backend in a temporary folder, with the local stack's settings
(environment dev, profile open):

- 5 tables: the reference app, model from access-model.yaml;
- N tables (default 50): the app's five tables plus copies of the same shape (sessions_2,
  segments_2, ...) created in the throwaway database, model given inline in
  `supabase-access:model`;
- an empty Pulumi program (a throwaway project whose __main__.py declares nothing), the floor.

Issue 6's targets: a no-change preview of the 5-table stack within 2x the empty program's; the
N-table first `up` within 3x the 5-table one.

`--state-writes` shows where a first up's time goes: each round also times the first up of a fresh
5- and N-table stack with PULUMI_SKIP_CHECKPOINTS=true, the engine writing the state once at the end
instead of twice per resource (a file backend rewrites the whole state file each time, so a first up
of n resources writes O(n^2) bytes). A diagnosis only: an interrupted run of that kind loses what it did.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from pulumi import automation as auto

from bench.common import (
    REPO,
    app_conninfo,
    format_table,
    machine_summary,
    median,
    print_report,
    scratch_database,
    write_figures,
)
from tests.support.engine import engine_env, new_stack

PREVIEW_OVER_EMPTY_MAX = 2.0
UP_50_OVER_5_MAX = 3.0
# The local stack's settings (Pulumi.local.yaml), without its encrypted password.
LOCAL_STACK = {"supabase-access:environment": "dev", "supabase-access:profile": "open"}
APP_TABLES = ("sessions", "segments", "turns", "actions", "generated_content")


def use_toolchain() -> None:
    """Put the CLI, our plugins and the .venv first on PATH, as scripts/env.sh does, unless it is sourced."""
    bin_dir_file = REPO / ".venv" / ".pulumi-bin-dir"
    extra = [str(REPO / "bin"), str(REPO / ".venv" / "bin")]
    if bin_dir_file.exists():
        extra.insert(1, bin_dir_file.read_text().strip())
    os.environ["PATH"] = os.pathsep.join([*extra, os.environ.get("PATH", "")])
    os.environ.setdefault("PULUMI_SKIP_UPDATE_CHECK", "true")
    os.environ.setdefault("PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION", "true")


# --- the N-table shape -----------------------------------------------------------------------


def copy_suffixes(tables: int) -> list[str]:
    """Suffixes of the app copies beyond the original five tables ('' is the original)."""
    if tables % len(APP_TABLES):
        raise SystemExit(f"bench.engine: --tables must be a multiple of {len(APP_TABLES)}")
    return [f"_{k}" for k in range(2, tables // len(APP_TABLES) + 1)]


COPY_STATEMENTS: tuple[sql.SQL, ...] = (
    sql.SQL(
        "create table {sessions} (id uuid primary key default gen_random_uuid(), user_id uuid not null,"
        " title text, created_at timestamptz not null default now(),"
        " constraint {fkey} foreign key (user_id) references auth.users (id) on delete cascade)"
    ),
    sql.SQL(
        "create table {segments} (id uuid primary key default gen_random_uuid(),"
        " session_id uuid not null references {sessions} on delete cascade, position int not null,"
        " title text, created_at timestamptz not null default now())"
    ),
    sql.SQL(
        "create table {turns} (id uuid primary key default gen_random_uuid(),"
        " session_id uuid not null references {sessions} on delete cascade,"
        " segment_id uuid references {segments} on delete set null, speaker text not null,"
        " content text, created_at timestamptz not null default now())"
    ),
    sql.SQL(
        "create table {actions} (id uuid primary key default gen_random_uuid(),"
        " turn_id uuid not null references {turns} on delete cascade, kind text not null,"
        " payload jsonb, created_at timestamptz not null default now())"
    ),
    sql.SQL(
        "create table {generated_content} (id uuid primary key default gen_random_uuid(),"
        " session_id uuid not null references {sessions} on delete cascade, kind text not null,"
        " body text, created_at timestamptz not null default now())"
    ),
    sql.SQL("create index on {sessions} (user_id)"),
    sql.SQL("create index on {segments} (session_id)"),
    sql.SQL("create index on {turns} (session_id)"),
    sql.SQL("create index on {turns} (segment_id)"),
    sql.SQL("create index on {actions} (turn_id)"),
    sql.SQL("create index on {generated_content} (session_id)"),
)


def create_copies(dsn: str, suffixes: Sequence[str]) -> None:
    """The app's five tables again under suffixed names, with the same columns, keys, FKs and indexes."""

    def ident(name: str, suffix: str) -> sql.Identifier:
        return sql.Identifier(name + suffix)

    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        for suffix in suffixes:
            names = {t: ident(t, suffix) for t in APP_TABLES} | {"fkey": ident("sessions", suffix + "_user_id_fkey")}
            for statement in COPY_STATEMENTS:
                conn.execute(statement.format(**names))
            for table in APP_TABLES:
                # RLS on and no policy: how the baseline leaves a table before the stack runs.
                conn.execute(sql.SQL("alter table {} enable row level security").format(names[table]))


def inline_model(suffixes: Sequence[str]) -> dict[str, Any]:
    """access-model.yaml's ownership, repeated for every copy."""
    tables: dict[str, Any] = {}
    for s in ["", *suffixes]:
        tables[f"sessions{s}"] = {"owner": "user_id", "userForeignKey": f"sessions{s}_user_id_fkey"}
        tables[f"segments{s}"] = {"through": {"column": "session_id", "table": f"sessions{s}"}}
        tables[f"turns{s}"] = {"through": {"column": "session_id", "table": f"sessions{s}"}}
        tables[f"actions{s}"] = {"through": {"column": "turn_id", "table": f"turns{s}"}}
        tables[f"generated_content{s}"] = {"through": {"column": "session_id", "table": f"sessions{s}"}}
    return {"schema": "public", "tables": tables}


# --- the empty program -----------------------------------------------------------------------


def empty_stack(work_dir: Path) -> auto.Stack:
    """A throwaway project whose program declares nothing: the engine's and language host's own cost."""
    work_dir.mkdir(parents=True)
    (work_dir / "state").mkdir()
    # The same runtime options as the project's stacks (tests/support/engine.py), so only the program differs.
    (work_dir / "Pulumi.yaml").write_text(
        "name: bench-empty\n"
        f"runtime:\n  name: python\n  options:\n    toolchain: pip\n    virtualenv: {REPO / '.venv'}\n"
    )
    (work_dir / "__main__.py").write_text('"""An empty Pulumi program."""\n\nimport pulumi  # noqa: F401\n')
    workspace = auto.LocalWorkspace(work_dir=str(work_dir), env_vars=engine_env(work_dir / "state"))
    return auto.Stack.create("bench", workspace)


# --- measuring -------------------------------------------------------------------------------


@dataclass
class Figures:
    up: list[float] = field(default_factory=list)
    preview: list[float] = field(default_factory=list)
    # What a no-change preview reported anyway (it should report nothing).
    drift: list[str] = field(default_factory=list)


# The engine's own switch: the state is written once, when the run ends, not around every resource step.
ONE_STATE_WRITE = {"PULUMI_SKIP_CHECKPOINTS": "true"}
ONE_STATE_WRITE_LABEL = ", state written once"


def pulumi(
    stack: auto.Stack, *args: str, extra_env: dict[str, str] | None = None
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Time one `pulumi` command on the stack, run as a user runs it (the CLI itself, not the
    Automation API, whose event-log reader polls every 0.1 s and parses each event in this process)."""
    workspace = stack.workspace
    assert isinstance(workspace, auto.LocalWorkspace) and workspace.work_dir
    command = ["pulumi", *args, "--stack", stack.name, "--non-interactive"]
    env = {**os.environ, **(workspace.env_vars or {}), **(extra_env or {})}
    started = time.perf_counter()
    result = subprocess.run(command, cwd=workspace.work_dir, env=env, capture_output=True, text=True, check=False)
    return time.perf_counter() - started, result


def first_up(stack: auto.Stack, figures: Figures, label: str) -> None:
    print(f"bench.engine: {label}: pulumi up", file=sys.stderr)
    extra_env = ONE_STATE_WRITE if label.endswith(ONE_STATE_WRITE_LABEL) else None
    seconds, result = pulumi(stack, "up", "--yes", "--skip-preview", extra_env=extra_env)
    if result.returncode != 0:
        raise SystemExit(f"bench.engine: {label}: pulumi up failed:\n{result.stdout}\n{result.stderr}")
    figures.up.append(seconds)


def no_change_preview(stack: auto.Stack, figures: Figures, label: str) -> None:
    print(f"bench.engine: {label}: pulumi preview", file=sys.stderr)
    seconds, result = pulumi(stack, "preview", "--expect-no-changes")
    if result.returncode != 0:
        if "no changes were expected" not in result.stdout + result.stderr:
            raise SystemExit(f"bench.engine: {label}: pulumi preview failed:\n{result.stdout}\n{result.stderr}")
        figures.drift.append(result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "changes")
    figures.preview.append(seconds)


def app_stacks(work: Path, name: str, tables: int, databases: contextlib.ExitStack) -> dict[str, auto.Stack]:
    """A 5-table and an N-table stack, each on a fresh database."""
    five_db = databases.enter_context(scratch_database("bench_engine"))
    many_db = databases.enter_context(scratch_database("bench_engine"))
    suffixes = copy_suffixes(tables)
    create_copies(app_conninfo(many_db), suffixes)
    many_config = {**LOCAL_STACK, "supabase-access:model": json.dumps(inline_model(suffixes))}
    return {
        "5 tables": new_stack(work / f"five-{name}", "local", app_conninfo(five_db), LOCAL_STACK),
        f"{tables} tables": new_stack(work / f"many-{name}", "local", app_conninfo(many_db), many_config),
    }


def run_round(
    work: Path, round_index: int, tables: int, previews: int, results: dict[str, Figures], state_writes: bool
) -> None:
    """Fresh stacks and databases; the first ups in turn, then the previews in turn, one of each program
    after the other, so the ratios compare runs made at the same moments on a machine whose speed drifts.
    With `state_writes`, the first ups of two more app stacks follow, the state written once."""
    with contextlib.ExitStack() as databases:
        stacks = {
            "empty program": empty_stack(work / f"empty-{round_index}"),
            **app_stacks(work, str(round_index), tables, databases),
        }
        once = app_stacks(work, f"once-{round_index}", tables, databases) if state_writes else {}
        for label, stack in stacks.items():
            first_up(stack, results[label], label)
        for label, stack in once.items():
            first_up(stack, results[label + ONE_STATE_WRITE_LABEL], label + ONE_STATE_WRITE_LABEL)
        for _ in range(previews):
            for label, stack in stacks.items():
                no_change_preview(stack, results[label], label)


def report(results: dict[str, Figures], tables: int) -> tuple[str, bool, dict[str, dict[str, str]]]:
    empty, five, many = results["empty program"], results["5 tables"], results[f"{tables} tables"]
    rows = [[name, *_seconds(f.preview), *_seconds(f.up)] for name, f in results.items()]
    preview_ratio = median(five.preview) / median(empty.preview)
    up_ratio = median(many.up) / median(five.up)
    preview_ok, up_ok = preview_ratio <= PREVIEW_OVER_EMPTY_MAX, up_ratio <= UP_50_OVER_5_MAX
    text = format_table(["program", "preview median s", "preview min s", "first up median s", "first up min s"], rows)
    text += (
        f"\n\nno-change preview, 5 tables / empty program: {preview_ratio:.2f}"
        f" (target <= {PREVIEW_OVER_EMPTY_MAX:g}: {'met' if preview_ok else 'MISSED'})"
        f"\nfirst up, {tables} tables / 5 tables: {up_ratio:.2f}"
        f" (target <= {UP_50_OVER_5_MAX:g}: {'met' if up_ok else 'MISSED'})"
    )
    once_five, once_many = (
        results.get("5 tables" + ONE_STATE_WRITE_LABEL),
        results.get(f"{tables} tables" + ONE_STATE_WRITE_LABEL),
    )
    state_figures = {}
    if once_five and once_many:
        once_ratio = median(once_many.up) / median(once_five.up)
        share = 1 - median(once_many.up) / median(many.up)
        text += (
            f"\nfirst up, {tables} tables / 5 tables, state written once (PULUMI_SKIP_CHECKPOINTS): {once_ratio:.2f}"
            f"\nshare of the {tables}-table first up spent writing the state around each step: {share:.0%}"
        )
        state_figures = {f"first up, {tables} tables / 5 tables, state written once": {"value": f"{once_ratio:.2f}"}}
    for name, f in results.items():
        if f.drift:
            text += f"\nnote: {name}: a no-change preview reported changes: {f.drift}"
    figures = {
        "no-change preview, 5 tables / empty program": {"value": f"{preview_ratio:.2f}"},
        f"first up, {tables} tables / 5 tables": {"value": f"{up_ratio:.2f}"},
        **{f"{name}: first up s": {"value": f"{median(f.up):.2f}"} for name, f in results.items()},
        **{f"{name}: preview s": {"value": f"{median(f.preview):.2f}"} for name, f in results.items() if f.preview},
        **state_figures,
    }
    return text, preview_ok and up_ok, figures


def _seconds(values: Sequence[float]) -> list[str]:
    """Median and minimum, or dashes for a figure not taken (no previews of the state-written-once stacks)."""
    return [f"{median(values):.2f}", f"{min(values):.2f}"] if values else ["-", "-"]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", type=int, default=50, help="tables of the large stack (a multiple of 5)")
    parser.add_argument("--repeat", type=int, default=2, help="rounds, each on fresh stacks and databases")
    parser.add_argument("--previews", type=int, default=3, help="no-change previews after each first up")
    parser.add_argument(
        "--state-writes",
        action="store_true",
        help="also time first ups with the state written once at the end (PULUMI_SKIP_CHECKPOINTS): what the"
        " state writes around each resource cost",
    )
    args = parser.parse_args(argv)
    if args.tables < 10 or args.repeat < 1 or args.previews < 1:
        parser.error("--tables must be at least 10; --repeat and --previews at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    use_toolchain()
    load_before = os.getloadavg()
    results = {"empty program": Figures(), "5 tables": Figures(), f"{args.tables} tables": Figures()}
    if args.state_writes:
        results |= {f"{label}{ONE_STATE_WRITE_LABEL}": Figures() for label in ("5 tables", f"{args.tables} tables")}
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as work:
        for round_index in range(args.repeat):
            run_round(Path(work), round_index, args.tables, args.previews, results, args.state_writes)
        machine = machine_summary(app_conninfo("postgres"))
    table, met, figures = report(results, args.tables)
    write_figures(figures, ["value"], conninfo=app_conninfo("postgres"), load_before=load_before)
    load = "load average (1, 5, 15 min) before: {:.1f} {:.1f} {:.1f}; after: {:.1f} {:.1f} {:.1f}".format(
        *load_before, *os.getloadavg()
    )
    title = (
        f"bench.engine: local stack settings (dev, open profile); {args.repeat} rounds, "
        f"{args.previews} no-change previews after each first up"
    )
    print_report(title, machine, table, met, notes=[load], targets="targets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
