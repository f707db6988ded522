"""The function owner buckets' policies read the caller's id from (`(select <schema>.auth_uid_text())`).

Made by StorageBucket in the transaction that writes the policies calling it, in the helper schema of the
group functions (not exposed to the Data API; `authenticated` gets USAGE there and EXECUTE on it, nobody
else). Several buckets, and several stacks, share it: each bucket makes it as it should be, and the last
policy calling it takes it away, since PostgreSQL records each policy's use of it (pg_depend) and refuses
to drop it while one is left. A function of that name not marked as ours is never replaced.
"""

from __future__ import annotations

import psycopg

from supabase_access.provider.base import InputError, identifier
from supabase_access.provider.resources.group_functions import (
    check_helper_schema,
    drop_helper_schema_if_empty,
    ensure_helper_schema,
    lock_helper_schema,
)
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.rows import fetch_one

SETTING = "callerFunction"
# What the catalog shows of it when it is as made (catalog.CallerFunction).
EXPECTED = catalog.CallerFunction(
    body=render.CALLER_FUNCTION_BODY,
    config=['search_path=""'],
    definer=False,
    volatility="s",
    language="plpgsql",
    executors=["authenticated"],
    comment=render.CALLER_FUNCTION_MARKER,
)


def parse(value: str) -> tuple[str, str]:
    """(schema, name) of `schema.name`, or the input error naming callerFunction."""
    schema, dot, name = value.partition(".")
    if not dot:
        raise InputError(SETTING, f"{SETTING}: expected schema.name, got {value!r}")
    return identifier(schema, SETTING), identifier(name, SETTING)


def check(conn: psycopg.Connection, value: str) -> None:
    """The schema can be made or is ours, and a function of that name is missing or ours."""
    schema, name = parse(value)
    check_helper_schema(conn, schema, SETTING)
    _refuse_foreign(conn, schema, name)


def _refuse_foreign(conn: psycopg.Connection, schema: str, name: str) -> None:
    """A function of that name not marked as ours is never replaced."""
    found = fetch_one(conn, catalog.CALLER_FUNCTION, (schema, name))
    if found is not None and found.comment != render.CALLER_FUNCTION_MARKER:
        raise InputError(
            SETTING, f"{SETTING}: function {schema}.{name}() exists but was not made by supabase-access; choose another"
        )


def is_as_made(conn: psycopg.Connection, value: str) -> bool:
    return fetch_one(conn, catalog.CALLER_FUNCTION, parse(value)) == EXPECTED


def install(conn: psycopg.Connection, value: str) -> None:
    """The schema if missing, the function as it should be and its grants, in the caller's transaction (which
    holds storage.objects' lock: the helper schema's comes after it)."""
    schema, name = parse(value)
    ensure_helper_schema(conn, schema)
    _refuse_foreign(conn, schema, name)
    conn.execute(render.create_caller_function(schema, name))
    for statement in render.caller_function_access(schema, name):
        conn.execute(statement)
    # CREATE OR REPLACE keeps the function's ACL: EXECUTE granted by hand to another role goes too.
    made = fetch_one(conn, catalog.CALLER_FUNCTION, (schema, name))
    others = [] if made is None else [g for g in made.executors if g not in EXPECTED.executors]
    if others:
        conn.execute(render.revoke_function_execute(schema, name, others))


def drop_if_unused(conn: psycopg.Connection, value: str) -> None:
    """The function (and the helper schema if nothing else is left there), unless a policy still calls it."""
    schema, name = parse(value)
    lock_helper_schema(conn, schema)
    found = fetch_one(conn, catalog.CALLER_FUNCTION, (schema, name))
    if found is None or found.comment != render.CALLER_FUNCTION_MARKER:
        return
    try:
        with conn.transaction():
            conn.execute(render.drop_helper_function(schema, name))
    except psycopg.errors.DependentObjectsStillExist:
        return  # another bucket's policies (this stack's or another's) still call it
    drop_helper_schema_if_empty(conn, schema)
