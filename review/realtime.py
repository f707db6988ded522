"""Ask the database what Realtime asks it, to test channel and Postgres Changes access as clients meet it.

Realtime Authorization (private Broadcast and Presence channels): when a client joins a topic,
Realtime opens a transaction on its own connection, inserts one message per extension for the topic,
switches to the client's role with its JWT claims and `realtime.topic` set, and reads those messages
back: a message the role sees means it may receive that extension. It then inserts a message as the
role: an insert the policies admit means it may send. Everything is rolled back.

Postgres Changes: a change of a row is delivered to a subscriber when the table is in the
`supabase_realtime` publication and the subscriber's role, with its claims, may select the row.

Realtime writes the read check's probe messages as its own admin login. Here the connection is
`authenticator`'s (as PostgREST's; `postgres` works too): it writes them as `service_role` (BYPASSRLS,
the role Realtime's server-side broadcasts act as) through SET LOCAL ROLE, then acts as the client's
role with its claims, and the send check's message is inserted as that role. Nothing is written as the
login itself, and no superuser is needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from review.postgrest import Persona
from supabase_access.sql import statements as render
from supabase_access.sql.rows import fetch_values

EXTENSIONS = ("broadcast", "presence")
PUBLICATION = "supabase_realtime"
# Writes the read check's probe messages (Realtime's admin login does): bypasses RLS, may insert them.
MESSAGE_WRITER = "service_role"


@dataclass(frozen=True)
class ChannelAccess:
    """What a join of one topic gives: the extensions received and sent."""

    receive: frozenset[str]
    send: frozenset[str]

    @property
    def joins(self) -> bool:
        """Realtime refuses the join of a private channel when the client may not receive anything."""
        return bool(self.receive)


def _act_as(conn: psycopg.Connection, persona: Persona, topic: str) -> None:
    sub = "" if persona.claims is None else str(persona.claims.get("sub", ""))
    conn.execute(sql.SQL("set local role {}").format(sql.Identifier(persona.role)))
    conn.execute(
        "select set_config('request.jwt.claims', %(claims)s, true),"
        " set_config('request.jwt.claim.sub', %(sub)s, true),"
        " set_config('request.jwt.claim.role', %(role)s, true),"
        " set_config('realtime.topic', %(topic)s, true)",
        {"claims": persona.claims_setting(), "sub": sub, "role": persona.role, "topic": topic},
    )


def join_channel(conn: psycopg.Connection, persona: Persona, topic: str) -> ChannelAccess:
    """Authorize a join of `topic` by `persona` as Realtime does; leaves nothing behind."""
    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise ValueError("the connection must be idle, not inside a transaction")
    with conn.transaction(force_rollback=True):
        conn.execute(sql.SQL("set local role {}").format(sql.Identifier(MESSAGE_WRITER)))
        ids = [
            message_id
            for extension in EXTENSIONS
            for message_id in fetch_values(
                conn,
                "insert into realtime.messages (topic, extension, private) values (%s, %s, true) returning id",
                (topic, extension),
            )
        ]
        _act_as(conn, persona, topic)
        received = fetch_values(
            conn, "select extension from realtime.messages where topic = %s and id = any(%s)", (topic, ids)
        )
        sent = set()
        for extension in EXTENSIONS:
            try:
                with conn.transaction():
                    conn.execute(
                        "insert into realtime.messages (topic, extension, private) values (%s, %s, true)",
                        (topic, extension),
                    )
                sent.add(extension)
            except psycopg.errors.InsufficientPrivilege:
                pass
    return ChannelAccess(receive=frozenset(received), send=frozenset(sent))


def published_tables(conn: psycopg.Connection, publication: str = PUBLICATION) -> set[tuple[str, str]]:
    """(schema, table) of each published table, a partitioned one as itself (not its partitions)."""
    rows = conn.execute(render.publication_tables(publication)).fetchall()
    return {(str(s), str(t)) for s, t in rows}


def delivers_change(
    conn: psycopg.Connection, persona: Persona, schema: str, table: str, key: Sequence[tuple[str, object]]
) -> bool:
    """Whether a change of the row whose columns equal `key` reaches `persona`'s subscription."""
    if (schema, table) not in published_tables(conn):
        return False
    condition = sql.SQL(" and ").join(sql.SQL("{} = %s").format(sql.Identifier(column)) for column, _ in key)
    with conn.transaction(force_rollback=True):
        _act_as(conn, persona, f"realtime:{schema}:{table}")
        try:
            with conn.transaction():
                row = conn.execute(
                    sql.SQL("select 1 from {} where {}").format(sql.Identifier(schema, table), condition),
                    [value for _, value in key],
                ).fetchone()
        except psycopg.errors.InsufficientPrivilege:
            return False
    return row is not None


# --- The access matrix's Realtime section -----------------------------------------------------------

WHOSE = ("own", "other")
YES, NO = "✓", "✗"
LEGEND = (
    "channels: join, receive, send (broadcast and presence), on the persona's own topic then another's; "
    "changes: a row change of the published table reaches the persona's subscription, own row then another's"
)


@dataclass(frozen=True)
class RealtimeSection:
    """Per persona and channel pattern, joining the persona's own topic and another's (for `{id}`
    patterns: the persona's group or user id, then another's): join, receive, send; and per published
    table, whose row changes reach the persona (own rows, others')."""

    personas: tuple[str, ...]
    channels: tuple[str, ...]
    # (persona, pattern, whose) -> what the join gives.
    joins: Mapping[tuple[str, str, str], ChannelAccess]
    published: tuple[str, ...]
    # (persona, table, whose) -> whether a change of that row reaches the persona's subscription.
    changes: Mapping[tuple[str, str, str], bool]

    def _channel_cell(self, persona: str, pattern: str, whose: str) -> str:
        access = self.joins.get((persona, pattern, whose))
        if access is None:
            return "?"
        return "".join(YES if ok else NO for ok in (access.joins, bool(access.receive), bool(access.send)))

    def _change_cell(self, persona: str, table: str) -> str:
        return "".join(YES if self.changes.get((persona, table, w)) else NO for w in WHOSE)

    def rows(self) -> list[list[str]]:
        header = ["persona", *(f"{p} own/other" for p in self.channels), *(f"{t} changes" for t in self.published)]
        body = [
            [
                persona,
                *(" ".join(self._channel_cell(persona, p, w) for w in WHOSE) for p in self.channels),
                *(self._change_cell(persona, t) for t in self.published),
            ]
            for persona in self.personas
        ]
        return [header, *body]

    def render_text(self) -> str:
        rows = self.rows()
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows]
        return "\n".join(["Realtime:", *lines, LEGEND])

    def render_markdown(self) -> str:
        rows = self.rows()
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
        return "\n".join(["**Realtime**", "", *lines, "", LEGEND + "."])

    def states(self) -> dict[str, str]:
        """Every cell as `persona · what · whose` -> its symbols, for diffs and JSON."""
        found = {
            f"{persona} · channel {pattern} · {whose}": self._channel_cell(persona, pattern, whose)
            for persona in self.personas
            for pattern in self.channels
            for whose in WHOSE
        }
        found |= {
            f"{persona} · changes of {table} · {whose}": YES if self.changes.get((persona, table, whose)) else NO
            for persona in self.personas
            for table in self.published
            for whose in WHOSE
        }
        return found


def realtime_changes(before: RealtimeSection | None, after: RealtimeSection | None) -> list[str]:
    """One line per Realtime cell that differs: `<persona · what · whose>: <before> → <after>`."""
    old, new = (before.states() if before else {}), (after.states() if after else {})
    return [
        f"{key}: {old.get(key, 'absent')} → {new.get(key, 'absent')}"
        for key in new | old
        if old.get(key) != new.get(key)
    ]
