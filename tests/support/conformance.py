"""What a database gives the roles a Supabase app meets, as comparable facts: the stand-in of
scripts/localdb is checked against a database built from Supabase's own SQL with them."""

from __future__ import annotations

import json
from typing import Any, Final

import psycopg

ROLES: Final = ("anon", "authenticated", "service_role", "authenticator", "postgres")
API_ROLES: Final = ("anon", "authenticated", "service_role")
SCHEMAS: Final = ("public", "auth", "storage")
AUTH_FUNCTIONS: Final = ("uid", "role", "jwt")
# What auth.uid(), auth.role() and auth.jwt() are asked under: PostgREST's claims, and none.
CLAIMS: Final = (
    "",
    json.dumps({"sub": "8f0c4a8e-7d3c-4b7e-9d1a-2b6f3c1d5e4f", "role": "authenticated", "is_anonymous": True}),
    json.dumps({"role": "anon"}),
)
# The stand-in's auth.users columns (database/00-supabase-platform.sql), which tests and fixtures use.
USER_COLUMNS: Final = ("id", "email", "is_anonymous", "created_at")

# Storage's tables and the columns of each that the API, the policies and the tests use
# (database/03-storage.sql's stand-in).
STORAGE_COLUMNS: Final = {
    "buckets": (
        "id", "name", "owner", "owner_id", "public", "file_size_limit", "allowed_mime_types",
        "created_at", "updated_at",
    ),
    "objects": (
        "id", "bucket_id", "name", "owner", "owner_id", "metadata", "path_tokens", "version",
        "user_metadata", "created_at", "updated_at", "last_accessed_at",
    ),
}  # fmt: skip
STORAGE_FUNCTIONS: Final = ("foldername", "filename", "extension")
# Object names the path helpers are asked about: nested, top-level, dot-dot, empty segments, none.
OBJECT_NAMES: Final = (
    "avatars/8f0c4a8e/me.png",
    "me.png",
    "8f0c4a8e/../other/x.tar.gz",
    "/lead/slash.txt",
    "trailing/slash/",
    "a//b.c",
    "",
)

Facts = dict[str, Any]


def facts(dsn: str) -> Facts:
    """Each fact a key, so a difference names itself."""
    found: Facts = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name, superuser, inherit, createrole, login, bypassrls in conn.execute(
            "select rolname, rolsuper, rolinherit, rolcreaterole, rolcanlogin, rolbypassrls from pg_roles"
            " where rolname = any(%s)",
            (list(ROLES),),
        ):
            found[f"role {name}"] = {
                "superuser": superuser,
                "inherit": inherit,
                "createrole": createrole,
                "login": login,
                "bypassrls": bypassrls,
            }
        for role, member, admin_option in conn.execute(
            "select r.rolname, m.rolname, a.admin_option from pg_auth_members a"
            " join pg_roles r on r.oid = a.roleid join pg_roles m on m.oid = a.member"
            " where r.rolname = any(%(roles)s) and m.rolname = any(%(roles)s)",
            {"roles": list(ROLES)},
        ):
            found[f"{member} member of {role}"] = "with admin option" if admin_option else "member"
        for schema in SCHEMAS:
            for role in (*API_ROLES, "postgres"):
                found[f"schema {schema} {role}"] = conn.execute(
                    "select has_schema_privilege(%(r)s, %(s)s, 'USAGE'), has_schema_privilege(%(r)s, %(s)s, 'CREATE')",
                    {"r": role, "s": schema},
                ).fetchone()
        for objtype, acl in conn.execute(
            "select d.defaclobjtype::text, array(select a::text from unnest(d.defaclacl) a"
            "  where split_part(a::text, '=', 1) = any(%s) order by 1)"
            " from pg_default_acl d where d.defaclrole = 'postgres'::regrole"
            " and d.defaclnamespace = 'public'::regnamespace",
            (list(API_ROLES),),
        ):
            # Without MAINTAIN (m, PostgreSQL 17's): a stand-in on one version compares with a build on the
            # other. None for the API roles is the same as no entry at all.
            if acl:
                found[f"default privileges of postgres in public on {objtype}"] = [i.replace("m/", "/") for i in acl]
        for function in AUTH_FUNCTIONS:
            row = conn.execute(
                "select pg_get_function_result(p.oid), p.provolatile::text, p.prosecdef,"
                " array(select has_function_privilege(r, p.oid, 'EXECUTE') from unnest(%s::text[]) r)"
                " from pg_proc p where p.pronamespace = 'auth'::regnamespace and p.proname = %s"
                " and p.pronargs = 0",
                (list(API_ROLES), function),
            ).fetchone()
            found[f"auth.{function}()"] = row
            if row is not None:
                with conn.transaction(force_rollback=True):
                    conn.execute("set local role authenticated")
                    results = []
                    for claims in CLAIMS:
                        conn.execute("select set_config('request.jwt.claims', %s, true)", (claims,))
                        (value,) = conn.execute(f"select auth.{function}()::text").fetchone() or (None,)  # type: ignore[arg-type]
                        results.append(value)
                found[f"auth.{function}() under claims"] = results
        columns: dict[str, str] = dict(
            conn.execute(
                "select attname, format_type(atttypid, atttypmod) from pg_attribute"
                " where attrelid = 'auth.users'::regclass and attnum > 0 and not attisdropped"
            ).fetchall()
        )
        found["auth.users columns"] = {c: columns.get(c) for c in USER_COLUMNS}
        for role in API_ROLES:
            found[f"auth.users privileges of {role}"] = [
                p
                for p in ("SELECT", "INSERT", "UPDATE", "DELETE")
                if conn.execute("select has_table_privilege(%s, 'auth.users', %s)", (role, p)).fetchone() == (True,)
            ]
        found |= _storage_facts(conn)
    return found


def _storage_facts(conn: psycopg.Connection[Any]) -> Facts:
    """Storage's tables (owner, RLS, the columns used, who may do what, who may write policies, the
    delete guard) and its path helpers (kind, who may call them, what they answer)."""
    found: Facts = {}
    for table, wanted in STORAGE_COLUMNS.items():
        relation = f"storage.{table}"
        owner, rls, force, postgres_manages_policies = conn.execute(
            "select c.relowner::regrole::text, c.relrowsecurity, c.relforcerowsecurity,"
            " pg_has_role('postgres', c.relowner, 'USAGE') from pg_class c where c.oid = %s::regclass",
            (relation,),
        ).fetchone() or (None, None, None, None)
        found[f"{relation} owner, rls, force"] = (owner, rls, force)
        found[f"{relation} policies by postgres"] = postgres_manages_policies
        columns = dict(
            conn.execute(
                "select attname, format_type(atttypid, atttypmod) from pg_attribute"
                " where attrelid = %s::regclass and attnum > 0 and not attisdropped",
                (relation,),
            ).fetchall()
        )
        found[f"{relation} columns"] = {c: columns.get(c) for c in wanted}
        for role in (*API_ROLES, "postgres"):
            found[f"{relation} privileges of {role}"] = [
                p
                for p in ("SELECT", "INSERT", "UPDATE", "DELETE", "SELECT WITH GRANT OPTION")
                if conn.execute("select has_table_privilege(%s, %s, %s)", (role, relation, p)).fetchone() == (True,)
            ]
        found[f"{relation} delete guard"] = conn.execute(
            "select array_agg(t.tgname::text order by t.tgname) from pg_trigger t"
            " where t.tgrelid = %s::regclass and not t.tgisinternal and t.tgtype & 8 = 8",
            (relation,),
        ).fetchone()
    for function in STORAGE_FUNCTIONS:
        found[f"storage.{function}()"] = conn.execute(
            "select pg_get_function_result(p.oid), p.provolatile::text, p.prosecdef,"
            " array(select has_function_privilege(r, p.oid, 'EXECUTE') from unnest(%s::text[]) r)"
            " from pg_proc p where p.pronamespace = 'storage'::regnamespace and p.proname = %s",
            (list(API_ROLES), function),
        ).fetchall()
        found[f"storage.{function}() answers"] = [
            conn.execute(f"select storage.{function}(%s)::text", (name,)).fetchone() for name in OBJECT_NAMES
        ]
    return found


def differences(stand_in: Facts, built: Facts) -> dict[str, tuple[Any, Any]]:
    """key -> (stand-in's value, the built database's value), for every fact that differs."""
    return {
        key: (stand_in.get(key), built.get(key))
        for key in sorted(set(stand_in) | set(built))
        if stand_in.get(key) != built.get(key)
    }
