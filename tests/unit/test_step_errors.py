"""A failed step reaches the user as one line naming the resource: no Python traceback, no dump."""

from __future__ import annotations

import psycopg
import pytest

from supabase_access.provider.base import InputError
from supabase_access.provider.server import step_message
from supabase_access.sql.catalog import CatalogError

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
