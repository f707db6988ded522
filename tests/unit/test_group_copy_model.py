"""Group copies (the model's `copyGroup`): the model and plan, and the SQL that keeps them (the owner
copy's, with the group table's key in place of the owner column)."""

from __future__ import annotations

from typing import Any

import pytest

from supabase_access.model.access_model import Hop, ModelError, model_to_plain, parse_model
from supabase_access.model.owner_copy import OwnerCopyNames
from supabase_access.model.profiles import InGroup, plan_access
from supabase_access.provider.base import InputError
from supabase_access.provider.resources.table_policies import added_columns
from supabase_access.sql import statements as render
from tests.support.owner_copy import group_copy_model, group_copy_model_data

pytestmark = pytest.mark.unit

MEMBER_TEST = '"project_id" = any (array(select "supabase_access_rls"."project_members_groups"()))'


def test_copy_group_true_is_named_like_the_column_holding_the_group_key() -> None:
    assert group_copy_model().table("comments").group_copy == "project_id"
    assert group_copy_model("project").table("comments").group_copy == "project"
    again = parse_model(model_to_plain(group_copy_model()), setting="m")
    assert again.table("comments").group_copy == "project_id"


@pytest.mark.parametrize(
    ("table", "copy", "message"),
    [
        ("tasks", True, r"tasks\.copyGroup: tasks holds its group's key already \(project_id\)"),
        ("templates", True, r"templates\.copyGroup: only a table under a group"),
        ("comments", "task_id", r"comments\.copyGroup: the copy would be named task_id"),
        ("comments", "author_id", r"comments\.copyGroup: the copy would be named author_id"),
        ("comments", 3, r"comments\.copyGroup: expected true"),
        ("comments", "Project", r"comments\.copyGroup: 'Project' is not a valid identifier"),
    ],
)
def test_copy_group_mistakes_name_the_setting(table: str, copy: object, message: str) -> None:
    raw: dict[str, Any] = group_copy_model_data()
    del raw["tables"]["comments"]["copyGroup"]
    raw["tables"][table]["copyGroup"] = copy
    with pytest.raises(ModelError, match=message):
        parse_model(raw, setting="m")


def test_the_owner_profile_plans_the_copy_and_tests_membership_on_it() -> None:
    plan = plan_access(group_copy_model(), "owner")
    (copy,) = plan.owner_copies
    assert (copy.table, copy.column, copy.root_table, copy.root_column, copy.group) == (
        "comments",
        "project_id",
        "projects",
        "id",
        True,
    )
    assert [(h.table, h.parent) for h in copy.hops] == [("comments", "tasks"), ("tasks", "projects")]
    rules = {(r.command, r.name): r for a in plan.tables if a.table == "comments" for r in a.rules}
    select = rules[("SELECT", "comments_select_member")].using
    # One hop from the copy to the group: the member function once, no task ids gathered.
    assert isinstance(select, InGroup) and select.hops == (Hop("comments", "project_id", "projects", "id"),)
    assert render.render_predicate("public", select) == MEMBER_TEST
    update = rules[("UPDATE", "comments_update_member")]
    assert update.using == select and update.with_check == select
    deleter_rule = rules[("DELETE", "comments_delete_author_or_admin")].using
    assert deleter_rule is not None
    deleter = render.render_predicate("public", deleter_rule)
    assert '"project_id" = any (array(select "supabase_access_rls"."project_members_admin_groups"()))' in deleter
    # Without the copy the path is walked; the open profile never gets the column.
    plain = plan_access(parse_model({**group_copy_model_data(False)}, setting="m"), "owner")
    walked = next(r for a in plain.tables if a.table == "comments" for r in a.rules if r.command == "SELECT")
    assert walked.using is not None
    assert '"task_id" = any' in render.render_predicate("public", walked.using)
    assert plan_access(group_copy_model(), "open").owner_copies == ()


def test_tables_below_the_copy_search_it_instead_of_the_path() -> None:
    raw = group_copy_model_data()
    raw["tables"]["reactions"] = {"through": {"column": "comment_id", "table": "comments"}, "write": "members"}
    plan = plan_access(parse_model(raw, setting="m"), "owner")
    select = next(r for a in plan.tables if a.table == "reactions" for r in a.rules if r.command == "SELECT")
    assert select.using is not None
    assert render.render_predicate("public", select.using) == (
        '"comment_id" = any (array(select "id" from "public"."comments" where '
        '"project_id" = any (array(select "supabase_access_rls"."project_members_groups"()))))'
    )


def test_the_copy_takes_the_group_key_and_references_the_group() -> None:
    (copy,) = plan_access(group_copy_model(), "owner").owner_copies
    names = OwnerCopyNames("public", copy.table, copy.column, copy.hops, copy.root_column, group=True)
    assert render.owner_copy_function_body("public", names) == (
        '\nbegin\n  new."project_id" := (select "up2"."id" from "public"."tasks" "up1" '
        'join "public"."projects" "up2" on "up2"."id" = "up1"."project_id" where "up1"."id" = new."task_id");'
        "\n  return new;\nend\n"
    )
    assert [(w.table, w.column) for w in names.watched] == [("tasks", "project_id"), ("projects", "id")]
    assert render.add_owner_copy_foreign_key("public", names).as_string() == (
        'alter table "public"."comments" add constraint "comments_project_id_copy_fkey" foreign key ("project_id") '
        'references "public"."projects" ("id") on delete cascade not valid'
    )
    owner = OwnerCopyNames("public", copy.table, copy.column, copy.hops, "owner_id")
    assert "references auth.users (id)" in render.add_owner_copy_foreign_key("public", owner).as_string()


def test_an_added_column_may_take_another_columns_type() -> None:
    assert added_columns({"comments": {"project_id": "projects.id"}}) == {"comments": {"project_id": "projects.id"}}
    assert added_columns({"cards": {"org_id": "bigint"}}) == {"cards": {"org_id": "bigint"}}
    for bad in ("projects.id; drop table x", "projects.id.x", "numeric", "Projects.id"):
        with pytest.raises(InputError, match=r"addedColumns\.comments\.project_id: unsupported type"):
            added_columns({"comments": {"project_id": bad}})
