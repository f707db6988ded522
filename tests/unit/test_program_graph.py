"""The resource graph each stack declares, with Pulumi's mocks (no engine, no database)."""

from __future__ import annotations

import json

import pulumi
import pytest

from tests.support.program import by_type, run_program

pytestmark = pytest.mark.unit


TABLES = ("sessions", "segments", "turns", "actions", "generated_content")
GRANT_TYPE = "postgresql:index/grant:Grant"


def grants_by_role_and_table(
    resources: dict[str, list[pulumi.runtime.MockResourceArgs]],
) -> dict[tuple[str, str], list[str]]:
    """One pulumi_postgresql Grant per role and table, named after both, through the postgresql provider."""
    grants = {}
    for grant in resources[GRANT_TYPE]:
        (table,) = grant.inputs["objects"]
        assert grant.name == f"{grant.inputs['role']}-{table}-grant"
        assert grant.inputs["objectType"] == "table" and grant.inputs["schema"] == "public"
        assert grant.provider and "pulumi:providers:postgresql" in grant.provider
        grants[grant.inputs["role"], table] = list(grant.inputs["privileges"])
    return grants


def test_open_stack_declares_the_guides_access() -> None:
    resources = by_type(run_program({"supabase-access:environment": "dev", "supabase-access:profile": "open"}))
    assert len(resources["supabase-access:index:TablePolicies"]) == 5
    assert len(resources["supabase-access:index:RowLevelSecurity"]) == 5
    grants = grants_by_role_and_table(resources)
    assert grants == {
        (role, table): ["SELECT", "INSERT", "UPDATE", "DELETE"]
        for role in ("anon", "authenticated", "service_role")
        for table in TABLES
    }
    rls = {
        r.inputs["table"]: r.inputs["revokeUnguardedFrom"] for r in resources["supabase-access:index:RowLevelSecurity"]
    }
    assert rls == {table: ["anon", "authenticated", "service_role"] for table in TABLES}
    assert "supabase-access:index:PolicyIndex" not in resources
    (removal,) = resources["supabase-access:index:ConstraintRemoval"]
    assert removal.name == "sessions-sessions_user_id_fkey-removal"
    provider = resources["pulumi:providers:supabase-access"][0]
    assert provider.inputs["host"] == "127.0.0.1"


def test_owner_stack_keeps_the_fk_and_gives_anon_nothing() -> None:
    resources = by_type(run_program({"supabase-access:environment": "prod"}))
    assert "supabase-access:index:ConstraintRemoval" not in resources
    (kept,) = resources["supabase-access:index:ConstraintPresence"]
    assert kept.name == "sessions-sessions_user_id_fkey-presence"
    assert {k: kept.inputs[k] for k in ("table", "constraint", "columns", "referencedTable", "onDelete")} == {
        "table": "sessions",
        "constraint": "sessions_user_id_fkey",
        "columns": ["user_id"],
        "referencedTable": "auth.users",
        "onDelete": "cascade",
    }
    grants = grants_by_role_and_table(resources)
    assert {table: grants["anon", table] for table in TABLES} == {table: [] for table in TABLES}
    assert {grants["authenticated", table] == ["SELECT", "INSERT", "UPDATE", "DELETE"] for table in TABLES} == {True}
    names = {r.name for r in resources["supabase-access:index:TablePolicies"]}
    assert names == {
        "sessions-policies",
        "segments-policies",
        "turns-policies",
        "actions-policies",
        "generated_content-policies",
    }


def test_owner_stack_indexes_what_its_policies_look_up() -> None:
    resources = by_type(run_program({"supabase-access:environment": "prod"}))
    indexes = {r.name: dict(r.inputs) for r in resources["supabase-access:index:PolicyIndex"]}
    assert indexes == {
        "sessions-user_id-lookup-index": {
            "schema": "public",
            "table": "sessions",
            "column": "user_id",
            "include": "id",
        },
        "turns-session_id-lookup-index": {
            "schema": "public",
            "table": "turns",
            "column": "session_id",
            "include": "id",
        },
    }


COPY_MODEL = {
    "tables": {
        "sessions": {"owner": "user_id", "userForeignKey": "sessions_user_id_fkey"},
        "turns": {"through": {"column": "session_id", "table": "sessions"}},
        "actions": {"through": {"column": "turn_id", "table": "turns"}, "copyOwner": True},
    }
}


def test_an_owner_stack_keeps_the_copies_its_model_asks_for_and_checks_policies_with_them() -> None:
    resources = by_type(
        run_program({"supabase-access:environment": "prod", "supabase-access:model": json.dumps(COPY_MODEL)})
    )
    (copy,) = resources["supabase-access:index:OwnerCopy"]
    assert copy.name == "actions-user_id-owner-copy"
    assert {k: copy.inputs[k] for k in ("table", "column", "rootColumn", "privateSchema")} == {
        "table": "actions",
        "column": "user_id",
        "rootColumn": "user_id",
        "privateSchema": "supabase_access",
    }
    assert [hop["parent"] for hop in copy.inputs["path"]] == ["turns", "sessions"]
    policies = {r.inputs["table"]: r.inputs for r in resources["supabase-access:index:TablePolicies"]}
    assert policies["actions"]["addedColumns"] == {"actions": {"user_id": "uuid"}}
    assert "addedColumns" not in policies["turns"]
    (preflight,) = resources["supabase-access:index:AccessPreflight"]
    assert preflight.inputs["addedColumns"] == {"actions": {"user_id": "uuid"}}


def test_a_dev_stack_never_adds_a_copy() -> None:
    resources = by_type(
        run_program({"supabase-access:environment": "dev", "supabase-access:model": json.dumps(COPY_MODEL)})
    )
    assert "supabase-access:index:OwnerCopy" not in resources
    (preflight,) = resources["supabase-access:index:AccessPreflight"]
    assert "addedColumns" not in preflight.inputs


def test_force_rls_with_a_copy_is_refused_naming_the_settings() -> None:
    with pytest.raises(Exception, match="supabase-access:forceRls: the copies of actions"):
        run_program(
            {
                "supabase-access:environment": "prod",
                "supabase-access:forceRls": "true",
                "supabase-access:model": json.dumps(COPY_MODEL),
            }
        )


def test_each_extra_policy_is_named_by_the_setting_that_declares_it() -> None:
    resources = by_type(
        run_program(
            {
                "supabase-access:environment": "prod",
                "supabase-access:permanentUsersOnly": json.dumps({"generated_content": ["INSERT"]}),
                "supabase-access:extraPolicies": json.dumps(
                    {"sessions": {"no_titles": {"command": "INSERT", "roles": ["authenticated"], "withCheck": "true"}}}
                ),
            }
        )
    )
    (preflight,) = resources["supabase-access:index:AccessPreflight"]
    settings = preflight.inputs["policySettings"]
    assert settings["sessions.no_titles"] == "supabase-access:extraPolicies.sessions.no_titles"
    (reserved,) = [key for key in settings if key.startswith("generated_content.")]
    # Was reported under extraPolicies, a setting the user never wrote.
    assert settings[reserved] == "supabase-access:permanentUsersOnly.generated_content"


def test_a_teams_stack_declares_its_functions_for_the_roles_the_model_names() -> None:
    config = {
        "supabase-access:environment": "prod",
        "supabase-access:profile": "owner",
        "supabase-access:modelFile": "tests/fixtures/teams_app/access-model.yaml",
    }
    (functions,) = by_type(run_program(config))["supabase-access:index:FunctionPrivileges"]
    assert functions.inputs["declared"] == {"open_task_count": ["authenticated"]}
    assert functions.inputs["enforce"] is True and functions.inputs["server"] == ["service_role"]
