"""Every SQL statement the project sends, rendered in one place.

Identifiers always go through psycopg's `sql.Identifier`. Policy expressions are
SQL by nature: they are passed through as written, and PostgreSQL itself
validates them (see `catalog.normalize_policies`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from psycopg import sql

from supabase_access.model.access_model import Hop
from supabase_access.model.hardening import QUOTA_SQLSTATE
from supabase_access.model.owner_copy import COLUMN_TYPE as OWNER_COPY_TYPE
from supabase_access.model.owner_copy import GROUP_KEY_TYPES, OwnerCopyNames, Watched
from supabase_access.model.policy import PolicySpec
from supabase_access.model.profiles import (
    AccessPlan,
    GroupLookup,
    InGroup,
    NotCurrentUser,
    NotGroupOwner,
    OwnedByCurrentUser,
    PolicyRule,
    Predicate,
    PredicateVisitor,
    RoleIn,
)
from supabase_access.model.realtime import EXTENSIONS as CHANNEL_EXTENSIONS
from supabase_access.model.realtime import ChannelRule
from supabase_access.model.rule_data import predicate_from_plain

CURRENT_USER_ID = sql.SQL("(select auth.uid())")


def table_ref(schema: str, table: str) -> sql.Composable:
    return sql.Identifier(schema, table)


def render_predicate(schema: str, predicate: Predicate) -> str:
    return _predicate(schema, predicate).as_string()


def render_declared_policies(schema: str, policies: Mapping[str, Any]) -> dict[str, Any]:
    """Policy inputs with the predicates of rule-based policies (sent as data, see rule_data)
    rendered to SQL; SQL text stays as written. A malformed predicate is a ModelError."""
    rendered: dict[str, Any] = {}
    for name, spec in policies.items():
        if isinstance(spec, Mapping):
            spec = {
                key: render_predicate(schema, predicate_from_plain(value, f"policies.{name}.{key}"))
                if key in ("using", "withCheck") and isinstance(value, Mapping)
                else value
                for key, value in spec.items()
            }
        rendered[name] = spec
    return rendered


def _predicate(schema: str, predicate: Predicate) -> sql.Composable:
    return predicate.fold(_PredicateSql(schema))


class _PredicateSql(PredicateVisitor[sql.Composable]):
    def __init__(self, schema: str) -> None:
        self._schema = schema

    def always(self) -> sql.Composable:
        return sql.SQL("true")

    def not_anonymous(self) -> sql.Composable:
        return sql.SQL("((select auth.jwt()) ->> 'is_anonymous')::boolean is not true")

    def owned_by(self, predicate: OwnedByCurrentUser) -> sql.Composable:
        return _reached(
            self._schema,
            predicate.hops,
            predicate.owner_column,
            lambda column: sql.SQL("{} = {}").format(column, CURRENT_USER_ID),
        )

    def in_group(self, predicate: InGroup) -> sql.Composable:
        # The helper runs once per statement (an initPlan), like `(select auth.uid())`.
        helper = sql.Identifier(predicate.helper_schema, predicate.helper)

        def in_groups(column: sql.Composable) -> sql.Composable:
            return sql.SQL("{} = any (array(select {}()))").format(column, helper)

        if not predicate.hops:
            return in_groups(sql.Identifier(predicate.column))
        # The last hop points at the group table: its link column already holds the group's key.
        return _reached(self._schema, predicate.hops[:-1], predicate.hops[-1].column, in_groups)

    def all_of(self, parts: list[sql.Composable]) -> sql.Composable:
        return sql.SQL(" and ").join(sql.SQL("({})").format(part) for part in parts)

    def any_of(self, parts: list[sql.Composable]) -> sql.Composable:
        return sql.SQL(" or ").join(sql.SQL("({})").format(part) for part in parts)

    def role_in(self, predicate: RoleIn) -> sql.Composable:
        return sql.SQL("{}::text = any ({}::text[])").format(
            sql.Identifier(predicate.column), sql.Literal(list(predicate.values))
        )

    def not_current_user(self, predicate: NotCurrentUser) -> sql.Composable:
        return sql.SQL("{} <> {}").format(sql.Identifier(predicate.column), CURRENT_USER_ID)

    def not_group_owner(self, predicate: NotGroupOwner) -> sql.Composable:
        # Uncorrelated, so once per statement (an initPlan): the (group, owner) pairs of the groups the
        # current user administers (see NotGroupOwner).
        return sql.SQL(
            "({}, {}) <> all (array(select (g.{}, g.{}) from {} g where g.{} = any (array(select {}()))))"
        ).format(
            sql.Identifier(predicate.column),
            sql.Identifier(predicate.user_column),
            sql.Identifier(predicate.key),
            sql.Identifier(predicate.owner_column),
            table_ref(self._schema, predicate.group),
            sql.Identifier(predicate.key),
            sql.Identifier(predicate.helper_schema, predicate.helper),
        )


def _reached(
    schema: str, hops: Sequence[Hop], column: str, test: Callable[[sql.Composable], sql.Composable]
) -> sql.Composable:
    """`test` on `column` of the row itself (no hops), or of the table at the top of the path: the
    row's first link column must be among the keys of the top table's rows that pass it."""
    if not hops:
        return test(sql.Identifier(column))
    # `col = any(array(subquery))` lets the planner use the index on `col`; a plain
    # `col in (subquery)` can become a filter over every row of a large child table.
    if len(hops) == 1:
        (hop,) = hops
        return sql.SQL("{} = any (array(select {} from {} where {}))").format(
            sql.Identifier(hop.column),
            sql.Identifier(hop.key),
            table_ref(schema, hop.parent),
            test(sql.Identifier(column)),
        )
    # Deeper paths join up to the owner in one subquery: nested `any(array(...))` levels would each
    # get the parent's own policy again from PostgreSQL, computing the owned parents once per level.
    aliases, joined = _path_join(schema, hops, "hop")
    return sql.SQL("{} = any (array(select {}.{} from {} where {}))").format(
        sql.Identifier(hops[0].column),
        aliases[0],
        sql.Identifier(hops[0].key),
        joined,
        test(sql.SQL("{}.{}").format(aliases[-1], sql.Identifier(column))),
    )


def _path_join(schema: str, hops: Sequence[Hop], prefix: str) -> tuple[list[sql.Identifier], sql.Composable]:
    """The parents of `hops` joined up the path, aliased `<prefix>1`, `<prefix>2`, ... (the first is
    the row's own parent, the last the top of the path), and those aliases."""
    aliases = [sql.Identifier(f"{prefix}{level}") for level in range(1, len(hops) + 1)]
    joins = [sql.SQL("{} {}").format(table_ref(schema, hops[0].parent), aliases[0])]
    for level in range(1, len(hops)):
        hop = hops[level]
        joins.append(
            sql.SQL("join {} {} on {}.{} = {}.{}").format(
                table_ref(schema, hop.parent),
                aliases[level],
                aliases[level],
                sql.Identifier(hop.key),
                aliases[level - 1],
                sql.Identifier(hop.column),
            )
        )
    return aliases, sql.SQL(" ").join(joins)


def policy_from_rule(schema: str, rule: PolicyRule) -> PolicySpec:
    return PolicySpec(
        name=rule.name,
        command=rule.command,
        roles=tuple(sorted(rule.roles)),
        permissive=rule.permissive,
        using=None if rule.using is None else render_predicate(schema, rule.using),
        with_check=None if rule.with_check is None else render_predicate(schema, rule.with_check),
    )


def create_policy(schema: str, table: str, policy: PolicySpec) -> sql.Composed:
    parts = [
        sql.SQL("create policy {} on {} as {} for {} to {}").format(
            sql.Identifier(policy.name),
            table_ref(schema, table),
            sql.SQL("permissive" if policy.permissive else "restrictive"),
            sql.SQL(policy.command.lower()),
            sql.SQL(", ").join(_role(r) for r in policy.roles),
        )
    ]
    if policy.using is not None:
        parts.append(sql.SQL("using ({})").format(sql.SQL(policy.using)))
    if policy.with_check is not None:
        parts.append(sql.SQL("with check ({})").format(sql.SQL(policy.with_check)))
    return sql.SQL("\n  ").join(parts)


def create_scratch_copy(schema: str, table: str, scratch: str) -> sql.Composed:
    """A temporary, empty copy of a table's columns: lets PostgreSQL parse policies without locking the table."""
    return sql.SQL("create temporary table {} (like {}) on commit drop").format(
        sql.Identifier(scratch), table_ref(schema, table)
    )


# Types a column the stack adds may have (an owner copy references auth.users (id); a group's copy
# takes its key's type).
ADDABLE_COLUMN_TYPES = GROUP_KEY_TYPES


def add_column_if_missing(schema: str | None, table: str, column: str, kind: str) -> sql.Composed:
    """For checking policies that name a column the stack is about to add (schema None: a scratch copy)."""
    if kind not in ADDABLE_COLUMN_TYPES:
        raise ValueError(f"unsupported type {kind!r} for an added column (known: {', '.join(ADDABLE_COLUMN_TYPES)})")
    target = sql.Identifier("pg_temp", table) if schema is None else table_ref(schema, table)
    return sql.SQL("alter table {} add column if not exists {} {}").format(
        target, sql.Identifier(column), sql.SQL(kind)
    )


def explain_filter_on_scratch(scratch: str, alias: str, expression: str) -> sql.Composed:
    """The plan of a query filtered by a policy expression, on a scratch copy named as the table it copies."""
    return sql.SQL("explain (format json, costs off) select from pg_temp.{} as {} where ({})").format(
        sql.Identifier(scratch), sql.Identifier(alias), sql.SQL(expression)
    )


def create_policy_on_scratch(scratch: str, policy: PolicySpec) -> sql.Composed:
    return create_policy("pg_temp", scratch, policy)


# Comments on the policies and triggers supabase-access creates: never taken for the user's own
# (a baseline), and never changed or dropped by another stack.
STACK_MARKER_PREFIX = "supabase-access: created by stack "


def stack_marker(stack: str) -> str:
    return f"{STACK_MARKER_PREFIX}{stack or '(unknown)'}"


def mark_policy(schema: str, table: str, name: str, marker: str) -> sql.Composed:
    return sql.SQL("comment on policy {} on {} is {}").format(
        sql.Identifier(name), table_ref(schema, table), sql.Literal(marker)
    )


def drop_policy(schema: str, table: str, name: str) -> sql.Composed:
    return sql.SQL("drop policy {} on {}").format(sql.Identifier(name), table_ref(schema, table))


def _role(role: str) -> sql.Composable:
    return sql.SQL("public") if role == "public" else sql.Identifier(role)


def set_row_level_security(schema: str, table: str, *, enabled: bool) -> sql.Composed:
    return sql.SQL("alter table {} {} row level security").format(
        table_ref(schema, table), sql.SQL("enable" if enabled else "disable")
    )


def set_force_row_level_security(schema: str, table: str, *, force: bool) -> sql.Composed:
    return sql.SQL("alter table {} {} force row level security").format(
        table_ref(schema, table), sql.SQL("" if force else "no")
    )


def revoke_all(role: str, schema: str, tables: Iterable[str]) -> sql.Composed:
    return sql.SQL("revoke all on table {} from {}").format(
        sql.SQL(", ").join(table_ref(schema, t) for t in tables), _role(role)
    )


# The order privileges are written in (GRANT's documentation order); which ones exist is the
# server's to say (aclexplode), so one it knows beyond these comes after them, by name.
PRIVILEGE_ORDER = (
    "SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "MAINTAIN",
    "USAGE", "EXECUTE", "CREATE",
)  # fmt: skip


def ordered_privileges(privileges: Iterable[str]) -> tuple[str, ...]:
    known = {p: i for i, p in enumerate(PRIVILEGE_ORDER)}
    return tuple(sorted(set(privileges), key=lambda p: (known.get(p, len(known)), p)))


def privilege_list(privileges: Sequence[str]) -> sql.Composed:
    """Privilege keywords as SQL. They come from the catalog (aclexplode) or the model, never from
    free text; one that is not a bare keyword is refused rather than rendered."""
    for privilege in privileges:
        if not re.fullmatch(r"[A-Z]+", privilege):
            raise ValueError(f"not a privilege keyword: {privilege!r}")
    return sql.SQL(", ").join(sql.SQL(p.lower()) for p in privileges)


def revoke(roles: Sequence[str], schema: str, table: str, privileges: Sequence[str]) -> sql.Composed:
    return sql.SQL("revoke {} on table {} from {}").format(
        privilege_list(privileges),
        table_ref(schema, table),
        sql.SQL(", ").join(_role(r) for r in roles),
    )


def revoke_columns(role: str, schema: str, table: str, privilege: str, columns: Sequence[str]) -> sql.Composed:
    """Take a privilege on some columns (a column-level grant; a table-wide one is revoke's)."""
    return sql.SQL("revoke {} ({}) on table {} from {}").format(
        privilege_list([privilege]),
        sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        table_ref(schema, table),
        _role(role),
    )


def grant(role: str, schema: str, tables: Iterable[str], privileges: Sequence[str]) -> sql.Composed:
    return sql.SQL("grant {} on table {} to {}").format(
        privilege_list(privileges),
        sql.SQL(", ").join(table_ref(schema, t) for t in tables),
        _role(role),
    )


def drop_constraint(schema: str, table: str, constraint: str, *, if_exists: bool = False) -> sql.Composed:
    return sql.SQL("alter table {} drop constraint {}{}").format(
        table_ref(schema, table), sql.SQL("if exists " if if_exists else ""), sql.Identifier(constraint)
    )


def add_constraint(schema: str, table: str, constraint: str, definition: str, *, validate: bool) -> sql.Composed:
    # `definition` is what pg_get_constraintdef() returned for this constraint.
    return sql.SQL("alter table {} add constraint {} {}{}").format(
        table_ref(schema, table),
        sql.Identifier(constraint),
        sql.SQL(definition),
        sql.SQL("" if validate else " not valid"),
    )


# ON DELETE actions a kept foreign key may declare, as PostgreSQL spells them.
ON_DELETE_ACTIONS = ("cascade", "restrict", "no action", "set null", "set default")


def foreign_key_definition(
    columns: Sequence[str], ref_schema: str, ref_table: str, ref_columns: Sequence[str], on_delete: str
) -> str:
    """`FOREIGN KEY (...) REFERENCES ...`, as pg_get_constraintdef() gives it (for add_constraint)."""
    if on_delete not in ON_DELETE_ACTIONS:
        raise ValueError(f"unknown ON DELETE action {on_delete!r}")
    return (
        sql.SQL("FOREIGN KEY ({}) REFERENCES {}({}) ON DELETE {}")
        .format(
            sql.SQL(", ").join(sql.Identifier(c) for c in columns),
            table_ref(ref_schema, ref_table),
            sql.SQL(", ").join(sql.Identifier(c) for c in ref_columns),
            sql.SQL(on_delete.upper()),
        )
        .as_string()
    )


def validate_constraint(schema: str, table: str, constraint: str) -> sql.Composed:
    return sql.SQL("alter table {} validate constraint {}").format(table_ref(schema, table), sql.Identifier(constraint))


def count_foreign_key_violations(
    schema: str, table: str, columns: Sequence[str], ref_schema: str, ref_table: str, ref_columns: Sequence[str]
) -> sql.Composed:
    """Rows of `table` whose key has no match in the referenced table (NULL keys never violate)."""
    join = sql.SQL(" and ").join(
        sql.SQL("r.{} = t.{}").format(sql.Identifier(rc), sql.Identifier(c))
        for c, rc in zip(columns, ref_columns, strict=True)
    )
    not_null = sql.SQL(" and ").join(sql.SQL("t.{} is not null").format(sql.Identifier(c)) for c in columns)
    return sql.SQL("select count(*) from {} t where {} and not exists (select 1 from {} r where {})").format(
        table_ref(schema, table), not_null, table_ref(ref_schema, ref_table), join
    )


def drop_all_policies_block(schema: str, table: str) -> sql.Composed:
    """A DO block that drops every policy of a table, for the SQL-Editor scripts."""
    return sql.SQL(
        "do $$ declare p record; begin for p in select policyname from pg_policies "
        "where schemaname = {schema} and tablename = {table} loop "
        "execute format('drop policy %I on %I.%I', p.policyname, {schema}, {table}); end loop; end $$;"
    ).format(schema=sql.Literal(schema), table=sql.Literal(table))


def plan_policies(plan: AccessPlan) -> dict[str, tuple[PolicySpec, ...]]:
    """The plan's policies per table, as PostgreSQL will store them."""
    return {access.table: tuple(policy_from_rule(plan.schema, rule) for rule in access.rules) for access in plan.tables}


def plan_table_statements(plan: AccessPlan) -> list[sql.Composed]:
    """Per table of the plan: RLS on, its policies, each role's grants exactly (for tests and benchmarks
    that apply a plan in one transaction; a stack applies the same through its resources)."""
    statements: list[sql.Composed] = []
    for table, specs in plan_policies(plan).items():
        statements.append(set_row_level_security(plan.schema, table, enabled=True))
        statements.extend(create_policy(plan.schema, table, spec) for spec in specs)
        for role, privileges in plan.grants_on(table).items():
            statements.append(revoke_all(role, plan.schema, [table]))
            if privileges:
                statements.append(grant(role, plan.schema, [table], privileges))
    return statements


def render_guide_scripts(plan: AccessPlan) -> tuple[str, str]:
    """The seed guide's two SQL-Editor scripts, rendered from a plan (the open profile)."""
    policies = plan_policies(plan)
    lines = [
        "-- Generated from the open profile by scripts/render-guide-sql; do not edit by hand.",
        "-- Lets every visitor, anonymous or signed in, use the app's tables.",
        "begin;",
    ]
    for table, specs in policies.items():
        lines.append(f"\n-- {table}")
        lines.append(set_row_level_security(plan.schema, table, enabled=True).as_string() + ";")
        lines.append(drop_all_policies_block(plan.schema, table).as_string())
        for spec in specs:
            lines.append(create_policy(plan.schema, table, spec).as_string() + ";")
    for role, privileges in plan.grants.items():
        tables = list(policies)
        lines.append("")
        lines.append(revoke_all(role, plan.schema, tables).as_string() + ";")
        if privileges:
            lines.append(grant(role, plan.schema, tables, privileges).as_string() + ";")
    lines.append("commit;")
    constraint_lines = [
        "-- Generated from the open profile by scripts/render-guide-sql; do not edit by hand.",
        "-- Lets clients use user ids that do not exist in auth.users.",
    ]
    for table, constraint in plan.removed_constraints:
        constraint_lines.append(
            sql.SQL("alter table {} drop constraint if exists {};")
            .format(table_ref(plan.schema, table), sql.Identifier(constraint))
            .as_string()
        )
    return "\n".join(lines) + "\n", "\n".join(constraint_lines) + "\n"


# --- Production hardening: a private schema, write quotas, retention ---------------------------

# Comments that mark what the provider created, so delete drops only that (even after state loss).
PRIVATE_SCHEMA_MARKER = "supabase-access: private helpers (write quotas, retention); not exposed to the API"
# The index the quota once built (before its usage table): an update or delete drops it.
QUOTA_INDEX_MARKER = "supabase-access: index for a write quota"
# Functions get EXECUTE for PUBLIC by default; the API roles must not call ours.
_NOT_FOR_API = sql.SQL("public, {}, {}").format(sql.Identifier("anon"), sql.Identifier("authenticated"))


def create_private_schema(schema: str) -> sql.Composed:
    return sql.SQL("create schema if not exists {}").format(sql.Identifier(schema))


def mark_private_schema(schema: str) -> sql.Composed:
    return sql.SQL("comment on schema {} is {}").format(sql.Identifier(schema), sql.Literal(PRIVATE_SCHEMA_MARKER))


def revoke_private_schema(schema: str) -> sql.Composed:
    return sql.SQL("revoke all on schema {} from {}").format(sql.Identifier(schema), _NOT_FOR_API)


def drop_private_schema(schema: str) -> sql.Composed:
    # RESTRICT: it fails while anything (ours or not) is still in the schema.
    return sql.SQL("drop schema if exists {} restrict").format(sql.Identifier(schema))


# What the provider must still know when a run dies between its change and the engine's record
# of it (say the definition of a constraint it dropped): one row per object, in the private schema.
LEDGER_TABLE = "ledger"


def create_ledger(private_schema: str) -> sql.Composed:
    return sql.SQL(
        "create table if not exists {} (kind text not null, object text not null, detail jsonb not null, "
        "recorded_at timestamptz not null default now(), primary key (kind, object))"
    ).format(sql.Identifier(private_schema, LEDGER_TABLE))


def ledger_record(private_schema: str, *, replace: bool = False) -> sql.Composed:
    """Parameters: kind, object, detail (json). The first record of an object stands, unless `replace`."""
    return sql.SQL("insert into {} (kind, object, detail) values (%s, %s, %s) on conflict (kind, object) {}").format(
        sql.Identifier(private_schema, LEDGER_TABLE),
        sql.SQL("do update set detail = excluded.detail, recorded_at = now()" if replace else "do nothing"),
    )


def ledger_read(private_schema: str) -> sql.Composed:
    return sql.SQL("select detail from {} where kind = %s and object = %s").format(
        sql.Identifier(private_schema, LEDGER_TABLE)
    )


def ledger_read_many(private_schema: str) -> sql.Composed:
    """Parameters: kind, objects (text[]). Rows: (object, detail)."""
    return sql.SQL("select object, detail from {} where kind = %s and object = any(%s)").format(
        sql.Identifier(private_schema, LEDGER_TABLE)
    )


def ledger_forget(private_schema: str) -> sql.Composed:
    return sql.SQL("delete from {} where kind = %s and object = %s").format(
        sql.Identifier(private_schema, LEDGER_TABLE)
    )


def ledger_is_empty(private_schema: str) -> sql.Composed:
    return sql.SQL("select not exists (select from {})").format(sql.Identifier(private_schema, LEDGER_TABLE))


def revoke_function_from_api(schema: str, function: str, arg_types: Sequence[str] = ()) -> sql.Composed:
    return sql.SQL("revoke all on function {}({}) from {}").format(
        sql.Identifier(schema, function), sql.SQL(", ").join(sql.SQL(t) for t in arg_types), _NOT_FOR_API
    )


def drop_function(schema: str, function: str, arg_types: Sequence[str] = ()) -> sql.Composed:
    return sql.SQL("drop function if exists {}({})").format(
        sql.Identifier(schema, function), sql.SQL(", ").join(sql.SQL(t) for t in arg_types)
    )


def write_quota_function_body(schema: str, table: str, private_schema: str, usage_table: str) -> str:
    """The PL/pgSQL body of one table's write-quota trigger function (what `pg_proc.prosrc` holds).

    The limit, the window in seconds and the window's name come from the trigger's arguments,
    so a changed limit is one `create trigger` and `pg_trigger.tgargs` shows the live values.
    Each user has one row in `usage_table`: a fixed window that starts at their first insert
    (and the next one at their first insert after it ended), and the inserts made in it.

    Most inserts fall in a window already open: one plain `update` counts them (cheaper than
    `insert ... on conflict`, which probes the key, locks the row and then updates it). Only a
    user's first insert ever and the first one after their window ended take the upsert.
    """
    return (
        sql.SQL(
            """
declare
  _quota_user uuid := auth.uid();
  _quota_window interval;
  _quota_window_start timestamptz;
  _quota_inserts integer;
  _quota_retry_at timestamptz;
begin
  -- Requests without a user are RLS's business; the trusted server role is never limited.
  if _quota_user is null or current_setting('role', true) = 'service_role' then
    return new;
  end if;
  _quota_window := make_interval(secs => tg_argv[1]::integer);
  -- The row lock makes one user's concurrent inserts count one after another.
  update {usage} as u set inserts = u.inserts + 1
  where u.user_id = _quota_user and u.window_start > now() - _quota_window
  returning u.window_start, u.inserts into _quota_window_start, _quota_inserts;
  if not found then
    -- First insert ever, or the window ended: a new window (a concurrent first insert is a conflict).
    insert into {usage} as u (user_id, window_start, inserts) values (_quota_user, now(), 1)
    on conflict (user_id) do update set
      window_start = case when u.window_start <= now() - _quota_window then now() else u.window_start end,
      inserts = case when u.window_start <= now() - _quota_window then 1 else u.inserts + 1 end
    returning u.window_start, u.inserts into _quota_window_start, _quota_inserts;
  end if;
  -- The exception rolls the increment back with the insert: a refused row does not count.
  if _quota_inserts > tg_argv[0]::integer then
    _quota_retry_at := _quota_window_start + _quota_window;
    raise exception using
      errcode = {sqlstate},
      message = format('write quota exceeded: at most %s new rows in %s per user per %s',
                       tg_argv[0], {table_name}, tg_argv[2]),
      detail = format('The window started at the requesting user''s first insert in it, at %s.',
                      to_char(_quota_window_start at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')),
      hint = format('Try again after %s (in %s seconds).',
                    to_char(_quota_retry_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                    greatest(1, ceil(extract(epoch from _quota_retry_at - clock_timestamp())))::bigint);
  end if;
  return new;
end
"""
        )
        .format(
            usage=sql.Identifier(private_schema, usage_table),
            sqlstate=sql.Literal(QUOTA_SQLSTATE),
            table_name=sql.Literal(f"{schema}.{table}"),
        )
        .as_string()
    )


def create_write_quota_function(private_schema: str, function: str, body: str) -> sql.Composed:
    """SECURITY DEFINER so it writes the usage table no API role may touch; a fixed, empty search_path."""
    return sql.SQL(
        "create or replace function {}() returns trigger\n"
        "language plpgsql security definer\n"
        "set search_path = ''\n"
        "as {}"
    ).format(sql.Identifier(private_schema, function), _dollar_quoted(body, "quota"))


# (column, type as format_type() shows it) of a quota's usage table.
QUOTA_USAGE_COLUMNS = (("user_id", "uuid"), ("window_start", "timestamp with time zone"), ("inserts", "integer"))
# Every insert updates the user's row: free room on its page lets the update be HOT (no index write).
QUOTA_USAGE_FILLFACTOR = 50


def create_quota_usage_table(private_schema: str, usage_table: str) -> sql.Composed:
    """One row per user who ever inserted into the quota's table (it only grows; a row is a few dozen bytes).

    UNLOGGED: the counts write no WAL (no full-page image after each checkpoint either), and a
    crash empties the table, which restarts every user's window: a rate limit, not a ledger.
    """
    return sql.SQL(
        "create unlogged table if not exists {} (user_id uuid primary key, window_start timestamptz not null, "
        "inserts integer not null) with (fillfactor = {})"
    ).format(sql.Identifier(private_schema, usage_table), sql.Literal(QUOTA_USAGE_FILLFACTOR))


def set_unlogged(schema: str, table: str) -> sql.Composed:
    """A usage table made by an earlier version (logged): rewritten as UNLOGGED, its rows kept."""
    return sql.SQL("alter table {} set unlogged").format(sql.Identifier(schema, table))


def revoke_table_from_api(schema: str, table: str) -> sql.Composed:
    return sql.SQL("revoke all on table {} from {}").format(sql.Identifier(schema, table), _NOT_FOR_API)


def drop_table(schema: str, table: str) -> sql.Composed:
    return sql.SQL("drop table if exists {}").format(sql.Identifier(schema, table))


def _dollar_quoted(body: str, tag: str) -> sql.Composable:
    # Identifiers are validated ([a-z0-9_]) and literals are quoted, so the tag cannot occur inside.
    delimiter = f"${tag}$"
    if delimiter in body:
        raise ValueError(f"function body contains {delimiter}")
    return sql.SQL(delimiter + body + delimiter)


def create_write_quota_trigger(
    schema: str,
    table: str,
    trigger: str,
    private_schema: str,
    function: str,
    *,
    limit: int,
    window_seconds: int,
    window_label: str,
) -> sql.Composed:
    return sql.SQL("create trigger {} before insert on {} for each row execute function {}({}, {}, {})").format(
        sql.Identifier(trigger),
        table_ref(schema, table),
        sql.Identifier(private_schema, function),
        sql.Literal(str(limit)),
        sql.Literal(str(window_seconds)),
        sql.Literal(window_label),
    )


def mark_trigger(schema: str, table: str, trigger: str, marker: str) -> sql.Composed:
    return sql.SQL("comment on trigger {} on {} is {}").format(
        sql.Identifier(trigger), table_ref(schema, table), sql.Literal(marker)
    )


def drop_trigger(schema: str, table: str, trigger: str) -> sql.Composed:
    return sql.SQL("drop trigger if exists {} on {}").format(sql.Identifier(trigger), table_ref(schema, table))


def drop_index(schema: str, index: str, *, concurrently: bool = True) -> sql.Composed:
    return sql.SQL("drop index {}if exists {}").format(
        sql.SQL("concurrently " if concurrently else ""), sql.Identifier(schema, index)
    )


PURGE_ARG_TYPES = ("integer", "integer")


def purge_function_body(
    function: str,
    schema: str,
    owned_tables: Sequence[tuple[str, str]],
    sessions_table: str,
    sessions_timestamp_column: str,
) -> str:
    """The PL/pgSQL body of `purge_expired(anonymous_users_days, sessions_days)`.

    Rows of old anonymous users in the owned (root) tables are deleted before the users, so the
    purge works with or without a cascading FK to auth.users; their child rows go through the
    app's own cascades. Only `is_anonymous is true` users are touched. Parameters are qualified
    with the function's name, so a column of the same name can never be taken for one.
    """
    older_than_anonymous = sql.SQL("now() - make_interval(days => {}.anonymous_users_days)").format(
        sql.Identifier(function)
    )
    anonymous_parts: list[sql.Composable] = [
        sql.SQL(
            "    delete from {} t using auth.users u\n"
            "     where t.{} = u.id and u.is_anonymous is true and u.created_at < {};\n"
            "    get diagnostics _purge_rows = row_count;\n"
            "    kind := {}; removed := _purge_rows; return next;\n"
        ).format(
            table_ref(schema, table),
            sql.Identifier(owner_column),
            older_than_anonymous,
            sql.Literal(f"{table}_of_anonymous_users"),
        )
        for table, owner_column in owned_tables
    ]
    return (
        sql.SQL(
            """
#variable_conflict use_column
declare
  _purge_rows bigint;
begin
  if {fn}.anonymous_users_days is not null then
    if {fn}.anonymous_users_days < 1 then
      raise exception 'anonymous_users_days must be at least 1, got %', {fn}.anonymous_users_days;
    end if;
{owned}    delete from auth.users u where u.is_anonymous is true and u.created_at < {older_than_anonymous};
    get diagnostics _purge_rows = row_count;
    kind := 'anonymous_users'; removed := _purge_rows; return next;
  end if;
  if {fn}.sessions_days is not null then
    if {fn}.sessions_days < 1 then
      raise exception 'sessions_days must be at least 1, got %', {fn}.sessions_days;
    end if;
    delete from {sessions} t where t.{sessions_ts} < now() - make_interval(days => {fn}.sessions_days);
    get diagnostics _purge_rows = row_count;
    kind := {expired_kind}; removed := _purge_rows; return next;
  end if;
end
"""
        )
        .format(
            fn=sql.Identifier(function),
            owned=sql.SQL("").join(anonymous_parts),
            older_than_anonymous=older_than_anonymous,
            sessions=table_ref(schema, sessions_table),
            sessions_ts=sql.Identifier(sessions_timestamp_column),
            expired_kind=sql.Literal(f"expired_{sessions_table}"),
        )
        .as_string()
    )


def create_purge_function(
    private_schema: str, function: str, body: str, *, anonymous_users_days: int | None, sessions_days: int | None
) -> sql.Composed:
    """The defaults are the stack's settings; NULL skips that purge.

    SECURITY INVOKER: it runs with the rights of whoever calls it (pg_cron runs it as the role
    that scheduled it); row_security off so a FORCE RLS table makes it fail instead of silently
    deleting nothing.
    """
    return sql.SQL(
        "create or replace function {}(\n"
        "  anonymous_users_days integer default {},\n"
        "  sessions_days integer default {}\n"
        ") returns table (kind text, removed bigint)\n"
        "language plpgsql\n"
        "set search_path = ''\n"
        "set row_security = off\n"
        "as {}"
    ).format(
        sql.Identifier(private_schema, function),
        sql.Literal(anonymous_users_days),
        sql.Literal(sessions_days),
        _dollar_quoted(body, "purge"),
    )


def call_purge(private_schema: str, function: str) -> sql.Composed:
    """What pg_cron runs, and what to run by hand where there is no pg_cron."""
    return sql.SQL("select kind, removed from {}()").format(sql.Identifier(private_schema, function))


def cron_schedule(job_name: str, schedule: str, command: str) -> sql.Composed:
    # cron.schedule(name, ...) replaces a job of the same name, so this is also the update.
    return sql.SQL("select cron.schedule({}, {}, {})").format(
        sql.Literal(job_name), sql.Literal(schedule), sql.Literal(command)
    )


def cron_unschedule(job_name: str) -> sql.Composed:
    # Through cron.job, so a job that is already gone is not an error.
    return sql.SQL("select cron.unschedule(jobid) from cron.job where jobname = {}").format(sql.Literal(job_name))


# --- Indexes for RLS policy lookups -------------------------------------------------------------

# Marks the indexes PolicyIndex built, so delete drops only those (even after state loss).
POLICY_INDEX_MARKER = "supabase-access: index for RLS policy lookups"


def create_policy_index(schema: str, table: str, index: str, column: str, include: str) -> sql.Composed:
    # CONCURRENTLY: building it on a large table must not block the app's writes.
    return sql.SQL("create index concurrently if not exists {} on {} ({}) include ({})").format(
        sql.Identifier(index), table_ref(schema, table), sql.Identifier(column), sql.Identifier(include)
    )


def mark_policy_index(schema: str, index: str) -> sql.Composed:
    return sql.SQL("comment on index {} is {}").format(sql.Identifier(schema, index), sql.Literal(POLICY_INDEX_MARKER))


def rename_index(schema: str, index: str, new_name: str) -> sql.Composed:
    return sql.SQL("alter index {} rename to {}").format(sql.Identifier(schema, index), sql.Identifier(new_name))


def drop_policy_index(schema: str, index: str) -> sql.Composed:
    return sql.SQL("drop index concurrently if exists {}").format(sql.Identifier(schema, index))


# Default privileges (ALTER DEFAULT PRIVILEGES): pg_default_acl's object type -> its keyword.
DEFAULT_ACL_OBJECTS: dict[str, str] = {"r": "tables", "S": "sequences", "f": "functions"}


def alter_default_privileges(
    owner: str, schema: str, object_type: str, role: str, privileges: Sequence[str], *, grant: bool
) -> sql.Composed:
    keyword = DEFAULT_ACL_OBJECTS[object_type]
    what = privilege_list(privileges) if privileges else sql.SQL("all")
    return sql.SQL("alter default privileges for role {} in schema {} {} {} on {} {} {}").format(
        sql.Identifier(owner),
        sql.Identifier(schema),
        sql.SQL("grant" if grant else "revoke"),
        what,
        sql.SQL(keyword),
        sql.SQL("to" if grant else "from"),
        _role(role),
    )


# Born closed: an event trigger switching RLS on for every table created in the exposed schemas.
RLS_EVENT_TRIGGER = "supabase_access_rls_on_new_tables"
RLS_EVENT_FUNCTION = "enable_rls_on_new_tables"


def create_rls_event_function(private_schema: str, schemas: Sequence[str]) -> sql.Composed:
    # Runs as the role issuing the CREATE TABLE, which owns the new table and may alter it.
    return sql.SQL(
        "create or replace function {}() returns event_trigger language plpgsql set search_path = '' as $fn$\n"
        "declare created record;\n"
        "begin\n"
        "  for created in select * from pg_event_trigger_ddl_commands()\n"
        "    where object_type in ('table', 'table column') and schema_name = any ({}::text[]) loop\n"
        "    if created.object_type = 'table' then\n"
        "      execute format('alter table %s enable row level security', created.object_identity);\n"
        "    end if;\n"
        "  end loop;\n"
        "end\n"
        "$fn$"
    ).format(sql.Identifier(private_schema, RLS_EVENT_FUNCTION), sql.Literal(list(schemas)))


def create_rls_event_trigger(private_schema: str) -> sql.Composed:
    return sql.SQL(
        "create event trigger {} on ddl_command_end when tag in ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO') "
        "execute function {}()"
    ).format(sql.Identifier(RLS_EVENT_TRIGGER), sql.Identifier(private_schema, RLS_EVENT_FUNCTION))


def drop_rls_event_trigger(private_schema: str) -> tuple[sql.Composed, sql.Composed]:
    return (
        sql.SQL("drop event trigger if exists {}").format(sql.Identifier(RLS_EVENT_TRIGGER)),
        sql.SQL("drop function if exists {}()").format(sql.Identifier(private_schema, RLS_EVENT_FUNCTION)),
    )


# --- Group helpers: which groups the current user belongs to -----------------------------------

# Marks what the provider created for group policies, so delete drops only that.
HELPER_SCHEMA_MARKER = "supabase-access: functions the RLS policies of group rows call; not exposed to the API"
GROUP_FUNCTION_MARKER = "supabase-access: the groups of the current user, for RLS policies"


def group_function_body(schema: str, lookup: GroupLookup, *, admins: bool, as_text: bool = False) -> str:
    """The groups the current user belongs to (admins: administers), owned ones included; as_text: the
    groups they belong to as one text[] (what member buckets compare a Storage folder with)."""
    membership = lookup.membership
    role_test: sql.Composable = sql.SQL("")
    if admins:
        if membership.role is None or not membership.admins:
            role_test = sql.SQL(" and false")  # no admin roles: the owner alone administers
        else:
            role_test = sql.SQL(" and m.{}::text = any ({}::text[])").format(
                sql.Identifier(membership.role), sql.Literal(list(membership.admins))
            )
    template = (
        "\nbegin\n"
        "  return {open}\n"
        "  select m.{column}{cast} from {membership} m where m.{user} = (select auth.uid()){role_test}\n"
        "  union\n"
        "  select g.{key}{cast} from {group} g where g.{owner} = (select auth.uid()){close};\n"
        "end\n"
    )
    return (
        sql.SQL(template)
        .format(
            open=sql.SQL("array(" if as_text else "query"),
            close=sql.SQL(")" if as_text else ""),
            cast=sql.SQL("::text" if as_text else ""),
            column=sql.Identifier(membership.column),
            membership=table_ref(schema, lookup.membership_table),
            user=sql.Identifier(membership.user),
            role_test=role_test,
            key=sql.Identifier(membership.key),
            group=table_ref(schema, membership.group),
            owner=sql.Identifier(lookup.group_owner_column),
        )
        .as_string()
    )


def create_group_function(schema: str, lookup: GroupLookup, *, admins: bool, as_text: bool = False) -> sql.Composed:
    """SECURITY DEFINER: it reads the membership table past its own policies (which call it), as
    the tables' owner; row_security off makes it fail loudly where RLS would still filter that owner
    (FORCE ROW LEVEL SECURITY) instead of recursing. STABLE and called as `array(select f())` (as_text:
    `(select f())`), it runs once per statement. PL/pgSQL, not SQL: PostgreSQL 15 and 17 plan a SQL
    function's query again at every statement that calls it (about 0.3 ms here, more than the rest of
    a member's request), where PL/pgSQL keeps the plan for the connection's life.

    as_text (the member groups as text[]): a policy on storage.objects reads it in an initPlan with no
    FROM, which PostgreSQL plans in a few microseconds, where `array(select g::text from f() g)` costs a
    function scan's planning at every Storage request, of any bucket (bench.storage)."""
    returns: sql.Composable
    if as_text:
        function, returns = lookup.member_ids_function, sql.SQL("text[]")
    else:
        function = lookup.admin_function if admins else lookup.member_function
        returns = sql.SQL("setof {}%type").format(
            sql.Identifier(schema, lookup.membership.group, lookup.membership.key)
        )
    return sql.SQL(
        "create or replace function {}() returns {}\n"
        "language plpgsql stable security definer\n"
        "set search_path = ''\n"
        "set row_security = off\n"
        "as {}"
    ).format(
        sql.Identifier(lookup.helper_schema, function),
        returns,
        _dollar_quoted_any(group_function_body(schema, lookup, admins=admins, as_text=as_text), "groups"),
    )


def group_function_access(lookup: GroupLookup, function: str) -> tuple[sql.Composed, ...]:
    """Signed-in users call it (through their policies) and nobody else: functions get EXECUTE for PUBLIC."""
    ref = sql.Identifier(lookup.helper_schema, function)
    return (
        sql.SQL("revoke all on function {}() from public, {}").format(ref, sql.Identifier("anon")),
        sql.SQL("grant execute on function {}() to {}").format(ref, sql.Identifier("authenticated")),
        sql.SQL("comment on function {}() is {}").format(ref, sql.Literal(GROUP_FUNCTION_MARKER)),
    )


def drop_helper_function(helper_schema: str, function: str) -> sql.Composed:
    return sql.SQL("drop function if exists {}()").format(sql.Identifier(helper_schema, function))


# --- The caller's id for Storage policies ------------------------------------------------------

CALLER_FUNCTION_MARKER = "supabase-access: auth.uid() as text, for the Storage policies of owner buckets"
# auth.uid() itself inside (Supabase's definition of the caller stays the one truth).
CALLER_FUNCTION_BODY = "\nbegin\n  return auth.uid()::text;\nend\n"


def create_caller_function(helper_schema: str, function: str) -> sql.Composed:
    """The caller's id as text, for `(select <it>())` in the policies of owner buckets. auth.uid() is a SQL
    function PostgreSQL inlines, parsing its body again, at every statement that calls it (about 15 µs of
    a single-object request's planning, which the Storage API does at every request); a PL/pgSQL function
    is not inlined and keeps its own plan for the connection's life (as the group functions do). STABLE,
    SECURITY INVOKER: it reads the request's claims as the caller, nothing else."""
    return sql.SQL(
        "create or replace function {}() returns text\nlanguage plpgsql stable\nset search_path = ''\nas {}"
    ).format(sql.Identifier(helper_schema, function), _dollar_quoted_any(CALLER_FUNCTION_BODY, "uid"))


def caller_function_access(helper_schema: str, function: str) -> tuple[sql.Composed, ...]:
    """Only owner buckets' policies call it, and those are `to authenticated`: anon and PUBLIC get nothing."""
    ref = sql.Identifier(helper_schema, function)
    return (
        sql.SQL("revoke all on function {}() from public, {}").format(ref, sql.Identifier("anon")),
        sql.SQL("grant execute on function {}() to {}").format(ref, sql.Identifier("authenticated")),
        sql.SQL("comment on function {}() is {}").format(ref, sql.Literal(CALLER_FUNCTION_MARKER)),
    )


def revoke_function_execute(helper_schema: str, function: str, grantees: Sequence[str]) -> sql.Composed:
    """EXECUTE taken back from `grantees` (`public` for PUBLIC)."""
    return sql.SQL("revoke all on function {}() from {}").format(
        sql.Identifier(helper_schema, function),
        sql.SQL(", ").join(sql.SQL("public") if g == "public" else sql.Identifier(g) for g in grantees),
    )


def create_helper_schema(helper_schema: str) -> tuple[sql.Composed, ...]:
    """The policies of authenticated users call the helpers, so that role needs USAGE (nothing else)."""
    ref = sql.Identifier(helper_schema)
    return (
        sql.SQL("create schema if not exists {}").format(ref),
        sql.SQL("comment on schema {} is {}").format(ref, sql.Literal(HELPER_SCHEMA_MARKER)),
        sql.SQL("revoke all on schema {} from public, {}").format(ref, sql.Identifier("anon")),
        sql.SQL("grant usage on schema {} to {}").format(ref, sql.Identifier("authenticated")),
    )


def _dollar_quoted_any(body: str, tag: str) -> sql.Composable:
    """`body` between dollar quotes whose tag it does not contain (role values are free text)."""
    candidate, n = tag, 0
    while f"${candidate}$" in body:
        n += 1
        candidate = f"{tag}{n}"
    return sql.SQL(f"${candidate}${body}${candidate}$")


# --- Owner copies (the model's copyOwner) -------------------------------------------------------


def _owner_up_path(schema: str, hops: Sequence[Hop], root_column: str, start: sql.Composable) -> sql.Composable:
    """`(select <owner> from <parent> join ... where <parent>.<key> = <start>)`: the owner of the row
    whose link up `hops` holds `start` (one join up the path, as the policies render it)."""
    aliases, joined = _path_join(schema, hops, "up")
    return sql.SQL("(select {}.{} from {} where {}.{} = {})").format(
        aliases[-1],
        sql.Identifier(root_column),
        joined,
        aliases[0],
        sql.Identifier(hops[0].key),
        start,
    )


def _rows_below(schema: str, hops: Sequence[Hop], level: int) -> sql.Composable:
    """A condition on the copy table's rows (alias `t`) that hang under the changed row (`new`) of the
    table `level` steps above it (0: the direct parent)."""
    link = sql.SQL("{}.{}").format(sql.Identifier("t"), sql.Identifier(hops[0].column))
    if level == 0:
        return sql.SQL("{} = new.{}").format(link, sql.Identifier(hops[0].key))
    # The rows of the table just below the changed one, then down to the copy table's parents.
    aliases = [sql.Identifier(f"down{depth}") for depth in range(1, level + 1)]
    joins = [sql.SQL("{} {}").format(table_ref(schema, hops[0].parent), aliases[0])]
    for depth in range(1, level):
        joins.append(
            sql.SQL("join {} {} on {}.{} = {}.{}").format(
                table_ref(schema, hops[depth].parent),
                aliases[depth],
                aliases[depth],
                sql.Identifier(hops[depth].key),
                aliases[depth - 1],
                sql.Identifier(hops[depth].column),
            )
        )
    return sql.SQL("{} = any (array(select {}.{} from {} where {}.{} = new.{}))").format(
        link,
        aliases[0],
        sql.Identifier(hops[0].key),
        sql.SQL(" ").join(joins),
        aliases[-1],
        sql.Identifier(hops[level].column),
        sql.Identifier(hops[level].key),
    )


def owner_copy_function_body(schema: str, names: OwnerCopyNames) -> str:
    """The copy table's BEFORE trigger: the copy is always the parent's owner, whatever the client sent."""
    owner = _owner_up_path(schema, names.hops, names.root_column, sql.SQL("new.{}").format(sql.Identifier(names.link)))
    return (
        sql.SQL("\nbegin\n  new.{} := {};\n  return new;\nend\n")
        .format(sql.Identifier(names.column), owner)
        .as_string()
    )


def owner_copy_ancestor_function_body(schema: str, names: OwnerCopyNames, watched: Watched) -> str:
    """An AFTER UPDATE trigger on a table above the copy: its rows below follow the new owner.

    The copy table's own trigger takes the value again from the parent as each row is updated,
    so the two can never disagree.
    """
    hops = names.hops
    if watched.level == len(hops) - 1:
        owner: sql.Composable = sql.SQL("new.{}").format(sql.Identifier(names.root_column))
    else:
        above = hops[watched.level + 1 :]
        owner = _owner_up_path(
            schema, above, names.root_column, sql.SQL("new.{}").format(sql.Identifier(watched.column))
        )
    return (
        sql.SQL(
            "\ndeclare\n  _owner {owner_type};\nbegin\n  _owner := {owner};\n"
            "  update {table} t set {column} = _owner\n  where {below} and t.{column} is distinct from _owner;\n"
            "  return null;\nend\n"
        )
        .format(
            owner_type=sql.SQL("{}.{}%type").format(
                table_ref(schema, hops[-1].parent), sql.Identifier(names.root_column)
            ),
            owner=owner,
            table=table_ref(schema, names.table),
            column=sql.Identifier(names.column),
            below=_rows_below(schema, hops, watched.level),
        )
        .as_string()
    )


def create_owner_copy_function(private_schema: str, function: str, body: str) -> sql.Composed:
    """SECURITY DEFINER: the owner is read from rows the requesting user may not see (the insert
    then fails its policy), and rows below a re-parented one are updated whoever moved it."""
    return sql.SQL(
        "create or replace function {}() returns trigger\n"
        "language plpgsql security definer\n"
        "set search_path = ''\n"
        "as {}"
    ).format(sql.Identifier(private_schema, function), _dollar_quoted(body, "copy"))


def add_owner_copy_column(schema: str, table: str, column: str, kind: str = OWNER_COPY_TYPE) -> sql.Composed:
    # Nullable, no default: a catalog change only (no rewrite), under a lock held for milliseconds.
    if kind not in ADDABLE_COLUMN_TYPES:
        raise ValueError(f"unsupported type {kind!r} for a copy (known: {', '.join(ADDABLE_COLUMN_TYPES)})")
    return sql.SQL("alter table {} add column {} {}").format(
        table_ref(schema, table), sql.Identifier(column), sql.SQL(kind)
    )


def drop_column(schema: str, table: str, column: str) -> sql.Composed:
    return sql.SQL("alter table {} drop column if exists {}").format(table_ref(schema, table), sql.Identifier(column))


def comment_on_column(schema: str, table: str, column: str, text: str) -> sql.Composed:
    return sql.SQL("comment on column {} is {}").format(sql.Identifier(schema, table, column), sql.Literal(text))


def comment_on_trigger(schema: str, table: str, trigger: str, text: str) -> sql.Composed:
    return sql.SQL("comment on trigger {} on {} is {}").format(
        sql.Identifier(trigger), table_ref(schema, table), sql.Literal(text)
    )


def comment_on_function(schema: str, function: str, text: str) -> sql.Composed:
    return sql.SQL("comment on function {}() is {}").format(sql.Identifier(schema, function), sql.Literal(text))


def comment_on_constraint(schema: str, table: str, constraint: str, text: str) -> sql.Composed:
    return sql.SQL("comment on constraint {} on {} is {}").format(
        sql.Identifier(constraint), table_ref(schema, table), sql.Literal(text)
    )


def comment_on_index(schema: str, index: str, text: str) -> sql.Composed:
    return sql.SQL("comment on index {} is {}").format(sql.Identifier(schema, index), sql.Literal(text))


def create_owner_copy_triggers(schema: str, private_schema: str, names: OwnerCopyNames) -> list[sql.Composed]:
    """BEFORE INSERT and BEFORE UPDATE (re-parenting, the copy touched, or not yet filled) on the
    copy table; AFTER UPDATE of the deciding column on each table above."""
    table, column, link = table_ref(schema, names.table), sql.Identifier(names.column), sql.Identifier(names.link)
    function = sql.Identifier(private_schema, names.function)
    statements = [
        sql.SQL("create trigger {} before insert on {} for each row execute function {}()").format(
            sql.Identifier(names.insert_trigger), table, function
        ),
        sql.SQL(
            "create trigger {} before update on {} for each row when (new.{} is distinct from old.{} "
            "or new.{} is distinct from old.{} or new.{} is null) execute function {}()"
        ).format(sql.Identifier(names.update_trigger), table, link, link, column, column, column, function),
    ]
    for watched in names.watched:
        watched_column = sql.Identifier(watched.column)
        statements.append(
            sql.SQL(
                "create trigger {} after update of {} on {} for each row when (new.{} is distinct from old.{}) "
                "execute function {}()"
            ).format(
                sql.Identifier(names.ancestor_trigger),
                watched_column,
                table_ref(schema, watched.table),
                watched_column,
                watched_column,
                sql.Identifier(private_schema, names.ancestor_function(watched.table)),
            )
        )
    return statements


def add_owner_copy_check(schema: str, names: OwnerCopyNames) -> sql.Composed:
    """Present wherever the row hangs under a parent. NOT VALID: new rows are checked at once, the
    existing ones by VALIDATE once filled (which does not block the app's reads and writes). A
    CHECK, not SET NOT NULL: the API then does not list the column as one a client must send."""
    return sql.SQL("alter table {} add constraint {} check ({} is not null or {} is null) not valid").format(
        table_ref(schema, names.table),
        sql.Identifier(names.check_constraint),
        sql.Identifier(names.column),
        sql.Identifier(names.link),
    )


def add_owner_copy_foreign_key(schema: str, names: OwnerCopyNames) -> sql.Composed:
    """To auth.users (id), or for a group's copy to the group's key: the copy names a real row."""
    referenced = (
        sql.SQL("{} ({})").format(table_ref(schema, names.hops[-1].parent), sql.Identifier(names.root_column))
        if names.group
        else sql.SQL("auth.users (id)")
    )
    return sql.SQL(
        "alter table {} add constraint {} foreign key ({}) references {} on delete cascade not valid"
    ).format(
        table_ref(schema, names.table), sql.Identifier(names.foreign_key), sql.Identifier(names.column), referenced
    )


def create_owner_copy_index(schema: str, table: str, index: str, column: str) -> sql.Composed:
    return sql.SQL("create index concurrently if not exists {} on {} ({})").format(
        sql.Identifier(index), table_ref(schema, table), sql.Identifier(column)
    )


def fill_owner_copy_batch(schema: str, names: OwnerCopyNames, *, every_row: bool) -> sql.Composed:
    """One batch of the fill, over a range of the table's pages (parameters: the tids `(first page,0)`
    and `(page after the last,0)`: a TID range scan reads those pages alone). Setting the copy to
    null makes the copy table's own trigger take it from the parent: one place computes it.
    `every_row` recomputes filled rows too (the path changed)."""
    column = sql.Identifier(names.column)
    unfilled = sql.SQL(" and {} is not null and {} is null").format(sql.Identifier(names.link), column)
    return sql.SQL("update {} set {} = null where ctid >= %s::tid and ctid < %s::tid{}").format(
        table_ref(schema, names.table), column, sql.SQL("") if every_row else unfilled
    )


# The widening probe's runner: made in pg_temp inside the preflight's rolled-back transaction. Each
# probe runs as an API request does (the role and `request.jwt.claims` set for the transaction) in a
# subtransaction that the sentinel error rolls back, so no probe sees another's rows, and the role
# switch ends with it. Outcome per probe: the rows it reached, `denied` (a privilege or policy said
# no: SQLSTATE 42501), `unique` (an insert past the policies that met an existing row's key) or
# `failed: <message>` (a constraint, trigger or quota stopped it).
PROBE_FUNCTION = "supabase_access_widening_probe"
_PROBE_BODY = """
declare
  probe jsonb;
  reached bigint;
  position int := 0;
begin
  for probe in select value from jsonb_array_elements(probes) loop
    begin
      perform set_config('role', probe ->> 'role', true);
      perform set_config('request.jwt.claims', probe ->> 'claims', true);
      if (probe ->> 'counts')::boolean then
        execute probe ->> 'statement' into reached;
      else
        execute probe ->> 'statement';
        get diagnostics reached = row_count;
      end if;
      raise exception using errcode = 'SAP01', message = reached::text;
    exception
      when sqlstate 'SAP01' then
        index := position; outcome := sqlerrm; return next;
      when insufficient_privilege then
        index := position; outcome := 'denied'; return next;
      when unique_violation then
        index := position; outcome := 'unique'; return next;
      when others then
        index := position; outcome := 'failed: ' || sqlerrm; return next;
    end;
    position := position + 1;
  end loop;
end
"""


def create_probe_function() -> sql.Composed:
    return sql.SQL(
        "create function pg_temp.{}(probes jsonb) returns table(index int, outcome text) language plpgsql as {}"
    ).format(sql.Identifier(PROBE_FUNCTION), _dollar_quoted(_PROBE_BODY, "probe"))


def run_probes() -> sql.Composed:
    return sql.SQL("select index, outcome from pg_temp.{}(%s::jsonb)").format(sql.Identifier(PROBE_FUNCTION))


def count_rows(schema: str, table: str, condition: sql.Composable) -> sql.Composed:
    return sql.SQL("select count(*) from {} where {}").format(table_ref(schema, table), condition)


def update_to_itself(schema: str, table: str, column: str, condition: sql.Composable) -> sql.Composed:
    return sql.SQL("update {} set {} = {} where {}").format(
        table_ref(schema, table), sql.Identifier(column), sql.Identifier(column), condition
    )


def delete_rows(schema: str, table: str, condition: sql.Composable) -> sql.Composed:
    return sql.SQL("delete from {} where {}").format(table_ref(schema, table), condition)


def revoke_all_on_sequence(roles: Sequence[str], schema: str, sequence: str) -> sql.Composed:
    return sql.SQL("revoke all on sequence {} from {}").format(
        sql.Identifier(schema, sequence), sql.SQL(", ").join(_role(r) for r in roles)
    )


def grant_on_sequence(role: str, schema: str, sequence: str, privileges: Sequence[str]) -> sql.Composed:
    return sql.SQL("grant {} on sequence {} to {}").format(
        sql.SQL(", ").join(sql.SQL(p.lower()) for p in privileges), sql.Identifier(schema, sequence), _role(role)
    )


def function_ref(schema: str, name: str, arguments: str) -> sql.Composed:
    """`schema.name(arguments)`: the arguments as pg_get_function_identity_arguments renders them
    (PostgreSQL's own quoting of each type), read from the catalog, never from input."""
    return sql.SQL("{}({})").format(sql.Identifier(schema, name), sql.SQL(arguments))


def set_function_execute(function: sql.Composed, grantees: Sequence[str], *, grant: bool) -> sql.Composed:
    return sql.SQL("{} execute on function {} {} {}").format(
        sql.SQL("grant" if grant else "revoke"),
        function,
        sql.SQL("to" if grant else "from"),
        sql.SQL(", ").join(_role(g) for g in grantees),
    )


# --- Realtime: private channels (policies on realtime.messages) and Postgres Changes (publication) ---

REALTIME_SCHEMA = "realtime"
REALTIME_MESSAGES = "messages"
# Realtime reads the topic a client joins from this function (its setting, set per join).
_TOPIC = sql.SQL("(select {}())").format(sql.Identifier(REALTIME_SCHEMA, "topic"))


def _topic_matches(rule: ChannelRule) -> sql.Composable:
    """The topic test of one rule. Exact text equality with the topics the user may join (never a
    pattern match on the id): a forged topic (a quote, a second segment, another id) equals none."""
    prefix = sql.Literal(rule.channel.prefix)
    if not rule.channel.has_id:
        return sql.SQL("{} = {}").format(_TOPIC, prefix)
    if rule.who == "user":
        return sql.SQL("{} = {} || {}::text").format(_TOPIC, prefix, CURRENT_USER_ID)
    if rule.who == "member":
        lookup = rule.group_lookup
        assert lookup is not None
        # The user's groups, once per statement (an initPlan), as the tables' group policies ask them.
        return sql.SQL("{} = any (array(select {} || g::text from {}() g))").format(
            _TOPIC, prefix, sql.Identifier(lookup.helper_schema, lookup.member_function)
        )
    # Anyone on any id: the fixed part, then at least one character.
    return sql.SQL("starts_with({}, {}) and length({}) > {}").format(
        _TOPIC, prefix, _TOPIC, sql.Literal(len(rule.channel.prefix))
    )


def channel_policy(rule: ChannelRule) -> PolicySpec:
    """The policy on realtime.messages one channel rule becomes: Broadcast and Presence messages only."""
    extensions = sql.SQL("extension in ({})").format(sql.SQL(", ").join(sql.Literal(e) for e in CHANNEL_EXTENSIONS))
    condition = sql.SQL("{} and {}").format(extensions, _topic_matches(rule)).as_string()
    return PolicySpec(
        name=rule.name,
        command=rule.command,
        roles=tuple(sorted(rule.roles)),
        using=condition if rule.command == "SELECT" else None,
        with_check=condition if rule.command == "INSERT" else None,
    )


def publication_tables(publication: str) -> sql.Composed:
    """(schema, table) of every table in the publication, a partition counted as its root (the partitioned
    table): pg_publication_tables lists a partitioned table's partitions unless the publication publishes
    via the root, and none at all while it has no partition, hence the tables added too (pg_publication_rel)."""
    return sql.SQL(
        "select distinct rn.nspname::text as schema, root.relname::text as table from ("
        "  select pc.oid from pg_catalog.pg_publication_tables p "
        "  join pg_catalog.pg_namespace pn on pn.nspname = p.schemaname "
        "  join pg_catalog.pg_class pc on pc.relnamespace = pn.oid and pc.relname = p.tablename "
        "  where p.pubname = {publication} "
        "  union select r.prrelid from pg_catalog.pg_publication_rel r "
        "  join pg_catalog.pg_publication pp on pp.oid = r.prpubid where pp.pubname = {publication}"
        ") as member (oid) "
        "join pg_catalog.pg_class root on root.oid = coalesce(pg_catalog.pg_partition_root(member.oid), member.oid) "
        "join pg_catalog.pg_namespace rn on rn.oid = root.relnamespace"
    ).format(publication=sql.Literal(publication))


def publication_members(publication: str) -> sql.Composed:
    """(schema, table) of every table the publication publishes whole: added itself (a partitioned table
    with all its partitions), or by `for all tables` / `for tables in schema`. A partition added alone
    publishes only its own rows: it makes neither itself nor its partitioned table a member here."""
    return sql.SQL(
        "select n.nspname::text as schema, c.relname::text as table from pg_catalog.pg_publication p "
        "join pg_catalog.pg_class c on c.relkind in ('r', 'p') and not c.relispartition "
        "join pg_catalog.pg_namespace n on n.oid = c.relnamespace "
        "where p.pubname = {} and (p.puballtables "
        "  or exists (select from pg_catalog.pg_publication_rel r where r.prpubid = p.oid and r.prrelid = c.oid) "
        "  or exists (select from pg_catalog.pg_publication_namespace s "
        "    where s.pnpubid = p.oid and s.pnnspid = c.relnamespace))"
    ).format(sql.Literal(publication))


def publication_add_table(publication: str, schema: str, table: str) -> sql.Composed:
    return sql.SQL("alter publication {} add table only {}").format(
        sql.Identifier(publication), table_ref(schema, table)
    )


def publication_drop_table(publication: str, schema: str, table: str) -> sql.Composed:
    return sql.SQL("alter publication {} drop table only {}").format(
        sql.Identifier(publication), table_ref(schema, table)
    )


# The trigger of a table's immutable columns (ImmutableColumns) and what a refused change fails with.
IMMUTABLE_TRIGGER = "supabase_access_immutable_columns"
IMMUTABLE_SQLSTATE = "42501"  # insufficient_privilege, as a column privilege refuses: PostgREST answers 403


def immutable_function_body() -> str:
    """The PL/pgSQL body of a table's immutable-columns trigger function: the trigger's WHEN has already
    found a change, so it only asks whose request it is. The API's (anon, authenticated, or a SECURITY
    DEFINER function they called: their JWT's role) is refused; the server's and an operator's are not."""
    return f"""
begin
  if current_user in ('anon', 'authenticated')
     or coalesce(auth.role(), '') in ('anon', 'authenticated') then
    raise exception using
      errcode = '{IMMUTABLE_SQLSTATE}',
      message = format('%s.%s: %s may not change (immutable)', tg_table_schema, tg_table_name, tg_argv[0]),
      hint = 'set on insert only; the server (service_role) may change it';
  end if;
  return new;
end
"""


def create_immutable_function(private_schema: str, function: str) -> sql.Composed:
    """SECURITY INVOKER (it reads nothing), a fixed, empty search_path."""
    return sql.SQL(
        "create or replace function {}() returns trigger\nlanguage plpgsql\nset search_path = ''\nas {}"
    ).format(sql.Identifier(private_schema, function), _dollar_quoted(immutable_function_body(), "immutable"))


def create_immutable_trigger(
    schema: str, table: str, private_schema: str, function: str, columns: Sequence[str]
) -> sql.Composed:
    """BEFORE UPDATE OF the columns, and only WHEN one of them changes: an update leaving them alone
    never calls the function."""
    changed = sql.SQL(" or ").join(
        sql.SQL("old.{0} is distinct from new.{0}").format(sql.Identifier(c)) for c in columns
    )
    return sql.SQL("create trigger {} before update of {} on {} for each row when ({}) execute function {}({})").format(
        sql.Identifier(IMMUTABLE_TRIGGER),
        sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        table_ref(schema, table),
        changed,
        sql.Identifier(private_schema, function),
        sql.Literal(", ".join(columns)),
    )


# Storage (issue 25): the bucket rows and the policies on storage.objects one bucket's kind gives.
STORAGE_SCHEMA = "storage"
BUCKET_ACCESS = ("owner-folder", "owner-id", "member", "public-read", "service-only", "open")
# What each kind's policies let the API roles do to a bucket's objects.
STORAGE_COMMANDS = ("SELECT", "INSERT", "UPDATE", "DELETE")
# The first folder of an object's path: `(storage.foldername(name))[1]` without the SQL function, which
# PostgreSQL inlines (parsing its body) at every statement and evaluates as two string_to_array per row;
# an object at the bucket's root has no folder (foldername gives NULL), hence the `/` test.
_FIRST_FOLDER = sql.SQL("split_part(name, '/', 1)")
_IN_A_FOLDER = sql.SQL("strpos(name, '/') > 0")
# No `..` segment anywhere in the path (`<uid>/../<other>/x` names another user's folder to whatever
# resolves the path later), and no empty one (`<uid>//x`).
_PLAIN_PATH = sql.SQL("not ('..' = any (string_to_array(name, '/')) or '' = any (string_to_array(name, '/')))")


def first_folder_matches(test: sql.Composable) -> sql.Composed:
    """`<first folder of name> <test>` (e.g. `= 'x'`), false for an object at the bucket's root: the rows
    `(storage.foldername(name))[1] <test>` admits."""
    return sql.SQL("{} {} and {}").format(_FIRST_FOLDER, test, _IN_A_FOLDER)


def bucket_policy_name(bucket: str, command: str) -> str:
    """`avatars: select`: the policy's name says which bucket and what for (at most 55 + 8 characters)."""
    return f"{bucket}: {command.lower()}"


def bucket_policies(
    bucket: str,
    access: str,
    group_function: str | None = None,
    *,
    public: bool = False,
    caller_function: str | None = None,
) -> tuple[PolicySpec, ...]:
    """The policies on storage.objects of one bucket's kind: each scoped by `bucket_id = <bucket>`, so
    a request naming another bucket matches none of them; the caller's id is compared as text, once per
    statement (`(select auth.uid()::text)`), and a group's ids, as text, from the membership's group ids
    function (`group_function`, GroupLookup.member_ids_function) once per statement. A `public` bucket's
    objects are served by URL without any policy, so public-read gives it none: a SELECT policy would only
    let clients list every file (splinter's public_bucket_allows_listing).

    The kinds that check a folder or owner read `case when bucket_id = <bucket> then <check> else false
    end` (the same rows as `bucket_id = <bucket> and <check>`): PostgreSQL ORs the policies of every
    bucket into each statement on storage.objects, and an OR whose branches each start with an indexable
    `bucket_id = ...` makes the planner cost index paths for every bucket's branch at every statement,
    where the CASE leaves it only the statement's own filter to match (bench.storage). The broad kinds
    (open, public-read) stay `bucket_id = <bucket>`, the form splinter recognises.

    `caller_function` (`schema.name`, see create_caller_function): the owner kinds read the caller's id as
    `(select <it>())`, which PostgreSQL plans without parsing auth.uid()'s body at every statement."""
    if access not in BUCKET_ACCESS:
        raise ValueError(f"unknown bucket access {access!r} (known: {', '.join(BUCKET_ACCESS)})")
    bucket_id = sql.Literal(bucket)
    in_bucket = sql.SQL("bucket_id = {}").format(bucket_id)
    user_id_text: sql.Composable = sql.SQL("(select auth.uid()::text)")
    if caller_function:
        user_id_text = sql.SQL("(select {}())").format(sql.Identifier(*caller_function.split(".", 1)))
    if access == "service-only":
        return ()
    if access == "open":
        return _bucket_policies(bucket, ("anon", "authenticated"), STORAGE_COMMANDS, in_bucket, in_bucket)
    if access == "public-read":
        if public:
            return ()
        return _bucket_policies(bucket, ("anon", "authenticated"), ("SELECT",), in_bucket, in_bucket)

    def in_bucket_only(check: sql.Composable) -> sql.Composable:
        return sql.SQL("case when bucket_id = {} then {} else false end").format(bucket_id, check)

    if access == "owner-id":
        # Storage writes the uploader's id into owner_id; the API never lets a client choose it.
        owned = in_bucket_only(sql.SQL("owner_id = {}").format(user_id_text))
        return _bucket_policies(bucket, ("authenticated",), STORAGE_COMMANDS, owned, owned)
    if access == "owner-folder":
        folder = first_folder_matches(sql.SQL("= {}").format(user_id_text))
    else:
        if not group_function:
            raise ValueError("a member bucket needs the membership's group ids function (schema.name)")
        schema, _, name = group_function.partition(".")
        # The cast makes `(select f())` an array expression, not ANY's subquery form.
        folder = first_folder_matches(sql.SQL("= any ((select {}())::text[])").format(sql.Identifier(schema, name)))
    readable = in_bucket_only(folder)
    writable = in_bucket_only(sql.SQL("{} and {}").format(folder, _PLAIN_PATH))
    return _bucket_policies(bucket, ("authenticated",), STORAGE_COMMANDS, readable, writable)


def _bucket_policies(
    bucket: str, roles: Sequence[str], commands: Sequence[str], using: sql.Composable, check: sql.Composable
) -> tuple[PolicySpec, ...]:
    return tuple(
        PolicySpec(
            name=bucket_policy_name(bucket, command),
            command=command,
            roles=tuple(sorted(roles)),
            using=None if command == "INSERT" else using.as_string(),
            with_check=check.as_string() if command in ("INSERT", "UPDATE") else None,
        )
        for command in commands
    )


_BUCKET_SETTINGS = ("public", "file_size_limit", "allowed_mime_types")


def read_bucket() -> sql.Composed:
    return sql.SQL("select {} from storage.buckets where id = %s").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in ("name", *_BUCKET_SETTINGS))
    )


def insert_bucket() -> sql.Composed:
    """(id, name, public, file_size_limit, allowed_mime_types) as parameters."""
    return sql.SQL("insert into storage.buckets (id, name, {}) values (%s, %s, %s, %s, %s)").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in _BUCKET_SETTINGS)
    )


def update_bucket() -> sql.SQL:
    """(name, public, file_size_limit, allowed_mime_types, id) as parameters; only when something differs."""
    return sql.SQL(
        "update storage.buckets set name = %s, public = %s, file_size_limit = %s, allowed_mime_types = %s,"
        " updated_at = now() where id = %s"
        " and (name, public, file_size_limit, allowed_mime_types) is distinct from (%s, %s, %s, %s)"
    )


def lock_bucket() -> sql.SQL:
    return sql.SQL("select 1 from storage.buckets where id = %s for update")


def count_bucket_objects() -> sql.SQL:
    return sql.SQL("select count(*) from storage.objects where bucket_id = %s")


def delete_empty_bucket() -> tuple[sql.SQL, sql.SQL]:
    """Storage refuses direct deletes unless its API says so (storage.allow_delete_query, this
    transaction only); the caller has checked that no object is left."""
    return (
        sql.SQL("select set_config('storage.allow_delete_query', 'true', true)"),
        sql.SQL(
            "delete from storage.buckets where id = %s"
            " and not exists (select from storage.objects where bucket_id = %s)"
        ),
    )
