"""The second app of the tests (tests/fixtures/teams_app): groups with members and admins, rows
under a group, a two-hop child, public-read and service-only tables. Loaded into a database made
from the template in place of the reference app."""

from __future__ import annotations

from typing import Final

import psycopg

from supabase_access.model.access_model import AccessModel, load_model_file
from tests.support.paths import REPO

TEAMS_APP: Final = REPO / "tests" / "fixtures" / "teams_app"
SCHEMA_FILE: Final = TEAMS_APP / "schema.sql"
# Relative to the program's folder, as a stack would name it.
MODEL_FILE: Final = str((TEAMS_APP / "access-model.yaml").relative_to(REPO))
TABLES: Final = (
    "projects",
    "project_members",
    "tasks",
    "milestones",
    "comments",
    "labels",
    "templates",
    "audit_log",
)
REFERENCE_TABLES: Final = ("sessions", "segments", "turns", "actions", "generated_content")

OPEN: Final = {
    "supabase-access:environment": "dev",
    "supabase-access:profile": "open",
    "supabase-access:modelFile": MODEL_FILE,
}
OWNER: Final = {
    "supabase-access:environment": "prod",
    "supabase-access:profile": "owner",
    "supabase-access:modelFile": MODEL_FILE,
}


def load_teams_app(dsn: str) -> None:
    """Replace the reference app's tables of a template copy with the teams app (as postgres)."""
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        conn.execute(f"drop table {', '.join(REFERENCE_TABLES)} cascade")
        conn.execute(SCHEMA_FILE.read_text())


def teams_model() -> AccessModel:
    return load_model_file(REPO / MODEL_FILE, setting="supabase-access:modelFile")
