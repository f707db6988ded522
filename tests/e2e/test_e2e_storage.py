"""End to end: Storage buckets of the model applied by the real engine on the teams app (tests/fixtures/
teams_app), on a prod and a dev stack: an avatar bucket (owner folders), a project-files bucket (the
project's folders), a public bucket and a server-only bucket. Each persona then acts as the Storage API
does (role and JWT claims, then its statements on storage.objects); a second `up` changes nothing;
destroy gives back the catalog exactly, the buckets' rows included."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg.conninfo import make_conninfo

from review.postgrest import Persona, connect_as_authenticator
from tests.support.engine import changes, new_stack
from tests.support.fault import catalog_snapshot
from tests.support.localdb import create_database_from_template, drop_database
from tests.support.splinter import lint, must_fix
from tests.support.storage import StorageCaller, add_user, bucket_catalog, put_object
from tests.support.teams_app import TEAMS_APP, load_teams_app

pytestmark = pytest.mark.e2e

BUCKETS = {
    "avatars": {"owner": "folder", "fileSizeLimit": 1048576, "allowedMimeTypes": ["image/*"]},
    "project-files": {"member": {"group": "projects"}},
    "site-assets": {"publicRead": True},
    # Served by public URL; no policy, so nobody lists it through the API (splinter's public_bucket_allows_listing).
    "cdn": {"publicRead": True, "public": True},
    "exports": {"serviceOnly": True},
}


def stack_config(environment: str) -> dict[str, str]:
    model = yaml.safe_load((TEAMS_APP / "access-model.yaml").read_text())
    return {
        "supabase-access:environment": environment,
        "supabase-access:model": json.dumps({**model, "buckets": BUCKETS}),
    }


@pytest.fixture
def teams_dsn(localdb_url: str, localdb_admin_conninfo: str, platform: str) -> Iterator[str]:
    name = create_database_from_template(localdb_admin_conninfo, platform)
    dsn = make_conninfo(localdb_url, dbname=name)
    load_teams_app(dsn)
    try:
        yield dsn
    finally:
        drop_database(localdb_admin_conninfo, name)


def callers(conn: psycopg.Connection, users: dict[str, uuid.UUID]) -> dict[str, StorageCaller]:
    found = {name: StorageCaller(conn, Persona.signed_in(user, is_anonymous=False)) for name, user in users.items()}
    return found | {"anon": StorageCaller(conn, Persona.anon()), "server": StorageCaller(conn, Persona.service())}


def test_prod_buckets_as_the_storage_api_then_an_exact_destroy(teams_dsn: str, tmp_path: Path) -> None:
    dsn = teams_dsn
    before = catalog_snapshot(dsn), bucket_catalog(dsn)
    stack = new_stack(tmp_path / "prod", "prod", dsn, stack_config("prod"))
    stack.up()
    # Supabase's linter finds nothing to fix (it leaves Storage's schema to Storage).
    assert must_fix(lint(dsn)) == []
    users = {name: add_user(dsn) for name in ("alice", "bob", "carol")}
    project_a, project_b = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "insert into projects (id, owner_id, name) values (%s, %s, 'a'), (%s, %s, 'b')",
            (project_a, users["alice"], project_b, users["carol"]),
        )
        conn.execute("insert into project_members (project_id, user_id) values (%s, %s)", (project_b, users["bob"]))
    alice_avatar, bob_avatar = f"{users['alice']}/me.png", f"{users['bob']}/me.png"
    for bucket, name in (
        ("avatars", alice_avatar),
        ("avatars", bob_avatar),
        ("project-files", f"{project_a}/a.pdf"),
        ("project-files", f"{project_b}/b.pdf"),
        ("site-assets", "logo.png"),
        ("exports", "dump.csv"),
        ("cdn", "logo.png"),
    ):
        put_object(dsn, bucket, name)
    every = ("avatars", "project-files", "site-assets", "exports")
    with connect_as_authenticator(dsn) as conn:
        who = callers(conn, users)
        assert who["alice"].listed(*every) == {
            ("avatars", alice_avatar),
            ("project-files", f"{project_a}/a.pdf"),
            ("site-assets", "logo.png"),
        }
        assert who["bob"].listed(*every) == {
            ("avatars", bob_avatar),
            ("project-files", f"{project_b}/b.pdf"),
            ("site-assets", "logo.png"),
        }
        assert who["anon"].listed(*every) == {("site-assets", "logo.png")}
        assert who["anon"].listed("cdn") == set() and who["alice"].listed("cdn") == set()
        assert len(who["server"].listed(*every)) == 6
        assert who["alice"].may_upload("avatars", f"{users['alice']}/new.png")
        assert not who["alice"].may_upload("avatars", f"{users['bob']}/new.png")
        assert not who["alice"].may_upload("avatars", f"{users['alice']}/../{users['bob']}/new.png")
        assert who["bob"].may_upload("project-files", f"{project_b}/new.pdf")
        assert not who["bob"].may_upload("project-files", f"{project_a}/new.pdf")
        assert not who["anon"].may_upload("site-assets", "new.png")
        assert not who["carol"].may_upload("exports", "new.csv")
        assert who["server"].may_upload("exports", "new.csv")
    # Nothing to do on a second run, and a refresh finds no drift.
    assert changes(stack.preview().change_summary) == {}
    stack.refresh()
    assert changes(stack.preview().change_summary) == {}
    # Files are data: destroy refuses while a bucket the stack created holds objects.
    with pytest.raises(Exception, match=r"holds \d+ objects and supabase-access never deletes files"):
        stack.destroy()
    with psycopg.connect(dsn) as conn:
        conn.execute("set storage.allow_delete_query = 'true'")
        conn.execute("delete from storage.objects")
    stack.destroy()
    assert (catalog_snapshot(dsn), bucket_catalog(dsn)) == before


def test_dev_opens_every_bucket_of_the_model(teams_dsn: str, tmp_path: Path) -> None:
    dsn = teams_dsn
    stack = new_stack(tmp_path / "dev", "dev", dsn, stack_config("dev"))
    stack.up()
    put_object(dsn, "exports", "dump.csv")
    with connect_as_authenticator(dsn) as conn:
        anon = StorageCaller(conn, Persona.anon())
        assert anon.listed("exports") == {("exports", "dump.csv")}
        assert anon.may_upload("avatars", "anything.png")
    assert changes(stack.preview().change_summary) == {}


def test_a_prod_bucket_without_a_kind_stops_the_preview_with_the_line(teams_dsn: str, tmp_path: Path) -> None:
    config = stack_config("prod")
    model = json.loads(config["supabase-access:model"])
    model["buckets"]["avatars"] = {"public": False}
    stack = new_stack(tmp_path / "prod", "prod", teams_dsn, {**config, "supabase-access:model": json.dumps(model)})
    with pytest.raises(Exception, match=r"`avatars: \{owner: folder\}`") as info:
        stack.preview()
    assert "avatars" in str(info.value)


def test_a_policy_made_by_hand_that_opens_the_buckets_is_drift_and_up_takes_it_back(
    teams_dsn: str, tmp_path: Path
) -> None:
    """As a policy made by hand on a table of the model: `preview --refresh` shows it, `up` drops it. Only one
    that widens the stack's buckets: another app's policy on storage.objects is left as it is, and destroy gives
    back the catalog exactly."""
    dsn = teams_dsn
    with psycopg.connect(dsn) as conn:
        conn.execute("create policy other_app on storage.objects for select to anon using (bucket_id = 'other-app')")
    before = catalog_snapshot(dsn), bucket_catalog(dsn)
    stack = new_stack(tmp_path / "prod", "prod", dsn, stack_config("prod"))
    stack.up()
    alice = add_user(dsn)
    put_object(dsn, "avatars", f"{alice}/me.png", alice)
    put_object(dsn, "exports", "dump.csv")
    with psycopg.connect(dsn) as conn:
        conn.execute('create policy "open" on storage.objects for select to anon using (true)')
    with connect_as_authenticator(dsn) as conn:
        anon = StorageCaller(conn, Persona.anon())
        assert anon.listed("avatars", "exports") == {("avatars", f"{alice}/me.png"), ("exports", "dump.csv")}
        preview = stack.preview(refresh=True, diff=True)
        # The private buckets it opens (not site-assets, which anon reads anyway) are updates, naming it.
        assert changes(preview.change_summary) == {"update": 4}
        assert '"open"' in preview.stdout or "open:" in preview.stdout, preview.stdout
        output: list[str] = []
        stack.up(on_output=output.append)
        assert "dropped the policy 'open' on storage.objects" in "".join(output)
        assert anon.listed("avatars", "exports") == set()
    with psycopg.connect(dsn) as conn:
        names = {n for (n,) in conn.execute("select policyname from pg_policies where schemaname = 'storage'")}
    assert "other_app" in names and "open" not in names
    stack.refresh()
    assert changes(stack.preview().change_summary) == {}
    with psycopg.connect(dsn) as conn:
        conn.execute("set storage.allow_delete_query = 'true'")
        conn.execute("delete from storage.objects")
    stack.destroy()
    assert (catalog_snapshot(dsn), bucket_catalog(dsn)) == before
