"""The apps the property tests draw (tests/support/generated_apps.py, the seed tests/db/test_generated_schemas.py
uses) still cover every access kind, and the model accepts each. Drawing them takes seconds without a database;
a change to the strategies changes what the seed gives, and this says when it stops covering a kind."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, seed, settings

from supabase_access.model.access_model import parse_model
from supabase_access.model.profiles import plan_access
from tests.support.generated_apps import EXAMPLES, SEED, GeneratedApp, generated_apps

pytestmark = pytest.mark.unit

AT_LEAST = 10


def test_the_seeded_apps_cover_every_kind_and_parse() -> None:
    seen: Counter[str] = Counter()

    # The same draw as the db test (same seed and number; health checks do not change what is drawn).
    @seed(SEED)
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(app=generated_apps())
    def draw(app: GeneratedApp) -> None:
        model = parse_model(app.model("generated"), setting="generated model")
        plan_access(model, "owner")
        seen["apps"] += 1
        seen[f"grants: {'legacy' if app.legacy_grants else 'explicit'}"] += 1
        seen["two hops or more"] += app.depth >= 2
        for table in app.tables:
            seen[table.kind] += 1
            seen[f"write: {table.write}"] += table.write is not None
            seen["publicRead anon"] += table.public_read_anon
            seen["delete stopped by a child row"] += not table.cascades

    draw()
    assert seen["apps"] == EXAMPLES
    kinds = ("owner", "through", "group", "membership", "member", "public", "service")
    writers = ("write: members", "write: admins", "write: owner")
    others = (
        "grants: legacy",
        "grants: explicit",
        "two hops or more",
        "publicRead anon",
        "delete stopped by a child row",
    )
    assert {key: seen[key] for key in (*kinds, *writers, *others) if seen[key] < AT_LEAST} == {}
