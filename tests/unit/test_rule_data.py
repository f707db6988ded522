"""Rules as plain data: the program sends them without rendering SQL, the provider's check renders them."""

from __future__ import annotations

import pytest

from supabase_access.model import hardening
from supabase_access.model.access_model import ModelError, load_model_file, parse_model
from supabase_access.model.profiles import PROFILES, plan_access
from supabase_access.model.rule_data import predicate_from_plain, predicate_to_plain, rule_to_plain
from supabase_access.sql import statements as render
from tests.support.paths import MODEL_FILE

pytestmark = pytest.mark.unit

# A table carrying its owner and a path as well: its rules use AllOf.
MODEL = load_model_file(MODEL_FILE, setting="supabase-access:modelFile")
OWNER_AND_PATH = parse_model(
    {
        "tables": {
            "sessions": {"owner": "user_id"},
            "turns": {"through": {"column": "session_id", "table": "sessions"}},
            "actions": {"owner": "user_id", "through": {"column": "turn_id", "table": "turns"}},
        }
    },
    setting="supabase-access:model",
)
RULES = [
    *(
        rule
        for model in (MODEL, OWNER_AND_PATH)
        for p in PROFILES
        for t in plan_access(model, p).tables
        for rule in t.rules
    ),
    *(
        rule
        for rules in hardening.permanent_users_only_policies({"sessions": ("INSERT", "UPDATE")}).values()
        for rule in rules
    ),
]


def test_every_predicate_survives_the_trip_through_plain_data() -> None:
    predicates = {p for rule in RULES for p in (rule.using, rule.with_check) if p is not None}
    assert {type(p).__name__ for p in predicates} == {"Always", "OwnedByCurrentUser", "NotAnonymousUser", "AllOf"}
    for predicate in predicates:
        assert predicate_from_plain(predicate_to_plain(predicate), "p") == predicate


def test_the_provider_renders_the_same_sql_the_program_rendered_before() -> None:
    # Equal inputs after check: stacks applied by earlier versions see no change.
    for rule in RULES:
        rendered = render.render_declared_policies("public", {rule.name: rule_to_plain(rule)})
        assert rendered == {rule.name: render.policy_from_rule("public", rule).to_plain()}


def test_sql_text_passes_through_unchanged() -> None:
    written = {"p": {"command": "SELECT", "roles": ["authenticated"], "using": "owner = current_user"}}
    assert render.render_declared_policies("public", written) == written


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"always": False}, r"policies\.p\.using: expected SQL text or one of"),
        ({"ownedBy": {"rootTable": "sessions", "ownerColumn": "user_id", "path": "x"}}, r"ownedBy\.path"),
        ({"ownedBy": {"rootTable": "Sessions;", "ownerColumn": "user_id", "path": []}}, r"ownedBy\.rootTable"),
        ({"allOf": [{"always": True}]}, r"allOf: only row predicates"),
    ],
)
def test_malformed_predicates_are_refused_naming_the_policy(value: object, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        render.render_declared_policies("public", {"p": {"command": "SELECT", "using": value}})
