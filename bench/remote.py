"""What a database far away costs the engine: the local-prod stack's no-change preview and first up,
direct and through a latency proxy, and the round trips of each provider call.

    python -m bench.remote [--delay-ms 25 --repeat 2 --previews 3]

A hosted Supabase database is 20-80 ms away; the local cluster is not. bench.latency_proxy
(loopback, bounded) adds `--delay-ms` each way. Each round makes two stacks with the settings
of Pulumi.local-prod.yaml (prod, owner profile, write quotas, retention, permanent users only;
without its auth settings, which go to the Management API, not the database), each on a
throwaway database cloned from `supabase_template_legacy`: one connected directly, one through the
proxy. The first ups run one after the other, then `--previews` rounds of one no-change preview
of each, so every difference compares runs made at the same moments. The `pulumi` CLI is
timed as a user runs it (see bench.engine); the proxy counts the round trips.

Then, once, each provider resource of the proxied stack is checked and diffed in this process
exactly as a no-change preview does (the state's inputs and outputs, the provider's own
resource classes and connection code) to count the round trips of each call.

Issue 16's target: the proxy adds at most 1.5 s to a no-change preview at 25 ms each way.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import yaml
from pulumi import automation as auto

from bench.common import (
    APP_PASSWORD,
    APP_USER,
    LOCAL_HOST,
    LOCAL_PORT,
    REPO,
    app_conninfo,
    format_table,
    machine_summary,
    median,
    print_report,
    scratch_database,
)
from bench.engine import pulumi, use_toolchain
from bench.latency_proxy import LatencyProxy
from supabase_access.provider.base import CURRENT_STACK
from supabase_access.sql.database import Database
from tests.support.engine import new_stack

MAX_PREVIEW_ADDED_SECONDS = 1.5  # issue 16, at 25 ms each way
# Settings of Pulumi.local-prod.yaml that reach the Management API, not the database.
MANAGEMENT_API_SETTINGS = ("projectRef", "managementApiUrl", "accessToken", "authSettings")


def local_prod_config() -> dict[str, str]:
    """The local-prod stack's supabase-access settings (values as the CLI stores them), without the Management API's."""
    stack_file = yaml.safe_load((REPO / "Pulumi.local-prod.yaml").read_text())
    config: dict[str, str] = {}
    for key, value in stack_file["config"].items():
        namespace, _, name = key.partition(":")
        if namespace != "supabase-access" or name in MANAGEMENT_API_SETTINGS:
            continue
        config[key] = value if isinstance(value, str) else json.dumps(value)
    return config


def proxied_conninfo(dbname: str, port: int) -> str:
    return psycopg.conninfo.make_conninfo(
        host=LOCAL_HOST, port=str(port), dbname=dbname, user=APP_USER, password=APP_PASSWORD
    )


@dataclass
class Figures:
    up: list[float] = field(default_factory=list)
    preview: list[float] = field(default_factory=list)
    up_turns: list[int] = field(default_factory=list)
    preview_turns: list[int] = field(default_factory=list)
    up_connections: list[int] = field(default_factory=list)
    preview_connections: list[int] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    # (rows per resource type, round trips to open the connection): counted once, on the proxied stack.
    per_call: tuple[list[list[str]], int] | None = None


def timed(stack: auto.Stack, figures: Figures, label: str, proxy: LatencyProxy | None, *, up: bool) -> None:
    args = ("up", "--yes", "--skip-preview") if up else ("preview", "--expect-no-changes")
    print(f"bench.remote: {label}: pulumi {args[0]}", file=sys.stderr)
    if proxy is not None:
        proxy.reset()
    seconds, result = pulumi(stack, *args)
    if result.returncode != 0:
        if up or "no changes were expected" not in result.stdout + result.stderr:
            raise SystemExit(f"bench.remote: {label}: pulumi {args[0]} failed:\n{result.stdout}\n{result.stderr}")
        figures.drift.append(result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "changes")
    (figures.up if up else figures.preview).append(seconds)
    if proxy is not None:
        counts = proxy.reset()
        (figures.up_turns if up else figures.preview_turns).append(counts.turns)
        (figures.up_connections if up else figures.preview_connections).append(counts.connections)


def exported_resources(stack: auto.Stack) -> list[dict[str, Any]]:
    """The stack's resources of our provider, from `pulumi stack export` (with secrets, for inputs)."""
    workspace = stack.workspace
    assert isinstance(workspace, auto.LocalWorkspace) and workspace.work_dir
    result = subprocess.run(
        ["pulumi", "stack", "export", "--show-secrets", "--stack", stack.name],
        cwd=workspace.work_dir,
        env={**os.environ, **(workspace.env_vars or {})},
        capture_output=True,
        text=True,
        check=True,
    )
    resources = json.loads(result.stdout)["deployment"].get("resources", [])
    return [r for r in resources if r.get("custom") and r["type"].startswith("supabase-access:")]


def round_trips_per_call(stack: auto.Stack, dbname: str, proxy: LatencyProxy) -> tuple[list[list[str]], int]:
    """Per resource type: (resources, round trips of check, of diff), as a no-change preview calls them."""
    from supabase_access.provider.server import DATABASE_RESOURCES

    resources = {r.token: r() for r in DATABASE_RESOURCES}

    db = Database(
        {
            "host": LOCAL_HOST,
            "port": proxy.port,
            "database": dbname,
            "username": APP_USER,
            "password": APP_PASSWORD,
            "sslmode": "disable",
        }
    )
    proxy.reset()
    db.warm_up()
    connect_turns = proxy.reset().turns
    per_type: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    # As the plugin runs for this stack: its tables are its own, not another stack's.
    token = CURRENT_STACK.set(stack.name)
    try:
        for entry in exported_resources(stack):
            resource = resources.get(entry["type"])
            if resource is None:
                continue
            inputs, outputs = entry.get("inputs") or {}, entry.get("outputs") or {}
            proxy.reset()
            checked = resource.check(db, inputs, inputs)
            check_turns = proxy.reset().turns
            resource.diff(db, outputs, checked)
            diff_turns = proxy.reset().turns
            figures = per_type[entry["type"].split(":")[-1]]
            figures[0] += 1
            figures[1] += check_turns
            figures[2] += diff_turns
    finally:
        CURRENT_STACK.reset(token)
        db.close()
    rows = [
        [name, str(n), f"{check / n:.1f}", f"{diff / n:.1f}"] for name, (n, check, diff) in sorted(per_type.items())
    ]
    total = [sum(v[i] for v in per_type.values()) for i in range(3)]
    rows.append(["all", str(total[0]), f"{total[1]} in all", f"{total[2]} in all"])
    return rows, connect_turns


def run_round(work: Path, round_index: int, proxy: LatencyProxy, previews: int, results: dict[str, Figures]) -> None:
    config = local_prod_config()
    with contextlib.ExitStack() as databases:
        direct_db = databases.enter_context(scratch_database("bench_remote"))
        remote_db = databases.enter_context(scratch_database("bench_remote"))
        stacks = {
            "direct": (new_stack(work / f"direct-{round_index}", "local-prod", app_conninfo(direct_db), config), None),
            "remote": (
                new_stack(
                    work / f"remote-{round_index}", "local-prod", proxied_conninfo(remote_db, proxy.port), config
                ),
                proxy,
            ),
        }
        order = list(stacks) if round_index % 2 == 0 else list(reversed(stacks))
        for label in order:
            stack, counter = stacks[label]
            timed(stack, results[label], label, counter, up=True)
        for _ in range(previews):
            for label in order:
                stack, counter = stacks[label]
                timed(stack, results[label], label, counter, up=False)
        if round_index == 0:
            results["remote"].per_call = round_trips_per_call(stacks["remote"][0], remote_db, proxy)


def report(results: dict[str, Figures], delay_ms: float) -> tuple[str, bool]:
    direct, remote = results["direct"], results["remote"]
    rows = []
    for name, f in results.items():
        rows.append(
            [
                name,
                f"{median(f.preview):.2f}",
                f"{min(f.preview):.2f}",
                f"{median(f.up):.2f}",
                f"{min(f.up):.2f}",
                f"{median(f.preview_turns):.0f}" if f.preview_turns else "-",
                f"{median(f.up_turns):.0f}" if f.up_turns else "-",
                f"{median(f.preview_connections):.0f}" if f.preview_connections else "-",
            ]
        )
    added = median(remote.preview) - median(direct.preview)
    added_up = median(remote.up) - median(direct.up)
    met = added <= MAX_PREVIEW_ADDED_SECONDS
    text = format_table(
        [
            "database",
            "preview median s",
            "preview min s",
            "first up median s",
            "first up min s",
            "round trips per preview",
            "per first up",
            "connections per preview",
        ],
        rows,
    )
    text += (
        f"\n\nadded by {delay_ms:g} ms each way: no-change preview {added:+.2f} s"
        f" (target <= {MAX_PREVIEW_ADDED_SECONDS:g} s: {'met' if met else 'MISSED'}); first up {added_up:+.2f} s"
    )
    for name, f in results.items():
        if f.drift:
            text += f"\nnote: {name}: a no-change preview reported changes: {f.drift}"
    if remote.per_call is not None:
        rows, connect_turns = remote.per_call
        text += (
            "\n\nRound trips per provider call, as a no-change preview makes them (the state's inputs and outputs, "
            f"on a connection already open; opening it took {connect_turns}):\n\n"
        )
        text += format_table(["resource", "resources", "check, each", "diff, each"], rows)
    return text, met


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.remote", description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay-ms", type=float, default=25.0, help="added each way by the proxy")
    parser.add_argument("--repeat", type=int, default=2, help="rounds, each on fresh stacks and databases")
    parser.add_argument("--previews", type=int, default=3, help="no-change previews of each stack per round")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.previews < 1 or not 0 <= args.delay_ms <= 500:
        parser.error("--repeat and --previews at least 1; --delay-ms 0 to 500")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    use_toolchain()
    results = {"direct": Figures(), "remote": Figures()}
    # Bounded: long enough for the rounds asked for, and it stops by itself after that.
    lifetime = min(3600.0, 120.0 + args.repeat * (60.0 + args.previews * 20.0))
    with tempfile.TemporaryDirectory(prefix="bench-remote-") as work:
        with LatencyProxy(LOCAL_PORT, delay=args.delay_ms / 1000, lifetime=lifetime) as proxy:
            for round_index in range(args.repeat):
                run_round(Path(work), round_index, proxy, args.previews, results)
        machine = machine_summary(app_conninfo("postgres"))
    table, met = report(results, args.delay_ms)
    title = (
        f"bench.remote: local-prod stack settings (prod, owner profile, quotas, retention); "
        f"{args.delay_ms:g} ms each way; {args.repeat} rounds, {args.previews} no-change previews each"
    )
    print_report(title, machine, table, met)
    return 0


if __name__ == "__main__":
    sys.exit(main())
