"""Typed Python classes for the supabase-access provider's resources (what a generated SDK would hold)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi

PACKAGE = "supabase-access"


class Provider(pulumi.ProviderResource):
    """A connection to one Supabase Postgres database; the password is always a secret."""

    def __init__(
        self,
        name: str,
        *,
        host: pulumi.Input[str],
        password: pulumi.Input[str],
        port: pulumi.Input[int] = 5432,
        database: pulumi.Input[str] = "postgres",
        username: pulumi.Input[str] = "postgres",
        sslmode: pulumi.Input[str] = "prefer",
        management_api_url: pulumi.Input[str] | None = None,
        access_token: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "host": host,
            "port": port,
            "database": database,
            "username": username,
            "sslmode": sslmode,
            "password": pulumi.Output.secret(password),
        }
        # Supabase Management API (AuthSettings); left out when unset so other stacks see no change.
        if management_api_url is not None:
            props["managementApiUrl"] = management_api_url
        if access_token is not None:
            props["accessToken"] = pulumi.Output.secret(access_token)
        super().__init__(PACKAGE, name, props, opts)


class _Resource(pulumi.CustomResource):
    token: str
    outputs: tuple[str, ...] = ()

    def __init__(self, name: str, props: Mapping[str, Any], opts: pulumi.ResourceOptions | None) -> None:
        super().__init__(self.token, name, {**props, **{k: None for k in self.outputs}}, opts)


class AccessPreflight(_Resource):
    """Checks tables, roles and policy expressions against the database before anything is applied."""

    token = f"{PACKAGE}:index:AccessPreflight"

    def __init__(
        self,
        name: str,
        *,
        schema: str,
        tables: Sequence[str],
        roles: Sequence[str],
        policies: Mapping[str, Mapping[str, Any]],
        source: str,
        policy_settings: Mapping[str, str],
        grants: Mapping[str, Sequence[str]] | None = None,
        refuse_open_writes: bool = False,
        exposed_schemas: Sequence[str] = (),
        uncovered_tables: str = "warn",
        table_grants: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
        group_helpers: Sequence[Mapping[str, Any]] = (),
        definer_objects: Sequence[str] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "schema": schema,
            "tables": list(tables),
            "roles": list(roles),
            "policies": policies,
            "source": source,
            "policySettings": dict(policy_settings),
            # Role -> privileges the stack grants: a policy for a role without its command is refused.
            "grants": {role: list(p) for role, p in (grants or {}).items()},
            # Prod: a permissive write policy for the API's roles that PostgreSQL folds to true is refused.
            "refuseOpenWrites": refuse_open_writes,
            # The Data API's schemas: a table in them outside the model fails ("fail", prod) or warns.
            "exposedSchemas": list(exposed_schemas),
            "uncoveredTables": uncovered_tables,
        }
        # Only when the model has such tables, so other stacks' preflight state stays as it was.
        if table_grants:
            # Table -> role -> privileges, for tables whose access kind grants other than `grants`.
            props["tableGrants"] = {t: {r: list(p) for r, p in g.items()} for t, g in table_grants.items()}
        if group_helpers:
            # The group functions the policies call, made in the preflight's rolled-back parse.
            props["groupHelpers"] = [dict(h) for h in group_helpers]
        # Views and functions declared to run as their owner; left out when none, so stacks made
        # before the setting existed see no change.
        if definer_objects:
            props["definerObjects"] = list(definer_objects)
        super().__init__(name, props, opts)


class RowLevelSecurity(_Resource):
    token = f"{PACKAGE}:index:RowLevelSecurity"
    outputs = ("enabled", "previous")

    def __init__(
        self,
        name: str,
        *,
        schema: str,
        table: str,
        force: bool = False,
        revoke_unguarded_from: Sequence[str] = (),
        revoke_undeclared: Mapping[str, Sequence[str]] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "schema": schema,
            "table": table,
            "force": force,
            "revokeUnguardedFrom": list(revoke_unguarded_from),
        }
        if revoke_undeclared:
            # Role -> table privileges the table's access kind does not give (a Grant's create leaves them).
            props["revokeUndeclared"] = {role: list(p) for role, p in revoke_undeclared.items()}
        super().__init__(name, props, opts)


class TablePolicies(_Resource):
    """The complete set of RLS policies of one table; policies nobody declared are removed."""

    token = f"{PACKAGE}:index:TablePolicies"
    outputs = ("adopted",)

    def __init__(
        self,
        name: str,
        *,
        schema: str,
        table: str,
        policies: Mapping[str, Mapping[str, Any]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(name, {"schema": schema, "table": table, "policies": policies}, opts)


class ConstraintRemoval(_Resource):
    """Keeps a constraint dropped; deleting this resource restores it."""

    token = f"{PACKAGE}:index:ConstraintRemoval"
    outputs = ("definition", "present")

    def __init__(
        self,
        name: str,
        *,
        schema: str,
        table: str,
        constraint: str,
        definition: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {"schema": schema, "table": table, "constraint": constraint, "definition": definition}
        super().__init__(name, props, opts)


class ConstraintPresence(_Resource):
    """Keeps a foreign key present: re-created when missing (NOT VALID, with a warning, when rows
    violate it), validated once none does; deleting this resource leaves the constraint."""

    token = f"{PACKAGE}:index:ConstraintPresence"
    outputs = ("present", "validated", "definition")

    def __init__(
        self,
        name: str,
        *,
        schema: str,
        table: str,
        constraint: str,
        columns: Sequence[str],
        referenced_table: str = "auth.users",
        referenced_columns: Sequence[str] = ("id",),
        on_delete: str = "cascade",
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "schema": schema,
            "table": table,
            "constraint": constraint,
            "columns": list(columns),
            "referencedTable": referenced_table,
            "referencedColumns": list(referenced_columns),
            "onDelete": on_delete,
        }
        super().__init__(name, props, opts)


class DefaultPrivilegesBaseline(_Resource):
    """What `owner`'s default privileges gave `roles` in `schema` before the stack; destroy puts it back."""

    token = f"{PACKAGE}:index:DefaultPrivilegesBaseline"
    outputs = ("previous",)

    def __init__(
        self, name: str, *, owner: str, schema: str, roles: Sequence[str], opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, {"owner": owner, "schema": schema, "roles": list(roles)}, opts)


class RlsForNewTables(_Resource):
    """An event trigger switching RLS on for tables created later in `schemas` (where the login role may)."""

    token = f"{PACKAGE}:index:RlsForNewTables"
    outputs = ("installed",)

    def __init__(self, name: str, *, schemas: Sequence[str], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, {"schemas": list(schemas)}, opts)


class GroupFunctions(_Resource):
    """The functions giving the groups of the current user (member of, admin of) for one membership table."""

    token = f"{PACKAGE}:index:GroupFunctions"
    outputs = ("memberFunction", "adminFunction")

    def __init__(
        self,
        name: str,
        *,
        schema: str,
        lookup: Mapping[str, Any],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(name, {"schema": schema, **lookup}, opts)


class PolicyIndex(_Resource):
    """An index that serves one RLS policy lookup as an index-only scan: `table (column) include (include)`.

    An existing index that serves it is used; otherwise one is built CONCURRENTLY, and only that one
    is dropped by destroy.
    """

    token = f"{PACKAGE}:index:PolicyIndex"
    outputs = ("index", "created")

    def __init__(
        self,
        name: str,
        *,
        schema: str,
        table: str,
        column: str,
        include: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(name, {"schema": schema, "table": table, "column": column, "include": include}, opts)


class AuthSettings(_Resource):
    """The Supabase Auth settings a stack manages on one project (through the Management API).

    Only the keys in `settings` are set and watched; destroying restores the values found before.
    Pass `security_captcha_secret` as a secret Output.
    """

    token = f"{PACKAGE}:index:AuthSettings"
    outputs = ("live", "previous", "sentSecretHashes", "appliedSecretHashes")

    def __init__(
        self,
        name: str,
        *,
        project_ref: pulumi.Input[str],
        settings: Mapping[str, pulumi.Input[Any]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(name, {"projectRef": project_ref, "settings": dict(settings)}, opts)


class WriteQuota(_Resource):
    """At most `limit` new rows of `table` per user per window: a BEFORE INSERT trigger (SQLSTATE PT429).

    A fixed window per user, starting at their first insert; the count is a per-user row in the
    private schema's usage table, so deleting rows does not give quota back.
    """

    token = f"{PACKAGE}:index:WriteQuota"
    outputs = ("function", "trigger", "usageTable", "sqlstate")

    def __init__(
        self,
        name: str,
        *,
        schema: str,
        table: str,
        limit: int,
        window_seconds: int,
        window_label: str,
        private_schema: str = "supabase_access",
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "schema": schema,
            "table": table,
            "limit": limit,
            "windowSeconds": window_seconds,
            "windowLabel": window_label,
            "privateSchema": private_schema,
        }
        super().__init__(name, props, opts)


class RetentionPolicy(_Resource):
    """`purge_expired()`: old anonymous users (with their rows) and old sessions; pg_cron runs it where it exists."""

    token = f"{PACKAGE}:index:RetentionPolicy"
    outputs = ("function", "scheduled", "runManually", "status")
    scheduled: pulumi.Output[bool]
    status: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        schema: str,
        owned_tables: Sequence[Mapping[str, str]],
        sessions_table: str,
        sessions_timestamp_column: str,
        anonymous_users_days: int | None,
        sessions_days: int | None,
        schedule: str,
        job_name: str,
        private_schema: str = "supabase_access",
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "schema": schema,
            "ownedTables": [dict(t) for t in owned_tables],
            "sessionsTable": sessions_table,
            "sessionsTimestampColumn": sessions_timestamp_column,
            "anonymousUsersDays": anonymous_users_days,
            "sessionsDays": sessions_days,
            "schedule": schedule,
            "jobName": job_name,
            "privateSchema": private_schema,
        }
        super().__init__(name, props, opts)

    @property
    def run_manually(self) -> pulumi.Output[str]:
        # The SDK sets each output as an attribute named like the property.
        return self.__dict__["runManually"]  # type: ignore[no-any-return]
