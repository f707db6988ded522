"""How the provider plugin ends when the engine closes it (SIGINT to its process group)."""

import os
import signal
import subprocess
from pathlib import Path

import pytest

from supabase_access.provider.server import SupabaseAccessProvider

pytestmark = pytest.mark.unit

PLUGIN = Path(__file__).resolve().parents[2] / "bin" / "pulumi-resource-supabase-access"


def test_idle_plugin_ends_at_once_and_quietly() -> None:
    # No engine listens at this address; the plugin only needs it for log messages.
    plugin = subprocess.Popen(
        [str(PLUGIN), "127.0.0.1:1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        assert plugin.stdout is not None
        port = plugin.stdout.readline().strip()
        assert port.isdigit(), "the plugin prints its port first, as the engine expects"
        os.killpg(plugin.pid, signal.SIGINT)
        _, stderr = plugin.communicate(timeout=30)
    finally:
        if plugin.poll() is None:
            plugin.kill()
    assert plugin.returncode == 0
    # The SDK server's own teardown printed "Event loop is closed" tracebacks here.
    assert stderr.decode() == ""


def test_plugin_with_a_call_at_work_leaves_the_shutdown_to_the_sdk() -> None:
    provider = SupabaseAccessProvider("")
    provider._running = 1  # a create, say, still running in its thread
    assert provider.stop_if_idle() is False
