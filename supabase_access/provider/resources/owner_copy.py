"""OwnerCopy: a copy of the owner on a table deep in an ownership path, added and kept right.

What `up` does, each step safe to interrupt and finished by the next `up` (every object carries
a comment naming the stack, and the ledger records which stack added the column):

1. one short transaction: the column (nullable, no default: a catalog change, no rewrite), the
   trigger functions in the private schema, the triggers (the copy table's BEFORE INSERT and
   BEFORE UPDATE take the owner from the parent, whatever the client sent; an AFTER UPDATE on
   each table above passes a re-parenting or an owner change down), and a CHECK that the copy is
   present, NOT VALID (new rows are checked from then on);
2. the fill, in batches over ranges of the table's pages, each its own transaction (the copy
   table's trigger computes each value), with progress in the engine's log;
3. the index on the copy, built CONCURRENTLY under a name of ours and renamed and marked once
   valid (as PolicyIndex builds);
4. the foreign key to auth.users (on delete cascade), added NOT VALID and then validated;
5. VALIDATE of the CHECK (VALIDATE takes a lock that lets the app read and write).

`destroy` drops all of it (the column last, with its constraints and index), so the catalog is
what it was before.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import psycopg

from supabase_access.model import hardening
from supabase_access.model.access_model import Hop
from supabase_access.model.owner_copy import COLUMN_TYPE, GROUP_KEY_TYPES, OwnerCopyNames, marked_by, marker
from supabase_access.provider import ledger, specs
from supabase_access.provider.base import (
    CHECK_LOG,
    CURRENT_STACK,
    DatabaseResource,
    InputError,
    Log,
    Notice,
    identifier,
    not_importable,
    split_id,
)
from supabase_access.provider.private_schema import (
    check_private_schema,
    drop_private_schema_if_unused,
    ensure_private_schema,
    lock_private_schema,
    positive_int,
    require_columns,
    require_rls_not_filtering,
    table_columns,
)
from supabase_access.provider.resources.policy_index import INDEX_BUILD_TIMEOUT
from supabase_access.provider.specs import HopEntry
from supabase_access.provider.specs import OwnerCopyInputs as Inputs
from supabase_access.provider.specs import OwnerCopyState as State
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database, execute_together, read_together
from supabase_access.sql.errors import CatalogError
from supabase_access.sql.rows import fetch_all, fetch_one, fetch_value
from supabase_access.sql.transaction import autocommit, lock_tables, write_transaction

# The ledger's record of which stack added a copy column (and along which path).
LEDGER_KIND = "owner-copy"


@dataclass(frozen=True, kw_only=True)
class CopyMadeBy(ledger.MadeBy):
    """The ledger's record of an owner copy's column: the stack that added it, and the path it copies along."""

    path: tuple[HopEntry, ...] = ()


DEFAULT_BATCH_ROWS = 10_000
MAX_BATCH_ROWS = 1_000_000
# A fill longer than this reports its progress in the engine's log, and again every as long.
PROGRESS_EVERY_SECONDS = 10.0
# Filling, validating and indexing read the whole table: bounded, but far above the other statements' limit.
LONG_STATEMENT_TIMEOUT = INDEX_BUILD_TIMEOUT


def _path(inputs: Inputs, table: str) -> tuple[Hop, ...]:
    if not inputs.path:
        raise InputError("path", "path: expected a list of hops {table, column, parent, key} up to the owner")
    hops = []
    below = table
    for hop in inputs.path:
        parsed = Hop(*(identifier(getattr(hop, key), key) for key in ("table", "column", "parent", "key")))
        if parsed.table != below:
            raise InputError("path", f"path: the hop from {parsed.table} does not continue from {below}")
        hops.append(parsed)
        below = parsed.parent
    return tuple(hops)


def _target(inputs: Inputs) -> tuple[OwnerCopyNames, str, int]:
    schema, table, column = (
        identifier(inputs.schema, "schema"),
        identifier(inputs.table, "table"),
        identifier(inputs.column, "column"),
    )
    hops = _path(inputs, table)
    first, *_ = hops
    if column == first.column:
        raise InputError("column", f"column: {column} is the path's own column on {table}; name another")
    names = OwnerCopyNames(
        schema, table, column, hops, identifier(inputs.root_column, "rootColumn"), group=bool(inputs.group)
    )
    batch = positive_int(inputs.batch_size, "batchSize", MAX_BATCH_ROWS, optional=True) or DEFAULT_BATCH_ROWS
    return names, identifier(inputs.private_schema, "privateSchema"), batch


def _typed_path(hops: Sequence[Hop]) -> tuple[HopEntry, ...]:
    return tuple(HopEntry(table=h.table, column=h.column, parent=h.parent, key=h.key) for h in hops)


def _describe(names: OwnerCopyNames) -> str:
    return f"{names.schema}.{names.table}.{names.column}"


def _copied(names: OwnerCopyNames) -> str:
    return "the group's key" if names.group else "the owner"


def _setting(names: OwnerCopyNames) -> str:
    return "copyGroup" if names.group else "copyOwner"


def _about_column(names: OwnerCopyNames) -> str:
    path = " -> ".join([names.table, *(h.parent for h in names.hops)])
    return (
        f"{_copied(names)} ({names.hops[-1].parent}.{names.root_column}) along {path}, for the RLS policies; "
        "a trigger sets it, clients never do"
    )


def _rows_the_copy_would_delete(conn: psycopg.Connection, names: OwnerCopyNames) -> str | None:
    """The copy's foreign key deletes a row with its owner or group (on delete cascade). That is the app's own
    outcome when its keys from the table lead there cascading (or refuse the delete); where the app keeps the
    rows instead (a key that sets null or a default, or none), the copy would delete them: said at preview."""
    root_schema, root = ("auth", "users") if not names.group else (names.schema, names.hops[-1].parent)
    if catalog.deleted_with(conn, names.schema, names.table, root_schema, root):
        return None
    setting = f"tables.{names.table}.{_setting(names)}"
    return (
        f"{setting}: deleting a {root_schema}.{root} row will delete the {names.schema}.{names.table} rows under it "
        f"(the copy's foreign key cascades), but the app's foreign keys from {names.table} keep them (no chain of "
        f"keys that cascade, restrict or take no action leads to {root}: one sets null or a default, or is "
        f"missing). Make the path's keys cascade, or leave {_setting(names)} out if those rows must outlive it"
    )


# --- reading what is there ----------------------------------------------------------------------


def _column_owner(conn: psycopg.Connection, names: OwnerCopyNames) -> tuple[bool, str | None]:
    """(the column exists, the stack its comment names or None when the comment is not ours)."""
    column = fetch_one(conn, catalog.COLUMN_STATE, (names.schema, names.table, names.column))
    return (False, None) if column is None else (True, marked_by(column.comment))


def _refuse_foreign_column(names: OwnerCopyNames, made_by: str | None) -> InputError:
    stack = CURRENT_STACK.get()
    if made_by is None:
        reason = "was not created by supabase-access"
        fix = (
            f"keep it as the app's own column (no `{_setting(names)}` in the model), "
            f"or name the copy otherwise (`{_setting(names)}: <column>`)"
        )
    else:
        reason = f"is kept by stack {made_by}, not {stack}"
        fix = f"destroy that stack's copy first, or name this one otherwise (`{_setting(names)}: <column>`)"
    return InputError("column", f"column: {_describe(names)} exists and {reason}; {fix}")


@dataclass(frozen=True)
class _Live:
    """Everything diff compares, as the catalog has it."""

    column: catalog.ColumnState | None
    triggers: dict[tuple[str, str], catalog.TriggerState]  # (table, trigger) ->
    functions: dict[str, str]  # name -> body
    constraints: dict[str, catalog.ConstraintState]
    index: catalog.IndexState | None
    build: catalog.IndexState | None


def _live_state(db: Database, names: OwnerCopyNames, private_schema: str) -> _Live:
    """Everything diff compares, in one round trip."""
    tables = [t for t, _ in names.triggers]
    triggers = [name for _, name in names.triggers]
    with db.connection() as conn:
        column, trigger_rows, function_rows, constraint_rows, index, build = read_together(
            conn,
            (catalog.COLUMN_STATE, (names.schema, names.table, names.column)),
            (catalog.TRIGGERS_STATE, (names.schema, tables, triggers)),
            (catalog.FUNCTION_BODIES, (private_schema, list(names.functions))),
            (
                catalog.CONSTRAINTS_STATE,
                (names.schema, names.table, [names.check_constraint, names.foreign_key]),
            ),
            (catalog.INDEX_STATE, (names.schema, names.index)),
            (catalog.INDEX_STATE, (names.schema, names.index_build)),
        )
    return _Live(
        column=next(iter(column), None),
        triggers={(t.table, t.trigger): t for t in trigger_rows},
        functions={f.name: f.body for f in function_rows},
        constraints={c.name: c for c in constraint_rows},
        index=next(iter(index), None),
        build=next(iter(build), None),
    )


def _function_bodies(names: OwnerCopyNames) -> dict[str, str]:
    bodies = {names.function: render.owner_copy_function_body(names.schema, names)}
    for watched in names.watched:
        bodies[names.ancestor_function(watched.table)] = render.owner_copy_ancestor_function_body(
            names.schema, names, watched
        )
    return bodies


def _live_changes(names: OwnerCopyNames, private_schema: str, live: _Live) -> dict[str, str]:
    stack = CURRENT_STACK.get()
    changes: dict[str, str] = {}
    if live.column is None or marked_by(live.column.comment) != stack:
        changes["column"] = "add" if live.column is None else "update"
    expected = {(table, trigger): (private_schema, names.function) for table, trigger in names.triggers[:2]}
    expected.update(
        {(w.table, names.ancestor_trigger): (private_schema, names.ancestor_function(w.table)) for w in names.watched}
    )
    found = {key: (t.function_schema, t.function) for key, t in live.triggers.items() if t.enabled != "D"}
    if found != expected:
        changes["triggers"] = "update"
    if live.functions != _function_bodies(names):
        changes["functions"] = "update"
    for key, constraint in (("checkConstraint", names.check_constraint), ("foreignKey", names.foreign_key)):
        state = live.constraints.get(constraint)
        if state is None or not state.validated:
            changes[key] = "update"  # missing, or NOT VALID (not filled yet, or rows without a parent)
    index = live.index
    if index is None or not index.valid or marked_by(index.comment) != stack or live.build is not None:
        changes["index"] = "update"
    return changes


# --- applying -----------------------------------------------------------------------------------


def _install(
    db: Database, names: OwnerCopyNames, private_schema: str, previous: OwnerCopyNames | None, log: Log
) -> bool:
    """Step 1, one transaction: column, functions, triggers, CHECK (NOT VALID). True when the
    column was added now."""
    stack = CURRENT_STACK.get()
    gone = [] if previous is None else [w for w in previous.watched if w.table not in {x.table for x in names.watched}]
    with write_transaction(db) as conn:
        lock_tables(conn, names.schema, [*names.tables, *(w.table for w in gone)])
        exists, made_by = _column_owner(conn, names)
        if exists and made_by != stack:
            raise _refuse_foreign_column(names, made_by)
        ensure_private_schema(conn, private_schema)  # after the table locks, as everywhere
        # The table's locks come last: taken for milliseconds, at the end of the transaction.
        statements: list[Any] = []
        for function, body in _function_bodies(names).items():
            statements += [
                render.create_owner_copy_function(private_schema, function, body),
                render.revoke_function_from_api(private_schema, function),
                render.comment_on_function(private_schema, function, marker(stack, f"keeps {_describe(names)}")),
            ]
        if not exists:
            root = names.hops[-1].parent
            kind = table_columns(conn, names.schema, root)[names.root_column] if names.group else COLUMN_TYPE
            statements += [
                render.add_owner_copy_column(names.schema, names.table, names.column, kind),
                render.comment_on_column(names.schema, names.table, names.column, marker(stack, _about_column(names))),
            ]
        for table, trigger in [*names.triggers, *((w.table, names.ancestor_trigger) for w in gone)]:
            statements.append(render.drop_trigger(names.schema, table, trigger))
        statements += render.create_owner_copy_triggers(names.schema, private_schema, names)
        statements += [
            render.comment_on_trigger(names.schema, table, trigger, marker(stack, f"keeps {_describe(names)}"))
            for table, trigger in names.triggers
        ]
        statements += [render.drop_function(private_schema, names.ancestor_function(w.table)) for w in gone]
        present = {
            c.name
            for c in fetch_all(conn, catalog.CONSTRAINTS_STATE, (names.schema, names.table, [names.check_constraint]))
        }
        # A new link column (the path changed where it starts): the CHECK names it, so it is made again.
        relinked = previous is not None and previous.link != names.link
        if relinked:
            statements.append(render.drop_constraint(names.schema, names.table, names.check_constraint, if_exists=True))
        if relinked or names.check_constraint not in present:
            statements += [
                render.add_owner_copy_check(names.schema, names),
                render.comment_on_constraint(
                    names.schema, names.table, names.check_constraint, marker(stack, "the owner copy is present")
                ),
            ]
        execute_together(conn, statements)
        # Which stack added the column, in the transaction that added it: a run killed before the
        # engine recorded the create is finished by the next `up`, and destroy drops only ours.
        made = CopyMadeBy(stack=stack, path=_typed_path(names.hops))
        ledger.record(conn, LEDGER_KIND, _describe(names), made, replace=True)
    if not exists:
        log(Notice(f"added column {_describe(names)} (a copy of {_copied(names)}, kept by triggers); filling it next"))
    return not exists


def _fill(db: Database, names: OwnerCopyNames, batch_rows: int, *, every_row: bool, log: Log) -> int:
    """Step 2: the rows without a copy (`every_row`: all rows), a batch of pages per transaction."""
    with db.connection() as conn:
        size = fetch_one(conn, catalog.TABLE_PAGES, (names.schema, names.table))
    if size is None or not size.pages:
        return 0
    pages = size.pages
    rows_per_page = max(1, size.estimated_rows // size.analyzed_pages) if size.analyzed_pages else 100
    step = max(1, batch_rows // rows_per_page)
    statement = render.fill_owner_copy_batch(names.schema, names, every_row=every_row)
    started = last_report = time.monotonic()
    filled = 0
    for first in range(0, pages, step):
        with write_transaction(db) as conn:
            lock_tables(conn, names.schema, [names.table])
            filled += conn.execute(statement, (f"({first},0)", f"({first + step},0)")).rowcount
        now = time.monotonic()
        if now - last_report >= PROGRESS_EVERY_SECONDS:
            done = min(pages, first + step)
            log(
                Notice(
                    f"filling {_describe(names)}: {filled:,} rows so far, pages {done:,} of {pages:,} "
                    f"({100 * done // pages} %), {now - started:.0f} s"
                )
            )
            last_report = now
    if time.monotonic() - started >= PROGRESS_EVERY_SECONDS or filled:
        log(Notice(f"filled {_describe(names)}: {filled:,} rows in {time.monotonic() - started:.1f} s"))
    return filled


def _finish_index(db: Database, names: OwnerCopyNames) -> None:
    """A valid index built under our build name takes its name and mark, both or neither."""
    with write_transaction(db) as conn:
        lock_tables(conn, names.schema, [names.table])
        conn.execute(render.rename_index(names.schema, names.index_build, names.index))
        conn.execute(render.comment_on_index(names.schema, names.index, marker(CURRENT_STACK.get(), "owner copy")))


def _ensure_index(db: Database, names: OwnerCopyNames, log: Log) -> None:
    """Step 3: built under `..._copy_build` and renamed once valid, so an interrupted build is known
    as ours: rebuilt if invalid, finished if a killed run's backend completed it."""
    schema, table = names.schema, names.table
    stack = CURRENT_STACK.get()
    with db.connection() as conn:
        index_rows, build_rows, index_kinds, build_kinds = read_together(
            conn,
            (catalog.INDEX_STATE, (schema, names.index)),
            (catalog.INDEX_STATE, (schema, names.index_build)),
            (catalog.RELATION_KIND, (schema, names.index)),
            (catalog.RELATION_KIND, (schema, names.index_build)),
        )
    index: catalog.IndexState | None = next(iter(index_rows), None)
    build: catalog.IndexState | None = next(iter(build_rows), None)
    for name, state, kinds in ((names.index, index, index_kinds), (names.index_build, build, build_kinds)):
        kind: catalog.RelationKind | None = next(iter(kinds), None)
        ours = name == names.index_build or (state is not None and marked_by(state.comment) == stack)
        if kind is not None and (kind.kind != "i" or kind.table != table or not ours):
            raise CatalogError(
                f"cannot index {_describe(names)}: a relation named {schema}.{name} exists and was not created by "
                f"this stack's owner copy; rename or drop it"
            )
    valid = bool(index and index.valid)
    if valid and build is None:
        return
    if build is not None and build.valid and not valid:
        with autocommit(db, schema, table) as conn:
            conn.execute(render.drop_index(schema, names.index))
        _finish_index(db, names)
        log(Notice(f"finished index {schema}.{names.index}, which an interrupted run had built"))
        return
    with autocommit(db, schema, table, statement_timeout=LONG_STATEMENT_TIMEOUT) as conn:
        # An invalid leftover of ours (a build interrupted), or our build beside a valid index.
        conn.execute(render.drop_index(schema, names.index_build))
        if valid:
            return
        conn.execute(render.drop_index(schema, names.index))
        try:
            conn.execute(render.create_owner_copy_index(schema, table, names.index_build, names.column))
        except psycopg.Error:
            conn.execute(render.drop_index(schema, names.index_build))  # a failed build leaves an invalid index
            raise
    _finish_index(db, names)
    log(Notice(f"created index {schema}.{names.index} on {_describe(names)}, concurrently"))


def _validate(db: Database, names: OwnerCopyNames, constraint: str) -> bool:
    """VALIDATE CONSTRAINT (a SHARE UPDATE EXCLUSIVE lock: the app reads and writes meanwhile);
    False when rows violate it."""
    try:
        with autocommit(db, names.schema, names.table, statement_timeout=LONG_STATEMENT_TIMEOUT) as conn:
            conn.execute(render.validate_constraint(names.schema, names.table, constraint))
    except (psycopg.errors.CheckViolation, psycopg.errors.ForeignKeyViolation):
        return False
    return True


def _ensure_constraints(db: Database, names: OwnerCopyNames, log: Log) -> bool:
    """Steps 4 and 5: the foreign key (added NOT VALID), then both validated. True when both are."""
    stack = CURRENT_STACK.get()
    with db.connection() as conn:
        present = {
            c.name: c.validated
            for c in fetch_all(
                conn,
                catalog.CONSTRAINTS_STATE,
                (names.schema, names.table, [names.check_constraint, names.foreign_key]),
            )
        }
    if names.foreign_key not in present:
        with write_transaction(db) as conn:
            lock_tables(conn, names.schema, [names.table])
            conn.execute(render.add_owner_copy_foreign_key(names.schema, names))
            conn.execute(
                render.comment_on_constraint(
                    names.schema,
                    names.table,
                    names.foreign_key,
                    marker(stack, "the copy is a group" if names.group else "the owner copy is a user"),
                )
            )
        present[names.foreign_key] = False
    validated = True
    if not present[names.foreign_key] and not _validate(db, names, names.foreign_key):
        validated = False
        referenced = f"{names.hops[-1].parent}.{names.root_column}" if names.group else "auth.users"
        log(
            f"{_describe(names)}: some copies name no row of {referenced} (the column they copy holds such "
            f"values), so foreign key {names.foreign_key} stays NOT VALID (new rows are checked). Fix those rows; "
            "the next `pulumi up` validates it"
        )
    if not present.get(names.check_constraint) and not _validate(db, names, names.check_constraint):
        validated = False
        with db.connection() as conn:
            unfilled = fetch_value(conn, catalog.count_unfilled_query(names.schema, names)) or 0
        log(
            f"{_describe(names)}: {unfilled:,} row(s) link to no row up the path ({names.link}), so they have no "
            f"{'group' if names.group else 'owner'} to copy and constraint {names.check_constraint} stays NOT "
            "VALID (new rows are checked). Fix or delete those rows; the next `pulumi up` fills and validates them"
        )
    return validated


def _previous_names(state: State | None) -> OwnerCopyNames | None:
    if state is None:
        return None
    try:
        return _target(state)[0]
    except InputError:
        return None


# --- removing -----------------------------------------------------------------------------------


def _remove(db: Database, names: OwnerCopyNames, private_schema: str) -> None:
    """One transaction: triggers, functions, and the column with its constraints and index (if ours)."""
    stack = CURRENT_STACK.get()
    with write_transaction(db) as conn:
        present = [t for t in names.tables if table_columns(conn, names.schema, t)]
        lock_tables(conn, names.schema, present)
        lock_private_schema(conn, private_schema)
        exists, made_by = _column_owner(conn, names) if names.table in present else (False, None)
        made = ledger.read_as(conn, LEDGER_KIND, _describe(names), CopyMadeBy)
        recorded = made.stack if made is not None else None
        statements: list[Any] = [
            render.drop_trigger(names.schema, table, trigger) for table, trigger in names.triggers if table in present
        ]
        if exists and (made_by == stack or (made_by is None and recorded == stack)):
            statements += [
                render.drop_index(names.schema, names.index, concurrently=False),
                render.drop_index(names.schema, names.index_build, concurrently=False),
                render.drop_constraint(names.schema, names.table, names.foreign_key, if_exists=True),
                render.drop_constraint(names.schema, names.table, names.check_constraint, if_exists=True),
                render.drop_column(names.schema, names.table, names.column),
            ]
        statements += [render.drop_function(private_schema, function) for function in names.functions]
        execute_together(conn, statements)
        ledger.forget(conn, LEDGER_KIND, _describe(names))
    ledger.tidy(db)
    drop_private_schema_if_unused(db, private_schema)


class OwnerCopy(DatabaseResource[Inputs, State]):
    # A new column (or table) is a new copy: created beside the old one, which is dropped once the
    # policies read the new one. A changed path is an update (the copy is computed again).
    spec = specs.OWNER_COPY

    def normalize(self, inputs: Inputs) -> Inputs:
        names, private_schema, _ = _target(inputs)
        return replace(inputs, schema=names.schema, path=_typed_path(names.hops), private_schema=private_schema)

    def validate(self, db: Database, olds: Inputs | None, checked: Inputs) -> None:
        names, private_schema, _ = _target(checked)
        with db.connection() as conn:
            require_columns(conn, names.schema, names.table, {names.link: "path"})
            for level, hop in enumerate(names.hops):
                above = names.root_column if level == len(names.hops) - 1 else names.hops[level + 1].column
                require_columns(
                    conn,
                    names.schema,
                    hop.parent,
                    {hop.key: "path", above: "rootColumn" if above == names.root_column else "path"},
                    table_property="path",
                )
            root = names.hops[-1].parent
            owner_type = table_columns(conn, names.schema, root)[names.root_column]
            if owner_type not in (GROUP_KEY_TYPES if names.group else (COLUMN_TYPE,)):
                why = (
                    f"a copy of a group's key is made for keys of type {', '.join(GROUP_KEY_TYPES)}"
                    if names.group
                    else f"a copy of the owner references auth.users (id), so the owner column must be {COLUMN_TYPE}"
                )
                raise InputError(
                    "rootColumn", f"rootColumn: {names.schema}.{root}.{names.root_column} is {owner_type}; {why}"
                )
            same_column = olds is not None and (olds.table, olds.column) == (names.table, names.column)
            if same_column and olds is not None and bool(olds.group) != names.group:
                raise InputError(
                    "group",
                    f"group: {_describe(names)} cannot change between a copy of the owner and of a group's key; "
                    "name the new copy otherwise",
                )
            exists, made_by = _column_owner(conn, names)
            if exists and made_by != CURRENT_STACK.get():
                raise _refuse_foreign_column(names, made_by)
            warning = _rows_the_copy_would_delete(conn, names)
            log = CHECK_LOG.get()
            if warning is not None and log is not None:
                log(warning)
            # The triggers read the path as the login role: rows RLS hid from it would give no owner.
            require_rls_not_filtering(conn, "table", names.schema, names.tables)
            check_private_schema(conn, private_schema)

    def diff_live(self, db: Database, state: State, inputs: Inputs) -> dict[str, str]:
        names, private_schema, _ = _target(inputs)
        changes = _live_changes(names, private_schema, _live_state(db, names, private_schema))
        if state.path and state.path != _typed_path(names.hops):
            changes["path"] = "update"  # every copy is computed again
        return changes

    def _apply(self, db: Database, inputs: Inputs, state: State | None, log: Log) -> State:
        names, private_schema, batch = _target(inputs)
        previous = _previous_names(state)
        added = _install(db, names, private_schema, previous, log)
        moved = previous is not None and previous.hops != names.hops
        # Nothing to fill when the CHECK says every row has its copy (a rerun, a changed batch size).
        with db.connection() as conn:
            check = fetch_one(conn, catalog.CONSTRAINTS_STATE, (names.schema, names.table, [names.check_constraint]))
        if added or moved or not (check and check.validated):
            _fill(db, names, batch, every_row=moved, log=log)
        _ensure_index(db, names, log)
        validated = _ensure_constraints(db, names, log)
        return State.taking(
            inputs,
            schema=names.schema,
            path=_typed_path(names.hops),
            private_schema=private_schema,
            functions=tuple(f"{private_schema}.{f}" for f in names.functions),
            triggers=tuple(f"{table}.{trigger}" for table, trigger in names.triggers),
            index=names.index,
            check_constraint=names.check_constraint,
            foreign_key=names.foreign_key,
            validated=validated,
        )

    def on_create(self, db: Database, inputs: Inputs, log: Log) -> tuple[str, State]:
        state = self._apply(db, inputs, None, log)
        return _describe(_target(state)[0]), state

    def on_update(self, db: Database, state: State, inputs: Inputs, log: Log) -> State:
        return self._apply(db, inputs, state, log)

    def on_delete(self, db: Database, state: State, log: Log) -> None:
        names, private_schema, _ = _target(state)
        _remove(db, names, private_schema or hardening.PRIVATE_SCHEMA)

    def on_read(
        self, db: Database, resource_id: str, state: State | None, inputs: Inputs | None
    ) -> tuple[State, Inputs] | None:
        schema, table, column = split_id(resource_id, 3, "public.actions.user_id")
        known = state or inputs
        if known is None or not known.path:
            raise not_importable("OwnerCopy", "the id does not give its path; import it with its inputs (`import_`)")
        names, private_schema, _ = _target(Inputs.taking(known, schema=schema, table=table, column=column))
        with db.connection() as conn:
            exists, made_by = _column_owner(conn, names)
        if not exists or made_by != CURRENT_STACK.get():
            return None  # gone (or not ours): the next `up` adds it again
        live = _live_state(db, names, private_schema)
        validated = all(
            (c := live.constraints.get(name)) is not None and c.validated
            for name in (names.check_constraint, names.foreign_key)
        )
        current = Inputs.taking(known)
        return State.taking(state, current, validated=validated), inputs or current
