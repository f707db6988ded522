"""The access kinds beyond owner and through (membership, member, publicRead, serviceOnly): the
model's checks, the policies and grants the owner profile gives each, and how they travel as data.
No database: what PostgreSQL makes of them is tests/e2e/test_e2e_groups.py."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from supabase_access.model.access_model import ForeignKeyShape, ModelError, model_to_plain, parse_model
from supabase_access.model.policy_lookups import PolicyLookup, policy_lookups
from supabase_access.model.profiles import InGroup, plan_access
from supabase_access.model.rule_data import predicate_from_plain, predicate_to_plain
from supabase_access.provider.base import InputError
from supabase_access.provider.preflight.exposed import report_uncovered
from supabase_access.sql import statements as render
from supabase_access.sql.catalog import ExposedTable
from tests.support.program import by_type, run_program
from tests.support.teams_app import MODEL_FILE, TABLES, teams_model

pytestmark = pytest.mark.unit

MEMBERSHIP = {"group": "projects", "column": "project_id", "user": "user_id", "role": "role", "admins": ["admin"]}


NOTE_GROUP = {"group": "projects", "column": "project_id"}


def groups(**tables: Any) -> dict[str, Any]:
    """A model with a group (projects) and its membership table, plus `tables`."""
    return {"tables": {"projects": {"owner": "owner_id"}, "project_members": {"membership": MEMBERSHIP}, **tables}}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"tables": {"m": {"membership": {**MEMBERSHIP, "group": "nope"}}}},
            "cfg.tables.m.membership.group: unknown table 'nope'",
        ),
        (
            {
                "tables": {
                    "orgs": {"owner": "o"},
                    "projects": {"through": {"column": "org_id", "table": "orgs"}},
                    "m": {"membership": MEMBERSHIP},
                }
            },
            "cfg.tables.m.membership.group: the group table 'projects' must be owned directly",
        ),
        (
            groups(more_members={"membership": MEMBERSHIP}),
            "cfg.tables.more_members.membership.group: 'projects' already has the membership table 'project_members'",
        ),
        (
            groups(x={"membership": {**MEMBERSHIP, "role": None, "admins": ["admin"]}}),
            "membership.admins: name the column holding each member's role",
        ),
        (groups(x={"membership": {**MEMBERSHIP, "admins": "admin"}}), "membership.admins: expected a list"),
        (groups(x={"membership": {**MEMBERSHIP, "admins": ["a\nb"]}}), "membership.admins: expected a list"),
        (groups(x={"membership": {**MEMBERSHIP, "admins": ["a" * 64]}}), "membership.admins: expected a list"),
        (
            groups(x={"membership": {**MEMBERSHIP, "user": "user_id; drop table projects"}}),
            "cfg.tables.x.membership.user: 'user_id; drop table projects' is not a valid identifier",
        ),
        (groups(x={"membership": {**MEMBERSHIP, "extra": 1}}), "cfg.tables.x.membership.extra: unknown key; known"),
        (
            groups(x={"membership": {**MEMBERSHIP, "usr": 1}}),
            "cfg.tables.x.membership.usr: unknown key (did you mean user?)",
        ),
        (
            groups(x={"membership": MEMBERSHIP, "owner": "u"}),
            "cfg.tables.x.membership: a membership table's access is generated from it alone, remove ['owner']",
        ),
        (
            groups(tasks={"member": {"group": "projects", "column": "project_id"}}),
            "cfg.tables.tasks.write: rows under the group 'projects' are read by its members; say who writes them",
        ),
        (
            groups(tasks={"member": {"group": "projects", "column": "project_id"}, "write": "everyone"}),
            "cfg.tables.tasks.write: 'everyone' is not one of members, admins, owner, author",
        ),
        (
            groups(notes={"owner": "user_id", "write": "members"}),
            "cfg.tables.notes.write: only rows under a group",
        ),
        (
            {
                "tables": {
                    "projects": {"owner": "owner_id"},
                    "project_members": {"membership": {**MEMBERSHIP, "role": None, "admins": []}},
                    "tasks": {"member": {"group": "projects", "column": "project_id"}, "write": "admins"},
                }
            },
            "cfg.tables.tasks.write: 'admins' needs admin roles in cfg.tables.project_members.membership",
        ),
        (
            {"tables": {"notes": {"owner": "u"}, "tasks": {"member": {"group": "notes", "column": "note_id"}}}},
            "cfg.tables.tasks.member.group: 'notes' is no group",
        ),
        (
            groups(tasks={"member": {"group": "projects", "column": "project_id", "key": "slug"}, "write": "members"}),
            "cfg.tables.tasks: the path reaches the group 'projects' by its column 'slug', but 'project_members' "
            "names its rows by 'id'",
        ),
        (
            groups(x={"through": {"column": "m", "table": "project_members"}}),
            "cfg.tables.x.through.table: 'project_members' has no owner to inherit",
        ),
        (
            groups(
                tasks={"member": {"group": "projects", "column": "project_id"}, "write": "members"},
                comments={"owner": "author_id", "through": {"column": "task_id", "table": "tasks"}},
            ),
            "cfg.tables.comments.owner: rows under the group 'projects' are its members'",
        ),
        (
            groups(x={"member": {"group": "projects", "column": "p"}, "through": {"column": "p", "table": "projects"}}),
            "cfg.tables.x: give 'through' or 'member', not both",
        ),
        (
            groups(notes={"member": {"group": "projects", "column": "project_id"}, "write": "author"}),
            "cfg.tables.notes.author: 'write: author' needs the column holding each row's author",
        ),
        (
            groups(notes={"member": NOTE_GROUP, "write": "members", "author": "author_id"}),
            "cfg.tables.notes.author: only with 'write: author'",
        ),
        (
            groups(notes={"member": NOTE_GROUP, "write": "admins", "delete": "owner"}),
            "cfg.tables.notes.delete: only with 'write: author'",
        ),
        (
            groups(notes={"member": NOTE_GROUP, "write": "author", "author": "author_id", "delete": "author"}),
            "cfg.tables.notes.delete: 'author' is not one of members, admins, owner",
        ),
        (
            groups(notes={"member": NOTE_GROUP, "write": "author", "author": "project_id"}),
            "cfg.tables.notes.author: project_id is the path's own column",
        ),
        (
            groups(notes={"member": NOTE_GROUP, "write": "author", "author": "a; drop table x"}),
            "cfg.tables.notes.author: 'a; drop table x' is not a valid identifier",
        ),
        (
            {
                "tables": {
                    "projects": {"owner": "owner_id"},
                    "project_members": {"membership": {**MEMBERSHIP, "role": None, "admins": []}},
                    "notes": {"member": NOTE_GROUP, "write": "author", "author": "a", "delete": "admins"},
                }
            },
            "cfg.tables.notes.delete: 'admins' needs admin roles in cfg.tables.project_members.membership",
        ),
        (
            groups(x={"membership": {**MEMBERSHIP, "role": None, "admins": [], "grants": {"member": "admins"}}}),
            "cfg.tables.x.membership.grants: name the column holding each member's role",
        ),
        (
            groups(x={"membership": {**MEMBERSHIP, "grants": {"admin": "admin"}}}),
            "cfg.tables.x.membership.grants.admin: 'admin' is not one of owner, admins",
        ),
        (groups(x={"membership": {**MEMBERSHIP, "grants": ["admin"]}}), "cfg.tables.x.membership.grants: expected"),
        (
            groups(x={"membership": {**MEMBERSHIP, "grants": {"a\nb": "owner"}}}),
            "cfg.tables.x.membership.grants: 'a\\nb' is not a role value",
        ),
        ({"tables": {"audit": {"serviceOnly": True, "owner": "u"}}}, "cfg.tables.audit.serviceOnly: a service-only"),
        ({"tables": {"audit": {"serviceOnly": "yes"}}}, "cfg.tables.audit.serviceOnly: expected true or false"),
        ({"tables": {"labels": {"publicRead": {"anon": "yes"}}}}, "cfg.tables.labels.publicRead: expected true"),
        ({"tables": {"labels": {"publicRead": {"everyone": True}}}}, "cfg.tables.labels.publicRead.everyone: unknown"),
        ({"tables": {"labels": {"publicRead": False}}}, "cfg.tables.labels: give 'owner', 'through', or both"),
    ],
)
def test_bad_access_kinds_name_the_setting(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelError, match=r"^cfg") as info:
        parse_model(raw, setting="cfg")
    assert message in str(info.value)


def test_the_teams_model_has_every_kind() -> None:
    model = teams_model()
    assert model.table_names == TABLES
    assert model.group_names == ("projects",)
    hops, membership = model.group_path("comments") or ((), None)
    assert [h.parent for h in hops] == ["tasks", "projects"] and membership is not None
    assert membership.name == "project_members"
    assert model.group_path("projects") is None and model.group_path("labels") is None


def test_the_new_keys_travel_as_plain_data_and_old_tables_keep_their_policies() -> None:
    model = teams_model()
    assert parse_model(model_to_plain(model), setting="again") == model
    plain = model_to_plain(model)["tables"]
    assert plain["comments"] == {
        "through": {"column": "task_id", "table": "tasks", "key": "id"},
        "write": "author",
        "author": "author_id",
        "delete": "admins",
    }
    assert plain["project_members"]["membership"]["grants"] == {"admin": "owner", "member": "admins"}
    # Without the new keys a table's policies are exactly what they were (an upgrade changes nothing).
    before = groups(
        comments={"through": {"column": "task_id", "table": "tasks"}, "write": "members"},
        tasks={"member": NOTE_GROUP, "write": "admins"},
    )
    policies = render.plan_policies(plan_access(parse_model(before, setting="cfg"), "owner"))
    assert sorted(p.name for p in policies["project_members"]) == [
        "project_members_delete_admin_or_self",
        "project_members_insert_admin",
        "project_members_select_member",
    ]
    assert sorted(p.name for p in policies["comments"]) == [
        "comments_delete_member",
        "comments_insert_member",
        "comments_select_member",
        "comments_update_member",
    ]


def policies_by_table(profile: str) -> dict[str, dict[str, Any]]:
    plan = plan_access(teams_model(), profile)
    return {table: {p.name: p for p in specs} for table, specs in render.plan_policies(plan).items()}


def test_owner_profile_gives_one_permissive_policy_per_role_and_command() -> None:
    # Supabase's linter (multiple_permissive_policies): several would each run for every row.
    for table, specs in policies_by_table("owner").items():
        per_role = Counter((role, p.command) for p in specs.values() if p.permissive for role in p.roles)
        assert all(n == 1 for n in per_role.values()), (table, per_role)


def test_owner_profile_policies_call_functions_once_per_statement() -> None:
    # auth.uid() and the group helpers only inside `(select ...)` (an initPlan), never per row;
    # rows are matched with `= any (array(...))`, never with a join per row.
    for table, specs in policies_by_table("owner").items():
        for spec in specs.values():
            for clause in filter(None, (spec.using, spec.with_check)):
                assert "auth.uid()" not in clause.replace("(select auth.uid())", ""), (table, clause)
                helper = '"supabase_access_rls".'
                assert clause.count(helper) == clause.count(f"array(select {helper}"), (table, clause)
                assert " in (" not in clause


def test_owner_profile_policies_per_kind() -> None:
    policies = policies_by_table("owner")
    groups_of = '"supabase_access_rls"."project_members_groups"()'
    admin_of = '"supabase_access_rls"."project_members_admin_groups"()'
    projects = policies["projects"]
    assert projects["projects_select_owner_or_member"].using == (
        f'("owner_id" = (select auth.uid())) or ("id" = any (array(select {groups_of})))'
    )
    assert projects["projects_update_own"].with_check == '"owner_id" = (select auth.uid())'
    members = policies["project_members"]
    assert sorted(members) == [
        "project_members_delete_grantor_or_self",
        "project_members_insert_grantor",
        "project_members_select_member",
        "project_members_update_grantor",
    ]
    # grants: {admin: owner, member: admins}: who grants a role also revokes it; nobody their own row;
    # the owner's row holds an admin role and is nobody else's.
    owned = '"project_id" = any (array(select "id" from "public"."projects" where "owner_id" = (select auth.uid())))'
    owner_row = (
        '("project_id", "user_id") <> all (array(select (g."id", g."owner_id") from "public"."projects" g '
        f'where g."id" = any (array(select {admin_of}))))'
    )
    managed = (
        f"(((\"role\"::text = any ('{{admin}}'::text[])) and ({owned})) or "
        f'(("role"::text = any (\'{{member}}\'::text[])) and ("project_id" = any (array(select {admin_of}))))) and '
        f'("user_id" <> (select auth.uid())) and (("role"::text = any (\'{{admin}}\'::text[])) or ({owner_row}))'
    )
    assert members["project_members_insert_grantor"].with_check == managed
    assert (members["project_members_update_grantor"].using, members["project_members_update_grantor"].with_check) == (
        managed,
        managed,
    )
    assert members["project_members_delete_grantor_or_self"].using == (
        f'({managed}) or (("user_id" = (select auth.uid())) and ({owner_row}))'
    )
    comments = policies["comments"]
    in_p = '"task_id" = any (array(select "id" from "public"."tasks" where "project_id" = any (array(select {}))))'
    in_group = in_p.format(groups_of)
    author = '"author_id" = (select auth.uid())'
    # Permissive: the members' policies of write: members; restrictive: the row is the user's own.
    assert {name: (p.permissive, p.using, p.with_check) for name, p in comments.items()} == {
        "comments_select_member": (True, in_group, None),
        "comments_insert_member": (True, None, in_group),
        "comments_update_member": (True, in_group, in_group),
        "comments_delete_member": (True, in_group, None),
        "comments_insert_author": (False, None, author),
        "comments_update_author": (False, author, author),
        "comments_delete_author_or_admin": (False, f"({author}) or ({in_p.format(admin_of)})", None),
    }
    assert policies["tasks"]["tasks_update_admin"].with_check == f'"project_id" = any (array(select {admin_of}))'
    assert policies["comments"]["comments_select_member"].using == (
        '"task_id" = any (array(select "id" from "public"."tasks" '
        f'where "project_id" = any (array(select {groups_of}))))'
    )
    assert policies["milestones"]["milestones_delete_group_owner"].using == (
        '"project_id" = any (array(select "id" from "public"."projects" where "owner_id" = (select auth.uid())))'
    )
    (labels,) = policies["labels"].values()
    assert (labels.command, labels.roles, labels.using) == ("SELECT", ("anon", "authenticated"), "true")
    assert policies["templates"]["templates_select_public"].roles == ("authenticated",)
    assert sorted(policies["templates"]) == [
        "templates_delete_own",
        "templates_insert_own",
        "templates_select_public",
        "templates_update_own",
    ]
    assert policies["audit_log"] == {}


def test_owner_profile_grants_per_kind() -> None:
    plan = plan_access(teams_model(), "owner")
    crud = ("SELECT", "INSERT", "UPDATE", "DELETE")
    api: dict[str, dict[str, tuple[str, ...]]] = {
        "projects": {"anon": (), "authenticated": crud},
        "project_members": {"anon": (), "authenticated": crud},
        "tasks": {"anon": (), "authenticated": crud},
        "milestones": {"anon": (), "authenticated": crud},
        "comments": {"anon": (), "authenticated": crud},
        "labels": {"anon": ("SELECT",), "authenticated": ("SELECT",)},
        "templates": {"anon": (), "authenticated": crud},
        "audit_log": {"anon": (), "authenticated": ()},
    }
    # Every kind declares the server's privileges itself: on today's platform it holds no others.
    assert {table: plan.grants_on(table) for table in TABLES} == {
        table: grants | {"service_role": crud} for table, grants in api.items()
    }


def test_open_profile_keeps_every_table_open() -> None:
    plan = plan_access(teams_model(), "open")
    assert plan.group_lookups == ()
    for access in plan.tables:
        assert access.grants is None
        assert sorted(r.command for r in access.rules) == ["DELETE", "INSERT", "SELECT", "UPDATE"]
    assert plan.grants == {
        role: ("SELECT", "INSERT", "UPDATE", "DELETE") for role in ("anon", "authenticated", "service_role")
    }


def test_policy_lookups_cover_the_helpers_and_paths() -> None:
    assert policy_lookups(plan_access(teams_model(), "owner")) == (
        PolicyLookup("project_members", "user_id", "project_id"),
        PolicyLookup("projects", "owner_id", "id"),
        PolicyLookup("tasks", "project_id", "id"),
    )


def test_group_predicates_travel_as_data_and_hostile_names_are_refused() -> None:
    plan = plan_access(teams_model(), "owner")
    for access in plan.tables:
        for rule in access.rules:
            for predicate in (rule.using, rule.with_check):
                if predicate is not None:
                    assert predicate_from_plain(predicate_to_plain(predicate), "p") == predicate
    bad = predicate_to_plain(InGroup((), "project_id", "supabase_access_rls", "groups"))
    bad["inGroup"]["helper"] = 'groups"(); drop table x; --'
    with pytest.raises(ModelError, match=r"^p.inGroup.helper: .* is not a valid identifier"):
        predicate_from_plain(bad, "p")
    with pytest.raises(ModelError, match=r"^p.anyOf: only row predicates can be combined"):
        predicate_from_plain({"anyOf": [{"always": True}]}, "p")


def test_group_functions_quote_role_values_and_pick_a_free_dollar_tag() -> None:
    (lookup,) = plan_access(teams_model(), "owner").group_lookups
    assert "m.\"role\"::text = any ('{admin}'::text[])" in render.group_function_body("public", lookup, admins=True)
    assert "role" not in render.group_function_body("public", lookup, admins=False)
    hostile = groups()
    hostile["tables"]["project_members"] = {"membership": {**MEMBERSHIP, "admins": ["o'x $groups$"]}}
    (lookup,) = plan_access(parse_model(hostile, setting="cfg"), "owner").group_lookups
    statement = render.create_group_function("public", lookup, admins=True).as_string(None)
    assert "'{\"o''x $groups$\"}'::text[]" in statement
    assert statement.endswith("$groups1$")


def test_the_group_ids_function_is_the_member_groups_as_one_text_array() -> None:
    (lookup,) = plan_access(teams_model(), "owner").group_lookups
    statement = render.create_group_function("public", lookup, admins=False, as_text=True).as_string(None)
    assert '"supabase_access_rls"."project_members_group_ids"() returns text[]' in statement
    body = render.group_function_body("public", lookup, admins=False, as_text=True)
    member = render.group_function_body("public", lookup, admins=False)
    assert body.startswith("\nbegin\n  return array(\n") and body.endswith(");\nend\n")
    # The same two queries as the member function's, each id as text.
    assert body.replace("::text", "").replace("array(", "query").replace(");", ";") == member
    assert lookup.member_ids_function == "project_members_group_ids"
    (policy, *_) = render.bucket_policies("files", "member", "supabase_access_rls.project_members_group_ids")
    assert '= any ((select "supabase_access_rls"."project_members_group_ids"())::text[])' in (policy.using or "")


def test_a_teams_stack_declares_the_group_functions_and_per_table_grants() -> None:
    resources = by_type(run_program({"supabase-access:environment": "prod", "supabase-access:modelFile": MODEL_FILE}))
    (functions,) = resources["supabase-access:index:GroupFunctions"]
    assert functions.name == "project_members-group-functions"
    assert functions.inputs["admins"] == ["admin"] and functions.inputs["groupOwnerColumn"] == "owner_id"
    rls = {
        r.inputs["table"]: r.inputs.get("revokeUndeclared") for r in resources["supabase-access:index:RowLevelSecurity"]
    }
    assert rls == {
        **{t: None for t in TABLES},
        "labels": {"anon": ["INSERT", "UPDATE", "DELETE"], "authenticated": ["INSERT", "UPDATE", "DELETE"]},
    }
    (preflight,) = resources["supabase-access:index:AccessPreflight"]
    assert [h["membershipTable"] for h in preflight.inputs["groupHelpers"]] == ["project_members"]
    crud = ["SELECT", "INSERT", "UPDATE", "DELETE"]
    assert preflight.inputs["tableGrants"]["audit_log"] == {"anon": [], "authenticated": [], "service_role": crud}
    grants = {
        (g.inputs["role"], g.inputs["objects"][0]): g.inputs["privileges"]
        for g in resources["postgresql:index/grant:Grant"]
    }
    assert grants["anon", "labels"] == ["SELECT"] and grants["authenticated", "audit_log"] == []
    assert all(grants["service_role", table] == crud for table in TABLES)
    # The server too holds what its Grant declares alone (the legacy platform gave it TRUNCATE, ...).
    unguarded = {
        r.inputs["table"]: r.inputs["revokeUnguardedFrom"] for r in resources["supabase-access:index:RowLevelSecurity"]
    }
    assert unguarded == {t: ["anon", "authenticated", "service_role"] for t in TABLES}


def test_the_reference_stack_declares_no_new_inputs() -> None:
    # Stacks of the reference app see no change from the access kinds.
    resources = by_type(run_program({"supabase-access:environment": "prod"}))
    assert "supabase-access:index:GroupFunctions" not in resources
    (preflight,) = resources["supabase-access:index:AccessPreflight"]
    assert "tableGrants" not in preflight.inputs and "groupHelpers" not in preflight.inputs
    assert all("revokeUndeclared" not in r.inputs for r in resources["supabase-access:index:RowLevelSecurity"])


def test_uncovered_team_tables_get_paths_first_never_an_owner_column_on_a_membership() -> None:
    def table(name: str, *refs: tuple[str, str, str]) -> ExposedTable:
        keys = tuple(ForeignKeyShape((column,), schema, target, ("id",)) for column, schema, target in refs)
        return ExposedTable("public", name, False, keys)

    uncovered = [
        table("comments", ("task_id", "public", "tasks"), ("author_id", "auth", "users")),
        table("project_members", ("user_id", "auth", "users"), ("project_id", "public", "projects")),
        table("tasks", ("project_id", "public", "projects")),
        table("projects", ("owner_id", "auth", "users")),
        table("labels"),
    ]
    with pytest.raises(InputError) as info:
        report_uncovered(uncovered, "public", ["sessions"], "cfg", fail=True)
    text = str(info.value)
    assert "public.projects (RLS off): add `projects: {owner: owner_id}`" in text
    assert "add `project_members: {through: {column: project_id, table: projects}}`" in text
    assert "add `tasks: {through: {column: project_id, table: projects}}`" in text
    assert "add `comments: {through: {column: task_id, table: tasks}}`" in text
    assert "`labels: {publicRead: true}`" in text and "`labels: {serviceOnly: true}`" in text
