"""The local Supabase-like cluster of scripts/localdb, as the test fixtures use it."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from typing import Final

import psycopg
import pytest
from psycopg import sql

REPO: Final = Path(__file__).resolve().parents[2]
LOCALDB_SCRIPT: Final = REPO / "scripts" / "localdb"
# The grant platforms scripts/localdb builds (database/platforms/), each with a template database:
# explicit (Supabase's today: no default privileges for the API roles) and legacy (auto-grants).
PLATFORMS: Final = ("explicit", "legacy")
TEMPLATES: Final = {"explicit": "supabase_template", "legacy": "supabase_template_legacy"}
TEMPLATE_DB: Final = TEMPLATES["explicit"]


def default_platform() -> str:
    """The platform of tests that do not choose one: SUPABASE_ACCESS_PLATFORM, else explicit."""
    platform = os.environ.get("SUPABASE_ACCESS_PLATFORM", "explicit")
    if platform not in PLATFORMS:
        raise LocaldbError(f"SUPABASE_ACCESS_PLATFORM: unknown platform {platform!r} (choose one of: {PLATFORMS})")
    return platform


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


def create_database_from_template(admin_conninfo: str, platform: str | None = None) -> str:
    """Create a database named test_<random> from a platform's template; returns its name."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    template = TEMPLATES[platform or default_platform()]
    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {} template {}").format(sql.Identifier(name), sql.Identifier(template)))
        # A database's own ACL is not copied from its template; Supabase's postgres may create schemas.
        conn.execute(sql.SQL("grant all on database {} to postgres").format(sql.Identifier(name)))
    return name


def drop_database(admin_conninfo: str, name: str) -> None:
    """Drop a database, ending any connection a test left open."""
    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


# Runs a test on each platform's database (the `platform` fixture of tests/conftest.py).
both_platforms: Final = pytest.mark.parametrize("platform", PLATFORMS, indirect=True)
# Tests written against the legacy platform's auto-grants: they act as PostgREST on tables no stack
# has granted yet (the guide's errors, triggers and policies alone), or count what those grants open.
legacy_platform: Final = pytest.mark.parametrize("platform", ["legacy"], indirect=True)
