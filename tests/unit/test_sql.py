"""SQL rendering: identifiers quoted by psycopg, predicates, and the guide's scripts kept in sync."""

from pathlib import Path

import pytest

from supabase_access.model.access_model import load_model_file
from supabase_access.model.buckets import CALLER_FUNCTION, caller_function
from supabase_access.model.policy import PolicySpec
from supabase_access.model.profiles import plan_access
from supabase_access.sql import statements as render

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


def model():
    return load_model_file(REPO / "access-model.yaml", setting="supabase-access:modelFile")


def test_owner_predicates_wrap_auth_uid_and_avoid_per_row_joins() -> None:
    policies = render.plan_policies(plan_access(model(), "owner"))
    sessions = {p.name: p for p in policies["sessions"]}
    assert sessions["sessions_select_own"].using == '"user_id" = (select auth.uid())'
    actions = {p.name: p for p in policies["actions"]}
    assert actions["actions_insert_own"].with_check == (
        '"turn_id" = any (array(select "hop1"."id" from "public"."turns" "hop1" '
        'join "public"."sessions" "hop2" on "hop2"."id" = "hop1"."session_id" '
        'where "hop2"."user_id" = (select auth.uid())))'
    )
    turns = {p.name: p for p in policies["turns"]}
    assert turns["turns_insert_own"].with_check == (
        '"session_id" = any (array(select "id" from "public"."sessions" where "user_id" = (select auth.uid())))'
    )


def test_create_policy_quotes_identifiers() -> None:
    spec = PolicySpec("p", "SELECT", ("anon",), True, "true", None)
    text = render.create_policy("public", "weird table", spec).as_string()
    assert text.startswith('create policy "p" on "public"."weird table" as permissive for select to "anon"')


def test_restrictive_policy_renders_as_restrictive() -> None:
    spec = PolicySpec("no_anon", "INSERT", ("authenticated",), False, None, "false")
    assert "as restrictive for insert" in render.create_policy("public", "t", spec).as_string()


def test_guide_scripts_in_database_are_rendered_from_the_open_profile() -> None:
    allow, remove_fk = render.render_guide_scripts(plan_access(model(), "open"))
    assert (REPO / "database/04-allow-anonymous-users.sql").read_text() == allow, "run scripts/render-guide-sql"
    assert (REPO / "database/05-remove-user-fkey-constraint.sql").read_text() == remove_fk, (
        "run scripts/render-guide-sql"
    )


def test_a_kept_foreign_key_renders_as_postgresql_prints_it() -> None:
    assert (
        render.foreign_key_definition(["user_id"], "auth", "users", ["id"], "cascade")
        == 'FOREIGN KEY ("user_id") REFERENCES "auth"."users"("id") ON DELETE CASCADE'
    )
    with pytest.raises(ValueError, match="ON DELETE"):
        render.foreign_key_definition(["user_id"], "auth", "users", ["id"], "cascade; drop table x")


@pytest.mark.parametrize(
    ("access", "function"),
    [
        ("owner-folder", CALLER_FUNCTION),
        ("owner-id", CALLER_FUNCTION),
        ("member", None),
        ("public-read", None),
        ("service-only", None),
        ("open", None),
    ],
)
def test_the_owner_kinds_read_the_caller_through_the_function_of_ours(access: str, function: str | None) -> None:
    assert caller_function(access) == function
    policies = render.bucket_policies("b", access, "s.groups" if access == "member" else None, caller_function=function)
    expressions = [e for p in policies for e in (p.using, p.with_check) if e is not None]
    if function is None:
        assert not any("auth_uid_text" in e for e in expressions)
        return
    assert expressions and all(
        '(select "supabase_access_rls"."auth_uid_text"())' in e and "auth.uid()" not in e for e in expressions
    )
