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
from tests.support.engine import new_stack
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
    stack.up()
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
