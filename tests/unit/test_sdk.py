"""The committed SDK (sdk/python) is what Pulumi's generator makes from the provider's schema today:
schema from the specs, SDK from the schema (scripts/gen-sdk), so a spec change without a new SDK fails here."""

from __future__ import annotations

import filecmp
import json
import subprocess
from pathlib import Path

import pytest

from supabase_access.provider.spec import VERSION

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "sdk" / "python"
# Made by installing or running the SDK, never by the generator.
NOT_GENERATED = {"__pycache__", "pulumi_supabase_access.egg-info", "build", "dist"}


def files(root: Path) -> set[str]:
    return {
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and not NOT_GENERATED & set(path.relative_to(root).parts)
    }


def test_the_committed_sdk_is_what_the_generator_makes_from_the_specs(tmp_path: Path) -> None:
    generated = subprocess.run(
        [str(REPO / "scripts" / "gen-sdk"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    fresh = tmp_path / "python"
    assert files(COMMITTED) == files(fresh), "run scripts/gen-sdk and commit sdk/python"
    _, differ, errors = filecmp.cmpfiles(COMMITTED, fresh, sorted(files(fresh)), shallow=False)
    assert not differ and not errors, f"run scripts/gen-sdk and commit sdk/python (differs: {differ + errors})"


def test_the_sdk_asks_for_this_plugin_version_and_downloads_nothing() -> None:
    """The engine finds the plugin through Pulumi.yaml's `plugins.providers` (./bin), which matches any
    version: the SDK names the provider's own version and no download URL, and does not list the plugin
    as one to install (`pulumi install` would try to download it; scripts/gen-sdk clears the flag)."""
    plugin = json.loads((COMMITTED / "pulumi_supabase_access" / "pulumi-plugin.json").read_text())
    assert plugin == {"resource": False, "name": "supabase-access", "version": VERSION}
    from pulumi_supabase_access import _utilities

    assert _utilities.get_version() == VERSION
    assert _utilities.get_plugin_download_url() is None
