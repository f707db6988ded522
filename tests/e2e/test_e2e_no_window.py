"""No moment of wider access: a prober acts as PostgREST beside every kind of change and never sees
more than the old or the new declaration allows (issue 13, "No window, ever").

Each probe is a number per (persona, table, command): rows a select sees, rows an update or
delete touches, 1 where an insert or a TRUNCATE goes through (always rolled back). A sample
taken during the change may not exceed, cell by cell, the larger of the stable states before
and after it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from pulumi import automation as auto

from review.postgrest import Persona, as_persona, connect_as_authenticator
from tests.support.engine import new_stack
from tests.support.fault import Prober, wider

pytestmark = pytest.mark.e2e

Probe = dict[str, int]
OPEN = {"supabase-access:environment": "dev", "supabase-access:profile": "open"}
OWNER = {"supabase-access:environment": "dev", "supabase-access:profile": "owner"}
FOUR_TABLE_MODEL: dict[str, object] = {
    "sessions": {"owner": "user_id", "userForeignKey": "sessions_user_id_fkey"},
    "segments": {"through": {"column": "session_id", "table": "sessions"}},
    "turns": {"through": {"column": "session_id", "table": "sessions"}},
    "actions": {"through": {"column": "turn_id", "table": "turns"}},
}
FOUR_TABLES = {"schema": "public", "tables": FOUR_TABLE_MODEL}
FIVE_TABLES = {
    "schema": "public",
    "tables": {**FOUR_TABLE_MODEL, "generated_content": {"through": {"column": "session_id", "table": "sessions"}}},
}
SHARED_READ = {"sessions": {"shared_read": {"command": "SELECT", "roles": ["authenticated"], "using": "title = 'a'"}}}
OTHER_READ = {"sessions": {"shared_read": {"command": "SELECT", "roles": ["authenticated"], "using": "title = 'b'"}}}
PROBED_TABLES = ("sessions", "turns", "generated_content")


def seed(dsn: str) -> uuid.UUID:
    """User A with a session titled 'a', a turn and generated content; returns A's id."""
    owner = uuid.uuid4()
    with psycopg.connect(dsn) as conn:
        conn.execute("insert into auth.users (id, is_anonymous) values (%s, true)", (owner,))
        (session,) = conn.execute(
            "insert into sessions (user_id, title) values (%s, 'a') returning id", (owner,)
        ).fetchone() or (None,)
        conn.execute("insert into turns (session_id, speaker) values (%s, 'a')", (session,))
        conn.execute("insert into generated_content (session_id, kind) values (%s, 'text')", (session,))
    return owner


def probe(dsn: str, owner: uuid.UUID) -> Probe:
    """What anon and another signed-in user can do to A's rows, right now."""
    statements = {
        "select": "select count(*) from {t}",
        "update": "update {t} set created_at = created_at",
        "delete": "delete from {t}",
        "truncate": "truncate {t} cascade",
    }
    found: Probe = {}
    personas = {"anon": Persona.anon(), "user B": Persona.signed_in(uuid.uuid4(), is_anonymous=True)}
    with connect_as_authenticator(dsn) as conn:
        for who, persona in personas.items():
            for table in PROBED_TABLES:
                for command, text in statements.items():
                    found[f"{who} {command} {table}"] = _run(conn, persona, text.format(t=table), command)
            found[f"{who} insert sessions"] = _run(
                conn, persona, f"insert into sessions (user_id, title) values ('{owner}', 'x')", "insert"
            )
    return found


def _run(conn: psycopg.Connection, persona: Persona, statement: str, command: str) -> int:
    try:
        with as_persona(conn, persona) as cur:
            cur.execute(statement)
            if command == "select":
                row = cur.fetchone()
                return int(row[0]) if row else 0
            return 1 if command == "truncate" else cur.rowcount
    except (psycopg.errors.InsufficientPrivilege, psycopg.errors.LockNotAvailable):
        return 0
    except psycopg.errors.QueryCanceled:
        return 0


Change = Callable[[auto.Stack], None]


def set_config(values: dict[str, str]) -> Change:
    def change(stack: auto.Stack) -> None:
        stack.set_all_config({k: auto.ConfigValue(v) for k, v in values.items()})
        stack.up()

    return change


def destroy(stack: auto.Stack) -> None:
    stack.destroy()


CASES: dict[str, tuple[dict[str, str], Change]] = {
    "open-to-owner": (OPEN, set_config(OWNER)),
    "owner-to-open": (OWNER, set_config(OPEN)),
    "table-added": (
        {**OWNER, "supabase-access:model": json.dumps(FOUR_TABLES)},
        set_config({"supabase-access:model": json.dumps(FIVE_TABLES)}),
    ),
    "table-removed": (
        {**OWNER, "supabase-access:model": json.dumps(FIVE_TABLES)},
        set_config({"supabase-access:model": json.dumps(FOUR_TABLES)}),
    ),
    "policy-edited": (
        {**OWNER, "supabase-access:extraPolicies": json.dumps(SHARED_READ)},
        set_config({"supabase-access:extraPolicies": json.dumps(OTHER_READ)}),
    ),
    "destroy": (OWNER, destroy),
}


@pytest.mark.parametrize("case", list(CASES))
def test_no_probe_sees_access_outside_old_or_new(tmp_path: Path, fresh_db: str, case: str) -> None:
    config, change = CASES[case]
    owner = seed(fresh_db)
    stack = new_stack(tmp_path / "stack", "dev", fresh_db, config)
    stack.up()
    old = probe(fresh_db, owner)
    with Prober(lambda: probe(fresh_db, owner)) as prober:
        change(stack)
    new = probe(fresh_db, owner)
    assert prober.samples, "the prober took no sample"
    violations = [w for sample in prober.samples if (w := wider(sample, old, new))]
    assert violations == [], f"{len(violations)} of {len(prober.samples)} samples saw wider access: {violations[:3]}"
    print(f"{case}: {len(prober.samples)} samples, none wider than old or new")
