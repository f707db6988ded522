"""The access e2e on a database built from Supabase's own SQL (tests/support/platform.py), on each
PostgreSQL version and grant platform: a real `pulumi up` of a prod and of a dev stack logged in as
`postgres` (NOSUPERUSER, BYPASSRLS, as on a hosted project), every persona probed as PostgREST probes
(`authenticator`, `SET LOCAL ROLE`, `request.jwt.claims`), Supabase's linter on prod, and `destroy`
giving back the catalog of before the stack. The same on the teams app with a Storage bucket of each kind
and a private Realtime channel (issue 25), acting as the Storage API and as Realtime authorizes a join."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from pprint import pformat
from typing import Any

import psycopg
import pytest
import yaml

from review.matrix import Cell, compute_matrix, diff, matrix_from_rule
from review.postgrest import Persona, connect_as_authenticator
from review.realtime import ChannelAccess, join_channel
from supabase_access.model.access_model import load_model_file
from tests.support.engine import new_stack
from tests.support.expectations import owner_access
from tests.support.fault import catalog_snapshot
from tests.support.localdb import both_platforms
from tests.support.paths import MODEL_FILE
from tests.support.splinter import lint, must_fix
from tests.support.storage import StorageCaller, add_user, bucket_catalog, put_object
from tests.support.teams_app import TEAMS_APP, load_teams_app

pytestmark = pytest.mark.platform

MODEL = load_model_file(MODEL_FILE, setting="access-model.yaml")
OPEN = {"supabase-access:environment": "dev", "supabase-access:profile": "open"}
OWNER = {"supabase-access:environment": "prod", "supabase-access:profile": "owner"}


def catalog(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    """catalog_snapshot, plus the default privileges (the prod stack closes them; destroy gives them back)."""
    snapshot = catalog_snapshot(dsn)
    with psycopg.connect(dsn) as conn:
        snapshot["default_privileges"] = conn.execute(
            "select defaclrole::regrole::text, defaclnamespace::regnamespace::text, defaclobjtype::text,"
            " array(select a::text from unnest(defaclacl) a order by 1) from pg_default_acl order by 1, 2, 3"
        ).fetchall()
    return snapshot


STACKS: dict[str, tuple[dict[str, str], Callable[[Cell], bool]]] = {
    "prod": (OWNER, owner_access),
    "dev": (OPEN, lambda cell: True),
}


@both_platforms
@pytest.mark.parametrize("stack_name", STACKS)
def test_a_stack_as_on_a_hosted_project(tmp_path: Path, platform_db: str, stack_name: str) -> None:
    config, rule = STACKS[stack_name]
    before = catalog(platform_db)
    stack = new_stack(tmp_path / stack_name, stack_name, platform_db, config)
    stack.up()
    assert diff(matrix_from_rule(MODEL.table_names, rule), compute_matrix(platform_db, MODEL)) == []
    if stack_name == "prod":
        assert [f for f in lint(platform_db) if f[1] in ("ERROR", "WARN")] == []
    stack.destroy()
    # The dev stack's foreign key comes back validated: the matrix removed its rows.
    changed = changed_entries(before, catalog(platform_db))
    assert not changed, pformat(changed, width=200)


def changed_entries(
    before: dict[str, list[tuple[Any, ...]]], after: dict[str, list[tuple[Any, ...]]]
) -> dict[str, tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """Per catalog part, the rows only before and the rows only after (nothing when equal)."""
    return {
        part: ([r for r in before[part] if r not in after[part]], [r for r in after[part] if r not in before[part]])
        for part in before
        if before[part] != after[part]
    }


# Issue 25 on Supabase's own Storage schema (its migrations) and Realtime's part (database/00-supabase-realtime.sql,
# as the Realtime service makes it): the teams app with a bucket of each kind and a private channel.
BUCKETS = {
    "avatars": {"owner": "folder", "fileSizeLimit": 1048576, "allowedMimeTypes": ["image/*"]},
    "project-files": {"member": {"group": "projects"}},
    "site-assets": {"publicRead": True},
    "cdn": {"publicRead": True, "public": True},
    "exports": {"serviceOnly": True},
}
CHANNELS = {"project:{id}": {"member": {"group": "projects"}}}
BOTH = frozenset({"broadcast", "presence"})


def files_and_channels_config(environment: str) -> dict[str, str]:
    model = yaml.safe_load((TEAMS_APP / "access-model.yaml").read_text())
    model.update(buckets=BUCKETS, realtime={"publish": ["tasks"], "channels": CHANNELS})
    return {"supabase-access:environment": environment, "supabase-access:model": json.dumps(model)}


@both_platforms
@pytest.mark.parametrize("stack_name", STACKS)
def test_buckets_and_channels_as_on_a_hosted_project(tmp_path: Path, platform_db: str, stack_name: str) -> None:
    load_teams_app(platform_db)
    before = catalog(platform_db), bucket_catalog(platform_db)
    stack = new_stack(tmp_path / stack_name, stack_name, platform_db, files_and_channels_config(stack_name))
    stack.up()
    users = {name: add_user(platform_db) for name in ("alice", "bob")}
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(platform_db) as conn:
        conn.execute(
            "insert into projects (id, owner_id, name) values (%s, %s, 'a'), (%s, %s, 'b')",
            (mine, users["alice"], theirs, users["bob"]),
        )
    for bucket, name in (("avatars", f"{users['bob']}/me.png"), ("project-files", f"{theirs}/b.pdf")):
        put_object(platform_db, bucket, name)
    put_object(platform_db, "exports", "dump.csv")
    put_object(platform_db, "site-assets", "logo.png")
    alice = Persona.signed_in(users["alice"], is_anonymous=False)
    with connect_as_authenticator(platform_db) as conn:
        as_alice, as_anon = StorageCaller(conn, alice), StorageCaller(conn, Persona.anon())
        every = ("avatars", "project-files", "site-assets", "exports")
        if stack_name == "prod":
            assert as_alice.may_upload("avatars", f"{users['alice']}/me.png")
            assert not as_alice.may_upload("avatars", f"{users['bob']}/x.png")
            assert as_alice.may_upload("project-files", f"{mine}/plan.pdf")
            assert not as_alice.may_upload("project-files", f"{theirs}/plan.pdf")
            assert as_alice.listed(*every) == {("site-assets", "logo.png")}
            assert as_anon.listed(*every) == {("site-assets", "logo.png")}
            assert not as_anon.may_upload("site-assets", "x.png")
        else:  # dev opens the model's buckets and channels, as it opens the tables
            assert len(as_anon.listed(*every)) == 4
            assert as_anon.may_upload("exports", "x.csv")
    # As Realtime authorizes a join (the probe messages written as service_role, then read and sent as the
    # user), on an authenticator connection.
    with connect_as_authenticator(platform_db) as conn:
        theirs_channel = join_channel(conn, alice, f"project:{theirs}")
        if stack_name == "prod":
            assert join_channel(conn, alice, f"project:{mine}") == ChannelAccess(BOTH, BOTH)
            assert theirs_channel == ChannelAccess(frozenset(), frozenset())
        else:
            assert theirs_channel == ChannelAccess(BOTH, BOTH)
    if stack_name == "prod":
        assert must_fix(lint(platform_db)) == []
    stack.preview(refresh=True, expect_no_changes=True)
    with psycopg.connect(platform_db) as conn:
        conn.execute("set storage.allow_delete_query = 'true'")
        conn.execute("delete from storage.objects")
    stack.destroy()
    after = catalog(platform_db), bucket_catalog(platform_db)
    changed = changed_entries(before[0], after[0])
    assert not changed, pformat(changed, width=200)
    assert after[1] == before[1]
