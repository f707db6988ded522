"""Policy expressions that admit every row to whoever they admit at all: the issue's nine and more.

PostgreSQL 15's planner folds none of HOSTILE to constant true (so the folding check lets them
through; the preflight's probe refuses them); it does fold FOLDABLE (17: `foldable`). SEEN_BY_THEIR_TEXT are those
the policy pack's static rule finds too (they name no column, or compare one with itself).
"""

from __future__ import annotations

from typing import Final

HOSTILE: Final = (
    "auth.uid() is not null",
    "(select true)",
    "exists (select 1)",
    "user_id = user_id",
    "auth.role() = 'authenticated'",
    "random() >= 0",
    "user_id is not distinct from user_id",
    "(auth.jwt() ->> 'role') = 'authenticated'",
    "auth.uid() = auth.uid()",
    "(select auth.uid()) is not null or user_id = (select auth.uid())",
    "user_id is not null",
    "length(coalesce(auth.jwt() ->> 'sub', '')) > 0",
    "now() > '2000-01-01'",
    "current_setting('request.jwt.claims', true) is not null",
    "exists (select 1 from pg_catalog.pg_class)",
    "cast(auth.uid() as text) is not null",
)
FOLDABLE: Final = ("1 = 1 or false", "true::boolean", "not false")
# PostgreSQL 17's planner also reduces `col IS NOT NULL` on a NOT NULL column to true, and `col = col`
# to `col IS NOT NULL` (user_id is NOT NULL), so it folds these two of HOSTILE as well.
FOLDABLE_FROM_17: Final = ("user_id = user_id", "user_id is not null")


def foldable(server_version: int) -> tuple[str, ...]:
    """What the planner of a server (`server_version_num`) folds to constant true."""
    return FOLDABLE + (FOLDABLE_FROM_17 if server_version >= 170000 else ())


# They name a column (or a relation): only the probe on the database sees through them.
NAMING_A_COLUMN: Final = (
    "(select auth.uid()) is not null or user_id = (select auth.uid())",
    "user_id is not null",
    "exists (select 1 from pg_catalog.pg_class)",
)
SEEN_BY_THEIR_TEXT: Final = tuple(e for e in HOSTILE + FOLDABLE if e not in NAMING_A_COLUMN)
