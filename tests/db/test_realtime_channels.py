"""Realtime on a real database, on both platforms: the teams app with a prod stack's channels and
published tables, probed as Realtime authorizes a join (role, JWT claims and `realtime.topic` set, then
SELECT and INSERT on realtime.messages per extension) and as it filters Postgres Changes (the row
selected as the subscriber's role); the resources' steps keep others' policies and give back exactly
what was there."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from review.matrix import compute_matrix
from review.postgrest import Persona, connect_as_authenticator
from review.realtime import ChannelAccess, delivers_change, join_channel, published_tables, realtime_changes
from supabase_access.model.access_model import AccessModel, model_to_plain, parse_model
from supabase_access.model.profiles import plan_access
from supabase_access.model.realtime import plan_channels
from supabase_access.model.rule_data import group_lookup_to_plain
from supabase_access.provider.base import CHECK_LOG, CURRENT_STACK, InputError
from supabase_access.provider.resources.access_preflight import AccessPreflight
from supabase_access.provider.resources.channel_policies import ChannelPolicies
from supabase_access.provider.resources.group_functions import GroupFunctions
from supabase_access.provider.resources.realtime_publication import RealtimePublication
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from supabase_access.sql.errors import CatalogError
from tests.support.localdb import both_platforms
from tests.support.resources import REFERENCE_PREFLIGHT, UnreachableDatabase, create, read
from tests.support.teams_app import load_teams_app, teams_model

pytestmark = pytest.mark.db

BOTH = frozenset({"broadcast", "presence"})
NOTHING = ChannelAccess(frozenset(), frozenset())
FULL = ChannelAccess(BOTH, BOTH)
RECEIVE_ONLY = ChannelAccess(BOTH, frozenset())
CHANNELS = {
    "project:{id}": {"member": {"group": "projects"}},
    "user:{id}": {"owner": True},
    "news": {"publicRead": {"anon": True}},
    "ops:{id}": {"serviceOnly": True},
}


def realtime_model() -> AccessModel:
    plain = model_to_plain(teams_model())
    plain["realtime"] = {"publish": ["tasks", "labels"], "channels": CHANNELS}
    return parse_model(plain, setting="test")


def channel_inputs(model: AccessModel, profile: str, stack: str) -> dict[str, Any]:
    return {
        "policies": {
            rule.name: {k: v for k, v in render.channel_policy(rule).to_plain().items() if v is not None}
            for rule in plan_channels(model, profile, stack)
        },
        "channels": [c.pattern for c in model.realtime.channels],
    }


@pytest.fixture
def stack() -> Iterator[str]:
    token = CURRENT_STACK.set("prod")
    yield "prod"
    CURRENT_STACK.reset(token)


class App:
    def __init__(self, dsn: str) -> None:
        self.owner, self.member, self.other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        self.project, self.others_project = uuid.uuid4(), uuid.uuid4()
        with psycopg.connect(dsn) as conn:
            for user in (self.owner, self.member, self.other):
                conn.execute("insert into auth.users (id) values (%s)", (user,))
            conn.execute(
                "insert into projects (id, owner_id, name) values (%s, %s, 'a'), (%s, %s, 'b')",
                (self.project, self.owner, self.others_project, self.other),
            )
            conn.execute(
                "insert into project_members (project_id, user_id) values (%s, %s)", (self.project, self.member)
            )
            self.task = conn.execute(
                "insert into tasks (project_id, title) values (%s, 't') returning id", (self.project,)
            ).fetchone()[0]  # type: ignore[index]
            self.label = conn.execute("insert into labels (name) values ('l') returning id").fetchone()[0]  # type: ignore[index]

    def persona(self, user: uuid.UUID) -> Persona:
        return Persona.signed_in(user, is_anonymous=False)


@pytest.fixture
def prod_app(db: Database, fresh_db: str, stack: str) -> tuple[Database, App]:
    """The teams app under a prod plan (tables' policies and grants, group functions), its channels applied."""
    load_teams_app(fresh_db)
    model = realtime_model()
    plan = plan_access(model, "owner")
    (lookup,) = plan.group_lookups
    create(GroupFunctions(), db, {"schema": "public", **group_lookup_to_plain(lookup)})
    with psycopg.connect(fresh_db) as conn:
        for statement in render.plan_table_statements(plan):
            conn.execute(statement)
    app = App(fresh_db)
    create(ChannelPolicies(), db, channel_inputs(model, "owner", stack))
    create(RealtimePublication(), db, {"schema": "public", "tables": list(model.realtime.publish)})
    return db, app


@both_platforms
def test_members_join_and_send_on_their_projects_channel_only(prod_app: tuple[Database, App], fresh_db: str) -> None:
    _, app = prod_app
    with connect_as_authenticator(fresh_db) as conn:

        def join(persona: Persona, topic: str) -> ChannelAccess:
            return join_channel(conn, persona, topic)

        mine = f"project:{app.project}"
        assert join(app.persona(app.member), mine) == FULL
        assert join(app.persona(app.owner), mine) == FULL
        assert join(app.persona(app.other), mine) == NOTHING
        assert join(Persona.anon(), mine) == NOTHING
        assert join(app.persona(app.member), f"project:{app.others_project}") == NOTHING
        for forged in (
            f"project:{app.project}' or '1'='1",
            f"project:{app.project}/x",
            f"project:{app.project} ",
            f"project:{str(app.project).upper()}",
            f"PROJECT:{app.project}",
            f"project:{{{app.project}}}",
            "project:",
            "project:%",
            str(app.project),
        ):
            assert join(app.persona(app.member), forged) == NOTHING, forged
        assert join(app.persona(app.owner), f"user:{app.owner}") == FULL
        assert join(app.persona(app.member), f"user:{app.owner}") == NOTHING
        assert join(Persona.anon(), f"user:{app.owner}") == NOTHING
        for persona in (Persona.anon(), app.persona(app.member)):
            assert join(persona, "news") == RECEIVE_ONLY
            assert join(persona, "news:x") == NOTHING
            assert join(persona, f"ops:{app.project}") == NOTHING
        assert join(Persona.service(), f"ops:{app.project}") == FULL
        # A message of another extension (postgres_changes) is no Broadcast or Presence: nothing admits it.
        with conn.transaction(force_rollback=True):
            conn.execute("set local role authenticated")
            conn.execute(
                "select set_config('request.jwt.claims', %s, true), set_config('realtime.topic', %s, true)",
                (app.persona(app.member).claims_setting(), mine),
            )
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(
                    "insert into realtime.messages (topic, extension, private) values (%s, 'postgres_changes', true)",
                    (mine,),
                )


@both_platforms
def test_changes_reach_only_the_subscribers_the_select_policies_admit(
    prod_app: tuple[Database, App], fresh_db: str
) -> None:
    _, app = prod_app
    with connect_as_authenticator(fresh_db) as conn:
        assert published_tables(conn) == {("public", "tasks"), ("public", "labels")}
        task = [("id", app.task)]
        assert delivers_change(conn, app.persona(app.member), "public", "tasks", task)
        assert delivers_change(conn, app.persona(app.owner), "public", "tasks", task)
        assert not delivers_change(conn, app.persona(app.other), "public", "tasks", task)
        assert not delivers_change(conn, Persona.anon(), "public", "tasks", task)
        label = [("id", app.label)]
        assert delivers_change(conn, Persona.anon(), "public", "labels", label)
        assert delivers_change(conn, app.persona(app.other), "public", "labels", label)
        # Not published: no change of it reaches anyone, whatever its policies admit.
        project = [("id", app.project)]
        assert not delivers_change(conn, app.persona(app.owner), "public", "projects", project)


def policy_names(dsn: str) -> dict[str, str | None]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select polname, obj_description(oid, 'pg_policy') from pg_policy "
            "where polrelid = 'realtime.messages'::regclass order by polname"
        ).fetchall()
    return {str(name): comment for name, comment in rows}


@both_platforms
def test_channel_policies_steps_leave_others_policies_alone(db: Database, fresh_db: str, stack: str) -> None:
    load_teams_app(fresh_db)
    model = realtime_model()
    (lookup,) = plan_access(model, "owner").group_lookups
    create(GroupFunctions(), db, {"schema": "public", **group_lookup_to_plain(lookup)})
    with psycopg.connect(fresh_db) as conn:
        # The dashboard's kind of policy, made by hand.
        conn.execute(
            "create policy \"hand made\" on realtime.messages for select to authenticated using (topic = 'lobby')"
        )
    before = policy_names(fresh_db)
    resource = ChannelPolicies()
    inputs = channel_inputs(model, "owner", stack)
    resource_id, checked, state = create(resource, db, inputs)
    assert resource_id == "realtime.messages:prod"
    assert set(policy_names(fresh_db)) == {*before, *inputs["policies"]}
    assert resource.diff(db, state, checked).changes == {}
    assert read(resource, db, resource_id, state, checked) == (state, checked)
    assert resource.check(UnreachableDatabase(), checked, inputs) == checked
    # Drift: one of the stack's policies widened by hand is seen, and `up` puts it back.
    with psycopg.connect(fresh_db) as conn:
        conn.execute("alter policy realtime_prod_project_id_receive on realtime.messages using (true)")
    assert resource.diff(db, state, checked).changes == {"policies": "update"}
    refreshed = read(resource, db, resource_id, state, checked)
    assert refreshed is not None and refreshed[1]["policies"] == {}
    state = resource.update(db, state, checked, print)
    assert resource.diff(db, state, checked).changes == {}
    # Another stack on the same database: a pattern this one declares it cannot take (one stack says who
    # joins a topic), at preview and at apply; its own patterns' policies live beside these.
    token = CURRENT_STACK.set("staging")
    try:
        same = channel_inputs(model, "owner", "staging")
        with pytest.raises(InputError, match=r"another stack declares news \(stack 'prod'\), ops:\{id\}"):
            ChannelPolicies().check(db, {}, same)
        with pytest.raises(CatalogError, match="another stack declares"):
            steps = ChannelPolicies()  # straight to the apply, as when another stack claims between preview and up
            steps.create(db, steps.normalize(steps.parse_inputs(same)).to_wire(), print)
        lobby = parse_model(
            {**model_to_plain(teams_model()), "realtime": {"channels": {"lobby:{id}": {"owner": True}}}}, setting="t"
        )
        _, _, other_state = create(ChannelPolicies(), db, channel_inputs(lobby, "owner", "staging"))
        # A name the other stack holds is not this one's to take either.
        with pytest.raises(InputError, match="already exist, made by hand or by another stack"):
            ChannelPolicies().check(db, {}, {"policies": inputs["policies"]})
        ChannelPolicies().delete(db, other_state, print)
    finally:
        CURRENT_STACK.reset(token)
    with psycopg.connect(fresh_db) as conn:
        conn.execute('create policy "realtime_prod_news_receive_x" on realtime.messages for select using (false)')
        conn.execute('alter policy "hand made" on realtime.messages rename to "realtime_prod_ops_id_receive"')
    with pytest.raises(InputError, match=r"realtime_prod_ops_id_receive on realtime\.messages already exist"):
        resource.check(
            db,
            {},
            {
                "policies": {
                    **inputs["policies"],
                    "realtime_prod_ops_id_receive": {"command": "SELECT", "roles": ["authenticated"], "using": "true"},
                }
            },
        )
    with pytest.raises(CatalogError):
        resource.update(
            db,
            state,
            {
                "policies": {
                    **checked["policies"],
                    "realtime_prod_ops_id_receive": {
                        "command": "SELECT",
                        "roles": ["authenticated"],
                        "using": "true",
                        "permissive": True,
                        "withCheck": None,
                    },
                }
            },
            print,
        )
    resource.delete(db, state, print)
    assert set(policy_names(fresh_db)) == {"realtime_prod_ops_id_receive", "realtime_prod_news_receive_x"}
    # The patterns are free again, and the ledger gone with the last claim.
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("select to_regnamespace('supabase_access')").fetchone() == (None,)
    token = CURRENT_STACK.set("staging")
    try:
        ChannelPolicies().check(db, {}, {"policies": {}, "channels": ["news"]})
    finally:
        CURRENT_STACK.reset(token)


@both_platforms
def test_a_policy_made_by_hand_that_opens_a_channel_is_drift_and_taken_back(
    db: Database, fresh_db: str, stack: str
) -> None:
    """realtime.messages is shared, so a policy no stack marks is judged by what it lets a persona do on the
    stack's channels: one that opens them is drift `up` takes back (found at the first `up`: taken over and put
    back by destroy); one on a topic of its own, or narrower, is left alone."""
    load_teams_app(fresh_db)
    model = realtime_model()
    (lookup,) = plan_access(model, "owner").group_lookups
    create(GroupFunctions(), db, {"schema": "public", **group_lookup_to_plain(lookup)})
    with psycopg.connect(fresh_db) as conn:
        conn.execute(
            'create policy "lobby by hand" on realtime.messages for select to authenticated '
            "using ((select realtime.topic()) = 'lobby')"
        )
        conn.execute(
            'create policy "everyone hears" on realtime.messages for select to anon, authenticated using (true)'
        )
    before = policy_names(fresh_db)
    app = App(fresh_db)
    resource = ChannelPolicies()
    logged: list[str] = []
    resource_id, checked, state = create(resource, db, channel_inputs(model, "owner", stack), logged.append)
    assert list(state["adopted"]) == ["everyone hears"]
    assert any(
        "dropped the policy 'everyone hears'" in m
        and "anon (no JWT) may receive broadcast on project:{id}" in m
        and "destroy puts it back" in m
        for m in logged
    ), logged
    mine = f"project:{app.project}"
    with connect_as_authenticator(fresh_db) as conn:
        assert join_channel(conn, Persona.anon(), mine) == NOTHING
        assert join_channel(conn, app.persona(app.other), "lobby").receive == BOTH
    # Made by hand after the first `up`: drift that a preview and a refresh show, taken back by `up`.
    with psycopg.connect(fresh_db) as conn:
        conn.execute('create policy "send anywhere" on realtime.messages for insert to authenticated with check (true)')
    with connect_as_authenticator(fresh_db) as conn:
        assert join_channel(conn, app.persona(app.other), mine).send == BOTH
    assert resource.diff(db, state, checked).changes == {"policies": "update"}
    refreshed = read(resource, db, resource_id, state, checked)
    assert refreshed is not None and "send anywhere" in refreshed[0]["applied"] and refreshed[1]["policies"] == {}
    logged.clear()
    state = resource.update(db, state, checked, logged.append)
    assert any(
        "dropped the policy 'send anywhere'" in m and "user B may send presence on user:{id}" in m for m in logged
    )
    assert not any("destroy puts it back" in m for m in logged)
    assert resource.diff(db, state, checked).changes == {}
    assert read(resource, db, resource_id, state, checked) == (state, checked)
    with connect_as_authenticator(fresh_db) as conn:
        assert join_channel(conn, app.persona(app.other), mine) == NOTHING
        assert join_channel(conn, app.persona(app.member), mine) == FULL
        assert join_channel(conn, app.persona(app.other), "lobby").receive == BOTH
    resource.delete(db, state, print)
    assert policy_names(fresh_db) == before


@both_platforms
def test_publication_gives_back_exactly_what_was_there(db: Database, fresh_db: str, stack: str) -> None:
    load_teams_app(fresh_db)
    with psycopg.connect(fresh_db) as conn:
        conn.execute("alter publication supabase_realtime add table labels, audit_log")
    resource = RealtimePublication()
    inputs = {"schema": "public", "tables": ["tasks", "labels"]}
    resource_id, checked, state = create(resource, db, inputs)
    assert resource_id == "supabase_realtime:public"
    assert state["added"] == ["tasks"]
    with psycopg.connect(fresh_db) as conn:
        assert published_tables(conn) == {("public", t) for t in ("tasks", "labels", "audit_log")}
    assert resource.diff(db, state, checked).changes == {}
    assert read(resource, db, resource_id, state, checked) == (state, checked)
    # Taken out by hand: drift, and `up` publishes it again.
    with psycopg.connect(fresh_db) as conn:
        conn.execute("alter publication supabase_realtime drop table tasks")
    assert resource.diff(db, state, checked).changes == {"tables": "update"}
    state = resource.update(db, state, checked, print)
    # Fewer tables: the one the stack added goes; one published before the stack stays.
    smaller = resource.check(db, checked, {"schema": "public", "tables": ["labels", "milestones"]})
    state = resource.update(db, state, smaller, print)
    with psycopg.connect(fresh_db) as conn:
        assert published_tables(conn) == {("public", t) for t in ("labels", "milestones", "audit_log")}
    resource.delete(db, state, print)
    with psycopg.connect(fresh_db) as conn:
        assert published_tables(conn) == {("public", "labels"), ("public", "audit_log")}
        assert conn.execute("select to_regnamespace('supabase_access')").fetchone() == (None,)
    with pytest.raises(InputError, match=r"tables: public\.nope not found"):
        resource.check(db, {}, {"schema": "public", "tables": ["nope"]})


def test_the_access_matrix_has_a_realtime_section(prod_app: tuple[Database, App], fresh_db: str) -> None:
    matrix = compute_matrix(fresh_db, realtime_model())
    assert matrix.realtime is not None
    states = matrix.realtime.states()
    member = "authenticated (member of A's groups)"
    # join, receive, send on A's project channel (own) and on B's (other).
    assert states[f"{member} · channel project:{{id}} · own"] == "✓✓✓"
    assert states[f"{member} · channel project:{{id}} · other"] == "✗✗✗"
    assert states["anon · channel project:{id} · own"] == "✗✗✗"
    assert states["authenticated (permanent) · channel user:{id} · own"] == "✓✓✓"
    assert states["authenticated (permanent) · channel user:{id} · other"] == "✗✗✗"
    assert states["anon · channel news · own"] == "✓✓✗"
    assert states["service_role · channel ops:{id} · own"] == "✓✓✓"
    assert states[f"{member} · channel ops:{{id}} · own"] == "✗✗✗"
    # Changes of a published table reach whom its SELECT policies admit.
    assert states[f"{member} · changes of tasks · own"] == "✓"
    assert states[f"{member} · changes of tasks · other"] == "✗"
    assert states["anon · changes of tasks · own"] == "✗"
    assert states["anon · changes of labels · other"] == "✓"
    assert not any("changes of projects" in key for key in states)
    text = matrix.render_text()
    assert "Realtime:" in text and "project:{id} own/other" in text and "tasks changes" in text
    assert "**Realtime**" in matrix.render_markdown()
    closed = realtime_changes(matrix.realtime, None)
    assert f"{member} · channel project:{{id}} · own: ✓✓✓ → absent" in closed


def test_a_join_asks_the_membership_once_per_statement(prod_app: tuple[Database, App], fresh_db: str) -> None:
    """The topic and the user's groups are initPlans: computed once per statement, not once per message."""
    _, app = prod_app
    with psycopg.connect(fresh_db) as conn, conn.transaction(force_rollback=True):
        conn.execute("set local role authenticated")
        conn.execute(
            "select set_config('request.jwt.claims', %s, true), set_config('realtime.topic', %s, true)",
            (app.persona(app.member).claims_setting(), f"project:{app.project}"),
        )
        plan = "\n".join(
            str(row[0])
            for row in conn.execute(
                "explain (costs off) select id from realtime.messages where topic = 'x' and extension = 'broadcast'"
            ).fetchall()
        )
    assert plan.count("project_members_groups") == 1, plan
    assert plan.count("InitPlan") >= 2, plan  # the topic and the groups
    assert "SubPlan" not in plan, plan


PREFLIGHT = REFERENCE_PREFLIGHT


def test_the_preflight_names_each_published_table_without_a_kind(db: Database, fresh_db: str) -> None:
    with psycopg.connect(fresh_db) as conn:
        conn.execute("create schema internal")
        conn.execute(
            "create table internal.audit (id bigint primary key, user_id uuid references auth.users (id)); "
            "create table public.feed (id bigint primary key, user_id uuid references auth.users (id)); "
            "alter publication supabase_realtime add table internal.audit, public.sessions"
        )
    # Prod: a table published by hand outside the exposed schemas, and one realtime.publish names
    # that tables: leaves out (the Data API exposes it too: named once, in that report).
    with pytest.raises(InputError) as raised:
        AccessPreflight().check(db, {}, {**PREFLIGHT, "uncoveredTables": "fail", "published": ["sessions", "feed"]})
    text = raised.value.reason
    assert "public.feed (RLS off, published to supabase_realtime): add `feed: {owner: user_id}`" in text
    assert "realtime.publish: supabase_realtime publishes 1 table(s) the model gives no kind" in text
    assert (
        "internal.audit (RLS off): the model describes schema public only: take it out of the publication "
        "(`alter publication supabase_realtime drop table internal.audit`)" in text
    )
    assert "A prod stack applies nothing until every published table has a kind" in text
    assert text.count("public.feed") == 1
    # Dev: said, not refused.
    said: list[str] = []
    token = CHECK_LOG.set(said.append)
    try:
        AccessPreflight().check(db, {}, {**PREFLIGHT, "published": ["feed"]})
    finally:
        CHECK_LOG.reset(token)
    assert len(said) == 2 and "internal.audit" in said[1] and "published to supabase_realtime" in said[0]
    # Quiet once each published table has a kind (the model's, or out of the publication).
    with psycopg.connect(fresh_db) as conn:
        conn.execute("alter publication supabase_realtime drop table internal.audit")
    said.clear()
    token = CHECK_LOG.set(said.append)
    try:
        AccessPreflight().check(
            db, {}, {**PREFLIGHT, "tables": [*PREFLIGHT["tables"], "feed"], "published": ["sessions", "feed"]}
        )
    finally:
        CHECK_LOG.reset(token)
    assert said == []


@both_platforms
def test_the_preflight_folds_published_partitions_into_their_partitioned_table(db: Database, fresh_db: str) -> None:
    """A partitioned table's changes are published as its partitions' (unless the publication publishes via
    the partition root), and a partition may be published alone: each is the partitioned table's rows, so
    the check asks the partitioned table's kind and names it, never a partition."""
    with psycopg.connect(fresh_db) as conn:
        conn.execute("create schema internal")
        conn.execute(
            "create table public.events (id bigint, at date, user_id uuid references auth.users (id)) "
            "partition by range (at); "
            "create table public.events_2024 partition of public.events "
            "for values from ('2024-01-01') to ('2025-01-01'); "
            "create table public.events_2025 partition of public.events "
            "for values from ('2025-01-01') to ('2026-01-01') partition by range (at); "
            "create table public.events_2025_h1 partition of public.events_2025 "
            "for values from ('2025-01-01') to ('2025-07-01'); "
            "create table internal.log (id bigint, at date) partition by range (at); "
            "create table internal.log_2024 partition of internal.log "
            "for values from ('2024-01-01') to ('2025-01-01'); "
            "create table internal.log_2025 partition of internal.log "
            "for values from ('2025-01-01') to ('2026-01-01'); "
            "alter publication supabase_realtime add table public.events, internal.log_2024"
        )
    covered = {**PREFLIGHT, "tables": [*PREFLIGHT["tables"], "events"], "uncoveredTables": "fail"}
    for via_root in ("false", "true"):
        with psycopg.connect(fresh_db) as conn:
            conn.execute(f"alter publication supabase_realtime set (publish_via_partition_root = {via_root})")
        # The model covers events: only internal.log is named, by itself, with the partition to take out.
        with pytest.raises(InputError) as raised:
            AccessPreflight().check(db, {}, covered)
        text = raised.value.reason
        assert "supabase_realtime publishes 1 table(s) the model gives no kind" in text, (via_root, text)
        assert (
            "internal.log (RLS off): the model describes schema public only: take it out of the publication "
            "(`alter publication supabase_realtime drop table internal.log_2024`)" in text
        ), text
        assert "events" not in text and "log_20" not in text.replace("drop table internal.log_2024", ""), text
        # Left out of the model, events is named once (the Data API exposes it), as itself.
        with pytest.raises(InputError) as raised:
            AccessPreflight().check(db, {}, {**covered, "tables": PREFLIGHT["tables"]})
        text = raised.value.reason
        assert "public.events (RLS off, published to supabase_realtime): add `events: {owner: user_id}`" in text
        assert "events_20" not in text, text
    with psycopg.connect(fresh_db) as conn:
        conn.execute("alter publication supabase_realtime drop table internal.log_2024")
    said: list[str] = []
    token = CHECK_LOG.set(said.append)
    try:
        AccessPreflight().check(db, {}, covered)
    finally:
        CHECK_LOG.reset(token)
    assert said == []


PARTITIONED_EVENTS = (
    "create table public.events (id bigint, at date) partition by range (at); "
    "create table public.events_2024 partition of public.events for values from ('2024-01-01') to ('2025-01-01'); "
    "create table public.events_2025 partition of public.events for values from ('2025-01-01') to ('2026-01-01')"
)


@both_platforms
@pytest.mark.parametrize(
    ("via_root", "made"),
    [(False, PARTITIONED_EVENTS), (True, PARTITIONED_EVENTS), (False, PARTITIONED_EVENTS.split(";")[0])],
    ids=["partitions", "via-root", "no-partition-yet"],
)
def test_a_partitioned_table_is_published_as_one(db: Database, fresh_db: str, via_root: bool, made: str) -> None:
    """The publication lists a partitioned table's partitions (unless it publishes via the root; none while it
    has none): the resource reads it as the table the model names, so a second preview is quiet and destroy
    takes it out."""
    with psycopg.connect(fresh_db) as conn:
        conn.execute(made)
        conn.execute(f"alter publication supabase_realtime set (publish_via_partition_root = {str(via_root).lower()})")
    resource = RealtimePublication()
    resource_id, checked, state = create(resource, db, {"schema": "public", "tables": ["events"]})
    assert state["added"] == ["events"]
    assert resource.diff(db, state, checked).changes == {}
    assert read(resource, db, resource_id, state, checked) == (state, checked)
    assert resource.update(db, state, checked, print) == state
    resource.delete(db, state, print)
    with psycopg.connect(fresh_db) as conn:
        assert published_tables(conn) == set()


@both_platforms
def test_a_partition_published_alone_does_not_publish_its_partitioned_table(db: Database, fresh_db: str) -> None:
    """A partition added by hand publishes its own rows only: the model's partitioned table is added whole,
    and destroy takes out what the stack added, leaving the partition as it was."""
    with psycopg.connect(fresh_db) as conn:
        conn.execute(PARTITIONED_EVENTS)
        conn.execute("alter publication supabase_realtime add table public.events_2024")
    resource = RealtimePublication()
    _, checked, state = create(resource, db, {"schema": "public", "tables": ["events"]})
    assert state["added"] == ["events"]
    members = (
        "select r.prrelid::regclass::text from pg_publication_rel r join pg_publication p on p.oid = r.prpubid "
        "where p.pubname = 'supabase_realtime' order by 1"
    )
    with psycopg.connect(fresh_db) as conn:
        assert [m for (m,) in conn.execute(members).fetchall()] == ["events", "events_2024"]
    assert resource.diff(db, state, checked).changes == {}
    resource.delete(db, state, print)
    with psycopg.connect(fresh_db) as conn:
        assert [m for (m,) in conn.execute(members).fetchall()] == ["events_2024"]
