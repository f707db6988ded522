"""Real Pulumi engine runs through the Automation API, against a file backend in a temp folder.

Each test gets a project folder of its own whose Pulumi.yaml points `main` at this
repository, so stack files and state never land in the work tree.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psycopg
import yaml
from pulumi import automation as auto

REPO = Path(__file__).resolve().parents[2]
PASSPHRASE = "test-only-passphrase"


def engine_env(state_dir: Path) -> dict[str, str]:
    return {
        "PULUMI_BACKEND_URL": f"file://{state_dir}",
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        # Our provider plugin, found on PATH like an installed one.
        "PATH": f"{REPO / 'bin'}{os.pathsep}{os.environ['PATH']}",
    }


def write_project(work_dir: Path, program: Path = REPO, main: Path | None = None) -> None:
    """Pulumi.yaml in `work_dir` running `program` (a checkout of this project) and its provider plugin;
    `main`: another program (a user's own) with that checkout's provider."""
    (work_dir / "Pulumi.yaml").write_text(
        "name: supabase-access\n"
        f"runtime:\n  name: python\n  options:\n    toolchain: pip\n    virtualenv: {REPO / '.venv'}\n"
        f"main: {main or program}\n"
        "plugins:\n  providers:\n"
        f"    - name: supabase-access\n      path: {program / 'bin'}\n"
        f"    - name: postgresql\n      path: {REPO / 'bin'}\n"
        # The program's own config declarations too, so every test stack is checked against them.
        + yaml.safe_dump({"config": yaml.safe_load((program / "Pulumi.yaml").read_text()).get("config") or {}})
    )


def new_stack(
    work_dir: Path, stack_name: str, dsn: str, config: dict[str, str], program: Path = REPO, main: Path | None = None
) -> auto.Stack:
    """A stack of this project connected to the database `dsn` (as its role, with its password)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "state").mkdir(exist_ok=True)
    write_project(work_dir, program, main)
    workspace = auto.LocalWorkspace(work_dir=str(work_dir), env_vars=engine_env(work_dir / "state"))
    stack = auto.Stack.create(stack_name, workspace)
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    values = {
        "postgresql:host": auto.ConfigValue(str(params.get("host", "127.0.0.1"))),
        "postgresql:port": auto.ConfigValue(str(params.get("port", "54322"))),
        "postgresql:database": auto.ConfigValue(str(params["dbname"])),
        "postgresql:username": auto.ConfigValue(str(params["user"])),
        "postgresql:password": auto.ConfigValue(str(params["password"]), secret=True),
        **{key: auto.ConfigValue(value) for key, value in config.items()},
    }
    stack.set_all_config(values)
    return stack


def changes(summary: Mapping[Any, int] | None) -> dict[str, int]:
    """The operations of a preview/update summary other than 'same'."""
    return {str(op): n for op, n in (summary or {}).items() if op != "same" and n}
