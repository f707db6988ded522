"""DefaultPrivilegesBaseline on a real database: what `postgres` gave the API roles by default in a
schema is recorded (in state and the ledger) and put back by delete, after the stack closed it."""

from __future__ import annotations

import psycopg
import pytest

from supabase_access.provider.base import InputError
from supabase_access.provider.resources.default_privileges_baseline import DefaultPrivilegesBaseline
from supabase_access.sql.database import Database
from tests.support.localdb import legacy_platform
from tests.support.resources import UnreachableDatabase, create, read

pytestmark = [pytest.mark.db, legacy_platform]

INPUTS = {"owner": "postgres", "schema": "public", "roles": ["authenticated", "anon"]}


def default_acls(dsn: str) -> list[tuple[str, str]]:
    with psycopg.connect(dsn) as conn:
        return [
            (str(kind), str(acl))
            for kind, acl in conn.execute(
                "select d.defaclobjtype, array(select a::text from unnest(d.defaclacl) a order by 1)::text "
                "from pg_default_acl d join pg_namespace n on n.oid = d.defaclnamespace "
                "where n.nspname = 'public' and d.defaclrole = 'postgres'::regrole order by 1"
            )
        ]


def test_create_records_and_delete_puts_back(db: Database, fresh_db: str) -> None:
    before = default_acls(fresh_db)
    resource = DefaultPrivilegesBaseline()
    resource_id, checked, state = create(resource, db, dict(INPUTS))
    assert resource_id == "postgres.public" and checked["roles"] == ["anon", "authenticated"]
    assert "SELECT" in state["previous"]["r"]["anon"]  # pg_default_acl object type r: tables
    assert read(resource, db, resource_id, state, checked) == (state, checked)
    assert resource.diff(db, state, checked).has_changes is False
    with psycopg.connect(fresh_db) as conn:  # what pulumi_postgresql.DefaultPrivileges (none) does
        conn.execute("alter default privileges for role postgres in schema public revoke all on tables from anon")
    assert default_acls(fresh_db) != before
    resource.delete(db, state, print)
    assert default_acls(fresh_db) == before


def test_check_names_the_bad_input_and_skips_the_database_for_unchanged_inputs(db: Database) -> None:
    with pytest.raises(InputError, match="role nobody_here does not exist") as raised:
        DefaultPrivilegesBaseline().check(db, {}, {**INPUTS, "owner": "nobody_here"})
    assert raised.value.property == "owner"
    checked = DefaultPrivilegesBaseline().check(db, {}, dict(INPUTS))
    assert DefaultPrivilegesBaseline().check(UnreachableDatabase(), checked, dict(INPUTS)) == checked
    assert DefaultPrivilegesBaseline().diff(db, checked, {**checked, "schema": "other"}).replaces == ["schema"]
