"""Production hardening, as pure data: write quotas, retention and permanent-users-only policies.

Turns validated stack settings (see `stack_config.parse_hardening_settings`) into what the
resources and components need. No Pulumi, no database.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from supabase_access.model.access_model import AccessModel, short_identifier
from supabase_access.model.profiles import TABLE_COMMANDS, NotAnonymousUser, PolicyRule

# Where the quota trigger functions and the purge function live: not in an API-exposed schema.
PRIVATE_SCHEMA = "supabase_access"
# SQLSTATE of an insert refused by a write quota. PostgREST answers an error of class PT
# (`PTxyz`) with HTTP status xyz, so API clients get 429 Too Many Requests. (Class P0 belongs
# to PL/pgSQL, so a code like P0429 would pretend to be one of its errors.)
QUOTA_SQLSTATE = "PT429"
QUOTA_TRIGGER = "supabase_access_write_quota"
PURGE_FUNCTION = "purge_expired"
DEFAULT_PURGE_SCHEDULE = "17 3 * * *"  # daily at 03:17 UTC, off the top of the hour
DEFAULT_PURGE_JOB = "supabase-access-purge-expired"
# Standard 5-field cron (names and pg_cron's `$` allowed), a macro, or pg_cron's "N seconds".
CRON_SCHEDULE = re.compile(r"^(@[a-z]+|[1-5]?[0-9] seconds|[0-9A-Za-z*/,$-]+( [0-9A-Za-z*/,$-]+){4})$")
DEFAULT_TIMESTAMP_COLUMN = "created_at"

# Window names accepted in `supabase-access:writeQuotas`, with their length in seconds.
QUOTA_WINDOWS: dict[str, tuple[str, int]] = {
    "perMinute": ("minute", 60),
    "perHour": ("hour", 3600),
    "perDay": ("day", 86400),
}
MAX_QUOTA_LIMIT = 1_000_000
MAX_RETENTION_DAYS = 36500
# Commands `supabase-access:permanentUsersOnly` may reserve for permanent users.
PERMANENT_ONLY_COMMANDS = TABLE_COMMANDS


@dataclass(frozen=True)
class WriteQuotaSetting:
    """At most `limit` new rows of `table` per user per window."""

    table: str
    limit: int
    window: str  # a QUOTA_WINDOWS key

    @property
    def window_label(self) -> str:
        return QUOTA_WINDOWS[self.window][0]

    @property
    def window_seconds(self) -> int:
        return QUOTA_WINDOWS[self.window][1]


@dataclass(frozen=True)
class RetentionSetting:
    anonymous_users_days: int | None
    sessions_days: int | None
    sessions_table: str = "sessions"
    schedule: str = DEFAULT_PURGE_SCHEDULE


@dataclass(frozen=True)
class HardeningSettings:
    write_quotas: tuple[WriteQuotaSetting, ...] = ()
    retention: RetentionSetting | None = None
    # table -> commands only permanent (non-anonymous) users may run
    permanent_users_only: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        return bool(self.write_quotas or self.retention or self.permanent_users_only)


@dataclass(frozen=True)
class WriteQuotaTarget:
    """Everything the WriteQuota resource needs for one table."""

    schema: str
    table: str
    limit: int
    window_seconds: int
    window_label: str

    def to_plain(self) -> dict[str, Any]:
        """As WriteQuota resource inputs (without `privateSchema`)."""
        return {
            "schema": self.schema,
            "table": self.table,
            "limit": self.limit,
            "windowSeconds": self.window_seconds,
            "windowLabel": self.window_label,
        }


@dataclass(frozen=True)
class OwnedTable:
    """A root table of the model: its rows belong to the user in `owner_column`."""

    table: str
    owner_column: str


@dataclass(frozen=True)
class RetentionTarget:
    schema: str
    owned_tables: tuple[OwnedTable, ...]
    sessions_table: str
    sessions_timestamp_column: str
    anonymous_users_days: int | None
    sessions_days: int | None
    schedule: str
    job_name: str = DEFAULT_PURGE_JOB


def quota_function_name(schema: str, table: str) -> str:
    return short_identifier(f"write_quota_{schema}_{table}")


def quota_usage_table_name(schema: str, table: str) -> str:
    """The quota's per-user counter table, in the private schema next to its function."""
    return short_identifier(f"{quota_function_name(schema, table)}_usage")


def write_quota_targets(model: AccessModel, quotas: Sequence[WriteQuotaSetting]) -> tuple[WriteQuotaTarget, ...]:
    return tuple(
        WriteQuotaTarget(
            schema=model.schema,
            table=quota.table,
            limit=quota.limit,
            window_seconds=quota.window_seconds,
            window_label=quota.window_label,
        )
        for quota in quotas
    )


def retention_target(
    model: AccessModel, retention: RetentionSetting, *, timestamp_column: str = DEFAULT_TIMESTAMP_COLUMN
) -> RetentionTarget:
    # Rows of the root tables are deleted explicitly with their anonymous owner, so the purge
    # does not rely on a cascading FK to auth.users (the open profile removes it).
    # Not a copy of the owner (copyOwner): its rows go with their parents, and its column exists
    # only on owner stacks once their `up` added it.
    owned = tuple(
        OwnedTable(t.name, t.owner_column) for t in model.tables if t.owner_column is not None and not t.owner_copy
    )
    return RetentionTarget(
        schema=model.schema,
        owned_tables=owned,
        sessions_table=retention.sessions_table,
        sessions_timestamp_column=timestamp_column,
        anonymous_users_days=retention.anonymous_users_days,
        sessions_days=retention.sessions_days,
        schedule=retention.schedule,
    )


def not_anonymous_policy_name(table: str, command: str) -> str:
    return short_identifier(f"{table}_{command.lower()}_not_anonymous")


def permanent_users_only_policies(commands_by_table: Mapping[str, Sequence[str]]) -> dict[str, tuple[PolicyRule, ...]]:
    """RESTRICTIVE policies refusing anonymous sign-ins, as extra policies per table.

    Restrictive policies are AND-ed with the permissive ones, so they only ever narrow access.
    Anonymous sign-ins use the `authenticated` role, hence `TO authenticated`.
    """
    extras: dict[str, tuple[PolicyRule, ...]] = {}
    for table, commands in commands_by_table.items():
        extras[table] = tuple(
            PolicyRule(
                name=not_anonymous_policy_name(table, command),
                command=command,
                roles=("authenticated",),
                using=None if command == "INSERT" else NotAnonymousUser(),
                with_check=NotAnonymousUser() if command in ("INSERT", "UPDATE") else None,
                permissive=False,
            )
            for command in commands
        )
    return extras
