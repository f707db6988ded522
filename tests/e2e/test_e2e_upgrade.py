"""A stack made by an earlier main upgrades with one `pulumi up`, never opening anything on the way."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.e2e.test_e2e_storage import stack_config
from tests.e2e.test_fault_storage import probe
from tests.support.engine import REPO, changes, new_stack, write_project
from tests.support.fault import Prober, catalog_snapshot, kill_up_waiting_on, recover, wider
from tests.support.localdb import legacy_platform
from tests.support.storage import add_user, bucket_catalog, owner_access, put_object
from tests.support.teams_app import load_teams_app

# Written against the legacy platform's auto-grants (what the stack closes or keeps from them).
pytestmark = [pytest.mark.e2e, legacy_platform]

# The last main whose grants were supabase-access TableGrant resources (one per role, all tables).
TABLE_GRANT_MAIN = "d3a36f78f2e137ce8648bd30c0af62c1b2f3381c"
# The last main before one spec per resource (issue 12): each resource described three times.
BEFORE_SPECS_MAIN = "835353a1f2c7216d1f76859ff25269c912cebddf"
# The last main whose Storage object policies read the first folder with storage.foldername (058bda8
# renders it as split_part, the bucket scoped by a CASE: same access, faster).
FOLDERNAME_MAIN = "4007220586f6d4c38d0b1570d4e24ab9aaa787fd"
# The last main whose owner buckets' policies called auth.uid() themselves (before callerFunction, issue 25).
BEFORE_CALLER_FUNCTION_MAIN = "e7e97ea46decd45586b758e84cf27bd16abc0871"
# The last main whose member buckets read <membership>_groups() (before <membership>_group_ids()).
BEFORE_GROUP_IDS_MAIN = "dd7ec4b2c06ac9a7d1f78de0154927d724c68026"
OWNER = {"supabase-access:environment": "prod", "supabase-access:profile": "owner"}
TABLES = ("sessions", "segments", "turns", "actions", "generated_content")


def checkout(commit: str, into: Path) -> Path:
    """The project as it was at `commit` (from this repository's history), using today's .venv."""
    if subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{commit}^{{commit}}"], check=False).returncode:
        pytest.fail(f"commit {commit} is not in this clone's history (a shallow clone?)", pytrace=False)
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    (into / ".venv").symlink_to(REPO / ".venv")
    return into


def api_privileges(dsn: str) -> dict[tuple[str, str], set[str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select c.relname, r.rolname, a.privilege_type from pg_class c "
            "join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'public' "
            "cross join lateral aclexplode(c.relacl) a join pg_roles r on r.oid = a.grantee "
            "where c.relname = any(%s) and r.rolname in ('anon', 'authenticated')",
            (list(TABLES),),
        ).fetchall()
    found: dict[tuple[str, str], set[str]] = {}
    for table, role, privilege in rows:
        found.setdefault((table, role), set()).add(privilege)
    return found


def test_a_table_grant_stack_upgrades_with_one_up(tmp_path: Path, fresh_db: str) -> None:
    old = checkout(TABLE_GRANT_MAIN, tmp_path / "old-main")
    work_dir = tmp_path / "stack"
    stack = new_stack(work_dir, "local-prod", fresh_db, OWNER, program=old)
    stack.up()
    closed = {(table, "authenticated"): {"SELECT", "INSERT", "UPDATE", "DELETE"} for table in TABLES}
    assert api_privileges(fresh_db) == closed

    write_project(work_dir)  # today's program and provider
    upgrade = stack.up()
    # 11, plus the FK kept present, the default privileges' baseline, the RLS event trigger,
    # 6 DefaultPrivileges (anon and authenticated x table, sequence, function), service_role's 5
    # Grants, 5 SequencePrivileges and the schema's FunctionPrivileges; the updates include the
    # preflight recording the stack's tables (claims).
    assert changes(upgrade.summary.resource_changes) == {"create": 31, "delete": 2, "update": 6}, upgrade.stdout
    assert "replace" not in (upgrade.summary.resource_changes or {})
    assert "TableGrant is retired: the privileges stay as they are" in upgrade.stdout
    # The old TableGrant's delete used to put back what it found before the stack (Supabase's
    # anon=arwdDxt): now anon still has nothing and nobody holds TRUNCATE.
    assert api_privileges(fresh_db) == closed
    assert changes(stack.preview(refresh=True).change_summary) == {}


OPEN = {"supabase-access:environment": "dev", "supabase-access:profile": "open"}


@pytest.mark.parametrize(
    ("stack_name", "config", "updates"),
    [("local-prod", OWNER, {"AccessPreflight", "DefaultPrivilegesBaseline"}), ("local", OPEN, {"AccessPreflight"})],
    ids=["owner", "open"],
)
def test_a_stack_made_before_the_specs_upgrades_recording_its_tables_in_place(
    tmp_path: Path, fresh_db: str, stack_name: str, config: dict[str, str], updates: set[str]
) -> None:
    old = checkout(BEFORE_SPECS_MAIN, tmp_path / "old-main")
    work_dir = tmp_path / "stack"
    stack = new_stack(work_dir, stack_name, fresh_db, config, program=old)
    stack.up()
    applied = catalog_snapshot(fresh_db)

    write_project(work_dir)  # today's program and provider: same tokens, same inputs
    upgrade = stack.up()
    # In place, nothing replaced: the preflight claims the stack's tables, and the baseline of the
    # default privileges records the stack among its users (stacks own what they manage). Today's
    # program also declares service_role (its Grants; its unguarded privileges taken: an update of each
    # RowLevelSecurity), each table's SequencePrivileges and the schema's FunctionPrivileges (issue 20).
    assert all(f"supabase-access:index:{kind}" in upgrade.stdout for kind in updates), upgrade.stdout
    assert changes(upgrade.summary.resource_changes) == {
        "create": 2 * len(TABLES) + 1,
        "update": len(TABLES) + len(updates),
    }, upgrade.stdout
    # That main knew PostgreSQL 15's privileges only, so on 17 its stack left MAINTAIN with the API roles:
    # today's RowLevelSecurity takes it. Only service_role's entries change besides.
    expected = maintain_taken_from_api_roles(applied) if server_major(fresh_db) >= 17 else applied
    assert without_server(catalog_snapshot(fresh_db)) == without_server(expected)
    assert changes(stack.up().summary.resource_changes) == {}
    assert changes(stack.preview(refresh=True).change_summary) == {}


def server_major(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.info.server_version // 10000


def maintain_taken_from_api_roles(snapshot: dict[str, list[tuple[object, ...]]]) -> dict[str, list[tuple[object, ...]]]:
    """`snapshot` without MAINTAIN (`m`) in anon's and authenticated's ACL entries on the model's tables."""

    def taken(entry: str) -> str:
        grantee, _, rest = entry.partition("=")
        privileges, _, grantor = rest.partition("/")
        return f"{grantee}={privileges.replace('m', '')}/{grantor}" if grantee in ("anon", "authenticated") else entry

    tables = []
    for row in snapshot["tables"]:
        schema, name, acl, *flags = row
        if schema == "public" and name in TABLES and isinstance(acl, list):
            row = (schema, name, sorted(taken(str(e)) for e in acl), *flags)
        tables.append(row)
    return {**snapshot, "tables": tables}


def without_server(snapshot: dict[str, list[tuple[object, ...]]]) -> dict[str, list[tuple[object, ...]]]:
    """`snapshot` without service_role's ACL entries on tables (which today's stacks declare themselves)."""
    tables = [
        (schema, name, [e for e in acl if not str(e).startswith("service_role=")], *rest)  # type: ignore[attr-defined]
        for schema, name, acl, *rest in snapshot["tables"]
    ]
    return {**snapshot, "tables": tables}


def object_policies(dsn: str) -> dict[str, str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select policyname, concat_ws(' | ', qual, with_check) from pg_policies "
            "where schemaname = 'storage' and tablename = 'objects'"
        ).fetchall()
    return {str(name): str(text) for name, text in rows}


def test_a_stack_with_older_object_policies_gets_todays_in_place(tmp_path: Path, fresh_db: str) -> None:
    """Object policies an older main rendered (same access, slower) are out of date: the preview shows an update
    of each bucket concerned (no replace), `up` makes them again in the bucket's own transaction while a prober
    acting as the Storage API sees the access of before in every sample, then nothing is left to change."""
    load_teams_app(fresh_db)
    old_main = checkout(FOLDERNAME_MAIN, tmp_path / "old-main")
    work_dir = tmp_path / "prod"
    stack = new_stack(work_dir, "prod", fresh_db, stack_config("prod"), program=old_main)
    stack.up()
    old_form = {name for name, text in object_policies(fresh_db).items() if "foldername" in text}
    assert {"avatars: select", "project-files: select"} <= old_form, object_policies(fresh_db)
    users = {name: add_user(fresh_db) for name in ("alice", "bob", "carol")}
    project = uuid.uuid4()
    with psycopg.connect(fresh_db) as conn:
        conn.execute("insert into projects (id, owner_id, name) values (%s, %s, 'a')", (project, users["alice"]))
    put_object(fresh_db, "avatars", f"{users['alice']}/me.png", users["alice"])
    put_object(fresh_db, "project-files", f"{project}/plan.pdf")
    put_object(fresh_db, "exports", "dump.csv")
    before = probe(fresh_db, users)

    write_project(work_dir)  # today's program and provider: same config
    preview = stack.preview(diff=True)
    # The two folder kinds' buckets, in place, and the group functions gaining the ids function member
    # buckets read; nothing else changed since that main.
    assert changes(preview.change_summary) == {"update": 3}, preview.stdout
    for bucket in ("avatars", "project-files"):
        assert f"StorageBucket::{bucket}-bucket]" in preview.stdout, preview.stdout
    assert "GroupFunctions::project_members-group-functions]" in preview.stdout, preview.stdout
    with Prober(lambda: probe(fresh_db, users)) as prober:
        upgrade = stack.up()
    assert "replace" not in (upgrade.summary.resource_changes or {}), upgrade.stdout
    assert [name for name, text in object_policies(fresh_db).items() if "foldername" in text] == []
    assert probe(fresh_db, users) == before
    assert prober.samples, "the prober took no sample"
    violations = [w for sample in prober.samples if (w := wider(sample, before, before))]
    assert violations == [], f"{len(violations)} of {len(prober.samples)} samples saw wider access: {violations[:3]}"
    assert changes(stack.preview(refresh=True).change_summary) == {}


def test_a_stack_with_an_owner_bucket_made_before_the_caller_function_updates_it_in_place(
    tmp_path: Path, fresh_db: str
) -> None:
    """The owner bucket's StorageBucket gains callerFunction: an update (no replace) that makes the function and
    the bucket's policies again in one transaction, while a prober acting as the Storage API sees the access of
    before in every sample; then nothing left to change, and destroy gives back the catalog exactly."""
    load_teams_app(fresh_db)
    before = catalog_snapshot(fresh_db), bucket_catalog(fresh_db)
    old = checkout(BEFORE_CALLER_FUNCTION_MAIN, tmp_path / "old-main")
    work_dir = tmp_path / "stack"
    stack = new_stack(work_dir, "prod", fresh_db, stack_config("prod"), program=old)
    stack.up()
    alice, bob = add_user(fresh_db), add_user(fresh_db)
    put_object(fresh_db, "avatars", f"{alice}/a.png", alice)
    put_object(fresh_db, "avatars", f"{bob}/b.png", bob)
    access = owner_access(fresh_db, alice, bob)
    assert access["alice lists"] == 1 and access["alice uploads into bob's"] == 0, access

    write_project(work_dir)  # today's program and provider: same config
    with Prober(lambda: owner_access(fresh_db, alice, bob)) as prober:
        upgrade = stack.up(diff=True)
    # The avatars bucket's callerFunction; the project-files bucket's groupFunction and its GroupFunctions
    # (the ids function member buckets read, made since that main).
    assert changes(upgrade.summary.resource_changes) == {"update": 3}, upgrade.stdout
    assert "supabase-access:index:StorageBucket" in upgrade.stdout and "callerFunction" in upgrade.stdout
    assert "project_members_group_ids" in upgrade.stdout, upgrade.stdout
    assert prober.samples, "the prober took no sample"
    assert [s for s in prober.samples if s != access] == []
    with psycopg.connect(fresh_db) as conn:
        quals = conn.execute(
            "select coalesce(qual, '') || coalesce(with_check, '') from pg_policies"
            " where schemaname = 'storage' and policyname like 'avatars: %'"
        ).fetchall()
    assert quals and all("auth_uid_text()" in q and "auth.uid()" not in q for (q,) in quals), quals
    assert changes(stack.preview(refresh=True).change_summary) == {}

    with psycopg.connect(fresh_db) as conn:
        conn.execute("set storage.allow_delete_query = 'true'")
        conn.execute("delete from storage.objects")
    stack.destroy()
    assert (catalog_snapshot(fresh_db), bucket_catalog(fresh_db)) == before


def group_ids_function_made(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("select to_regprocedure('supabase_access_rls.project_members_group_ids()')").fetchone()
    return row is not None and row[0] is not None


@pytest.mark.fault
@pytest.mark.parametrize(
    "locked",
    [
        "supabase_access_rls.(helper schema)",  # GroupFunctions about to make the ids function
        "storage.objects",  # the functions made, the member bucket about to read them
    ],
    ids=["group-functions", "bucket"],
)
def test_the_group_ids_upgrade_killed_while_waiting_opens_nothing_and_recovers(
    tmp_path: Path, fresh_db: str, locked: str
) -> None:
    """A stack from before <membership>_group_ids(), its upgrade `up` killed (the whole tree) while a step waits
    for its lock: nothing half-applied, a prober acting as the Storage API sees the access of before in every
    sample, through scripts/recover too; then nothing left to change, and destroy gives back the catalog."""
    load_teams_app(fresh_db)
    before = catalog_snapshot(fresh_db), bucket_catalog(fresh_db)
    old_main = checkout(BEFORE_GROUP_IDS_MAIN, tmp_path / "old-main")
    work_dir = tmp_path / "prod"
    stack = new_stack(work_dir, "prod", fresh_db, stack_config("prod"), program=old_main)
    stack.up()
    users = {name: add_user(fresh_db) for name in ("alice", "bob", "carol")}
    project = uuid.uuid4()
    with psycopg.connect(fresh_db) as conn:
        conn.execute("insert into projects (id, owner_id, name) values (%s, %s, 'a')", (project, users["alice"]))
        conn.execute("insert into project_members (project_id, user_id) values (%s, %s)", (project, users["bob"]))
    put_object(fresh_db, "project-files", f"{project}/plan.pdf")
    put_object(fresh_db, "avatars", f"{users['alice']}/me.png", users["alice"])
    old = probe(fresh_db, users)
    assert old["bob list project-files"] == 1 and old["carol list project-files"] == 0, old

    write_project(work_dir)  # today's program and provider: same config
    with Prober(lambda: probe(fresh_db, users)) as prober:
        kill_up_waiting_on(work_dir, fresh_db, locked, tree=True, wait_seconds=120)
        assert probe(fresh_db, users) == old, "nothing half-applied"
        # Killed where meant: before the ids function, or with it made and the bucket not yet reading it.
        assert group_ids_function_made(fresh_db) == (locked == "storage.objects")
        recover(stack)
    assert probe(fresh_db, users) == old
    assert prober.samples, "the prober took no sample"
    violations = [w for sample in prober.samples if (w := wider(sample, old, old))]
    assert violations == [], f"{len(violations)} of {len(prober.samples)} samples saw wider access: {violations[:3]}"
    with psycopg.connect(fresh_db) as conn:
        quals = conn.execute(
            "select string_agg(coalesce(qual, '') || coalesce(with_check, ''), ' ') from pg_policies"
            " where schemaname = 'storage' and policyname like 'project-files: %'"
        ).fetchone()
    assert quals is not None and "project_members_group_ids()" in quals[0], quals
    assert changes(stack.preview(refresh=True).change_summary) == {}

    with psycopg.connect(fresh_db) as conn:
        conn.execute("set storage.allow_delete_query = 'true'")
        conn.execute("delete from storage.objects")
    stack.destroy()
    assert (catalog_snapshot(fresh_db), bucket_catalog(fresh_db)) == before
