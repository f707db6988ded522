"""WriteQuota and RetentionPolicy: production limits that live inside the database.

WriteQuota: a BEFORE INSERT trigger that refuses a user's (N+1)-th new row of one table within
a window, with SQLSTATE PT429 (PostgREST answers it with HTTP 429). It counts the rows of the
table that belong to `auth.uid()` along the model's ownership path and were created in the
window, so it needs an index on (the path's first column, the timestamp column): an existing
one is used, otherwise the resource builds one (CONCURRENTLY) and only then drops it on delete.

RetentionPolicy: `purge_expired(...)` deletes anonymous users older than N days (and their
rows) and sessions older than M days, scheduled with pg_cron where the extension exists.

Both put their functions in a private schema that the provider creates, marks with a comment
and drops once the last of its objects is gone; the API roles get no access to it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import psycopg

from supabase_access import hardening
from supabase_access import sql as render
from supabase_access.catalog import CatalogError
from supabase_access.model import Hop
from supabase_access.profiles import OwnedByCurrentUser
from supabase_access.provider.base import (
    InputError,
    Log,
    ManagedResource,
    compare_fields,
    identifier,
    lock_tables,
    split_id,
)
from supabase_access.provider.database import Database

MAX_WINDOW_SECONDS = 31 * 86400
MAX_RETENTION_DAYS = 36500
WINDOW_LABEL = re.compile(r"^[a-z0-9 ]{1,40}$")
JOB_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
TIMESTAMP_TYPES = ("timestamp with time zone", "timestamp without time zone")
# The schema lock key: a pseudo-table name no real table can have (identifiers are [a-z0-9_]).
SCHEMA_LOCK = "(private schema)"


# --- shared helpers ----------------------------------------------------------------------------


def _positive_int(inputs: Mapping[str, Any], key: str, maximum: int, *, optional: bool = False) -> int | None:
    value = inputs.get(key)
    if value is None and optional:
        return None
    # bool is an int in Python; `true` is not a count.
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise InputError(key, f"{key}: expected a whole number from 1 to {maximum}, got {value!r}")
    return value


def _private_schema(inputs: Mapping[str, Any]) -> str:
    return identifier(inputs, "privateSchema", hardening.PRIVATE_SCHEMA)


def _dry_run(db: Database, property: str, what: str, statements: Sequence[Any]) -> None:
    """Let PostgreSQL check the statements (and our rights to run them) in a transaction that is rolled back."""
    with db.connection() as conn:
        try:
            with conn.transaction(force_rollback=True):
                conn.execute("set local lock_timeout = '5s'")
                for statement in statements:
                    conn.execute(statement)
        except psycopg.Error as exc:
            message = exc.diag.message_primary or str(exc)
            raise InputError(property, f"{property}: PostgreSQL refused the {what}: {message}") from exc


def _check_private_schema(conn: psycopg.Connection, private_schema: str) -> None:
    row = conn.execute(render.schema_comment_query(), (private_schema,)).fetchone()
    if row is None:
        (may_create,) = conn.execute(render.database_create_privilege_query()).fetchone() or (False,)
        if not may_create:
            raise InputError(
                "privateSchema",
                f"privateSchema: schema {private_schema} does not exist and role {conn.info.user} may not create "
                "schemas in this database (grant create on database to it, as Supabase does for postgres)",
            )
    elif row[0] != render.PRIVATE_SCHEMA_MARKER:
        # Our functions are SECURITY DEFINER: they must live where we control who may do what.
        raise InputError(
            "privateSchema",
            f"privateSchema: schema {private_schema} exists but was not created by supabase-access; "
            "choose another name",
        )


def _ensure_private_schema(conn: psycopg.Connection, private_schema: str) -> None:
    """Inside the caller's transaction, so the schema cannot be dropped before our object is in it."""
    lock_tables(conn, private_schema, [SCHEMA_LOCK])
    if conn.execute(render.schema_comment_query(), (private_schema,)).fetchone() is None:
        conn.execute(render.create_private_schema(private_schema))
        conn.execute(render.mark_private_schema(private_schema))
        conn.execute(render.revoke_private_schema(private_schema))


def _drop_private_schema_if_unused(db: Database, private_schema: str) -> None:
    with db.connection() as conn, conn.transaction():
        lock_tables(conn, private_schema, [SCHEMA_LOCK])
        row = conn.execute(render.schema_comment_query(), (private_schema,)).fetchone()
        if row is None or row[0] != render.PRIVATE_SCHEMA_MARKER:
            return
        try:
            with conn.transaction():
                conn.execute(render.drop_private_schema(private_schema))
        except psycopg.errors.DependentObjectsStillExist:
            pass  # another quota or the retention function still lives there


def _columns(conn: psycopg.Connection, schema: str, table: str) -> dict[str, str]:
    return dict(conn.execute(render.table_columns_query(), (schema, table)).fetchall())


def _require_columns(
    conn: psycopg.Connection,
    schema: str,
    table: str,
    wanted: Mapping[str, str],
    *,
    timestamp: str | None = None,
    table_property: str = "table",
) -> None:
    """`wanted`: column -> the input that names it. Fails naming that input."""
    columns = _columns(conn, schema, table)
    if not columns:
        raise InputError(table_property, f"{table_property}: {schema}.{table} does not exist in the database")
    for column, property in wanted.items():
        if column not in columns:
            raise InputError(property, f"{property}: {schema}.{table} has no column {column}")
    if timestamp is not None and columns.get(timestamp) not in TIMESTAMP_TYPES:
        raise InputError(
            "timestampColumn", f"timestampColumn: {schema}.{table}.{timestamp} is {columns[timestamp]}, not a timestamp"
        )


def _require_rls_not_filtering(conn: psycopg.Connection, property: str, schema: str, tables: Sequence[str]) -> None:
    for table in tables:
        row = conn.execute(render.row_security_active_query(), (schema, table)).fetchone()
        if row is not None and row[0]:
            raise InputError(
                property,
                f"{property}: row-level security applies to role {conn.info.user} on {schema}.{table} "
                "(FORCE ROW LEVEL SECURITY, or not its owner, without BYPASSRLS), so the function could not see "
                "its rows; connect as the table owner or a role with BYPASSRLS",
            )


@contextmanager
def _autocommit(db: Database) -> Iterator[psycopg.Connection]:
    """For CREATE/DROP INDEX CONCURRENTLY, which cannot run inside a transaction."""
    with db.connection() as conn:
        conn.autocommit = True
        try:
            yield conn
        finally:
            conn.autocommit = False


# --- WriteQuota --------------------------------------------------------------------------------

QUOTA_INPUTS = (
    "schema",
    "table",
    "path",
    "ownerColumn",
    "timestampColumn",
    "limit",
    "windowSeconds",
    "windowLabel",
    "privateSchema",
)


def _path(inputs: Mapping[str, Any], table: str) -> tuple[Hop, ...]:
    raw = inputs.get("path") or []
    if not isinstance(raw, list):
        raise InputError("path", "path: expected a list of {table, column, parent, key} hops")
    hops = []
    expected_table = table
    for position, hop in enumerate(raw):
        if not isinstance(hop, Mapping):
            raise InputError("path", f"path[{position}]: expected {{table, column, parent, key}}")
        parsed = Hop(
            table=identifier(hop, "table"),
            column=identifier(hop, "column"),
            parent=identifier(hop, "parent"),
            key=identifier(hop, "key", "id"),
        )
        if parsed.table != expected_table:
            raise InputError("path", f"path[{position}].table: expected {expected_table}, got {parsed.table}")
        hops.append(parsed)
        expected_table = parsed.parent
    return tuple(hops)


def _quota_target(inputs: Mapping[str, Any]) -> tuple[hardening.WriteQuotaTarget, str]:
    schema, table = identifier(inputs, "schema", "public"), identifier(inputs, "table")
    window_seconds = _positive_int(inputs, "windowSeconds", MAX_WINDOW_SECONDS)
    assert window_seconds is not None
    label = inputs.get("windowLabel") or f"{window_seconds} seconds"
    if not isinstance(label, str) or not WINDOW_LABEL.match(label):
        raise InputError("windowLabel", f"windowLabel: expected a few lower-case words like 'hour', got {label!r}")
    limit = _positive_int(inputs, "limit", 1_000_000)
    assert limit is not None
    target = hardening.WriteQuotaTarget(
        schema=schema,
        table=table,
        hops=_path(inputs, table),
        owner_column=identifier(inputs, "ownerColumn"),
        timestamp_column=identifier(inputs, "timestampColumn", hardening.DEFAULT_TIMESTAMP_COLUMN),
        limit=limit,
        window_seconds=window_seconds,
        window_label=label,
    )
    return target, _private_schema(inputs)


def _quota_body(target: hardening.WriteQuotaTarget) -> str:
    root = target.hops[-1].parent if target.hops else target.table
    owned = OwnedByCurrentUser(target.hops, root, target.owner_column)
    return render.write_quota_function_body(target.schema, target.table, owned, target.timestamp_column)


def _quota_statements(target: hardening.WriteQuotaTarget, private_schema: str) -> list[Any]:
    """Function and trigger, after the private schema exists (the index is built separately)."""
    function = hardening.quota_function_name(target.schema, target.table)
    return [
        render.create_write_quota_function(private_schema, function, _quota_body(target)),
        render.revoke_function_from_api(private_schema, function),
        render.drop_trigger(target.schema, target.table, hardening.QUOTA_TRIGGER),
        render.create_write_quota_trigger(
            target.schema,
            target.table,
            hardening.QUOTA_TRIGGER,
            private_schema,
            function,
            limit=target.limit,
            window_seconds=target.window_seconds,
            window_label=target.window_label,
        ),
    ]


def _quota_args(raw: bytes | memoryview) -> tuple[str, str, str]:
    """(limit, window seconds, window label) from pg_trigger.tgargs: each argument followed by a NUL byte."""
    args = [arg.decode() for arg in bytes(raw).split(b"\x00")[:-1]]
    limit, window, label = [*args, "", "", ""][:3]
    return limit, window, label


def _find_index(conn: psycopg.Connection, target: hardening.WriteQuotaTarget) -> tuple[str, bool] | None:
    """(name, created by us) of a usable index leading with (key column, timestamp column)."""
    preferred = hardening.quota_index_name(target.table, target.key_column, target.timestamp_column)
    row = conn.execute(
        render.find_leading_index_query(),
        (target.schema, target.table, target.key_column, target.timestamp_column, preferred),
    ).fetchone()
    return None if row is None else (row[0], row[1] == render.QUOTA_INDEX_MARKER)


def _ensure_index(db: Database, target: hardening.WriteQuotaTarget, log: Log) -> tuple[str, bool]:
    name = hardening.quota_index_name(target.table, target.key_column, target.timestamp_column)
    with db.connection() as conn:
        found = _find_index(conn, target)
        leftover = conn.execute(render.index_state_query(), (target.schema, name)).fetchone()
    if found is not None:
        return found
    with _autocommit(db) as conn:
        if leftover is not None:
            if leftover[1] != render.QUOTA_INDEX_MARKER:
                raise CatalogError(
                    f"index {target.schema}.{name} exists but does not lead with "
                    f"({target.key_column}, {target.timestamp_column}) and is not ours; rename or drop it"
                )
            # An invalid index left by an interrupted concurrent build of ours.
            conn.execute(render.drop_index(target.schema, name))
        try:
            conn.execute(
                render.create_quota_index(target.schema, target.table, name, target.key_column, target.timestamp_column)
            )
        except psycopg.Error:
            # A failed concurrent build leaves an invalid index behind.
            conn.execute(render.drop_index(target.schema, name))
            raise
        conn.execute(render.mark_quota_index(target.schema, name))
    log(
        f"created index {target.schema}.{name} on {target.table} ({target.key_column}, {target.timestamp_column}) "
        "for the write quota; destroy drops it"
    )
    return name, True


def _drop_index_if_ours(db: Database, schema: str, name: str) -> None:
    with db.connection() as conn:
        row = conn.execute(render.index_state_query(), (schema, name)).fetchone()
    if row is not None and row[1] == render.QUOTA_INDEX_MARKER:
        with _autocommit(db) as conn:
            conn.execute(render.drop_index(schema, name))


class WriteQuota(ManagedResource):
    token = "supabase-access:index:WriteQuota"
    replace_on = ("schema", "table", "privateSchema")

    def check(self, db: Database, olds: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
        target, private_schema = _quota_target(inputs)
        with db.connection() as conn:
            key_property = "path" if target.hops else "ownerColumn"
            _require_columns(
                conn,
                target.schema,
                target.table,
                {target.key_column: key_property, target.timestamp_column: "timestampColumn"},
                timestamp=target.timestamp_column,
            )
            for hop in target.hops:
                _require_columns(conn, target.schema, hop.table, {hop.column: "path"}, table_property="path")
                _require_columns(conn, target.schema, hop.parent, {hop.key: "path"}, table_property="path")
            root = target.hops[-1].parent if target.hops else target.table
            _require_columns(conn, target.schema, root, {target.owner_column: "ownerColumn"}, table_property="path")
            tables = [target.table, *(hop.parent for hop in target.hops)]
            _require_rls_not_filtering(conn, "table", target.schema, tables)
            _check_private_schema(conn, private_schema)
        _dry_run(
            db,
            "table",
            f"write quota trigger on {target.schema}.{target.table}",
            [render.create_private_schema(private_schema), *_quota_statements(target, private_schema)],
        )
        return {
            **inputs,
            "schema": target.schema,
            "path": [asdict(hop) for hop in target.hops],
            "timestampColumn": target.timestamp_column,
            "windowLabel": target.window_label,
            "privateSchema": private_schema,
        }

    def diff_live(self, db: Database, state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, str]:
        target, private_schema = _quota_target(inputs)
        function = hardening.quota_function_name(target.schema, target.table)
        with db.connection() as conn:
            trigger = conn.execute(
                render.read_trigger_query(), (target.schema, target.table, hardening.QUOTA_TRIGGER)
            ).fetchone()
            functions = conn.execute(render.read_function_query(), (private_schema, function)).fetchall()
            index = _find_index(conn, target)
        changes: dict[str, str] = {}
        if trigger is None or trigger[0] == "D" or (trigger[2], trigger[3]) != (private_schema, function):
            changes["trigger"] = "update"
        else:
            limit, window, label = _quota_args(trigger[1])
            live = {"limit": limit, "windowSeconds": window, "windowLabel": label}
            desired = {
                "limit": str(target.limit),
                "windowSeconds": str(target.window_seconds),
                "windowLabel": target.window_label,
            }
            changes.update(compare_fields("", live, desired))
        if [row[0] for row in functions] != [_quota_body(target)]:
            changes["function"] = "update"
        if index is None:
            changes["index"] = "update"
        return changes

    def _apply(self, db: Database, inputs: dict[str, Any], previous: Mapping[str, Any], log: Log) -> dict[str, Any]:
        target, private_schema = _quota_target(inputs)
        # The index first: from its first insert on, the trigger's query is an index range scan.
        index, index_created = _ensure_index(db, target, log)
        with db.connection() as conn, conn.transaction():
            _ensure_private_schema(conn, private_schema)
            lock_tables(conn, target.schema, [target.table])
            for statement in _quota_statements(target, private_schema):
                conn.execute(statement)
        old_index = previous.get("index")
        if previous.get("indexCreated") and old_index and old_index != index:
            _drop_index_if_ours(db, target.schema, old_index)
        function = hardening.quota_function_name(target.schema, target.table)
        return {
            **{k: inputs.get(k) for k in QUOTA_INPUTS},
            "function": f"{private_schema}.{function}",
            "trigger": hardening.QUOTA_TRIGGER,
            "index": index,
            "indexCreated": index_created,
            "sqlstate": render.QUOTA_SQLSTATE,
        }

    def create(self, db: Database, inputs: dict[str, Any], log: Log) -> tuple[str, dict[str, Any]]:
        outputs = self._apply(db, inputs, {}, log)
        return f"{outputs['schema']}.{outputs['table']}", outputs

    def update(self, db: Database, state: dict[str, Any], inputs: dict[str, Any], log: Log) -> dict[str, Any]:
        return self._apply(db, inputs, state, log)

    def delete(self, db: Database, state: dict[str, Any], log: Log) -> None:
        schema, table = state["schema"], state["table"]
        private_schema = state.get("privateSchema") or hardening.PRIVATE_SCHEMA
        with db.connection() as conn, conn.transaction():
            if _columns(conn, schema, table):
                lock_tables(conn, schema, [table])
                conn.execute(render.drop_trigger(schema, table, hardening.QUOTA_TRIGGER))
            conn.execute(render.drop_function(private_schema, hardening.quota_function_name(schema, table)))
        _drop_private_schema_if_unused(db, private_schema)
        if state.get("indexCreated") and state.get("index"):
            _drop_index_if_ours(db, schema, state["index"])

    def read(
        self, db: Database, resource_id: str, state: dict[str, Any], inputs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        schema, table = split_id(resource_id, 2, "public.sessions")
        known = state or inputs
        if not known:
            raise InputError("id", "import a WriteQuota with its inputs set in the program (the id names no path)")
        with db.connection() as conn:
            trigger = conn.execute(render.read_trigger_query(), (schema, table, hardening.QUOTA_TRIGGER)).fetchone()
        if trigger is None:
            return None  # the limit is gone: the next `up` puts it back
        enabled, raw_args, function_schema, function = trigger
        limit, window, label = _quota_args(raw_args)
        current = {
            **{k: known.get(k) for k in QUOTA_INPUTS},
            "schema": schema,
            "table": table,
            "limit": int(limit) if limit.isdigit() else limit,
            "windowSeconds": int(window) if window.isdigit() else window,
            "windowLabel": label,
        }
        outputs = {
            **(state or {}),
            **current,
            "function": f"{function_schema}.{function}",
            "triggerEnabled": enabled != "D",
        }
        same = all(inputs.get(k) == current[k] for k in ("limit", "windowSeconds", "windowLabel"))
        return outputs, (inputs if inputs and same else current)


# --- RetentionPolicy ---------------------------------------------------------------------------

RETENTION_INPUTS = (
    "privateSchema",
    "schema",
    "ownedTables",
    "sessionsTable",
    "sessionsTimestampColumn",
    "anonymousUsersDays",
    "sessionsDays",
    "schedule",
    "jobName",
)


def _owned_tables(inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
    raw = inputs.get("ownedTables") or []
    if not isinstance(raw, list):
        raise InputError("ownedTables", "ownedTables: expected a list of {table, ownerColumn}")
    owned = []
    for entry in raw:
        if not isinstance(entry, Mapping):
            raise InputError("ownedTables", "ownedTables: expected a list of {table, ownerColumn}")
        owned.append((identifier(entry, "table"), identifier(entry, "ownerColumn")))
    return owned


def _retention(inputs: Mapping[str, Any]) -> hardening.RetentionTarget:
    anonymous_days = _positive_int(inputs, "anonymousUsersDays", MAX_RETENTION_DAYS, optional=True)
    sessions_days = _positive_int(inputs, "sessionsDays", MAX_RETENTION_DAYS, optional=True)
    if anonymous_days is None and sessions_days is None:
        raise InputError("anonymousUsersDays", "anonymousUsersDays, sessionsDays: set at least one")
    schedule = inputs.get("schedule") or hardening.DEFAULT_PURGE_SCHEDULE
    if not isinstance(schedule, str) or not hardening.CRON_SCHEDULE.match(schedule):
        raise InputError("schedule", f"schedule: {schedule!r} is not a cron schedule like '17 3 * * *'")
    job_name = inputs.get("jobName") or hardening.DEFAULT_PURGE_JOB
    if not isinstance(job_name, str) or not JOB_NAME.match(job_name):
        raise InputError("jobName", f"jobName: {job_name!r} is not a job name (letters, digits, _ . : -)")
    return hardening.RetentionTarget(
        schema=identifier(inputs, "schema", "public"),
        owned_tables=tuple(hardening.OwnedTable(t, c) for t, c in _owned_tables(inputs)),
        sessions_table=identifier(inputs, "sessionsTable", "sessions"),
        sessions_timestamp_column=identifier(inputs, "sessionsTimestampColumn", hardening.DEFAULT_TIMESTAMP_COLUMN),
        anonymous_users_days=anonymous_days,
        sessions_days=sessions_days,
        schedule=schedule,
        job_name=job_name,
    )


def _purge_body(target: hardening.RetentionTarget) -> str:
    return render.purge_function_body(
        hardening.PURGE_FUNCTION,
        target.schema,
        [(t.table, t.owner_column) for t in target.owned_tables],
        target.sessions_table,
        target.sessions_timestamp_column,
    )


def _purge_statements(target: hardening.RetentionTarget, private_schema: str) -> list[Any]:
    return [
        render.create_purge_function(
            private_schema,
            hardening.PURGE_FUNCTION,
            _purge_body(target),
            anonymous_users_days=target.anonymous_users_days,
            sessions_days=target.sessions_days,
        ),
        render.revoke_function_from_api(private_schema, hardening.PURGE_FUNCTION, render.PURGE_ARG_TYPES),
    ]


def purge_command(private_schema: str) -> str:
    """The statement pg_cron runs, and that people run by hand where there is no pg_cron."""
    return render.call_purge(private_schema, hardening.PURGE_FUNCTION).as_string()


def _function_default(arguments: str, name: str) -> int | None | str:
    # pg_get_function_arguments: "anonymous_users_days integer DEFAULT 30, sessions_days integer DEFAULT NULL::integer"
    match = re.search(rf"\b{name} integer DEFAULT (\d+|NULL::integer)", arguments)
    if match is None:
        return arguments  # not ours any more: shows as a change
    return None if match.group(1).startswith("NULL") else int(match.group(1))


def _cron_installed(conn: psycopg.Connection) -> bool:
    row = conn.execute(render.cron_installed_query()).fetchone()
    return bool(row and row[0])


def _schedule_status(scheduled: bool, target: hardening.RetentionTarget, command: str) -> str:
    if scheduled:
        return f"scheduled with pg_cron as job {target.job_name!r} at {target.schedule!r} (UTC)"
    return (
        "not scheduled: pg_cron is not installed in this database. Run "
        f"`{command};` periodically (for example daily from a trusted scheduler), "
        "or enable the pg_cron extension and run `pulumi up` again"
    )


class RetentionPolicy(ManagedResource):
    token = "supabase-access:index:RetentionPolicy"
    replace_on = ("privateSchema",)

    def check(self, db: Database, olds: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
        target, private_schema = _retention(inputs), _private_schema(inputs)
        with db.connection() as conn:
            # Supabase's auth.users: anonymous sign-ins are rows with is_anonymous = true.
            auth_columns = dict.fromkeys(("id", "is_anonymous", "created_at"), "anonymousUsersDays")
            _require_columns(conn, "auth", "users", auth_columns, table_property="anonymousUsersDays")
            for owned in target.owned_tables:
                _require_columns(
                    conn, target.schema, owned.table, {owned.owner_column: "ownedTables"}, table_property="ownedTables"
                )
            _require_columns(
                conn,
                target.schema,
                target.sessions_table,
                {target.sessions_timestamp_column: "sessionsTimestampColumn"},
                timestamp=target.sessions_timestamp_column,
                table_property="sessionsTable",
            )
            purged = sorted({target.sessions_table, *(t.table for t in target.owned_tables)})
            _require_rls_not_filtering(conn, "ownedTables", "auth", ["users"])
            _require_rls_not_filtering(conn, "ownedTables", target.schema, purged)
            for schema, table in [("auth", "users"), *((target.schema, t) for t in purged)]:
                row = conn.execute(render.table_privilege_query(), ("DELETE", schema, table)).fetchone()
                if not (row and row[0]):
                    raise InputError(
                        "ownedTables", f"ownedTables: role {conn.info.user} may not delete from {schema}.{table}"
                    )
            _check_private_schema(conn, private_schema)
        _dry_run(
            db,
            "anonymousUsersDays",
            "purge function",
            [render.create_private_schema(private_schema), *_purge_statements(target, private_schema)],
        )
        return {
            **inputs,
            "privateSchema": private_schema,
            "schema": target.schema,
            "sessionsTable": target.sessions_table,
            "sessionsTimestampColumn": target.sessions_timestamp_column,
            "schedule": target.schedule,
            "jobName": target.job_name,
        }

    def diff_live(self, db: Database, state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, str]:
        target, private_schema = _retention(inputs), _private_schema(inputs)
        command = purge_command(private_schema)
        with db.connection() as conn:
            functions = conn.execute(
                render.read_function_query(), (private_schema, hardening.PURGE_FUNCTION)
            ).fetchall()
            cron = _cron_installed(conn)
            job = conn.execute(render.cron_job_query(), (target.job_name,)).fetchone() if cron else None
        if len(functions) != 1:
            return {"function": "update"}
        body, arguments = functions[0]
        changes = compare_fields(
            "",
            {
                "anonymousUsersDays": _function_default(arguments, "anonymous_users_days"),
                "sessionsDays": _function_default(arguments, "sessions_days"),
            },
            {"anonymousUsersDays": target.anonymous_users_days, "sessionsDays": target.sessions_days},
        )
        if body != _purge_body(target):
            changes["function"] = "update"
        # Scheduled exactly when pg_cron is there, with our schedule and command.
        if cron != bool(state.get("scheduled")) or (cron and job != (target.schedule, command)):
            changes["scheduled"] = "update"
        if state.get("jobName") not in (None, target.job_name):
            changes["jobName"] = "update"
        return changes

    def _apply(self, db: Database, inputs: dict[str, Any], previous: Mapping[str, Any]) -> dict[str, Any]:
        target, private_schema = _retention(inputs), _private_schema(inputs)
        command = purge_command(private_schema)
        with db.connection() as conn, conn.transaction():
            _ensure_private_schema(conn, private_schema)
            for statement in _purge_statements(target, private_schema):
                conn.execute(statement)
            scheduled = _cron_installed(conn)
            if scheduled:
                old_job = previous.get("jobName")
                if old_job and old_job != target.job_name:
                    conn.execute(render.cron_unschedule(old_job))
                conn.execute(render.cron_schedule(target.job_name, target.schedule, command))
        return {
            **{k: inputs.get(k) for k in RETENTION_INPUTS},
            "function": f"{private_schema}.{hardening.PURGE_FUNCTION}",
            "scheduled": scheduled,
            "runManually": f"{command};",
            "status": _schedule_status(scheduled, target, command),
        }

    def create(self, db: Database, inputs: dict[str, Any], log: Log) -> tuple[str, dict[str, Any]]:
        outputs = self._apply(db, inputs, {})
        if not outputs["scheduled"]:
            log(f"retention: {outputs['status']}")
        return outputs["function"], outputs

    def update(self, db: Database, state: dict[str, Any], inputs: dict[str, Any], log: Log) -> dict[str, Any]:
        outputs = self._apply(db, inputs, state)
        if not outputs["scheduled"]:
            log(f"retention: {outputs['status']}")
        return outputs

    def delete(self, db: Database, state: dict[str, Any], log: Log) -> None:
        private_schema = state.get("privateSchema") or hardening.PRIVATE_SCHEMA
        with db.connection() as conn, conn.transaction():
            if _cron_installed(conn):
                conn.execute(render.cron_unschedule(state.get("jobName") or hardening.DEFAULT_PURGE_JOB))
            conn.execute(render.drop_function(private_schema, hardening.PURGE_FUNCTION, render.PURGE_ARG_TYPES))
        _drop_private_schema_if_unused(db, private_schema)

    def read(
        self, db: Database, resource_id: str, state: dict[str, Any], inputs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        private_schema, function = split_id(resource_id, 2, "supabase_access.purge_expired")
        known = state or inputs
        if not known:
            raise InputError("id", "import a RetentionPolicy with its inputs set in the program")
        job_name = known.get("jobName") or hardening.DEFAULT_PURGE_JOB
        with db.connection() as conn:
            functions = conn.execute(render.read_function_query(), (private_schema, function)).fetchall()
            cron = _cron_installed(conn)
            job = conn.execute(render.cron_job_query(), (job_name,)).fetchone() if cron else None
        if len(functions) != 1:
            return None
        _, arguments = functions[0]
        current = {
            **{k: known.get(k) for k in RETENTION_INPUTS},
            "privateSchema": private_schema,
            "anonymousUsersDays": _function_default(arguments, "anonymous_users_days"),
            "sessionsDays": _function_default(arguments, "sessions_days"),
        }
        if job is not None:
            current["schedule"] = job[0]
        outputs = {**(state or {}), **current, "scheduled": job is not None}
        same = all(inputs.get(k) == current[k] for k in ("anonymousUsersDays", "sessionsDays", "schedule"))
        return outputs, (inputs if inputs and same else current)
