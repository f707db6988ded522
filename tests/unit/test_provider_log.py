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
