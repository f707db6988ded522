"""End to end: Realtime on the teams app with the real engine, a prod and a dev stack per grant platform.

The model adds `realtime:` (tasks and labels published; project, user, public and server channels).
Joins are authorized as Realtime does (tests/db covers every attack on the topic; here the applied
stack), changes delivered as Realtime filters them, splinter finds nothing to fix, a kindless
channel stops a prod preview with the line to add (dev: a warning), and destroy gives back the catalog,
the publication and realtime.messages' policies (a hand-made one kept) exactly.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from pulumi import automation as auto

from review.postgrest import Persona
from review.realtime import ChannelAccess, delivers_change, join_channel, published_tables
from supabase_access.model.access_model import model_to_plain
from tests.support.engine import changes, new_stack
from tests.support.fault import catalog_snapshot
from tests.support.localdb import PLATFORMS, create_database_from_template, drop_database
from tests.support.splinter import lint, must_fix
from tests.support.teams_app import OPEN, OWNER, load_teams_app, teams_model

pytestmark = pytest.mark.e2e

BOTH = frozenset({"broadcast", "presence"})
NOTHING = ChannelAccess(frozenset(), frozenset())
FULL = ChannelAccess(BOTH, BOTH)
REALTIME = {
    "publish": ["tasks", "labels"],
    "channels": {
        "project:{id}": {"member": {"group": "projects"}},
        "user:{id}": {"owner": True},
        "news": {"publicRead": {"anon": True}},
        "ops:{id}": {"serviceOnly": True},
    },
}


def model_config(base: dict[str, str], realtime: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {k: v for k, v in base.items() if k != "supabase-access:modelFile"}
    return {**config, "supabase-access:model": json.dumps({**model_to_plain(teams_model()), "realtime": realtime})}


@pytest.fixture(scope="module", params=PLATFORMS)
def platform(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def teams_dsn(localdb_url: str, localdb_admin_conninfo: str, platform: str) -> Iterator[Any]:
    made: list[str] = []

    def make() -> str:
        name = create_database_from_template(localdb_admin_conninfo, platform)
        made.append(name)
        dsn = make_conninfo(localdb_url, dbname=name)
        load_teams_app(dsn)
        return dsn

    yield make
    for name in made:
        drop_database(localdb_admin_conninfo, name)


def seed(dsn: str) -> dict[str, uuid.UUID]:
    ids = {name: uuid.uuid4() for name in ("owner", "member", "outsider", "p", "q")}
    with psycopg.connect(dsn) as conn:
        for user in ("owner", "member", "outsider"):
            conn.execute("insert into auth.users (id) values (%s)", (ids[user],))
        conn.execute(
            "insert into projects (id, owner_id, name) values (%s, %s, 'P'), (%s, %s, 'Q')",
            (ids["p"], ids["owner"], ids["q"], ids["outsider"]),
        )
        conn.execute("insert into project_members (project_id, user_id) values (%s, %s)", (ids["p"], ids["member"]))
        row = conn.execute("insert into tasks (project_id, title) values (%s, 'T') returning id", (ids["p"],))
        ids["task"] = row.fetchone()[0]  # type: ignore[index]
    return ids


def persona(ids: dict[str, uuid.UUID], name: str) -> Persona:
    return Persona.anon() if name == "anon" else Persona.signed_in(ids[name], is_anonymous=False)


def hand_made_policy(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(
            'create policy "lobby by hand" on realtime.messages for select to authenticated '
            "using ((select realtime.topic()) = 'lobby')"
        )


def test_prod_channels_changes_splinter_and_exact_destroy(teams_dsn: Any, tmp_path: Path) -> None:
    dsn = teams_dsn()
    hand_made_policy(dsn)
    before = catalog_snapshot(dsn)
    stack = new_stack(tmp_path / "prod", "prod", dsn, model_config(OWNER, REALTIME))
    said: list[str] = []
    stack.up(on_output=said.append)
    # Quiet when every published table, channel and bucket has its kind.
    assert not [line for line in said if "no kind" in line or "does not cover" in line]
    ids = seed(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        project = f"project:{ids['p']}"
        assert join_channel(conn, persona(ids, "member"), project) == FULL
        assert join_channel(conn, persona(ids, "owner"), project) == FULL
        assert join_channel(conn, persona(ids, "outsider"), project) == NOTHING
        assert join_channel(conn, persona(ids, "member"), f"project:{ids['q']}") == NOTHING
        assert join_channel(conn, persona(ids, "member"), f"project:{ids['p']}' or '1'='1") == NOTHING
        assert join_channel(conn, persona(ids, "anon"), project) == NOTHING
        assert join_channel(conn, persona(ids, "owner"), f"user:{ids['owner']}") == FULL
        assert join_channel(conn, persona(ids, "anon"), "news") == ChannelAccess(BOTH, frozenset())
        assert join_channel(conn, persona(ids, "member"), f"ops:{ids['p']}") == NOTHING
        # The hand-made policy is still there and still works.
        assert join_channel(conn, persona(ids, "outsider"), "lobby").receive == BOTH
        assert published_tables(conn) >= {("public", "tasks"), ("public", "labels")}
        task = [("id", ids["task"])]
        assert delivers_change(conn, persona(ids, "member"), "public", "tasks", task)
        assert not delivers_change(conn, persona(ids, "outsider"), "public", "tasks", task)
        assert not delivers_change(conn, persona(ids, "anon"), "public", "tasks", task)
    assert must_fix(lint(dsn)) == []
    # Nothing drifts: a refreshed preview shows no change.
    stack.preview(refresh=True, expect_no_changes=True)
    stack.destroy()
    assert catalog_snapshot(dsn) == before


def test_a_kindless_channel_stops_prod_and_warns_on_dev(teams_dsn: Any, tmp_path: Path) -> None:
    dsn = teams_dsn()
    kindless = {"channels": {"room:{id}": None}}
    prod = new_stack(tmp_path / "prod", "prod", dsn, model_config(OWNER, kindless))
    with pytest.raises(auto.errors.CommandError) as refused:
        prod.preview()
    assert '"room:{id}": {member: {group: projects}}' in str(refused.value)
    dev = new_stack(tmp_path / "dev", "dev", dsn, model_config(OPEN, kindless))
    messages: list[str] = []
    dev.up(on_output=messages.append)
    output = "\n".join(messages)
    assert "realtime.channels.room:{id}: no kind" in output
    ids = seed(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        # Dev opens the declared channels to everyone, as it opens the tables.
        assert join_channel(conn, persona(ids, "anon"), f"room:{ids['p']}") == FULL
        assert join_channel(conn, persona(ids, "anon"), "other:1") == NOTHING
    dev.destroy()


KINDLESS_SETUP = """
create schema internal;
create table internal.feed_log (id bigint primary key, user_id uuid references auth.users (id));
create table public.feed (id bigint primary key, user_id uuid references auth.users (id));
alter publication supabase_realtime add table internal.feed_log;
insert into storage.buckets (id, name) values ('legacy', 'legacy');
"""


def test_published_tables_and_buckets_without_a_kind_stop_prod_and_warn_on_dev(teams_dsn: Any, tmp_path: Path) -> None:
    """Issue 25 item 4: a table Realtime publishes (realtime.publish names it, or it was published by hand)
    and a bucket without a kind are refused on prod with the line to add; dev says so in the preview and
    applies, and its destroy gives the catalog back."""
    dsn = teams_dsn()
    with psycopg.connect(dsn) as conn:
        conn.execute(KINDLESS_SETUP)
    before = catalog_snapshot(dsn)
    published = {"publish": ["tasks", "feed"]}
    prod = new_stack(tmp_path / "prod", "prod", dsn, model_config(OWNER, published))
    with pytest.raises(auto.errors.CommandError) as refused:
        prod.preview()
    text = " ".join(str(refused.value).split())
    assert "public.feed (RLS off, published to supabase_realtime): add `feed: {owner: user_id}`" in text
    assert "supabase_realtime publishes 1 table(s) the model gives no kind" in text
    assert "(`alter publication supabase_realtime drop table internal.feed_log`)" in text
    assert "legacy: add `legacy: {owner: folder}`" in text
    assert catalog_snapshot(dsn) == before
    config = model_config(OPEN, published)
    model = json.loads(config["supabase-access:model"])
    config["supabase-access:model"] = json.dumps({**model, "buckets": {"drafts": {"public": False}}})
    dev = new_stack(tmp_path / "dev", "dev", dsn, config)
    preview = " ".join(dev.preview().stdout.split())
    assert "warning: realtime.publish: supabase_realtime publishes 1 table(s) the model gives no kind" in preview
    assert "public.feed (RLS off, published to supabase_realtime): add `feed: {owner: user_id}`" in preview
    assert "legacy: add `legacy: {owner: folder}`" in preview
    assert "bucket drafts has no kind: dev opens it to everyone" in preview
    assert "A prod stack applies nothing" not in preview
    dev.up()
    with psycopg.connect(dsn) as conn:
        assert {("public", "feed"), ("public", "tasks")} <= published_tables(conn)
    dev.destroy()
    assert catalog_snapshot(dsn) == before


def test_a_policy_made_by_hand_that_widens_a_channel_is_drift_and_up_takes_it_back(
    teams_dsn: Any, tmp_path: Path
) -> None:
    """As on Storage (test_e2e_storage): a permissive policy on realtime.messages no stack marks is judged by
    what it lets a persona do on the stack's channels. One found at the first `up` is taken over (dropped,
    put back by destroy); one made after is drift the preview shows as the ChannelPolicies update and `up`
    drops, each with a notice saying what it let whom do; the hand-made lobby policy, narrower, stays."""
    dsn = teams_dsn()
    hand_made_policy(dsn)
    with psycopg.connect(dsn) as conn:
        conn.execute(
            'create policy "everyone hears" on realtime.messages for select to anon, authenticated using (true)'
        )
    before = catalog_snapshot(dsn)
    stack = new_stack(tmp_path / "prod", "prod", dsn, model_config(OWNER, REALTIME))
    said: list[str] = []
    stack.up(on_output=said.append)
    output = "".join(said)
    assert "dropped the policy 'everyone hears' on realtime.messages" in output, output
    assert "destroy puts it back" in output
    ids = seed(dsn)
    project = f"project:{ids['p']}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert join_channel(conn, persona(ids, "anon"), project) == NOTHING
        assert join_channel(conn, persona(ids, "outsider"), project) == NOTHING
    with psycopg.connect(dsn) as conn:
        conn.execute('create policy "send anywhere" on realtime.messages for insert to authenticated with check (true)')
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert join_channel(conn, persona(ids, "outsider"), project).send == BOTH
    preview = stack.preview(diff=True)
    assert changes(preview.change_summary) == {"update": 1}, preview.stdout
    assert "supabase-access:index:ChannelPolicies" in preview.stdout, preview.stdout
    said.clear()
    stack.up(on_output=said.append)
    output = " ".join("".join(said).split())
    assert "dropped the policy 'send anywhere' on realtime.messages" in output, output
    assert "user B may send" in output, output
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert join_channel(conn, persona(ids, "outsider"), project) == NOTHING
        assert join_channel(conn, persona(ids, "member"), project) == FULL
        assert join_channel(conn, persona(ids, "outsider"), "lobby").receive == BOTH
    stack.preview(refresh=True, expect_no_changes=True)
    stack.destroy()
    assert catalog_snapshot(dsn) == before
