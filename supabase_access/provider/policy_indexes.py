"""PolicyIndex: a covering index that lets an RLS policy's lookup run as an index-only scan.

The owner profile's policies search a parent table by its link column and read its key, e.g.
`select "id" from "public"."sessions" where "user_id" = (select auth.uid())`. With an index on
(user_id) include (id) that reads the index alone; a plain index on user_id has to visit the
table for every row found. An existing index that serves the lookup (the user's or ours: first
key column `column`, holding `include` as a key or INCLUDE column, valid, plain b-tree) is used
as it is; otherwise the resource builds one CONCURRENTLY, marks it with a comment, and only then
drops it on delete (and only while it still carries the mark).
"""

from __future__ import annotations

from typing import Any

import psycopg

from supabase_access import sql as render
from supabase_access.catalog import CatalogError
from supabase_access.policy_indexes import policy_index_name
from supabase_access.provider.base import (
    InputError,
    Log,
    ManagedResource,
    Notice,
    identifier,
    split_id,
)
from supabase_access.provider.database import Database
from supabase_access.provider.private_schema import autocommit, require_columns

INPUTS = ("schema", "table", "column", "include")
# Above this many rows (planner estimate) or bytes a build is announced before it starts.
LARGE_TABLE_ROWS = 1_000_000
LARGE_TABLE_BYTES = 256 * 1024 * 1024


def _target(inputs: dict[str, Any]) -> tuple[str, str, str, str]:
    schema, table = identifier(inputs, "schema", "public"), identifier(inputs, "table")
    column, include = identifier(inputs, "column"), identifier(inputs, "include")
    if column == include:
        raise InputError("include", f"include: {include} is the searched column itself; give the column read back")
    return schema, table, column, include


def find_serving_index(
    conn: psycopg.Connection, schema: str, table: str, column: str, include: str
) -> tuple[str, bool] | None:
    """(name, carries our marker) of an index serving the lookup, ours by name first; None if there is none."""
    row = conn.execute(
        render.find_serving_index_query(),
        (schema, table, column, include, policy_index_name(table, column, include)),
    ).fetchone()
    return None if row is None else (row[0], row[1] == render.POLICY_INDEX_MARKER)


def _is_ours(conn: psycopg.Connection, schema: str, index: str) -> bool:
    row = conn.execute(render.index_state_query(), (schema, index)).fetchone()
    return row is not None and row[1] == render.POLICY_INDEX_MARKER


def _is_large(conn: psycopg.Connection, schema: str, table: str) -> bool:
    row = conn.execute(render.relation_size_query(), (schema, table)).fetchone()
    return row is not None and (row[0] >= LARGE_TABLE_ROWS or row[1] >= LARGE_TABLE_BYTES)


def _ensure_index(db: Database, schema: str, table: str, column: str, include: str, log: Log) -> tuple[str, bool]:
    """(index name, created now) of an index serving the lookup, built if there is none."""
    name = policy_index_name(table, column, include)
    what = f"{schema}.{table} ({column}) include ({include})"
    with db.connection() as conn:
        found = find_serving_index(conn, schema, table, column, include)
        if found is not None:
            return found[0], False
        taken = conn.execute(render.relation_kind_query(), (schema, name)).fetchone()
        leftover = conn.execute(render.index_state_query(), (schema, name)).fetchone()
        large = _is_large(conn, schema, table)
    if taken is not None and (leftover is None or leftover[1] != render.POLICY_INDEX_MARKER):
        raise CatalogError(
            f"cannot build index {schema}.{name} on {what} for RLS policy lookups: a relation of that name exists "
            "and was not created by supabase-access; rename or drop it"
        )
    if large:
        log(
            Notice(
                f"building index {schema}.{name} on {what} for RLS policy lookups, concurrently "
                "(the app keeps reading and writing); on a table this large it may take a while"
            )
        )
    with autocommit(db) as conn:
        if leftover is not None:
            # Ours but not serving: an invalid index left by an interrupted concurrent build.
            conn.execute(render.drop_policy_index(schema, name))
        try:
            conn.execute(render.create_policy_index(schema, table, name, column, include))
        except psycopg.Error:
            # A failed concurrent build leaves an invalid index behind.
            conn.execute(render.drop_policy_index(schema, name))
            raise
        conn.execute(render.mark_policy_index(schema, name))
        found = find_serving_index(conn, schema, table, column, include)
    if found is None or found[0] != name:
        raise CatalogError(f"index {schema}.{name} was built but does not serve {what}; check it by hand")
    log(Notice(f"created index {schema}.{name} on {what} for RLS policy lookups; destroy drops it"))
    return name, True


def _drop_index_if_ours(db: Database, schema: str, index: str) -> None:
    with db.connection() as conn:
        ours = _is_ours(conn, schema, index)
    if ours:
        with autocommit(db) as conn:
            conn.execute(render.drop_policy_index(schema, index))


class PolicyIndex(ManagedResource):
    token = "supabase-access:index:PolicyIndex"
    replace_on = INPUTS

    def check(self, db: Database, olds: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
        schema, table, column, include = _target(inputs)
        checked = {**inputs, "schema": schema}
        if checked != olds:  # accepted at the last apply otherwise; diff reads the live index anyway
            with db.connection() as conn:
                require_columns(conn, schema, table, {column: "column", include: "include"})
        return checked

    def diff_live(self, db: Database, state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, str]:
        schema, table, column, include = _target(inputs)
        with db.connection() as conn:
            found = find_serving_index(conn, schema, table, column, include)
        return {"index": "update"} if found is None else {}

    def _apply(self, db: Database, inputs: dict[str, Any], previous: dict[str, Any], log: Log) -> dict[str, Any]:
        schema, table, column, include = _target(inputs)
        index, created = _ensure_index(db, schema, table, column, include, log)
        if index == previous.get("index") and previous.get("created"):
            created = True  # still the one we built: destroy drops it
        return {**{k: inputs.get(k) for k in INPUTS}, "schema": schema, "index": index, "created": created}

    def create(self, db: Database, inputs: dict[str, Any], log: Log) -> tuple[str, dict[str, Any]]:
        outputs = self._apply(db, inputs, {}, log)
        return ".".join(outputs[k] for k in INPUTS), outputs

    def update(self, db: Database, state: dict[str, Any], inputs: dict[str, Any], log: Log) -> dict[str, Any]:
        return self._apply(db, inputs, state, log)

    def delete(self, db: Database, state: dict[str, Any], log: Log) -> None:
        # Only what we built, and only while it carries our mark: an index someone else serves
        # their queries with (or took over and re-commented) stays.
        if state.get("created") and state.get("index"):
            _drop_index_if_ours(db, state.get("schema") or "public", state["index"])

    def read(
        self, db: Database, resource_id: str, state: dict[str, Any], inputs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        schema, table, column, include = split_id(resource_id, 4, "public.sessions.user_id.id")
        with db.connection() as conn:
            found = find_serving_index(conn, schema, table, column, include)
        if found is None:
            return None  # nothing serves the lookup now: the next `up` builds the index again
        index, marked = found
        # Ours if we recorded building it, or (on import) it carries our mark.
        created = marked and ((index == state.get("index") and bool(state.get("created"))) if state else True)
        current = {"schema": schema, "table": table, "column": column, "include": include}
        return {**current, "index": index, "created": created}, inputs or current
