"""The pure access model and profiles: no Pulumi, no database."""

from pathlib import Path

import pytest

from supabase_access.model import AccessModel, Hop, ModelError, load_model_file, parse_model
from supabase_access.profiles import plan_access

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[1]


def reference_model() -> AccessModel:
    return load_model_file(REPO / "access-model.yaml", setting="supabase-access:modelFile")


def test_reference_model_paths_reach_sessions_through_every_hop() -> None:
    model = reference_model()
    hops, root = model.ownership_path("actions")
    assert root.name == "sessions" and root.owner_column == "user_id"
    assert hops == (Hop("actions", "turn_id", "turns", "id"), Hop("turns", "session_id", "sessions", "id"))
    assert model.ownership_path("sessions") == ((), model.table("sessions"))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"tables": {"a": {"through": {"column": "x", "table": "nope"}}}},
            "tables.a.through.table: unknown table 'nope'",
        ),
        (
            {
                "tables": {
                    "a": {"through": {"column": "x", "table": "b"}},
                    "b": {"through": {"column": "y", "table": "a"}},
                }
            },
            "loops back",
        ),
        ({"tables": {'bad"name': {"owner": "user_id"}}}, "is not a valid identifier"),
        ({"tables": {"a": {"owner": "user_id; drop table x"}}}, "tables.a.owner"),
        ({"tables": {"a": {"owner": "u", "through": {"column": "x", "table": "a"}}}}, "exactly one of"),
        ({"tables": {}}, "non-empty mapping"),
        ({"tables": {"a": {"owner": "u", "extra": 1}}}, "unknown key"),
    ],
)
def test_bad_models_name_the_setting(raw: dict, message: str) -> None:
    with pytest.raises(ModelError, match=r"^cfg") as info:
        parse_model(raw, setting="cfg")
    assert message in str(info.value)


def test_open_profile_is_the_guides_access_and_removes_the_user_fk() -> None:
    plan = plan_access(reference_model(), "open")
    assert plan.grants == {
        "anon": ("SELECT", "INSERT", "UPDATE", "DELETE"),
        "authenticated": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    }
    assert plan.removed_constraints == (("sessions", "sessions_user_id_fkey"),)
    assert {t.table for t in plan.tables} == {"sessions", "segments", "turns", "actions", "generated_content"}
    for access in plan.tables:
        assert sorted(r.command for r in access.rules) == ["DELETE", "INSERT", "SELECT", "UPDATE"]
        assert all(r.roles == ("anon", "authenticated") for r in access.rules)


def test_owner_profile_gives_anon_nothing_and_keeps_the_fk() -> None:
    plan = plan_access(reference_model(), "owner")
    assert plan.grants["anon"] == ()
    assert plan.removed_constraints == ()
    rules = {r.name: r for a in plan.tables for r in a.rules}
    assert rules["sessions_insert_own"].using is None and rules["sessions_insert_own"].with_check is not None
    assert rules["sessions_update_own"].using == rules["sessions_update_own"].with_check
    assert all(r.roles == ("authenticated",) for r in rules.values())


def test_unknown_profile_names_the_setting() -> None:
    with pytest.raises(ModelError, match="supabase-access:profile: unknown profile 'closed'"):
        plan_access(reference_model(), "closed")
