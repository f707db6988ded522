"""Reading access state back from PostgreSQL's catalogs, in PostgreSQL's own normalised form."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from supabase_access.model.access_model import ForeignKeyShape
from supabase_access.model.owner_copy import OwnerCopyNames
from supabase_access.model.policy import PolicySpec
from supabase_access.sql import statements as render

# Imported from here too (where they were defined before sql/errors.py held every error type).
from supabase_access.sql.errors import CatalogError as CatalogError
from supabase_access.sql.errors import PolicyRejectedError as PolicyRejectedError
from supabase_access.sql.rows import Query, fetch_all, fetch_one, fetch_value

# The table privileges row-level security guards: the Data API's four commands. Every other one
# the server knows is unguarded: TRUNCATE empties a table whatever its policies, REFERENCES and
# TRIGGER are schema powers no Data API request needs, MAINTAIN (PostgreSQL 17) runs VACUUM,
# REINDEX, LOCK TABLE... Which ones the server knows is asked of the server (`table_privileges`).
GUARDED_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")


@dataclass(frozen=True)
class RlsState:
    enabled: bool
    forced: bool


@dataclass(frozen=True)
class ForeignKeyInfo:
    definition: str
    columns: tuple[str, ...]
    ref_schema: str
    ref_table: str
    ref_columns: tuple[str, ...]
    # False for a constraint added NOT VALID and not validated since.
    validated: bool = True


def missing_tables(conn: psycopg.Connection, schema: str, tables: Iterable[str]) -> list[str]:
    wanted = list(tables)
    rows = conn.execute(
        "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relname = any(%s) and c.relkind in ('r', 'p')",
        (schema, wanted),
    ).fetchall()
    found = {r[0] for r in rows}
    return [t for t in wanted if t not in found]


def tables_not_alterable(conn: psycopg.Connection, schema: str, tables: Iterable[str]) -> dict[str, str]:
    """Tables the login role cannot ALTER (it neither owns them nor is a member of the owner), with their owners."""
    rows = conn.execute(
        "select c.relname, pg_get_userbyid(c.relowner) from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relname = any(%s) and not pg_has_role(current_user, c.relowner, 'MEMBER') "
        "order by c.relname",
        (schema, list(tables)),
    ).fetchall()
    return dict(rows)


def missing_roles(conn: psycopg.Connection, roles: Iterable[str]) -> list[str]:
    wanted = [r for r in roles if r != "public"]
    rows = conn.execute("select rolname from pg_roles where rolname = any(%s)", (wanted,)).fetchall()
    found = {r[0] for r in rows}
    return [r for r in wanted if r not in found]


def missing_tables_and_roles(
    conn: psycopg.Connection, schema: str, tables: Iterable[str], roles: Iterable[str]
) -> tuple[list[str], list[str]]:
    """missing_tables and missing_roles in one round trip."""
    wanted_tables, wanted_roles = list(tables), [r for r in roles if r != "public"]
    rows = conn.execute(
        "select 'table', c.relname::text from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relname = any(%s) and c.relkind in ('r', 'p') "
        "union all select 'role', rolname::text from pg_roles where rolname = any(%s)",
        (schema, wanted_tables, wanted_roles),
    ).fetchall()
    found = {(kind, name) for kind, name in rows}
    return (
        [t for t in wanted_tables if ("table", t) not in found],
        [r for r in wanted_roles if ("role", r) not in found],
    )


@dataclass(frozen=True)
class ExposedTable:
    """A table in a schema the Data API exposes, with what its rows could be owned by."""

    schema: str
    table: str
    rls: bool
    foreign_keys: tuple[ForeignKeyShape, ...]


# A table's schema, name, RLS flag and foreign keys (as ExposedTable holds them), from pg_class c.
_TABLE_SHAPE = (
    "select n.nspname::text, c.relname::text, c.relrowsecurity, "
    "coalesce((select jsonb_agg(jsonb_build_array("
    "  array(select a.attname::text from unnest(k.conkey) with ordinality u(n, i) "
    "    join pg_attribute a on a.attrelid = k.conrelid and a.attnum = u.n order by u.i), "
    "  rn.nspname, rc.relname, "
    "  array(select a.attname::text from unnest(k.confkey) with ordinality u(n, i) "
    "    join pg_attribute a on a.attrelid = k.confrelid and a.attnum = u.n order by u.i)) order by k.conname) "
    "  from pg_constraint k join pg_class rc on rc.oid = k.confrelid "
    "  join pg_namespace rn on rn.oid = rc.relnamespace where k.conrelid = c.oid and k.contype = 'f'), '[]') "
    "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
)


def _tables_outside_query(
    schemas: Sequence[str], model_schema: str, model_tables: Iterable[str]
) -> tuple[str, tuple[Any, ...]]:
    """The tables of `schemas` that are not `model_schema`.`model_tables` (partitions count as their parent)."""
    return (
        _TABLE_SHAPE + "where n.nspname = any(%s) and c.relkind in ('r', 'p') and not c.relispartition "
        "and not (n.nspname = %s and c.relname = any(%s)) order by 1, 2",
        (list(schemas), model_schema, list(model_tables)),
    )


def kindless_published_tables(
    conn: psycopg.Connection,
    publication: str,
    model_schema: str,
    model_tables: Sequence[str],
    declared: Sequence[str],
) -> list[ExposedTable]:
    """The tables Realtime sends the changes of without the model giving them a kind: those in the
    publication, and `declared` ones (of `model_schema`, about to be published), outside `model_tables`.
    A partition counts as its root (the partitioned table the model names): the publication lists a
    partitioned table's partitions unless it publishes via the partition root, and a partition may be
    published alone; either way the changes are the root's rows, which its kind governs."""
    query = sql.SQL(
        _TABLE_SHAPE + "where c.relkind in ('r', 'p') and not c.relispartition "
        "and not (n.nspname = %s and c.relname = any(%s)) "
        "and ((n.nspname = %s and c.relname = any(%s)) "
        "  or (n.nspname::text, c.relname::text) in (select * from ({}) as published)) order by 1, 2"
    ).format(render.publication_tables(publication))
    rows = conn.execute(query, (model_schema, list(model_tables), model_schema, list(declared))).fetchall()
    return _exposed_tables(rows)


def published_members(
    conn: psycopg.Connection, publication: str, tables: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], list[str]]:
    """For each (schema, table), the relations added to the publication that publish its rows: itself, or
    partitions of it added alone (`schema.name`, what `alter publication ... drop table` takes). None for
    a table published by `for all tables` or `for tables in schema`."""
    rows = conn.execute(
        "select rn.nspname::text, root.relname::text, "
        "  array_agg(format('%%I.%%I', mn.nspname, m.relname) order by m.relname) "
        "from pg_catalog.pg_publication_rel r join pg_catalog.pg_publication p on p.oid = r.prpubid "
        "join pg_catalog.pg_class m on m.oid = r.prrelid join pg_catalog.pg_namespace mn on mn.oid = m.relnamespace "
        "join pg_catalog.pg_class root on root.oid = coalesce(pg_catalog.pg_partition_root(m.oid), m.oid) "
        "join pg_catalog.pg_namespace rn on rn.oid = root.relnamespace "
        "where p.pubname = %s and (rn.nspname, root.relname) in (select * from unnest(%s::text[], %s::text[])) "
        "group by 1, 2",
        (publication, [s for s, _ in tables], [t for _, t in tables]),
    ).fetchall()
    return {(schema, table): list(members) for schema, table, members in rows}


def _exposed_tables(rows: list[Any]) -> list[ExposedTable]:
    return [
        ExposedTable(
            schema,
            table,
            bool(rls),
            tuple(
                ForeignKeyShape(tuple(cols), str(ref_schema), str(ref_table), tuple(ref_cols))
                for cols, ref_schema, ref_table, ref_cols in fks
            ),
        )
        for schema, table, rls, fks in rows
    ]


@dataclass(frozen=True)
class OwnerRightsObject:
    """A view, materialized view, foreign table or SECURITY DEFINER function of an exposed schema
    that anon or authenticated may use, and that does not run with the caller's rights."""

    kind: str
    schema: str
    name: str
    # A function's identity arguments ("" for relations).
    arguments: str

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


# The reloptions that make a view run with the caller's rights (PostgreSQL 15+), as splinter reads them.
_INVOKER_OPTIONS = ["security_invoker=1", "security_invoker=true", "security_invoker=yes", "security_invoker=on"]


def _owner_rights_query(schemas: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """What in `schemas` the API roles reach with the owner's rights: views without
    `security_invoker`, materialized views and foreign tables (no RLS at all), and SECURITY DEFINER
    functions they may execute. Objects of extensions are left out (splinter's rules 0010, 0016,
    0017, 0028, 0029)."""
    return (
        "select k, s, o, a from ("
        "select case c.relkind when 'v' then 'view' when 'm' then 'materialized view' else 'foreign table' end, "
        "n.nspname::text, c.relname::text, ''::text from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = any(%(schemas)s) and c.relkind in ('v', 'm', 'f') "
        "and (case when to_regrole('anon') is not null then has_table_privilege('anon', c.oid, 'SELECT') end "
        "  or case when to_regrole('authenticated') is not null "
        "  then has_table_privilege('authenticated', c.oid, 'SELECT') end) "
        "and not exists (select from pg_depend d where d.objid = c.oid and d.deptype = 'e') "
        "and not (c.relkind = 'v' and array(select lower(o) from unnest(c.reloptions) o) && %(invoker)s::text[]) "
        "union all "
        "select 'function', n.nspname::text, p.proname::text, pg_get_function_identity_arguments(p.oid) "
        "from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
        "where n.nspname = any(%(schemas)s) and p.prosecdef "
        "and (case when to_regrole('anon') is not null then has_function_privilege('anon', p.oid, 'EXECUTE') end "
        "  or case when to_regrole('authenticated') is not null "
        "  then has_function_privilege('authenticated', p.oid, 'EXECUTE') end) "
        "and not exists (select from pg_depend d where d.objid = p.oid and d.deptype = 'e')"
        ") found (k, s, o, a) order by 2, 3, 4",
        {"schemas": list(schemas), "invoker": _INVOKER_OPTIONS},
    )


def exposed_surface(
    conn: psycopg.Connection, schemas: Sequence[str], model_schema: str, model_tables: Iterable[str]
) -> tuple[list[ExposedTable], list[OwnerRightsObject]]:
    """What the Data API exposes beyond the model, in one round trip: the tables of `schemas` outside
    it, and what there runs with its owner's rights."""
    with conn.pipeline():
        tables = conn.execute(*_tables_outside_query(schemas, model_schema, model_tables))
        owner_rights = conn.execute(*_owner_rights_query(schemas))
    return (
        _exposed_tables(tables.fetchall()),
        [OwnerRightsObject(kind, schema, name, arguments) for kind, schema, name, arguments in owner_rights.fetchall()],
    )


def read_rls(conn: psycopg.Connection, schema: str, table: str) -> RlsState | None:
    row = conn.execute(
        "select c.relrowsecurity, c.relforcerowsecurity from pg_class c "
        "join pg_namespace n on n.oid = c.relnamespace where n.nspname = %s and c.relname = %s",
        (schema, table),
    ).fetchone()
    return None if row is None else RlsState(enabled=row[0], forced=row[1])


_POLICY_COLUMNS = "select policyname, cmd, roles::text[], permissive = 'PERMISSIVE', qual, with_check from pg_policies "


def read_policies(conn: psycopg.Connection, schema: str, table: str) -> dict[str, PolicySpec]:
    rows = conn.execute(
        _POLICY_COLUMNS + "where schemaname = %s and tablename = %s order by policyname", (schema, table)
    ).fetchall()
    return _policies_from_rows(rows)


def _policies_from_rows(rows: Sequence[tuple[Any, ...]]) -> dict[str, PolicySpec]:
    return {
        name: PolicySpec(
            name=name,
            command=command,
            roles=tuple(sorted(roles)),
            permissive=permissive,
            using=using,
            with_check=with_check,
        )
        for name, command, roles, permissive, using, with_check in rows
    }


def policy_comments(conn: psycopg.Connection, schema: str, table: str) -> dict[str, str | None]:
    return dict(conn.execute(policy_comments_query(), (schema, table)).fetchall())


def replace_policies(
    conn: psycopg.Connection, schema: str, table: str, policies: Sequence[PolicySpec], *, marker: str | None = None
) -> None:
    """Drop every policy of the table and create `policies`, inside the caller's transaction.

    The table keeps RLS on throughout and the transaction makes the switch atomic, so no
    request ever sees a state wider than the old or the new set. Each created policy is read
    back: one whose expression left its clause fails the transaction, so nothing is applied.
    """
    statements = [render.drop_policy(schema, table, name) for name in read_policies(conn, schema, table)]
    for policy in policies:
        statements.append(render.create_policy(schema, table, policy))
        if marker is not None:
            statements.append(render.mark_policy(schema, table, policy.name, marker))
    # One round trip for all of them (libpq pipeline mode): a remote database is 20-80 ms away.
    with conn.pipeline():
        for statement in statements:
            conn.execute(statement)
    stored = read_policies(conn, schema, table)
    for policy in policies:
        problem = clause_problem(policy, stored.get(policy.name))
        if problem:
            raise PolicyRejectedError(policy.name, problem)


# Probe policies are named so no declared policy can be (declared names are plain lower-case identifiers).
_PROBE_PREFIX = "supabase-access probe "


def clause_problem(
    declared: PolicySpec, stored: PolicySpec | None, parsed: Mapping[str, str | None] | None = None
) -> str | None:
    """Why the policy PostgreSQL stored is not exactly the declared one's clauses, or None.

    `parsed` holds each expression as PostgreSQL parsed it alone (`using`, `withCheck`): the
    stored clause must be that expression and nothing more.
    """
    if stored is None:
        return "PostgreSQL did not store it"
    for key, declared_text, stored_text in (
        ("using", declared.using, stored.using),
        ("withCheck", declared.with_check, stored.with_check),
    ):
        if (declared_text is None) != (stored_text is None):
            return (
                f"the policy as PostgreSQL reads it has {'a' if stored_text is not None else 'no'} "
                f"{'USING' if key == 'using' else 'WITH CHECK'} clause ({stored_text}) although "
                f"{key} is {'not ' if declared_text is None else ''}given: an expression reaches outside its clause"
            )
        if parsed is not None and key in parsed and parsed[key] != stored_text:
            return (
                f"{key} reads as {stored_text} inside the policy but as {parsed[key]} alone: "
                "it is not exactly one expression"
            )
    return None


def _probes(index: int, policy: PolicySpec) -> dict[str, PolicySpec]:
    """`clause -> probe policy` holding that expression as its only clause (so nothing can follow it)."""
    probes = {}
    if policy.using is not None:
        probes["using"] = PolicySpec(f"{_PROBE_PREFIX}{index} using", "SELECT", using=policy.using)
    if policy.with_check is not None:
        probes["withCheck"] = PolicySpec(f"{_PROBE_PREFIX}{index} withCheck", "INSERT", with_check=policy.with_check)
    return probes


def _name_the_rejection(
    conn: psycopg.Connection, scratch: str, name: str, policy: PolicySpec, probes: Mapping[str, PolicySpec]
) -> None:
    """Raise PolicyRejectedError saying what PostgreSQL refused: the policy itself (its own message), what
    the policy grew (an expression that closed its clause), or an expression parsed alone."""
    try:
        with conn.transaction():
            conn.execute(render.create_policy_on_scratch(scratch, policy))
    except psycopg.errors.Error as exc:
        raise PolicyRejectedError(name, exc.diag.message_primary or str(exc)) from exc
    grown = clause_problem(policy, read_policies(conn, _temp_schema(conn), scratch).get(name))
    if grown:
        raise PolicyRejectedError(name, grown)
    for probe in probes.values():
        try:
            with conn.transaction(force_rollback=True):
                conn.execute(render.create_policy_on_scratch(scratch, probe))
        except psycopg.errors.Error as exc:
            message = exc.diag.message_primary or str(exc)
            raise PolicyRejectedError(name, f"an expression is not one expression on its own: {message}") from exc


# table -> column -> type: columns the stack adds before it applies the policies (an owner copy),
# which the policies may already name when they are checked. A type `table.column` is that column's
# (a group's copy takes its key's type), read by `resolve_added_types`.
AddedColumns = Mapping[str, Mapping[str, str]]


def resolve_added_types(conn: psycopg.Connection, schema: str, added: AddedColumns) -> dict[str, dict[str, str]]:
    """`added` with each `table.column` type replaced by that column's type in `schema`."""
    resolved: dict[str, dict[str, str]] = {}
    for table, columns in added.items():
        for column, kind in columns.items():
            if "." in kind:
                source_table, source_column = kind.split(".", 1)
                found = fetch_all(conn, TABLE_COLUMNS, (schema, source_table))
                kind = next((c.type for c in found if c.name == source_column), "")
                if not kind:
                    raise CatalogError(
                        f"addedColumns.{table}.{column}: {schema}.{source_table}.{source_column}, whose type it takes, "
                        "does not exist"
                    )
            resolved.setdefault(table, {})[column] = kind
    return resolved


def _added_column_statements(
    conn: psycopg.Connection, schema: str, table: str, scratch: str, added: AddedColumns
) -> list[sql.Composed]:
    """The columns to add, inside the checking transaction (rolled back): to the scratch copy of
    `table`, and to any other table whose column a policy's subquery names and which lacks it
    still. Only those are altered (a lock held for the rolled-back transaction's milliseconds)."""
    added = resolve_added_types(conn, schema, added)
    others = [(t, c) for t, columns in added.items() if t != table for c in columns]
    existing: set[tuple[str, str]] = set()
    if others:
        rows = conn.execute(
            "select c.relname, a.attname from pg_attribute a join pg_class c on c.oid = a.attrelid "
            "join pg_namespace n on n.oid = c.relnamespace where n.nspname = %s and a.attnum > 0 "
            "and not a.attisdropped and (c.relname, a.attname) in (select * from unnest(%s::text[], %s::text[]))",
            (schema, [t for t, _ in others], [c for _, c in others]),
        ).fetchall()
        existing = {(r[0], r[1]) for r in rows}
    return [
        render.add_column_if_missing(
            None if other == table else schema, scratch if other == table else other, column, kind
        )
        for other, columns in added.items()
        for column, kind in columns.items()
        if (other, column) not in existing
    ]


def _temp_schema(conn: psycopg.Connection) -> str:
    row = conn.execute("select nspname from pg_namespace where oid = pg_my_temp_schema()").fetchone()
    assert row is not None
    return str(row[0])


def normalize_policies(
    conn: psycopg.Connection,
    schema: str,
    table: str,
    policies: Mapping[str, PolicySpec],
    prelude: Sequence[sql.Composed] = (),
    added: AddedColumns | None = None,
) -> dict[str, PolicySpec]:
    """Let PostgreSQL parse the policies and return them as it would store them; nothing is kept.

    The policies are created on an empty temporary copy of the table inside a rolled-back
    transaction, so a preview never takes a lock that would block the app's requests. Each
    policy gets its own savepoint so an error names the policy, with PostgreSQL's own message.
    Each expression is also parsed alone (as the only clause of a probe policy), and each policy
    must read back with exactly the declared clauses, each equal to its expression alone.
    `prelude` makes, in the same rolled-back transaction, what the policies call and the first
    apply creates (the group helper functions).
    """
    scratch = f"normalize_{table}"[:63]
    additions = _added_column_statements(conn, schema, table, scratch, added or {})
    # All at once first (libpq pipeline: one or two round trips instead of three per policy); only
    # when PostgreSQL refuses something, again one savepoint per policy to name the one it refused.
    try:
        with conn.pipeline():
            with conn.transaction(force_rollback=True):
                for made in prelude:
                    conn.execute(made)
                conn.execute(render.create_scratch_copy(schema, table, scratch))
                for addition in additions:
                    conn.execute(addition)
                for policy in policies.values():
                    conn.execute(render.create_policy_on_scratch(scratch, policy))
                read_back = conn.execute(
                    _POLICY_COLUMNS + "where schemaname = (select nspname from pg_namespace "
                    "where oid = pg_my_temp_schema()) and tablename = %s order by policyname",
                    (scratch,),
                )
        stored = _policies_from_rows(read_back.fetchall())
        # Exactly the declared clauses, or the careful path below names what reached outside its own.
        if not any(clause_problem(policy, stored.get(name)) for name, policy in policies.items()):
            return stored
    except psycopg.errors.Error:
        pass
    with conn.transaction(force_rollback=True):
        for made in prelude:
            conn.execute(made)
        conn.execute(render.create_scratch_copy(schema, table, scratch))
        for addition in additions:
            conn.execute(addition)
        probes: dict[str, dict[str, PolicySpec]] = {}
        for index, (name, policy) in enumerate(policies.items()):
            probes[name] = _probes(index, policy)
            try:
                with conn.transaction():  # one savepoint for the policy and its probes
                    for statement in (policy, *probes[name].values()):
                        conn.execute(render.create_policy_on_scratch(scratch, statement))
            except psycopg.errors.Error:
                _name_the_rejection(conn, scratch, name, policy, probes[name])
                raise
        stored = read_policies(conn, _temp_schema(conn), scratch)
        for name, policy in policies.items():
            parsed = {
                key: stored[probe.name].using if key == "using" else stored[probe.name].with_check
                for key, probe in probes[name].items()
            }
            problem = clause_problem(policy, stored.get(name), parsed)
            if problem:
                raise PolicyRejectedError(name, problem)
        return {name: stored[name] for name in policies}


def expressions_folded_to_true(
    conn: psycopg.Connection,
    schema: str,
    table: str,
    expressions: Mapping[str, str],
    prelude: Sequence[sql.Composed] = (),
    added: AddedColumns | None = None,
) -> list[str]:
    """The keys of `expressions` that PostgreSQL's planner reduces to constant true for `table`.

    Each is planned (never run) as the filter of a query on an empty temporary copy of the table;
    a plan that keeps no filter at all (no Filter, no One-Time Filter, no sub-plan) lets every row
    through, whatever its text (`true`, `1 = 1`, `coalesce(true, false)`, `true or ...`).
    """
    scratch = f"probe_{table}"[:63]
    additions = _added_column_statements(conn, schema, table, scratch, added or {})
    folded = []
    with conn.transaction(force_rollback=True):
        for made in prelude:
            conn.execute(made)
        conn.execute(render.create_scratch_copy(schema, table, scratch))
        for addition in additions:
            conn.execute(addition)
        for key, expression in expressions.items():
            row = conn.execute(render.explain_filter_on_scratch(scratch, table, expression)).fetchone()
            assert row is not None
            plan = row[0][0]["Plan"]
            if not _filters(plan):
                folded.append(key)
    return folded


def _filters(plan: Mapping[str, object]) -> bool:
    if "Filter" in plan or "One-Time Filter" in plan:
        return True
    children = plan.get("Plans")
    return isinstance(children, list) and bool(children)


def roles_lacking_privilege(
    conn: psycopg.Connection, schema: str, table: str, wanted: Mapping[str, Sequence[str]]
) -> list[str]:
    """The roles of `wanted` (role -> privileges, any one of which will do) holding none of them on the table."""
    lacking = []
    for role, privileges in wanted.items():
        row = conn.execute(
            "select bool_or(has_table_privilege(r.oid, c.oid, p)) from pg_roles r, pg_class c "
            "join pg_namespace n on n.oid = c.relnamespace, unnest(%s::text[]) p "
            "where r.rolname = %s and n.nspname = %s and c.relname = %s",
            (list(privileges), role, schema, table),
        ).fetchone()
        if not (row and row[0]):
            lacking.append(role)
    return lacking


def table_privileges(conn: psycopg.Connection) -> tuple[str, ...]:
    """Every table privilege this server knows (an owner's default ACL holds them all), in
    `render.PRIVILEGE_ORDER`: PostgreSQL 15's seven, and MAINTAIN from 17 on."""
    rows = conn.execute(
        "select a.privilege_type from aclexplode(acldefault('r', 10::oid)) a where a.grantee = 10"
    ).fetchall()
    return render.ordered_privileges(p for (p,) in rows)


def unguarded_privileges(conn: psycopg.Connection) -> tuple[str, ...]:
    """The table privileges this server knows that row-level security does not guard."""
    return tuple(p for p in table_privileges(conn) if p not in GUARDED_PRIVILEGES)


def read_table_privileges(
    conn: psycopg.Connection, role: str, schema: str, tables: Sequence[str]
) -> dict[str, tuple[str, ...]]:
    """Privileges granted directly to `role` on each table (defaults of a NULL ACL included)."""
    rows = conn.execute(
        "select c.relname, a.privilege_type from pg_class c "
        "join pg_namespace n on n.oid = c.relnamespace "
        "cross join lateral aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a "
        "where n.nspname = %s and c.relname = any(%s) "
        "and a.grantee = (select oid from pg_roles where rolname = %s)",
        (schema, list(tables), role),
    ).fetchall()
    found: dict[str, set[str]] = {t: set() for t in tables}
    for table, privilege in rows:
        found[table].add(privilege)
    return {t: render.ordered_privileges(found[t]) for t in tables}


def roles_holding(conn: psycopg.Connection, schema: str, table: str, wanted: Mapping[str, Sequence[str]]) -> list[str]:
    """The roles of `wanted` (role -> privileges) holding any of their privileges on the table (one query)."""
    held = privileges_held(conn, schema, table, wanted)
    return [role for role in wanted if held.get(role)]


def privileges_held(
    conn: psycopg.Connection, schema: str, table: str, wanted: Mapping[str, Sequence[str]]
) -> dict[str, list[str]]:
    """role -> those of its `wanted` privileges it holds on the whole table (not column by column; one query)."""
    if not wanted:
        return {}
    pairs = [(role, privilege) for role, privileges in wanted.items() for privilege in privileges]
    rows = conn.execute(
        "select r.rolname, a.privilege_type from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "cross join lateral aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a "
        "join pg_roles r on r.oid = a.grantee "
        "join unnest(%s::text[], %s::text[]) w(role, privilege) "
        "on w.role = r.rolname and w.privilege = a.privilege_type "
        "where n.nspname = %s and c.relname = %s",
        ([r for r, _ in pairs], [p for _, p in pairs], schema, table),
    ).fetchall()
    held: dict[str, list[str]] = {}
    for role, privilege in rows:
        held.setdefault(role, []).append(privilege)
    return {role: [p for p in wanted[role] if p in held.get(role, [])] for role in wanted if held.get(role)}


def column_privileges_held(
    conn: psycopg.Connection, schema: str, table: str, withheld: Mapping[str, Mapping[str, Sequence[str]]]
) -> dict[str, dict[str, list[str]]]:
    """role -> privilege -> those of its `withheld` columns it was granted that privilege on, column
    by column (pg_attribute's own ACLs; table-wide privileges are privileges_held's; one query)."""
    triples = [(r, p, c) for r, by_privilege in withheld.items() for p, cols in by_privilege.items() for c in cols]
    if not triples:
        return {}
    rows = conn.execute(
        "select r.rolname, x.privilege_type, a.attname from pg_class c "
        "join pg_namespace n on n.oid = c.relnamespace "
        "join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped "
        "cross join lateral aclexplode(a.attacl) x join pg_roles r on r.oid = x.grantee "
        "join unnest(%s::text[], %s::text[], %s::text[]) w(role, privilege, col) "
        "on w.role = r.rolname and w.privilege = x.privilege_type and w.col = a.attname "
        "where n.nspname = %s and c.relname = %s and a.attacl is not null",
        ([t[0] for t in triples], [t[1] for t in triples], [t[2] for t in triples], schema, table),
    ).fetchall()
    held: dict[str, dict[str, list[str]]] = {}
    for role, privilege, column in rows:
        held.setdefault(role, {}).setdefault(privilege, []).append(column)
    return {
        role: {p: [c for c in withheld[role][p] if c in cols] for p, cols in sorted(by_privilege.items())}
        for role, by_privilege in sorted(held.items())
    }


def column_defaults(conn: psycopg.Connection, schema: str, tables: Sequence[str]) -> dict[str, dict[str, bool]]:
    """table -> column -> whether an insert that leaves it out still gives it a value (a default, an
    identity or a generated column); tables the schema lacks are left out (one query)."""
    rows = conn.execute(
        "select c.relname, a.attname, a.atthasdef or a.attidentity <> '' or a.attgenerated <> '' "
        "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped "
        "where n.nspname = %s and c.relname = any(%s) and c.relkind in ('r', 'p')",
        (schema, list(tables)),
    ).fetchall()
    found: dict[str, dict[str, bool]] = {}
    for table, column, has_default in rows:
        found.setdefault(table, {})[column] = bool(has_default)
    return found


def table_column_names(conn: psycopg.Connection, schema: str, tables: Sequence[str]) -> dict[str, list[str]]:
    """table -> its live columns in order (tables the schema lacks are left out; one query)."""
    rows = conn.execute(
        "select c.relname, a.attname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped "
        "where n.nspname = %s and c.relname = any(%s) and c.relkind in ('r', 'p') order by c.relname, a.attnum",
        (schema, list(tables)),
    ).fetchall()
    found: dict[str, list[str]] = {}
    for table, column in rows:
        found.setdefault(table, []).append(column)
    return found


def roles_holding_unguarded(conn: psycopg.Connection, schema: str, table: str, roles: Sequence[str]) -> list[str]:
    """Those of `roles` that hold a privilege RLS does not guard on the table (TRUNCATE, MAINTAIN, ...; one query)."""
    if not roles:
        return []
    rows = conn.execute(
        "select distinct r.rolname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "cross join lateral aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a "
        "join pg_roles r on r.oid = a.grantee "
        "where n.nspname = %s and c.relname = %s and r.rolname = any(%s) and a.privilege_type <> all(%s)",
        (schema, table, list(roles), list(GUARDED_PRIVILEGES)),
    ).fetchall()
    held = {name for (name,) in rows}
    return [role for role in roles if role in held]


def read_foreign_key(conn: psycopg.Connection, schema: str, table: str, constraint: str) -> ForeignKeyInfo | None:
    row = conn.execute(
        "select pg_get_constraintdef(k.oid), "
        "array(select attname::text from unnest(k.conkey) with ordinality u(n, i) "
        "  join pg_attribute a on a.attrelid = k.conrelid and a.attnum = u.n order by u.i), "
        "rn.nspname, rc.relname, "
        "array(select attname::text from unnest(k.confkey) with ordinality u(n, i) "
        "  join pg_attribute a on a.attrelid = k.confrelid and a.attnum = u.n order by u.i), k.convalidated "
        "from pg_constraint k join pg_class c on c.oid = k.conrelid "
        "join pg_namespace n on n.oid = c.relnamespace "
        "left join pg_class rc on rc.oid = k.confrelid left join pg_namespace rn on rn.oid = rc.relnamespace "
        "where n.nspname = %s and c.relname = %s and k.conname = %s",
        (schema, table, constraint),
    ).fetchone()
    if row is None:
        return None
    definition, columns, ref_schema, ref_table, ref_columns, validated = row
    return ForeignKeyInfo(
        definition, tuple(columns or ()), ref_schema or "", ref_table or "", tuple(ref_columns or ()), bool(validated)
    )


def deleted_with(conn: psycopg.Connection, schema: str, table: str, root_schema: str, root_table: str) -> bool:
    """Whether deleting a `root_table` row takes the `table` rows under it or is refused while they are there:
    a chain of foreign keys that cascade, restrict or take no action leads from `table` to `root_table`.
    False when every chain keeps the rows (a key that sets null or a default) or none exists."""
    return bool(
        fetch_value(
            conn,
            "with recursive reach(rel) as ("
            "  select to_regclass(format('%%I.%%I', %s::text, %s::text))::oid"
            "  union"
            "  select k.confrelid from pg_catalog.pg_constraint k join reach r on k.conrelid = r.rel"
            "  where k.contype = 'f' and k.confdeltype in ('c', 'r', 'a')"
            ") select exists (select from reach where rel = to_regclass(format('%%I.%%I', %s::text, %s::text))::oid)",
            (schema, table, root_schema, root_table),
        )
    )


def current_user(conn: psycopg.Connection) -> str:
    row = conn.execute("select current_user").fetchone()
    return str(row[0]) if row else "?"


def relation_exists(conn: psycopg.Connection, schema: str, name: str) -> bool:
    # pg_class itself, not to_regclass: after an advisory lock (which processes no invalidation
    # messages) the relation cache may still hold a relation another session has just dropped.
    row = conn.execute(
        "select exists (select from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relname = %s)",
        (schema, name),
    ).fetchone()
    return bool(row and row[0])


def role_and_schema_exist(conn: psycopg.Connection, role: str, schema: str) -> tuple[bool, bool]:
    row = conn.execute(
        "select exists (select from pg_roles where rolname = %s), exists (select from pg_namespace where nspname = %s)",
        (role, schema),
    ).fetchone()
    return (bool(row[0]), bool(row[1])) if row else (False, False)


def event_trigger_exists(conn: psycopg.Connection, name: str) -> bool:
    row = conn.execute("select exists (select from pg_event_trigger where evtname = %s)", (name,)).fetchone()
    return bool(row and row[0])


# Catalog queries the provider runs with its own parameters (sql.SQL, so psycopg sends them as they are).


def policy_comments_query() -> sql.SQL:
    """(policy name, comment) of every policy of a table. Parameters: schema, table."""
    return sql.SQL(
        "select p.polname, obj_description(p.oid, 'pg_policy') from pg_policy p join pg_class c on c.oid = p.polrelid "
        "join pg_namespace n on n.oid = c.relnamespace where n.nspname = %s and c.relname = %s"
    )


def schema_comment_query() -> sql.SQL:
    return sql.SQL("select obj_description(oid, 'pg_namespace') as comment from pg_namespace where nspname = %s")


@dataclass(frozen=True)
class SchemaComment:
    comment: str | None


# A schema by name: its comment (our marker on the schemas we made); no row: no such schema.
SCHEMA_COMMENT = Query(schema_comment_query(), SchemaComment)


def may_create_schemas(conn: psycopg.Connection) -> bool:
    return bool(fetch_value(conn, database_create_privilege_query()))


def bypasses_rls(conn: psycopg.Connection) -> bool:
    """Whether the login role is superuser or BYPASSRLS (no policy filters what it reads)."""
    return bool(
        fetch_value(conn, sql.SQL("select rolsuper or rolbypassrls from pg_roles where rolname = current_user"))
    )


def row_security_active(conn: psycopg.Connection, schema: str, table: str) -> bool:
    """Whether RLS filters the table for the current role (then a helper of ours would count nothing)."""
    return bool(fetch_value(conn, row_security_active_query(), (schema, table)))


def read_trigger_query() -> sql.SQL:
    """(tgenabled, tgargs, function schema, function name, comment) of a user trigger on a table."""
    return sql.SQL(
        "select t.tgenabled as enabled, t.tgargs as args, fn.nspname as function_schema, f.proname as function, "
        "obj_description(t.oid, 'pg_trigger') as comment from pg_trigger t "
        "join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace "
        "join pg_proc f on f.oid = t.tgfoid join pg_namespace fn on fn.oid = f.pronamespace "
        "where n.nspname = %s and c.relname = %s and t.tgname = %s and not t.tgisinternal"
    )


def read_function_query() -> sql.SQL:
    """(prosrc, arguments with defaults) of every function with this schema and name."""
    return sql.SQL(
        "select p.prosrc as body, pg_get_function_arguments(p.oid) as arguments from pg_proc p "
        "join pg_namespace n on n.oid = p.pronamespace where n.nspname = %s and p.proname = %s"
    )


@dataclass(frozen=True)
class IndexState:
    valid: bool
    comment: str | None


def index_state_query() -> sql.SQL:
    """(indisvalid, comment) of an index by schema and name."""
    return sql.SQL(
        "select x.indisvalid as valid, obj_description(i.oid, 'pg_class') as comment from pg_class i "
        "join pg_index x on x.indexrelid = i.oid join pg_namespace n on n.oid = i.relnamespace "
        "where n.nspname = %s and i.relname = %s"
    )


def table_privilege_query() -> sql.SQL:
    """Whether the current role holds a privilege on a table (parameters: privilege, schema, table)."""
    return sql.SQL(
        "select has_table_privilege(c.oid, %s) from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relname = %s"
    )


@dataclass(frozen=True)
class PrivateSchemaRights:
    """What the login role may do about the private schema, and what is there already."""

    exists: bool
    create_schemas: bool  # may create schemas in the database
    create_in_schema: bool  # may create in the schema (false when there is none)
    has_table: bool  # the schema holds the table asked about


PRIVATE_SCHEMA_RIGHTS = Query(
    sql.SQL(
        "select n.oid is not null as exists, has_database_privilege(current_database(), 'CREATE') as create_schemas, "
        "coalesce(has_schema_privilege(n.oid, 'CREATE'), false) as create_in_schema, "
        "exists (select from pg_class c where c.relnamespace = n.oid and c.relname = %s) as has_table "
        "from (select) x left join pg_namespace n on n.nspname = %s"
    ),
    PrivateSchemaRights,
)


def private_schema_rights(conn: psycopg.Connection, schema: str, table: str) -> PrivateSchemaRights:
    """The login role's rights on the private schema `schema` and whether `table` is there, one round trip."""
    rights = fetch_one(conn, PRIVATE_SCHEMA_RIGHTS, (table, schema))
    assert rights is not None  # one row, whether the schema exists or not
    return rights


def database_create_privilege_query() -> sql.SQL:
    return sql.SQL("select has_database_privilege(current_database(), 'CREATE')")


def table_columns_query() -> sql.SQL:
    """(column, type) of a table's live columns."""
    return sql.SQL(
        "select a.attname as name, format_type(a.atttypid, a.atttypmod) as type from pg_attribute a "
        "join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relname = %s and a.attnum > 0 and not a.attisdropped"
    )


def relation_persistence_query() -> sql.SQL:
    """pg_class.relpersistence of a relation by schema and name: 'p' logged, 'u' unlogged, 't' temporary."""
    return sql.SQL(
        "select c.relpersistence as persistence from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relname = %s"
    )


def row_security_active_query() -> sql.SQL:
    """Whether RLS filters this table for the current role (then a helper of ours would count nothing)."""
    return sql.SQL(
        "select row_security_active(c.oid) from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relname = %s"
    )


def cron_installed_query() -> sql.SQL:
    return sql.SQL("select exists (select from pg_extension where extname = 'pg_cron')")


def cron_job_query() -> sql.SQL:
    """(schedule, command) of a pg_cron job by name."""
    return sql.SQL("select schedule, command from cron.job where jobname = %s")


@dataclass(frozen=True)
class Trigger:
    enabled: str  # pg_trigger.tgenabled: D when disabled
    args: bytes  # tgargs: each argument followed by a NUL byte
    function_schema: str
    function: str
    comment: str | None


@dataclass(frozen=True)
class FunctionSource:
    body: str
    arguments: str  # pg_get_function_arguments, defaults included


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # format_type


@dataclass(frozen=True)
class Persistence:
    persistence: str  # pg_class.relpersistence: p logged, u unlogged, t temporary


@dataclass(frozen=True)
class CronJob:
    schedule: str
    command: str


# Parameters: schema, table, trigger name.
TRIGGER = Query(read_trigger_query(), Trigger)
# Parameters: schema, name (every overload).
FUNCTION_SOURCES = Query(read_function_query(), FunctionSource)
# Parameters: schema, table.
TABLE_COLUMNS = Query(table_columns_query(), Column)
# Parameters: schema, name.
PERSISTENCE = Query(relation_persistence_query(), Persistence)
# Parameters: job name.
CRON_JOB = Query(cron_job_query(), CronJob)


def find_serving_index_query() -> sql.SQL:
    """(name, comment, holds the returned column) of each valid plain b-tree index of a table whose
    first key column is the searched one: it serves a policy lookup, as an index-only scan when it
    also holds the returned column as a key or INCLUDE column (`indkey` lists both; the first
    `indnkeyatts` are the keys). Covering first, then the preferred name, then by name.

    Parameters: returned column, schema, table, searched column, preferred index name.
    """
    return sql.SQL(
        "select i.relname as name, obj_description(i.oid, 'pg_class') as comment, "
        "coalesce((select attnum from pg_attribute "
        "where attrelid = c.oid and attname = %s and attnum > 0 and not attisdropped) = any (x.indkey::int2[]), false) "
        "as covers from pg_index x "
        "join pg_class i on i.oid = x.indexrelid join pg_class c on c.oid = x.indrelid "
        "join pg_namespace n on n.oid = c.relnamespace join pg_am am on am.oid = i.relam "
        "where n.nspname = %s and c.relname = %s and am.amname = 'btree' "
        "and x.indisvalid and x.indisready and x.indislive "
        "and x.indpred is null and x.indexprs is null and x.indnkeyatts >= 1 "
        "and x.indkey[0] = (select attnum from pg_attribute "
        "where attrelid = c.oid and attname = %s and attnum > 0 and not attisdropped) "
        "order by covers desc, i.relname = %s desc, i.relname"
    )


@dataclass(frozen=True)
class ServingIndex:
    name: str
    comment: str | None
    covers: bool  # holds the returned column: the lookup reads the index alone


@dataclass(frozen=True)
class RelationKind:
    kind: str  # pg_class.relkind: i for an index
    table: str | None  # an index's table


def relation_kind_query() -> sql.SQL:
    """(relkind, table of the index or null) of a relation by schema and name: is a name taken, and by what."""
    return sql.SQL(
        "select r.relkind::text as kind, t.relname as table "
        "from pg_class r join pg_namespace n on n.oid = r.relnamespace "
        "left join pg_index x on x.indexrelid = r.oid left join pg_class t on t.oid = x.indrelid "
        "where n.nspname = %s and r.relname = %s"
    )


def relation_size_query() -> sql.SQL:
    """(estimated rows, size in bytes) of a table, from the planner's statistics."""
    return sql.SQL(
        "select greatest(c.reltuples, 0)::bigint as rows, pg_relation_size(c.oid) as bytes from pg_class c "
        "join pg_namespace n on n.oid = c.relnamespace where n.nspname = %s and c.relname = %s"
    )


@dataclass(frozen=True)
class RelationSize:
    rows: int  # the planner's estimate
    bytes: int


# Parameters: schema, name.
INDEX_STATE = Query(index_state_query(), IndexState)
RELATION_KIND = Query(relation_kind_query(), RelationKind)
# Parameters: schema, table.
RELATION_SIZE = Query(relation_size_query(), RelationSize)
# Parameters: see find_serving_index_query.
SERVING_INDEXES = Query(find_serving_index_query(), ServingIndex)


@dataclass(frozen=True)
class DefaultAclEntry:
    """One privilege of the default privileges a role gives for what it creates in a schema."""

    object_type: str  # pg_default_acl's letter: r (tables), S (sequences), f (functions), ...
    grantee: str  # `public` for PUBLIC
    privilege: str


def read_default_privileges(conn: psycopg.Connection, owner: str, schema: str) -> list[DefaultAclEntry]:
    """The default privileges `owner` gives in `schema`, one entry per grantee and privilege."""
    query = sql.SQL(
        "select d.defaclobjtype::text as object_type, coalesce(g.rolname::text, 'public') as grantee, "
        "a.privilege_type as privilege "
        "from pg_default_acl d cross join aclexplode(d.defaclacl) a left join pg_roles g on g.oid = a.grantee "
        "where d.defaclrole = (select oid from pg_roles where rolname = %s) "
        "and d.defaclnamespace = (select oid from pg_namespace where nspname = %s)"
    )
    with conn.cursor(row_factory=class_row(DefaultAclEntry)) as cur:
        return cur.execute(query, (owner, schema)).fetchall()


@dataclass(frozen=True)
class GroupFunction:
    body: str
    config: list[str]  # proconfig: `name=value` settings
    definer: bool  # SECURITY DEFINER
    comment: str | None


# A helper function by schema and name.
GROUP_FUNCTION = Query(
    sql.SQL(
        "select p.prosrc as body, coalesce(p.proconfig, '{}') as config, p.prosecdef as definer, "
        "obj_description(p.oid, 'pg_proc') as comment "
        "from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
        "where n.nspname = %s and p.proname = %s and p.pronargs = 0"
    ),
    GroupFunction,
)


@dataclass(frozen=True)
class CallerFunction:
    body: str
    config: list[str]  # proconfig: `name=value` settings
    definer: bool  # SECURITY DEFINER
    volatility: str  # provolatile: s (stable)
    language: str
    executors: list[str]  # who may EXECUTE it besides its owner (`public` for PUBLIC), sorted
    comment: str | None


# The function giving owner buckets' policies the caller's id, by schema and name.
CALLER_FUNCTION = Query(
    sql.SQL(
        "select p.prosrc as body, coalesce(p.proconfig, '{}') as config, p.prosecdef as definer, "
        "p.provolatile::text as volatility, l.lanname as language, "
        "array(select coalesce(r.rolname, 'public') "
        "from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a "
        "left join pg_roles r on r.oid = a.grantee "
        "where a.privilege_type = 'EXECUTE' and a.grantee <> p.proowner order by 1) as executors, "
        "obj_description(p.oid, 'pg_proc') as comment "
        "from pg_proc p join pg_namespace n on n.oid = p.pronamespace join pg_language l on l.oid = p.prolang "
        "where n.nspname = %s and p.proname = %s and p.pronargs = 0"
    ),
    CallerFunction,
)


# --- Owner copies ----------------------------------------------------------------------------


def table_pages_query() -> sql.SQL:
    """(pages now, estimated rows, pages at the last ANALYZE) of a table by schema and name."""
    return sql.SQL(
        "select pg_relation_size(c.oid) / current_setting('block_size')::bigint as pages, "
        "greatest(c.reltuples, 0)::bigint as estimated_rows, c.relpages as analyzed_pages "
        "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relname = %s"
    )


def column_state_query() -> sql.SQL:
    """(type, comment) of one live column (parameters: schema, table, column)."""
    return sql.SQL(
        "select format_type(a.atttypid, a.atttypmod) as type, col_description(a.attrelid, a.attnum) as comment "
        "from pg_attribute a "
        "join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relname = %s and a.attname = %s and a.attnum > 0 and not a.attisdropped"
    )


def triggers_state_query() -> sql.SQL:
    """(table, trigger, enabled, function schema, function, comment) of the named triggers on tables
    of a schema (parameters: schema, tables, triggers)."""
    return sql.SQL(
        "select c.relname as table, t.tgname as trigger, t.tgenabled as enabled, fn.nspname as function_schema, "
        "f.proname as function, obj_description(t.oid, 'pg_trigger') as comment "
        "from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace "
        "join pg_proc f on f.oid = t.tgfoid join pg_namespace fn on fn.oid = f.pronamespace "
        "where n.nspname = %s and c.relname = any (%s::text[]) and t.tgname = any (%s::text[]) and not t.tgisinternal"
    )


def functions_state_query() -> sql.SQL:
    """(name, body) of the named functions of a schema (parameters: schema, names)."""
    return sql.SQL(
        "select p.proname as name, p.prosrc as body from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
        "where n.nspname = %s and p.proname = any (%s::text[])"
    )


def constraints_state_query() -> sql.SQL:
    """(name, validated, comment) of the named constraints of a table (parameters: schema, table, names)."""
    return sql.SQL(
        "select k.conname as name, k.convalidated as validated, obj_description(k.oid, 'pg_constraint') as comment "
        "from pg_constraint k "
        "join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relname = %s and k.conname = any (%s::text[])"
    )


@dataclass(frozen=True)
class TablePages:
    pages: int  # now
    estimated_rows: int  # the planner's estimate
    analyzed_pages: int  # at the last ANALYZE


@dataclass(frozen=True)
class ColumnState:
    type: str
    comment: str | None


@dataclass(frozen=True)
class TriggerState:
    table: str
    trigger: str
    enabled: str  # tgenabled: D when disabled
    function_schema: str
    function: str
    comment: str | None


@dataclass(frozen=True)
class FunctionBody:
    name: str
    body: str


@dataclass(frozen=True)
class ConstraintState:
    name: str
    validated: bool
    comment: str | None


# Parameters: schema, table.
TABLE_PAGES = Query(table_pages_query(), TablePages)
# Parameters: schema, table, column.
COLUMN_STATE = Query(column_state_query(), ColumnState)
# Parameters: schema, tables, trigger names.
TRIGGERS_STATE = Query(triggers_state_query(), TriggerState)
# Parameters: schema, function names.
FUNCTION_BODIES = Query(functions_state_query(), FunctionBody)
# Parameters: schema, table, constraint names.
CONSTRAINTS_STATE = Query(constraints_state_query(), ConstraintState)


def count_unfilled_query(schema: str, names: OwnerCopyNames) -> sql.Composed:
    """Rows under a parent without a copy: those the fill found no owner for (a link to no row)."""
    return sql.SQL("select count(*) from {} where {} is null and {} is not null").format(
        render.table_ref(schema, names.table), sql.Identifier(names.column), sql.Identifier(names.link)
    )


# A table's sequences: those its column defaults call (serial, bigserial, nextval(...)) and those its
# columns own (identity columns, OWNED BY), with whether a default calls it.
TABLE_SEQUENCES = """
with t as (
  select c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where n.nspname = %(schema)s and c.relname = %(table)s
), found as (
  select dep.refobjid as seq, true as called
  from pg_attrdef d join pg_depend dep on dep.classid = 'pg_attrdef'::regclass and dep.objid = d.oid
    and dep.refclassid = 'pg_class'::regclass
  where d.adrelid = (select oid from t)
  union all
  select dep.objid, false from pg_depend dep
  where dep.classid = 'pg_class'::regclass and dep.refclassid = 'pg_class'::regclass
    and dep.refobjid = (select oid from t) and dep.deptype in ('a', 'i')
)
select sn.nspname, s.relname, bool_or(f.called)
from found f join pg_class s on s.oid = f.seq and s.relkind = 'S'
join pg_namespace sn on sn.oid = s.relnamespace
group by 1, 2 order by 1, 2
"""


@dataclass(frozen=True)
class TableSequence:
    schema: str
    name: str
    # A column default of the table calls it (an insert needs USAGE); else only owned (identity).
    called: bool


def read_table_sequences(conn: psycopg.Connection, schema: str, table: str) -> list[TableSequence]:
    rows = conn.execute(TABLE_SEQUENCES, {"schema": schema, "table": table}).fetchall()
    return [TableSequence(s, n, bool(called)) for s, n, called in rows]


def read_sequence_privileges(
    conn: psycopg.Connection, sequences: Sequence[TableSequence], roles: Sequence[str]
) -> dict[tuple[str, str], dict[str, list[str]]]:
    """(schema, sequence) -> role -> the privileges granted directly to it (a NULL ACL's defaults included)."""
    found: dict[tuple[str, str], dict[str, list[str]]] = {(s.schema, s.name): {r: [] for r in roles} for s in sequences}
    if not sequences:
        return found
    rows = conn.execute(
        "select n.nspname, c.relname, r.rolname, a.privilege_type from pg_class c "
        "join pg_namespace n on n.oid = c.relnamespace "
        "cross join lateral aclexplode(coalesce(c.relacl, acldefault('s', c.relowner))) a "
        "join pg_roles r on r.oid = a.grantee "
        "join unnest(%s::text[], %s::text[]) w(schema, name) on w.schema = n.nspname and w.name = c.relname "
        "where c.relkind = 'S' and r.rolname = any(%s) order by 1, 2, 3, 4",
        ([s.schema for s in sequences], [s.name for s in sequences], list(roles)),
    ).fetchall()
    for schema, name, role, privilege in rows:
        found[schema, name][role].append(privilege)
    return found


@dataclass(frozen=True)
class ExposedFunction:
    """A function of an exposed schema (not an extension's) and who may execute it, as its ACL says
    (a NULL ACL read as PostgreSQL's default: EXECUTE for PUBLIC)."""

    schema: str
    name: str
    # pg_get_function_identity_arguments: PostgreSQL's own rendering, quoted by it.
    arguments: str
    # grantee ("public" for PUBLIC) -> holds EXECUTE, for the grantees asked about.
    execute: dict[str, bool]
    returns_trigger: bool

    @property
    def signature(self) -> str:
        return f"{self.schema}.{self.name}({self.arguments})"


def read_exposed_functions(conn: psycopg.Connection, schema: str, grantees: Sequence[str]) -> list[ExposedFunction]:
    """The functions of `schema` outside extensions, with EXECUTE per grantee ("public" = PUBLIC)."""
    rows = conn.execute(
        "select p.proname, pg_get_function_identity_arguments(p.oid), p.prorettype = 'trigger'::regtype, "
        "  array(select coalesce(r.rolname, 'public') "
        "        from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a "
        "        left join pg_roles r on r.oid = a.grantee where a.privilege_type = 'EXECUTE') "
        "from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
        "where n.nspname = %s and p.prokind in ('f', 'p') "
        "and not exists (select from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid "
        "  and d.deptype = 'e') order by 1, 2",
        (schema,),
    ).fetchall()
    return [
        ExposedFunction(schema, name, arguments, {g: g in holders for g in grantees}, bool(trigger))
        for name, arguments, trigger, holders in rows
    ]


@dataclass(frozen=True)
class BucketVisibility:
    id: str
    public: bool


UNCOVERED_BUCKETS = Query(
    sql.SQL(
        "select b.id::text as id, coalesce(b.public, false) as public from storage.buckets b"
        " where not (b.id = any(%s))"
        " and not exists (select from pg_policy p where p.polrelid = 'storage.objects'::regclass"
        "  and left(p.polname, length(b.id) + 2) = b.id || ': '"
        "  and starts_with(coalesce(obj_description(p.oid, 'pg_policy'), ''), %s))"
        " order by b.id"
    ),
    BucketVisibility,
)


def uncovered_buckets(conn: psycopg.Connection, modelled: Sequence[str]) -> list[BucketVisibility]:
    """The Storage buckets neither in `modelled` nor managed by a stack (whose policies on storage.objects
    carry its mark); none where the database has no Storage."""
    if not fetch_value(conn, sql.SQL("select to_regclass('storage.buckets') is not null")):
        return []
    return fetch_all(conn, UNCOVERED_BUCKETS, (list(modelled), render.STACK_MARKER_PREFIX))


# --- Realtime --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedTable:
    schema: str
    table: str


def published_tables(conn: psycopg.Connection, publication: str, schema: str) -> set[str]:
    """The tables of `schema` the publication publishes whole (see statements.publication_members)."""
    with conn.cursor(row_factory=class_row(PublishedTable)) as cur:
        return {p.table for p in cur.execute(render.publication_members(publication)).fetchall() if p.schema == schema}


def publication_exists(conn: psycopg.Connection, publication: str) -> bool:
    query = sql.SQL("select exists (select from pg_catalog.pg_publication where pubname = %s)")
    return bool(fetch_value(conn, query, (publication,)))
