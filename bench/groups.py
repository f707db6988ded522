"""What the group policies cost a member's requests, against the same request written by hand.

    python -m bench.groups [--users 2000 --projects 2000 --members 4 --tasks 50 --comments 4 --repeat 30]
                           [--group-copy deep|none] [--compare-path]

Creates a database of its own from `supabase_template_legacy`, replaces the reference app with the teams
app (tests/fixtures/teams_app), applies the owner profile's policies, grants, group functions,
lookup indexes and copies of the group's key with the provider's own resources (GroupFunctions,
PolicyIndex, OwnerCopy) and statements (`--group-copy deep`, the default: `copyGroup: true` on every
table two or more hops below its group, comments; `none`: the teams app's model as it is), fills it
with generated data (the copies' triggers fill them), and times a member's typical requests exactly as PostgREST runs
them (review.postgrest): as `authenticated` under the policies ("owner"), and as `service_role`
(no RLS) with the membership filter written by hand ("explicit"). Prints the medians, their
ratio, and whether each plan calls the group function once (an InitPlan) and reads by index.
Then times the author's update of their comment (comments: `write: author`) under the author
policies against the same statement under the `write: members` policies (swapped in, then back).
With `--compare-path` (and a copy), last: the author's edit and a task's comments timed under
comments' policies on the copy and as rendered without it (the path through tasks), swapped in turn.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, LiteralString

import psycopg

from bench.common import (
    REPO,
    app_conninfo,
    build_lookup_index,
    format_table,
    machine_summary,
    median,
    provider_database,
    ratio,
    scratch_database,
    write_figures,
)
from bench.rls import build_owner_copies
from review.postgrest import Persona, as_persona, connect_as_authenticator
from supabase_access.model.access_model import AccessModel, load_model_file, model_to_plain, parse_model
from supabase_access.model.policy_lookups import policy_lookups
from supabase_access.model.profiles import plan_access
from supabase_access.model.rule_data import group_lookup_to_plain
from supabase_access.provider.resources.group_functions import GroupFunctions
from supabase_access.sql import catalog
from supabase_access.sql import statements as render

TEAMS_APP = REPO / "tests" / "fixtures" / "teams_app"
REFERENCE_TABLES = "sessions, segments, turns, actions, generated_content"


def teams_model() -> AccessModel:
    return load_model_file(TEAMS_APP / "access-model.yaml", setting="tests/fixtures/teams_app/access-model.yaml")


def with_group_copies(model: AccessModel) -> AccessModel:
    """The model with `copyGroup: true` on every table two or more hops below its group (comments)."""
    deep = {t.name for t in model.tables if (found := model.group_path(t.name)) is not None and len(found[0]) >= 2}
    raw = model_to_plain(model)
    for name in deep:
        raw["tables"][name]["copyGroup"] = True
    return parse_model(raw, setting="bench.groups")


def load_teams_app(conninfo: str) -> None:
    """The teams app, and the index an app keeps on the foreign key its requests filter tasks by
    (splinter's unindexed_foreign_keys): with copyGroup no policy searches tasks by project, so no
    lookup index of the stack's serves "list a project's tasks" any more."""
    with psycopg.connect(conninfo, autocommit=True) as conn, conn.transaction():
        conn.execute(f"drop table {REFERENCE_TABLES} cascade")
        conn.execute((TEAMS_APP / "schema.sql").read_text())
        conn.execute("create index tasks_project_id_idx on tasks (project_id)")


EDIT_MY_COMMENT = "update comments set body = 'edited' where id = %(comment)s returning id"
HAND_WRITTEN_GROUPS = (
    "(select project_id from project_members where user_id = %(user)s "
    "union select id from projects where owner_id = %(user)s)"
)


@dataclass(frozen=True)
class Request:
    name: str
    # As `authenticated`: the policies add the membership filter.
    owner: LiteralString
    # As service_role: the same request with the filter written by hand.
    explicit: LiteralString
    # PostgREST's request method: GET runs read-only; every request is rolled back.
    method: str = "GET"


REQUESTS = (
    Request(
        "list a project's tasks",
        "select id, title from tasks where project_id = %(project)s order by id limit 50",
        "select id, title from tasks where project_id = %(project)s and project_id in "
        + HAND_WRITTEN_GROUPS
        + " order by id limit 50",
    ),
    Request(
        "count my tasks",
        "select count(*) from tasks",
        "select count(*) from tasks where project_id in " + HAND_WRITTEN_GROUPS,
    ),
    Request(
        "a task's comments",
        "select id, body from comments where task_id = %(task)s",
        "select c.id, c.body from comments c join tasks t on t.id = c.task_id "
        "where c.task_id = %(task)s and t.project_id in " + HAND_WRITTEN_GROUPS,
    ),
    Request(
        "my projects' members",
        "select project_id, user_id, role from project_members",
        "select project_id, user_id, role from project_members where project_id in " + HAND_WRITTEN_GROUPS,
    ),
    Request(
        "edit my comment",
        EDIT_MY_COMMENT,
        "update comments c set body = 'edited' where c.id = %(comment)s and c.author_id = %(user)s "
        "and c.task_id in (select t.id from tasks t where t.project_id in " + HAND_WRITTEN_GROUPS + ") returning c.id",
        method="PATCH",
    ),
)


def apply_owner_profile(dbname: str, model: AccessModel) -> list[str]:
    """Copies of the group's key, RLS, grants, group functions, policies and lookup indexes of the
    owner profile, as `up` makes them; returns what the copies reported."""
    copies = build_owner_copies(dbname, model)
    plan = plan_access(model, "owner")
    db = provider_database(dbname)
    try:
        functions = GroupFunctions()
        for lookup in plan.group_lookups:
            inputs = {"schema": plan.schema, **group_lookup_to_plain(lookup)}
            functions.create(db, functions.check(db, {}, inputs), print)
        with psycopg.connect(app_conninfo(dbname), autocommit=True) as conn, conn.transaction():
            for statement in render.plan_table_statements(plan):
                conn.execute(statement)
        for found in policy_lookups(plan):
            build_lookup_index(db, dbname, plan.schema, found.table, found.column, found.include)
    finally:
        db.close()
    return copies


def generate(dbname: str, args: argparse.Namespace) -> None:
    """Users own one project each; each project has `members` other members (the first an admin),
    `tasks` tasks and `comments` comments per task."""
    with psycopg.connect(app_conninfo(dbname), autocommit=True) as conn:
        conn.execute(
            "insert into auth.users (id, is_anonymous) "
            "select gen_random_uuid(), n %% 2 = 0 from generate_series(1, %s) n",
            (args.users,),
        )
        conn.execute(
            "create temporary table bench_users as select id, row_number() over (order by id) n from auth.users"
        )
        conn.execute(
            "insert into projects (owner_id, name) select id, 'p' || n from bench_users where n <= %s",
            (args.projects,),
        )
        conn.execute(
            "insert into project_members (project_id, user_id, role) "
            "select p.id, u.id, case when k = 1 then 'admin' else 'member' end "
            "from (select id, row_number() over (order by id) pn from projects) p "
            "cross join generate_series(1, %s) k "
            "join bench_users u on u.n = ((p.pn + k * 7919) %% (select count(*) from bench_users)) + 1 "
            "where u.id <> (select owner_id from projects where id = p.id) "
            "on conflict do nothing",
            (args.members,),
        )
        conn.execute(
            "insert into tasks (project_id, title) select p.id, 't' || k from projects p "
            "cross join generate_series(1, %s) k",
            (args.tasks,),
        )
        # Each comment's author: one of its project's members, in turn (comments are `write: author`).
        conn.execute(
            "insert into comments (task_id, body, author_id) select t.id, 'c' || k, "
            "(select m.user_id from project_members m where m.project_id = t.project_id "
            " order by m.user_id offset k %% greatest(1, (select count(*) from project_members n "
            "   where n.project_id = t.project_id)) limit 1) "
            "from tasks t cross join generate_series(1, %s) k",
            (args.comments,),
        )
        conn.execute("vacuum analyze")


def subject(dbname: str) -> dict[str, Any]:
    """A plain member (not owner, not admin) of some project, one of its projects, a task there and a
    comment of theirs (on that task, written for the bench if the generated data has none)."""
    with psycopg.connect(app_conninfo(dbname)) as conn:
        row = conn.execute(
            "select m.user_id, m.project_id, (select id from tasks where project_id = m.project_id limit 1) "
            "from project_members m where m.role = 'member' order by m.user_id limit 1"
        ).fetchone()
        assert row is not None, "no member in the generated data"
        user, project, task = row
        found = conn.execute(
            "insert into comments (task_id, body, author_id) values (%s, 'mine', %s) returning id", (task, user)
        ).fetchone()
    assert found is not None
    return {"user": user, "project": project, "task": task, "comment": found[0]}


def time_request(
    conn: psycopg.Connection[Any],
    persona: Persona,
    statement: LiteralString,
    params: dict[str, Any],
    method: str = "GET",
) -> float:
    with as_persona(conn, persona, method=method) as cur:
        started = time.perf_counter()
        cur.execute(statement, params, prepare=True)
        cur.fetchall()
        return time.perf_counter() - started


def plan_facts(
    conn: psycopg.Connection[Any],
    persona: Persona,
    statement: LiteralString,
    params: dict[str, Any],
    method: str = "GET",
) -> str:
    """How the policies ran: the group function's calls (InitPlans) and whether rows came from an index."""
    with as_persona(conn, persona, method=method) as cur:
        cur.execute("explain (format json, costs off) " + statement, params)
        row = cur.fetchone()
    assert row is not None
    (plan,) = row
    text = json.dumps(plan)
    init_plans = text.count('"Parent Relationship": "InitPlan"')
    seq_scans = text.count('"Seq Scan"')
    return f"{init_plans} initplan(s), {seq_scans} seq scan(s)"


def run(args: argparse.Namespace) -> int:
    with scratch_database("bench_groups", keep=args.keep) as dbname:
        model = with_group_copies(teams_model()) if args.group_copy == "deep" else teams_model()
        load_teams_app(app_conninfo(dbname))
        apply_owner_profile(dbname, model)
        generate(dbname, args)
        params = subject(dbname)
        member = Persona.signed_in(params["user"], is_anonymous=False)
        service = Persona.service()
        rows = []
        load_before = os.getloadavg()
        with connect_as_authenticator(app_conninfo(dbname)) as conn:
            for request in REQUESTS:
                with as_persona(conn, member, method=request.method) as cur:
                    cur.execute(request.owner, params)
                    seen = cur.fetchall()
                with as_persona(conn, service, method=request.method) as cur:
                    cur.execute(request.explicit, params)
                    expected = cur.fetchall()
                if sorted(map(str, seen)) != sorted(map(str, expected)):
                    print(f"{request.name}: the policies and the hand-written filter disagree", file=sys.stderr)
                    return 1
                owner_times, explicit_times = [], []
                for _ in range(args.repeat):
                    owner_times.append(time_request(conn, member, request.owner, params, request.method))
                    explicit_times.append(time_request(conn, service, request.explicit, params, request.method))
                owner, explicit = median(owner_times), median(explicit_times)
                rows.append(
                    [
                        request.name,
                        f"{len(seen)}",
                        f"{owner * 1000:.2f}",
                        f"{explicit * 1000:.2f}",
                        ratio(owner, explicit),
                        plan_facts(conn, member, request.owner, params, request.method),
                    ]
                )
            author_rows = author_against_members(dbname, conn, member, params, args.repeat, model)
            copied = any(t.group_copy for t in model.tables)
            copy_rows = (
                copy_against_path(dbname, conn, member, params, args.repeat, model)
                if args.compare_path and copied
                else []
            )
        headers = ["request (a plain member)", "rows", "owner ms", "explicit ms", "owner/explicit", "owner plan"]
        print(format_table(headers, rows))
        print()
        print(format_table(["the author's update", "policies of comments", "ms", "vs write: members"], author_rows))
        if copy_rows:
            print()
            print(format_table(["request (a plain member)", "comments' member test", "ms", "/explicit"], copy_rows))
        figures = {label: dict(zip(headers[1:], values, strict=True)) for label, *values in rows}
        write_figures(figures, ["owner/explicit"], conninfo=app_conninfo(dbname), load_before=load_before)
        sizes = (
            f"copyGroup on {', '.join(t.name for t in model.tables if t.group_copy) or 'no table'}; "
            f"{args.users} users, {args.projects} projects, {args.members} members each, "
            f"{args.tasks} tasks per project, {args.comments} comments per task; median of {args.repeat}"
        )
        print(sizes)
        print(machine_summary(app_conninfo(dbname)))
        print(
            "load average (1, 5, 15 min) before timing: {:.1f} {:.1f} {:.1f}; after: {:.1f} {:.1f} {:.1f}".format(
                *load_before, *os.getloadavg()
            )
        )
    return 0


def comment_policies(model: AccessModel, write: str) -> tuple[Any, ...]:
    """The owner profile's policies of comments with `write: author` (the teams app's) or `write: members`."""
    if write == "members":
        tables = tuple(
            replace(t, write="members", author_column=None, delete=None) if t.name == "comments" else t
            for t in model.tables
        )
        model = replace(model, tables=tables)
    return render.plan_policies(plan_access(model, "owner"))["comments"]


def author_against_members(
    dbname: str, conn: psycopg.Connection[Any], member: Persona, params: dict[str, Any], repeat: int, model: AccessModel
) -> list[list[str]]:
    """The author's update of their comment, timed under each set of policies in turn (blocks of runs,
    alternating, so a drift of the machine's speed falls on both), the author policies restored last."""
    times: dict[str, list[float]] = {"author": [], "members": []}
    with psycopg.connect(app_conninfo(dbname), autocommit=True) as admin:
        for block in range(4):
            for write in ("members", "author") if block % 2 else ("author", "members"):
                with admin.transaction():
                    catalog.replace_policies(admin, "public", "comments", comment_policies(model, write))
                time_request(conn, member, EDIT_MY_COMMENT, params, "PATCH")  # re-plans after the swap
                for _ in range(max(1, repeat // 2)):
                    times[write].append(time_request(conn, member, EDIT_MY_COMMENT, params, "PATCH"))
        with admin.transaction():
            catalog.replace_policies(admin, "public", "comments", comment_policies(model, "author"))
    author, members = median(times["author"]), median(times["members"])
    return [
        [
            "edit my comment",
            "write: author (author, delete: admins)",
            f"{author * 1000:.2f}",
            ratio(author, members) + "x",
        ],
        ["edit my comment", "write: members", f"{members * 1000:.2f}", "1.00x"],
    ]


def copy_against_path(
    dbname: str, conn: psycopg.Connection[Any], member: Persona, params: dict[str, Any], repeat: int, model: AccessModel
) -> list[list[str]]:
    """Comments' policies on their copy of the project id (copyGroup) against the same policies without
    it (the path through tasks) and the hand-written statement, in alternating blocks; the copy's restored."""
    policies = {
        "through tasks (no copy)": comment_policies(teams_model(), "author"),
        "on the copy (copyGroup)": comment_policies(model, "author"),
    }
    requests = [r for r in REQUESTS if r.name in ("a task's comments", "edit my comment")]
    times: dict[tuple[str, str], list[float]] = {}
    service = Persona.service()
    with psycopg.connect(app_conninfo(dbname), autocommit=True) as admin:
        try:
            for block in range(4):
                for name in list(policies) if block % 2 == 0 else list(policies)[::-1]:
                    with admin.transaction():
                        catalog.replace_policies(admin, "public", "comments", policies[name])
                    for request in requests:
                        time_request(conn, member, request.owner, params, request.method)  # re-plans after the swap
                        for _ in range(max(1, repeat // 2)):
                            times.setdefault((request.name, name), []).append(
                                time_request(conn, member, request.owner, params, request.method)
                            )
                            times.setdefault((request.name, "explicit"), []).append(
                                time_request(conn, service, request.explicit, params, request.method)
                            )
        finally:
            with admin.transaction():
                catalog.replace_policies(admin, "public", "comments", comment_policies(model, "author"))
    rows = []
    for request in requests:
        explicit = median(times[(request.name, "explicit")])
        for name in policies:
            ms = median(times[(request.name, name)])
            rows.append([request.name, name, f"{ms * 1000:.2f}", ratio(ms, explicit)])
        rows.append([request.name, "hand-written (service_role)", f"{explicit * 1000:.2f}", "1.00"])
    return rows


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--projects", type=int, default=2000)
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--comments", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument(
        "--group-copy", choices=("deep", "none"), default="deep",
        help="copyGroup on every table two or more hops below its group (deep, the default), or on none",
    )  # fmt: skip
    parser.add_argument(
        "--compare-path", action="store_true",
        help="also time comments' policies on the copy against the same policies without it (the path)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.projects > args.users:
        parser.error("--projects: at most one project per user")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
