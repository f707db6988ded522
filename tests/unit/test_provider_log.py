"""What the provider tells the user next to a resource: notices as info, everything else as warnings."""

import pytest

from supabase_access.provider.base import Notice
from supabase_access.provider.server import EngineLog

pytestmark = pytest.mark.unit


def test_notices_are_info_and_other_messages_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    log = EngineLog("")  # no engine: written to standard error with their severity
    log.write("urn", Notice("created index public.x; destroy drops it"))
    log.write("urn", "retention: not scheduled")
    assert capsys.readouterr().err.splitlines() == [
        "info: created index public.x; destroy drops it",
        "warning: retention: not scheduled",
    ]


def test_each_message_is_said_once_per_run(capsys: pytest.CaptureFixture[str]) -> None:
    log = EngineLog("")
    for urn in ("urn:a", "urn:b", "urn:a"):  # several resources, and one at check then at apply
        log.write(urn, "the login role cannot read auth.users")
    log.write("urn:a", Notice("the login role cannot read auth.users"))  # info and warning are apart
    assert capsys.readouterr().err.splitlines() == [
        "warning: the login role cannot read auth.users",
        "info: the login role cannot read auth.users",
    ]
