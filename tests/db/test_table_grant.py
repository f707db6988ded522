"""TableGrant, retired: a stack that still holds one can refresh it and delete it, and neither touches
the database; the program can no longer declare it."""

from __future__ import annotations

import psycopg
import pytest

from supabase_access.provider.base import InputError
from supabase_access.provider.resources.table_grant import HANDED_OVER, TableGrant
from supabase_access.provider.spec import UNSET
from supabase_access.sql.database import Database

pytestmark = pytest.mark.db

# What the last main with TableGrants (d3a36f7) wrote to state.
OLD_STATE = {
    "role": "authenticated",
    "schema": "public",
    "objectType": "table",
    "objects": ["sessions"],
    "privileges": ["SELECT"],
    "previous": {"sessions": ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"]},
    "privilegesByTable": {"sessions": ["SELECT"]},
}
OLD_INPUTS = {k: OLD_STATE[k] for k in ("role", "schema", "objectType", "objects", "privileges")}


def acl(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select array(select a::text from unnest(relacl) a order by 1) from pg_class "
            "where oid = 'public.sessions'::regclass"
        ).fetchone()
    return list(row[0]) if row else []


def test_an_old_state_refreshes_and_deletes_without_touching_the_database(db: Database, fresh_db: str) -> None:
    assert TableGrant.spec.retired and TableGrant.spec.undeclared(OLD_STATE) == []
    before = acl(fresh_db)
    resource = TableGrant()
    assert resource.read(db, "authenticated.public", OLD_STATE, OLD_INPUTS) == (OLD_STATE, OLD_INPUTS)
    assert resource.diff(db, OLD_STATE, OLD_INPUTS).has_changes is False
    notices: list[str] = []
    resource.delete(db, OLD_STATE, notices.append)
    assert notices == [f"{HANDED_OVER}; nothing was revoked or restored"]
    assert acl(fresh_db) == before


def test_it_cannot_be_declared_again(db: Database) -> None:
    with pytest.raises(InputError, match=r"declare pulumi_postgresql\.Grant instead"):
        TableGrant().check(db, {}, dict(OLD_INPUTS))
    assert all(p.default is UNSET for p in TableGrant.spec.inputs if p.required)
