"""SequencePrivileges on a real database, on both platforms: USAGE on the sequences a table's defaults
call for the roles that may insert, nothing else (no setval, nothing on identity sequences), drift seen
and repaired, and delete giving back exactly the ACLs from before."""

from __future__ import annotations

import psycopg
import pytest

from review.postgrest import Persona, as_persona, connect_as_authenticator
from supabase_access.provider.base import InputError
from supabase_access.provider.resources.sequence_privileges import SequencePrivileges
from supabase_access.sql.database import Database
from tests.support.catalog_check import public_acls
from tests.support.localdb import both_platforms
from tests.support.resources import UnreachableDatabase, create, read

pytestmark = pytest.mark.db

INPUTS = {
    "schema": "public",
    "table": "events",
    "roles": ["anon", "authenticated", "service_role"],
    "usage": ["authenticated", "service_role"],
}


def make_table(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "create table events (id bigserial primary key, n int generated always as identity, body text); "
            # Hand-made grants of the kind the issue found: anon may setval and read the sequence.
            "grant select, update on sequence events_id_seq to anon"
        )


def sequence_acls(dsn: str) -> dict[str, list[str]]:
    return public_acls(dsn, "sequence")


def held(dsn: str, role: str, sequence: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [
            p
            for p in ("USAGE", "SELECT", "UPDATE")
            if conn.execute("select has_sequence_privilege(%s, %s, %s)", (role, sequence, p)).fetchone() == (True,)
        ]


@both_platforms
def test_create_read_drift_update_delete(db: Database, fresh_db: str) -> None:
    make_table(fresh_db)
    before = sequence_acls(fresh_db)
    resource = SequencePrivileges()
    resource_id, checked, state = create(resource, db, dict(INPUTS))
    assert resource_id == "public.events"
    assert sorted(state["sequences"]) == ["public.events_id_seq", "public.events_n_seq"]
    assert held(fresh_db, "anon", "events_id_seq") == []
    assert held(fresh_db, "authenticated", "events_id_seq") == ["USAGE"]
    assert held(fresh_db, "service_role", "events_id_seq") == ["USAGE"]
    for role in INPUTS["roles"]:  # an identity column needs no sequence privilege
        assert held(fresh_db, role, "events_n_seq") == []
    assert resource.diff(db, state, checked).has_changes is False
    found = read(resource, db, resource_id, state, checked)
    assert found is not None and found[1]["usage"] == ["authenticated", "service_role"]

    # As PostgREST runs a request: nextval for who may insert, never setval.
    with connect_as_authenticator(fresh_db) as conn:
        with as_persona(conn, Persona.anon()) as cur:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                cur.execute("select setval('events_id_seq', 100)")
        with as_persona(conn, Persona.service()) as cur:
            cur.execute("select nextval('events_id_seq')")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                cur.execute("select setval('events_id_seq', 100)")

    with psycopg.connect(fresh_db) as conn:  # a hand edit: setval given to authenticated
        conn.execute("grant update on sequence events_id_seq to authenticated")
    assert resource.diff(db, state, checked).changes == {"usage": "update"}
    found = read(resource, db, resource_id, state, checked)
    assert found is not None and "authenticated" not in found[1]["usage"]
    state = resource.update(db, state, checked, print)
    assert resource.diff(db, state, checked).has_changes is False
    assert held(fresh_db, "authenticated", "events_id_seq") == ["USAGE"]

    resource.delete(db, state, print)
    assert sequence_acls(fresh_db) == before


def test_a_serial_column_added_later_is_recorded_before_it_is_changed(db: Database, fresh_db: str) -> None:
    make_table(fresh_db)
    resource = SequencePrivileges()
    _, checked, state = create(resource, db, dict(INPUTS))
    with psycopg.connect(fresh_db) as conn:
        conn.execute("alter table events add column seq serial")
        conn.execute("grant all on sequence events_seq_seq to anon")
    before = sequence_acls(fresh_db)["events_seq_seq"]
    state = resource.update(db, state, checked, print)
    assert held(fresh_db, "anon", "events_seq_seq") == []
    resource.delete(db, state, print)
    assert sequence_acls(fresh_db)["events_seq_seq"] == before


def test_check_names_the_bad_input_and_skips_the_database_for_unchanged_inputs(db: Database, fresh_db: str) -> None:
    make_table(fresh_db)
    with pytest.raises(InputError, match=r"public\.nope does not exist") as raised:
        SequencePrivileges().check(db, {}, {**INPUTS, "table": "nope"})
    assert raised.value.property == "table"
    with pytest.raises(InputError, match="usage: anon not in roles"):
        SequencePrivileges().check(db, {}, {**INPUTS, "roles": ["authenticated", "service_role"], "usage": ["anon"]})
    with pytest.raises(InputError, match="role nobody_here does not exist"):
        SequencePrivileges().check(db, {}, {**INPUTS, "roles": ["nobody_here"], "usage": []})
    checked = SequencePrivileges().check(db, {}, dict(INPUTS))
    assert SequencePrivileges().check(UnreachableDatabase(), checked, dict(INPUTS)) == checked
