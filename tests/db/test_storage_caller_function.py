"""The function owner buckets' policies read the caller's id from (supabase_access_rls.auth_uid_text(),
PL/pgSQL around auth.uid(), so PostgreSQL plans it once per connection instead of parsing auth.uid()'s
body at every statement): made with the bucket's policies, drift seen and repaired, reachable by
`authenticated` alone and outside the Data API, shared by buckets and stacks and taken away by the last
policy calling it, and the personas' access unchanged, also for a stack made before it."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from review.postgrest import Persona, connect_as_authenticator
from supabase_access.model.buckets import CALLER_FUNCTION
from supabase_access.model.profiles import plan_access
from supabase_access.model.rule_data import group_lookup_to_plain
from supabase_access.provider import caller_function
from supabase_access.provider.base import InputError
from supabase_access.provider.resources.group_functions import GroupFunctions
from supabase_access.provider.resources.storage_bucket import StorageBucket
from supabase_access.sql import catalog
from supabase_access.sql.database import Database
from supabase_access.sql.rows import fetch_one
from tests.support.fault import Prober, catalog_snapshot
from tests.support.localdb import both_platforms
from tests.support.resources import UnreachableDatabase, create, stack
from tests.support.splinter import lint, must_fix
from tests.support.storage import StorageCaller, add_user, owner_access, put_object
from tests.support.teams_app import load_teams_app, teams_model

pytestmark = pytest.mark.db

SCHEMA, NAME = CALLER_FUNCTION.split(".")
AVATARS = {"bucketId": "avatars", "access": "owner-folder", "callerFunction": CALLER_FUNCTION}
UPLOADS = {"bucketId": "uploads", "access": "owner-id", "callerFunction": CALLER_FUNCTION}


def function_row(dsn: str) -> catalog.CallerFunction | None:
    with psycopg.connect(dsn) as conn:
        return fetch_one(conn, catalog.CALLER_FUNCTION, (SCHEMA, NAME))


def objects_policies(dsn: str, bucket: str) -> list[tuple[str, str | None, str | None]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select policyname, qual, with_check from pg_policies where schemaname = 'storage' "
            "and tablename = 'objects' and policyname like %s order by 1",
            (f"{bucket}: %",),
        ).fetchall()
    return [(str(n), q, c) for n, q, c in rows]


@both_platforms
def test_owner_buckets_read_the_caller_through_a_function_of_ours(db: Database, fresh_db: str) -> None:
    create(StorageBucket(), db, AVATARS)
    create(StorageBucket(), db, UPLOADS)
    create(StorageBucket(), db, {"bucketId": "site-assets", "access": "public-read"})
    for bucket in ("avatars", "uploads"):
        for name, using, check in objects_policies(fresh_db, bucket):
            for expression in (using, check):
                if expression is not None:
                    assert "SELECT supabase_access_rls.auth_uid_text()" in expression, name
                    assert "auth.uid()" not in expression, name
    assert function_row(fresh_db) == caller_function.EXPECTED
    alice = add_user(fresh_db)
    with psycopg.connect(fresh_db) as conn:
        privileges = conn.execute(
            "select r.rolname, has_function_privilege(r.oid, 'supabase_access_rls.auth_uid_text()', 'execute'), "
            "has_schema_privilege(r.oid, 'supabase_access_rls', 'usage') from pg_roles r "
            "where r.rolname in ('anon', 'authenticated', 'authenticator') order by 1"
        ).fetchall()
    assert privileges == [("anon", False, False), ("authenticated", True, True), ("authenticator", False, False)]
    # What it gives is auth.uid() as text: from the claims PostgREST and Storage set, none without them.
    with connect_as_authenticator(fresh_db) as conn, conn.transaction(force_rollback=True):
        conn.execute("set local role authenticated")
        conn.execute("select set_config('request.jwt.claims', %s, true)", (f'{{"sub": "{alice}"}}',))
        assert conn.execute("select supabase_access_rls.auth_uid_text(), auth.uid()::text").fetchone() == (
            str(alice),
            str(alice),
        )
        conn.execute("select set_config('request.jwt.claims', '', true)")
        assert conn.execute("select supabase_access_rls.auth_uid_text()").fetchone() == (None,)

    # Splinter: the policies' caller is read once per statement (auth_rls_initplan), the function's
    # search_path is fixed, and the Data API (public) reaches none of it.
    def ours() -> list[str]:
        return [f[0] for f in must_fix(lint(fresh_db)) if "storage" in f[3] or "auth_uid_text" in f[3]]

    assert ours() == []
    with psycopg.connect(fresh_db) as conn:  # what the lint would say of it without its search_path
        conn.execute("alter function supabase_access_rls.auth_uid_text() reset search_path")
    assert ours() == ["function_search_path_mutable"]


@both_platforms
def test_the_caller_function_drift_is_seen_and_repaired(db: Database, fresh_db: str) -> None:
    resource = StorageBucket()
    _, _, state = create(resource, db, AVATARS)
    assert resource.diff(db, state, AVATARS).changes == {}
    ref = "supabase_access_rls.auth_uid_text()"
    for drift in (
        # Another body (the policies then compare the folder with something else than the caller).
        "create or replace function supabase_access_rls.auth_uid_text() returns text language plpgsql stable "
        "set search_path = '' as $$ begin return 'x'; end $$",
        f"grant execute on function {ref} to anon",
        f"grant execute on function {ref} to public",
        f"grant execute on function {ref} to service_role, authenticator",
        f"alter function {ref} security definer",
        f"alter function {ref} volatile",
        f"alter function {ref} reset search_path",
    ):
        with psycopg.connect(fresh_db) as conn:
            conn.execute(drift)  # type: ignore[arg-type]
        assert resource.diff(db, state, AVATARS).changes == {"callerFunction": "update"}, drift
        state = resource.update(db, state, AVATARS, print)
        assert resource.diff(db, state, AVATARS).changes == {}, drift
        assert function_row(fresh_db) == caller_function.EXPECTED, drift
    # Dropped with the policies that call it: both are drift, and both come back.
    with psycopg.connect(fresh_db) as conn:
        conn.execute(f"drop function {ref} cascade")  # type: ignore[arg-type]
    assert resource.diff(db, state, AVATARS).changes == {"policies": "update", "callerFunction": "update"}
    repaired = resource.update(db, state, AVATARS, print)
    assert repaired["policies"] == state["policies"]
    assert resource.diff(db, repaired, AVATARS).changes == {}
    # Unchanged inputs do not ask the database.
    olds = resource.check(db, {}, AVATARS)
    assert resource.check(UnreachableDatabase(), olds, AVATARS) == olds


@both_platforms
@pytest.mark.parametrize("first", ["prod", "staging"])
def test_buckets_and_stacks_share_it_and_the_last_takes_it_away(db: Database, fresh_db: str, first: str) -> None:
    before = catalog_snapshot(fresh_db)
    resource = StorageBucket()
    with stack("prod"):
        _, _, avatars = create(resource, db, AVATARS)
    with stack("staging"):
        _, _, uploads = create(resource, db, UPLOADS)
    alice, bob = add_user(fresh_db), add_user(fresh_db)
    states = {"prod": avatars, "staging": uploads}
    survivor, path = ("uploads", "a.pdf") if first == "prod" else ("avatars", f"{alice}/a.png")
    put_object(fresh_db, survivor, path, alice)
    with stack(first):
        resource.delete(db, states.pop(first), print)
    # The other stack's bucket still calls it, and still admits its owner alone.
    assert function_row(fresh_db) == caller_function.EXPECTED
    with connect_as_authenticator(fresh_db) as conn:
        assert StorageCaller(conn, Persona.signed_in(alice, is_anonymous=False)).listed(survivor) == {(survivor, path)}
        assert StorageCaller(conn, Persona.signed_in(bob, is_anonymous=False)).listed(survivor) == set()
    with psycopg.connect(fresh_db) as conn:
        conn.execute("set storage.allow_delete_query = 'true'")
        conn.execute("delete from storage.objects")
    ((last, state),) = states.items()
    with stack(last):
        resource.delete(db, state, print)
    assert function_row(fresh_db) is None
    assert catalog_snapshot(fresh_db) == before, "the function, its grants and the helper schema are gone"


@both_platforms
@pytest.mark.parametrize("first", ["bucket", "group functions"])
def test_it_shares_the_helper_schema_with_the_group_functions(db: Database, fresh_db: str, first: str) -> None:
    load_teams_app(fresh_db)
    before = catalog_snapshot(fresh_db)
    (lookup,) = plan_access(teams_model(), "owner").group_lookups
    groups = GroupFunctions()
    _, _, group_state = create(groups, db, {"schema": "public", **group_lookup_to_plain(lookup)})
    bucket = StorageBucket()
    _, _, bucket_state = create(bucket, db, AVATARS)
    if first == "bucket":
        bucket.delete(db, bucket_state, print)
        assert function_row(fresh_db) is None
        groups.delete(db, group_state, print)
    else:
        groups.delete(db, group_state, print)
        assert function_row(fresh_db) == caller_function.EXPECTED, "the bucket's policies still call it"
        bucket.delete(db, bucket_state, print)
    assert catalog_snapshot(fresh_db) == before


@both_platforms
def test_a_stack_made_before_it_is_updated_in_place_with_the_same_access(db: Database, fresh_db: str) -> None:
    """A bucket whose policies call auth.uid() themselves (state without callerFunction): the next `up` is
    an update, not a replacement, that makes the function and the policies again in one transaction (the
    bucket's objects and rows stay), and a prober acting as the Storage API beside it never sees access
    other than before; and back again (a program that leaves callerFunction out)."""
    resource = StorageBucket()
    old_inputs = {"bucketId": "avatars", "access": "owner-folder"}
    _, _, old_state = create(resource, db, old_inputs)
    assert all("auth.uid()" in (q or c or "") for _, q, c in objects_policies(fresh_db, "avatars"))
    alice, bob = add_user(fresh_db), add_user(fresh_db)
    put_object(fresh_db, "avatars", f"{alice}/a.png", alice)
    put_object(fresh_db, "avatars", f"{bob}/b.png", bob)
    access = owner_access(fresh_db, alice, bob)
    assert access == {
        "alice lists": 1,
        "bob lists": 1,
        "anon lists": 0,
        "alice uploads her own": 1,
        "alice uploads into bob's": 0,
        "alice uploads a dot-dot path": 0,
        "anon uploads": 0,
        "bob deletes alice's": 0,
        "bob moves alice's": 0,
    }
    diff = resource.diff(db, old_state, AVATARS)
    assert diff.replaces == [] and diff.changes == {"callerFunction": "update"}
    with Prober(lambda: owner_access(fresh_db, alice, bob)) as prober:
        state = old_state
        for _ in range(3):
            state = resource.update(db, state, resource.check(db, old_inputs, AVATARS), print)
            assert all("auth_uid_text()" in (q or c or "") for _, q, c in objects_policies(fresh_db, "avatars"))
            assert resource.diff(db, state, AVATARS).changes == {}
            state = resource.update(db, state, resource.check(db, AVATARS, old_inputs), print)
            assert function_row(fresh_db) is None
        state = resource.update(db, state, resource.check(db, old_inputs, AVATARS), print)
    assert prober.samples, "the prober took no sample"
    assert [s for s in prober.samples if s != access] == []
    print(f"rendering switched 7 times: {len(prober.samples)} samples, each the access of before")
    assert owner_access(fresh_db, alice, bob) == access


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"access": "public-read"}, "callerFunction: give it for an owner-folder or owner-id bucket only"),
        ({"access": "member", "groupFunction": "a.b"}, "give it for an owner-folder or owner-id bucket only"),
        ({"callerFunction": "auth_uid_text"}, "callerFunction: expected schema.name"),
        ({"callerFunction": "supabase_access_rls.x; drop table y"}, "callerFunction"),
        ({"callerFunction": 'a."b"'}, "callerFunction"),
    ],
)
def test_bad_input_names_the_input(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError) as info:
        StorageBucket().check(UnreachableDatabase(), {}, {**AVATARS, **changes})
    assert info.value.property == "callerFunction" and message in info.value.reason


@both_platforms
def test_a_function_or_schema_not_ours_of_that_name_is_never_replaced(db: Database, fresh_db: str) -> None:
    with psycopg.connect(fresh_db) as conn:
        conn.execute("create schema supabase_access_rls")
    with pytest.raises(InputError, match="callerFunction: schema supabase_access_rls exists but was not created"):
        StorageBucket().check(db, {}, AVATARS)
    # Never in a schema the Data API exposes, nor in Supabase's.
    for schema in ("public", "auth", "storage"):
        with pytest.raises(InputError, match=f"callerFunction: schema {schema} exists but was not created"):
            StorageBucket().check(db, {}, {**AVATARS, "callerFunction": f"{schema}.auth_uid_text"})
    with psycopg.connect(fresh_db) as conn:
        conn.execute("drop schema supabase_access_rls")
    create(StorageBucket(), db, UPLOADS)  # the schema is ours now
    with psycopg.connect(fresh_db) as conn:
        conn.execute("create function supabase_access_rls.mine() returns text language sql as $$ select 'theirs' $$")
    with pytest.raises(InputError, match=r"callerFunction: function supabase_access_rls.mine\(\) exists but was not"):
        StorageBucket().check(db, {}, {**AVATARS, "callerFunction": "supabase_access_rls.mine"})
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("select supabase_access_rls.mine()").fetchone() == ("theirs",)
