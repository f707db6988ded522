"""`kill -9` of a whole `up` while an owner copy is being filled or indexed: the next `up` (after
`pulumi cancel`) finishes it, and `destroy` gives back the catalog from before the stack."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from supabase_access.sql.transaction import LOCK_NAMESPACE
from tests.support.engine import changes, new_stack
from tests.support.fault import (
    GONE_WITHIN_SECONDS,
    catalog_snapshot,
    descendants,
    index_validity,
    kill,
    plugin_backends,
    reap,
    recover,
    start_up,
    up_waiting_on_index_build,
    wait_until,
)
from tests.support.owner_copy import COPY_OWNER

pytestmark = [pytest.mark.e2e, pytest.mark.fault]

COPY_INDEX = "actions_user_id_copy_idx"
COPY_BUILD = "actions_user_id_copy_build"


def add_actions(dsn: str, count: int) -> None:
    """One user's session and turns with `count` actions, written before the stack."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("insert into auth.users (id) values ('00000000-0000-4000-8000-000000000001')")
        conn.execute(
            "with s as (insert into sessions (user_id) values ('00000000-0000-4000-8000-000000000001') returning id), "
            "t as (insert into turns (session_id, speaker) select s.id, 'user' from s, generate_series(1, 100) "
            "returning id) insert into actions (turn_id, kind) "
            "select t.id, 'click' from t, generate_series(1, %s / 100)",
            (count,),
        )


def column_added(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select exists (select from pg_attribute where attrelid = 'public.actions'::regclass "
            "and attname = 'user_id' and not attisdropped)"
        ).fetchone()
    return bool(row and row[0])


def copies(dsn: str) -> tuple[int, int]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("select count(*), count(user_id) from actions").fetchone()
    assert row is not None
    return row[0], row[1]


def test_a_fill_killed_midway_is_finished_by_the_next_up(tmp_path: Path, fresh_db: str) -> None:
    add_actions(fresh_db, 200_000)
    before = catalog_snapshot(fresh_db)
    stack = new_stack(tmp_path / "local-prod", "local-prod", fresh_db, COPY_OWNER)
    cli = start_up(tmp_path / "local-prod", "local-prod")
    below: list[int] = []
    try:
        # Once the fill has written a batch, our lock on actions stops it at its next one (taken as soon as the
        # column is in, the lock could stop the fill before its first batch: nothing filled, not midway).
        wait_until(lambda: column_added(fresh_db) and copies(fresh_db)[1] > 0, 60, "the fill has written a batch")
        with psycopg.connect(fresh_db, autocommit=True, application_name="fault-test-holder") as holder:
            holder.execute("select pg_advisory_lock(hashtext(%s))", (f"{LOCK_NAMESPACE}public.actions",))
            wait_until(lambda: bool(plugin_backends(fresh_db, waiting=True)), 25, "the fill waits for the lock")
            below = kill(cli, tree=True)
            wait_until(lambda: not plugin_backends(fresh_db), GONE_WITHIN_SECONDS, "no plugin backend is left")
            holder.execute("select pg_advisory_unlock_all()")
    finally:
        reap(below or descendants(cli.pid))
        cli.kill()
    total, filled = copies(fresh_db)
    assert total == 200_000 and 0 < filled < total  # killed midway
    recover(stack)
    assert copies(fresh_db) == (200_000, 200_000)
    assert changes(stack.preview().change_summary) == {}
    stack.destroy()
    assert catalog_snapshot(fresh_db) == before


def test_an_index_build_killed_midway_is_rebuilt_and_destroy_is_exact(tmp_path: Path, fresh_db: str) -> None:
    add_actions(fresh_db, 1_000)
    before = catalog_snapshot(fresh_db)
    stack = new_stack(tmp_path / "local-prod", "local-prod", fresh_db, COPY_OWNER)
    stack.up()
    clean = catalog_snapshot(fresh_db)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(f"drop index {COPY_INDEX}")  # drift: the next `up` builds it again
    # A transaction holding a snapshot: a concurrent build waits for it, after it has put its
    # (still invalid) index in the catalog. It touches no table, so nothing else waits.
    hold = ["set transaction isolation level repeatable read", "select 1"]
    with up_waiting_on_index_build(tmp_path / "local-prod", fresh_db, COPY_BUILD, hold) as cli:
        kill(cli, tree=True)
        wait_until(lambda: not plugin_backends(fresh_db), GONE_WITHIN_SECONDS, "no plugin backend is left")
    assert index_validity(fresh_db, COPY_BUILD) is False  # what an interrupted build leaves
    recover(stack)
    assert catalog_snapshot(fresh_db) == clean
    stack.destroy()
    assert catalog_snapshot(fresh_db) == before
