"""End to end: several stacks on one database. Each stack owns the tables it manages: a second stack
on one of them is refused (at preview, and under the tables' locks when two `up`s race), the
refused stack's destroy changes nothing of the first, and each destroy gives back the catalog
from before the stack, under load from the API's roles too."""

from __future__ import annotations

import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from pulumi import automation as auto

from review.matrix import compute_matrix, diff, matrix_from_rule
from review.postgrest import Persona, as_persona, connect_as_authenticator
from supabase_access.model.access_model import load_model_file
from tests.support.engine import changes, new_stack
from tests.support.expectations import owner_access
from tests.support.fault import catalog_snapshot

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
MODEL = load_model_file(REPO / "access-model.yaml", setting="access-model.yaml")
OPEN = {"supabase-access:environment": "dev", "supabase-access:profile": "open"}
OWNER = {"supabase-access:environment": "prod", "supabase-access:profile": "owner"}
OWNER_MATRIX = matrix_from_rule(MODEL.table_names, owner_access)
# Destroys under load: a few in CI; `SUPABASE_ACCESS_DESTROY_ROUNDS=20` for the measure.
DESTROY_ROUNDS = int(os.environ.get("SUPABASE_ACCESS_DESTROY_ROUNDS", "2"))


def refused(error: BaseException) -> str:
    text = str(error)
    assert "another stack manages" in text, text
    assert "Traceback" not in text and "Unexpected <class" not in text, text
    return text


def test_a_second_stack_on_the_tables_of_a_first_is_refused_and_its_destroy_changes_nothing(
    tmp_path: Path, fresh_db: str
) -> None:
    before = catalog_snapshot(fresh_db)
    local = new_stack(tmp_path / "local", "local", fresh_db, OWNER)
    local.up()
    deployed = catalog_snapshot(fresh_db)
    local2 = new_stack(tmp_path / "local2", "local2", fresh_db, OPEN)
    with pytest.raises(auto.CommandError) as preview_error:
        local2.preview()
    assert "stack 'local'" in refused(preview_error.value)
    with pytest.raises(auto.CommandError) as up_error:
        local2.up()
    assert "stack 'local'" in refused(up_error.value)
    local2.destroy()
    # The deployed stack's tables are exactly as its model says, as PostgREST's roles meet them.
    assert catalog_snapshot(fresh_db) == deployed
    assert diff(OWNER_MATRIX, compute_matrix(fresh_db, MODEL)) == []
    local.destroy()
    assert catalog_snapshot(fresh_db) == before


def test_concurrent_ups_of_two_stacks_on_one_table_the_second_is_refused(tmp_path: Path, fresh_db: str) -> None:
    before = catalog_snapshot(fresh_db)
    stacks = {
        "local": new_stack(tmp_path / "local", "local", fresh_db, OWNER),
        "local2": new_stack(tmp_path / "local2", "local2", fresh_db, OPEN),
    }
    for stack in stacks.values():
        stack.preview()  # both pass their preview: neither is applied yet
    with ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(stack.up) for name, stack in stacks.items()}
        outcomes = {name: future.exception() for name, future in futures.items()}
    failed = [name for name, error in outcomes.items() if error is not None]
    assert len(failed) == 1, outcomes
    loser = failed[0]
    winner = next(name for name in stacks if name != loser)
    assert f"stack '{winner}'" in refused(outcomes[loser])  # type: ignore[arg-type]
    if winner == "local":
        assert diff(OWNER_MATRIX, compute_matrix(fresh_db, MODEL)) == []
    stacks[loser].destroy()
    stacks[winner].destroy()
    assert catalog_snapshot(fresh_db) == before


def _api_load(dsn: str, stop: threading.Event, counts: dict[str, int]) -> None:
    """A bounded loop of PostgREST-like requests (a user's own sessions and turns, anon reads) until `stop`."""
    with psycopg.connect(dsn) as admin:
        user = uuid.uuid4()
        admin.execute("insert into auth.users (id, is_anonymous) values (%s, true)", (user,))
    personas = [Persona.signed_in(user, is_anonymous=True), Persona.anon()]
    with connect_as_authenticator(dsn) as conn:
        while not stop.is_set():
            for persona in personas:
                try:
                    with as_persona(conn, persona, commit=True) as cur:
                        cur.execute("select count(*) from sessions")
                        cur.execute("select count(*) from turns join sessions on sessions.id = turns.session_id")
                        if persona.role == "authenticated":
                            cur.execute("insert into sessions (user_id, title) values (%s, 'load')", (user,))
                    counts["requests"] += 1
                except psycopg.Error:
                    counts["refused"] += 1  # closed tables between the steps of a destroy, as expected


@pytest.mark.fault
def test_destroys_under_load_never_deadlock_and_give_back_the_catalog(tmp_path: Path, fresh_db: str) -> None:
    before = catalog_snapshot(fresh_db)
    stack = new_stack(tmp_path / "local-prod", "local-prod", fresh_db, OWNER)
    timings = []
    for _ in range(DESTROY_ROUNDS):
        stack.up()
        stop, counts = threading.Event(), {"requests": 0, "refused": 0}
        load = [threading.Thread(target=_api_load, args=(fresh_db, stop, counts)) for _ in range(3)]
        for thread in load:
            thread.start()
        started = time.monotonic()
        try:
            stack.destroy()  # a deadlock or any other error fails here
        finally:
            stop.set()
            for thread in load:
                thread.join(30)
        timings.append(time.monotonic() - started)
        assert counts["requests"] > 0
        assert catalog_snapshot(fresh_db) == before
    print(f"{DESTROY_ROUNDS} destroys under load: {', '.join(f'{t:.1f}' for t in timings)} s")


@pytest.mark.fault
def test_a_destroy_that_failed_midway_and_is_rerun_gives_back_the_catalog(tmp_path: Path, fresh_db: str) -> None:
    before = catalog_snapshot(fresh_db)
    stack = new_stack(tmp_path / "local-prod", "local-prod", fresh_db, OWNER)
    stack.up()
    # A session holding `actions` makes the destroy's change to it wait out lock_timeout and fail.
    with psycopg.connect(fresh_db) as holder:
        holder.execute("lock table actions in access share mode")
        with pytest.raises(auto.CommandError) as failed:
            stack.destroy()
        holder.rollback()
    text = str(failed.value)
    assert "actions" in text and "Traceback" not in text, text
    stack.destroy()
    assert catalog_snapshot(fresh_db) == before


def test_stacks_on_disjoint_tables_of_one_database_work_side_by_side(tmp_path: Path, fresh_db: str) -> None:
    with psycopg.connect(fresh_db) as conn:
        conn.execute(
            "create table public.notes (id uuid primary key default gen_random_uuid(), "
            "user_id uuid not null references auth.users (id), body text)"
        )
    before = catalog_snapshot(fresh_db)
    notes_model = '{"schema": "public", "tables": {"notes": {"owner": "user_id"}}}'
    notes = new_stack(tmp_path / "notes", "notes", fresh_db, {**OPEN, "supabase-access:model": notes_model})
    notes.up()
    # The prod stack covers every exposed table: the app's in its model, notes by the other stack.
    app = new_stack(tmp_path / "app", "app", fresh_db, OWNER)
    app.up()
    assert diff(OWNER_MATRIX, compute_matrix(fresh_db, MODEL)) == []
    assert changes(notes.preview().change_summary) == {} and changes(app.preview().change_summary) == {}
    deployed = catalog_snapshot(fresh_db)
    notes.destroy()
    # The app's tables (and the default privileges it closed) as they were; notes as before its stack.
    after = catalog_snapshot(fresh_db)
    assert [t for t in after["tables"] if t[1] != "notes"] == [t for t in deployed["tables"] if t[1] != "notes"]
    assert [t for t in after["tables"] if t[1] == "notes"] == [t for t in before["tables"] if t[1] == "notes"]
    assert diff(OWNER_MATRIX, compute_matrix(fresh_db, MODEL)) == []
    app.destroy()
    assert catalog_snapshot(fresh_db) == before
