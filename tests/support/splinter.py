"""Supabase's own database linter (splinter, ../shared/splinter/splinter.sql), run as the dashboard's
advisors run it, for the e2e and platform tiers."""

from __future__ import annotations

from typing import Final

import psycopg
import pytest

from tests.support.paths import REPO

SPLINTER: Final = REPO.parent / "shared" / "splinter" / "splinter.sql"
PERFORMANCE_LINTS: Final = ("auth_rls_initplan", "multiple_permissive_policies", "unindexed_foreign_keys")
Finding = tuple[str, str, list[str], str]


def lint(dsn: str, exposed_schemas: str = "public") -> list[Finding]:
    """(name, level, categories, detail) of every finding, as the dashboard's advisors list them."""
    if not SPLINTER.is_file():
        pytest.fail(
            f"Supabase's linter is missing: expected {SPLINTER} (../shared/splinter/splinter.sql beside the "
            "repository), see ../shared/splinter/README.md",
            pytrace=False,
        )
    text = SPLINTER.read_text()
    first, _, query = text.partition("\n")
    assert first.strip() == "set local search_path = '';", f"{SPLINTER} no longer starts as expected"
    with psycopg.connect(dsn) as conn, conn.transaction(force_rollback=True):
        conn.execute("select set_config('pgrst.db_schemas', %s, true)", (exposed_schemas,))
        conn.execute(first)  # type: ignore[arg-type]
        rows = conn.execute(
            f"select name, level, categories, detail from ({query.strip().rstrip(';')}) lints"  # type: ignore[arg-type]
        ).fetchall()
    return [(str(n), str(level), list(categories), str(detail)) for n, level, categories, detail in rows]


def must_fix(findings: list[Finding]) -> list[Finding]:
    """Security ERRORs and WARNs, and the performance lints the owner profile is built to avoid."""
    return [f for f in findings if ("SECURITY" in f[2] and f[1] in ("ERROR", "WARN")) or f[0] in PERFORMANCE_LINTS]
