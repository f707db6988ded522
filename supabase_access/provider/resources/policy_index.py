"""PolicyIndex: an index for one lookup an RLS policy makes, the app's own if it has one.

The owner profile's policies search a parent table by its link column and read its key, e.g.
`select "id" from "public"."sessions" where "user_id" = (select auth.uid())`. An existing valid
plain b-tree index whose first key column is `column` serves that lookup and is used as it is
(one holding `include` too, as a key or INCLUDE column, first: it answers from the index alone),
so the app's writes never pay for a near-duplicate beside its own. Only when none exists does the
resource build `(column) include (include)` CONCURRENTLY, mark it with a comment, and drop it on
delete (and only while it still carries the mark)."""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import psycopg

from supabase_access.model.policy_lookups import policy_index_build_name, policy_index_name
from supabase_access.provider import claims, ledger, specs
from supabase_access.provider.base import (
    CURRENT_STACK,
    DatabaseResource,
    InputError,
    Log,
    Notice,
    identifier,
    split_id,
)
from supabase_access.provider.private_schema import require_columns
from supabase_access.provider.specs import PolicyIndexInputs as Inputs
from supabase_access.provider.specs import PolicyIndexState as State
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from supabase_access.sql.errors import CatalogError
from supabase_access.sql.rows import fetch_one
from supabase_access.sql.transaction import autocommit, lock_tables, write_transaction

# The ledger's record of which stack built an index.
LEDGER_KIND = "policy-index-builder"
# Above this many rows (planner estimate) or bytes a build is announced before it starts.
LARGE_TABLE_ROWS = 1_000_000
LARGE_TABLE_BYTES = 256 * 1024 * 1024
# A build reads the whole table: bounded, but far above the other statements' limit.
INDEX_BUILD_TIMEOUT = "2h"


def _checked(inputs: Inputs) -> Inputs:
    checked = Inputs(
        schema=identifier(inputs.schema, "schema"),
        table=identifier(inputs.table, "table"),
        column=identifier(inputs.column, "column"),
        include=identifier(inputs.include, "include"),
    )
    if checked.column == checked.include:
        raise InputError(
            "include", f"include: {checked.include} is the searched column itself; give the column read back"
        )
    return checked


class LookupIndex(NamedTuple):
    """An index serving a lookup: its name, whether it carries our marker, whether it holds the key read back."""

    name: str
    marked: bool
    covers: bool


def find_serving_index(
    conn: psycopg.Connection, schema: str, table: str, column: str, include: str
) -> LookupIndex | None:
    """The index serving the lookup (a covering one first, then ours by name); None if there is none."""
    serving = fetch_one(
        conn, catalog.SERVING_INDEXES, (include, schema, table, column, policy_index_name(table, column, include))
    )
    if serving is None:
        return None
    return LookupIndex(serving.name, serving.comment == render.POLICY_INDEX_MARKER, serving.covers)


def _reuse_notice(schema: str, table: str, column: str, include: str, found: LookupIndex) -> Notice:
    """Said when the app's own index leading with the column serves the lookup, so none is built beside it."""
    what = f"{schema}.{table} ({column})"
    if found.covers:
        return Notice(f"using the app's index {schema}.{found.name} on {what} for RLS policy lookups; none built")
    return Notice(
        f"using the app's index {schema}.{found.name} on {what} for RLS policy lookups; none built beside it. "
        f"Each lookup also reads the table for {include}: for index-only lookups, give that index "
        f"`include ({include})` in a migration"
    )


def _is_ours(conn: psycopg.Connection, schema: str, index: str) -> bool:
    state = fetch_one(conn, catalog.INDEX_STATE, (schema, index))
    return state is not None and state.comment == render.POLICY_INDEX_MARKER


def _is_large(conn: psycopg.Connection, schema: str, table: str) -> bool:
    size = fetch_one(conn, catalog.RELATION_SIZE, (schema, table))
    return size is not None and (size.rows >= LARGE_TABLE_ROWS or size.bytes >= LARGE_TABLE_BYTES)


def _build_leftover(conn: psycopg.Connection, schema: str, table: str, build: str) -> bool | None:
    """Validity of an index left under our build name on `table` (None: there is none)."""
    relation = fetch_one(conn, catalog.RELATION_KIND, (schema, build))
    if relation is None:
        return None
    if relation.kind != "i" or relation.table != table:
        raise CatalogError(
            f"cannot build index {schema}.{build} for RLS policy lookups: a relation of that name exists on "
            f"{relation.table or 'no table'} and was not created by supabase-access; rename or drop it"
        )
    state = fetch_one(conn, catalog.INDEX_STATE, (schema, build))
    return bool(state and state.valid)


def _finish_build(db: Database, schema: str, table: str, build: str, name: str) -> None:
    """Give a valid index built under `build` its name and our mark, both or neither."""
    with write_transaction(db) as conn:
        # Which stack built it, in the same transaction: its rerun knows it as its own.
        lock_tables(conn, schema, [table])
        ledger.record(conn, LEDGER_KIND, f"{schema}.{name}", ledger.MadeBy(stack=CURRENT_STACK.get()), replace=True)
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
        taken = fetch_one(conn, catalog.RELATION_KIND, (schema, name))
        leftover = fetch_one(conn, catalog.INDEX_STATE, (schema, name))
    ours_by_name = leftover is not None and leftover.comment == render.POLICY_INDEX_MARKER
    if leftover_build is not None:
        if leftover_build and (taken is None or (ours_by_name and leftover is not None and not leftover.valid)):
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
            built = ledger.read_as(conn, LEDGER_KIND, f"{schema}.{found.name}", ledger.MadeBy)
            ours = found.marked and found.name == name and built is not None and built.stack == CURRENT_STACK.get()
            if not found.marked:
                log(_reuse_notice(schema, table, column, include, found))
            return found.name, ours
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
    if found is None or found.name != name:
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


class PolicyIndex(DatabaseResource[Inputs, State]):
    spec = specs.POLICY_INDEX

    def normalize(self, inputs: Inputs) -> Inputs:
        _checked(inputs)
        return replace(inputs, schema=identifier(inputs.schema, "schema"))

    def validate(self, db: Database, olds: Inputs | None, checked: Inputs) -> None:
        target = _checked(checked)
        with db.connection() as conn:
            require_columns(conn, target.schema, target.table, {target.column: "column", target.include: "include"})

    def diff_live(self, db: Database, state: State, inputs: Inputs) -> dict[str, str]:
        t = _checked(inputs)
        with db.connection() as conn:
            build = _build_leftover(conn, t.schema, t.table, policy_index_build_name(t.table, t.column, t.include))
            found = find_serving_index(conn, t.schema, t.table, t.column, t.include)
        # A leftover build of an interrupted run: the next `up` finishes or rebuilds it.
        return {"index": "update"} if found is None or build is not None else {}

    def _apply(self, db: Database, inputs: Inputs, previous: State | None, log: Log) -> State:
        t = _checked(inputs)
        index, created = _ensure_index(db, t.schema, t.table, t.column, t.include, log)
        if previous is not None and index == previous.index and previous.created:
            created = True  # still the one we built: destroy drops it
        return State.taking(inputs, schema=t.schema, index=index, created=created)

    def on_create(self, db: Database, inputs: Inputs, log: Log) -> tuple[str, State]:
        state = self._apply(db, inputs, None, log)
        return f"{state.schema}.{state.table}.{state.column}.{state.include}", state

    def on_update(self, db: Database, state: State, inputs: Inputs, log: Log) -> State:
        return self._apply(db, inputs, state, log)

    def on_delete(self, db: Database, state: State, log: Log) -> None:
        # Only what we built, and only while it carries our mark: an index someone else serves
        # their queries with (or took over and re-commented) stays.
        schema, table = state.schema, state.table
        if state.created and state.index:
            _drop_index_if_ours(db, schema, table, state.index)
        # An interrupted build of ours (its name says so) goes too.
        build = policy_index_build_name(table, state.column, state.include)
        with db.connection() as conn:
            leftover = _build_leftover(conn, schema, table, build)
        if leftover is not None:
            with autocommit(db, schema, table) as conn:
                conn.execute(render.drop_policy_index(schema, build))

    def on_read(
        self, db: Database, resource_id: str, state: State | None, inputs: Inputs | None
    ) -> tuple[State, Inputs] | None:
        schema, table, column, include = split_id(resource_id, 4, "public.sessions.user_id.id")
        with db.connection() as conn:
            found = find_serving_index(conn, schema, table, column, include)
        if found is None:
            return None  # nothing serves the lookup now: the next `up` builds the index again
        index, marked = found.name, found.marked
        # Ours if we recorded building it, or (on import) it carries our mark.
        created = marked and ((index == state.index and bool(state.created)) if state else True)
        current = Inputs(schema=schema, table=table, column=column, include=include)
        return State.taking(current, index=index, created=created), inputs or current
