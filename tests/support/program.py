"""Runs __main__.py under Pulumi's mocks (no engine, no database) and records what it declares."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pulumi

REPO = Path(__file__).resolve().parents[2]
SECRET_KEYS = ("postgresql:password", "supabase-access:accessToken")


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self.resources.append(args)
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None

    def of_type(self, token: str) -> list[pulumi.runtime.MockResourceArgs]:
        return [r for r in self.resources if r.typ == token]


def run_program(config: dict[str, str], secret_keys: tuple[str, ...] = ()) -> RecordingMocks:
    """The resources the program registers for a stack with `config` (plus a local connection);
    SECRET_KEYS and `secret_keys` are stored as secrets."""
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="supabase-access", stack="test", preview=False)
    pulumi.runtime.set_all_config(
        {**config, "postgresql:host": "127.0.0.1", "postgresql:password": "pw"}, [*SECRET_KEYS, *secret_keys]
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
    sys.modules.pop("program_under_test", None)
    return mocks


def by_type(mocks: RecordingMocks) -> dict[str, list[pulumi.runtime.MockResourceArgs]]:
    found: dict[str, list[pulumi.runtime.MockResourceArgs]] = {}
    for r in mocks.resources:
        found.setdefault(r.typ, []).append(r)
    return found
