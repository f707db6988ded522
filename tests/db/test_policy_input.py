"""Policy input that cannot escape its place, and tables the login role cannot alter.

Each bad input is refused with the setting that holds it, and nothing reaches the database:
first by the scan every policy expression gets (program and provider), then by PostgreSQL
itself (each expression parsed alone, the policy read back with exactly its clauses) for
anything the scan could miss (the scan alone: tests/unit/test_policy_scan.py).
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from supabase_access.model.policy import PolicySpec
from supabase_access.provider.base import InputError
from supabase_access.provider.resources.access_preflight import AccessPreflight
from supabase_access.provider.resources.table_policies import TablePolicies
from supabase_access.sql import catalog
from supabase_access.sql.database import Database
from tests.support.localdb import legacy_platform
from tests.support.policy_input import ESCAPES


def owner_using(using: str) -> dict[str, Any]:
    return {"command": "ALL", "roles": ["authenticated"], "using": using}


def live_policies(dsn: str, table: str = "sessions") -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "select policyname, cmd, roles::text[], qual, with_check from pg_policies where tablename = %s "
            "order by policyname",
            (table,),
        ).fetchall()


# What slips past the scan would be a lexer mismatch: these go to PostgreSQL unscanned
# (PolicySpec itself does not validate) to show the database-side checks alone catch them.
UNSCANNED = [
    PolicySpec("p", "ALL", ("authenticated",), using="user_id = auth.uid()) with check (true"),
    PolicySpec("p", "UPDATE", ("authenticated",), with_check="user_id = auth.uid()) using (true"),
]


@pytest.mark.db
@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (
            UNSCANNED[0],
            "the policy as PostgreSQL reads it has a WITH CHECK clause (true) although withCheck is not given: "
            "an expression reaches outside its clause",
        ),
        (UNSCANNED[1], 'syntax error at or near "using"'),
        (PolicySpec("p", "ALL", ("authenticated",), using="1"), "argument of POLICY must be type boolean"),
    ],
    ids=["using-adds-with-check", "with-check-adds-using", "not-boolean"],
)
def test_postgresql_side_check_refuses_what_is_not_one_boolean_expression(
    fresh_db: str, policy: PolicySpec, message: str
) -> None:
    with psycopg.connect(fresh_db) as conn:
        with pytest.raises(catalog.PolicyRejectedError) as raised:
            catalog.normalize_policies(conn, "public", "sessions", {policy.name: policy})
    assert raised.value.policy == "p" and raised.value.message.startswith(message)


@pytest.mark.db
def test_apply_reads_back_and_rolls_back_a_policy_that_grew_a_clause(fresh_db: str) -> None:
    before = live_policies(fresh_db)
    with psycopg.connect(fresh_db) as conn:
        with pytest.raises(catalog.PolicyRejectedError) as raised, conn.transaction():
            catalog.replace_policies(conn, "public", "sessions", [UNSCANNED[0]])
    assert "has a WITH CHECK clause (true) although withCheck is not given" in raised.value.message
    assert live_policies(fresh_db) == before


@pytest.mark.db
def test_the_parsed_form_is_what_is_stored(fresh_db: str) -> None:
    policy = PolicySpec("p", "ALL", ("authenticated",), using="title is not null", with_check="length(title) > 0")
    with psycopg.connect(fresh_db) as conn:
        parsed = catalog.normalize_policies(conn, "public", "sessions", {"p": policy})
    assert set(parsed) == {"p"}  # no probe left behind
    assert (parsed["p"].using, parsed["p"].with_check) == ("(title IS NOT NULL)", "(length(title) > 0)")


def preflight_inputs(**changes: Any) -> dict[str, Any]:
    return {
        "schema": "public",
        "tables": ["sessions", "turns"],
        "roles": ["authenticated"],
        "policies": {"sessions": {"p": owner_using("user_id = auth.uid()")}},
        "source": "supabase-access:modelFile (access-model.yaml)",
        "policySettings": {"sessions.p": "supabase-access:extraPolicies.sessions.p"},
        **changes,
    }


@pytest.mark.db
@pytest.mark.parametrize(("text", "problem"), ESCAPES[:3])
def test_preflight_names_the_setting_of_an_escaping_expression(db: Database, text: str, problem: str) -> None:
    inputs = preflight_inputs(policies={"sessions": {"p": owner_using(text)}})
    with pytest.raises(InputError) as raised:
        AccessPreflight().check(db, {}, inputs)
    assert raised.value.reason.startswith(f"supabase-access:extraPolicies.sessions.p.using: {problem}")


@pytest.mark.db
def test_table_policies_refuses_an_escaping_expression_before_the_database(db: Database, fresh_db: str) -> None:
    before = live_policies(fresh_db)
    inputs = {"schema": "public", "table": "sessions", "policies": {"p": owner_using(ESCAPES[0][0])}}
    with pytest.raises(InputError, match=r"policies\.p\.using: a '\)' closes more than it opened"):
        TablePolicies().check(db, {}, inputs)
    with pytest.raises(InputError):
        TablePolicies().create(db, inputs, lambda message: None)
    assert live_policies(fresh_db) == before


@pytest.mark.db
@legacy_platform
def test_preflight_names_a_table_the_login_role_cannot_alter(
    db: Database, fresh_db: str, localdb_admin_conninfo: str
) -> None:
    stranger = f"owner_{uuid.uuid4().hex[:8]}"
    admin = psycopg.conninfo.make_conninfo(
        localdb_admin_conninfo, dbname=psycopg.conninfo.conninfo_to_dict(fresh_db)["dbname"]
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("create role {}").format(psycopg.sql.Identifier(stranger)))
        conn.execute(psycopg.sql.SQL("alter table turns owner to {}").format(psycopg.sql.Identifier(stranger)))
    try:
        with pytest.raises(InputError) as raised:
            AccessPreflight().check(db, {}, preflight_inputs())
        assert raised.value.property == "tables"
        assert raised.value.reason == (
            "supabase-access:modelFile (access-model.yaml): the login role postgres (postgresql:username) cannot "
            f"alter every table: public.turns is owned by {stranger}. Log in as the owner, or grant the owner "
            "role to the login role (`grant <owner> to <login role>`)"
        )
        # A member of the owning role may alter the table: the same check passes.
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("grant {} to postgres").format(psycopg.sql.Identifier(stranger)))
        AccessPreflight().check(db, {}, preflight_inputs())
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("alter table turns owner to postgres"))
            conn.execute(psycopg.sql.SQL("drop role {}").format(psycopg.sql.Identifier(stranger)))
