"""End to end: a prod stack whose model gives `actions` a copy of its owner (copyOwner), through the
real engine: the rows already there are filled, requests made as PostgREST makes them cannot write
another user's id into it, and `destroy` gives back the catalog as it was."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest

from review.postgrest import Persona, as_persona, connect_as_authenticator
from tests.support.engine import changes, new_stack
from tests.support.fault import catalog_snapshot
from tests.support.owner_copy import COPY_OWNER, copy_model_data

pytestmark = pytest.mark.e2e

MODEL = copy_model_data()
INSERT = "insert into actions (turn_id, kind, user_id) values (%s, 'click', %s) returning user_id"


def add_user_with_a_turn(dsn: str) -> tuple[uuid.UUID, uuid.UUID]:
    """A user, a session, a turn and two actions, written before the stack (rows already there)."""
    user, session, turn = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("insert into auth.users (id) values (%s)", (user,))
        conn.execute("insert into sessions (id, user_id) values (%s, %s)", (session, user))
        conn.execute("insert into turns (id, session_id, speaker) values (%s, %s, 'user')", (turn, session))
        conn.execute("insert into actions (turn_id, kind) values (%s, 'a'), (%s, 'b')", (turn, turn))
    return user, turn


def test_a_prod_stack_keeps_the_copy_right_and_destroy_gives_back_the_catalog(tmp_path: Path, fresh_db: str) -> None:
    alice, alice_turn = add_user_with_a_turn(fresh_db)
    bob, bob_turn = add_user_with_a_turn(fresh_db)
    before = catalog_snapshot(fresh_db)
    stack = new_stack(tmp_path / "local-prod", "local-prod", fresh_db, COPY_OWNER)
    up = stack.up()
    assert up.outputs["tables"].value == list(MODEL["tables"])
    with psycopg.connect(fresh_db) as conn:
        filled = conn.execute("select user_id, count(*) from actions group by 1 order by 2, 1").fetchall()
    assert sorted(filled) == sorted([(alice, 2), (bob, 2)])
    assert changes(stack.preview().change_summary) == {}

    with connect_as_authenticator(fresh_db) as api:
        alice_persona = Persona.signed_in(alice, is_anonymous=True)
        # Alice writes Bob's id under her own turn: the copy is hers all the same.
        with as_persona(api, alice_persona) as cur:
            assert cur.execute(INSERT, (alice_turn, bob)).fetchone() == (alice,)
        # Under Bob's turn, whatever id she sends, the row is Bob's and her policy refuses it.
        for claimed in (alice, bob):
            with pytest.raises(psycopg.errors.InsufficientPrivilege), as_persona(api, alice_persona) as cur:
                cur.execute(INSERT, (bob_turn, claimed))
        # Rewriting the copy of her rows, or moving one under Bob's turn, does not give them to Bob.
        with as_persona(api, alice_persona) as cur:
            cur.execute("update actions set user_id = %s returning user_id", (bob,))
            assert {row[0] for row in cur.fetchall()} == {alice}
        with pytest.raises(psycopg.errors.InsufficientPrivilege), as_persona(api, alice_persona) as cur:
            cur.execute("update actions set turn_id = %s", (bob_turn,))
        # Reads are by the copy: each sees exactly their own.
        with as_persona(api, Persona.signed_in(bob, is_anonymous=False), method="GET") as cur:
            assert cur.execute("select count(*), min(user_id::text) from actions").fetchone() == (2, str(bob))

    stack.destroy()
    assert catalog_snapshot(fresh_db) == before
