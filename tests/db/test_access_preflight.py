"""AccessPreflight on a real database: its steps, what it refuses (naming the property), and that it
asks the database on every preview (its exception to the shared check)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from supabase_access.provider.base import InputError, InputProblemsError
from supabase_access.provider.resources.access_preflight import AccessPreflight
from supabase_access.sql.database import Database
from tests.support.localdb import legacy_platform
from tests.support.resources import UnreachableDatabase, create, read

pytestmark = [pytest.mark.db, legacy_platform]

INPUTS = {
    "schema": "public",
    "tables": ["sessions", "turns"],
    "roles": ["authenticated"],
    "policies": {"sessions": {"p": {"command": "ALL", "roles": ["authenticated"], "using": "user_id = auth.uid()"}}},
    "source": "supabase-access:modelFile (access-model.yaml)",
    "policySettings": {"sessions.p": "supabase-access:extraPolicies.sessions.p"},
}


def test_create_read_diff_delete(db: Database) -> None:
    resource = AccessPreflight()
    resource_id, checked, state = create(resource, db, dict(INPUTS))
    assert resource_id == "preflight.public"
    assert state == {"schema": "public", "tables": ["sessions", "turns"]}
    # PostgreSQL's form is checked, the rendered SQL kept: the policy reads back as declared.
    assert checked["policies"]["sessions"]["p"]["using"] == "user_id = auth.uid()"
    assert read(resource, db, resource_id, state, checked) == (state, checked)
    assert resource.diff(db, state, checked).has_changes is False
    assert resource.update(db, state, checked, print) == state
    resource.delete(db, state, print)


@pytest.mark.parametrize(
    ("change", "property", "message"),
    [
        ({"tables": ["sessions", "nope"]}, "tables", r"table\(s\) public\.nope do not exist in the database"),
        ({"roles": ["nobody_here"]}, "roles", r"role\(s\) nobody_here do not exist in the database"),
        (
            {"policies": {"sessions": {"p": {"command": "ALL", "roles": ["authenticated"], "using": "nope = 1"}}}},
            "policies",
            "supabase-access:extraPolicies.sessions.p: PostgreSQL rejected the policy",
        ),
    ],
)
def test_check_names_the_bad_input(db: Database, change: dict[str, Any], property: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as raised:
        AccessPreflight().check(db, {}, {**INPUTS, **change})
    assert raised.value.property == property


def test_check_asks_the_database_even_for_unchanged_inputs(db: Database) -> None:
    checked = AccessPreflight().check(db, {}, dict(INPUTS))
    with pytest.raises(AssertionError, match="the database was asked"):
        AccessPreflight().check(UnreachableDatabase(), checked, dict(INPUTS))


def test_one_check_names_every_independent_problem(db: Database, fresh_db: str) -> None:
    # An uncovered table, a definer function the API can call, a missing role and a policy PostgreSQL
    # refuses: one preview lists all four, each with its own fix, instead of one per run.
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(
            "create function public.count_all() returns bigint language sql security definer set search_path = ''"
            " as 'select count(*) from public.sessions'"
        )
    inputs = {
        **INPUTS,
        "roles": ["authenticated", "nobody_here"],
        "policies": {"sessions": {"p": {"command": "ALL", "roles": ["authenticated"], "using": "nope = 1"}}},
        "exposedSchemas": ["public"],
        "uncoveredTables": "fail",
    }
    with pytest.raises(InputProblemsError) as raised:
        AccessPreflight().check(db, {}, inputs)
    reasons = [problem.reason for problem in raised.value.errors]
    assert [problem.property for problem in raised.value.errors] == ["roles", "tables", "definerObjects", "policies"]
    assert "nobody_here do not exist" in reasons[0]
    assert "public.segments" in reasons[1] and "add `segments: {through:" in reasons[1]
    assert "public.count_all()" in reasons[2]
    assert "PostgreSQL rejected the policy" in reasons[3]


def test_column_rules_are_checked_against_the_tables(db: Database) -> None:
    # Every problem named at once: unknown columns (with the setting that names them) and a readOnly
    # column the API could never fill.
    rules = {
        "sessions": {"readOnly": ["user_id", "created_at"], "hidden": {"anon": ["titel"]}},
        "turns": {"immutable": ["session_idd"]},
    }
    with pytest.raises(InputProblemsError) as raised:
        AccessPreflight().check(db, {}, {**INPUTS, "columnRules": rules})
    text = str(raised.value)
    source = "supabase-access:modelFile (access-model.yaml)"
    assert f"{source}: tables.sessions.hidden.anon: public.sessions has no column titel (its columns: id," in text
    assert f"{source}: tables.turns.immutable: public.turns has no column session_idd" in text
    assert (
        f"{source}: tables.sessions.readOnly: user_id has no default, and the API may never set it. Give it one "
        "(`alter table public.sessions alter column user_id set default auth.uid()`" in text
    )
    assert "created_at has no default" not in text
    fixed = {"sessions": {"readOnly": ["created_at"], "hidden": {"anon": ["title"]}}, "turns": {"immutable": ["id"]}}
    assert AccessPreflight().check(db, {}, {**INPUTS, "columnRules": fixed})["columnRules"] == fixed
