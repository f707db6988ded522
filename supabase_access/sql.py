"""Every SQL statement the project sends, rendered in one place.

Identifiers always go through psycopg's `sql.Identifier`. Policy expressions are
SQL by nature: they are passed through as written, and PostgreSQL itself
validates them (see `catalog.normalize_policies`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from psycopg import sql

from supabase_access.policy import PolicySpec
from supabase_access.profiles import (
    AccessPlan,
    Always,
    NotAnonymousUser,
    PolicyRule,
    Predicate,
)

CURRENT_USER_ID = sql.SQL("(select auth.uid())")


def table_ref(schema: str, table: str) -> sql.Composable:
    return sql.Identifier(schema, table)


def render_predicate(schema: str, predicate: Predicate) -> str:
    return _predicate(schema, predicate).as_string()


def _predicate(schema: str, predicate: Predicate) -> sql.Composable:
    if isinstance(predicate, Always):
        return sql.SQL("true")
    if isinstance(predicate, NotAnonymousUser):
        return sql.SQL("(select (auth.jwt() ->> 'is_anonymous')::boolean) is not true")
    condition: sql.Composable = sql.SQL("{} = {}").format(sql.Identifier(predicate.owner_column), CURRENT_USER_ID)
    # `col = any(array(subquery))` lets the planner use the index on `col`; a plain
    # `col in (subquery)` can become a filter over every row of a large child table.
    for hop in reversed(predicate.hops):
        condition = sql.SQL("{} = any (array(select {} from {} where {}))").format(
            sql.Identifier(hop.column),
            sql.Identifier(hop.key),
            table_ref(schema, hop.parent),
            condition,
        )
    return condition


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


def grant(role: str, schema: str, tables: Iterable[str], privileges: Sequence[str]) -> sql.Composed:
    return sql.SQL("grant {} on table {} to {}").format(
        sql.SQL(", ").join(sql.SQL(p.lower()) for p in privileges),
        sql.SQL(", ").join(table_ref(schema, t) for t in tables),
        _role(role),
    )


def drop_constraint(schema: str, table: str, constraint: str) -> sql.Composed:
    return sql.SQL("alter table {} drop constraint {}").format(table_ref(schema, table), sql.Identifier(constraint))


def add_constraint(schema: str, table: str, constraint: str, definition: str, *, validate: bool) -> sql.Composed:
    # `definition` is what pg_get_constraintdef() returned for this constraint.
    return sql.SQL("alter table {} add constraint {} {}{}").format(
        table_ref(schema, table),
        sql.Identifier(constraint),
        sql.SQL(definition),
        sql.SQL("" if validate else " not valid"),
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
