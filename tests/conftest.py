"""Shared fixtures: the local Supabase-like cluster (scripts/localdb) and a database per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from supabase_access.sql.database import Database
from tests.support.localdb import (
    LocaldbError,
    create_database_from_template,
    default_platform,
    drop_database,
    run_localdb,
)

MARKERS = (
    "unit: fast tests without a database or network",
    "db: tests against the local PostgreSQL cluster (scripts/localdb)",
    "e2e: the real Pulumi engine and provider plugin against the local cluster",
    "fault: kills the pulumi CLI or its process tree at a chosen point (a lock held by another session), "
    "then checks recovery",
    "platform: a database built from Supabase's own SQL (../shared/supabase-platform) on each PostgreSQL version: "
    "access e2e, linter, stand-in conformance",
)


def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)


@pytest.fixture(scope="session")
def localdb_url() -> str:
    """URL of role postgres on database postgres; starts (and provisions) the cluster once."""
    try:
        run_localdb("start")
        return run_localdb("url")
    except LocaldbError as error:
        # Fail, never skip: a database test that cannot run has not passed.
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def localdb_admin_conninfo(localdb_url: str) -> str:
    """Conninfo of supabase_admin (superuser) on database postgres, over the unix socket."""
    return run_localdb("url", "--admin")


@pytest.fixture
def platform(request: pytest.FixtureRequest) -> str:
    """The grant platform of the test's database: `@both_platforms` (tests/support/localdb.py) runs
    a test on each; otherwise SUPABASE_ACCESS_PLATFORM, else explicit (Supabase's today)."""
    return str(getattr(request, "param", None) or default_platform())


@pytest.fixture
def fresh_db(localdb_url: str, localdb_admin_conninfo: str, platform: str) -> Iterator[str]:
    """Conninfo of role postgres on a new database cloned from the platform's template, dropped afterwards."""
    name = create_database_from_template(localdb_admin_conninfo, platform)
    try:
        yield make_conninfo(localdb_url, dbname=name)
    finally:
        drop_database(localdb_admin_conninfo, name)


@pytest.fixture
def db(fresh_db: str) -> Iterator[Database]:
    """The provider's own connection pool on a fresh database, as the plugin opens it."""
    params = conninfo_to_dict(fresh_db)
    database = Database(
        {
            "host": params["host"],
            "port": params.get("port", 5432),
            "database": params["dbname"],
            "username": params["user"],
            "password": params["password"],
        }
    )
    yield database
    database.close()
