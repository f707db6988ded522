"""The one description of each resource of the supabase-access provider (see spec.py for what is made from it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from supabase_access.model.connection import DEFAULT_DATABASE, DEFAULT_PORT, DEFAULT_SSLMODE, DEFAULT_USERNAME
from supabase_access.provider.spec import (
    INTEGER,
    STRING,
    Prop,
    Props,
    ResourceSpec,
    prop,
    wire_name,
)

PRIVATE_SCHEMA = "supabase_access"
SCHEMA_DESCRIPTION = "Schema of the table (e.g. `public`)."


def schema_prop() -> Any:
    """The `schema` field of a resource on one table (`public` when left out, as the provider always took it)."""
    return prop(SCHEMA_DESCRIPTION, required=True, replaces=True, fallback="public")


def table_prop(what: str = "The table") -> Any:
    """The `table` field of a resource on one table."""
    return prop(f"{what}, in `schema`.", required=True, replaces=True)


ADDED_COLUMNS_DESCRIPTION = (
    "Table -> column -> type of the columns the stack adds before the policies that name them (owner "
    "copies; a type `table.column` is that column's, as a group's copy takes its key's): the policies are checked "
    "as if they were there. Left out when there are none."
)


@dataclass(frozen=True, kw_only=True)
class AccessPreflightState(Props):
    """What the preflight keeps in state: the schema and tables it claims. Not the policies again: the
    engine rewrites the whole state file after every step, so a second copy of every table's policies
    would cost each step of a large stack. The inputs type extends it."""

    schema: str = prop("Schema of the model's tables.", required=True, fallback="public")
    tables: tuple[str, ...] = prop(
        "The model's tables; each must exist and be alterable by the login role.", required=True, fallback=()
    )


@dataclass(frozen=True, kw_only=True)
class AccessPreflightInputs(AccessPreflightState):
    roles: tuple[str, ...] = prop("Roles the policies and grants name; each must exist.", required=True, fallback=())
    # Table -> policy name -> policy: each table's map is checked (and rendered) by the preflight's normalize.
    policies: Mapping[str, Any] = prop(
        "Table -> policy name -> policy (command, roles, permissive, using, withCheck, or a rule sent as data); "
        "each parsed by PostgreSQL.",
        required=True,
        fallback={},
    )
    source: str = prop(
        "Where the model comes from, named in errors (e.g. the model file's setting).",
        required=True,
        fallback="the access model",
    )
    policy_settings: Mapping[str, str] = prop(
        "`table.policy` -> the stack setting that declared it, so an error names the setting.",
        required=True,
        fallback={},
    )
    grants: Mapping[str, tuple[str, ...]] = prop(
        "Role -> privileges the stack grants on every table: a policy for a role without its command is refused.",
        default={},
    )
    refuse_open_writes: bool = prop(
        "Refuse a permissive write policy for the API's roles that PostgreSQL reduces to true (prod).", default=False
    )
    exposed_schemas: tuple[str, ...] = prop(
        "The Data API's schemas: a table there that the model leaves out fails or warns (`uncoveredTables`).",
        default=[],
    )
    buckets: tuple[str, ...] | None = prop(
        "The model's Storage buckets: any other bucket of storage.buckets fails or warns (`uncoveredTables`). "
        "Left out when the model has none."
    )
    published: tuple[str, ...] | None = prop(
        "The model's `realtime.publish` tables: one outside `tables` (no kind), like any table of the "
        "`supabase_realtime` publication the model leaves out, fails or warns (`uncoveredTables`). Left out "
        "when the model publishes none."
    )
    uncovered_tables: str = prop(
        "`fail` (prod) or `warn`: what an exposed table outside the model does to the preview.", default="warn"
    )
    definer_objects: tuple[str, ...] | None = prop(
        "Views and functions of the exposed schemas declared to run with their owner's rights (`schema.name`); "
        "left out when there are none."
    )
    table_grants: Mapping[str, Mapping[str, tuple[str, ...]]] | None = prop(
        "Table -> role -> privileges, for tables whose access kind grants other than `grants` (public-read, "
        "service-only, membership tables); left out when there are none."
    )
    # GroupFunctions' inputs as the program sent them (group_functions.prelude_for parses each).
    group_helpers: tuple[Mapping[str, Any], ...] | None = prop(
        "The group functions the policies call (GroupFunctions' inputs, one per membership table), made inside "
        "the rolled-back parse of the policies; left out when the model has no groups."
    )
    added_columns: Mapping[str, Mapping[str, str]] | None = prop(ADDED_COLUMNS_DESCRIPTION)
    model: Mapping[str, Any] | None = prop(
        "The access model (as the model file reads), for the widening probe: with `refuseOpenWrites`, every "
        "extra permissive policy (`policySettings`) is probed as the API's personas on rows the probe makes in "
        "its rolled-back transaction, and refused if it gives rows the table's kind does not. Left out when "
        "there is no extra permissive policy to judge."
    )
    widenings: Mapping[str, str] | None = prop(
        "`table.policy` -> why, for the extra policies declared to widen access (`widens:`): the probe lists "
        "what they give instead of refusing them. Left out when there are none."
    )
    replaced_policies: Mapping[str, Mapping[str, Any]] | None = prop(
        "Table -> policy name -> the generated policy an extra one replaces (`replaces: true`), which the probe "
        "judges the replacement against. Left out when there are none."
    )
    # Table -> its column rules as the model's plain data (model.access_model.parse_column_rules reads each).
    column_rules: Mapping[str, Any] | None = prop(
        "Table -> its column rules as the model reads (`readOnly`, `immutable`, `hidden`): every column named "
        "must exist, and a readOnly column needs a default (the API never sets it). Left out when there are none."
    )


ACCESS_PREFLIGHT = ResourceSpec.typed(
    "AccessPreflight",
    "Checks, before any other resource runs, that the database can be reached, the tables and roles exist and "
    "PostgreSQL accepts every policy expression: bad input stops `up` with nothing applied.",
    AccessPreflightInputs,
    AccessPreflightState,
)


@dataclass(frozen=True, kw_only=True)
class RlsFlags(Props):
    """A table's row-level security flags."""

    enabled: bool = False
    force: bool = False


@dataclass(frozen=True, kw_only=True)
class RowLevelSecurityInputs(Props):
    schema: str = schema_prop()
    table: str = table_prop()
    force: bool = prop("FORCE row-level security (the table's owner is held to the policies too).", default=False)
    revoke_unguarded_from: tuple[str, ...] = prop(
        "Roles that lose the privileges RLS does not guard on the table (TRUNCATE, REFERENCES, TRIGGER, MAINTAIN "
        "on PostgreSQL 17; Supabase gives them to anon and authenticated).",
        default=[],
    )
    revoke_undeclared: Mapping[str, tuple[str, ...]] | None = prop(
        "Role -> table commands (SELECT, INSERT, UPDATE, DELETE) the table's access kind does not give "
        "that role (say INSERT on a public-read table), taken before its Grant, whose first apply revokes only "
        "what it declares; left out when none."
    )
    withheld_columns: Mapping[str, Mapping[str, tuple[str, ...]]] | None = prop(
        "Role -> privilege (SELECT, INSERT, UPDATE) -> the columns the table's column rules withhold from that "
        "role (hidden, readOnly, immutable). A column-level grant of one of them (say one made by hand) is drift "
        "that `up` takes back; the column Grants never list them. Left out when the table has no column rules."
    )


@dataclass(frozen=True, kw_only=True)
class RowLevelSecurityState(RowLevelSecurityInputs):
    enabled: bool | None = prop("Whether row-level security is on (always true once applied).")
    previous: RlsFlags | None = prop(
        "The RLS flags (`enabled`, `force`) the table had before the stack; destroy restores them."
    )


ROW_LEVEL_SECURITY = ResourceSpec.typed(
    "RowLevelSecurity",
    "Row-level security on for one table (and FORCE where asked); the privileges RLS does not guard (every "
    "one the server knows but SELECT, INSERT, UPDATE, DELETE: TRUNCATE, REFERENCES, TRIGGER, and MAINTAIN on "
    "PostgreSQL 17) taken from the named roles. Destroy gives back the flags and privileges from before the "
    "stack.",
    RowLevelSecurityInputs,
    RowLevelSecurityState,
)

# Policy name -> policy, as the model's plain data (model.policy: policy_from_plain, policy_from_stored).
PolicyMap = Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class TablePoliciesInputs(Props):
    schema: str = schema_prop()
    table: str = table_prop()
    policies: PolicyMap = prop(
        "Policy name -> policy (command, roles, permissive, using, withCheck, or a rule sent as data); in state, "
        "the policies as PostgreSQL stores them.",
        required=True,
    )
    added_columns: Mapping[str, Mapping[str, str]] | None = prop(ADDED_COLUMNS_DESCRIPTION)


@dataclass(frozen=True, kw_only=True)
class TablePoliciesState(TablePoliciesInputs):
    adopted: PolicyMap | None = prop(
        "The policies the table had before the stack (taken over); destroy puts them back."
    )
    declared_digest: str | None = prop("SHA-256 of the declaration the last apply was asked for.")
    declared: PolicyMap | None = prop(
        "The declaration of the last apply, as states written before `declaredDigest` kept it."
    )
    normalized: PolicyMap | None = prop(
        "The policies as the last apply left them, recorded when a refresh finds drift."
    )


TABLE_POLICIES = ResourceSpec.typed(
    "TablePolicies",
    "The complete set of RLS policies of one table: policies nobody declared are drift and removed; those found at "
    "the first `up` are taken over and put back by destroy.",
    TablePoliciesInputs,
    TablePoliciesState,
)


@dataclass(frozen=True, kw_only=True)
class TableGrantInputs(Props):
    role: str = prop("The role the privileges were granted to.", required=True)
    schema: str = prop("Schema of the tables.", required=True)
    objects: tuple[str, ...] = prop("The tables.", required=True)
    privileges: tuple[str, ...] = prop("The privileges granted.", required=True)
    object_type: str | None = prop("Always `table`.")


@dataclass(frozen=True, kw_only=True)
class TableGrantState(TableGrantInputs):
    previous: Mapping[str, tuple[str, ...]] | None = prop("Table -> the role's privileges before the stack.")
    privileges_by_table: Mapping[str, tuple[str, ...]] | None = prop("Table -> the role's privileges, as last read.")


TABLE_GRANT = ResourceSpec.typed(
    "TableGrant",
    "Retired: grants are `postgresql:index/grant:Grant` resources now. Kept so that stacks holding one can refresh "
    "it and drop it from state without touching the database.",
    TableGrantInputs,
    TableGrantState,
    retired=True,
)


@dataclass(frozen=True, kw_only=True)
class ConstraintRemovalInputs(Props):
    schema: str = schema_prop()
    table: str = table_prop()
    constraint: str = prop("Name of the constraint to keep dropped.", required=True, replaces=True)
    definition: str | None = prop(
        "The constraint's definition, for destroy to restore where the database no longer has it (in state: the "
        "definition found when it was dropped)."
    )


@dataclass(frozen=True, kw_only=True)
class ConstraintRemovalState(ConstraintRemovalInputs):
    present: bool | None = prop("Whether the constraint exists (false once applied).")
    columns: tuple[str, ...] | None = prop("The constraint's columns, as found when it was dropped.")
    referenced_table: str | None = prop("The table it references (`schema.table`), as found when it was dropped.")
    referenced_columns: tuple[str, ...] | None = prop("The referenced columns, as found when it was dropped.")


CONSTRAINT_REMOVAL = ResourceSpec.typed(
    "ConstraintRemoval",
    "Keeps a constraint dropped, holding its definition; destroy restores it (NOT VALID, with a warning giving the "
    "number of violating rows, when rows violate it).",
    ConstraintRemovalInputs,
    ConstraintRemovalState,
)


@dataclass(frozen=True, kw_only=True)
class ConstraintPresenceInputs(Props):
    schema: str = schema_prop()
    table: str = table_prop()
    constraint: str = prop("Name of the foreign key.", required=True, replaces=True)
    columns: tuple[str, ...] = prop("The referencing columns.", required=True)
    referenced_table: str = prop("The referenced table, `schema.table`.", default="auth.users")
    referenced_columns: tuple[str, ...] = prop("The referenced columns, as many as `columns`.", default=["id"])
    on_delete: str = prop(
        "ON DELETE action: cascade, restrict, no action, set null, set default.",
        default="cascade",
    )


@dataclass(frozen=True, kw_only=True)
class ConstraintPresenceState(ConstraintPresenceInputs):
    present: bool | None = prop("Whether the foreign key exists.")
    validated: bool | None = prop("Whether it is validated (false: NOT VALID, some rows violate it).")
    definition: str | None = prop("The definition PostgreSQL shows for it (pg_get_constraintdef).")


CONSTRAINT_PRESENCE = ResourceSpec.typed(
    "ConstraintPresence",
    "Keeps a foreign key present: re-created when missing (NOT VALID, with a warning, when rows violate it), "
    "validated once no row does; destroy leaves it in place.",
    ConstraintPresenceInputs,
    ConstraintPresenceState,
)

# Object type (tables, sequences, functions) -> role -> privileges.
DefaultAcl = Mapping[str, Mapping[str, tuple[str, ...]]]


@dataclass(frozen=True, kw_only=True)
class DefaultPrivilegesBaselineInputs(Props):
    owner: str = prop(
        "The role whose default privileges (for what it creates) are recorded.", required=True, replaces=True
    )
    schema: str = prop("The schema the default privileges apply in.", required=True, replaces=True)
    roles: tuple[str, ...] = prop("The grantees whose default privileges are recorded.", required=True, replaces=True)


@dataclass(frozen=True, kw_only=True)
class DefaultPrivilegesBaselineState(DefaultPrivilegesBaselineInputs):
    previous: DefaultAcl | None = prop(
        "Object type (tables, sequences, functions) -> role -> privileges before the stack."
    )


DEFAULT_PRIVILEGES_BASELINE = ResourceSpec.typed(
    "DefaultPrivilegesBaseline",
    "Remembers the default privileges a creating role gave the API roles in one schema before the stack closed "
    "them (pulumi_postgresql.DefaultPrivileges); destroy puts them back.",
    DefaultPrivilegesBaselineInputs,
    DefaultPrivilegesBaselineState,
)


@dataclass(frozen=True, kw_only=True)
class SequencePrivilegesInputs(Props):
    schema: str = schema_prop()
    table: str = table_prop()
    roles: tuple[str, ...] = prop("The roles whose sequence privileges are managed.", required=True)
    usage: tuple[str, ...] = prop("Those of `roles` that may insert into the table: they get USAGE.", default=[])


@dataclass(frozen=True, kw_only=True)
class SequencePrivilegesState(SequencePrivilegesInputs):
    sequences: tuple[str, ...] = prop("The table's sequences (schema.name) found at the last apply.", default=())


SEQUENCE_PRIVILEGES = ResourceSpec.typed(
    "SequencePrivileges",
    "The privileges the named roles hold on one table's sequences: USAGE on those its column defaults call "
    "(serial, bigserial) for the roles that may insert, nothing else (no SELECT, no UPDATE: setval); identity "
    "columns need none. Destroy gives back what they held before the stack.",
    SequencePrivilegesInputs,
    SequencePrivilegesState,
)


@dataclass(frozen=True, kw_only=True)
class FunctionPrivilegesInputs(Props):
    schema: str = prop("The exposed schema.", required=True, replaces=True)
    roles: tuple[str, ...] = prop("The API roles whose EXECUTE is managed (anon, authenticated).", required=True)
    server: tuple[str, ...] = prop("Roles that keep EXECUTE on every function (service_role).", default=[])
    declared: Mapping[str, tuple[str, ...]] = prop(
        "Function name -> the roles of `roles` that may execute it (every overload).", default={}
    )
    unmanaged: tuple[str, ...] = prop("Function names left as they are (the deprecated definerObjects).", default=[])
    enforce: bool = prop("Close every undeclared function (prod); else only name them.", default=False)


@dataclass(frozen=True, kw_only=True)
class FunctionPrivilegesState(FunctionPrivilegesInputs):
    pass


FUNCTION_PRIVILEGES = ResourceSpec.typed(
    "FunctionPrivileges",
    "Who may execute the functions of one exposed schema: those the model declares (`functions:`) by the roles it "
    "names, every other one by no API role and not by PUBLIC (when `enforce`: prod), service_role by all. Every "
    "preview names the undeclared ones anon or authenticated may call. Destroy gives back the EXECUTE from before.",
    FunctionPrivilegesInputs,
    FunctionPrivilegesState,
)


@dataclass(frozen=True, kw_only=True)
class RlsForNewTablesInputs(Props):
    schemas: tuple[str, ...] = prop("The exposed schemas whose new tables get RLS.", required=True)
    private_schema: str | None = prop(
        "The provider's own schema, which holds the trigger's function (default `supabase_access`)."
    )


@dataclass(frozen=True, kw_only=True)
class RlsForNewTablesState(RlsForNewTablesInputs):
    installed: bool | None = prop("Whether the event trigger exists (false where the login role may not create it).")


RLS_FOR_NEW_TABLES = ResourceSpec.typed(
    "RlsForNewTables",
    "An event trigger switching RLS on for every table created later in the exposed schemas (where the login role "
    "may create event triggers; otherwise the preview says so and nothing is created).",
    RlsForNewTablesInputs,
    RlsForNewTablesState,
)


@dataclass(frozen=True, kw_only=True)
class GroupFunctionsInputs(Props):
    schema: str = prop("Schema of the app's tables.", default="public", replaces=True)
    membership_table: str = prop("The membership table (one row per member of a group).", required=True, replaces=True)
    group: str = prop("The group table, owned directly by `groupOwnerColumn`.", required=True)
    column: str = prop("The membership table's column holding the group's key.", required=True)
    user: str = prop("The membership table's column holding the member's `auth.users.id`.", required=True)
    key: str = prop("The group table's key column.", default="id")
    role: str | None = prop("The membership table's role column (for admins); left out when none.")
    admins: tuple[str, ...] = prop("Role values that make a member an admin of the group.", default=[])
    group_owner_column: str = prop("The group table's owner column.", required=True)
    helper_schema: str = prop(
        "Where the functions live: a schema of the provider's, never exposed to the Data API.",
        default="supabase_access_rls",
        replaces=True,
    )
    force_rls: bool | None = prop(
        "The stack forces RLS (`supabase-access:forceRls`): the login role must bypass RLS; left out when not."
    )


@dataclass(frozen=True, kw_only=True)
class GroupFunctionsState(GroupFunctionsInputs):
    member_function: str | None = prop("The function giving the groups the current user belongs to.")
    admin_function: str | None = prop("The function giving the groups the current user administers.")


GROUP_FUNCTIONS = ResourceSpec.typed(
    "GroupFunctions",
    "For one membership table: two SECURITY DEFINER functions in a schema of their own (not exposed) giving the "
    "current user's groups, those they belong to and those they administer (owned ones included), which the "
    "policies of group rows call once per statement. `authenticated` may execute them, nobody else.",
    GroupFunctionsInputs,
    GroupFunctionsState,
)


@dataclass(frozen=True, kw_only=True)
class PolicyIndexInputs(Props):
    schema: str = schema_prop()
    table: str = table_prop("The table searched")
    column: str = prop("The column searched (the index's first key).", required=True, replaces=True)
    include: str = prop("The column read back (a key or INCLUDE column of the index).", required=True, replaces=True)


@dataclass(frozen=True, kw_only=True)
class PolicyIndexState(PolicyIndexInputs):
    index: str | None = prop("Name of the index that serves the lookup.")
    created: bool | None = prop("Whether the stack built that index (only then does destroy drop it).")


POLICY_INDEX = ResourceSpec.typed(
    "PolicyIndex",
    "A covering index that serves one RLS policy lookup as an index-only scan: `table (column) include (include)`. An "
    "existing serving index is used; otherwise one is built CONCURRENTLY, and destroy drops only that one.",
    PolicyIndexInputs,
    PolicyIndexState,
)


def private_schema_prop() -> Any:
    """The `privateSchema` field of a resource with objects in the provider's own schema."""
    return prop(
        "The provider's own schema for its helpers and ledger; never exposed to the Data API.",
        default=PRIVATE_SCHEMA,
        replaces=True,
    )


@dataclass(frozen=True, kw_only=True)
class WriteQuotaInputs(Props):
    schema: str = schema_prop()
    table: str = table_prop("The table whose inserts are counted")
    limit: int = prop("New rows allowed per user per window.", required=True)
    window_seconds: int = prop("Length of the window, from the user's first insert in it.", required=True)
    window_label: str | None = prop(
        "The window in words for the error's hint (e.g. `hour`).", required=True, fallback=None
    )
    private_schema: str = private_schema_prop()


@dataclass(frozen=True, kw_only=True)
class WriteQuotaState(WriteQuotaInputs):
    function: str | None = prop("The trigger function, `schema.name`.")
    trigger: str | None = prop("The trigger's name on the table.")
    usage_table: str | None = prop("The per-user usage table, `schema.name`.")
    sqlstate: str | None = prop("The SQLSTATE a refused insert fails with.")
    trigger_enabled: bool | None = prop("Whether the trigger is enabled, as a refresh found it.")
    index: str | None = prop("Earlier versions: the index they built for the quota (dropped by the next update).")
    index_created: bool | None = prop("Earlier versions: whether they built `index`.")


WRITE_QUOTA = ResourceSpec.typed(
    "WriteQuota",
    "At most `limit` new rows of a table per user per window: a BEFORE INSERT trigger failing with SQLSTATE PT429 "
    "(HTTP 429 through PostgREST), counting in an UNLOGGED usage table of the private schema.",
    WriteQuotaInputs,
    WriteQuotaState,
)


@dataclass(frozen=True, kw_only=True)
class HopEntry(Props):
    """`table.column` references `parent.key`: one hop of an ownership path."""

    table: str
    column: str
    parent: str
    key: str


@dataclass(frozen=True, kw_only=True)
class OwnerCopyInputs(Props):
    schema: str = schema_prop()
    table: str = table_prop("The table that gets the copy")
    column: str = prop(
        "The copy's column (added by the stack; a column of that name must not exist).", required=True, replaces=True
    )
    path: tuple[HopEntry, ...] = prop(
        "The hops up to the owner, `{table, column, parent, key}` each: `table.column` references `parent.key`, "
        "the first from the copy's table. A change computes every copy again.",
        required=True,
    )
    root_column: str = prop(
        "The owner column of the last hop's parent (uuid, auth.users.id), or with `group` the group table's key.",
        required=True,
    )
    group: bool | None = prop(
        "The copy is of a group's key (the model's copyGroup): the path ends at the group table, `rootColumn` is "
        "its key (uuid, bigint, integer or text: the copy takes its type), and the foreign key references it "
        "instead of auth.users (id)."
    )
    private_schema: str = private_schema_prop()
    batch_size: int | None = prop("About how many rows each transaction of the fill updates (default 10,000).")


@dataclass(frozen=True, kw_only=True)
class OwnerCopyState(OwnerCopyInputs):
    functions: tuple[str, ...] | None = prop("The trigger functions, `schema.name`.")
    triggers: tuple[str, ...] | None = prop("The triggers, `table.name`.")
    index: str | None = prop("The index on the copy.")
    check_constraint: str | None = prop("The CHECK that the copy is present wherever the row has a parent.")
    foreign_key: str | None = prop(
        "The foreign key to auth.users (id), or to the group's key with `group`, on delete cascade."
    )
    validated: bool | None = prop("Whether both constraints are validated (false while rows have no owner to copy).")


OWNER_COPY = ResourceSpec.typed(
    "OwnerCopy",
    "A copy of the owner on a table deep in an ownership path (the model's copyOwner), or of the group's key two or "
    "more hops below a group (copyGroup): a column added without a "
    "long lock, filled in batches, kept right by triggers (from the parent on every insert and re-parenting, passed "
    "down when a table above changes), present (a validated CHECK), a user or a group (a foreign key to auth.users or "
    "the group table, on delete cascade) and indexed (built CONCURRENTLY). Destroy drops all of it.",
    OwnerCopyInputs,
    OwnerCopyState,
)


@dataclass(frozen=True, kw_only=True)
class OwnedTableEntry(Props):
    """A table holding a user's rows, and its owner column."""

    table: str
    owner_column: str


@dataclass(frozen=True, kw_only=True)
class RetentionPolicyInputs(Props):
    private_schema: str = private_schema_prop()
    schema: str = prop("Schema of the app's tables.", required=True, fallback="public")
    owned_tables: tuple[OwnedTableEntry, ...] = prop(
        "Tables holding a user's rows: `{table, ownerColumn}` each.", required=True, fallback=()
    )
    sessions_table: str = prop("The sessions table purged by age.", required=True, fallback="sessions")
    sessions_timestamp_column: str = prop(
        "The sessions table's timestamp column the age is read from.", required=True, fallback="created_at"
    )
    anonymous_users_days: int | None = prop(
        "Anonymous users older than this many days are removed (unset: kept).", default=None
    )
    sessions_days: int | None = prop("Sessions older than this many days are removed (unset: kept).", default=None)
    schedule: str | None = prop("pg_cron schedule of the purge (UTC), e.g. `17 3 * * *`.", required=True, fallback=None)
    job_name: str | None = prop("pg_cron job name.", required=True, fallback=None)


@dataclass(frozen=True, kw_only=True)
class RetentionPolicyState(RetentionPolicyInputs):
    function: str | None = prop("The purge function, `schema.name`.")
    scheduled: bool | None = prop("Whether pg_cron runs the purge.")
    run_manually: str | None = prop("The statement to run by hand where pg_cron is missing.")
    status: str | None = prop("How the purge runs, or what to do where it is not scheduled.")


RETENTION_POLICY = ResourceSpec.typed(
    "RetentionPolicy",
    "`purge_expired()`: removes anonymous users older than N days (their rows go with them) and sessions older than "
    "M days; scheduled with pg_cron where the extension exists, otherwise `status` says how to run it.",
    RetentionPolicyInputs,
    RetentionPolicyState,
)


@dataclass(frozen=True, kw_only=True)
class AuthSettingsInputs(Props):
    # Falls back to "" so that leaving it out is refused naming the stack setting that holds it.
    project_ref: str = prop(
        "The Supabase project's reference (20 lower-case letters).", required=True, replaces=True, fallback=""
    )
    settings: Mapping[str, Any] = prop(
        "Auth setting -> value (the Management API's names); `security_captcha_secret` is kept as a secret.",
        required=True,
    )


@dataclass(frozen=True, kw_only=True)
class AuthSettingsState(AuthSettingsInputs):
    live: Mapping[str, Any] | None = prop(
        "The managed keys as the project had them when last read or written (hashed ones secret)."
    )
    previous: Mapping[str, Any] | None = prop(
        "The managed keys' values before the stack first changed them; destroy restores them."
    )
    sent_secret_hashes: Mapping[str, str] | None = prop(
        "SHA-256 of each secret value sent, to see a changed secret.", secret=True
    )
    applied_secret_hashes: Mapping[str, Any] | None = prop(
        "The API's hashed answer right after each secret was written.", secret=True
    )


AUTH_SETTINGS = ResourceSpec.typed(
    "AuthSettings",
    "The Supabase Auth settings a stack manages on one project, through the Management API: only the keys set are "
    "sent and watched; destroy puts back the values found before.",
    AuthSettingsInputs,
    AuthSettingsState,
)


@dataclass(frozen=True, kw_only=True)
class RealtimeSettingsInputs(Props):
    # Falls back to "" so that leaving it out is refused naming the stack setting that holds it.
    project_ref: str = prop(
        "The Supabase project's reference (20 lower-case letters).", required=True, replaces=True, fallback=""
    )
    settings: Mapping[str, Any] = prop(
        "Realtime setting -> value (the Management API's names: `private_only`).", required=True
    )


@dataclass(frozen=True, kw_only=True)
class RealtimeSettingsState(RealtimeSettingsInputs):
    live: Mapping[str, Any] | None = prop("The managed keys as the project had them when last read or written.")
    previous: Mapping[str, Any] | None = prop(
        "The managed keys' values before the stack first changed them; destroy restores them."
    )


REALTIME_SETTINGS = ResourceSpec.typed(
    "RealtimeSettings",
    "The Supabase Realtime settings a stack manages on one project, through the Management API "
    "(`/v1/projects/{ref}/config/realtime`): `private_only` refuses public channels (the dashboard's \"Allow public "
    "access\" off), so every join goes through the channels' policies on realtime.messages. Only the keys set are "
    "sent and watched; destroy puts back the values found before.",
    RealtimeSettingsInputs,
    RealtimeSettingsState,
)


@dataclass(frozen=True, kw_only=True)
class RealtimePublicationInputs(Props):
    schema: str = prop("The tables' schema.", required=True, replaces=True, fallback="public")
    tables: tuple[str, ...] = prop("The tables to publish.", required=True)
    publication: str = prop("The publication.", default="supabase_realtime", replaces=True)


@dataclass(frozen=True, kw_only=True)
class RealtimePublicationState(RealtimePublicationInputs):
    added: tuple[str, ...] | None = prop("The tables this stack added (destroy takes them out again).")


REALTIME_PUBLICATION = ResourceSpec.typed(
    "RealtimePublication",
    "The stack's tables in Supabase's `supabase_realtime` publication (Postgres Changes): each is added when "
    "missing; a subscriber then receives a row's changes only where the table's SELECT policies admit it. Destroy "
    "takes out exactly the tables this stack added (those already published before it stay).",
    RealtimePublicationInputs,
    RealtimePublicationState,
)


@dataclass(frozen=True, kw_only=True)
class ChannelPoliciesInputs(Props):
    policies: PolicyMap = prop(
        "Policy name -> {command, roles, using, withCheck}: what each policy is (SQL, rendered from the model's "
        "`realtime.channels`).",
        required=True,
    )
    channels: tuple[str, ...] = prop(
        "The topic patterns of the stack's channels (`project:{id}`): one stack per pattern on a database, claimed "
        "in the ledger; a pattern another stack claims stops the preview.",
        default=[],
    )


@dataclass(frozen=True, kw_only=True)
class ChannelPoliciesState(ChannelPoliciesInputs):
    applied: PolicyMap | None = prop(
        "The policies as PostgreSQL stored them at the last apply (drift is measured from them)."
    )
    adopted: PolicyMap | None = prop(
        "Policies made by hand that opened the stack's channels wider than their kinds, found and dropped at the "
        "first apply: destroy puts them back."
    )


CHANNEL_POLICIES = ResourceSpec.typed(
    "ChannelPolicies",
    "The stack's policies on `realtime.messages` (Realtime Authorization of private Broadcast and Presence "
    "channels): SELECT to receive, INSERT to send, each marked as the stack's. Policies of the table made by another "
    "stack are never touched, nor those made by hand that open none of its channels; one made by hand that opens them "
    "wider than their kinds is drift the next apply drops. A policy of theirs with a name the stack declares, or a "
    "topic pattern another stack claims, stops the preview and the apply.",
    ChannelPoliciesInputs,
    ChannelPoliciesState,
)


@dataclass(frozen=True, kw_only=True)
class ImmutableColumnsInputs(Props):
    schema: str = schema_prop()
    table: str = table_prop("The table whose columns are immutable")
    columns: tuple[str, ...] = prop("The immutable columns.", required=True)
    private_schema: str = private_schema_prop()


@dataclass(frozen=True, kw_only=True)
class ImmutableColumnsState(ImmutableColumnsInputs):
    function: str | None = prop("The trigger function, `schema.name`.")
    trigger: str | None = prop("The trigger's name on the table.")


IMMUTABLE_COLUMNS = ResourceSpec.typed(
    "ImmutableColumns",
    "Columns set on insert and never changed by the API (the model's `immutable`): a BEFORE UPDATE OF trigger whose "
    "WHEN fires only on a change, calling a function of the private schema that refuses it (SQLSTATE 42501, HTTP "
    "403 through PostgREST) when the request is anon's or authenticated's, a SECURITY DEFINER function of theirs "
    "included. Column privileges already refuse the plain UPDATE; this holds where privileges cannot.",
    ImmutableColumnsInputs,
    ImmutableColumnsState,
)


@dataclass(frozen=True, kw_only=True)
class StorageBucketInputs(Props):
    bucket_id: str = prop("The bucket's id (and name).", required=True, replaces=True)
    access: str = prop(
        "Who reaches its objects: owner-folder, owner-id, member, public-read, service-only or open (dev).",
        required=True,
    )
    group_function: str | None = prop(
        "For `member`: the membership's group ids function (`schema.name`, giving the user's groups as text[]) whose "
        "ids the first folder must be among."
    )
    caller_function: str | None = prop(
        "For `owner-folder` and `owner-id`: the function (`schema.name`, in a schema of supabase-access's) that gives "
        "the policies the caller's id (auth.uid() as text), made with the bucket's policies and dropped with the last "
        "policy that calls it; left out: the policies call auth.uid() themselves."
    )
    public: bool = prop("Storage serves its objects by public URL, without any policy.", default=False)
    file_size_limit: int | None = prop("The largest object Storage accepts, in bytes; none: the project's limit.")
    allowed_mime_types: tuple[str, ...] | None = prop("The MIME types Storage accepts (`image/*`); none: any.")


@dataclass(frozen=True, kw_only=True)
class BucketSettings(Props):
    """A bucket row's settings as `adopted` keeps them, nulls too (destroy writes each back)."""

    name: str | None = None
    public: bool | None = None
    file_size_limit: int | None = None
    allowed_mime_types: tuple[str, ...] | None = None

    def to_wire(self) -> dict[str, Any]:
        return {**dict.fromkeys((wire_name(f.name) for f in fields(self)), None), **super().to_wire()}


@dataclass(frozen=True, kw_only=True)
class StorageBucketState(StorageBucketInputs):
    adopted: BucketSettings | None = prop(
        "The bucket row's settings before the stack (taken over); destroy puts them back."
    )
    adopted_policies: Mapping[str, Any] | None = prop(
        "Policies of the same names found before the stack; destroy puts them back."
    )
    policies: Mapping[str, Any] | None = prop("The bucket's policies on storage.objects as PostgreSQL stores them.")
    rendered_digest: str | None = prop(
        "SHA-256 of the policies the provider rendered for the bucket at the last apply: a newer supabase-access "
        "that renders them otherwise finds them out of date without asking PostgreSQL when it renders the same."
    )
    normalized: Mapping[str, Any] | None = prop(
        "The bucket's policies as the last apply left them, recorded when a refresh finds drift."
    )


STORAGE_BUCKET = ResourceSpec.typed(
    "StorageBucket",
    "One Storage bucket: its row in storage.buckets (public, file size limit, allowed MIME types) and the policies "
    "on storage.objects its kind gives, scoped by bucket_id. A policy on storage.objects no stack declares that opens "
    "the bucket wider than its kind is drift the next apply drops. A row or policy found at the first `up` is taken "
    "over and put back by destroy; a bucket the stack created is deleted only when no object is left in it.",
    StorageBucketInputs,
    StorageBucketState,
)

SPECS: tuple[ResourceSpec, ...] = (
    ACCESS_PREFLIGHT,
    ROW_LEVEL_SECURITY,
    TABLE_POLICIES,
    TABLE_GRANT,
    CONSTRAINT_REMOVAL,
    CONSTRAINT_PRESENCE,
    DEFAULT_PRIVILEGES_BASELINE,
    SEQUENCE_PRIVILEGES,
    FUNCTION_PRIVILEGES,
    RLS_FOR_NEW_TABLES,
    GROUP_FUNCTIONS,
    POLICY_INDEX,
    OWNER_COPY,
    WRITE_QUOTA,
    RETENTION_POLICY,
    AUTH_SETTINGS,
    REALTIME_SETTINGS,
    REALTIME_PUBLICATION,
    CHANNEL_POLICIES,
    IMMUTABLE_COLUMNS,
    STORAGE_BUCKET,
)

# The provider's own configuration (the `supabase-access` provider resource).
PROVIDER_CONFIG: tuple[Prop, ...] = (
    Prop("host", STRING, "PostgreSQL host (`postgresql:host`).", required=True),
    Prop("port", INTEGER, "PostgreSQL port (`postgresql:port`).", default=DEFAULT_PORT),
    Prop("database", STRING, "Database name (`postgresql:database`).", default=DEFAULT_DATABASE),
    Prop("username", STRING, "Login role (`postgresql:username`).", default=DEFAULT_USERNAME),
    Prop("password", STRING, "The login role's password (`postgresql:password`).", required=True, secret=True),
    Prop("sslmode", STRING, "libpq sslmode (`postgresql:sslmode`).", default=DEFAULT_SSLMODE),
    Prop("managementApiUrl", STRING, "Supabase Management API base URL (`supabase-access:managementApiUrl`)."),
    Prop("accessToken", STRING, "Supabase personal access token (`supabase-access:accessToken`).", secret=True),
)
