"""review/quiet_up.py on pulumi up's output: steps grouped per type and operation, each message once,
failures and unknown lines kept as they are."""

from __future__ import annotations

import pytest

from review.quiet_up import quiet

pytestmark = pytest.mark.unit

UP = """Updating (prod):

 +  pulumi:pulumi:Stack app-prod creating (0s) warning: auth settings skipped
 ~  postgresql:index:Grant anon-a-grant refreshing (0s)
 ~  postgresql:index:Grant anon-a-grant refresh (0.01s)
    supabase-access:index:RlsForNewTables rls  warning: no event trigger
 +  supabase-access:index:RowLevelSecurity a-rls creating (0s)
 +  supabase-access:index:RowLevelSecurity b-rls creating (0s)
 +  supabase-access:index:RowLevelSecurity a-rls created (0.1s)
 +  supabase-access:index:RowLevelSecurity b-rls created (0.2s) warning: no event trigger
 ~  postgresql:index:Grant anon-b-grant updating (0s) [diff: ~privileges]
 ~  postgresql:index:Grant anon-b-grant updated (0.3s) [diff: ~privileges]
 +  supabase-access:index:TablePolicies c-policies creating failed error: PostgreSQL refused
 +  pulumi:pulumi:Stack app-prod created (5s) 1 warning
Diagnostics:
  supabase-access:index:RlsForNewTables (rls):
    warning: no event trigger
    warning: no event trigger

  supabase-access:index:RowLevelSecurity (b-rls):
    warning: no event trigger

  supabase-access:index:TablePolicies (c-policies):
    error: PostgreSQL refused

  pulumi:pulumi:Stack (app-prod):
    warning: auth settings skipped

Resources:
    + 3 created
    ~ 1 updated

Duration: 6s
"""


UP_GROUPED = [
    "Updating (prod):",
    "",
    " +  supabase-access:index:TablePolicies c-policies creating failed error: PostgreSQL refused",
    " +  supabase-access:index:RowLevelSecurity ×2 created: a-rls, b-rls",
    " ~  postgresql:index:Grant updated: anon-b-grant [diff: ~privileges]",
    " +  pulumi:pulumi:Stack created: app-prod",
    "Diagnostics:",
    "  supabase-access:index:RlsForNewTables (rls, RowLevelSecurity b-rls):",
    "    warning: no event trigger",
    "",
    "  supabase-access:index:TablePolicies (c-policies):",
    "    error: PostgreSQL refused",
    "",
    "  pulumi:pulumi:Stack (app-prod):",
    "    warning: auth settings skipped",
    "",
    "Resources:",
    "    + 3 created",
    "    ~ 1 updated",
    "",
    "Duration: 6s",
]


def test_steps_are_grouped_and_each_message_said_once() -> None:
    shown: list[str] = []
    quiet(UP.splitlines(), shown.append)
    assert shown == UP_GROUPED


def test_progress_counts_finished_steps_and_is_cleared_before_the_summary() -> None:
    progress: list[str] = []
    quiet(UP.splitlines(), lambda line: None, progress.append)
    assert progress == ["  … 1 step(s) done", "  … 2 step(s) done", "  … 3 step(s) done", "  … 4 step(s) done", ""]


def test_many_names_are_cut_with_their_count() -> None:
    lines = [f" +  postgresql:index:Grant g{i}-grant created (0.1s)" for i in range(9)] + ["Resources:"]
    shown: list[str] = []
    quiet(lines, shown.append)
    assert shown[0] == (
        " +  postgresql:index:Grant ×9 created: g0-grant, g1-grant, g2-grant, g3-grant, g4-grant, g5-grant, … (+3)"
    )


PREVIEW = """Previewing update (prod):

 +  supabase-access:index:RowLevelSecurity a-rls create
Diagnostics:
  pulumi:pulumi:Stack (app-prod):
    warning: auth settings skipped

Resources:
    + 3 to create

"""


def test_the_preview_part_starts_over_and_its_messages_are_not_said_again() -> None:
    shown: list[str] = []
    quiet((PREVIEW + UP).splitlines(), shown.append)
    assert shown[:9] == [
        "Previewing update (prod):",
        "",
        "Diagnostics:",
        "  pulumi:pulumi:Stack (app-prod):",
        "    warning: auth settings skipped",
        "",
        "Resources:",
        "    + 3 to create",
        "",
    ]
    assert shown[9:12] == ["Updating (prod):", "", UP_GROUPED[2]]
    assert "".join(shown).count("warning: auth settings skipped") == 1
    assert " +  supabase-access:index:RowLevelSecurity ×2 created: a-rls, b-rls" in shown
