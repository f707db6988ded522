"""What a database gives the roles a Supabase app meets, as comparable facts: the stand-in of
scripts/localdb is checked against a database built from Supabase's own SQL with them."""

from __future__ import annotations

import json
from typing import Any, Final

import psycopg

ROLES: Final = ("anon", "authenticated", "service_role", "authenticator", "postgres")
API_ROLES: Final = ("anon", "authenticated", "service_role")
SCHEMAS: Final = ("public", "auth")
AUTH_FUNCTIONS: Final = ("uid", "role", "jwt")
# What auth.uid(), auth.role() and auth.jwt() are asked under: PostgREST's claims, and none.
CLAIMS: Final = (
    "",
    json.dumps({"sub": "8f0c4a8e-7d3c-4b7e-9d1a-2b6f3c1d5e4f", "role": "authenticated", "is_anonymous": True}),
    json.dumps({"role": "anon"}),
)
# The stand-in's auth.users columns (database/00-supabase-platform.sql), which tests and fixtures use.
USER_COLUMNS: Final = ("id", "email", "is_anonymous", "created_at")

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
    return found


def differences(stand_in: Facts, built: Facts) -> dict[str, tuple[Any, Any]]:
    """key -> (stand-in's value, the built database's value), for every fact that differs."""
    return {
        key: (stand_in.get(key), built.get(key))
        for key in sorted(set(stand_in) | set(built))
        if stand_in.get(key) != built.get(key)
    }
