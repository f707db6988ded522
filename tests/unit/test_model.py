"""The pure access model and profiles: no Pulumi, no database."""

import re
from pathlib import Path

import pytest

from supabase_access.model.access_model import (
    AccessModel,
    ForeignKeyShape,
    Hop,
    ModelError,
    load_model_file,
    model_to_plain,
    parse_model,
    suggested_entry,
)
from supabase_access.model.profiles import KeptForeignKey, plan_access
from supabase_access.sql import statements as render

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


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
        ({"tables": {"a": {"owner": "u", "through": {"column": "x", "table": "a"}}}}, "loops back"),
        ({"tables": {"a": {}}}, "give 'owner', 'through', or both"),
        (
            {"tables": {"a": {"through": {"column": "x", "table": "b"}, "userForeignKey": "fk"}, "b": {"owner": "u"}}},
            "tables.a.userForeignKey: only a table with 'owner'",
        ),
        ({"tables": {}}, "non-empty mapping"),
        ({"tables": {"a": {"owner": "u", "extra": 1}}}, "cfg.tables.a.extra: unknown key; known: owner, through"),
        ({"tables": {"a": {"ownr": "u"}}}, "cfg.tables.a.ownr: unknown key (did you mean owner?)"),
        (
            {"tables": {"a": {"owner": "u"}, "b": {"through": {"colum": "a_id", "table": "a"}}}},
            "cfg.tables.b.through.colum: unknown key (did you mean column?); known: column, table, key",
        ),
        (
            {"scehma": "app", "tables": {"a": {"owner": "u"}}},
            "cfg.scehma: unknown key (did you mean schema?); known: schema, tables",
        ),
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
        "service_role": ("SELECT", "INSERT", "UPDATE", "DELETE"),
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
    assert plan.kept_constraints == (KeptForeignKey("sessions", "sessions_user_id_fkey", "user_id", "cascade"),)
    rules = {r.name: r for a in plan.tables for r in a.rules}
    assert rules["sessions_insert_own"].using is None and rules["sessions_insert_own"].with_check is not None
    assert rules["sessions_update_own"].using == rules["sessions_update_own"].with_check
    assert all(r.roles == ("authenticated",) for r in rules.values())


def test_unknown_profile_names_the_setting() -> None:
    with pytest.raises(ModelError, match="supabase-access:profile: unknown profile 'closed'"):
        plan_access(reference_model(), "closed")


DENORMALISED = {
    "tables": {
        "sessions": {"owner": "user_id"},
        "turns": {"through": {"column": "session_id", "table": "sessions"}},
        "actions": {"owner": "user_id", "through": {"column": "turn_id", "table": "turns"}},
        "reactions": {"through": {"column": "action_id", "table": "actions"}},
    }
}


def test_a_copied_owner_column_answers_reads_and_writes_also_check_the_path() -> None:
    model = parse_model(DENORMALISED, setting="cfg")
    policies = {
        table: {p.name: p for p in specs} for table, specs in render.plan_policies(plan_access(model, "owner")).items()
    }
    own = '"user_id" = (select auth.uid())'
    path = (
        '"turn_id" = any (array(select "hop1"."id" from "public"."turns" "hop1" '
        'join "public"."sessions" "hop2" on "hop2"."id" = "hop1"."session_id" '
        'where "hop2"."user_id" = (select auth.uid())))'
    )
    assert policies["actions"]["actions_select_own"].using == own
    assert policies["actions"]["actions_delete_own"].using == own
    assert policies["actions"]["actions_insert_own"].with_check == f"({own}) and ({path})"
    assert policies["actions"]["actions_update_own"].using == own
    assert policies["actions"]["actions_update_own"].with_check == f"({own}) and ({path})"
    # A table below it stops at the nearest owner column: one hop instead of three.
    assert policies["reactions"]["reactions_select_own"].using == (
        '"action_id" = any (array(select "id" from "public"."actions" where "user_id" = (select auth.uid())))'
    )


def test_the_line_suggested_for_a_table_outside_the_model_follows_its_foreign_keys() -> None:
    users = ForeignKeyShape(("owner_id",), "auth", "users", ("id",))
    project = ForeignKeyShape(("project_id",), "public", "projects", ("id",))
    by_code = ForeignKeyShape(("project_code",), "public", "projects", ("code",))
    assert suggested_entry("projects", (users,), "public", ("sessions",)) == "projects: {owner: owner_id}"
    assert suggested_entry("tasks", (project,), "public", ("projects",)) == (
        "tasks: {through: {column: project_id, table: projects}}"
    )
    assert suggested_entry("tasks", (by_code,), "public", ("projects",)) == (
        "tasks: {through: {column: project_code, table: projects, key: code}}"
    )
    assert suggested_entry("tasks", (project,), "public", ("sessions",)) is None
    # A membership table references both: its parent comes first, never `owner: user_id` (issue 14's self-join).
    member = ForeignKeyShape(("user_id",), "auth", "users", ("id",))
    assert suggested_entry("project_members", (member, project), "public", ("projects",)) == (
        "project_members: {through: {column: project_id, table: projects}}"
    )
    assert suggested_entry("labels", (), "public", ("sessions",)) is None


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        ("access-model.yaml", {}),
        ("tests/fixtures/teams_app/access-model.yaml", {}),
        ("access-model.yaml", {"actions": {"through": {"column": "turn_id", "table": "turns"}, "copyOwner": True}}),
    ],
)
def test_the_model_as_plain_data_reads_back_the_same(path: str, extra: dict) -> None:
    """What the program hands the provider (model_to_plain) is the very model it parsed."""
    model = load_model_file(REPO / path, setting="m")
    if extra:
        raw = model_to_plain(model)
        model = parse_model({**raw, "tables": {**raw["tables"], **extra}}, setting="m")
    assert parse_model(model_to_plain(model), setting="again") == model


def test_a_model_file_that_is_not_yaml_is_named_in_one_line(tmp_path: Path) -> None:
    from supabase_access.model.access_model import load_model_file

    path = tmp_path / "model.yaml"
    path.write_text("schema: public\ntables:\n  sessions: {owner: user_id\n")
    with pytest.raises(ModelError) as info:
        load_model_file(path, setting="supabase-access:modelFile")
    message = str(info.value)
    assert message.startswith(f"supabase-access:modelFile: {path} line 4 column 1 is not valid YAML: ")
    assert "\n" not in message


def test_functions_name_what_the_api_may_call_and_who() -> None:
    raw = {"tables": {"notes": {"owner": "user_id"}}}
    model = parse_model({**raw, "functions": {"search_notes": ["authenticated"], "api.stats": ["anon"]}}, setting="m")
    assert [(f.qualified, f.roles) for f in model.functions] == [
        ("public.search_notes", ("authenticated",)),
        ("api.stats", ("anon",)),
    ]
    assert parse_model(raw, setting="m").functions == ()
    for functions, message in (
        ({"search_notes": ["service_role"]}, "m.functions.search_notes: expected a list of the roles"),
        ({"search_notes": "authenticated"}, "m.functions.search_notes: expected a list of the roles"),
        ({"a.b.c": []}, "m.functions.a.b.c: expected a function name or schema.name"),
        ({"Bad-Name": []}, "m.functions.Bad-Name: 'Bad-Name' is not a valid identifier"),
        (["search_notes"], "m.functions: expected a mapping"),
    ):
        with pytest.raises(ModelError, match=re.escape(message)):
            parse_model({**raw, "functions": functions}, setting="m")
