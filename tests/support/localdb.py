"""The local Supabase-like cluster of scripts/localdb, as the test fixtures use it."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Final

import psycopg
from psycopg import sql

REPO: Final = Path(__file__).resolve().parents[2]
LOCALDB_SCRIPT: Final = REPO / "scripts" / "localdb"
TEMPLATE_DB: Final = "supabase_template"


class LocaldbError(RuntimeError):
    """scripts/localdb failed; the message carries its output."""


def run_localdb(*args: str) -> str:
    """Run scripts/localdb and return its standard output, stripped."""
    result = subprocess.run([str(LOCALDB_SCRIPT), *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LocaldbError(
            f"scripts/localdb {' '.join(args)} exited with {result.returncode}:\n{result.stderr}{result.stdout}"
        )
    return result.stdout.strip()


def create_database_from_template(admin_conninfo: str) -> str:
    """Create a database named test_<random> from the template; returns its name."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("create database {} template {}").format(sql.Identifier(name), sql.Identifier(TEMPLATE_DB))
        )
        # A database's own ACL is not copied from its template; Supabase's postgres may create schemas.
        conn.execute(sql.SQL("grant all on database {} to postgres").format(sql.Identifier(name)))
    return name


def drop_database(admin_conninfo: str, name: str) -> None:
    """Drop a database, ending any connection a test left open."""
    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
