"""A bench on PostgreSQL 17 and 15, its figures side by side.

    python -m bench.versions [--versions 17 15] [--runs 3] BENCH [BENCH'S OPTIONS ...]

BENCH is rls, groups, engine or storage. For each run and version in turn (17, 15, 17, 15, ...), the
checkout's cluster is switched to that version (`scripts/localdb start` with
SUPABASE_ACCESS_PG_VERSION, which makes the cluster anew when the version changes: any kept bench
database is lost) and the bench runs on it, printing its own table as usual. At the end one table
shows the columns each bench compares (owner/explicit, ...), a column per version, every run's
figure after the median of the runs, and the server and load average of each run. The cluster is
left on the last version run; `scripts/localdb start` with the version you want puts it back.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import FIGURES_ENV, REPO, format_table, median

BENCHES = ("rls", "groups", "engine", "storage")


@dataclass(frozen=True)
class Run:
    version: str
    index: int
    figures: dict[str, Any]


def switch_cluster(version: str) -> None:
    env = {**os.environ, "SUPABASE_ACCESS_PG_VERSION": version}
    subprocess.run([str(REPO / "scripts" / "localdb"), "start"], check=True, env=env)


def run_bench(bench: str, options: Sequence[str], version: str, index: int) -> Run:
    with tempfile.TemporaryDirectory(prefix="bench-versions-") as work:
        path = Path(work) / "figures.json"
        env = {**os.environ, "SUPABASE_ACCESS_PG_VERSION": version, FIGURES_ENV: str(path)}
        print(f"bench.versions: run {index + 1}, PostgreSQL {version}: bench.{bench}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", f"bench.{bench}", *options], check=True, env=env, cwd=REPO)
        return Run(version, index, json.loads(path.read_text()))


def cell(values: Sequence[str]) -> str:
    """The median of the runs' figures, then each run's (`MISS` and other marks stay on the run)."""
    numbers = []
    for value in values:
        try:
            numbers.append(float(value.split()[0]))
        except (ValueError, IndexError):
            pass
    if len(values) == 1 or not numbers:
        return " / ".join(values)
    return f"{median(numbers):.2f} ({' / '.join(values)})"


def side_by_side(runs: Sequence[Run], versions: Sequence[str]) -> str:
    first = runs[0].figures
    columns = first["compare"]
    headers = ["request"] + [f"{column}, PG {version}" for column in columns for version in versions]
    rows = []
    for key in first["rows"]:
        row = [key]
        for column in columns:
            for version in versions:
                values = [r.figures["rows"].get(key, {}).get(column, "n/a") for r in runs if r.version == version]
                row.append(cell(values))
        rows.append(row)
    lines = [format_table(headers, rows), ""]
    template = "- run {}, PostgreSQL {}: load (1, 5, 15 min) before {:.1f} {:.1f} {:.1f}, after {:.1f} {:.1f} {:.1f}"
    lines += [
        template.format(r.index + 1, r.figures["server"], *r.figures["load_before"], *r.figures["load_after"])
        for r in runs
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="python -m bench.versions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", nargs="+", default=["17", "15"], choices=["17", "15"])
    parser.add_argument("--runs", type=int, default=1, help="runs of the bench on each version, alternating")
    parser.add_argument("bench", choices=BENCHES)
    args, options = parser.parse_known_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if any(option in ("--keep", "--reuse") or option.startswith("--reuse=") for option in options):
        parser.error("--keep and --reuse cannot be used: the cluster is made anew at each switch of version")
    return args, options


def main(argv: Sequence[str] | None = None) -> int:
    args, options = parse_args(argv)
    runs = []
    for index in range(args.runs):
        for version in args.versions:
            switch_cluster(version)
            runs.append(run_bench(args.bench, options, version, index))
    print(f"\n## bench.{args.bench} on PostgreSQL {' and '.join(args.versions)}, {args.runs} run(s) each")
    print(f"options: {' '.join(options) or '(defaults)'}\n")
    print(side_by_side(runs, args.versions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
