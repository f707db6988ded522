"""Which covering indexes a plan's owner policies need, their names and build statements, and what
replaces a PolicyIndex (no database)."""

from __future__ import annotations

import pytest

from supabase_access.model.access_model import load_model_file, parse_model
from supabase_access.model.policy_lookups import PolicyLookup, policy_index_name, policy_lookups
from supabase_access.model.profiles import plan_access
from supabase_access.provider.resources.policy_index import PolicyIndex
from supabase_access.sql import statements as render
from tests.support.paths import MODEL_FILE

MODEL = load_model_file(MODEL_FILE, setting="supabase-access:modelFile")
OURS = "turns_session_id_id_rls_idx"
TURNS_LOOKUP = {"schema": "public", "table": "turns", "column": "session_id", "include": "id"}


@pytest.mark.unit
def test_owner_profile_looks_up_sessions_by_user_and_turns_by_session() -> None:
    assert policy_lookups(plan_access(MODEL, "owner")) == (
        PolicyLookup("sessions", "user_id", "id"),
        PolicyLookup("turns", "session_id", "id"),
    )


@pytest.mark.unit
def test_open_profile_makes_no_lookups() -> None:
    assert policy_lookups(plan_access(MODEL, "open")) == ()


@pytest.mark.unit
def test_a_table_with_its_own_owner_column_ends_the_path() -> None:
    model = parse_model(
        {
            "tables": {
                "sessions": {"owner": "user_id"},
                "turns": {"through": {"column": "session_id", "table": "sessions"}},
                # Reads compare actions.user_id (no lookup); writes also check the path up to sessions.
                "actions": {"owner": "user_id", "through": {"column": "turn_id", "table": "turns"}},
                # Below actions the path stops at actions, which has an owner column.
                "clicks": {"through": {"column": "action_id", "table": "actions", "key": "action_key"}},
            }
        },
        setting="m",
    )
    assert policy_lookups(plan_access(model, "owner")) == (
        PolicyLookup("actions", "user_id", "action_key"),
        PolicyLookup("sessions", "user_id", "id"),
        PolicyLookup("turns", "session_id", "id"),
    )


@pytest.mark.unit
def test_a_table_owned_only_by_its_own_column_needs_no_index() -> None:
    model = parse_model({"tables": {"notes": {"owner": "user_id"}}}, setting="m")
    assert policy_lookups(plan_access(model, "owner")) == ()


@pytest.mark.unit
def test_index_names_are_readable_and_fit_postgres() -> None:
    assert PolicyLookup("sessions", "user_id", "id").index_name == "sessions_user_id_id_rls_idx"
    long_a = policy_index_name("t" * 40, "c" * 30, "a")
    long_b = policy_index_name("t" * 40, "c" * 30, "b")
    assert len(long_a) <= 63 and len(long_b) <= 63
    assert long_a != long_b
    assert long_a.startswith("tttt") and long_a.endswith("_rls_idx")
    assert policy_index_name("t" * 40, "c" * 30, "a") == long_a  # deterministic


@pytest.mark.unit
def test_build_statements_quote_identifiers_and_run_concurrently() -> None:
    create = render.create_policy_index("public", "turns", OURS, "session_id", "id").as_string()
    assert create == (
        f'create index concurrently if not exists "{OURS}" on "public"."turns" ("session_id") include ("id")'
    )
    assert render.drop_policy_index("public", OURS).as_string() == (
        f'drop index concurrently if exists "public"."{OURS}"'
    )
    assert render.POLICY_INDEX_MARKER in render.mark_policy_index("public", OURS).as_string()


@pytest.mark.unit
def test_changing_what_is_indexed_replaces_the_resource() -> None:
    state = {**TURNS_LOOKUP, "index": OURS, "created": True}
    diff = PolicyIndex().diff(None, state, {**TURNS_LOOKUP, "include": "segment_id"})  # type: ignore[arg-type]
    assert diff.replaces == ["include"]
