"""The access e2e on a database built from Supabase's own SQL (tests/support/platform.py), on each
PostgreSQL version and grant platform: a real `pulumi up` of a prod and of a dev stack logged in as
`postgres` (NOSUPERUSER, BYPASSRLS, as on a hosted project), every persona probed as PostgREST probes
(`authenticator`, `SET LOCAL ROLE`, `request.jwt.claims`), Supabase's linter on prod, and `destroy`
giving back the catalog of before the stack."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from pprint import pformat
from typing import Any

import psycopg
import pytest

from review.matrix import Cell, compute_matrix, diff, matrix_from_rule
from supabase_access.model.access_model import load_model_file
from tests.support.engine import new_stack
from tests.support.expectations import owner_access
from tests.support.fault import catalog_snapshot
from tests.support.localdb import both_platforms
from tests.support.paths import MODEL_FILE
from tests.support.splinter import lint

pytestmark = pytest.mark.platform

MODEL = load_model_file(MODEL_FILE, setting="access-model.yaml")
OPEN = {"supabase-access:environment": "dev", "supabase-access:profile": "open"}
OWNER = {"supabase-access:environment": "prod", "supabase-access:profile": "owner"}


def catalog(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    """catalog_snapshot, plus the default privileges (the prod stack closes them; destroy gives them back)."""
    snapshot = catalog_snapshot(dsn)
    with psycopg.connect(dsn) as conn:
        snapshot["default_privileges"] = conn.execute(
            "select defaclrole::regrole::text, defaclnamespace::regnamespace::text, defaclobjtype::text,"
            " array(select a::text from unnest(defaclacl) a order by 1) from pg_default_acl order by 1, 2, 3"
        ).fetchall()
    return snapshot


STACKS: dict[str, tuple[dict[str, str], Callable[[Cell], bool]]] = {
    "prod": (OWNER, owner_access),
    "dev": (OPEN, lambda cell: True),
}


@both_platforms
@pytest.mark.parametrize("stack_name", STACKS)
def test_a_stack_as_on_a_hosted_project(tmp_path: Path, platform_db: str, stack_name: str) -> None:
    config, rule = STACKS[stack_name]
    before = catalog(platform_db)
    stack = new_stack(tmp_path / stack_name, stack_name, platform_db, config)
    stack.up()
    assert diff(matrix_from_rule(MODEL.table_names, rule), compute_matrix(platform_db, MODEL)) == []
    if stack_name == "prod":
        assert [f for f in lint(platform_db) if f[1] in ("ERROR", "WARN")] == []
    stack.destroy()
    # The dev stack's foreign key comes back validated: the matrix removed its rows.
    changed = changed_entries(before, catalog(platform_db))
    assert not changed, pformat(changed, width=200)


def changed_entries(
    before: dict[str, list[tuple[Any, ...]]], after: dict[str, list[tuple[Any, ...]]]
) -> dict[str, tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """Per catalog part, the rows only before and the rows only after (nothing when equal)."""
    return {
        part: ([r for r in before[part] if r not in after[part]], [r for r in after[part] if r not in before[part]])
        for part in before
        if before[part] != after[part]
    }
