"""A failed step reaches the user as one line naming the resource: no Python traceback, no dump."""

from __future__ import annotations

import psycopg
import pytest

from supabase_access.provider.base import InputError
from supabase_access.provider.server import step_message
from supabase_access.sql.errors import (
    CatalogError,
    ConnectionFailedError,
    LockTimeoutError,
    PrivilegeError,
    database_error,
)

pytestmark = pytest.mark.unit

URN = (
    "urn:pulumi:local::supabase-access::"
    "supabase-access:components:AccessRules$supabase-access:index:RowLevelSecurity::sessions-rls"
)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            psycopg.errors.DeadlockDetected("deadlock detected\nDETAIL: Process 1 waits"),
            "deadlock with another session",
        ),
        (CatalogError("gave up waiting for a lock on public.sessions\nafter 10s"), "public.sessions after 10s"),
        (InputError("table", "table: public.nope does not exist in the database"), "table: public.nope does not"),
        (KeyError("schema"), "KeyError: 'schema'"),
    ],
)
def test_a_step_error_is_one_line_naming_the_resource(error: Exception, expected: str) -> None:
    message = step_message(URN, error)
    assert message.startswith("sessions-rls: ") and expected in message
    assert "\n" not in message and "Traceback" not in message


@pytest.mark.parametrize(
    ("error", "kind", "expected"),
    [
        (psycopg.errors.InsufficientPrivilege("permission denied for table turns"), PrivilegeError, "table turns"),
        (psycopg.errors.LockNotAvailable("canceling statement due to lock timeout"), LockTimeoutError, "lock timeout"),
        (psycopg.errors.DeadlockDetected("deadlock detected"), LockTimeoutError, "run the command again"),
        (psycopg.OperationalError("server closed the connection\nunexpectedly"), ConnectionFailedError, "closed"),
        (psycopg.errors.UndefinedTable('relation "public.nope" does not exist'), CatalogError, "public.nope"),
    ],
)
def test_each_database_failure_has_its_own_type(error: psycopg.Error, kind: type, expected: str) -> None:
    translated = database_error(error)
    assert type(translated) is kind and expected in str(translated) and "\n" not in str(translated)
    assert expected in step_message(URN, error)
