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


def test_a_refusal_is_one_line_and_names_no_property() -> None:
    import asyncio

    from pulumi.provider.experimental import provider as api
    from pulumi.provider.experimental.property_value import PropertyValue

    from supabase_access.provider.base import InputError

    provider = SupabaseAccessProvider("")

    def refuse(*args: object) -> None:
        raise InputError("policies", "supabase-access:extraPolicies.sessions.p: PostgreSQL rejected it\nLINE 1: x\n  ^")

    provider._step = refuse  # type: ignore[method-assign,assignment]
    urn = "urn:pulumi:dev::supabase-access::supabase-access:index:AccessPreflight::access-preflight"
    request = api.CheckRequest(urn, {}, {"policies": PropertyValue("x" * 10_000)}, b"")
    response = asyncio.run(provider.check(request))
    # A named property makes the engine print its whole value (6-20 KB for policies) before the reason.
    assert [(f.property, f.reason) for f in response.failures or []] == [
        ("", "supabase-access:extraPolicies.sessions.p: PostgreSQL rejected it LINE 1: x ^")
    ]
