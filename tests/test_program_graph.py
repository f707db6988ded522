"""The resource graph each stack declares, with Pulumi's mocks (no engine, no database)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pulumi
import pytest

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[1]


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self.resources.append(args)
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


def run_program(config: dict[str, str]) -> RecordingMocks:
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="supabase-access", stack="test", preview=False)
    pulumi.runtime.set_all_config(
        {**config, "postgresql:host": "127.0.0.1", "postgresql:password": "pw"}, ["postgresql:password"]
    )
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))

    # pulumi.runtime.test waits for every registration the program started.
    @pulumi.runtime.test
    def execute() -> None:
        spec = importlib.util.spec_from_file_location("program_under_test", REPO / "__main__.py")
        assert spec and spec.loader
        spec.loader.exec_module(importlib.util.module_from_spec(spec))

    execute()
    return mocks


def by_type(mocks: RecordingMocks) -> dict[str, list[pulumi.runtime.MockResourceArgs]]:
    found: dict[str, list[pulumi.runtime.MockResourceArgs]] = {}
    for r in mocks.resources:
        found.setdefault(r.typ, []).append(r)
    return found


def test_open_stack_declares_the_guides_access() -> None:
    resources = by_type(run_program({"supabase-access:environment": "dev", "supabase-access:profile": "open"}))
    assert len(resources["supabase-access:index:TablePolicies"]) == 5
    assert len(resources["supabase-access:index:RowLevelSecurity"]) == 5
    grants = {r.inputs["role"]: r.inputs["privileges"] for r in resources["supabase-access:index:TableGrant"]}
    assert grants == {
        "anon": ["SELECT", "INSERT", "UPDATE", "DELETE"],
        "authenticated": ["SELECT", "INSERT", "UPDATE", "DELETE"],
    }
    (removal,) = resources["supabase-access:index:ConstraintRemoval"]
    assert removal.name == "sessions-sessions_user_id_fkey-removal"
    provider = resources["pulumi:providers:supabase-access"][0]
    assert provider.inputs["host"] == "127.0.0.1"


def test_owner_stack_keeps_the_fk_and_gives_anon_nothing() -> None:
    resources = by_type(run_program({"supabase-access:environment": "prod"}))
    assert "supabase-access:index:ConstraintRemoval" not in resources
    grants = {r.inputs["role"]: r.inputs["privileges"] for r in resources["supabase-access:index:TableGrant"]}
    assert grants["anon"] == []
    names = {r.name for r in resources["supabase-access:index:TablePolicies"]}
    assert names == {
        "sessions-policies",
        "segments-policies",
        "turns-policies",
        "actions-policies",
        "generated_content-policies",
    }
