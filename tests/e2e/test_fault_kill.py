"""`kill -9` of the CLI (or its whole process tree) while the provider waits on a lock: no
plugin backend is left holding a connection or lock, and the next `up` converges.

The moment is chosen with our own advisory lock on public.sessions, held by the test: the
preflight passes, other tables are changed, and the provider waits for sessions' lock.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from pulumi import automation as auto

from tests.support.engine import changes, new_stack
from tests.support.fault import (
    GONE_WITHIN_SECONDS,
    catalog_snapshot,
    index_validity,
    kill,
    kill_up_waiting_on,
    plugin_backends,
    recover,
    up_waiting_on_index_build,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.fault]

OPEN = {"supabase-access:environment": "dev", "supabase-access:profile": "open"}


@pytest.mark.parametrize("tree", [False, True], ids=["cli-alone", "process-tree"])
def test_kill_during_a_lock_wait_leaves_no_backend_and_up_recovers(tmp_path: Path, fresh_db: str, tree: bool) -> None:
    stack = new_stack(tmp_path / "local", "local", fresh_db, OPEN)
    kill_up_waiting_on(tmp_path / "local", fresh_db, "public.sessions", tree=tree)
    recover(stack)
    assert changes(stack.preview().change_summary) == {}


OWNER = {"supabase-access:environment": "prod", "supabase-access:profile": "owner"}
TURNS_INDEX = "turns_session_id_id_rls_idx"
TURNS_BUILD = "turns_session_id_id_rls_build"
APP_TURNS_INDEX = "turns_session_id_idx"  # the app's own: with it, the lookup needs no index of ours


def without_app_turns_index(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"drop index {APP_TURNS_INDEX}")


def test_a_concurrent_index_build_killed_midway_is_rebuilt_and_destroy_is_exact(tmp_path: Path, fresh_db: str) -> None:
    without_app_turns_index(fresh_db)  # so the lookup gets an index of ours, built concurrently
    before_stack = catalog_snapshot(fresh_db)
    stack = new_stack(tmp_path / "local-prod", "local-prod", fresh_db, OWNER)
    stack.up()
    clean = catalog_snapshot(fresh_db)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(f"drop index {TURNS_INDEX}")  # drift: the next `up` builds it again
    # A writer's open transaction on turns: the concurrent build waits for it, after it has
    # put its (still invalid) index in the catalog.
    hold = ["lock table public.turns in row exclusive mode"]
    with up_waiting_on_index_build(tmp_path / "local-prod", fresh_db, TURNS_BUILD, hold) as cli:
        kill(cli, tree=True)
        wait_until(lambda: not plugin_backends(fresh_db), GONE_WITHIN_SECONDS, "no plugin backend is left")
    assert index_validity(fresh_db, TURNS_BUILD) is False  # what an interrupted build leaves
    recover(stack)
    assert catalog_snapshot(fresh_db) == clean
    stack.destroy()
    assert catalog_snapshot(fresh_db) == before_stack


def open_policies_on_sessions(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        names = {r[0] for r in conn.execute("select policyname from pg_policies where tablename = 'sessions'")}
    return names == {f"sessions_{c}_open" for c in ("select", "insert", "update", "delete")}


def test_a_first_up_killed_after_opening_a_table_leaves_destroy_exact(tmp_path: Path, fresh_db: str) -> None:
    # Killed while the grants wait (sessions already opened, its FK maybe dropped): the rerun
    # converges and destroy gives back exactly the database from before the stack.
    before_stack = catalog_snapshot(fresh_db)
    stack = new_stack(tmp_path / "local", "local", fresh_db, OPEN)
    kill_up_waiting_on(
        tmp_path / "local", fresh_db, "public.segments", tree=True, after=lambda: open_policies_on_sessions(fresh_db)
    )
    recover(stack)
    assert changes(stack.preview().change_summary) == {}
    stack.destroy()
    assert catalog_snapshot(fresh_db) == before_stack


def test_changes_the_engine_never_recorded_are_not_taken_for_the_baseline(tmp_path: Path, fresh_db: str) -> None:
    # The case, made exact: the provider committed the open policies and the FK drop,
    # the engine never recorded them (its CLI died in between). Deleting them from the state
    # makes the next `up` create them again over our own changes.
    before_stack = catalog_snapshot(fresh_db)
    stack = new_stack(tmp_path / "local", "local", fresh_db, OPEN)
    stack.up()
    exported = stack.export_stack()
    state = dict(exported.deployment or {})
    lost = ("TablePolicies", "ConstraintRemoval")
    # What depends on them (the Grants) came after them, so the engine recorded none of it either.
    gone = {r["urn"] for r in state["resources"] if r["type"].endswith(lost)}
    while more := {r["urn"] for r in state["resources"] if gone & set(r.get("dependencies") or ())} - gone:
        gone |= more
    kept = [r for r in state["resources"] if r["urn"] not in gone]
    assert len(kept) < len(state["resources"])
    stack.import_stack(auto.Deployment(version=exported.version, deployment={**state, "resources": kept}))
    stack.up()
    stack.destroy()
    assert catalog_snapshot(fresh_db) == before_stack
