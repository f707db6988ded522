"""For the resources with tests of their own elsewhere (TablePolicies, PolicyIndex, WriteQuota,
RetentionPolicy): everything they write to state is in their spec, and a preview with unchanged
inputs does not ask the database in `check` (RetentionPolicy's query and dry run included)."""

from __future__ import annotations

from typing import Any

import pytest

from supabase_access.model import hardening
from supabase_access.model.access_model import load_model_file
from supabase_access.provider.base import DatabaseSteps
from supabase_access.provider.resources.policy_index import PolicyIndex
from supabase_access.provider.resources.retention_policy import RetentionPolicy
from supabase_access.provider.resources.table_policies import TablePolicies
from supabase_access.provider.resources.write_quota import WriteQuota
from supabase_access.sql.database import Database
from tests.support.paths import MODEL_FILE
from tests.support.resources import UnreachableDatabase, create, read

pytestmark = pytest.mark.db

MODEL = load_model_file(MODEL_FILE, setting="supabase-access:modelFile")


def retention() -> dict[str, Any]:
    target = hardening.retention_target(MODEL, hardening.RetentionSetting(30, 90, "sessions"))
    return {
        "schema": target.schema,
        "ownedTables": [{"table": t.table, "ownerColumn": t.owner_column} for t in target.owned_tables],
        "sessionsTable": target.sessions_table,
        "sessionsTimestampColumn": target.sessions_timestamp_column,
        "anonymousUsersDays": 30,
        "sessionsDays": 90,
    }


def quota() -> dict[str, Any]:
    (target,) = hardening.write_quota_targets(MODEL, [hardening.WriteQuotaSetting("sessions", 5, "perHour")])
    return target.to_plain()


CASES: list[tuple[type[DatabaseSteps], Any]] = [
    (
        TablePolicies,
        lambda: {
            "schema": "public",
            "table": "sessions",
            "policies": {"own": {"command": "ALL", "roles": ["authenticated"], "using": "user_id = auth.uid()"}},
        },
    ),
    (PolicyIndex, lambda: {"schema": "public", "table": "turns", "column": "session_id", "include": "id"}),
    (WriteQuota, quota),
    (RetentionPolicy, retention),
]


@pytest.mark.parametrize(("resource_class", "inputs"), CASES, ids=[c.__name__ for c, _ in CASES])
def test_state_is_declared_and_unchanged_inputs_skip_the_database(
    db: Database, resource_class: type[DatabaseSteps], inputs: Any
) -> None:
    resource = resource_class()
    resource_id, checked, state = create(resource, db, inputs())
    found = read(resource, db, resource_id, state, checked)
    assert found is not None
    assert resource.diff(db, state, checked).has_changes is False
    # A no-change preview: the engine passes the inputs check returned last time.
    assert resource.check(UnreachableDatabase(), checked, inputs()) == checked
    resource.delete(db, state, print)
