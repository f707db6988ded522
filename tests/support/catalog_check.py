"""The catalog check of issue 20: every privilege the API roles hold in the exposed schemas is one
the model gives, and the server holds every one it needs.

Read from the catalog itself (`aclexplode` over each object's ACL, a NULL ACL read as the owner's
default, so PostgreSQL's built-in EXECUTE for PUBLIC on functions counts), over every table, view,
materialized view, foreign table, sequence and function of the exposed schemas. A privilege given to
PUBLIC is one every API role holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import psycopg

from supabase_access.model.access_model import load_model_file
from supabase_access.model.profiles import AccessPlan, plan_access
from tests.support.paths import REPO

API_ROLES = ("anon", "authenticated")
SERVER_ROLE = "service_role"
PUBLIC = "PUBLIC"

# (kind, schema.name, grantee, privilege) for every ACL entry of the exposed schemas' objects.
HELD = """
select o.kind, o.name, coalesce(r.rolname, 'PUBLIC'), a.privilege_type
from (
  select case c.relkind when 'S' then 'sequence' when 'v' then 'view' when 'm' then 'materialized view'
           when 'f' then 'foreign table' else 'table' end as kind,
         format('%%I.%%I', n.nspname, c.relname) as name,
         coalesce(c.relacl, acldefault((case c.relkind when 'S' then 's' else 'r' end)::"char", c.relowner)) as acl
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where n.nspname = any(%(schemas)s) and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
  union all
  select 'function', format('%%I.%%I(%%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
         coalesce(p.proacl, acldefault('f', p.proowner))
  from pg_proc p join pg_namespace n on n.oid = p.pronamespace
  where n.nspname = any(%(schemas)s)
) o
cross join lateral aclexplode(o.acl) a
left join pg_roles r on r.oid = a.grantee
"""

# schema.table -> the sequences its column defaults call (serial, bigserial, nextval(...)).
DEFAULT_SEQUENCES = """
select format('%%I.%%I', tn.nspname, t.relname), format('%%I.%%I', sn.nspname, s.relname)
from pg_attrdef d
join pg_depend dep on dep.classid = 'pg_attrdef'::regclass and dep.objid = d.oid
  and dep.refclassid = 'pg_class'::regclass
join pg_class s on s.oid = dep.refobjid and s.relkind = 'S'
join pg_namespace sn on sn.oid = s.relnamespace
join pg_class t on t.oid = d.adrelid
join pg_namespace tn on tn.oid = t.relnamespace
where tn.nspname = any(%(schemas)s)
"""


def undeclared_and_missing(
    dsn: str,
    plan: AccessPlan,
    *,
    schemas: Iterable[str] = ("public",),
    functions: Mapping[str, Iterable[str]] | None = None,
) -> tuple[list[str], list[str]]:
    """(privileges anon, authenticated or PUBLIC hold that the plan does not give; privileges service_role
    needs and lacks), each as 'role kind name PRIVILEGE'. `functions`: schema.name(args) -> the roles the
    model lets execute it (None: functions are not checked, as on a dev stack, which only warns)."""
    wanted = list(schemas)
    with psycopg.connect(dsn) as conn:
        held_rows = conn.execute(HELD, {"schemas": wanted}).fetchall()
        sequence_rows = conn.execute(DEFAULT_SEQUENCES, {"schemas": wanted}).fetchall()
    held: set[tuple[str, str, str, str]] = {(r, k, n, p) for k, n, r, p in held_rows}
    callers: dict[str, set[str]] = {}
    for table, sequence in sequence_rows:
        callers.setdefault(sequence, set()).add(table)
    given: set[tuple[str, str, str, str]] = set()
    needed: set[tuple[str, str, str, str]] = set()
    for access in plan.tables:
        name = f"{plan.schema}.{access.table}"
        for role, privileges in plan.grants_on(access.table).items():
            target = needed if role == SERVER_ROLE else given
            target.update((role, "table", name, p) for p in privileges)
    model_tables = {access.table for access in plan.tables}
    for sequence, tables in callers.items():
        for table in tables:
            short = table.split(".", 1)[1]
            if short not in model_tables:
                continue
            for role, privileges in plan.grants_on(short).items():
                if "INSERT" in privileges:
                    target = needed if role == SERVER_ROLE else given
                    target.add((role, "sequence", sequence, "USAGE"))
    for function, roles in (functions or {}).items():
        # A declared function is given to its roles, and must be theirs: a missing EXECUTE fails too.
        given.update((role, "function", function, "EXECUTE") for role in roles)
        needed.update((role, "function", function, "EXECUTE") for role in roles)
    undeclared = sorted(
        " ".join(entry)
        for entry in held
        if entry[0] in (*API_ROLES, PUBLIC)
        and (functions is not None or entry[1] != "function")
        and entry not in given
        and not (entry[0] == PUBLIC and _public_given(entry, given))
    )
    missing = sorted(" ".join(entry) for entry in needed if entry not in held and _public(entry) not in held)
    return undeclared, missing


def _public(entry: tuple[str, str, str, str]) -> tuple[str, str, str, str]:
    return (PUBLIC, *entry[1:])


def _public_given(entry: tuple[str, str, str, str], given: set[tuple[str, str, str, str]]) -> bool:
    """PUBLIC's privilege is one every API role holds: fine only where the model gives it to both."""
    return all((role, *entry[1:]) in given for role in API_ROLES)


def reference_plan(profile: str) -> AccessPlan:
    """The reference app's plan (access-model.yaml) under a profile."""
    return plan_access(load_model_file(REPO / "access-model.yaml", setting="supabase-access:modelFile"), profile)


# What each kind of object's ACL reader needs: its catalog, name, ACL, owner and acldefault's letter.
_ACL_SOURCES = {
    "table": ("pg_class", "relname", "relacl", "relowner", "r", "relnamespace", "relkind = 'r'"),
    "sequence": ("pg_class", "relname", "relacl", "relowner", "s", "relnamespace", "relkind = 'S'"),
    "function": ("pg_proc", "proname", "proacl", "proowner", "f", "pronamespace", "true"),
}


def public_acls(dsn: str, kind: str) -> dict[str, list[str]]:
    """Name -> ACL entries of each `kind` ('table', 'sequence', 'function') in public, as PostgreSQL
    applies them (a NULL ACL is the owner's default), sorted."""
    catalog, name, acl, owner, letter, namespace, only = _ACL_SOURCES[kind]
    query = (
        f"select {name}, array(select a::text from unnest(coalesce({acl}, acldefault('{letter}', {owner}))) a "
        f"order by 1) from {catalog} where {namespace} = 'public'::regnamespace and {only}"
    )
    with psycopg.connect(dsn) as conn:
        return dict(conn.execute(query).fetchall())  # type: ignore[arg-type]


# (role, privilege, table, column) an API role may use on a column, table-wide privileges included.
COLUMN_USE = """
select r.role, p.privilege, c.relname, a.attname
from pg_class c join pg_namespace n on n.oid = c.relnamespace
join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
cross join unnest(%(roles)s::text[]) r(role)
cross join unnest(array['SELECT', 'INSERT', 'UPDATE']) p(privilege)
where n.nspname = %(schema)s and c.relname = any(%(tables)s)
  and has_column_privilege(r.role, c.oid, a.attnum, p.privilege)
"""


def column_rule_breaches(dsn: str, plan: AccessPlan) -> list[str]:
    """'role PRIVILEGE table.column' for every use of a column its table's column rules refuse that role."""
    tables = [table for table, _ in plan.column_rules]
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(COLUMN_USE, {"roles": list(API_ROLES), "schema": plan.schema, "tables": tables}).fetchall()
    return sorted(
        f"{role} {privilege} {table}.{column}"
        for role, privilege, table, column in rows
        if column in plan.columns_of(table).excluded(role, privilege)
    )
