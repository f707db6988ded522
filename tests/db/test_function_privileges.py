"""FunctionPrivileges on a real database, on both platforms: the declared functions callable by the
roles the model names, every other one closed to anon, authenticated and PUBLIC (service_role keeps
all), trigger functions still firing, drift repaired, the undeclared ones named at check, and delete
giving back exactly the ACLs from before."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from review.postgrest import Persona, as_persona, connect_as_authenticator
from supabase_access.provider.base import CHECK_LOG, InputError
from supabase_access.provider.resources.function_privileges import FunctionPrivileges
from supabase_access.sql.database import Database
from tests.support.catalog_check import public_acls
from tests.support.localdb import both_platforms
from tests.support.resources import create, read

pytestmark = pytest.mark.db

INPUTS = {
    "schema": "public",
    "roles": ["anon", "authenticated"],
    "server": ["service_role"],
    "declared": {"search_notes": ["authenticated"]},
    "unmanaged": ["leaderboard"],
    "enforce": True,
}


def make_functions(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "create function search_notes(q text) returns int language sql as 'select length(q)'; "
            "create function secret_op() returns int language sql as 'select 42'; "
            "create function leaderboard() returns int language sql security definer as 'select 1'; "
            "create function touch() returns trigger language plpgsql as "
            "'begin new.body := coalesce(new.body, ''touched''); return new; end'; "
            "create table notes (id uuid primary key default gen_random_uuid(), body text); "
            "create trigger notes_touch before insert on notes for each row execute function touch(); "
            "grant select, insert on notes to authenticated"
        )


def function_acls(dsn: str) -> dict[str, list[str]]:
    return public_acls(dsn, "function")


def may_execute(dsn: str, role: str, function: str) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("select has_function_privilege(%s, %s, 'execute')", (role, function)).fetchone()
    return row == (True,)


@both_platforms
def test_create_read_drift_update_delete(db: Database, fresh_db: str) -> None:
    make_functions(fresh_db)
    before = function_acls(fresh_db)
    resource = FunctionPrivileges()
    resource_id, checked, state = create(resource, db, dict(INPUTS))
    assert resource_id == "functions.public"
    assert may_execute(fresh_db, "authenticated", "search_notes(text)")
    assert not may_execute(fresh_db, "anon", "search_notes(text)")
    for role in ("anon", "authenticated"):
        assert not may_execute(fresh_db, role, "secret_op()")
        assert not may_execute(fresh_db, role, "touch()")
    for function in ("search_notes(text)", "secret_op()", "touch()"):
        assert may_execute(fresh_db, "service_role", function)
    assert function_acls(fresh_db)["leaderboard"] == before["leaderboard"]  # left as it is
    assert resource.diff(db, state, checked).has_changes is False

    with connect_as_authenticator(fresh_db) as conn:
        with as_persona(conn, Persona.anon()) as cur:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for function"):
                cur.execute("select public.secret_op()")
        with as_persona(conn, Persona.signed_in(uuid.uuid4(), is_anonymous=False)) as cur:
            assert cur.execute("select public.search_notes('abc')").fetchone() == (3,)
            # A trigger runs its function without the caller's EXECUTE.
            cur.execute("insert into notes default values returning body")
            assert cur.fetchone() == ("touched",)

    with psycopg.connect(fresh_db) as conn:  # a hand edit: the closed function given back to anon
        conn.execute("grant execute on function secret_op() to anon")
    assert resource.diff(db, state, checked).changes == {"declared": "update"}
    found = read(resource, db, resource_id, state, checked)
    assert found is not None and found[1]["declared"] == {}
    state = resource.update(db, state, checked, print)
    assert not may_execute(fresh_db, "anon", "secret_op()")

    resource.delete(db, state, print)
    assert function_acls(fresh_db) == before


def test_check_names_each_undeclared_callable_function_with_the_line_to_add(db: Database, fresh_db: str) -> None:
    make_functions(fresh_db)
    said: list[str] = []
    token = CHECK_LOG.set(said.append)
    try:
        checked = FunctionPrivileges().check(db, {}, {**INPUTS, "enforce": False})
    finally:
        CHECK_LOG.reset(token)
    (message,) = said
    assert "public.secret_op(): add `secret_op: [authenticated]`" in message and "stay open" in message
    assert "search_notes" not in message and "leaderboard" not in message and "touch" not in message
    # A dev stack (enforce false) changes nothing.
    before = function_acls(fresh_db)
    FunctionPrivileges().create(db, checked, print)
    assert function_acls(fresh_db) == before
    with pytest.raises(InputError, match=r"declared\.search_notes: expected a list of roles among anon, authenticated"):
        FunctionPrivileges().check(db, {}, {**INPUTS, "declared": {"search_notes": ["service_role"]}})
