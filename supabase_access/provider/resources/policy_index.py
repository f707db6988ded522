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

from supabase_access.model.policy_lookups import policy_index_build_name, policy_index_name
from supabase_access.provider import claims, ledger, specs
from supabase_access.provider.base import (
    CURRENT_STACK,
    InputError,
    Log,
    Notice,
    PlainDatabaseResource,
    identifier,
    split_id,
)
from supabase_access.provider.private_schema import require_columns
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.catalog import CatalogError
from supabase_access.sql.database import Database
from supabase_access.sql.transaction import autocommit, lock_tables, write_transaction

INPUTS = ("schema", "table", "column", "include")
# The ledger's record of which stack built an index.
LEDGER_KIND = "policy-index-builder"
# Above this many rows (planner estimate) or bytes a build is announced before it starts.
LARGE_TABLE_ROWS = 1_000_000
LARGE_TABLE_BYTES = 256 * 1024 * 1024
# A build reads the whole table: bounded, but far above the other statements' limit.
INDEX_BUILD_TIMEOUT = "2h"


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
        catalog.find_serving_index_query(),
        (schema, table, column, include, policy_index_name(table, column, include)),
    ).fetchone()
    return None if row is None else (row[0], row[1] == render.POLICY_INDEX_MARKER)


def _is_ours(conn: psycopg.Connection, schema: str, index: str) -> bool:
    row = conn.execute(catalog.index_state_query(), (schema, index)).fetchone()
    return row is not None and row[1] == render.POLICY_INDEX_MARKER


def _is_large(conn: psycopg.Connection, schema: str, table: str) -> bool:
    row = conn.execute(catalog.relation_size_query(), (schema, table)).fetchone()
    return row is not None and (row[0] >= LARGE_TABLE_ROWS or row[1] >= LARGE_TABLE_BYTES)


def _build_leftover(conn: psycopg.Connection, schema: str, table: str, build: str) -> bool | None:
    """Validity of an index left under our build name on `table` (None: there is none)."""
    kind = conn.execute(catalog.relation_kind_query(), (schema, build)).fetchone()
    if kind is None:
        return None
    if kind[0] != "i" or kind[1] != table:
        raise CatalogError(
            f"cannot build index {schema}.{build} for RLS policy lookups: a relation of that name exists on "
            f"{kind[1] or 'no table'} and was not created by supabase-access; rename or drop it"
        )
    state = conn.execute(catalog.index_state_query(), (schema, build)).fetchone()
    return bool(state and state[0])


def _finish_build(db: Database, schema: str, table: str, build: str, name: str) -> None:
    """Give a valid index built under `build` its name and our mark, both or neither."""
    with write_transaction(db) as conn:
        # Which stack built it, in the same transaction: its rerun knows it as its own.
        lock_tables(conn, schema, [table])
        ledger.record(conn, LEDGER_KIND, f"{schema}.{name}", {"stack": CURRENT_STACK.get()}, replace=True)
        conn.execute(render.rename_index(schema, build, name))
        conn.execute(render.mark_policy_index(schema, name))


def _ensure_index(db: Database, schema: str, table: str, column: str, include: str, log: Log) -> tuple[str, bool]:
    """(index name, created now) of an index serving the lookup, built if there is none.

    The build runs under a name of ours (`..._rls_build`) and is renamed and marked once valid,
    so a build interrupted at any point is recognised by the next run: rebuilt if invalid,
    finished (renamed, marked) if a killed run's backend completed it.
    """
    name = policy_index_name(table, column, include)
    build = policy_index_build_name(table, column, include)
    what = f"{schema}.{table} ({column}) include ({include})"
    with db.connection() as conn:
        leftover_build = _build_leftover(conn, schema, table, build)
        taken = conn.execute(catalog.relation_kind_query(), (schema, name)).fetchone()
        leftover = conn.execute(catalog.index_state_query(), (schema, name)).fetchone()
    ours_by_name = leftover is not None and leftover[1] == render.POLICY_INDEX_MARKER
    if leftover_build is not None:
        if leftover_build and (taken is None or (ours_by_name and leftover is not None and not leftover[0])):
            if taken is not None:
                with autocommit(db, schema, table) as conn:
                    conn.execute(render.drop_policy_index(schema, name))
            _finish_build(db, schema, table, build, name)
            log(Notice(f"finished index {schema}.{name} on {what}, which an interrupted run had built"))
            return name, True
        with autocommit(db, schema, table) as conn:
            conn.execute(render.drop_policy_index(schema, build))
    with db.connection() as conn:
        found = find_serving_index(conn, schema, table, column, include)
        if found is not None:
            # Ours only if this stack built it (say a run killed before the engine recorded that).
            built_by = (ledger.read(conn, LEDGER_KIND, f"{schema}.{found[0]}") or {}).get("stack")
            return found[0], found[1] and found[0] == name and built_by == CURRENT_STACK.get()
        large = _is_large(conn, schema, table)
    if taken is not None and not ours_by_name:
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
    with autocommit(db, schema, table, statement_timeout=INDEX_BUILD_TIMEOUT) as conn:
        if leftover is not None:
            # Ours but not serving (say invalid, from before builds ran under their own name).
            conn.execute(render.drop_policy_index(schema, name))
        try:
            conn.execute(render.create_policy_index(schema, table, build, column, include))
        except psycopg.Error:
            # A failed concurrent build leaves an invalid index behind.
            conn.execute(render.drop_policy_index(schema, build))
            raise
    _finish_build(db, schema, table, build, name)
    with db.connection() as conn:
        found = find_serving_index(conn, schema, table, column, include)
    if found is None or found[0] != name:
        raise CatalogError(f"index {schema}.{name} was built but does not serve {what}; check it by hand")
    log(Notice(f"created index {schema}.{name} on {what} for RLS policy lookups; destroy drops it"))
    return name, True


def _drop_index_if_ours(db: Database, schema: str, table: str, index: str) -> None:
    with db.connection() as conn:
        # Another stack's table (one made before claims shared it): its policies use the index.
        ours = _is_ours(conn, schema, index) and claims.other_stack(conn, schema, table) is None
    if ours:
        with autocommit(db, schema, table) as conn:
            conn.execute(render.drop_policy_index(schema, index))
    with write_transaction(db) as conn:
        ledger.forget(conn, LEDGER_KIND, f"{schema}.{index}")
    ledger.tidy(db)


class PolicyIndex(PlainDatabaseResource):
    spec = specs.POLICY_INDEX

    def normalize(self, inputs: dict[str, Any]) -> dict[str, Any]:
        _target(inputs)
        return {**inputs, "schema": identifier(inputs, "schema", "public")}

    def validate(self, db: Database, olds: dict[str, Any], checked: dict[str, Any]) -> None:
        schema, table, column, include = _target(checked)
        with db.connection() as conn:
            require_columns(conn, schema, table, {column: "column", include: "include"})

    def diff_live(self, db: Database, state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, str]:
        schema, table, column, include = _target(inputs)
        with db.connection() as conn:
            build = _build_leftover(conn, schema, table, policy_index_build_name(table, column, include))
            found = find_serving_index(conn, schema, table, column, include)
        # A leftover build of an interrupted run: the next `up` finishes or rebuilds it.
        return {"index": "update"} if found is None or build is not None else {}

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
        schema, table = state.get("schema") or "public", state["table"]
        if state.get("created") and state.get("index"):
            _drop_index_if_ours(db, schema, table, state["index"])
        # An interrupted build of ours (its name says so) goes too.
        build = policy_index_build_name(table, state["column"], state["include"])
        with db.connection() as conn:
            leftover = _build_leftover(conn, schema, table, build)
        if leftover is not None:
            with autocommit(db, schema, table) as conn:
                conn.execute(render.drop_policy_index(schema, build))

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
