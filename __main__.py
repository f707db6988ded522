"""supabase-access: the access rules of one Supabase database, per stack."""

import os
import signal
import threading
from pathlib import Path
from typing import Any

import pulumi
import pulumi_postgresql as postgresql
import pulumi_supabase_access as supabase_access

from components.access_rules import AccessRules, AccessRulesArgs
from components.auth_settings import declare_auth_settings
from components.hardening import ProductionHardening, plan_hardening
from components.realtime import Realtime, RealtimeArgs
from components.storage import StorageBuckets, StorageBucketsArgs
from supabase_access.model.access_model import model_to_plain
from supabase_access.model.profiles import plan_access
from supabase_access.model.stack_config import NAMESPACE, ConfigError, bucket_warnings, read_stack_settings
from supabase_access.sql.database import read_table_columns
from supabase_access.sql.errors import DatabaseError


def _end_quietly(signum: int, frame: object) -> None:
    # The engine ends the program with SIGINT once a step failed (the step's error says why); the
    # default handler would add a KeyboardInterrupt traceback of Pulumi's language host to it.
    os._exit(1)


if threading.current_thread() is threading.main_thread():  # (the unit tests run the program in a thread)
    signal.signal(signal.SIGINT, _end_quietly)

access_config = pulumi.Config(NAMESPACE)
postgresql_config = pulumi.Config("postgresql")


def stack_config_keys() -> dict[str, bool]:
    """Every config key of the stack and whether Pulumi keeps it encrypted (the values stay out)."""
    secret_keys = set(pulumi.runtime.get_config_secret_keys_env())
    keys = set(pulumi.runtime.config.CONFIG.get()) | set(pulumi.runtime.get_config_env())
    return {key: pulumi.runtime.is_config_secret(key) or key in secret_keys for key in keys}


try:
    settings = read_stack_settings(pulumi.runtime.get_config, stack_config_keys(), project_dir=Path(__file__).parent)
except ConfigError as exc:
    # A clean one-line error at preview, before any resource is registered.
    raise pulumi.RunError(str(exc)) from None

for notice in [*settings.replacement_notices(), *bucket_warnings(settings)]:
    pulumi.log.warn(notice)
if settings.definer_objects:
    pulumi.log.warn(
        "supabase-access:definerObjects is deprecated for functions: declare each in the model's `functions:` with "
        "the roles that may call it (`search_notes: [authenticated]`); until then the functions it names are left "
        "as they are. Views meant to run as their owner stay in definerObjects"
    )

# writeQuotas, retention and permanentUsersOnly (dev stacks set none of them).
hardening_plan = plan_hardening(settings)

connection = settings.connection
# Both providers connect the same way; the password is always a secret.
connection_args: dict[str, Any] = {
    "host": connection.host,
    "port": connection.port,
    "database": connection.database,
    "username": connection.username,
    "sslmode": connection.sslmode,
    "password": postgresql_config.require_secret("password"),
}
database = supabase_access.Provider(
    "supabase-db",
    **connection_args,
    management_api_url=access_config.get("managementApiUrl"),
    access_token=access_config.get_secret("accessToken"),
)
# The official provider, for grants. Supabase's postgres role is not a superuser.
grants_provider = postgresql.Provider("postgresql", **connection_args, superuser=False)
plan = plan_access(settings.model, settings.profile)
try:
    # Column rules narrow privileges to named columns: the Grants list the table's columns as they are now.
    table_columns = (
        read_table_columns(
            {**connection_args, "password": postgresql_config.get("password")},
            settings.model.schema,
            [table for table, _ in plan.column_rules],
        )
        if plan.column_rules
        else {}
    )
except DatabaseError as exc:
    raise pulumi.RunError(str(exc)) from None
access = AccessRules(
    "access",
    AccessRulesArgs(
        plan=plan,
        table_columns=table_columns,
        database=connection.database,
        source=settings.model_source,
        force_rls=settings.force_rls,
        extra_policies=hardening_plan.extra_policies,
        policy_settings=hardening_plan.policy_settings,
        # The open profile on prod (allowOpenProfileInProd) is open on purpose.
        refuse_open_writes=settings.environment == "prod" and settings.profile != "open",
        exposed_schemas=settings.exposed_schemas,
        definer_objects=settings.definer_objects,
        refuse_uncovered_tables=settings.environment == "prod",
        born_closed=settings.environment == "prod" and settings.profile != "open",
        model=model_to_plain(settings.model),
        widenings=settings.widenings,
        functions=settings.model.functions,
        buckets=tuple(b.id for b in settings.model.buckets),
        published=settings.model.realtime.publish,
    ),
    opts=pulumi.ResourceOptions(providers=[database, grants_provider]),
)
if settings.model.realtime.publish or settings.model.realtime.channels:
    # After the access rules: a published table's policies filter what subscribers receive, and member
    # channels' policies call the group functions.
    Realtime(
        "realtime",
        RealtimeArgs(
            model=settings.model,
            profile=settings.profile,
            refuse_kindless=settings.environment == "prod",
            source=settings.model_source,
            private_only=settings.environment == "prod",
            project_ref=settings.auth.project_ref if settings.auth and settings.auth.reaches_management_api else None,
        ),
        opts=pulumi.ResourceOptions(providers=[database], depends_on=[access]),
    )
if settings.model.buckets:
    # After the access rules: their preflight, and the group functions member buckets' policies call.
    StorageBuckets(
        "storage",
        StorageBucketsArgs(settings.model.buckets, plan, settings.profile),
        opts=pulumi.ResourceOptions(providers=[database], depends_on=[access]),
    )
declare_auth_settings("auth-settings", settings.auth, provider=database)
pulumi.export("environment", settings.environment)
pulumi.export("profile", settings.profile)
pulumi.export("tables", list(settings.model.table_names))
if hardening_plan.has_resources:
    # After the access rules: a quota's trigger on a table must not be created while that table's
    # policy lookup index is built concurrently (each would wait for the other).
    production_hardening = ProductionHardening(
        "hardening", hardening_plan, opts=pulumi.ResourceOptions(providers=[database], depends_on=[access])
    )
    pulumi.export("hardening", production_hardening.summary)
