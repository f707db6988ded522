"""End to end: column rules (readOnly, immutable, hidden) of the columns app (tests/fixtures/columns_app)
applied by the real engine on a prod stack, on both grant platforms, then probed as PostgREST runs a
request (`SET LOCAL ROLE`, `request.jwt.claims`): forged and rewritten columns refused (upserts
included), hidden columns unreadable, everything else the model gives still allowed; the upgrade of
a stack without column rules, an exact destroy, and Supabase's linter."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg.conninfo import make_conninfo
from pulumi import automation as auto

from review.matrix import OPERATIONS, WHOSE, Cell, compute_matrix
from review.postgrest import Persona, as_persona, assert_rls_applies, connect_as_authenticator
from supabase_access.model.profiles import plan_access
from tests.support.catalog_check import column_rule_breaches, undeclared_and_missing
from tests.support.columns_app import COLUMNS_APP, PROD, columns_model, load_columns_app
from tests.support.engine import changes, new_stack
from tests.support.fault import catalog_snapshot
from tests.support.localdb import PLATFORMS, create_database_from_template, drop_database
from tests.support.splinter import lint, must_fix

pytestmark = pytest.mark.e2e

REFUSED = pytest.raises(psycopg.errors.InsufficientPrivilege)


@dataclass
class App:
    dsn: str
    ids: dict[str, Any]

    def run(self, who: str, statement: str, params: dict[str, Any] | None = None) -> Any:
        """One request as `who` (a seeded user, `anon` or `service_role`): its first row, or its row count."""
        persona = (
            Persona.anon()
            if who == "anon"
            else Persona.service()
            if who == "service_role"
            else Persona.signed_in(self.ids[who], is_anonymous=False)
        )
        with connect_as_authenticator(self.dsn) as conn, as_persona(conn, persona, commit=True) as cur:
            if who != "service_role":
                assert_rls_applies(cur)
            cur.execute(statement, {**self.ids, **(params or {})})
            return cur.fetchone() if cur.description else cur.rowcount


def seed(dsn: str) -> App:
    """Organisation O of `owner` with `member`; a note of the member's in O; organisation P of `outsider`; profiles."""
    ids: dict[str, Any] = {}
    with psycopg.connect(dsn) as conn:
        for name in ("owner", "member", "outsider", "admin", "newcomer"):
            ids[name] = uuid.uuid4()
            conn.execute("insert into auth.users (id) values (%s)", (ids[name],))
    app = App(dsn, ids)
    (ids["o"],) = app.run("owner", "insert into orgs (name) values ('O') returning id")
    (ids["p"],) = app.run("outsider", "insert into orgs (name) values ('P') returning id")
    app.run("owner", "insert into org_members (org_id, user_id) values (%(o)s, %(member)s)")
    app.run("owner", "insert into org_members (org_id, user_id, role) values (%(o)s, %(admin)s, 'admin')")
    (ids["note"],) = app.run("member", "insert into notes (org_id, body) values (%(o)s, 'N') returning id")
    app.run("service_role", "update notes set internal_note = 'flagged' where id = %(note)s")
    for name in ("owner", "member"):
        app.run(name, "insert into profiles (display_name) values (%(name)s)", {"name": name})
    return app


@pytest.fixture(scope="module", params=PLATFORMS)
def prod(
    request: pytest.FixtureRequest,
    localdb_url: str,
    localdb_admin_conninfo: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[App, Any]]:
    name = create_database_from_template(localdb_admin_conninfo, str(request.param))
    dsn = make_conninfo(localdb_url, dbname=name)
    try:
        load_columns_app(dsn)
        stack = new_stack(tmp_path_factory.mktemp("prod"), "prod", dsn, PROD)
        stack.up()
        yield seed(dsn), stack
    finally:
        drop_database(localdb_admin_conninfo, name)


def test_forged_columns_on_insert_are_refused(prod: tuple[App, Any]) -> None:
    app, _ = prod
    for statement in (
        "insert into notes (org_id, body, created_by) values (%(o)s, 'forged', %(owner)s)",
        "insert into notes (org_id, body, created_by) values (%(o)s, 'own uid, still not the client''s', %(member)s)",
        "insert into profiles (user_id, plan) values (%(outsider)s, 'enterprise')",
        "insert into profiles (user_id, is_verified) values (%(outsider)s, true)",
    ):
        who = "outsider" if "profiles" in statement else "member"
        with REFUSED:
            app.run(who, statement)


def test_readonly_and_immutable_columns_never_change_on_update_or_upsert(prod: tuple[App, Any]) -> None:
    app, _ = prod
    for who, statement in (
        ("member", "update notes set created_by = %(owner)s where id = %(note)s"),
        ("member", "update notes set org_id = %(p)s where id = %(note)s"),
        ("owner", "update orgs set owner_id = %(member)s where id = %(o)s"),
        ("member", "update profiles set plan = 'enterprise' where user_id = %(member)s"),
        ("member", "update profiles set is_verified = true where user_id = %(member)s"),
        # Upserts: ON CONFLICT DO UPDATE needs UPDATE on each column it sets.
        (
            "member",
            "insert into notes (id, org_id, body) values (%(note)s, %(o)s, 'x') "
            "on conflict (id) do update set org_id = excluded.org_id",
        ),
        (
            "member",
            "insert into notes (id, org_id, body) values (%(note)s, %(o)s, 'x') "
            "on conflict (id) do update set created_by = %(owner)s",
        ),
        (
            "member",
            "insert into profiles (display_name) values ('m') on conflict (user_id) do update set plan = 'enterprise'",
        ),
    ):
        with REFUSED:
            app.run(who, statement)
    assert app.run("service_role", "select created_by, org_id from notes where id = %(note)s") == (
        app.ids["member"],
        app.ids["o"],
    )
    assert app.run("service_role", "select plan, is_verified from profiles where user_id = %(member)s") == (
        "free",
        False,
    )


def test_immutable_columns_hold_past_privileges_in_a_definer_function(prod: tuple[App, Any]) -> None:
    app, _ = prod
    with pytest.raises(
        psycopg.errors.InsufficientPrivilege, match=r"public\.notes: org_id may not change \(immutable\)"
    ):
        app.run("member", "select public.move_note(%(note)s, %(p)s)")
    assert app.run("service_role", "select org_id from notes where id = %(note)s") == (app.ids["o"],)
    # The server is not bound; moving it back leaves the note where it was.
    assert app.run("service_role", "update notes set org_id = %(p)s where id = %(note)s") == 1
    assert app.run("service_role", "update notes set org_id = %(o)s where id = %(note)s") == 1


def test_only_the_author_edits_a_note_whose_author_is_read_only(prod: tuple[App, Any]) -> None:
    app, _ = prod
    # The organisation's owner and an admin read the member's note but do not edit it, nor take it over
    # (they may delete it: delete: admins, tested with a note of its own below).
    for who in ("owner", "admin"):
        assert app.run(who, "select body from notes where id = %(note)s") is not None
        assert app.run(who, "update notes set body = 'not mine' where id = %(note)s") == 0
        with REFUSED:  # the author column is the client's to set on neither insert nor update
            app.run(who, "update notes set created_by = %(owner)s where id = %(note)s")
    assert app.run("service_role", "select created_by from notes where id = %(note)s") == (app.ids["member"],)


def test_roles_in_the_organisation_go_only_as_its_grants_say(prod: tuple[App, Any]) -> None:
    app, _ = prod
    with REFUSED:  # only the owner adds admins
        app.run("admin", "insert into org_members (org_id, user_id, role) values (%(o)s, %(newcomer)s, 'admin')")
    # A member cannot make themself an admin: the row is not theirs to change.
    assert app.run("member", "update org_members set role = 'admin' where user_id = %(member)s") == 0
    with REFUSED:
        app.run("member", "insert into org_members (org_id, user_id, role) values (%(o)s, %(member)s, 'admin')")
    # An admin adds a member and removes them again; an admin deletes a note (delete: admins) it did not write.
    assert app.run("admin", "insert into org_members (org_id, user_id) values (%(o)s, %(newcomer)s)") == 1
    assert app.run("admin", "delete from org_members where user_id = %(newcomer)s") == 1
    (written,) = app.run("member", "insert into notes (org_id, body) values (%(o)s, 'to go') returning id")
    assert app.run("admin", "delete from notes where id = %(written)s", {"written": written}) == 1
    assert app.run("service_role", "select role from org_members where user_id = %(member)s") == ("member",)


def test_hidden_columns_are_not_selectable(prod: tuple[App, Any]) -> None:
    app, _ = prod
    for statement in (
        "select internal_note from notes where id = %(note)s",
        # PostgREST's select=* (and return=representation without select=) reads every column.
        "select notes.* from notes where id = %(note)s",
        "update notes set body = 'seen?' where id = %(note)s returning internal_note",
    ):
        with REFUSED:
            app.run("member", statement)
    assert app.run("service_role", "select internal_note from notes where id = %(note)s") == ("flagged",)


def test_everything_the_model_gives_is_still_allowed(prod: tuple[App, Any]) -> None:
    app, _ = prod
    # select= naming the allowed columns, as PostgREST must be asked on such a table.
    assert app.run("member", "select id, org_id, created_by, body from notes where id = %(note)s") == (
        app.ids["note"],
        app.ids["o"],
        app.ids["member"],
        "N",
    )
    assert app.run("owner", "select count(*) from notes where org_id = %(o)s") == (1,)
    created = app.run(
        "owner", "insert into notes (org_id, body) values (%(o)s, 'mine') returning created_by, org_id, body"
    )
    assert created == (app.ids["owner"], app.ids["o"], "mine")
    assert app.run("member", "update notes set body = 'edited' where id = %(note)s") == 1
    # An upsert that sets only the columns the role may update.
    assert (
        app.run(
            "member",
            "insert into notes (id, org_id, body) values (%(note)s, %(o)s, 'upserted') "
            "on conflict (id) do update set body = excluded.body",
        )
        == 1
    )
    assert app.run("member", "update profiles set display_name = 'm2' where user_id = %(member)s") == 1
    assert app.run("member", "select display_name, plan, is_verified from profiles where user_id = %(member)s") == (
        "m2",
        "free",
        False,
    )
    assert app.run("owner", "update orgs set name = 'O2' where id = %(o)s") == 1
    # The server is bound by no column rule.
    assert app.run("service_role", "update profiles set plan = 'pro' where user_id = %(member)s") == 1
    # Row rules still hold: the outsider reaches none of O's notes.
    assert app.run("outsider", "select count(*) from notes") == (0,)
    with REFUSED:
        app.run("anon", "select id from notes")


def test_the_catalog_holds_what_the_model_gives_column_by_column(prod: tuple[App, Any]) -> None:
    app, stack = prod
    plan = plan_access(columns_model(), "owner")
    assert column_rule_breaches(app.dsn, plan) == []
    # Table-wide, the API roles hold no more than the model gives (the narrowed privileges are column grants).
    declared = {"public.move_note(note_id uuid, target uuid)": ["authenticated"]}
    undeclared, missing = undeclared_and_missing(app.dsn, plan, functions=declared)
    assert (undeclared, missing) == ([], [])
    # Read back from the catalog too (pulumi-postgresql reads column grants from pg_attribute.attacl): no drift.
    assert changes(stack.preview(refresh=True).change_summary) == {}
    # Nothing but the fixture's own definer RPC (move_note, declared on purpose to reach past privileges).
    findings = must_fix(lint(app.dsn))
    assert [f for f in findings if "public.move_note" not in f[3]] == []
    assert [f[0] for f in findings] == ["authenticated_security_definer_function_executable"]


def test_a_withheld_column_granted_by_hand_is_drift_the_next_up_takes_back(prod: tuple[App, Any]) -> None:
    app, stack = prod
    with psycopg.connect(app.dsn) as conn:
        conn.execute("grant select (internal_note), update (created_by) on notes to authenticated")
    assert app.run("member", "select internal_note from notes where id = %(note)s") == ("flagged",)
    # pulumi-postgresql reads back only the columns its Grants list; RowLevelSecurity sees the rest.
    assert changes(stack.preview(refresh=True).change_summary) == {"update": 1}
    stack.up(refresh=True)
    with REFUSED:
        app.run("member", "select internal_note from notes where id = %(note)s")
    assert column_rule_breaches(app.dsn, plan_access(columns_model(), "owner")) == []
    assert changes(stack.preview(refresh=True).change_summary) == {}


def test_a_stack_without_column_rules_upgrades_in_place_and_destroy_is_exact(
    localdb_url: str, localdb_admin_conninfo: str, tmp_path: Path
) -> None:
    name = create_database_from_template(localdb_admin_conninfo, "legacy")
    dsn = make_conninfo(localdb_url, dbname=name)
    try:
        load_columns_app(dsn)
        before = catalog_snapshot(dsn)
        plain = yaml.safe_load((COLUMNS_APP / "access-model.yaml").read_text())
        for spec in plain["tables"].values():
            for key in ("readOnly", "immutable", "hidden"):
                spec.pop(key, None)
        without = tmp_path / "without-column-rules.yaml"
        without.write_text(yaml.safe_dump(plain))
        stack = new_stack(tmp_path / "prod", "prod", dsn, {**PROD, "supabase-access:modelFile": str(without)})
        stack.up()
        stack.set_config("supabase-access:modelFile", auto.ConfigValue(PROD["supabase-access:modelFile"]))
        preview = stack.preview(diff=True)
        assert "replace" not in changes(preview.change_summary)
        assert "delete" not in changes(preview.change_summary)
        stack.up()
        assert column_rule_breaches(dsn, plan_access(columns_model(), "owner")) == []
        stack.destroy()
        assert catalog_snapshot(dsn) == before
    finally:
        drop_database(localdb_admin_conninfo, name)


def test_the_access_matrix_shows_the_column_rules_and_probes_as_the_app_writes(prod: tuple[App, Any]) -> None:
    app, _ = prod
    matrix = compute_matrix(app.dsn, columns_model())
    assert matrix.notes == ()  # every probe decided by a privilege or a policy (no column rule tripped one)
    member = "authenticated (member of A's groups)"
    own_then_other = "".join(matrix.symbol(Cell(member, "notes", op, whose)) for op in OPERATIONS for whose in WHOSE)
    # The probe row of the member's own organisation is another user's note: read, and insert as the
    # author, but neither update nor delete (write: author).
    assert own_then_other == "✓✗✓✗✗✗✗✗"
    text = matrix.render_text()
    assert "notes: readOnly created_by; immutable org_id; hidden from authenticated: internal_note" in text
    assert "profiles: readOnly plan, is_verified" in matrix.render_markdown()
