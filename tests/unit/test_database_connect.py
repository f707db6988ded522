"""The provider's connections without a database: an unreachable server is reported by the first
call, not by the warm-up (the rest: tests/db/test_provider_database.py)."""

import pytest

from supabase_access.sql.database import Database
from supabase_access.sql.errors import ConnectionFailedError

# Nothing listens on port 1: the connection is refused at once.
UNREACHABLE = {"host": "127.0.0.1", "port": 1, "username": "postgres", "password": "not-used"}


@pytest.mark.unit
def test_warm_up_keeps_quiet_and_the_first_call_names_the_settings() -> None:
    db = Database(UNREACHABLE)
    db.warm_up()  # in the plugin this runs in a background thread: it must not raise
    with pytest.raises(
        ConnectionFailedError, match=r"cannot connect to PostgreSQL as postgres@127\.0\.0\.1:1/postgres"
    ):
        with db.connection():
            pass
    db.close()
