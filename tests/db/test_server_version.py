"""The local cluster runs the PostgreSQL version asked for (scripts/test runs the db and e2e tiers on 17
and on 15), and the table privileges the code uses are the server's own."""

from __future__ import annotations

import os

import psycopg
import pytest

from supabase_access.sql import catalog

pytestmark = pytest.mark.db


def test_the_cluster_runs_the_chosen_version(fresh_db: str) -> None:
    chosen = os.environ.get("SUPABASE_ACCESS_PG_VERSION")
    with psycopg.connect(fresh_db) as conn:
        major = conn.info.server_version // 10000
    assert major in (15, 17)
    if chosen and not os.environ.get("SUPABASE_ACCESS_PG_BIN"):
        assert major == int(chosen)


def test_table_privileges_are_the_servers(fresh_db: str) -> None:
    with psycopg.connect(fresh_db) as conn:
        known = catalog.table_privileges(conn)
        major = conn.info.server_version // 10000
    seven = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
    assert known == ((*seven, "MAINTAIN") if major >= 17 else seven)
