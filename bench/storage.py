"""What the object policies of Storage buckets cost a user's requests, against the same request with the filter
written by hand.

    python -m bench.storage [--objects 1000000 --users 10000 --projects 2000 --members 4 --repeat 30]

Creates a database of its own, replaces the reference app with the teams app (tests/fixtures/teams_app), makes the
projects' group functions (GroupFunctions) and two buckets with the provider's own StorageBucket: `avatars` (owner:
folder, `<user id>/...`) and `project-files` (member: {group: projects}, `<project id>/...`), fills storage.objects
with `--objects` objects, half in each bucket, and times a project member's requests (one avatar, their avatar
folder, one of their project's files, the project's folder, the avatars bucket) as the Storage API runs them
(review.postgrest): as `authenticated` under the policies ("policies"), and as `service_role` (no RLS) with the
same filter written by hand ("by hand"). Prints the medians, their ratio (the target: at most 1.2) and how often
each plan calls the user's id and the group function (InitPlans).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, LiteralString

import psycopg

from bench.common import (
    app_conninfo,
    format_table,
    machine_summary,
    median,
    provider_database,
    ratio,
    scratch_database,
    write_figures,
)
from bench.groups import load_teams_app, plan_facts, teams_model, time_request
from review.postgrest import Persona, as_persona, connect_as_authenticator
from supabase_access.model.buckets import CALLER_FUNCTION
from supabase_access.model.profiles import plan_access
from supabase_access.model.rule_data import group_lookup_to_plain
from supabase_access.provider.resources.group_functions import GroupFunctions
from supabase_access.provider.resources.storage_bucket import StorageBucket

# What the policies check, written by hand for service_role: the first folder as the policies read it
# (`(storage.foldername(name))[1]` without the function call, see render.bucket_policies), so the ratio
# is what the policies cost, not which expression finds the folder.
FIRST_FOLDER = "split_part(name, '/', 1)"
IN_A_FOLDER = " and strpos(name, '/') > 0"
MY_GROUPS = (
    "(select project_id::text from project_members where user_id = %(user)s "
    "union select id::text from projects where owner_id = %(user)s)"
)


@dataclass(frozen=True)
class Request:
    name: str
    policies: LiteralString
    by_hand: LiteralString


REQUESTS = (
    Request(
        "download my avatar",
        "select id, name from storage.objects where bucket_id = 'avatars' and name = %(avatar)s",
        "select id, name from storage.objects where bucket_id = 'avatars' and name = %(avatar)s"
        " and " + FIRST_FOLDER + " = %(user)s::text" + IN_A_FOLDER,
    ),
    Request(
        "list my avatar folder",
        "select name from storage.objects where bucket_id = 'avatars' and name >= %(folder)s and name < %(folder_end)s"
        " order by name limit 100",
        "select name from storage.objects where bucket_id = 'avatars' and name >= %(folder)s and name < %(folder_end)s"
        " and " + FIRST_FOLDER + " = %(user)s::text" + IN_A_FOLDER + " order by name limit 100",
    ),
    Request(
        "download a project's file",
        "select id, name from storage.objects where bucket_id = 'project-files' and name = %(project_file)s",
        "select id, name from storage.objects where bucket_id = 'project-files' and name = %(project_file)s"
        " and " + FIRST_FOLDER + " in " + MY_GROUPS + IN_A_FOLDER,
    ),
    Request(
        "list a project's files",
        "select name from storage.objects where bucket_id = 'project-files'"
        " and name >= %(project_folder)s and name < %(project_folder_end)s order by name limit 100",
        "select name from storage.objects where bucket_id = 'project-files'"
        " and name >= %(project_folder)s and name < %(project_folder_end)s"
        " and " + FIRST_FOLDER + " in " + MY_GROUPS + IN_A_FOLDER + " order by name limit 100",
    ),
    Request(
        "list the avatars bucket (no folder)",
        "select name from storage.objects where bucket_id = 'avatars' order by name limit 100",
        "select name from storage.objects where bucket_id = 'avatars'"
        " and " + FIRST_FOLDER + " = %(user)s::text" + IN_A_FOLDER + " order by name limit 100",
    ),
)


def apply_buckets(dbname: str) -> None:
    """The group functions and both buckets (rows and policies), as `up` makes them."""
    (lookup,) = plan_access(teams_model(), "owner").group_lookups
    db = provider_database(dbname)
    try:
        functions = GroupFunctions()
        functions.create(db, functions.check(db, {}, {"schema": "public", **group_lookup_to_plain(lookup)}), print)
        bucket = StorageBucket()
        for inputs in (
            {"bucketId": "avatars", "access": "owner-folder", "callerFunction": CALLER_FUNCTION},
            {
                "bucketId": "project-files",
                "access": "member",
                "groupFunction": f"{lookup.helper_schema}.{lookup.member_ids_function}",
            },
        ):
            bucket.create(db, bucket.check(db, {}, inputs), print)
    finally:
        db.close()


def generate(dbname: str, args: argparse.Namespace) -> None:
    """Users, one project for each of the first `projects` users with `members` members, and the objects: half in
    the users' avatar folders, half in the projects' folders, spread evenly."""
    half = args.objects // 2
    with psycopg.connect(app_conninfo(dbname), autocommit=True) as conn:
        conn.execute("insert into auth.users (id) select gen_random_uuid() from generate_series(1, %s)", (args.users,))
        conn.execute(
            "create temporary table bench_users as select id, row_number() over (order by id) n from auth.users"
        )
        conn.execute(
            "insert into projects (owner_id, name) select id, 'p' || n from bench_users where n <= %s", (args.projects,)
        )
        conn.execute(
            "create temporary table bench_projects as select id, row_number() over (order by id) n from projects"
        )
        conn.execute(
            "insert into project_members (project_id, user_id) select p.id, u.id from bench_projects p"
            " cross join generate_series(1, %s) k join bench_users u on u.n = ((p.n * 7 + k * 7919) %% %s) + 1"
            " where u.id <> (select owner_id from projects where id = p.id) on conflict do nothing",
            (args.members, args.users),
        )
        conn.execute(
            "insert into storage.objects (bucket_id, name, owner_id)"
            " select 'avatars', u.id || '/file-' || k || '.png', u.id::text from generate_series(1, %s) k"
            " join bench_users u on u.n = (k %% %s) + 1",
            (half, args.users),
        )
        conn.execute(
            "insert into storage.objects (bucket_id, name)"
            " select 'project-files', p.id || '/doc-' || k || '.pdf' from generate_series(1, %s) k"
            " join bench_projects p on p.n = (k %% %s) + 1",
            (args.objects - half, args.projects),
        )
        conn.execute("vacuum analyze")


def subject(dbname: str) -> dict[str, Any]:
    """A plain member of a project (not its owner), one of their avatars, one of the project's files and the
    project's folder."""
    with psycopg.connect(app_conninfo(dbname)) as conn:
        row = conn.execute(
            "select m.user_id, m.project_id, (select name from storage.objects where bucket_id = 'avatars'"
            "  and name like m.user_id || '/%%' limit 1),"
            " (select name from storage.objects where bucket_id = 'project-files'"
            "  and name like m.project_id || '/%%' limit 1)"
            " from project_members m order by m.user_id limit 1"
        ).fetchone()
    assert row is not None and None not in row, "no member with an avatar and a project file in the generated data"
    user, project, avatar, project_file = row
    return {
        "user": user,
        "avatar": avatar,
        "project_file": project_file,
        "folder": f"{user}/",
        "folder_end": f"{user}0",  # '0' follows '/': the range is the folder
        "project_folder": f"{project}/",
        "project_folder_end": f"{project}0",
    }


def run(args: argparse.Namespace) -> int:
    with scratch_database("bench_storage", keep=args.keep) as dbname:
        load_teams_app(app_conninfo(dbname))
        apply_buckets(dbname)
        generate(dbname, args)
        params = subject(dbname)
        user = Persona.signed_in(params["user"], is_anonymous=False)
        service = Persona.service()
        rows = []
        load_before = os.getloadavg()
        with connect_as_authenticator(app_conninfo(dbname)) as conn:
            for request in REQUESTS:
                with as_persona(conn, user, method="GET") as cur:
                    seen = cur.execute(request.policies, params).fetchall()
                with as_persona(conn, service, method="GET") as cur:
                    expected = cur.execute(request.by_hand, params).fetchall()
                if sorted(map(str, seen)) != sorted(map(str, expected)):
                    print(f"{request.name}: the policies and the hand-written filter disagree", file=sys.stderr)
                    return 1
                policy_times, hand_times = [], []
                for _ in range(args.repeat):
                    policy_times.append(time_request(conn, user, request.policies, params))
                    hand_times.append(time_request(conn, service, request.by_hand, params))
                policies, by_hand = median(policy_times), median(hand_times)
                rows.append(
                    [
                        request.name,
                        f"{len(seen)}",
                        f"{policies * 1000:.2f}",
                        f"{by_hand * 1000:.2f}",
                        ratio(policies, by_hand),
                        plan_facts(conn, user, request.policies, params),
                    ]
                )
        headers = ["request (a project member)", "rows", "policies ms", "by hand ms", "policies/by hand", "plan"]
        print(format_table(headers, rows))
        figures = {label: dict(zip(headers[1:], values, strict=True)) for label, *values in rows}
        write_figures(figures, ["policies/by hand"], conninfo=app_conninfo(dbname), load_before=load_before)
        print(
            f"{args.objects} objects (half avatars, half project files), {args.users} users, {args.projects} "
            f"projects with {args.members} members each; median of {args.repeat}; target: policies/by hand <= 1.2"
        )
        print(machine_summary(app_conninfo(dbname)))
        print(
            "load average (1, 5, 15 min) before timing: {:.1f} {:.1f} {:.1f}; after: {:.1f} {:.1f} {:.1f}".format(
                *load_before, *os.getloadavg()
            )
        )
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--projects", type=int, default=2_000)
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args(argv)
    if args.projects > args.users:
        parser.error("--projects: at most one project per user")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
