"""The columns app (tests/fixtures/columns_app): column rules (readOnly, immutable, hidden) on a group's
rows and on a profile. Loaded into a database made from the template in place of the reference app."""

from __future__ import annotations

from typing import Final

import psycopg

from supabase_access.model.access_model import AccessModel, load_model_file
from tests.support.paths import REPO
from tests.support.teams_app import REFERENCE_TABLES

COLUMNS_APP: Final = REPO / "tests" / "fixtures" / "columns_app"
MODEL_FILE: Final = str((COLUMNS_APP / "access-model.yaml").relative_to(REPO))
PROD: Final = {
    "supabase-access:environment": "prod",
    "supabase-access:profile": "owner",
    "supabase-access:modelFile": MODEL_FILE,
}


def load_columns_app(dsn: str) -> None:
    """Replace the reference app's tables of a template copy with the columns app (as postgres)."""
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        conn.execute(f"drop table {', '.join(REFERENCE_TABLES)} cascade")
        conn.execute((COLUMNS_APP / "schema.sql").read_text())


def columns_model() -> AccessModel:
    return load_model_file(REPO / MODEL_FILE, setting="supabase-access:modelFile")
