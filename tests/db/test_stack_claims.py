"""Stacks own their tables: claims in the ledger, refusals naming the other stack, delete paths that
leave another stack's table alone, shared baselines that live until their last stack, and one lock
order for every transaction."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from supabase_access.provider.base import InputError
from supabase_access.provider.private_schema import lock_private_schema
from supabase_access.provider.resources.access_preflight import AccessPreflight
from supabase_access.provider.resources.default_privileges_baseline import DefaultPrivilegesBaseline
from supabase_access.provider.resources.row_level_security import RowLevelSecurity
from supabase_access.sql.database import Database
from supabase_access.sql.errors import CatalogError
from supabase_access.sql.transaction import LockOrderError, lock_tables, write_transaction
from tests.support.resources import create, stack

pytestmark = pytest.mark.db

PREFLIGHT = {
    "schema": "public",
    "tables": ["sessions", "turns"],
    "roles": ["anon", "authenticated"],
    "policies": {},
    "source": "test model",
    "grants": {"anon": [], "authenticated": ["SELECT", "INSERT", "UPDATE", "DELETE"]},
}


def acl_and_rls(dsn: str, table: str) -> tuple[object, ...]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select array(select a::text from unnest(relacl) a order by 1), relrowsecurity, relforcerowsecurity "
            "from pg_class where oid = %s::regclass",
            (f"public.{table}",),
        ).fetchone()
    assert row is not None
    return tuple(row)


def test_a_table_another_stack_claims_is_refused_at_preview_and_at_apply(db: Database) -> None:
    with stack("first"):
        _, checked, state = create(AccessPreflight(), db, dict(PREFLIGHT))
        assert AccessPreflight().diff(db, state, checked).has_changes is False
    with stack("second"):
        with pytest.raises(InputError, match=r"another stack manages public\.sessions \(stack 'first'\)") as raised:
            AccessPreflight().check(db, {}, {**PREFLIGHT, "tables": ["sessions"]})
        assert raised.value.property == "tables"
        # Two `up`s racing: both previews passed; under the tables' locks the second is refused.
        with pytest.raises(CatalogError, match=r"public\.turns \(stack 'first'\)"):
            AccessPreflight().create(db, {**PREFLIGHT, "tables": ["turns"]}, print)
        # Disjoint tables work side by side.
        create(AccessPreflight(), db, {**PREFLIGHT, "tables": ["actions"]})


def test_a_stack_made_before_claims_gets_them_at_its_next_up(db: Database) -> None:
    with stack("old"):
        state = dict(PREFLIGHT)
        assert AccessPreflight().diff(db, state, dict(PREFLIGHT)).changes == {"tables": "update"}
        AccessPreflight().update(db, state, dict(PREFLIGHT), print)
        assert AccessPreflight().diff(db, state, dict(PREFLIGHT)).has_changes is False


def test_destroying_a_stack_leaves_the_table_another_stack_manages(db: Database, fresh_db: str) -> None:
    # A stack made before claims: its RowLevelSecurity on a table that stack 'owner' now claims.
    with stack("shared"):
        _, _, rls_state = create(
            RowLevelSecurity(), db, {"schema": "public", "table": "sessions", "revokeUnguardedFrom": ["anon"]}
        )
    with stack("owner"):
        create(AccessPreflight(), db, dict(PREFLIGHT))
    with psycopg.connect(fresh_db) as conn:  # what the owner's Grants give, and a Grant's delete then revokes
        conn.execute("revoke all on public.sessions from anon, authenticated")
        conn.execute("grant select, insert, update, delete on public.sessions to authenticated")
    owned = acl_and_rls(fresh_db, "sessions")
    with psycopg.connect(fresh_db) as conn:
        conn.execute("revoke all on public.sessions from authenticated")
    with stack("shared"):
        RowLevelSecurity().delete(db, rls_state, print)
    assert acl_and_rls(fresh_db, "sessions") == owned  # RLS still on, the owner's grants back


def test_the_default_privileges_baseline_lives_until_its_last_stack(db: Database, fresh_db: str) -> None:
    inputs = {"owner": "postgres", "schema": "public", "roles": ["anon", "authenticated"]}

    def defaults() -> list[tuple[object, ...]]:
        with psycopg.connect(fresh_db) as conn:
            return conn.execute(
                "select defaclobjtype, defaclacl::text from pg_default_acl "
                "where defaclnamespace = 'public'::regnamespace order by 1"
            ).fetchall()

    before = defaults()
    with stack("a"):
        _, _, state_a = create(DefaultPrivilegesBaseline(), db, dict(inputs))
    with psycopg.connect(fresh_db) as conn:  # what pulumi_postgresql.DefaultPrivileges (none) does
        conn.execute("alter default privileges for role postgres in schema public revoke all on tables from anon")
    closed = defaults()
    with stack("b"):
        _, _, state_b = create(DefaultPrivilegesBaseline(), db, dict(inputs))
        assert state_b["previous"] == state_a["previous"]  # the first record stands
    with stack("a"):
        DefaultPrivilegesBaseline().delete(db, state_a, print)
    assert defaults() == closed  # 'b' still uses them closed
    with stack("b"):
        DefaultPrivilegesBaseline().delete(db, state_b, print)
    assert defaults() == before


def test_a_table_lock_after_the_private_schema_lock_is_refused(db: Database) -> None:
    with pytest.raises(LockOrderError), write_transaction(db, rollback=True) as conn:
        lock_tables(conn, "public", ["sessions"])
        lock_private_schema(conn, "supabase_access")
        lock_tables(conn, "public", ["turns"])


def test_the_preflight_names_a_login_role_that_may_not_create_the_private_schema(
    db: Database, fresh_db: str, localdb_admin_conninfo: str
) -> None:
    name = str(conninfo_to_dict(fresh_db)["dbname"])
    with psycopg.connect(make_conninfo(localdb_admin_conninfo, dbname=name), autocommit=True) as admin:
        admin.execute(sql.SQL("revoke create on database {} from postgres").format(sql.Identifier(name)))
    with pytest.raises(InputError, match=r"postgresql:username: the login role postgres may not create schemas"):
        AccessPreflight().check(db, {}, dict(PREFLIGHT))
