"""ChannelPolicies: the stack's policies on `realtime.messages` (Realtime Authorization).

Realtime asks them when a client joins a private channel: a SELECT the policies admit lets the
client receive that extension (broadcast, presence) on the topic, an INSERT lets it send. The
table is Supabase's and shared: policies made by hand in the dashboard or by another stack live
beside the stack's. Each of the stack's policies carries its mark (the policy's comment); create,
update and delete touch marked ones only, and a policy of someone else's under a name the stack
declares stops the apply, naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg

from supabase_access.model.policy import PolicySpec
from supabase_access.provider import specs
from supabase_access.provider.base import CURRENT_STACK, InputError, Log, PlainDatabaseResource
from supabase_access.provider.resources.table_policies import declared_policies, plain_policies
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from supabase_access.sql.errors import CatalogError
from supabase_access.sql.transaction import lock_tables, write_transaction

SCHEMA, TABLE = render.REALTIME_SCHEMA, render.REALTIME_MESSAGES


def _ours(conn: psycopg.Connection) -> dict[str, PolicySpec]:
    """The stack's policies on realtime.messages as PostgreSQL stores them."""
    marker = render.stack_marker(CURRENT_STACK.get())
    comments = catalog.policy_comments(conn, SCHEMA, TABLE)
    return {n: p for n, p in catalog.read_policies(conn, SCHEMA, TABLE).items() if comments.get(n) == marker}


class ChannelPolicies(PlainDatabaseResource):
    spec = specs.CHANNEL_POLICIES

    def normalize(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {"policies": plain_policies(declared_policies(inputs))}

    def validate(self, db: Database, olds: dict[str, Any], checked: dict[str, Any]) -> None:
        with db.connection() as conn:
            if catalog.missing_tables(conn, SCHEMA, [TABLE]):
                raise InputError(
                    "policies", f"policies: {SCHEMA}.{TABLE} does not exist (Supabase's Realtime makes it)"
                )
            taken = self._taken(conn, checked["policies"])
        if taken:
            raise InputError("policies", taken)

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

    def diff_live(self, db: Database, state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, str]:
        with db.connection() as conn:
            live = plain_policies(_ours(conn))
        changes = {}
        if live != (state.get("applied") or {}):
            changes["policies"] = "update"
        if state.get("policies") != inputs["policies"]:
            changes["policies"] = "update"
        return changes

    def _apply(self, db: Database, inputs: dict[str, Any]) -> dict[str, Any]:
        declared = declared_policies(inputs)
        marker = render.stack_marker(CURRENT_STACK.get())
        with write_transaction(db) as conn:
            lock_tables(conn, SCHEMA, [TABLE])
            taken = self._taken(conn, inputs["policies"])
            if taken:
                raise CatalogError(taken)
            for name in _ours(conn):
                conn.execute(render.drop_policy(SCHEMA, TABLE, name))
            for name, policy in declared.items():
                conn.execute(render.create_policy(SCHEMA, TABLE, policy))
                conn.execute(render.mark_policy(SCHEMA, TABLE, name, marker))
            applied = plain_policies(_ours(conn))
        return {**inputs, "applied": applied}

    def create(self, db: Database, inputs: dict[str, Any], log: Log) -> tuple[str, dict[str, Any]]:
        return f"{SCHEMA}.{TABLE}:{CURRENT_STACK.get()}", self._apply(db, inputs)

    def update(self, db: Database, state: dict[str, Any], inputs: dict[str, Any], log: Log) -> dict[str, Any]:
        return self._apply(db, inputs)

    def delete(self, db: Database, state: dict[str, Any], log: Log) -> None:
        with write_transaction(db) as conn:
            if catalog.missing_tables(conn, SCHEMA, [TABLE]):
                return
            lock_tables(conn, SCHEMA, [TABLE])
            for name in _ours(conn):
                conn.execute(render.drop_policy(SCHEMA, TABLE, name))

    def read(
        self, db: Database, resource_id: str, state: dict[str, Any], inputs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        with db.connection() as conn:
            if catalog.missing_tables(conn, SCHEMA, [TABLE]):
                return None
            live = plain_policies(_ours(conn))
        known = dict(state or inputs or {})
        # A policy of the stack's changed or dropped by hand: the inputs read back empty, so the next
        # diff shows the change and `up` puts the declared ones back.
        read_inputs = {"policies": known.get("policies") or {} if live == known.get("applied") else {}}
        return {**known, "applied": live, **read_inputs}, read_inputs
