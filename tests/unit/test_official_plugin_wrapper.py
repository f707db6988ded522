"""bin/pulumi-resource-postgresql: how the engine starts the official plugin (Pulumi.yaml names it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from supabase_access.sql.database import OFFICIAL_PROVIDER_PGOPTIONS

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
WRAPPER = REPO / "bin" / "pulumi-resource-postgresql"
VERSION = next(
    line.split("==")[1].strip()
    for line in (REPO / "requirements.txt").read_text().splitlines()
    if line.startswith("pulumi-postgresql==")
)
# Stands in for the installed plugin: reports what it was started with, then waits like a plugin.
FAKE_PLUGIN = f"""#!{sys.executable}
import ctypes, json, os, sys, time
pdeathsig = ctypes.c_int()
ctypes.CDLL(None).prctl(2, ctypes.byref(pdeathsig))  # PR_GET_PDEATHSIG
print(json.dumps({{"argv": sys.argv[1:], "pgoptions": os.environ.get("PGOPTIONS"), "pdeathsig": pdeathsig.value}}))
sys.stdout.flush()
if "--wait" in sys.argv:
    time.sleep(60)
"""


def installed_plugin(pulumi_home: Path) -> Path:
    plugin = pulumi_home / "plugins" / f"resource-postgresql-v{VERSION}" / "pulumi-resource-postgresql"
    plugin.parent.mkdir(parents=True)
    plugin.write_text(FAKE_PLUGIN)
    plugin.chmod(0o755)
    return plugin


def test_it_starts_the_installed_plugin_with_a_parent_death_signal_and_bounded_waits(tmp_path: Path) -> None:
    installed_plugin(tmp_path)
    env = {**os.environ, "PULUMI_HOME": str(tmp_path), "PGOPTIONS": "-c work_mem=8MB"}
    result = subprocess.run([str(WRAPPER), "127.0.0.1:1"], env=env, capture_output=True, text=True, check=True)
    started = json.loads(result.stdout)
    assert started["argv"] == ["127.0.0.1:1"]
    assert started["pdeathsig"] == signal.SIGKILL
    # Ours first; what the user set follows (and may change them).
    assert started["pgoptions"] == f"{OFFICIAL_PROVIDER_PGOPTIONS} -c work_mem=8MB"


def test_the_plugin_ends_when_the_process_that_started_it_is_killed(tmp_path: Path) -> None:
    installed_plugin(tmp_path)
    # A parent that starts the wrapper (as the engine does), prints the plugin's pid, then waits.
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time; p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE); "
            "p.stdout.readline(); print(p.pid, flush=True); time.sleep(60)",
            str(WRAPPER),
            "--wait",
        ],
        env={**os.environ, "PULUMI_HOME": str(tmp_path)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    plugin = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 5
    while Path(f"/proc/{plugin}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    gone = not Path(f"/proc/{plugin}").exists()
    if not gone:
        os.kill(plugin, signal.SIGKILL)
    assert gone, "the plugin outlived the process that started it"


def test_a_plugin_not_installed_is_named_with_the_fix(tmp_path: Path) -> None:
    env = {**os.environ, "PULUMI_HOME": str(tmp_path), "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true"}
    result = subprocess.run([str(WRAPPER)], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert result.stdout == ""  # the engine reads the plugin's port from stdout
    assert result.stderr.strip() == (
        f"pulumi-resource-postgresql {VERSION} is not installed "
        f"({tmp_path}/plugins/resource-postgresql-v{VERSION}/pulumi-resource-postgresql): run scripts/bootstrap"
    )
