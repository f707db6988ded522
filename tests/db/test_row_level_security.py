"""RowLevelSecurity on a real database: RLS and FORCE set, the unguarded privileges taken, drift seen
and repaired, and delete giving back exactly the flags and privileges from before."""

from __future__ import annotations

import psycopg
import pytest

from supabase_access.provider.base import InputError
from supabase_access.provider.resources.row_level_security import RowLevelSecurity
from supabase_access.sql import catalog
from supabase_access.sql.database import Database
from tests.support.localdb import both_platforms, legacy_platform
from tests.support.resources import UnreachableDatabase, create, read

pytestmark = pytest.mark.db

INPUTS = {"schema": "public", "table": "actions", "force": True, "revokeUnguardedFrom": ["anon", "authenticated"]}


def table_state(dsn: str) -> tuple[bool, bool, list[str]]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select relrowsecurity, relforcerowsecurity, "
            "array(select a::text from unnest(coalesce(relacl, acldefault('r', relowner))) a order by 1) "
            "from pg_class where oid = 'public.actions'::regclass"
        ).fetchone()
    assert row is not None
    return bool(row[0]), bool(row[1]), list(row[2])


def api_privileges(dsn: str) -> dict[str, set[str]]:
    """anon's and authenticated's privileges on actions, as the server lists them."""
    found: dict[str, set[str]] = {"anon": set(), "authenticated": set()}
    with psycopg.connect(dsn) as conn:
        for role, privilege in conn.execute(
            "select r.rolname, a.privilege_type from pg_class c, aclexplode(c.relacl) a "
            "join pg_roles r on r.oid = a.grantee where c.oid = 'public.actions'::regclass "
            "and r.rolname in ('anon', 'authenticated')"
        ):
            found[role].add(privilege)
    return found


@both_platforms
def test_create_read_drift_update_delete(db: Database, fresh_db: str, platform: str) -> None:
    with psycopg.connect(fresh_db) as conn:
        conn.execute("alter table actions disable row level security")
    before = table_state(fresh_db)
    resource = RowLevelSecurity()
    resource_id, checked, state = create(resource, db, dict(INPUTS))
    assert resource_id == "public.actions"
    assert state["enabled"] is True and state["previous"] == {"enabled": False, "force": False}
    enabled, forced, _ = table_state(fresh_db)
    assert (enabled, forced) == (True, True)
    # The guarded ones stay where the platform gave them (the legacy one: all; today's: none).
    guarded = set(catalog.GUARDED_PRIVILEGES) if platform == "legacy" else set()
    assert api_privileges(fresh_db) == {"anon": guarded, "authenticated": guarded}
    assert resource.diff(db, state, checked).has_changes is False
    found = read(resource, db, resource_id, state, checked)
    assert found is not None and found[0]["force"] is True

    with psycopg.connect(fresh_db) as conn:  # a hand edit: FORCE off, TRUNCATE given back
        conn.execute("alter table actions no force row level security")
        conn.execute("grant truncate on actions to authenticated")
    assert resource.diff(db, state, checked).changes == {"force": "update", "revokeUnguardedFrom": "update"}
    state = resource.update(db, state, checked, print)
    assert resource.diff(db, state, checked).has_changes is False

    resource.delete(db, state, print)
    assert table_state(fresh_db) == before


def test_changing_the_table_replaces(db: Database) -> None:
    state = RowLevelSecurity().check(db, {}, dict(INPUTS))
    assert RowLevelSecurity().diff(db, state, {**state, "table": "turns"}).replaces == ["table"]


def test_check_names_the_bad_input_and_skips_the_database_for_unchanged_inputs(db: Database) -> None:
    with pytest.raises(InputError, match=r"public\.nope does not exist") as raised:
        RowLevelSecurity().check(db, {}, {**INPUTS, "table": "nope"})
    assert raised.value.property == "table"
    with pytest.raises(InputError, match="role nobody_here does not exist"):
        RowLevelSecurity().check(db, {}, {**INPUTS, "revokeUnguardedFrom": ["nobody_here"]})
    checked = RowLevelSecurity().check(db, {}, dict(INPUTS))
    assert RowLevelSecurity().check(UnreachableDatabase(), checked, dict(INPUTS)) == checked


@legacy_platform  # Supabase's legacy defaults give the API roles every privilege the server knows
def test_the_unguarded_privileges_are_the_servers_maintain_included_on_17(db: Database, fresh_db: str) -> None:
    with psycopg.connect(fresh_db) as conn:
        known = catalog.table_privileges(conn)
        version = conn.info.server_version
    assert ("MAINTAIN" in known) == (version >= 170000), known
    before = table_state(fresh_db)
    assert api_privileges(fresh_db)["anon"] == set(known)  # Supabase's defaults: every one the server knows
    resource = RowLevelSecurity()
    _, checked, state = create(resource, db, dict(INPUTS))
    assert api_privileges(fresh_db)["authenticated"] == set(catalog.GUARDED_PRIVILEGES)
    newest = known[-1]  # MAINTAIN on 17, TRIGGER on 15
    with psycopg.connect(fresh_db) as conn:
        conn.execute(psycopg.sql.SQL("grant {} on actions to anon").format(psycopg.sql.SQL(newest)))
    assert resource.diff(db, state, checked).changes == {"revokeUnguardedFrom": "update"}
    state = resource.update(db, state, checked, print)
    assert api_privileges(fresh_db)["anon"] == set(catalog.GUARDED_PRIVILEGES)
    resource.delete(db, state, print)
    assert table_state(fresh_db) == before  # the exact ACL, `m` included on 17


def column_grants(dsn: str) -> set[tuple[str, str, str]]:
    """(role, privilege, column) of the column-level grants on actions."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select r.rolname, x.privilege_type, a.attname from pg_attribute a cross join aclexplode(a.attacl) x "
            "join pg_roles r on r.oid = x.grantee where a.attrelid = 'public.actions'::regclass and a.attnum > 0"
        ).fetchall()
    return {(r[0], r[1], r[2]) for r in rows}


WITHHELD = {"authenticated": {"SELECT": ["payload"], "UPDATE": ["kind", "turn_id"]}}


@both_platforms
def test_a_withheld_column_granted_by_hand_is_drift_taken_back(db: Database, fresh_db: str) -> None:
    resource = RowLevelSecurity()
    _, checked, state = create(resource, db, {**INPUTS, "withheldColumns": WITHHELD})
    with psycopg.connect(fresh_db) as conn:  # what the column Grants give: the allowed columns only
        conn.execute("grant select (id, kind) on actions to authenticated")
    assert resource.diff(db, state, checked).has_changes is False
    with psycopg.connect(fresh_db) as conn:  # a hand edit: a hidden and a read-only column granted
        conn.execute("grant select (payload), update (kind) on actions to authenticated")
    assert resource.diff(db, state, checked).changes == {"withheldColumns": "update"}
    found = read(resource, db, "public.actions", state, checked)
    assert found is not None
    assert found[1]["withheldColumns"] == {"authenticated": {"SELECT": [], "UPDATE": ["turn_id"]}}
    state = resource.update(db, state, checked, print)
    assert column_grants(fresh_db) == {("authenticated", "SELECT", "id"), ("authenticated", "SELECT", "kind")}
    assert resource.diff(db, state, checked).has_changes is False


def test_withheld_columns_name_the_bad_input(db: Database) -> None:
    for withheld, message in [
        ({"authenticated": {"DELETE": ["kind"]}}, "expected one of SELECT, INSERT, UPDATE"),
        ({"authenticated": {"SELECT": ["nope"]}}, r"public\.actions has no column nope"),
        ({"nobody_here": {"SELECT": ["kind"]}}, "role nobody_here does not exist"),
    ]:
        with pytest.raises(InputError, match=message) as raised:
            RowLevelSecurity().check(db, {}, {**INPUTS, "withheldColumns": withheld})
        assert raised.value.property == "withheldColumns"
