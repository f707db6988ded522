"""`realtime:` in the model: parsing, errors naming the setting, the plan of channel policies and their SQL."""

from __future__ import annotations

from typing import Any

import pytest

from supabase_access.model.access_model import ModelError, model_to_plain, parse_model
from supabase_access.model.realtime import plan_channels, realtime_problems
from supabase_access.sql.statements import channel_policy

pytestmark = pytest.mark.unit

TABLES: dict[str, Any] = {
    "projects": {"owner": "owner_id"},
    "project_members": {"membership": {"group": "projects", "column": "project_id", "user": "user_id"}},
    "tasks": {"member": {"group": "projects", "column": "project_id"}, "write": "members"},
    "labels": {"publicRead": True},
}
CHANNELS: dict[str, Any] = {
    "project:{id}": {"member": {"group": "projects"}},
    "user:{id}": {"owner": True},
    "news": {"publicRead": {"anon": True}},
    "ops:{id}": {"serviceOnly": True},
}


def model(realtime: object) -> Any:
    return parse_model({"tables": TABLES, "realtime": realtime}, setting="m")


def test_round_trip_through_plain_data() -> None:
    parsed = model({"publish": ["tasks", "labels"], "channels": CHANNELS})
    assert parsed.realtime.publish == ("tasks", "labels")
    assert [c.kind for c in parsed.realtime.channels] == ["member", "owner", "publicRead", "serviceOnly"]
    plain = model_to_plain(parsed)
    assert plain["realtime"] == {"publish": ["tasks", "labels"], "channels": CHANNELS}
    assert parse_model(plain, setting="again") == parsed


def test_a_published_table_outside_tables_is_kept_for_the_preflight_to_name() -> None:
    # It has no kind: the preflight refuses it on prod with the line to add, and warns on dev.
    assert model({"publish": ["tasks", "audit_log"]}).realtime.publish == ("tasks", "audit_log")


def test_no_realtime_key_leaves_the_plain_model_as_before() -> None:
    assert "realtime" not in model_to_plain(parse_model({"tables": TABLES}, setting="m"))


@pytest.mark.parametrize(
    ("realtime", "message"),
    [
        ({"publish": "tasks"}, "m.realtime.publish: expected a list"),
        ({"publsh": []}, "m.realtime.publsh: unknown key (did you mean publish?)"),
        ({"channels": {"project:{id}": {"member": {"group": "tasks"}}}}, "'tasks' is no group"),
        ({"channels": {"project": {"member": {"group": "projects"}}}}, "end the pattern with '{id}'"),
        ({"channels": {"user": {"owner": True}}}, "end the pattern with '{id}'"),
        ({"channels": {"p:{id}' or '1'='1": {"owner": True}}}, "is not a channel topic pattern"),
        ({"channels": {"p:{id}/x": {"owner": True}}}, "is not a channel topic pattern"),
        ({"channels": {"p:%": {"publicRead": True}}}, "is not a channel topic pattern"),
        ({"channels": {"{id}{id}": {"owner": True}}}, "is not a channel topic pattern"),
        ({"channels": {"p:{id}": {"owner": True, "serviceOnly": True}}}, "give one kind"),
        ({"channels": {"p:{id}": {"ownr": True}}}, "unknown key (did you mean owner?)"),
        ({"channels": {"a:{id}": {"owner": True}, "a.{id}": {"owner": True}}}, "would name the same policies"),
    ],
)
def test_bad_entries_name_their_setting(realtime: object, message: str) -> None:
    with pytest.raises(ModelError, match=None) as caught:
        model(realtime)
    assert message in str(caught.value)


def test_a_kindless_channel_is_refused_on_prod_with_the_line_to_add_and_warned_on_dev() -> None:
    parsed = model({"channels": {"room:{id}": None}})
    errors, warnings = realtime_problems(parsed, refuse=True, setting="m")
    assert warnings == []
    assert errors == [
        "m.realtime.channels.room:{id}: no kind, so nobody knows who may join it; add one: "
        '"room:{id}": {member: {group: projects}} '
        "(or 'member: {group: <table>}', 'owner: true', 'publicRead: true' or 'serviceOnly: true')"
    ]
    assert realtime_problems(parsed, refuse=False, setting="m") == ([], errors)


def test_owner_plan_policies() -> None:
    parsed = model({"channels": CHANNELS})
    policies = {r.name: channel_policy(r) for r in plan_channels(parsed, "owner", "prod")}
    assert sorted(policies) == [
        "realtime_prod_news_receive",
        "realtime_prod_project_id_receive",
        "realtime_prod_project_id_send",
        "realtime_prod_user_id_receive",
        "realtime_prod_user_id_send",
    ]
    receive = policies["realtime_prod_project_id_receive"]
    assert (receive.command, receive.roles, receive.with_check) == ("SELECT", ("authenticated",), None)
    # One membership lookup per statement (an initPlan), exact topic equality, broadcast and presence only.
    assert receive.using == (
        "extension in ('broadcast', 'presence') and (select \"realtime\".\"topic\"()) = any "
        '(array(select \'project:\' || g::text from "supabase_access_rls"."project_members_groups"() g))'
    )
    send = policies["realtime_prod_project_id_send"]
    assert (send.command, send.using, send.with_check) == ("INSERT", None, receive.using)
    assert policies["realtime_prod_user_id_send"].with_check == (
        "extension in ('broadcast', 'presence') and (select \"realtime\".\"topic\"()) = 'user:' || "
        "(select auth.uid())::text"
    )
    assert policies["realtime_prod_news_receive"].roles == ("anon", "authenticated")


def test_open_plan_opens_every_declared_channel_to_the_api_roles() -> None:
    parsed = model({"channels": {"ops:{id}": {"serviceOnly": True}, "room:{id}": None}})
    rules = plan_channels(parsed, "open", "dev")
    assert [(r.name, r.command, r.roles) for r in rules] == [
        ("realtime_dev_ops_id_receive", "SELECT", ("anon", "authenticated")),
        ("realtime_dev_ops_id_send", "INSERT", ("anon", "authenticated")),
        ("realtime_dev_room_id_receive", "SELECT", ("anon", "authenticated")),
        ("realtime_dev_room_id_send", "INSERT", ("anon", "authenticated")),
    ]
    assert channel_policy(rules[0]).using == (
        "extension in ('broadcast', 'presence') and starts_with((select \"realtime\".\"topic\"()), 'ops:') "
        'and length((select "realtime"."topic"())) > 4'
    )


def test_the_stack_name_keeps_policy_names_apart_and_valid() -> None:
    parsed = model({"channels": {"project:{id}": {"member": {"group": "projects"}}}})
    names = {r.name for r in plan_channels(parsed, "owner", "Team-Prod.eu")}
    assert names == {"realtime_team_prod_eu_project_id_receive", "realtime_team_prod_eu_project_id_send"}
    long = {r.name for r in plan_channels(parsed, "owner", "x" * 80)}
    assert all(len(n) <= 63 for n in long)
