"""pulumi-postgresql's Grants wait a bounded time too: its plugin reads PGOPTIONS (lock_timeout),
which bin/pulumi-resource-postgresql (its path in Pulumi.yaml) sets, whoever runs pulumi."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from pulumi import automation as auto

from tests.support.engine import changes, new_stack

pytestmark = pytest.mark.e2e

OPEN = {"supabase-access:environment": "dev", "supabase-access:profile": "open"}


def test_a_grant_waiting_on_its_role_lock_gives_up_and_the_next_up_converges(tmp_path: Path, fresh_db: str) -> None:
    stack = new_stack(tmp_path / "dev", "dev", fresh_db, OPEN)
    # pulumi-postgresql serialises its changes per role with an advisory lock keyed on the role's
    # oid: another session holding anon's stands for a stuck `up` of another stack.
    with psycopg.connect(fresh_db, autocommit=True, application_name="role-lock-holder") as holder:
        holder.execute("select pg_advisory_lock(oid::bigint) from pg_roles where rolname = 'anon'")
        with pytest.raises(auto.errors.CommandError) as info:
            stack.up()
        holder.execute("select pg_advisory_unlock_all()")
    text = " ".join(str(info.value).split())
    assert "could not get advisory lock for role anon" in text and "lock timeout" in text
    stack.up()
    assert changes(stack.preview().change_summary) == {}
