"""Column rules in the model: readOnly, immutable and hidden, per table."""

from typing import Any

import pytest

from supabase_access.model.access_model import ColumnRules, ModelError, model_to_plain, parse_model

NOTES: dict[str, Any] = {
    "orgs": {"owner": "owner_id"},
    "org_members": {"membership": {"group": "orgs", "column": "org_id", "user": "user_id"}},
    "notes": {
        "member": {"group": "orgs", "column": "org_id"},
        "write": "members",
        "readOnly": ["created_by"],
        "immutable": ["org_id"],
        "hidden": {"authenticated": ["internal_note"]},
    },
}


def test_column_rules_are_read_and_say_which_columns_each_privilege_may_not_use() -> None:
    model = parse_model({"tables": NOTES}, setting="model")
    rules = model.table("notes").columns
    assert rules == ColumnRules(("created_by",), ("org_id",), (("authenticated", ("internal_note",)),))
    assert rules.excluded("authenticated", "INSERT") == ("created_by",)
    assert rules.excluded("authenticated", "UPDATE") == ("created_by", "org_id")
    assert rules.excluded("authenticated", "SELECT") == ("internal_note",)
    assert rules.excluded("anon", "SELECT") == ()
    assert rules.excluded("service_role", "UPDATE") == ()
    assert rules.excluded("authenticated", "DELETE") == ()
    assert not model.table("orgs").columns
    assert rules.named == ("created_by", "org_id", "internal_note")


def test_column_rules_read_back_from_plain_data() -> None:
    model = parse_model({"tables": NOTES}, setting="model")
    assert parse_model(model_to_plain(model), setting="again") == model
    assert model_to_plain(model)["tables"]["notes"]["hidden"] == {"authenticated": ["internal_note"]}


def test_a_membership_or_public_table_takes_column_rules_too() -> None:
    tables = dict(NOTES)
    tables["org_members"] = {**NOTES["org_members"], "immutable": ["user_id", "org_id"]}
    tables["profiles"] = {"publicRead": {"anon": True}, "hidden": {"anon": ["email"], "authenticated": ["email"]}}
    model = parse_model({"tables": tables}, setting="model")
    assert model.table("org_members").columns.immutable == ("user_id", "org_id")
    assert model.table("profiles").columns.hidden_from("anon") == ("email",)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"readOnly": "created_by"}, "model.tables.notes.readOnly: expected a list of column names"),
        ({"readOnly": ["Bad Name"]}, "model.tables.notes.readOnly: 'Bad Name' is not a valid identifier"),
        ({"immutable": ["a", "a"]}, "model.tables.notes.immutable: a column is named twice"),
        ({"readOnly": ["a"], "immutable": ["a"]}, "model.tables.notes.immutable: a is already readOnly"),
        ({"hidden": ["a"]}, "model.tables.notes.hidden: expected a mapping of role"),
        ({"hidden": {"service_role": ["a"]}}, "model.tables.notes.hidden.service_role: unknown key"),
        ({"hidden": {"authenticated": "a"}}, "model.tables.notes.hidden.authenticated: expected a list"),
        ({"readonly": ["a"]}, "did you mean readOnly?"),
    ],
)
def test_bad_column_rules_name_the_setting(extra: dict, message: str) -> None:
    tables = {**NOTES, "notes": {"member": {"group": "orgs", "column": "org_id"}, "write": "members", **extra}}
    with pytest.raises(ModelError) as raised:
        parse_model({"tables": tables}, setting="model")
    assert message in str(raised.value)


def test_a_service_only_table_takes_no_column_rules() -> None:
    with pytest.raises(ModelError, match=r"model.tables.logs: a service-only table .* remove \['hidden'\]"):
        parse_model({"tables": {"logs": {"serviceOnly": True, "hidden": {"anon": ["a"]}}}}, setting="model")


@pytest.mark.parametrize("profile", ["open", "owner"])
def test_every_profile_keeps_the_column_rules(profile: str) -> None:
    from supabase_access.model.profiles import plan_access

    plan = plan_access(parse_model({"tables": NOTES}, setting="model"), profile)
    assert plan.columns_of("notes").read_only == ("created_by",)
    assert not plan.columns_of("orgs")
