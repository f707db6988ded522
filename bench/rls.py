"""What the access rules cost the app's requests: owner policies against a hand-written floor and naive policies.

    python -m bench.rls [--users 10000 --sessions 100000 ... --repeat 30] [--explain] [--owner-variant NAME]

Creates a database of its own from `supabase_template_legacy`, fills it with generated data (in SQL,
with generate_series), and times the app's typical requests as a signed-in user exactly as
PostgREST runs them (review.postgrest), in three setups side by side:

- owner:    the owner profile's policies, rendered and applied by supabase_access itself, with
            the covering indexes its PolicyIndex resources build and a copy of the owner on the
            tables two or more hops from it (the model's copyOwner, added and filled by the
            provider's own OwnerCopy resource; `--owner-copy all`: every table below the owner,
            `none`: no copy);
- explicit: no RLS (service_role), the same request with the ownership filter written by hand;
- naive:    policies in the style of the seed guide's alternative (auth.uid() unwrapped, per-row
            EXISTS joins to sessions).

The setups share one database; the policies of owner and naive are swapped in between (the
requests run as role `authenticated` in both). Blocks rotate the setups so that noise from the
machine spreads over all of them. Statements are prepared, as PostgREST prepares them by
default; `--no-prepare` parses and plans every request instead. `--owner-variant` times an
alternative owner rendering beside the others, `--explain` prints the plans.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, LiteralString

import psycopg
from psycopg import sql
from psycopg.types.numeric import Int4

from bench.common import (
    REPO,
    ProgressBar,
    admin_conninfo,
    app_conninfo,
    build_lookup_index,
    format_table,
    machine_summary,
    median,
    p95,
    provider_database,
    ratio,
    scratch_database,
    write_figures,
)
from review.postgrest import Persona, as_persona, assert_rls_applies, connect_as_authenticator
from supabase_access.model.access_model import AccessModel, load_model_file
from supabase_access.model.policy import PolicySpec
from supabase_access.model.policy_lookups import policy_lookups
from supabase_access.model.profiles import OwnedByCurrentUser, plan_access
from supabase_access.sql import catalog
from supabase_access.sql import statements as render

# Targets of issue 6.
OWNER_OVER_EXPLICIT_MAX = 1.2
NAIVE_OVER_OWNER_MIN = 10.0
# Subjects on which the setups' answers are compared before timing.
VERIFICATION_SUBJECTS = 2
# A request this slow is not warmed up further: its planning time is noise.
SLOW_REQUEST_SECONDS = 0.05
# PostgreSQL's plan cache plans this many executions of a prepared statement before weighing a generic plan.
CUSTOM_PLAN_RUNS = 5
# Types of the request parameters, for PREPARE.
PARAM_TYPES = {
    "user_id": "uuid",
    "session_id": "uuid",
    "segment_id": "uuid",
    "turn_id": "uuid",
    "action_id": "uuid",
    "pattern": "text",
    "title": "text",
}
# A slow cell (naive on a full scan) stops repeating once it has used its time budget.
MIN_RUNS_PER_CELL = 3
CHUNK_ROWS = 100_000
# Words of the generated content; a search looks for one of them (each is in ~1/20 of the rows).
VOCABULARY = (
    "harbor", "lantern", "meadow", "glacier", "orchid", "canyon", "ember", "falcon", "willow", "quartz",
    "saffron", "tundra", "velvet", "cobalt", "juniper", "marble", "nectar", "obsidian", "pepper", "ripple",
    "summit", "thistle", "umber", "violet", "walnut", "zephyr", "amber", "basalt", "cedar", "dune",
    "ferret", "garnet", "hazel", "indigo", "jasper", "kelp", "lagoon", "maple", "nimbus", "opal",
)  # fmt: skip


# --- data ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    users: int
    sessions: int
    segments: int
    turns: int
    actions: int
    contents: int

    @property
    def total(self) -> int:
        return self.users + self.sessions + self.segments + self.turns + self.actions + self.contents


# Row n of every table has a deterministic id (md5 of a prefix and n), so children find their
# parent arithmetically, without joins: session n belongs to user ((n-1) % users) + 1, turn n to
# session ((n-1) % sessions) + 1, and so on. A user's rows are spread over the whole table, as
# rows written over time are.
# Two vocabulary words picked by row number (w1 cycles fastest), for text a search can match.
WORDS_OF_ROW: LiteralString = (
    " lateral (select (%(words)s::text[])[1 + n %% %(word_count)s] as w1,"
    " (%(words)s::text[])[1 + (n / %(word_count)s) %% %(word_count)s] as w2) words"
)
GENERATE: tuple[tuple[str, str, LiteralString], ...] = (
    (
        "auth.users",
        "users",
        "insert into auth.users (id, is_anonymous, created_at)"
        " select md5('u' || n)::uuid, n %% 2 = 0, now() - make_interval(secs => %(count)s - n)"
        " from generate_series(%(low)s, %(high)s) n",
    ),
    (
        "sessions",
        "sessions",
        "insert into public.sessions (id, user_id, title, created_at)"
        " select md5('s' || n)::uuid, md5('u' || ((n - 1) %% %(users)s + 1))::uuid, 'Session ' || n,"
        " now() - make_interval(secs => %(count)s - n)"
        " from generate_series(%(low)s, %(high)s) n",
    ),
    (
        "segments",
        "segments",
        "insert into public.segments (id, session_id, position, title, created_at)"
        " select md5('g' || n)::uuid, md5('s' || ((n - 1) %% %(sessions)s + 1))::uuid, (n - 1) / %(sessions)s,"
        " 'Segment ' || n, now() - make_interval(secs => %(count)s - n)"
        " from generate_series(%(low)s, %(high)s) n",
    ),
    (
        "turns",
        "turns",
        # Turn n goes to one of its session's segments (session s has segments s, s + sessions, ...).
        "insert into public.turns (id, session_id, segment_id, speaker, content, created_at)"
        " select md5('t' || n)::uuid, md5('s' || s)::uuid,"
        " case when g <= %(segments)s then md5('g' || g)::uuid end,"
        " case when n %% 2 = 0 then 'user' else 'assistant' end,"
        " 'Turn ' || n || ': ' || w1 || ' and ' || w2 || ' in the text',"
        " now() - make_interval(secs => %(count)s - n)"
        " from generate_series(%(low)s, %(high)s) n,"
        " lateral (select (n - 1) %% %(sessions)s + 1 as s) session_number,"
        " lateral (select s + %(sessions)s * (((n - 1) / %(sessions)s) %% %(segments_per_session)s) as g) segment,"
        + WORDS_OF_ROW,
    ),
    (
        "actions",
        "actions",
        "insert into public.actions (id, turn_id, kind, payload, created_at)"
        " select md5('a' || n)::uuid, md5('t' || ((n - 1) %% %(turns)s + 1))::uuid,"
        " (array['click', 'copy', 'rate', 'share'])[1 + n %% 4], jsonb_build_object('n', n, 'ok', n %% 3 > 0),"
        " now() - make_interval(secs => %(count)s - n)"
        " from generate_series(%(low)s, %(high)s) n",
    ),
    (
        "generated_content",
        "contents",
        "insert into public.generated_content (id, session_id, kind, body, created_at)"
        " select md5('c' || n)::uuid, md5('s' || ((n - 1) %% %(sessions)s + 1))::uuid,"
        " (array['summary', 'notes', 'quiz'])[1 + n %% 3],"
        " 'Draft ' || n || ' about the ' || w1 || ' near the ' || w2"
        " || '. ' || repeat('Lorem ipsum dolor sit amet, consectetur adipiscing elit. ', 3),"
        " now() - make_interval(secs => %(count)s - n)"
        " from generate_series(%(low)s, %(high)s) n," + WORDS_OF_ROW,
    ),
)


def generate_data(dbname: str, sizes: Sizes) -> None:
    """Fill the app's tables in chunks (one INSERT ... SELECT generate_series each), then VACUUM ANALYZE."""
    progress = ProgressBar(sizes.total, "data")
    common = {
        "users": sizes.users,
        "sessions": sizes.sessions,
        "segments": sizes.segments,
        "turns": sizes.turns,
        "segments_per_session": max(1, -(-sizes.segments // sizes.sessions)),
        "words": list(VOCABULARY),
        "word_count": len(VOCABULARY),
    }
    with psycopg.connect(admin_conninfo(dbname), autocommit=True) as admin:
        # The rows are consistent by construction: skip the per-row foreign-key triggers.
        admin.execute("set session_replication_role = replica")
        for table, size_field, statement in GENERATE:
            count = getattr(sizes, size_field)
            for low in range(1, count + 1, CHUNK_ROWS):
                high = min(count, low + CHUNK_ROWS - 1)
                # Integers sent as int4 so generate_series and the arithmetic resolve unambiguously.
                params = {**common, "low": low, "high": high, "count": count}
                admin.execute(statement, {k: _int4(v) for k, v in params.items()})
                progress.advance(high - low + 1, f"{table} {high:,}/{count:,}")
            progress.note(f"{table}: {count:,} rows")
        admin.execute("reset session_replication_role")
        progress.advance(0, "vacuum analyze")
        admin.execute(VACUUM_ANALYZE)
        progress.note("vacuum analyze")
    progress.finish()


VACUUM_ANALYZE: LiteralString = (
    "vacuum analyze auth.users, public.sessions, public.segments, public.turns, public.actions,"
    " public.generated_content"
)


VACUUM_WRITTEN: LiteralString = "vacuum public.sessions, public.turns, public.actions"


def vacuum(dbname: str) -> None:
    with psycopg.connect(admin_conninfo(dbname), autocommit=True) as admin:
        admin.execute(VACUUM_ANALYZE)


def _int4(value: object) -> object:
    return Int4(value) if isinstance(value, int) else value


# --- setups ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    name: str
    # Policies per table while this setup runs; None: the setup runs as service_role and bypasses RLS.
    policies: Mapping[str, tuple[PolicySpec, ...]] | None
    description: str


def owner_policies(model: AccessModel) -> dict[str, tuple[PolicySpec, ...]]:
    """The owner profile exactly as supabase_access renders it for `pulumi up`."""
    return render.plan_policies(plan_access(model, "owner"))


def naive_policies(model: AccessModel) -> dict[str, tuple[PolicySpec, ...]]:
    """The seed guide's alternative, generalised: one FOR ALL policy per table, auth.uid() unwrapped.

    The root table gets the guide's own predicate (`user_id = COALESCE(auth.uid(), user_id)`,
    with uuid instead of text so it can be created); every other table an EXISTS that joins, per
    row, up its ownership path to the root table.
    """
    policies: dict[str, tuple[PolicySpec, ...]] = {}
    for table in model.tables:
        hops, root = model.ownership_path(table.name)
        assert root.owner_column is not None
        owner = sql.Identifier(root.owner_column).as_string()
        if not hops:
            predicate = f"{owner} = coalesce(auth.uid(), {owner})"
        else:
            # Aliases p1, p2, ... for the parents; the first condition correlates with the outer row.
            joins, conditions = [], []
            previous = sql.Identifier(table.name).as_string()
            for index, hop in enumerate(hops, start=1):
                alias = f"p{index}"
                parent = sql.Identifier(model.schema, hop.parent).as_string()
                joins.append(f"{parent} {alias}")
                conditions.append(
                    f"{alias}.{sql.Identifier(hop.key).as_string()} = "
                    f"{previous}.{sql.Identifier(hop.column).as_string()}"
                )
                previous = alias
            conditions.append(f"{previous}.{owner} = auth.uid()")
            predicate = f"exists (select 1 from {', '.join(joins)} where {' and '.join(conditions)})"
        policies[table.name] = (
            PolicySpec(f"{table.name}_naive", "ALL", ("authenticated",), True, predicate, predicate),
        )
    return policies


def exists_up_path(model: AccessModel, table: str) -> str:
    """A correlated EXISTS that follows one row's foreign keys up to its owner, with auth.uid() wrapped.

    Costs one primary-key probe per hop and per row checked, whatever the user owns.
    """
    hops, root = model.ownership_path(table)
    assert hops and root.owner_column is not None
    sources, conditions = [], []
    previous: sql.Composable = sql.Identifier(table)
    for index, hop in enumerate(hops, start=1):
        alias = sql.Identifier(f"p{index}")
        sources.append(sql.SQL("{} {}").format(sql.Identifier(model.schema, hop.parent), alias))
        conditions.append(
            sql.SQL("{}.{} = {}.{}").format(alias, sql.Identifier(hop.key), previous, sql.Identifier(hop.column))
        )
        previous = alias
    conditions.append(sql.SQL("{}.{} = {}").format(previous, sql.Identifier(root.owner_column), render.CURRENT_USER_ID))
    return (
        sql.SQL("exists (select from {} where {})")
        .format(sql.SQL(", ").join(sources), sql.SQL(" and ").join(conditions))
        .as_string()
    )


def exists_in_parent(model: AccessModel, table: str) -> str:
    """A correlated EXISTS on the row's direct parent, whose own ownership keeps supabase_access's array form.

    For a table two hops down (actions -> turns -> sessions): one probe of the parent per row,
    plus the user's root rows once per statement, instead of all the user's parent rows.
    """
    hops, root = model.ownership_path(table)
    assert hops and root.owner_column is not None
    first = hops[0]
    parent_owned = OwnedByCurrentUser(hops[1:], root.name, root.owner_column)
    return (
        sql.SQL("exists (select from {} p where p.{} = {}.{} and {})")
        .format(
            sql.Identifier(model.schema, first.parent),
            sql.Identifier(first.key),
            sql.Identifier(table),
            sql.Identifier(first.column),
            # Unqualified columns of the parent's predicate resolve to p, the innermost FROM.
            sql.SQL(render.render_predicate(model.schema, parent_owned)),
        )
        .as_string()
    )


def _owner_with(
    model: AccessModel,
    *,
    check_from_depth: int | None,
    using_from_depth: int | None,
    exists: Callable[[AccessModel, str], str] = exists_up_path,
) -> dict[str, tuple[PolicySpec, ...]]:
    """The owner policies with some predicates replaced by `exists_up_path`.

    check_from_depth: WITH CHECK (it checks one new row at a time) of tables at least this many hops from their owner.
    using_from_depth: USING of tables at least this many hops from their owner.
    """
    variant: dict[str, tuple[PolicySpec, ...]] = {}
    for table, specs in owner_policies(model).items():
        depth = len(model.ownership_path(table)[0])
        if depth == 0:
            variant[table] = specs
            continue
        replacement = exists(model, table)
        swap_using = using_from_depth is not None and depth >= using_from_depth
        swap_check = check_from_depth is not None and depth >= check_from_depth
        variant[table] = tuple(
            PolicySpec(
                p.name,
                p.command,
                p.roles,
                p.permissive,
                replacement if swap_using and p.using is not None else p.using,
                replacement if swap_check and p.with_check is not None else p.with_check,
            )
            for p in specs
        )
    return variant


# Alternatives to the owner rendering, to test a policy change here before proposing it in sql.py.
OWNER_VARIANTS: dict[str, Callable[[AccessModel], dict[str, tuple[PolicySpec, ...]]]] = {
    # WITH CHECK as a per-row EXISTS; USING unchanged.
    "check-exists": lambda m: _owner_with(m, check_from_depth=1, using_from_depth=None),
    # ... and USING too on tables two or more hops from their owner (actions).
    "deep-exists": lambda m: _owner_with(m, check_from_depth=1, using_from_depth=2),
    # Tables two or more hops down: USING and WITH CHECK probe the direct parent, whose ownership keeps the array.
    "deep-parent": lambda m: _owner_with(m, check_from_depth=2, using_from_depth=2, exists=exists_in_parent),
    # Every child table's USING and WITH CHECK as a per-row EXISTS (the per-row join, wrapped uid).
    "all-exists": lambda m: _owner_with(m, check_from_depth=1, using_from_depth=1),
    # Not a rendering change but a model change: tables two or more hops down carry the owner
    # column themselves (see OWNER_COLUMN_SQL), so supabase_access renders `user_id = (select auth.uid())`.
    "owner-column": lambda m: owner_column_policies(m),
    # The parent ids each user owns come from SECURITY DEFINER functions: one join per statement
    # instead of the parent tables' own policies being applied again inside every policy subquery.
    "definer-arrays": lambda m: definer_array_policies(m),
    # A diagnostic, never a setting: tables two or more hops down check nothing (USING and WITH
    # CHECK true), so what is left is what the other tables' policies cost a request.
    "deep-unchecked": lambda m: deep_unchecked_policies(m),
}
# Schema changes a variant needs before it runs (idempotent, so a --reuse run can repeat them).
VARIANT_SCHEMA: dict[str, tuple[LiteralString, ...]] = {
    "definer-arrays": (
        "create schema if not exists bench_private",
        "create or replace function bench_private.owned_session_ids() returns uuid[] language sql stable"
        " security definer set search_path = '' as"
        " $$ select coalesce(array_agg(s.id), '{}') from public.sessions s where s.user_id = auth.uid() $$",
        "create or replace function bench_private.owned_turn_ids() returns uuid[] language sql stable"
        " security definer set search_path = '' as"
        " $$ select coalesce(array_agg(t.id), '{}') from public.sessions s join public.turns t on t.session_id = s.id"
        " where s.user_id = auth.uid() $$",
        "grant usage on schema bench_private to authenticated",
    ),
    "owner-column": (
        "alter table public.actions add column if not exists user_id uuid",
        "update public.actions a set user_id = s.user_id from public.turns t join public.sessions s"
        " on s.id = t.session_id where t.id = a.turn_id and a.user_id is null",
        "create index if not exists actions_user_id_idx on public.actions (user_id)",
        "vacuum analyze public.actions",
    ),
}


def with_owner_column_on_deep_tables(model: AccessModel) -> AccessModel:
    """The model with every table two or more hops from its owner also carrying a `user_id` of its own
    (`owner` and `through` both set)."""
    tables = tuple(
        replace(t, owner_column="user_id") if len(model.ownership_path(t.name)[0]) >= 2 else t for t in model.tables
    )
    return AccessModel(model.schema, tables)


def owner_column_policies(model: AccessModel) -> dict[str, tuple[PolicySpec, ...]]:
    """The owner profile as rendered for that model: reads by the column, writes also check the path."""
    return owner_policies(with_owner_column_on_deep_tables(model))


def definer_array_policies(model: AccessModel) -> dict[str, tuple[PolicySpec, ...]]:
    """Child tables check their parent column against the ids a SECURITY DEFINER function returns."""
    functions = {"sessions": "bench_private.owned_session_ids()", "turns": "bench_private.owned_turn_ids()"}
    policies: dict[str, tuple[PolicySpec, ...]] = {}
    for table, specs in owner_policies(model).items():
        hops, _ = model.ownership_path(table)
        if not hops:
            policies[table] = specs
            continue
        predicate = f"{hops[0].column} = any ((select {functions[hops[0].parent]})::uuid[])"
        policies[table] = tuple(
            PolicySpec(
                p.name,
                p.command,
                p.roles,
                p.permissive,
                None if p.using is None else predicate,
                None if p.with_check is None else predicate,
            )
            for p in specs
        )
    return policies


def deep_unchecked_policies(model: AccessModel) -> dict[str, tuple[PolicySpec, ...]]:
    """The owner policies, with `true` for every predicate of tables two or more hops from their owner."""

    def unchecked(p: PolicySpec) -> PolicySpec:
        return replace(
            p, using=None if p.using is None else "true", with_check=None if p.with_check is None else "true"
        )

    return {
        table: tuple(unchecked(p) for p in specs) if len(model.ownership_path(table)[0]) >= 2 else specs
        for table, specs in owner_policies(model).items()
    }


def prepare_variant_schema(dbname: str, variant: str) -> None:
    statements = VARIANT_SCHEMA.get(variant, ())
    if statements:
        print(f"bench.rls: schema for variant {variant}", file=sys.stderr)
        with psycopg.connect(admin_conninfo(dbname), autocommit=True) as admin:
            for statement in statements:
                admin.execute(statement)


# --- requests --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    name: str
    # PostgREST's HTTP method: GET runs in a read-only transaction; writes are rolled back here.
    method: str
    # As the app sends it: no ownership filter, the policies do that work.
    app_sql: LiteralString
    # The same request with the ownership filter written by hand, for service_role (no RLS).
    explicit_sql: LiteralString
    # Narrowed to one session or row by the request itself (the target naive/owner >= 10 is for the others).
    session_filter: bool
    # Writes compare row counts across setups (new ids differ); reads compare the rows.
    compare_rows: bool = True


OPEN_SESSION_BODY: LiteralString = (
    "select s.id, s.title, s.created_at,"
    " coalesce((select json_agg(g order by g.position)"
    "   from (select id, position, title from segments where segments.session_id = s.id) g), '[]') as segments,"
    " coalesce((select json_agg(t order by t.created_at) from ("
    "   select turns.id, turns.speaker, turns.content, turns.created_at,"
    "   coalesce((select json_agg(a order by a.id) from (select actions.id, actions.kind, actions.payload"
    "     from actions where actions.turn_id = turns.id) a), '[]') as actions"
    "   from turns where turns.session_id = s.id) t), '[]') as turns"
    " from sessions s where s.id = %(session_id)s"
)

# Reads first and the update last: a rolled-back write leaves dead row versions behind, which
# should not lie in the way of the other requests.
REQUESTS: tuple[Request, ...] = (
    Request(
        "list my sessions",
        "GET",
        "select id, title, created_at from sessions order by created_at desc limit 20",
        "select id, title, created_at from sessions where user_id = %(user_id)s order by created_at desc limit 20",
        session_filter=False,
    ),
    Request(
        "open a session (segments, turns, actions)",
        "GET",
        OPEN_SESSION_BODY,
        OPEN_SESSION_BODY + " and s.user_id = %(user_id)s",
        session_filter=True,
    ),
    Request(
        "count my turns",
        "GET",
        "select count(*) from turns",
        "select count(*) from turns t join sessions s on s.id = t.session_id where s.user_id = %(user_id)s",
        session_filter=False,
    ),
    Request(
        "search my generated_content",
        "GET",
        "select id, session_id, kind, left(body, 80) from generated_content where body ilike %(pattern)s"
        " order by created_at desc limit 20",
        "select c.id, c.session_id, c.kind, left(c.body, 80) from generated_content c"
        " join sessions s on s.id = c.session_id"
        " where s.user_id = %(user_id)s and c.body ilike %(pattern)s order by c.created_at desc limit 20",
        session_filter=False,
    ),
    Request(
        "insert a turn",
        "POST",
        "insert into turns (session_id, segment_id, speaker, content)"
        " values (%(session_id)s, %(segment_id)s, 'user', 'a new turn') returning id",
        "insert into turns (session_id, segment_id, speaker, content)"
        " select %(session_id)s, %(segment_id)s, 'user', 'a new turn'"
        " where exists (select from sessions where id = %(session_id)s and user_id = %(user_id)s) returning id",
        session_filter=True,
        compare_rows=False,
    ),
    Request(
        # supabase-js's insert() without select() (Prefer: return=minimal): PostgREST returns `1`, which
        # reads no column, so PostgreSQL checks the new row against the INSERT policy only, not the SELECT one.
        "insert a turn, return=minimal",
        "POST",
        "insert into turns (session_id, segment_id, speaker, content)"
        " values (%(session_id)s, %(segment_id)s, 'user', 'a new turn') returning 1",
        "insert into turns (session_id, segment_id, speaker, content)"
        " select %(session_id)s, %(segment_id)s, 'user', 'a new turn'"
        " where exists (select from sessions where id = %(session_id)s and user_id = %(user_id)s) returning 1",
        session_filter=True,
        compare_rows=False,
    ),
    Request(
        # The table two hops down: with copyOwner, its trigger takes the owner from the turn.
        "insert an action",
        "POST",
        "insert into actions (turn_id, kind) values (%(turn_id)s, 'click') returning id",
        "insert into actions (turn_id, kind) select %(turn_id)s, 'click'"
        " where exists (select from turns t join sessions s on s.id = t.session_id"
        " where t.id = %(turn_id)s and s.user_id = %(user_id)s) returning id",
        session_filter=True,
        compare_rows=False,
    ),
    Request(
        "delete an action",
        "DELETE",
        "delete from actions where id = %(action_id)s",
        "delete from actions a where a.id = %(action_id)s and exists (select from turns t"
        " join sessions s on s.id = t.session_id where t.id = a.turn_id and s.user_id = %(user_id)s)",
        session_filter=True,
        compare_rows=False,
    ),
    Request(
        "update a session",
        "PATCH",
        "update sessions set title = %(title)s where id = %(session_id)s",
        "update sessions set title = %(title)s where id = %(session_id)s and user_id = %(user_id)s",
        session_filter=True,
        compare_rows=False,
    ),
)


@dataclass(frozen=True)
class Subject:
    """One signed-in user of a round and the rows their requests name."""

    user_id: Any
    is_anonymous: bool
    session_id: Any
    segment_id: Any
    turn_id: Any
    action_id: Any
    pattern: str

    def params(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "session_id": self.session_id,
            "segment_id": self.segment_id,
            "turn_id": self.turn_id,
            "action_id": self.action_id,
            "pattern": self.pattern,
            "title": "renamed",
        }


def pick_subjects(dbname: str, count: int, seed: int) -> list[Subject]:
    """`count` random sessions, each with a segment, a turn and an action of its own when it has them.

    Every user owns the same number of rows (see GENERATE), so any two subjects are alike.
    """
    rng = random.Random(seed)
    with psycopg.connect(admin_conninfo(dbname)) as admin:
        admin.execute("select setseed(%s)", (rng.random() * 2 - 1,))
        rows = admin.execute(
            "select s.user_id, u.is_anonymous, s.id,"
            " (select g.id from segments g where g.session_id = s.id order by g.id limit 1),"
            " (select t.id from turns t where t.session_id = s.id order by t.id limit 1),"
            " (select a.id from turns t join actions a on a.turn_id = t.id where t.session_id = s.id"
            "  order by a.id limit 1)"
            " from (select id, user_id from sessions order by random() limit %s) s"
            " join auth.users u on u.id = s.user_id",
            (count,),
        ).fetchall()
    if not rows:
        raise SystemExit("bench.rls: no sessions were generated; use larger sizes")
    return [
        Subject(user, anonymous, session, segment, turn, action, f"%{rng.choice(VOCABULARY)}%")
        for user, anonymous, session, segment, turn, action in rows
    ]


# --- running ---------------------------------------------------------------------------------


@dataclass
class Cell:
    """The timings of one request in one setup."""

    seconds: list[float] = field(default_factory=list)
    # Untimed warm-up runs, counted against the cell's time budget.
    overhead: float = 0.0

    @property
    def spent(self) -> float:
        return sum(self.seconds) + self.overhead


class PolicySwitcher:
    """Installs a setup's policies through supabase_access's catalog functions, as the provider does."""

    def __init__(self, dbname: str, schema: str) -> None:
        self.conn = psycopg.connect(app_conninfo(dbname), autocommit=True)
        self.schema = schema
        self.current: str | None = None

    def install(self, setup: Setup) -> None:
        if setup.policies is None or self.current == setup.name:
            return
        # One transaction, as TablePolicies applies a change: no request sees a mixed set.
        with self.conn.transaction():
            for table, specs in setup.policies.items():
                catalog.replace_policies(self.conn, self.schema, table, specs)
        self.current = setup.name

    def close(self) -> None:
        self.conn.close()


def apply_owner_grants(dbname: str, model: AccessModel) -> None:
    """RLS on and the owner profile's grants (anon: none; authenticated: the four commands)."""
    plan = plan_access(model, "owner")
    with psycopg.connect(app_conninfo(dbname), autocommit=True) as conn, conn.transaction():
        for table in model.table_names:
            conn.execute(render.set_row_level_security(plan.schema, table, enabled=True))
        for role, privileges in plan.grants.items():
            conn.execute(render.revoke_all(role, plan.schema, model.table_names))
            if privileges:
                conn.execute(render.grant(role, plan.schema, model.table_names, privileges))


def with_owner_copies(model: AccessModel, *, min_hops: int = 2) -> AccessModel:
    """The model with `copyOwner: true` on every table `min_hops` or more hops from its owner (2: actions)."""
    tables = []
    for table in model.tables:
        hops, root = model.ownership_path(table.name)
        if len(hops) >= min_hops:
            table = replace(table, owner_column=root.owner_column, owner_copy=True)
        tables.append(table)
    return AccessModel(model.schema, tuple(tables))


def build_owner_copies(dbname: str, model: AccessModel) -> list[str]:
    """The owner (and group) copies the model asks for, added and filled by the provider's own OwnerCopy resource,
    as `pulumi up` adds them to an owner stack's database; returns what it reported."""
    from supabase_access.provider.base import CURRENT_STACK
    from supabase_access.provider.resources.owner_copy import OwnerCopy

    CURRENT_STACK.set("bench")
    db = provider_database(dbname)
    resource = OwnerCopy()
    reported: list[str] = []

    def log(message: str) -> None:
        reported.append(message)
        print(f"  {message}", file=sys.stderr)

    try:
        for copy in plan_access(model, "owner").owner_copies:
            print(f"bench: {'group' if copy.group else 'owner'} copy {copy.table}.{copy.column}", file=sys.stderr)
            inputs = {
                "schema": model.schema,
                "table": copy.table,
                "column": copy.column,
                "path": [{"table": h.table, "column": h.column, "parent": h.parent, "key": h.key} for h in copy.hops],
                "rootColumn": copy.root_column,
                "group": copy.group or None,
            }
            started = time.perf_counter()
            resource.create(db, resource.check(db, {}, inputs), log)
            reported.append(f"{copy.table}.{copy.column} ready in {time.perf_counter() - started:.1f} s")
    finally:
        db.close()
    return reported


def build_policy_indexes(dbname: str, models: Sequence[AccessModel]) -> None:
    """The covering indexes the owner profile's lookups need, built by the provider's own PolicyIndex
    resource, as `pulumi up` builds them for an owner stack of an app that took its index advice."""
    db = provider_database(dbname)
    lookups = sorted({lookup for model in models for lookup in policy_lookups(plan_access(model, "owner"))})
    try:
        for lookup in lookups:
            print(f"bench.rls: index for {lookup.table} ({lookup.column}) include ({lookup.include})", file=sys.stderr)
            build_lookup_index(db, dbname, models[0].schema, lookup.table, lookup.column, lookup.include)
    finally:
        db.close()


def persona_for(setup: Setup, subject: Subject) -> Persona:
    if setup.policies is None:
        return Persona.service()
    return Persona.signed_in(subject.user_id, is_anonymous=subject.is_anonymous)


def statement_of(setup: Setup, request: Request) -> LiteralString:
    return request.explicit_sql if setup.policies is None else request.app_sql


class StatementRunner:
    """Runs a request's statement on one authenticator connection, prepared or not.

    Prepared (PostgREST's default, db-prepared-statements): each statement is PREPAREd once per
    connection and EXECUTEd with the request's values, so PostgreSQL's plan cache works as it does
    behind PostgREST. SQL-level PREPARE is used because psycopg drops its own prepared statements
    at every ROLLBACK, and the writes here are rolled back. Unprepared: every request is parsed and
    planned again (PostgREST with db-prepared-statements off, e.g. behind a transaction pooler).
    """

    def __init__(self, conn: psycopg.Connection[Any], *, prepared: bool) -> None:
        self.conn = conn
        self.prepared = prepared
        # One prepared statement per setup and statement: PostgreSQL's choice between custom and
        # generic plans learns from a statement's past executions, which must be of one setup only.
        self.names: dict[tuple[str, str], str] = {}
        # psycopg's own statement cache stays off: it would be flushed by every rollback anyway.
        conn.prepare_threshold = None

    def _text(
        self, cur: psycopg.Cursor[Any], setup: Setup, statement: LiteralString, params: Mapping[str, Any]
    ) -> sql.SQL | sql.Composed:
        if not self.prepared:
            return sql.SQL(statement)
        order = re.findall(r"%\((\w+)\)s", statement)
        names = list(dict.fromkeys(order))
        name = self.names.get((setup.name, statement))
        if name is None:
            name = f"bench_rls_{len(self.names)}"
            numbered = re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m.group(1)) + 1}", statement)
            types = sql.SQL(", ").join(sql.SQL(PARAM_TYPES[n]) for n in names)
            prefix = (
                sql.SQL("prepare {} ({}) as ").format(sql.Identifier(name), types)
                if names
                else sql.SQL("prepare {} as ").format(sql.Identifier(name))
            )
            # Not transactional: the prepared statement outlives this request's rollback.
            cur.execute(prefix + sql.SQL(numbered))  # type: ignore[arg-type]
            self.names[(setup.name, statement)] = name
        values = sql.SQL(", ").join(sql.Literal(params[n]) for n in names)
        return (
            sql.SQL("execute {}({})").format(sql.Identifier(name), values)
            if names
            else sql.SQL("execute {}").format(sql.Identifier(name))
        )

    def plan_counts(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(generic, custom) plans PostgreSQL used so far, per (setup, statement) prepared on this connection."""
        rows = self.conn.execute("select name, generic_plans, custom_plans from pg_prepared_statements").fetchall()
        counts = {name: (generic, custom) for name, generic, custom in rows}
        return {key: counts[name] for key, name in self.names.items() if name in counts}

    def run(self, setup: Setup, request: Request, subject: Subject) -> tuple[float, object]:
        """Time one request's statement inside a PostgREST-style transaction (rolled back).

        The clock covers the statement and fetching its rows, not the transaction set-up that
        every setup pays alike (begin, role, claims, rollback).
        """
        params = subject.params()
        with as_persona(self.conn, persona_for(setup, subject), method=request.method) as cur:
            text = self._text(cur, setup, statement_of(setup, request), params)
            started = time.perf_counter()
            cur.execute(text, None if self.prepared else params)
            rows = cur.fetchall() if cur.description is not None else None
            elapsed = time.perf_counter() - started
            outcome: object = rows if request.compare_rows else cur.rowcount
        return elapsed, outcome

    def explain(self, setup: Setup, request: Request, subject: Subject) -> str:
        params = subject.params()
        with as_persona(self.conn, persona_for(setup, subject), method=request.method) as cur:
            text = self._text(cur, setup, statement_of(setup, request), params)
            cur.execute(sql.SQL("explain (analyze, buffers) ") + text, None if self.prepared else params)
            return "\n".join(line for (line,) in cur.fetchall())


def check_rls_applies(conn: psycopg.Connection[Any], setup: Setup, subject: Subject) -> None:
    """The policy setups must really be subject to RLS, or they would measure nothing."""
    with as_persona(conn, persona_for(setup, subject)) as cur:
        assert_rls_applies(cur)


def block_groups(setups: Sequence[Setup]) -> list[list[Setup]]:
    """The setups that share a block: each policy setup, with the RLS-free ones riding along with the first.

    A setup without policies (explicit, as service_role) does not care which policies are
    installed, so it is timed in the same block as the owner, run for run: their ratio then
    compares requests made at the same moments, not minutes apart on a machine whose speed drifts.
    """
    with_policies = [[s] for s in setups if s.policies is not None]
    riders = [s for s in setups if s.policies is None]
    if not with_policies:
        return [riders]
    with_policies[0].extend(riders)
    return with_policies


def measure(
    dbname: str,
    setups: Sequence[Setup],
    subjects: Sequence[Subject],
    *,
    repeat: int,
    blocks: int,
    max_seconds: float,
    schema: str,
    prepared: bool,
) -> dict[tuple[str, str], Cell]:
    """Time every request in every setup, `repeat` times, in `blocks` rotations of the setups' groups.

    A group's policies stay installed for a whole block, as they stay in production, so cached
    plans are reused; untimed warm-up runs re-plan after the swap. Within a block the group's
    setups take turns, one run each, the first of a round alternating (see `block_groups`). Each
    setup has subjects of its own, so the dead rows that one setup's rolled-back writes leave are
    never in another's way; `verify_agreement` compares the setups on shared subjects beforehand.
    """
    cells = {(request.name, setup.name): Cell() for request in REQUESTS for setup in setups}
    verification, pool = subjects[:VERIFICATION_SUBJECTS], subjects[VERIFICATION_SUBJECTS:]
    # One warm-up subject, then `repeat` timed subjects, per setup.
    own = {setup.name: pool[index :: len(setups)] for index, setup in enumerate(setups)}
    groups = block_groups(setups)
    per_block = -(-repeat // blocks)
    switcher = PolicySwitcher(dbname, schema)
    progress = ProgressBar(blocks * len(groups), "requests")

    def wants_more(cell: Cell, block: int) -> bool:
        if len(cell.seconds) >= MIN_RUNS_PER_CELL and cell.spent > max_seconds:
            return False
        return len(cell.seconds) < min(repeat, (block + 1) * per_block)

    try:
        with (
            connect_as_authenticator(app_conninfo(dbname)) as conn,
            psycopg.connect(admin_conninfo(dbname), autocommit=True) as admin,
        ):
            runner = StatementRunner(conn, prepared=prepared)
            verify_agreement(runner, switcher, setups, verification)
            for block in range(blocks):
                # Rotate the order so that no group always runs first (or last).
                for group in [groups[(block + k) % len(groups)] for k in range(len(groups))]:
                    switcher.install(group[0])
                    for request in REQUESTS:
                        for setup in group:
                            cell = cells[(request.name, setup.name)]
                            warm_up(runner, setup, request, own[setup.name][0], cell, first=block == 0)
                        turn = [s for s in group if wants_more(cells[(request.name, s.name)], block)]
                        rounds = 0
                        while turn:
                            # Who goes first alternates, so that neither side always follows the other.
                            for setup in turn if rounds % 2 == 0 else turn[::-1]:
                                cell = cells[(request.name, setup.name)]
                                timed_subjects = own[setup.name][1:]
                                subject = timed_subjects[len(cell.seconds) % len(timed_subjects)]
                                elapsed, _ = runner.run(setup, request, subject)
                                cell.seconds.append(elapsed)
                            turn = [s for s in turn if wants_more(cells[(request.name, s.name)], block)]
                            rounds += 1
                    # The block's rolled-back writes left dead rows under its subjects; without this
                    # they slow that group's later reads until autovacuum happens to come by.
                    admin.execute(VACUUM_WRITTEN)
                    names = "+".join(s.name for s in group)
                    progress.advance(1, f"block {block + 1}/{blocks}: {names}")
            if prepared:
                report_plan_counts(runner.plan_counts())
    finally:
        switcher.close()
    progress.finish()
    return cells


def report_plan_counts(counts: Mapping[tuple[str, str], tuple[int, int]]) -> None:
    """Whether PostgreSQL re-planned every execution (custom plans) or reused one (generic): a setup
    whose statements are planned each time pays the planning inside every request."""
    statements = {text: request.name for request in REQUESTS for text in (request.app_sql, request.explicit_sql)}
    for (setup, statement), (generic, custom) in sorted(counts.items()):
        label = statements.get(statement, statement[:40])
        print(f"bench.rls: plans: {setup} / {label}: {generic} generic, {custom} custom", file=sys.stderr)


def warm_up(
    runner: StatementRunner, setup: Setup, request: Request, subject: Subject, cell: Cell, *, first: bool
) -> None:
    """Untimed runs after a policy swap, which invalidated the relcache and every cached plan.

    A long-running PostgREST meets neither on an ordinary request. PostgreSQL plans the first
    five executions of a prepared statement for their values before it weighs a generic plan,
    hence more runs the first time.
    """
    runs = (CUSTOM_PLAN_RUNS + 1 if first else 2) if runner.prepared else 1
    for _ in range(runs):
        elapsed, _ = runner.run(setup, request, subject)
        cell.overhead += elapsed
        if elapsed > SLOW_REQUEST_SECONDS:
            break  # planning is noise next to a request this slow


def verify_agreement(
    runner: StatementRunner, switcher: PolicySwitcher, setups: Sequence[Setup], subjects: Sequence[Subject]
) -> None:
    """Every setup must answer every request alike (rows read, rows written), or the comparison is void."""
    for subject in subjects:
        outcomes: dict[str, dict[str, object]] = {}
        for setup in setups:
            switcher.install(setup)
            if setup.policies is not None:
                check_rls_applies(runner.conn, setup, subject)
            for request in REQUESTS:
                outcomes.setdefault(request.name, {})[setup.name] = runner.run(setup, request, subject)[1]
        check_agreement(outcomes)


def check_agreement(outcomes: Mapping[str, Mapping[str, object]]) -> None:
    """Every setup must answer a request alike, or the comparison is meaningless."""
    for request, by_setup in outcomes.items():
        if len({repr(v) for v in by_setup.values()}) > 1:
            details = "; ".join(f"{setup}: {str(outcome)[:200]}" for setup, outcome in by_setup.items())
            raise SystemExit(f"bench.rls: setups disagree on {request!r}: {details}")


# --- report ----------------------------------------------------------------------------------


def report(
    cells: Mapping[tuple[str, str], Cell], setups: Sequence[Setup], *, repeat: int, max_seconds: float
) -> tuple[str, bool, dict[str, dict[str, str]]]:
    """The figures table, whether the targets are met, and the table's cells by request and column."""
    names = [s.name for s in setups]
    headers = ["request", *(f"{n} {stat}" for n in names for stat in ("median", "p95"))]
    headers += ["owner/explicit", "naive/owner"]
    if "variant" in names:
        headers += ["variant/explicit"]
    rows, met, notes = [], True, []
    for request in REQUESTS:
        medians = {n: median(cells[(request.name, n)].seconds) * 1000 for n in names}
        row = [request.name]
        for n in names:
            timings = [s * 1000 for s in cells[(request.name, n)].seconds]
            row += [f"{median(timings):.3f}", f"{p95(timings):.3f}"]
            if len(timings) < repeat:
                notes.append(f"{n} / {request.name}: {len(timings)} runs (time budget {max_seconds:g}s)")
        owner_ratio = medians["owner"] / medians["explicit"]
        naive_ratio = medians["naive"] / medians["owner"]
        owner_ok = owner_ratio <= OWNER_OVER_EXPLICIT_MAX
        naive_ok = request.session_filter or naive_ratio >= NAIVE_OVER_OWNER_MIN
        met = met and owner_ok and naive_ok
        row += [
            f"{owner_ratio:.2f}{'' if owner_ok else ' MISS'}",
            f"{naive_ratio:.1f}{'' if naive_ok else ' MISS'}" + ("" if not request.session_filter else " (n/t)"),
        ]
        if "variant" in names:
            row += [ratio(medians["variant"], medians["explicit"])]
        rows.append(row)
    figures = {label: dict(zip(headers[1:], values, strict=True)) for label, *values in rows}
    text = format_table(headers, rows)
    text += (
        f"\n\nms per request (client-side, statement + fetch). Targets: owner/explicit <= {OWNER_OVER_EXPLICIT_MAX}"
        f" for every request; naive/owner >= {NAIVE_OVER_OWNER_MIN:g} for requests without a session filter"
        " ((n/t): no target)."
    )
    if notes:
        text += "\n" + "\n".join(f"note: {n}" for n in notes)
    return text, met, figures


# --- command line ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.rls", description=__doc__.split("\n\n")[0])
    sizes = parser.add_argument_group("data sizes")
    sizes.add_argument("--users", type=int, default=10_000)
    sizes.add_argument("--sessions", type=int, default=100_000)
    sizes.add_argument("--segments", type=int, default=200_000)
    sizes.add_argument("--turns", type=int, default=1_000_000)
    sizes.add_argument("--actions", type=int, default=2_000_000)
    sizes.add_argument("--generated-content", dest="contents", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=30, help="timed runs per request and setup")
    parser.add_argument("--blocks", type=int, default=3, help="rotations of the setups the runs are spread over")
    parser.add_argument(
        "--max-seconds", type=float, default=8.0,
        help=f"time budget per request and setup; a slower cell stops after {MIN_RUNS_PER_CELL} runs",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument(
        "--explain", nargs="*", metavar="SETUP",
        help="print EXPLAIN (ANALYZE, BUFFERS) of every request, for these setups (default: all)",
    )  # fmt: skip
    parser.add_argument(
        "--no-prepare", dest="prepared", action="store_false",
        help="parse and plan every request (PostgREST with db-prepared-statements off); default: prepared",
    )  # fmt: skip
    parser.add_argument(
        "--owner-variant", choices=sorted(OWNER_VARIANTS),
        help="also time an alternative rendering of the owner policies (setup 'variant')",
    )  # fmt: skip
    parser.add_argument(
        "--owner-copy", choices=("deep", "all", "none"), default="deep",
        help="copyOwner for the owner setup on the tables two or more hops down (deep, the default), on every table "
        "below the owner (all), or on none",
    )  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the generated database (its name is printed)")
    parser.add_argument("--reuse", metavar="DATABASE", help="time against a database kept by an earlier --keep run")
    args = parser.parse_args(argv)
    for name in ("users", "sessions", "segments", "turns", "actions", "contents", "repeat", "blocks"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = Sizes(args.users, args.sessions, args.segments, args.turns, args.actions, args.contents)
    model = load_model_file(REPO / "access-model.yaml", setting="supabase-access:modelFile")
    # The owner setup's model: the reference app's, with copyOwner on the deep tables unless told not to.
    owner_model = {"deep": with_owner_copies(model), "all": with_owner_copies(model, min_hops=1), "none": model}[
        args.owner_copy
    ]
    copied = [t.name for t in owner_model.tables if t.owner_copy]
    described = "owner profile, as supabase_access renders it"
    if copied:
        described += f", copyOwner on {', '.join(copied)}"
    setups = [
        Setup("owner", owner_policies(owner_model), described),
        Setup("explicit", None, "service_role (no RLS), ownership filter written by hand"),
        Setup("naive", naive_policies(model), "guide-style: auth.uid() unwrapped, per-row EXISTS joins"),
    ]
    if args.owner_variant:
        variant = OWNER_VARIANTS[args.owner_variant]
        setups.append(Setup("variant", variant(model), f"owner policies, variant {args.owner_variant}"))

    if args.reuse:
        return run(args.reuse, args, sizes, owner_model, setups, generated=False)
    with scratch_database("bench_rls", keep=args.keep) as dbname:
        return run(dbname, args, sizes, owner_model, setups, generated=True)


def run(
    dbname: str, args: argparse.Namespace, sizes: Sizes, model: AccessModel, setups: list[Setup], *, generated: bool
) -> int:
    if generated:
        print(f"bench.rls: database {dbname}: generating {sizes}", file=sys.stderr)
        generate_data(dbname, sizes)
    apply_owner_grants(dbname, model)
    # Before the variant's schema: the owner-column variant's hand-made column is the copy's name.
    copy_report = build_owner_copies(dbname, model)
    if args.owner_variant:
        prepare_variant_schema(dbname, args.owner_variant)
    variant_models = [with_owner_column_on_deep_tables(model)] if args.owner_variant == "owner-column" else []
    build_policy_indexes(dbname, [model, *variant_models])
    if copy_report or not generated:
        # Dead rows left by earlier runs' rolled-back writes (or by the fill) would slow down this one.
        vacuum(dbname)
    load_before = os.getloadavg()
    # A warm-up subject and `repeat` timed subjects per setup, and the shared verification ones.
    subjects = pick_subjects(dbname, VERIFICATION_SUBJECTS + len(setups) * (args.repeat + 1), args.seed)
    cells = measure(
        dbname,
        setups,
        subjects,
        repeat=args.repeat,
        blocks=args.blocks,
        max_seconds=args.max_seconds,
        schema=model.schema,
        prepared=args.prepared,
    )
    if args.explain is not None:
        chosen = [s for s in setups if not args.explain or s.name in args.explain]
        print_explain(dbname, chosen, subjects[0], model.schema, prepared=args.prepared)
    load_after = os.getloadavg()
    table, met, figures = report(cells, setups, repeat=args.repeat, max_seconds=args.max_seconds)
    write_figures(figures, ["owner/explicit", "naive/owner"], conninfo=app_conninfo(dbname), load_before=load_before)
    print(
        f"\n## bench.rls: {sizes.users:,} users, {sizes.sessions:,} sessions, {sizes.segments:,} segments, "
        f"{sizes.turns:,} turns, {sizes.actions:,} actions, {sizes.contents:,} generated_content; "
        f"{args.repeat} runs per request and setup in {args.blocks} blocks; "
        f"statements {'prepared' if args.prepared else 'not prepared'}"
    )
    print(f"machine: {machine_summary(app_conninfo(dbname))}")
    print(
        "load average (1, 5, 15 min) before timing: {:.1f} {:.1f} {:.1f}; after: {:.1f} {:.1f} {:.1f}".format(
            *load_before, *load_after
        )
    )
    for line in copy_report:
        print(f"owner copy: {line}")
    for setup in setups:
        print(f"- {setup.name}: {setup.description}")
    print()
    print(table)
    print(f"\ntargets {'met' if met else 'NOT met'}")
    return 0


def print_explain(dbname: str, setups: Sequence[Setup], subject: Subject, schema: str, *, prepared: bool) -> None:
    """The plans PostgreSQL runs; prepared statements first run often enough to settle on their cached plan."""
    switcher = PolicySwitcher(dbname, schema)
    try:
        with connect_as_authenticator(app_conninfo(dbname)) as conn:
            runner = StatementRunner(conn, prepared=prepared)
            for setup in setups:
                switcher.install(setup)
                for request in REQUESTS:
                    # PostgreSQL plans the first five executions for their values, then may switch to a generic plan.
                    for _ in range(CUSTOM_PLAN_RUNS if prepared else 0):
                        runner.run(setup, request, subject)
                    print(f"\n### EXPLAIN {setup.name}: {request.name}")
                    print(runner.explain(setup, request, subject))
    finally:
        switcher.close()


if __name__ == "__main__":
    sys.exit(main())
