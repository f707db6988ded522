"""RetentionPolicy: `purge_expired(...)` deletes anonymous users older than N days (and their
rows) and sessions older than M days, scheduled with pg_cron where the extension exists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import psycopg

from supabase_access.model import hardening
from supabase_access.provider import specs
from supabase_access.provider.base import (
    InputError,
    Log,
    PlainDatabaseResource,
    compare_fields,
    identifier,
    not_importable,
    split_id,
)
from supabase_access.provider.private_schema import (
    check_private_schema,
    drop_private_schema_if_unused,
    dry_run,
    ensure_private_schema,
    lock_private_schema,
    positive_int,
    private_schema_name,
    require_columns,
    require_rls_not_filtering,
)
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database, execute_together, read_together
from supabase_access.sql.transaction import write_transaction

JOB_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


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
    anonymous_days = positive_int(inputs, "anonymousUsersDays", hardening.MAX_RETENTION_DAYS, optional=True)
    sessions_days = positive_int(inputs, "sessionsDays", hardening.MAX_RETENTION_DAYS, optional=True)
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
    row = conn.execute(catalog.cron_installed_query()).fetchone()
    return bool(row and row[0])


def _schedule_status(scheduled: bool, target: hardening.RetentionTarget, command: str) -> str:
    if scheduled:
        return f"scheduled with pg_cron as job {target.job_name!r} at {target.schedule!r} (UTC)"
    return (
        "not scheduled: pg_cron is not installed in this database. Run "
        f"`{command};` periodically (for example daily from a trusted scheduler), "
        "or enable the pg_cron extension and run `pulumi up` again"
    )


class RetentionPolicy(PlainDatabaseResource):
    spec = specs.RETENTION_POLICY

    def normalize(self, inputs: dict[str, Any]) -> dict[str, Any]:
        target, private_schema = _retention(inputs), private_schema_name(inputs)
        return {
            **inputs,
            "privateSchema": private_schema,
            "schema": target.schema,
            "sessionsTable": target.sessions_table,
            "sessionsTimestampColumn": target.sessions_timestamp_column,
            "schedule": target.schedule,
            "jobName": target.job_name,
        }

    def validate(self, db: Database, olds: dict[str, Any], checked: dict[str, Any]) -> None:
        # The shared check asks this only for new or changed inputs: no query, no dry run on a no-change preview.
        target, private_schema = _retention(checked), private_schema_name(checked)
        with db.connection() as conn:
            # Supabase's auth.users: anonymous sign-ins are rows with is_anonymous = true.
            auth_columns = dict.fromkeys(("id", "is_anonymous", "created_at"), "anonymousUsersDays")
            require_columns(conn, "auth", "users", auth_columns, table_property="anonymousUsersDays")
            for owned in target.owned_tables:
                require_columns(
                    conn, target.schema, owned.table, {owned.owner_column: "ownedTables"}, table_property="ownedTables"
                )
            require_columns(
                conn,
                target.schema,
                target.sessions_table,
                {target.sessions_timestamp_column: "sessionsTimestampColumn"},
                timestamp=target.sessions_timestamp_column,
                table_property="sessionsTable",
            )
            purged = sorted({target.sessions_table, *(t.table for t in target.owned_tables)})
            require_rls_not_filtering(conn, "ownedTables", "auth", ["users"])
            require_rls_not_filtering(conn, "ownedTables", target.schema, purged)
            for schema, table in [("auth", "users"), *((target.schema, t) for t in purged)]:
                row = conn.execute(catalog.table_privilege_query(), ("DELETE", schema, table)).fetchone()
                if not (row and row[0]):
                    raise InputError(
                        "ownedTables", f"ownedTables: role {conn.info.user} may not delete from {schema}.{table}"
                    )
            check_private_schema(conn, private_schema)
        dry_run(
            db,
            "anonymousUsersDays",
            "purge function",
            private_schema,
            _purge_statements(target, private_schema),
        )

    def diff_live(self, db: Database, state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, str]:
        target, private_schema = _retention(inputs), private_schema_name(inputs)
        command = purge_command(private_schema)
        with db.connection() as conn:
            # One round trip; a second only where pg_cron is installed (cron.job exists only then).
            functions, cron_rows = read_together(
                conn,
                (catalog.read_function_query(), (private_schema, hardening.PURGE_FUNCTION)),
                (catalog.cron_installed_query(), None),
            )
            cron = bool(cron_rows and cron_rows[0][0])
            job = conn.execute(catalog.cron_job_query(), (target.job_name,)).fetchone() if cron else None
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
        target, private_schema = _retention(inputs), private_schema_name(inputs)
        command = purge_command(private_schema)
        with write_transaction(db) as conn:
            ensure_private_schema(conn, private_schema)
            execute_together(conn, _purge_statements(target, private_schema))
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
        with write_transaction(db) as conn:
            lock_private_schema(conn, private_schema)
            if _cron_installed(conn):
                conn.execute(render.cron_unschedule(state.get("jobName") or hardening.DEFAULT_PURGE_JOB))
            conn.execute(render.drop_function(private_schema, hardening.PURGE_FUNCTION, render.PURGE_ARG_TYPES))
        drop_private_schema_if_unused(db, private_schema)

    def read(
        self, db: Database, resource_id: str, state: dict[str, Any], inputs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        private_schema, function = split_id(resource_id, 2, "supabase_access.purge_expired")
        known = state or inputs
        if not known:
            raise not_importable(
                "RetentionPolicy", "the id does not give its tables; import it with its inputs (`import_`)"
            )
        job_name = known.get("jobName") or hardening.DEFAULT_PURGE_JOB
        with db.connection() as conn:
            functions = conn.execute(catalog.read_function_query(), (private_schema, function)).fetchall()
            cron = _cron_installed(conn)
            job = conn.execute(catalog.cron_job_query(), (job_name,)).fetchone() if cron else None
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
