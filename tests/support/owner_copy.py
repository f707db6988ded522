"""The reference app's model with a copy of the owner on `actions` (copyOwner), as data, as a
parsed model and as a prod stack's config; the teams app's with a copy of the project on `comments`
(copyGroup)."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import yaml

from supabase_access.model.access_model import AccessModel, parse_model
from supabase_access.provider.resources.owner_copy import OwnerCopy
from supabase_access.sql.database import Database
from tests.support import resources
from tests.support.teams_app import TEAMS_APP


def copy_model_data(copy: object = True) -> dict[str, Any]:
    return {
        "schema": "public",
        "tables": {
            "sessions": {"owner": "user_id", "userForeignKey": "sessions_user_id_fkey"},
            "segments": {"through": {"column": "session_id", "table": "sessions"}},
            "turns": {"through": {"column": "session_id", "table": "sessions"}},
            "actions": {"through": {"column": "turn_id", "table": "turns"}, "copyOwner": copy},
            "generated_content": {"through": {"column": "session_id", "table": "sessions"}},
        },
    }


def copy_model(copy: object = True) -> AccessModel:
    return parse_model(copy_model_data(copy), setting="m")


COPY_OWNER = {
    "supabase-access:environment": "prod",
    "supabase-access:profile": "owner",
    "supabase-access:model": json.dumps(copy_model_data()),
}


def group_copy_model_data(copy: object = True) -> dict[str, Any]:
    """The teams app's model with a copy of the project id on `comments` (copyGroup), two hops below
    its project."""
    raw: dict[str, Any] = yaml.safe_load((TEAMS_APP / "access-model.yaml").read_text())
    raw["tables"]["comments"]["copyGroup"] = copy
    return raw


def group_copy_model(copy: object = True) -> AccessModel:
    return parse_model(group_copy_model_data(copy), setting="m")


def copy_counts(dsn: str, query: str) -> tuple[int, int, int]:
    """(rows, rows with a copy, rows whose copy is right), as `query` counts them."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def check_warnings_around(db: Database, dsn: str, inputs: dict[str, Any], change: str) -> tuple[list[str], list[str]]:
    """What OwnerCopy's check warns the preview of, before and after `change` (SQL run as the table owner)."""
    with resources.check_warnings() as said:
        OwnerCopy().check(db, {}, inputs)
        before = list(said)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(change)  # type: ignore[arg-type]  # a test's own SQL
        OwnerCopy().check(db, {}, inputs)
    return before, said[len(before) :]
