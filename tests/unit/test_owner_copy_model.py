"""Owner copies (the model's `copyOwner`): the model and plan, names, and the SQL that keeps them."""

from __future__ import annotations

from typing import Any

import pytest

from supabase_access.model.access_model import ModelError, load_model_file, parse_model
from supabase_access.model.hardening import RetentionSetting, retention_target
from supabase_access.model.owner_copy import OwnerCopyNames, marked_by, marker
from supabase_access.model.profiles import AllOf, OwnedByCurrentUser, plan_access
from supabase_access.sql import statements as render
from tests.support.owner_copy import copy_model
from tests.support.paths import MODEL_FILE

pytestmark = pytest.mark.unit

REFERENCE = load_model_file(MODEL_FILE, setting="supabase-access:modelFile")


REFERENCE_WITH_OWN_COLUMN = parse_model(
    {
        "tables": {
            "sessions": {"owner": "user_id"},
            "turns": {"through": {"column": "session_id", "table": "sessions"}},
            "actions": {"owner": "user_id", "through": {"column": "turn_id", "table": "turns"}},
        }
    },
    setting="m",
)


# --- model and plan -------------------------------------------------------------------------------


def test_copy_owner_true_is_named_like_the_owner_column_it_copies() -> None:
    actions = copy_model().table("actions")
    assert (actions.owner_column, actions.owner_copy) == ("user_id", True)
    assert copy_model("owner_id").table("actions").owner_column == "owner_id"
    assert not REFERENCE.table("actions").owner_copy


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"owner": "user_id", "through": {"column": "turn_id", "table": "turns"}, "copyOwner": True},
            "give either 'owner'",
        ),
        ({"copyOwner": True}, "only a table owned through a path"),
        ({"through": {"column": "turn_id", "table": "turns"}, "copyOwner": "turn_id"}, "the path's own column"),
        ({"through": {"column": "turn_id", "table": "turns"}, "copyOwner": 3}, "expected true"),
        ({"through": {"column": "turn_id", "table": "turns"}, "copyOwner": "User Id"}, "not a valid identifier"),
    ],
)
def test_copy_owner_mistakes_name_the_setting(spec: dict[str, Any], message: str) -> None:
    raw = {
        "tables": {
            "sessions": {"owner": "user_id"},
            "turns": {"through": {"column": "session_id", "table": "sessions"}},
            "actions": spec,
        }
    }
    with pytest.raises(ModelError, match=message) as caught:
        parse_model(raw, setting="m")
    assert "m.tables.actions" in str(caught.value)


def test_the_owner_profile_plans_the_copy_and_checks_the_column_alone() -> None:
    plan = plan_access(copy_model(), "owner")
    (copy,) = plan.owner_copies
    assert (copy.table, copy.column, copy.root_table, copy.root_column) == ("actions", "user_id", "sessions", "user_id")
    assert [(h.table, h.parent) for h in copy.hops] == [("actions", "turns"), ("turns", "sessions")]
    rules = {r.command: r for r in next(a for a in plan.tables if a.table == "actions").rules}
    by_column = OwnedByCurrentUser((), "actions", "user_id")
    assert rules["SELECT"].using == by_column and rules["DELETE"].using == by_column
    # Writes too: the trigger took the copy from the parent before the policy sees the row.
    assert rules["INSERT"].with_check == by_column and rules["UPDATE"].with_check == by_column
    # A column the app keeps itself (owner + through) is checked with the path on writes.
    kept = plan_access(REFERENCE_WITH_OWN_COLUMN, "owner")
    kept_insert = next(r for a in kept.tables if a.table == "actions" for r in a.rules if r.command == "INSERT")
    assert isinstance(kept_insert.with_check, AllOf) and kept_insert.with_check.parts[0] == by_column
    assert render.render_predicate("public", by_column) == '"user_id" = (select auth.uid())'
    # The open profile has no copy: dev stacks never get the column.
    assert plan_access(copy_model(), "open").owner_copies == ()


def test_retention_purges_root_tables_only_not_copies() -> None:
    target = retention_target(copy_model(), RetentionSetting(30, None, "sessions", "0 3 * * *"))
    assert [t.table for t in target.owned_tables] == ["sessions"]


def test_names_fit_postgres_and_the_triggers_watch_each_table_above() -> None:
    (copy,) = plan_access(copy_model(), "owner").owner_copies
    names = OwnerCopyNames("public", copy.table, copy.column, copy.hops, copy.root_column)
    assert [(w.table, w.column) for w in names.watched] == [("turns", "session_id"), ("sessions", "user_id")]
    assert names.triggers == (
        ("actions", "supabase_access_owner_copy_user_id_insert"),
        ("actions", "supabase_access_owner_copy_user_id_update"),
        ("turns", "supabase_access_owner_copy_actions_user_id"),
        ("sessions", "supabase_access_owner_copy_actions_user_id"),
    )
    long = OwnerCopyNames("public", "t" * 60, "c" * 60, copy.hops, "user_id")
    assert all(len(n) <= 63 for n in (long.index, long.index_build, long.check_constraint, *long.functions))
    assert marked_by(marker("prod", "about")) == "prod" and marked_by("someone's note") is None


def test_the_copy_is_computed_in_one_join_up_the_path() -> None:
    (copy,) = plan_access(copy_model(), "owner").owner_copies
    names = OwnerCopyNames("public", copy.table, copy.column, copy.hops, copy.root_column)
    assert render.owner_copy_function_body("public", names) == (
        '\nbegin\n  new."user_id" := (select "up2"."user_id" from "public"."turns" "up1" '
        'join "public"."sessions" "up2" on "up2"."id" = "up1"."session_id" where "up1"."id" = new."turn_id");'
        "\n  return new;\nend\n"
    )
    from_sessions = render.owner_copy_ancestor_function_body("public", names, names.watched[1])
    assert '_owner := new."user_id"' in from_sessions
    assert (
        '"t"."turn_id" = any (array(select "down1"."id" from "public"."turns" "down1" '
        'where "down1"."session_id" = new."id"))' in from_sessions
    )


def test_copy_owner_under_a_group_is_refused() -> None:
    raw = {
        "tables": {
            "projects": {"owner": "owner_id"},
            "project_members": {"membership": {"group": "projects", "column": "project_id", "user": "user_id"}},
            "tasks": {"member": {"group": "projects", "column": "project_id"}, "write": "members"},
            "comments": {"through": {"column": "task_id", "table": "tasks"}, "write": "members", "copyOwner": True},
        }
    }
    with pytest.raises(ModelError, match=r"comments\.copyOwner: the path ends at the group 'projects'"):
        parse_model(raw, setting="m")
