"""Every statement of the provider waits a bounded time, and a timeout says who holds the lock."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from supabase_access.provider.resources.row_level_security import RowLevelSecurity
from supabase_access.sql import database
from supabase_access.sql.database import Database
from supabase_access.sql.errors import LockTimeoutError
from supabase_access.sql.transaction import LOCK_NAMESPACE

pytestmark = pytest.mark.db


@pytest.fixture
def short_lock_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    # The production value (10s) works the same; a short one keeps the test short.
    monkeypatch.setitem(database.SESSION_SETTINGS, "lock_timeout", "300ms")


@pytest.fixture
def other_session(fresh_db: str) -> Iterator[psycopg.Connection]:
    """Another client of the database (say the app, or a stuck `up`), named in pg_stat_activity."""
    with psycopg.connect(fresh_db, application_name="holder-under-test") as conn:
        yield conn


def test_pooled_connections_carry_the_timeouts(db: Database) -> None:
    with db.connection() as conn:
        settings = dict(
            conn.execute(
                "select name, setting || coalesce(unit, '') from pg_settings where name = any(%s)",
                (list(database.SESSION_SETTINGS),),
            ).fetchall()
        )
    assert settings == {
        "lock_timeout": "10000ms",
        "statement_timeout": "300000ms",
        "idle_in_transaction_session_timeout": "300000ms",
        "client_connection_check_interval": "1000ms",
    }


@pytest.mark.usefixtures("short_lock_timeout")
def test_a_table_lock_held_elsewhere_is_named_with_its_holder(
    db: Database, fresh_db: str, other_session: psycopg.Connection
) -> None:
    other_session.execute("lock table public.sessions in access exclusive mode")
    holder = other_session.info.backend_pid
    with pytest.raises(LockTimeoutError) as raised:
        RowLevelSecurity().create(db, {"schema": "public", "table": "sessions", "force": True}, print)
    message = str(raised.value)
    assert message.startswith("gave up waiting for a lock on public.sessions after 300ms (lock_timeout); held by ")
    assert f"pid {holder} (application_name 'holder-under-test', state idle in transaction, query started " in message
    assert "AccessExclusiveLock" in message
    other_session.rollback()
    with psycopg.connect(fresh_db) as conn:
        forced = conn.execute("select relforcerowsecurity from pg_class where oid = 'public.sessions'::regclass")
        assert forced.fetchone() == (False,)  # nothing applied


@pytest.mark.usefixtures("short_lock_timeout")
def test_our_advisory_lock_held_by_another_run_is_named_too(db: Database, other_session: psycopg.Connection) -> None:
    # What a second `up` (or a stuck plugin) holds: the advisory lock every write takes first.
    other_session.execute("select pg_advisory_lock(hashtext(%s))", (f"{LOCK_NAMESPACE}public.sessions",))
    with pytest.raises(LockTimeoutError) as raised:
        RowLevelSecurity().create(db, {"schema": "public", "table": "sessions", "force": False}, print)
    message = str(raised.value)
    assert "gave up waiting for a lock on public.sessions after 300ms (lock_timeout)" in message
    assert f"pid {other_session.info.backend_pid} (application_name 'holder-under-test'" in message
    assert "supabase-access lock" in message


def test_a_released_lock_is_not_blamed_on_anyone(db: Database) -> None:
    from supabase_access.sql.transaction import lock_holders

    with db.connection() as conn:
        assert lock_holders(conn, [("public", "sessions")]) == []
