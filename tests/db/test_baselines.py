"""Baselines that cannot be poisoned: what destroy puts back is recorded once, in the database,
in the transaction of the stack's first change, and never taken from what supabase-access made."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from review.management_api_server import ManagementApiServer
from supabase_access.management_api.access import ManagementApiAccess
from supabase_access.provider.base import CURRENT_STACK
from supabase_access.provider.resources.auth_settings import AuthSettings
from supabase_access.provider.resources.row_level_security import RowLevelSecurity
from supabase_access.provider.resources.table_policies import TablePolicies
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database

pytestmark = pytest.mark.db

OPEN_SESSIONS = {
    "schema": "public",
    "table": "sessions",
    "policies": {"sessions_select_open": {"command": "SELECT", "roles": ["anon"], "using": "true"}},
}


@pytest.fixture(autouse=True)
def stack_name() -> Iterator[None]:
    token = CURRENT_STACK.set("dev")
    yield
    CURRENT_STACK.reset(token)


def live(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "select p.policyname, p.cmd, p.roles::text, p.qual, p.with_check, obj_description(o.oid, 'pg_policy') "
            "from pg_policies p join pg_policy o "
            "on o.polname = p.policyname and o.polrelid = 'public.sessions'::regclass "
            "where p.tablename = 'sessions' order by 1"
        ).fetchall()


def private_schema_exists(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        return bool(conn.execute("select to_regnamespace('supabase_access') is not null").fetchone()[0])  # type: ignore[index]


def create(db: Database, log: Any = print) -> dict[str, Any]:
    resource = TablePolicies()
    _, outputs = resource.create(db, resource.check(db, {}, dict(OPEN_SESSIONS)), log)
    return outputs


def test_what_we_create_carries_the_stack_name(db: Database, fresh_db: str) -> None:
    create(db)
    assert [(row[0], row[5]) for row in live(fresh_db)] == [("sessions_select_open", render.stack_marker("dev"))]


def test_a_first_up_killed_after_its_change_does_not_become_the_baseline(db: Database, fresh_db: str) -> None:
    before_stack = live(fresh_db)
    assert before_stack and all(row[5] is None for row in before_stack)  # the app's own policies
    create(db)  # the CLI dies here: the engine never records these outputs
    notices: list[str] = []
    outputs = create(db, notices.append)  # the rerun creates the resource again
    assert set(outputs["adopted"]) == {row[0] for row in before_stack}
    assert notices[0].startswith("replaced 1 policy on public.sessions that supabase-access had created")
    TablePolicies().delete(db, outputs, print)
    assert live(fresh_db) == before_stack
    assert not private_schema_exists(fresh_db)  # the ledger went with its last record


def test_a_marked_policy_is_never_adopted(db: Database, fresh_db: str) -> None:
    # Left by another run or stack of ours without a ledger record: not the user's.
    with psycopg.connect(fresh_db) as conn:
        conn.execute("create policy leftover on sessions for select to anon using (true)")
        conn.execute(render.mark_policy("public", "sessions", "leftover", render.stack_marker("other")))
    outputs = create(db)
    assert "leftover" not in outputs["adopted"]
    TablePolicies().delete(db, outputs, print)
    assert "leftover" not in {row[0] for row in live(fresh_db)}


# --- Auth settings: the values before the first PATCH ------------------------------------------

TOKEN = "sbp_unit_0123456789abcdef0123456789abcdef0123"
REF = "abcdefghijklmnopqrst"
AUTH_DESIRED = {"rate_limit_anonymous_users": 7, "rate_limit_verify": 9}


@pytest.fixture
def management_api() -> Iterator[ManagementApiServer]:
    with ManagementApiServer(token=TOKEN) as running:
        yield running


def test_auth_settings_patched_by_a_killed_run_are_not_the_previous_values(
    db: Database, fresh_db: str, management_api: ManagementApiServer
) -> None:
    api = ManagementApiAccess(sleep=lambda seconds: None)
    api.configure({"managementApiUrl": management_api.base_url, "accessToken": TOKEN})
    resource = AuthSettings(api, lambda: db)
    inputs = resource.check({}, {"projectRef": REF, "settings": dict(AUTH_DESIRED)})
    original = {key: management_api.config(REF)[key] for key in AUTH_DESIRED}
    assert original != AUTH_DESIRED
    resource.create(inputs, print)  # the PATCH lands, the engine never records it
    assert {key: management_api.config(REF)[key] for key in AUTH_DESIRED} == AUTH_DESIRED
    _, outputs = resource.create(inputs, print)  # the rerun
    assert outputs["previous"] == original
    resource.delete(outputs, print)
    assert {key: management_api.config(REF)[key] for key in AUTH_DESIRED} == original
    assert not private_schema_exists(fresh_db)


def rls_flags(dsn: str, table: str) -> tuple[bool, bool]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select relrowsecurity, relforcerowsecurity from pg_class where oid = to_regclass(%s)", (f"public.{table}",)
        ).fetchone()
    assert row is not None
    return bool(row[0]), bool(row[1])


def test_rls_switched_on_by_a_killed_run_is_not_the_previous_state(db: Database, fresh_db: str) -> None:
    with psycopg.connect(fresh_db) as conn:
        conn.execute("alter table actions disable row level security")
    inputs = RowLevelSecurity().check(db, {}, {"schema": "public", "table": "actions", "force": True})
    RowLevelSecurity().create(db, inputs, print)  # the engine never records it
    assert rls_flags(fresh_db, "actions") == (True, True)
    _, outputs = RowLevelSecurity().create(db, inputs, print)
    assert outputs["previous"] == {"enabled": False, "force": False}
    RowLevelSecurity().delete(db, outputs, print)
    assert rls_flags(fresh_db, "actions") == (False, False)
    assert not private_schema_exists(fresh_db)
