"""PostgreSQL stopped in the middle of a concurrent index build: the `up` fails, and once the
server is back the next `up` rebuilds the index the stop left invalid; destroy is exact and no
row is lost."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.support.engine import changes, new_stack
from tests.support.fault import catalog_snapshot, index_validity, up_waiting_on_index_build
from tests.support.localdb import run_localdb

pytestmark = [pytest.mark.e2e, pytest.mark.fault]

OWNER = {"supabase-access:environment": "prod", "supabase-access:profile": "owner"}
TURNS_INDEX = "turns_session_id_id_rls_idx"
TURNS_BUILD = "turns_session_id_id_rls_build"
APP_TURNS_INDEX = "turns_session_id_idx"  # the app's own: with it, the lookup needs no index of ours


def without_app_turns_index(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"drop index {APP_TURNS_INDEX}")


APP_TABLES = ("sessions", "segments", "turns", "actions", "generated_content")
# The CLI's own retries and error report once its provider lost the server.
CLI_ENDS_WITHIN_SECONDS = 120


def add_rows(dsn: str) -> None:
    """A user with a session, its segment, 200 turns, actions and generated content, before the stack."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("insert into auth.users (id) values ('00000000-0000-4000-8000-0000000000aa')")
        conn.execute(
            "with s as (insert into sessions (user_id) values ('00000000-0000-4000-8000-0000000000aa') returning id), "
            "g as (insert into segments (session_id, position) select id, 1 from s), "
            "c as (insert into generated_content (session_id, kind) select id, 'summary' from s), "
            "t as (insert into turns (session_id, speaker) select s.id, 'user' from s, generate_series(1, 200) "
            "returning id) insert into actions (turn_id, kind) select t.id, 'click' from t"
        )


def row_counts(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        return {t: conn.execute(f"select count(*) from public.{t}").fetchone()[0] for t in APP_TABLES}  # type: ignore[index]


def test_postgres_stopped_mid_index_build_then_up_rebuilds_and_destroy_is_exact(tmp_path: Path, fresh_db: str) -> None:
    add_rows(fresh_db)
    without_app_turns_index(fresh_db)  # so the lookup gets an index of ours, built concurrently
    before_stack, rows = catalog_snapshot(fresh_db), row_counts(fresh_db)
    assert all(rows.values())
    stack = new_stack(tmp_path / "local-prod", "local-prod", fresh_db, OWNER)
    stack.up()
    clean = catalog_snapshot(fresh_db)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(f"drop index {TURNS_INDEX}")  # drift: the next `up` builds it again
    # A writer's open transaction on turns holds the concurrent build in its wait phase, after
    # its invalid index is in the catalog; then the whole server stops (fast shutdown).
    hold = ["lock table public.turns in row exclusive mode"]
    with up_waiting_on_index_build(tmp_path / "local-prod", fresh_db, TURNS_BUILD, hold) as cli:
        run_localdb("stop")
        run_localdb("start")
        # The provider lost its connections: the CLI reports the failure and ends by itself.
        assert cli.wait(timeout=CLI_ENDS_WITHIN_SECONDS) != 0
    assert index_validity(fresh_db, TURNS_BUILD) is False  # what the interrupted build left
    assert row_counts(fresh_db) == rows
    stack.up()
    assert catalog_snapshot(fresh_db) == clean
    assert changes(stack.preview().change_summary) == {}
    stack.destroy()
    assert catalog_snapshot(fresh_db) == before_stack
    assert row_counts(fresh_db) == rows
