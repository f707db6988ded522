"""What the benchmarks share: throwaway databases on the local cluster, a progress bar, figures and tables."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from supabase_access.sql.database import Database
from supabase_access.sql.rows import fetch_value

REPO = Path(__file__).resolve().parents[1]
# The legacy platform (tables granted to the API roles): the benchmarks time policies, not grants.
TEMPLATE_DATABASE = "supabase_template_legacy"
# The local cluster's well-known login of the app role (see scripts/localdb).
APP_USER = "postgres"
APP_PASSWORD = "sa-local-pw-7d3f9b2c"
LOCAL_HOST = "127.0.0.1"
# The cluster scripts/localdb runs for this checkout (a second work tree sets its own port).
LOCAL_PORT = int(os.environ.get("SUPABASE_ACCESS_LOCALDB_PORT") or 54322)


def admin_conninfo(dbname: str = "postgres") -> str:
    """The superuser over the local socket, as scripts/localdb gives it (the folder may have moved)."""
    base = subprocess.run(
        [str(REPO / "scripts" / "localdb"), "url", "--admin"], check=True, capture_output=True, text=True
    ).stdout.strip()
    return psycopg.conninfo.make_conninfo(base, dbname=dbname)


def app_conninfo(dbname: str) -> str:
    """The app role over TCP, as the Pulumi program and PostgREST's tests reach the database."""
    return psycopg.conninfo.make_conninfo(
        host=LOCAL_HOST, port=str(LOCAL_PORT), dbname=dbname, user=APP_USER, password=APP_PASSWORD
    )


def provider_database(dbname: str) -> Database:
    """The provider's own connection pool on a bench database, as the plugin opens it for a stack."""
    return Database(
        {
            "host": LOCAL_HOST,
            "port": LOCAL_PORT,
            "database": dbname,
            "username": APP_USER,
            "password": APP_PASSWORD,
            "sslmode": "disable",
        }
    )


def build_lookup_index(db: Database, dbname: str, schema: str, table: str, column: str, include: str) -> None:
    """A policy lookup's index, by the provider's own PolicyIndex, for an app that took the advice an `up`
    gives: the app's plain index on the column (which `up` would use, reading the table for every row
    found) is dropped first, so the lookup gets a covering index and runs index-only."""
    from supabase_access.provider.resources.policy_index import PolicyIndex, find_serving_index

    with psycopg.connect(app_conninfo(dbname), autocommit=True) as conn:
        while (found := find_serving_index(conn, schema, table, column, include)) and not found.covers:
            conn.execute(sql.SQL("drop index {}").format(sql.Identifier(schema, found.name)))
    resource = PolicyIndex()
    inputs = {"schema": schema, "table": table, "column": column, "include": include}
    resource.create(db, resource.check(db, {}, inputs), lambda message: print(f"  {message}", file=sys.stderr))


@contextmanager
def scratch_database(prefix: str, *, keep: bool = False) -> Iterator[str]:
    """A database cloned from the template, with a unique name; dropped afterwards unless `keep`."""
    # Unique per run, so concurrent runs (and other engineers' tests) never collide.
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_conninfo(), autocommit=True) as admin:
        admin.execute(
            sql.SQL("create database {} template {}").format(sql.Identifier(name), sql.Identifier(TEMPLATE_DATABASE))
        )
        # Database privileges are not cloned; on Supabase, postgres may create schemas in its database.
        admin.execute(sql.SQL("grant all on database {} to {}").format(sql.Identifier(name), sql.Identifier(APP_USER)))
    try:
        yield name
    finally:
        if keep:
            print(f"kept database {name}", file=sys.stderr)
        else:
            with psycopg.connect(admin_conninfo(), autocommit=True) as admin:
                admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


class ProgressBar:
    """A one-line bar on a terminal; elsewhere (CI, pipes) one line per finished step."""

    WIDTH = 30

    def __init__(self, total: int, label: str = "") -> None:
        self.total = max(total, 1)
        self.done = 0
        self.label = label
        self.started = time.perf_counter()
        self.interactive = sys.stderr.isatty()

    def advance(self, count: int, step: str) -> None:
        self.done += count
        elapsed = time.perf_counter() - self.started
        if self.interactive:
            filled = int(self.WIDTH * self.done / self.total)
            bar = "#" * filled + "." * (self.WIDTH - filled)
            percent = 100 * self.done / self.total
            sys.stderr.write(f"\r{self.label} [{bar}] {percent:5.1f}% {step:<40.40} {elapsed:6.1f}s")
            sys.stderr.flush()

    def note(self, message: str) -> None:
        """A finished step, printed on its own line when there is no terminal to redraw."""
        if not self.interactive:
            elapsed = time.perf_counter() - self.started
            print(f"{self.label} {100 * self.done / self.total:5.1f}% {message} ({elapsed:.1f}s)", file=sys.stderr)

    def finish(self) -> None:
        if self.interactive:
            sys.stderr.write("\n")
        print(f"{self.label} done in {time.perf_counter() - self.started:.1f}s", file=sys.stderr)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def p95(values: Sequence[float]) -> float:
    """Nearest-rank 95th percentile: a value that was actually measured."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def print_report(
    title: str, machine: str, table: str, met: bool, *, notes: Sequence[str] = (), targets: str = "target"
) -> None:
    """A bench's closing figures: its title, the machine, any notes, the table and whether the goal was met."""
    print(f"\n## {title}")
    print(f"machine: {machine}")
    for note in notes:
        print(f"- {note}")
    print()
    print(table)
    print(f"\n{targets} {'met' if met else 'NOT met'}")


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table, aligned so it reads well in a terminal too."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    separator = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), separator, *(line(r) for r in rows)])


def machine_summary(conninfo: str | None = None) -> str:
    """nproc, memory and the PostgreSQL server version, for the figures to be read against."""
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    parts = [f"{os.cpu_count()} CPUs", f"{memory_gib:.0f} GiB RAM", f"Python {platform.python_version()}"]
    if conninfo is not None:
        with psycopg.connect(conninfo) as conn:
            version = fetch_value(conn, "show server_version")
        if version is not None:
            parts.append(f"PostgreSQL {version}")
    return ", ".join(parts)


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}" if denominator > 0 else "n/a"


# Set by bench.versions: where a bench writes its figures as JSON besides printing its table.
FIGURES_ENV = "SUPABASE_ACCESS_BENCH_FIGURES"


def write_figures(
    rows: Mapping[str, Mapping[str, str]], compare: Sequence[str], *, conninfo: str, load_before: Sequence[float]
) -> None:
    """The figures bench.versions sets side by side (`compare`: the columns it shows), when it asks for them."""
    path = os.environ.get(FIGURES_ENV)
    if not path:
        return
    figures = {
        "server": machine_summary(conninfo).rsplit("PostgreSQL ", 1)[-1],
        "load_before": list(load_before),
        "load_after": list(os.getloadavg()),
        "compare": list(compare),
        "rows": {key: dict(values) for key, values in rows.items()},
    }
    Path(path).write_text(json.dumps(figures, indent=1))
