"""RetentionPolicy: `purge_expired(...)` deletes anonymous users older than N days (and their
rows) and sessions older than M days, scheduled with pg_cron where the extension exists.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg

from supabase_access.model import hardening
from supabase_access.provider import specs
from supabase_access.provider.base import (
    DatabaseResource,
    InputError,
    Log,
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
    require_columns,
    require_rls_not_filtering,
)
from supabase_access.provider.specs import RetentionPolicyInputs as Inputs
from supabase_access.provider.specs import RetentionPolicyState as State
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database, execute_together, read_together
from supabase_access.sql.rows import fetch_all, fetch_one, fetch_value
from supabase_access.sql.transaction import write_transaction

JOB_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def _days(value: int | None, setting: str) -> int | None:
    return positive_int(value, setting, hardening.MAX_RETENTION_DAYS, optional=True)


def _retention(inputs: Inputs) -> hardening.RetentionTarget:
    anonymous_days = _days(inputs.anonymous_users_days, "anonymousUsersDays")
    sessions_days = _days(inputs.sessions_days, "sessionsDays")
    if anonymous_days is None and sessions_days is None:
        raise InputError("anonymousUsersDays", "anonymousUsersDays, sessionsDays: set at least one")
    schedule = inputs.schedule or hardening.DEFAULT_PURGE_SCHEDULE
    if not hardening.CRON_SCHEDULE.match(schedule):
        raise InputError("schedule", f"schedule: {schedule!r} is not a cron schedule like '17 3 * * *'")
    job_name = inputs.job_name or hardening.DEFAULT_PURGE_JOB
    if not JOB_NAME.match(job_name):
        raise InputError("jobName", f"jobName: {job_name!r} is not a job name (letters, digits, _ . : -)")
    owned = tuple(
        hardening.OwnedTable(identifier(t.table, "table"), identifier(t.owner_column, "ownerColumn"))
        for t in inputs.owned_tables
    )
    return hardening.RetentionTarget(
        schema=identifier(inputs.schema, "schema"),
        owned_tables=owned,
        sessions_table=identifier(inputs.sessions_table, "sessionsTable"),
        sessions_timestamp_column=identifier(inputs.sessions_timestamp_column, "sessionsTimestampColumn"),
        anonymous_users_days=anonymous_days,
        sessions_days=sessions_days,
        schedule=schedule,
        job_name=job_name,
    )


def _private_schema(inputs: Inputs) -> str:
    return identifier(inputs.private_schema, "privateSchema")


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
    return bool(fetch_value(conn, catalog.cron_installed_query()))


def _schedule_status(scheduled: bool, target: hardening.RetentionTarget, command: str) -> str:
    if scheduled:
        return f"scheduled with pg_cron as job {target.job_name!r} at {target.schedule!r} (UTC)"
    return (
        "not scheduled: pg_cron is not installed in this database. Run "
        f"`{command};` periodically (for example daily from a trusted scheduler), "
        "or enable the pg_cron extension and run `pulumi up` again"
    )


class RetentionPolicy(DatabaseResource[Inputs, State]):
    spec = specs.RETENTION_POLICY

    def normalize(self, inputs: Inputs) -> Inputs:
        target = _retention(inputs)
        return Inputs.taking(
            inputs,
            private_schema=_private_schema(inputs),
            schema=target.schema,
            sessions_table=target.sessions_table,
            sessions_timestamp_column=target.sessions_timestamp_column,
            schedule=target.schedule,
            job_name=target.job_name,
        )

    def validate(self, db: Database, olds: Inputs | None, checked: Inputs) -> None:
        # The shared check asks this only for new or changed inputs: no query, no dry run on a no-change preview.
        target, private_schema = _retention(checked), _private_schema(checked)
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
                if not fetch_value(conn, catalog.table_privilege_query(), ("DELETE", schema, table)):
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

    def diff_live(self, db: Database, state: State, inputs: Inputs) -> dict[str, str]:
        target, private_schema = _retention(inputs), _private_schema(inputs)
        command = purge_command(private_schema)
        with db.connection() as conn:
            # One round trip; a second only where pg_cron is installed (cron.job exists only then).
            functions, cron_rows = read_together(
                conn,
                (catalog.FUNCTION_SOURCES, (private_schema, hardening.PURGE_FUNCTION)),
                (catalog.cron_installed_query(), None),
            )
            cron = any(installed for (installed,) in cron_rows)
            job = fetch_one(conn, catalog.CRON_JOB, (target.job_name,)) if cron else None
        if len(functions) != 1:
            return {"function": "update"}
        (function,) = functions
        changes = compare_fields(
            "",
            {
                "anonymousUsersDays": _function_default(function.arguments, "anonymous_users_days"),
                "sessionsDays": _function_default(function.arguments, "sessions_days"),
            },
            {"anonymousUsersDays": target.anonymous_users_days, "sessionsDays": target.sessions_days},
        )
        if function.body != _purge_body(target):
            changes["function"] = "update"
        # Scheduled exactly when pg_cron is there, with our schedule and command.
        if cron != bool(state.scheduled) or (
            cron and (job is None or (job.schedule, job.command) != (target.schedule, command))
        ):
            changes["scheduled"] = "update"
        if state.job_name not in (None, target.job_name):
            changes["jobName"] = "update"
        return changes

    def _apply(self, db: Database, inputs: Inputs, previous: State | None, log: Log) -> State:
        target, private_schema = _retention(inputs), _private_schema(inputs)
        command = purge_command(private_schema)
        with write_transaction(db) as conn:
            ensure_private_schema(conn, private_schema)
            execute_together(conn, _purge_statements(target, private_schema))
            scheduled = _cron_installed(conn)
            if scheduled:
                old_job = previous.job_name if previous else None
                if old_job and old_job != target.job_name:
                    conn.execute(render.cron_unschedule(old_job))
                conn.execute(render.cron_schedule(target.job_name, target.schedule, command))
        state = State.taking(
            inputs,
            function=f"{private_schema}.{hardening.PURGE_FUNCTION}",
            scheduled=scheduled,
            run_manually=f"{command};",
            status=_schedule_status(scheduled, target, command),
        )
        if not scheduled:
            log(f"retention: {state.status}")
        return state

    def on_create(self, db: Database, inputs: Inputs, log: Log) -> tuple[str, State]:
        state = self._apply(db, inputs, None, log)
        return f"{_private_schema(inputs)}.{hardening.PURGE_FUNCTION}", state

    def on_update(self, db: Database, state: State, inputs: Inputs, log: Log) -> State:
        return self._apply(db, inputs, state, log)

    def on_delete(self, db: Database, state: State, log: Log) -> None:
        private_schema = state.private_schema or hardening.PRIVATE_SCHEMA
        with write_transaction(db) as conn:
            lock_private_schema(conn, private_schema)
            if _cron_installed(conn):
                conn.execute(render.cron_unschedule(state.job_name or hardening.DEFAULT_PURGE_JOB))
            conn.execute(render.drop_function(private_schema, hardening.PURGE_FUNCTION, render.PURGE_ARG_TYPES))
        drop_private_schema_if_unused(db, private_schema)

    def on_read(
        self, db: Database, resource_id: str, state: State | None, inputs: Inputs | None
    ) -> tuple[State, Inputs] | None:
        private_schema, function = split_id(resource_id, 2, "supabase_access.purge_expired")
        known = state or inputs
        if known is None:
            raise not_importable(
                "RetentionPolicy", "the id does not give its tables; import it with its inputs (`import_`)"
            )
        job_name = known.job_name or hardening.DEFAULT_PURGE_JOB
        with db.connection() as conn:
            functions = fetch_all(conn, catalog.FUNCTION_SOURCES, (private_schema, function))
            cron = _cron_installed(conn)
            job = fetch_one(conn, catalog.CRON_JOB, (job_name,)) if cron else None
        if len(functions) != 1:
            return None
        (purge,) = functions
        arguments = purge.arguments
        current = Inputs.taking(
            known,
            private_schema=private_schema,
            anonymous_users_days=_read_days(arguments, "anonymous_users_days"),
            sessions_days=_read_days(arguments, "sessions_days"),
            schedule=job.schedule if job is not None else known.schedule,
        )
        outputs = State.taking(state, current, scheduled=job is not None)
        same = inputs is not None and (inputs.anonymous_users_days, inputs.sessions_days, inputs.schedule) == (
            current.anonymous_users_days,
            current.sessions_days,
            current.schedule,
        )
        return outputs, (inputs if inputs is not None and same else current)


def _read_days(arguments: str, name: str) -> int | None:
    """A purge function's default for `name`; 0 (no valid setting: drift, which `up` repairs) when the
    function's arguments are not ours any more."""
    days = _function_default(arguments, name)
    return 0 if isinstance(days, str) else days
