"""`kill -9` of the CLI while pulumi-postgresql's Grants wait on another session's role lock.

The official plugin ends with its engine (bin/pulumi-resource-postgresql starts it with a
parent-death signal): it is gone within seconds and applies nothing once the lock is freed, with
or without scripts/env.sh's environment. scripts/recover then brings the stack back, the file
backend's empty checkpoint sidecar included, and its --destroy gives back the pre-stack catalog.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from pulumi import automation as auto

from supabase_access.sql.database import OFFICIAL_PROVIDER_PGOPTIONS
from tests.support.engine import REPO, changes, engine_env, new_stack
from tests.support.fault import (
    alive,
    catalog_snapshot,
    descendants,
    kill,
    reap,
    recover,
    run_recover,
    start_up,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.fault]

# The owner profile: anon holds Supabase's default privileges until its Grant revokes them all,
# so a Grant applied after the kill would show in the ACLs.
OWNER = {"supabase-access:environment": "prod", "supabase-access:profile": "owner"}
OPEN = {"supabase-access:environment": "dev", "supabase-access:profile": "open"}
HOLDER = "role-lock-holder"
OFFICIAL_PLUGIN = "pulumi-resource-postgresql"
# A plugin with a parent-death signal ends at once; seconds allow for a loaded 2-core machine.
ENDS_WITHIN_SECONDS = 5


def grants_waiting(dsn: str) -> list[int]:
    """Backends waiting on an advisory lock that are neither ours nor the holder: pulumi-postgresql's."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select pid from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' "
            "and wait_event = 'advisory' and application_name not in ('supabase-access', %s)",
            (HOLDER,),
        ).fetchall()
    return [pid for (pid,) in rows]


def table_acls(dsn: str) -> list[tuple[str, list[str]]]:
    """Each public table's ACL entries, sorted (a revoke and grant of the same privileges moves them)."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "select relname::text, array(select a::text from unnest(relacl) a order by 1) from pg_class "
            "where relnamespace = 'public'::regnamespace and relkind = 'r' order by 1"
        ).fetchall()


@contextmanager
def anon_role_lock(dsn: str) -> Iterator[psycopg.Connection]:
    """Another session holding pulumi-postgresql's per-role lock on anon (keyed on its oid)."""
    with psycopg.connect(dsn, autocommit=True, application_name=HOLDER) as holder:
        holder.execute("select pg_advisory_lock(oid::bigint) from pg_roles where rolname = 'anon'")
        yield holder


def kill_cli_while_grants_wait(work_dir: Path, dsn: str) -> list[tuple[str, list[str]]]:
    """Start `up`, kill -9 the CLI alone once a Grant waits on the held lock; the official plugin must
    end within seconds. Returns the ACLs once it ended (the other roles' Grants run until the kill)."""
    cli = start_up(work_dir, work_dir.name)
    below: list[int] = []
    try:
        wait_until(lambda: bool(grants_waiting(dsn)), 90, "a Grant waits on anon's role lock")
        below = descendants(cli.pid)
        plugins = [pid for pid in below if alive(pid, OFFICIAL_PLUGIN)]
        assert plugins, "the official plugin runs below the CLI"
        kill(cli, tree=False)
        wait_until(lambda: not any(alive(pid) for pid in plugins), ENDS_WITHIN_SECONDS, "the plugin ended")
        wait_until(lambda: not grants_waiting(dsn), ENDS_WITHIN_SECONDS, "its backend ended")
    finally:
        reap(below)
    return table_acls(dsn)


@pytest.mark.parametrize("pgoptions", ["", OFFICIAL_PROVIDER_PGOPTIONS], ids=["plain-shell", "env-sh-pgoptions"])
def test_the_official_plugin_ends_with_its_engine_and_applies_nothing_later(
    tmp_path: Path, fresh_db: str, pgoptions: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The environment the CLI runs in: a plain shell, or one with PGOPTIONS as scripts/env.sh gave it.
    monkeypatch.setenv("PGOPTIONS", pgoptions)
    stack, _, after_kill = killed_while_grants_wait(tmp_path / "local-prod", fresh_db, OWNER)
    time.sleep(2)  # what a surviving plugin would apply, it applies at once now the lock is free
    assert table_acls(fresh_db) == after_kill
    recover(stack)
    assert changes(stack.preview().change_summary) == {}


def killed_while_grants_wait(
    work_dir: Path, dsn: str, config: dict[str, str]
) -> tuple[auto.Stack, dict[str, list[tuple[object, ...]]], list[tuple[str, list[str]]]]:
    """A stack named after `work_dir`, its first `up` killed while Grants wait (the lock then freed):
    the stack, the catalog before it, the ACLs once the plugin ended."""
    stack = new_stack(work_dir, work_dir.name, dsn, config)
    before = catalog_snapshot(dsn)
    with anon_role_lock(dsn) as holder:
        after_kill = kill_cli_while_grants_wait(work_dir, dsn)
        holder.execute("select pg_advisory_unlock_all()")
    return stack, before, after_kill


def pending_operations(stack: auto.Stack) -> list[dict[str, object]]:
    return list((stack.export_stack().deployment or {}).get("pending_operations") or [])


def checkpoint_of(work_dir: Path) -> Path:
    return work_dir / "state" / ".pulumi" / "stacks" / "supabase-access" / f"{work_dir.name}.json"


def pending_operations_on_disk(work_dir: Path) -> list[dict[str, object]]:
    """Read from the checkpoint file itself: the kill may have landed while the storage library rewrote the
    `.attrs` sidecar beside it (left empty, every CLI command fails until scripts/recover removes it), but
    the checkpoint is replaced by a rename, so it is whole."""
    latest = json.loads(checkpoint_of(work_dir).read_text())["checkpoint"]["latest"]
    return list(latest.get("pending_operations") or [])


def wrapped_pulumi(work_dir: Path, command: str) -> subprocess.CompletedProcess[str]:
    """`command` through scripts/env.sh's pulumi, as an operator types it."""
    return subprocess.run(
        ["bash", "-c", f'source "{REPO}/scripts/env.sh" && {command}'],
        cwd=work_dir,
        env={**os.environ, **engine_env(work_dir / "state")},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("damage", ["empty-sidecar", "torn-checkpoint"])
def test_recover_repairs_the_checkpoint_and_clears_pending_creates(tmp_path: Path, fresh_db: str, damage: str) -> None:
    work_dir = tmp_path / "local"
    stack, before, _ = killed_while_grants_wait(work_dir, fresh_db, OPEN)
    checkpoint = checkpoint_of(work_dir)
    if damage == "empty-sidecar":
        # A kill during the checkpoint write leaves the storage library's sidecar empty: every command then fails,
        # and scripts/env.sh's pulumi says what fixes it.
        Path(f"{checkpoint}.attrs").write_bytes(b"")
        failure, repair = "failed to load checkpoint: EOF", "removed"
        told = wrapped_pulumi(work_dir, "pulumi stack export -s local")
        assert told.returncode != 0 and "is empty: a killed run was writing the checkpoint" in told.stderr, told.stderr
        assert "Run scripts/recover [stack]" in told.stderr
    else:
        # A checkpoint cut short (a full disk, a copy interrupted): Pulumi's own copies hold the last good one.
        checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
        failure, repair = "checkpoint", "restored"
    with pytest.raises(auto.errors.CommandError, match=failure):
        stack.preview()

    result = run_recover(work_dir, "local")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"[recover] {repair} " in result.stdout, result.stdout
    assert pending_operations(stack) == []
    assert changes(stack.preview().change_summary) == {}
    # Once recovered, destroy gives back what was there before the stack.
    stack.destroy()
    assert catalog_snapshot(fresh_db) == before


def test_recover_then_destroy_gives_back_the_pre_stack_catalog(tmp_path: Path, fresh_db: str) -> None:
    work_dir = tmp_path / "local"
    stack, before, _ = killed_while_grants_wait(work_dir, fresh_db, OPEN)
    assert [op["type"] for op in pending_operations_on_disk(work_dir)], "the killed run left pending operations"

    # A bare cancel + destroy would leave the objects of creates the killed run never recorded:
    # scripts/env.sh's pulumi refuses it and names the way out (or, when the kill emptied the checkpoint's
    # sidecar, the cancel fails and it names the same way out).
    bare = wrapped_pulumi(work_dir, "pulumi cancel --yes -s local && pulumi destroy --yes -s local")
    assert bare.returncode != 0 and "scripts/recover [stack] --destroy" in bare.stderr, bare.stdout + bare.stderr
    result = run_recover(work_dir, "local", "--destroy")
    assert result.returncode == 0, result.stdout + result.stderr
    assert catalog_snapshot(fresh_db) == before
    deployment = stack.export_stack().deployment or {}
    assert not deployment.get("resources") and not deployment.get("pending_operations")
    assert json.dumps(deployment)  # a readable checkpoint
