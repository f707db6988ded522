"""Policy input that cannot escape its place: the scan every policy expression gets (program and
provider), without a database (PostgreSQL's own check of the same input: tests/db/test_policy_input.py)."""

from __future__ import annotations

from typing import Any

import pytest

from supabase_access.model.access_model import ModelError, load_model_file
from supabase_access.model.policy import policy_from_plain, single_expression_problem
from supabase_access.model.profiles import AccessPlan, plan_access
from supabase_access.model.rule_data import declared_to_plain
from supabase_access.sql import statements as render
from tests.support.paths import REPO
from tests.support.policy_input import ESCAPES


def owner_plan() -> AccessPlan:
    return plan_access(load_model_file(REPO / "access-model.yaml", setting="modelFile"), "owner")


def owner_using(using: str) -> dict[str, Any]:
    return {"command": "ALL", "roles": ["authenticated"], "using": using}


@pytest.mark.unit
@pytest.mark.parametrize(("text", "problem"), ESCAPES)
def test_an_expression_that_could_leave_its_parentheses_is_refused(text: str, problem: str) -> None:
    found = single_expression_problem(text)
    assert found is not None and found.startswith(problem)
    with pytest.raises(ModelError) as raised:
        policy_from_plain("p", owner_using(text), setting="supabase-access:extraPolicies.sessions.p")
    assert str(raised.value).startswith(f"supabase-access:extraPolicies.sessions.p.using: {problem}")


@pytest.mark.unit
@pytest.mark.parametrize(
    "text",
    [
        "true",  # a tautology is one expression: allowed (a prod stack's guardrails are issue 15's)
        "title = 'it''s (not) -- a comment /* here */'",
        '"weird(name" is not null',
        "title = E'\\') with check (true'",
        "title = $$)$$ or title = $tag$ ' $tag$",
        'session_id = any (array(select id from "public"."sessions" where user_id = (select auth.uid())))',
    ],
)
def test_parentheses_and_comment_marks_inside_literals_are_fine(text: str) -> None:
    assert single_expression_problem(text) is None


@pytest.mark.unit
def test_declared_rules_survive_the_scan() -> None:
    for access in owner_plan().tables:
        declared = render.render_declared_policies("public", {r.name: declared_to_plain(r) for r in access.rules})
        for name, spec in declared.items():
            policy_from_plain(name, spec, setting=name)
