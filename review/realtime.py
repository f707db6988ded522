"""Ask the database what Realtime asks it, to test channel and Postgres Changes access as clients meet it.

Realtime Authorization (private Broadcast and Presence channels): when a client joins a topic,
Realtime opens a transaction on its own connection, inserts one message per extension for the topic,
switches to the client's role with its JWT claims and `realtime.topic` set, and reads those messages
back: a message the role sees means it may receive that extension. It then inserts a message as the
role: an insert the policies admit means it may send. Everything is rolled back.

Postgres Changes: a change of a row is delivered to a subscriber when the table is in the
`supabase_realtime` publication and the subscriber's role, with its claims, may select the row.

The connection is the database owner's (`postgres`, as Realtime's is an admin's): it writes the
probe messages, then acts as the client's role through SET LOCAL ROLE, never as itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from review.postgrest import Persona

EXTENSIONS = ("broadcast", "presence")
PUBLICATION = "supabase_realtime"


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
        ids = [
            row[0]
            for extension in EXTENSIONS
            for row in conn.execute(
                "insert into realtime.messages (topic, extension, private) values (%s, %s, true) returning id",
                (topic, extension),
            ).fetchall()
        ]
        _act_as(conn, persona, topic)
        received = conn.execute(
            "select extension from realtime.messages where topic = %s and id = any(%s)", (topic, ids)
        ).fetchall()
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
    return ChannelAccess(receive=frozenset(r[0] for r in received), send=frozenset(sent))


def published_tables(conn: psycopg.Connection, publication: str = PUBLICATION) -> set[tuple[str, str]]:
    rows = conn.execute(
        "select schemaname, tablename from pg_publication_tables where pubname = %s", (publication,)
    ).fetchall()
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
