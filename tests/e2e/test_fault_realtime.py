"""`kill -9` of the CLI and every process below it while a prod stack's ChannelPolicies wait for the
realtime.messages lock: nothing of them is applied (one transaction), `scripts/recover` brings the stack
to its declared channels, and destroy gives back the catalog exactly, the publication included."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from review.postgrest import Persona
from review.realtime import ChannelAccess, join_channel
from tests.e2e.test_e2e_realtime import REALTIME, hand_made_policy, model_config, seed
from tests.support.engine import changes, new_stack
from tests.support.fault import (
    catalog_snapshot,
    kill_up_waiting_on,
    recover,
)
from tests.support.teams_app import OWNER, load_teams_app

pytestmark = [pytest.mark.e2e, pytest.mark.fault]

BOTH = frozenset({"broadcast", "presence"})


def stack_policies(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select polname from pg_policy where polrelid = 'realtime.messages'::regclass "
            "and obj_description(oid, 'pg_policy') like 'supabase-access: created by stack %' order by 1"
        ).fetchall()
    return [str(name) for (name,) in rows]


def test_channel_policies_killed_while_waiting_apply_nothing_and_recover(tmp_path: Path, fresh_db: str) -> None:
    load_teams_app(fresh_db)
    hand_made_policy(fresh_db)
    before = catalog_snapshot(fresh_db)
    stack = new_stack(tmp_path / "local-prod", "local-prod", fresh_db, model_config(OWNER, REALTIME))
    kill_up_waiting_on(tmp_path / "local-prod", fresh_db, "realtime.messages", tree=True, wait_seconds=120)
    assert stack_policies(fresh_db) == []  # nothing half-applied
    recover(stack)
    assert len(stack_policies(fresh_db)) == 5
    ids = seed(fresh_db)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        member = Persona.signed_in(ids["member"], is_anonymous=False)
        assert join_channel(conn, member, f"project:{ids['p']}") == ChannelAccess(BOTH, BOTH)
        assert join_channel(conn, member, f"project:{ids['q']}") == ChannelAccess(frozenset(), frozenset())
    assert changes(stack.preview().change_summary) == {}
    stack.destroy()
    with psycopg.connect(fresh_db) as conn:
        conn.execute("delete from projects where id = any(%s)", ([ids["p"], ids["q"]],))
        conn.execute("delete from auth.users where id = any(%s)", ([ids[u] for u in ("owner", "member", "outsider")],))
    assert catalog_snapshot(fresh_db) == before
