"""ChannelPolicies: the stack's policies on `realtime.messages` (Realtime Authorization).

Realtime asks them when a client joins a private channel: a SELECT the policies admit lets the
client receive that extension (broadcast, presence) on the topic, an INSERT lets it send. The
table is Supabase's and shared: policies made by hand in the dashboard or by another stack live
beside the stack's. Each of the stack's policies carries its mark (the policy's comment); create,
update and delete touch marked ones only, and a policy of someone else's under a name the stack
declares stops the apply, naming it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from supabase_access.model.access_model import ModelError
from supabase_access.model.policy import PolicySpec
from supabase_access.model.realtime import parse_pattern
from supabase_access.provider import claims, ledger, specs
from supabase_access.provider.base import CURRENT_STACK, DatabaseResource, InputError, Log, Notice
from supabase_access.provider.resources.table_policies import declared_policies, plain_policies, stored_policies
from supabase_access.provider.specs import ChannelPoliciesInputs as Inputs
from supabase_access.provider.specs import ChannelPoliciesState as State
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from supabase_access.sql.errors import CatalogError
from supabase_access.sql.foreign_policies import (
    ForeignPolicies,
    ProbeRow,
    dropped_lines,
    foreign_widenings,
    probe_personas,
    user_id,
)
from supabase_access.sql.transaction import lock_tables, write_transaction

SCHEMA, TABLE = render.REALTIME_SCHEMA, render.REALTIME_MESSAGES
# What a client joins a private channel for: one message per extension (review/realtime.py asks the same).
EXTENSIONS = ("broadcast", "presence")
# Channel claims live beside table claims in the ledger, as `realtime.messages.<pattern>`.
CLAIM_SCHEMA = f"{SCHEMA}.{TABLE}"


def _claimed_elsewhere(conn: psycopg.Connection, patterns: list[str]) -> str | None:
    """The patterns another stack on this database claims, as one refusal line; None when none."""
    taken = claims.others(conn, CLAIM_SCHEMA, patterns)
    if not taken:
        return None
    described = ", ".join(f"{pattern} (stack {stack!r})" for pattern, stack in sorted(taken.items()))
    return (
        f"channels: another stack declares {described} on this database: a topic is one channel whoever declares it, "
        "so one stack says who may join it. Take the pattern out of one stack's realtime.channels"
    )


def _foreign_widenings(conn: psycopg.Connection, patterns: Sequence[str]) -> ForeignPolicies:
    """Policies on realtime.messages no stack marks that let a persona receive or send on one of the stack's
    channels what its kind does not: probed on each pattern's topic for user A's id and for a group's."""
    personas = probe_personas()
    a = user_id(personas, "user A")
    rows = []
    for pattern in patterns:
        prefix, has_id = parse_pattern(pattern, "channels")
        topics = (
            [(f"{prefix}{a}", "user A's id"), (f"{prefix}{uuid.uuid4()}", "a group's id")] if has_id else [(prefix, "")]
        )
        rows += [
            ProbeRow(
                f"{extension} on {pattern}{f' ({why})' if why else ''}",
                {"topic": topic, "extension": extension, "private": True},
                {"realtime.topic": topic},
            )
            for topic, why in topics
            for extension in EXTENSIONS
        ]
    return foreign_widenings(conn, SCHEMA, TABLE, personas, rows, {"select": "receive", "insert": "send"})


def _log_foreign(log: Log, foreign: ForeignPolicies, *, taken_over: bool) -> None:
    for line in dropped_lines(f"{SCHEMA}.{TABLE}", "the stack's channels", foreign, taken_over=taken_over):
        log(Notice(line))
    if foreign.unprobed:
        log(foreign.unprobed)


def _ours(conn: psycopg.Connection) -> dict[str, PolicySpec]:
    """The stack's policies on realtime.messages as PostgreSQL stores them."""
    marker = render.stack_marker(CURRENT_STACK.get())
    comments = catalog.policy_comments(conn, SCHEMA, TABLE)
    return {n: p for n, p in catalog.read_policies(conn, SCHEMA, TABLE).items() if comments.get(n) == marker}


class ChannelPolicies(DatabaseResource[Inputs, State]):
    spec = specs.CHANNEL_POLICIES

    def normalize(self, inputs: Inputs) -> Inputs:
        for pattern in inputs.channels:
            try:
                parse_pattern(pattern, "channels")
            except ModelError as exc:
                raise InputError("channels", str(exc)) from exc
        return Inputs(
            policies=plain_policies(declared_policies(inputs.policies)), channels=tuple(sorted(set(inputs.channels)))
        )

    def validate(self, db: Database, olds: Inputs | None, checked: Inputs) -> None:
        with db.connection() as conn:
            if catalog.missing_tables(conn, SCHEMA, [TABLE]):
                raise InputError(
                    "policies", f"policies: {SCHEMA}.{TABLE} does not exist (Supabase's Realtime makes it)"
                )
            taken = self._taken(conn, checked.policies)
            claimed = _claimed_elsewhere(conn, list(checked.channels))
        if taken:
            raise InputError("policies", taken)
        if claimed:
            raise InputError("channels", claimed)

    @staticmethod
    def _taken(conn: psycopg.Connection, declared: Mapping[str, Any]) -> str | None:
        """Names the stack declares that a policy of someone else's already holds."""
        marker = render.stack_marker(CURRENT_STACK.get())
        comments = catalog.policy_comments(conn, SCHEMA, TABLE)
        others = sorted(n for n in declared if n in comments and comments[n] != marker)
        if not others:
            return None
        return (
            f"policies: {', '.join(others)} on {SCHEMA}.{TABLE} already exist, made by hand or by another stack "
            f"({'; '.join(str(comments[n] or 'no mark') for n in others)}); the stack leaves them as they are: "
            "drop or rename them, or rename the channel"
        )

    def diff_live(self, db: Database, state: State, inputs: Inputs) -> dict[str, str]:
        with db.connection() as conn:
            live = plain_policies(_ours(conn))
            foreign = _foreign_widenings(conn, inputs.channels)
        if live != (state.applied or {}) or state.policies != inputs.policies or foreign.widening:
            return {"policies": "update"}
        return {}

    def _apply(self, db: Database, inputs: Inputs, dropped: tuple[str, ...], log: Log, state: State | None) -> State:
        """`state`: the last apply's (None: the first, which takes over the policies made by hand it drops)."""
        declared = declared_policies(inputs.policies)
        marker = render.stack_marker(CURRENT_STACK.get())
        channels = list(inputs.channels)
        with write_transaction(db) as conn:
            lock_tables(conn, SCHEMA, [TABLE])
            taken = self._taken(conn, inputs.policies) or _claimed_elsewhere(conn, channels)
            if taken:
                raise CatalogError(taken)
            # The stack's patterns, under the table's lock (the ledger's comes after): of two stacks racing
            # for one pattern, the second sees the first's claim. Patterns it no longer declares are freed.
            claims.release(conn, CLAIM_SCHEMA, sorted(set(dropped) - set(channels)))
            claims.claim(conn, CLAIM_SCHEMA, {pattern: {} for pattern in channels})
            for name in _ours(conn):
                conn.execute(render.drop_policy(SCHEMA, TABLE, name))
            for name, policy in declared.items():
                conn.execute(render.create_policy(SCHEMA, TABLE, policy))
                conn.execute(render.mark_policy(SCHEMA, TABLE, name, marker))
            # Policies made by hand that open the stack's channels wider than their kinds: taken back here (as
            # TablePolicies drops an undeclared policy); found at the first `up`, put back by destroy.
            foreign = _foreign_widenings(conn, channels)
            for name in foreign.widening:
                conn.execute(render.drop_policy(SCHEMA, TABLE, name))
            applied = plain_policies(_ours(conn))
        _log_foreign(log, foreign, taken_over=state is None)
        adopted = plain_policies(foreign.policies) if state is None else state.adopted
        return State.taking(inputs, applied=applied, adopted=adopted or None)

    def on_create(self, db: Database, inputs: Inputs, log: Log) -> tuple[str, State]:
        return f"{SCHEMA}.{TABLE}:{CURRENT_STACK.get()}", self._apply(db, inputs, (), log, None)

    def on_update(self, db: Database, state: State, inputs: Inputs, log: Log) -> State:
        return self._apply(db, inputs, state.channels, log, state)

    def on_delete(self, db: Database, state: State, log: Log) -> None:
        with write_transaction(db) as conn:
            if catalog.missing_tables(conn, SCHEMA, [TABLE]):
                return
            lock_tables(conn, SCHEMA, [TABLE])
            for name in _ours(conn):
                conn.execute(render.drop_policy(SCHEMA, TABLE, name))
            existing = catalog.read_policies(conn, SCHEMA, TABLE)
            for name, policy in stored_policies(state.adopted).items():
                if name not in existing:  # one made again by hand since is left as it is
                    conn.execute(render.create_policy(SCHEMA, TABLE, policy))
            claims.release(conn, CLAIM_SCHEMA, list(state.channels))
        ledger.tidy(db)

    def on_read(
        self, db: Database, resource_id: str, state: State | None, inputs: Inputs | None
    ) -> tuple[State, Inputs] | None:
        with db.connection() as conn:
            if catalog.missing_tables(conn, SCHEMA, [TABLE]):
                return None
            live = plain_policies(_ours(conn))
            known = state or inputs
            # A policy made by hand that widens the stack's channels reads back among its own: drift.
            live |= plain_policies(_foreign_widenings(conn, known.channels if known is not None else ()).policies)
        applied = state.applied if state is not None else None
        # A policy of the stack's changed or dropped by hand: the inputs read back empty, so the next
        # diff shows the change and `up` puts the declared ones back.
        current = Inputs(
            policies=(known.policies if known is not None and live == applied else {}),
            channels=known.channels if known is not None else (),
        )
        return State.taking(state, current, applied=live), current
