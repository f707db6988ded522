"""What the preflight's widening probe costs a prod preview: the reference app, owner profile.

    python -m bench.widening [--previews 3] [--program PATH]

One stack with the local-prod settings (environment prod, owner profile) on a throwaway database
cloned from `supabase_template`, first `up` without extra policies, then timed `pulumi preview`s:

- no change (the probe is not asked: nothing to judge);
- one extra permissive policy added (narrower than the kind, so it passes: the probe runs its
  baseline round and one round for it);
- three extra permissive policies on three tables (a baseline round and three more).

`--program PATH` runs the same previews with another checkout of this project (e.g. the commit
before the probe, `git worktree add /tmp/before <commit>` with a `.venv` link to this one), which
gives the "before" column of the same figures.

Then, with this checkout only, the preflight's check alone (the provider's code, no engine), median
of `--checks` runs: without the probe (the `model` input left out, as before it existed) and with it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from pulumi import automation as auto

from bench.common import (
    REPO,
    app_conninfo,
    format_table,
    machine_summary,
    median,
    print_report,
    provider_database,
    scratch_database,
)
from bench.engine import use_toolchain
from supabase_access.model.access_model import load_model_file, model_to_plain
from supabase_access.model.profiles import plan_access
from supabase_access.model.rule_data import rule_to_plain
from supabase_access.provider.resources.access_preflight import AccessPreflight
from tests.support.engine import new_stack

OWNER = {"supabase-access:environment": "prod", "supabase-access:profile": "owner"}


def narrower(owner: str, column: str) -> dict[str, object]:
    """A permissive SELECT policy narrower than the owner's: it widens nothing."""
    return {"command": "SELECT", "roles": ["authenticated"], "using": f"{owner} and {column} is not null"}


ONE = {"sessions": {"titled_sessions": narrower("user_id = (select auth.uid())", "title")}}
PATH_OWNED = "session_id = any (array(select id from public.sessions where user_id = (select auth.uid())))"
THREE = {
    **ONE,
    "turns": {"spoken_turns": narrower(PATH_OWNED, "content")},
    "generated_content": {"bodied_content": narrower(PATH_OWNED, "body")},
}
CASES = (("no change", None), ("1 extra policy added", ONE), ("3 extra policies added", THREE))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.widening", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--previews", type=int, default=3, help="previews timed per case (median shown)")
    parser.add_argument("--program", type=Path, default=REPO, help="checkout of this project to run")
    parser.add_argument("--checks", type=int, default=5, help="preflight checks timed per case (median shown)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    use_toolchain()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-widening-") as work, scratch_database("bench_widening") as db:
        stack = new_stack(Path(work), "local-prod", app_conninfo(db), OWNER, program=args.program.resolve())
        print("bench.widening: first up ...", file=sys.stderr, flush=True)
        stack.up()
        for label, extra in CASES:
            if extra is not None:
                stack.set_config("supabase-access:extraPolicies", auto.ConfigValue(json.dumps(extra)))
            times = []
            for _ in range(args.previews):
                started = time.monotonic()
                stack.preview()
                times.append(time.monotonic() - started)
            print(f"bench.widening: {label}: {', '.join(f'{t:.2f}' for t in times)} s", file=sys.stderr, flush=True)
            rows.append([label, f"{median(times):.2f}", f"{min(times):.2f}", f"{max(times):.2f}"])
        checks = check_times(db, args.checks) if args.program.resolve() == REPO else []
        machine = machine_summary(app_conninfo("postgres"))
    table = format_table(["pulumi preview (prod, reference app)", "median s", "min s", "max s"], rows)
    if checks:
        table += "\n\n" + format_table(["AccessPreflight.check alone", "without the probe ms", "with it ms"], checks)
    title = f"bench.widening: program {args.program.resolve()}; {args.previews} previews per case"
    print_report(title, machine, table, True, targets="figures only, no target:")
    return 0


def check_times(dbname: str, repeat: int) -> list[list[str]]:
    """The preflight's check of the prod stack's inputs, with and without the probe's `model` input."""
    model = load_model_file(REPO / "access-model.yaml", setting="access-model.yaml")
    plan = plan_access(model, "owner")
    db = provider_database(dbname)
    rows = []
    for label, extra in CASES[1:]:
        policies = {a.table: {r.name: rule_to_plain(r) for r in a.rules} | extra.get(a.table, {}) for a in plan.tables}
        inputs = {
            "schema": "public",
            "tables": list(model.table_names),
            "roles": ["anon", "authenticated"],
            "policies": policies,
            "source": "bench",
            "policySettings": {f"{t}.{n}": f"extraPolicies.{t}.{n}" for t, named in extra.items() for n in named},
            "grants": {role: list(p) for role, p in plan.grants.items()},
            "refuseOpenWrites": True,
        }
        times = {}
        for probed in (False, True):
            case = {**inputs, "model": model_to_plain(model)} if probed else inputs
            runs = []
            for _ in range(repeat):
                started = time.monotonic()
                AccessPreflight().check(db, {}, dict(case))
                runs.append(time.monotonic() - started)
            times[probed] = median(runs)
        rows.append([label.replace(" added", ""), f"{times[False] * 1000:.0f}", f"{times[True] * 1000:.0f}"])
    return rows


if __name__ == "__main__":
    sys.exit(main())
