"""StorageBucket on a real database, through the provider class itself, and the Storage API's requests
(role and JWT claims set, then its statements on storage.objects) against the policies it makes: an
avatar bucket (owner folders), a project-files bucket (group folders), a public bucket and a
server-only bucket, on both grant platforms. Then drift, take-over and an exact destroy."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql

from review.postgrest import Persona, as_persona, connect_as_authenticator
from review.storage_matrix import compute_storage_matrix
from supabase_access.model.access_model import parse_model
from supabase_access.model.buckets import CALLER_FUNCTION
from supabase_access.model.profiles import plan_access
from supabase_access.model.rule_data import group_lookup_to_plain
from supabase_access.provider.base import CHECK_LOG, InputError
from supabase_access.provider.resources.access_preflight import AccessPreflight
from supabase_access.provider.resources.group_functions import GroupFunctions
from supabase_access.provider.resources.storage_bucket import StorageBucket
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from tests.support.localdb import both_platforms
from tests.support.resources import REFERENCE_PREFLIGHT, UnreachableDatabase, create, read
from tests.support.storage import RefusedError, StorageCaller, add_user, bucket_catalog, put_object
from tests.support.teams_app import load_teams_app, teams_model

pytestmark = pytest.mark.db

GROUPS = "supabase_access_rls.project_members_group_ids"
# The set-returning member function that member buckets called before the ids function.
MEMBER_GROUPS = "supabase_access_rls.project_members_groups"
BUCKETS: dict[str, dict[str, Any]] = {
    "avatars": {
        "access": "owner-folder",
        "callerFunction": CALLER_FUNCTION,
        "fileSizeLimit": 1048576,
        "allowedMimeTypes": ["image/png", "image/*"],
    },
    "project-files": {"access": "member", "groupFunction": GROUPS},
    "site-assets": {"access": "public-read"},
    # Public: served by URL without any policy; a SELECT policy would only let clients list it.
    "cdn": {"access": "public-read", "public": True},
    "exports": {"access": "service-only"},
}


def inputs(bucket: str, **changes: Any) -> dict[str, Any]:
    return {"bucketId": bucket, **BUCKETS[bucket], **changes}


@dataclass
class App:
    dsn: str
    db: Database
    alice: uuid.UUID  # owns project A
    bob: uuid.UUID  # member of project B (owned by carol)
    project_a: uuid.UUID
    project_b: uuid.UUID
    states: dict[str, dict[str, Any]]


@pytest.fixture
def app(db: Database, fresh_db: str) -> Iterator[App]:
    load_teams_app(fresh_db)
    (lookup,) = plan_access(teams_model(), "owner").group_lookups
    create(GroupFunctions(), db, {"schema": "public", **group_lookup_to_plain(lookup)})
    alice, bob, carol = (add_user(fresh_db) for _ in range(3))
    project_a, project_b = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(fresh_db) as conn:
        conn.execute(
            "insert into projects (id, owner_id, name) values (%s, %s, 'a'), (%s, %s, 'b')",
            (project_a, alice, project_b, carol),
        )
        conn.execute("insert into project_members (project_id, user_id) values (%s, %s)", (project_b, bob))
    states = {bucket: create(StorageBucket(), db, inputs(bucket))[2] for bucket in BUCKETS}
    yield App(fresh_db, db, alice, bob, project_a, project_b, states)


@pytest.fixture
def authenticator(fresh_db: str) -> Iterator[psycopg.Connection]:
    with connect_as_authenticator(fresh_db) as conn:
        yield conn


def user(conn: psycopg.Connection, user_id: uuid.UUID) -> StorageCaller:
    return StorageCaller(conn, Persona.signed_in(user_id, is_anonymous=False))


@both_platforms
def test_the_buckets_rows_and_policies(app: App) -> None:
    buckets, policies = bucket_catalog(app.dsn)
    assert buckets == [
        ("avatars", "avatars", False, 1048576, ["image/png", "image/*"]),
        ("cdn", "cdn", True, None, None),
        ("exports", "exports", False, None, None),
        ("project-files", "project-files", False, None, None),
        ("site-assets", "site-assets", False, None, None),
    ]
    assert [p[0] for p in policies] == [
        "avatars: delete",
        "avatars: insert",
        "avatars: select",
        "avatars: update",
        "project-files: delete",
        "project-files: insert",
        "project-files: select",
        "project-files: update",
        "site-assets: select",
    ]
    assert app.states["exports"]["policies"] == {} and app.states["cdn"]["policies"] == {}
    assert app.states["avatars"].get("adopted") is None


@both_platforms
def test_a_user_reaches_only_their_own_folder(app: App, authenticator: psycopg.Connection) -> None:
    alice, bob = user(authenticator, app.alice), user(authenticator, app.bob)
    assert alice.may_upload("avatars", f"{app.alice}/me.png")
    assert not alice.may_upload("avatars", f"{app.bob}/me.png"), "another user's folder"
    assert not alice.may_upload("avatars", "me.png"), "no folder"
    assert not alice.may_upload("avatars", f"{app.alice}/../{app.bob}/me.png"), "a dot-dot path"
    assert not alice.may_upload("avatars", f"{app.alice}/..")
    assert not alice.may_upload("avatars", f"{app.alice}//me.png"), "an empty segment"
    assert not alice.may_upload("exports", f"{app.alice}/me.png"), "a second bucket id"
    put_object(app.dsn, "avatars", f"{app.alice}/a.png", app.alice)
    put_object(app.dsn, "avatars", f"{app.bob}/b.png", app.bob)
    put_object(app.dsn, "exports", f"{app.alice}/report.csv")
    # One request naming two buckets sees the caller's own objects of the first only.
    assert alice.listed("avatars", "exports", "project-files") == {("avatars", f"{app.alice}/a.png")}
    assert bob.listed("avatars") == {("avatars", f"{app.bob}/b.png")}
    assert alice.moved("avatars", f"{app.bob}/b.png", "avatars", f"{app.alice}/b.png") == 0
    assert alice.deleted("avatars", f"{app.bob}/b.png") == 0
    assert alice.deleted("avatars", f"{app.alice}/a.png") == 1
    with pytest.raises(RefusedError):
        alice.moved("avatars", f"{app.alice}/a.png", "avatars", f"{app.bob}/a.png")
    with pytest.raises(RefusedError):
        alice.moved("avatars", f"{app.alice}/a.png", "exports", f"{app.alice}/a.png")


@both_platforms
def test_an_owner_id_bucket_as_the_storage_api(db: Database, fresh_db: str, authenticator: psycopg.Connection) -> None:
    """`owner: ownerId`: Storage writes the uploader's id into owner_id; each user then reads, overwrites, moves
    and deletes their own objects only, wherever in the bucket they are, and nobody else's."""
    create(StorageBucket(), db, {"bucketId": "uploads", "access": "owner-id", "callerFunction": CALLER_FUNCTION})
    create(StorageBucket(), db, inputs("exports"))
    alice_id, bob_id = add_user(fresh_db), add_user(fresh_db)
    alice, bob = user(authenticator, alice_id), user(authenticator, bob_id)
    anon = StorageCaller(authenticator, Persona.anon())
    # An upload as Storage makes it (owner_id: the JWT's sub), committed: the object is alice's.
    with as_persona(authenticator, alice.persona, commit=True) as cur:
        cur.execute(
            "insert into storage.objects (bucket_id, name, owner_id) values ('uploads', 'shared/report.pdf', %s) "
            "returning owner_id",
            (str(alice_id),),
        )
        assert cur.fetchone() == (str(alice_id),)
    put_object(fresh_db, "uploads", "shared/theirs.pdf", bob_id)
    put_object(fresh_db, "uploads", "orphan.pdf")  # owner_id null: nobody's but the server's
    # Uploads: only with the caller's own id; another's, none, or a second bucket in the request are refused.
    assert alice.may_upload("uploads", f"{bob_id}/in-bobs-folder.pdf"), "the folder does not matter, owner_id does"
    for owner in (str(bob_id), None, "", f"{alice_id} "):
        with as_persona(authenticator, alice.persona) as cur, pytest.raises(psycopg.errors.InsufficientPrivilege):
            cur.execute(
                "insert into storage.objects (bucket_id, name, owner_id) values ('uploads', 'x.pdf', %s)", (owner,)
            )
    assert not alice.may_upload("exports", "x.pdf"), "a second bucket id"
    assert not anon.may_upload("uploads", "x.pdf")
    # Download and list: each their own.
    assert alice.listed("uploads", "exports") == {("uploads", "shared/report.pdf")}
    assert bob.listed("uploads") == {("uploads", "shared/theirs.pdf")}
    assert anon.listed("uploads") == set()
    # Overwrite and move: their own only, and never handing an object to someone else.
    assert alice.moved("uploads", "shared/report.pdf", "uploads", "shared/report-v2.pdf") == 1
    assert alice.moved("uploads", "shared/theirs.pdf", "uploads", "shared/mine-now.pdf") == 0
    assert bob.moved("uploads", "shared/report.pdf", "uploads", "x.pdf") == 0
    with as_persona(authenticator, alice.persona) as cur, pytest.raises(psycopg.errors.InsufficientPrivilege):
        cur.execute(
            "update storage.objects set owner_id = %s where bucket_id = 'uploads' and name = 'shared/report.pdf'",
            (str(bob_id),),
        )
    with pytest.raises(RefusedError):
        alice.moved("uploads", "shared/report.pdf", "exports", "report.pdf")
    # Delete: their own only.
    assert bob.deleted("uploads", "shared/report.pdf") == 0
    assert anon.deleted("uploads", "shared/report.pdf") == 0
    assert alice.deleted("uploads", "orphan.pdf") == 0
    assert alice.deleted("uploads", "shared/report.pdf") == 1


@both_platforms
def test_a_member_reaches_only_their_groups_folders(app: App, authenticator: psycopg.Connection) -> None:
    alice, bob = user(authenticator, app.alice), user(authenticator, app.bob)
    assert bob.may_upload("project-files", f"{app.project_b}/plan.pdf")
    assert not bob.may_upload("project-files", f"{app.project_a}/plan.pdf"), "a project bob is not in"
    assert not bob.may_upload("project-files", f"{app.project_b}/../{app.project_a}/plan.pdf")
    assert alice.may_upload("project-files", f"{app.project_a}/plan.pdf"), "the project's owner"
    assert not alice.may_upload("project-files", f"{app.project_b}/plan.pdf")
    put_object(app.dsn, "project-files", f"{app.project_a}/a.pdf")
    put_object(app.dsn, "project-files", f"{app.project_b}/b.pdf")
    assert bob.listed("project-files") == {("project-files", f"{app.project_b}/b.pdf")}
    assert alice.listed("project-files", "avatars") == {("project-files", f"{app.project_a}/a.pdf")}
    assert bob.deleted("project-files", f"{app.project_a}/a.pdf") == 0
    assert bob.deleted("project-files", f"{app.project_b}/b.pdf") == 1


@both_platforms
def test_anon_reads_the_public_bucket_only_and_the_server_alone_the_server_bucket(
    app: App, authenticator: psycopg.Connection
) -> None:
    anon = StorageCaller(authenticator, Persona.anon())
    alice = user(authenticator, app.alice)
    server = StorageCaller(authenticator, Persona.service())
    put_object(app.dsn, "site-assets", "logo.png")
    put_object(app.dsn, "exports", "dump.csv")
    put_object(app.dsn, "avatars", f"{app.alice}/a.png", app.alice)
    everything = ("site-assets", "exports", "avatars", "project-files")
    assert anon.listed(*everything) == {("site-assets", "logo.png")}
    assert alice.listed("site-assets", "exports") == {("site-assets", "logo.png")}
    for caller in (anon, alice):
        assert not caller.may_upload("site-assets", "logo2.png")
        assert not caller.may_upload("exports", "x.csv")
        assert caller.deleted("site-assets", "logo.png") == 0
    assert not anon.may_upload("avatars", f"{app.alice}/x.png")
    assert server.listed(*everything) == {
        ("site-assets", "logo.png"),
        ("exports", "dump.csv"),
        ("avatars", f"{app.alice}/a.png"),
    }
    assert server.may_upload("exports", "new.csv")


@both_platforms
def test_drift_is_seen_and_repaired(app: App) -> None:
    resource = StorageBucket()
    state = app.states["avatars"]
    assert resource.diff(app.db, state, inputs("avatars")).changes == {}
    with psycopg.connect(app.dsn) as conn:
        conn.execute("update storage.buckets set public = true, file_size_limit = null where id = 'avatars'")
        conn.execute("alter policy \"avatars: select\" on storage.objects using (bucket_id = 'avatars')")
    assert resource.diff(app.db, state, inputs("avatars")).changes == {
        "public": "update",
        "fileSizeLimit": "update",
        "policies": "update",
    }
    # A refresh records the drift in the state; the preview after it still shows it.
    refreshed = read(resource, app.db, "avatars", state, inputs("avatars"))
    assert refreshed is not None and refreshed[0]["policies"] != state["policies"]
    assert resource.diff(app.db, refreshed[0], inputs("avatars")).changes == {
        "public": "update",
        "fileSizeLimit": "update",
        "policies": "update",
    }
    repaired = resource.update(app.db, state, inputs("avatars"), print)
    assert repaired["policies"] == state["policies"]
    assert resource.diff(app.db, repaired, inputs("avatars")).changes == {}
    # Unchanged inputs do not ask the database.
    olds = resource.check(app.db, {}, inputs("avatars"))
    assert resource.check(UnreachableDatabase(), olds, inputs("avatars")) == olds


# The object policies of the folder kinds as supabase-access rendered them before 058bda8 (same rows
# admitted, slower): `bucket_id = ... and (storage.foldername(name))[1] = ...`.
OLD_FIRST_FOLDER = "(storage.foldername(name))[1]"
OLD_PLAIN_PATH = "not ('..' = any (string_to_array(name, '/')) or '' = any (string_to_array(name, '/')))"
OLD_FOLDER_TESTS = {
    "avatars": f"{OLD_FIRST_FOLDER} = (select auth.uid()::text)",
    "project-files": f"{OLD_FIRST_FOLDER} = any (array(select g::text from {MEMBER_GROUPS}() as g))",
}


def make_old_policies(dsn: str, bucket: str) -> None:
    """Replace `bucket`'s object policies by their old rendering, as a stack made back then has them."""
    readable = f"bucket_id = '{bucket}' and {OLD_FOLDER_TESTS[bucket]}"
    writable = f"{readable} and {OLD_PLAIN_PATH}"
    with psycopg.connect(dsn) as conn:
        for command in ("select", "insert", "update", "delete"):
            name = sql.Identifier(f"{bucket}: {command}")
            clauses = {
                "select": f"using ({readable})",
                "insert": f"with check ({writable})",
                "update": f"using ({readable}) with check ({writable})",
                "delete": f"using ({readable})",
            }[command]
            conn.execute(sql.SQL("drop policy {} on storage.objects").format(name))
            conn.execute(
                sql.SQL("create policy {} on storage.objects for {} to authenticated {}").format(
                    name,
                    sql.SQL(command),
                    sql.SQL(clauses),  # type: ignore[arg-type]  # the test's own text
                )
            )
            conn.execute(
                sql.SQL("comment on policy {} on storage.objects is 'supabase-access: created by stack test'").format(
                    name
                )
            )


def old_state(dsn: str, state: dict[str, Any], bucket: str) -> dict[str, Any]:
    """The state such a stack has: the old policies as PostgreSQL stored them, no rendering digest."""
    with psycopg.connect(dsn) as conn:
        live = {name: p.to_plain() for name, p in catalog.read_policies(conn, "storage", "objects").items()}
    ours = {name: live[name] for name in state["policies"]}
    return {k: v for k, v in state.items() if k not in ("renderedDigest", "normalized")} | {"policies": ours}


@both_platforms
def test_a_stack_made_with_an_older_rendering_gets_todays_policies_in_place(
    app: App, authenticator: psycopg.Connection
) -> None:
    """Object policies rendered by an older supabase-access (same access, another form) stay until the
    bucket's inputs change, unless the diff compares them with today's rendering: it does, and the update
    makes them again in the bucket's own transaction; then nothing is left to change."""
    resource = StorageBucket()
    for bucket in OLD_FOLDER_TESTS:
        todays = app.states[bucket]["policies"]
        make_old_policies(app.dsn, bucket)
        state = old_state(app.dsn, app.states[bucket], bucket)
        assert state["policies"] != todays
        alice = user(authenticator, app.alice)
        own = f"{app.alice}/a.png" if bucket == "avatars" else f"{app.project_a}/a.png"
        assert alice.may_upload(bucket, own) and not alice.may_upload(bucket, f"{app.bob}/a.png")
        diff = resource.diff(app.db, state, inputs(bucket))
        assert diff.changes == {"policies": "update"} and not diff.replaces, bucket
        upgraded = resource.update(app.db, state, inputs(bucket), print)
        assert upgraded["policies"] == todays and upgraded["renderedDigest"] == app.states[bucket]["renderedDigest"]
        assert resource.diff(app.db, upgraded, inputs(bucket)).changes == {}, bucket
        assert alice.may_upload(bucket, own) and not alice.may_upload(bucket, f"{app.bob}/a.png")
    # A state from before the digest whose policies are today's: PostgreSQL's answer says nothing changed.
    state = {k: v for k, v in app.states["site-assets"].items() if k != "renderedDigest"}
    assert resource.diff(app.db, state, inputs("site-assets")).changes == {}
    # A member bucket made when it read the set-returning member function: its groupFunction input changes.
    make_old_policies(app.dsn, "project-files")
    state = old_state(app.dsn, app.states["project-files"], "project-files") | {"groupFunction": MEMBER_GROUPS}
    diff = resource.diff(app.db, state, inputs("project-files"))
    assert diff.changes == {"groupFunction": "update"} and not diff.replaces
    upgraded = resource.update(app.db, state, inputs("project-files"), print)
    assert upgraded["policies"] == app.states["project-files"]["policies"]
    assert resource.diff(app.db, upgraded, inputs("project-files")).changes == {}


def policy_names(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("select policyname from pg_policies where schemaname = 'storage' and tablename = 'objects'")
        return {str(name) for (name,) in rows.fetchall()}


@both_platforms
def test_a_policy_made_by_hand_that_opens_a_bucket_is_drift_and_taken_back(
    app: App, authenticator: psycopg.Connection
) -> None:
    """Tables: an undeclared policy is drift TablePolicies drops. storage.objects is shared, so a policy no
    stack marks is judged by what it lets a persona do to the bucket's objects: only a widening is taken back."""
    put_object(app.dsn, "avatars", f"{app.alice}/a.png", app.alice)
    put_object(app.dsn, "exports", "dump.csv")
    anon, bob = StorageCaller(authenticator, Persona.anon()), user(authenticator, app.bob)
    with psycopg.connect(app.dsn) as conn:
        # The dashboard's one-click mistake, and a subtler one: any signed-in user may overwrite any object.
        conn.execute('create policy "open" on storage.objects for select to anon using (true)')
        conn.execute(
            'create policy "signed in" on storage.objects for all to public using ((select auth.uid()) is not null)'
        )
        # One that reads Storage's generated column: anyone signed in may delete any object in a folder.
        conn.execute(
            'create policy "tokens" on storage.objects for delete to authenticated using (cardinality(path_tokens) > 1)'
        )
        # Left alone: another app's bucket, a rule narrower than the kind's, and another stack's (marked) policy.
        conn.execute("create policy theirs on storage.objects for all to authenticated using (bucket_id = 'other-app')")
        conn.execute(
            'create policy "own avatars" on storage.objects for select to authenticated '
            "using (bucket_id = 'avatars' and owner_id = (select auth.uid())::text)"
        )
        conn.execute(
            "create policy \"staging-files: select\" on storage.objects for select using (bucket_id = 'staging-files')"
        )
        conn.execute(
            'comment on policy "staging-files: select" on storage.objects '
            "is 'supabase-access: created by stack staging'"
        )
    assert anon.listed("avatars", "exports") == {("avatars", f"{app.alice}/a.png"), ("exports", "dump.csv")}
    assert bob.moved("avatars", f"{app.alice}/a.png", "avatars", f"{app.alice}/b.png") == 1
    kept = policy_names(app.dsn) - {"open", "signed in", "tokens"}
    resource = StorageBucket()
    for bucket in ("avatars", "exports", "project-files", "cdn"):
        assert resource.diff(app.db, app.states[bucket], inputs(bucket)).changes == {"policies": "update"}, bucket
    # A refresh reads them back among the bucket's own policies: `preview --refresh` shows them.
    refreshed = read(resource, app.db, "avatars", app.states["avatars"], inputs("avatars"))
    assert refreshed is not None and {"open", "signed in"} <= set(refreshed[0]["policies"])
    logged: list[str] = []
    state = resource.update(app.db, app.states["avatars"], inputs("avatars"), logged.append)
    assert any(
        "dropped the policy 'open'" in m and "anon (no JWT) may download or list an object of user A" in m
        for m in logged
    )
    assert any(
        "dropped the policy 'signed in'" in m and "user B may overwrite or move an object of user A" in m
        for m in logged
    )
    assert any("dropped the policy 'tokens'" in m and "user B may delete an object of user A" in m for m in logged)
    assert policy_names(app.dsn) == kept | set(state["policies"])
    assert state["policies"] == app.states["avatars"]["policies"]
    for bucket in ("avatars", "exports", "project-files", "site-assets", "cdn"):
        assert resource.diff(app.db, app.states[bucket], inputs(bucket)).changes == {}, bucket
    assert anon.listed("avatars", "exports") == set()
    assert bob.moved("avatars", f"{app.alice}/a.png", "avatars", f"{app.alice}/b.png") == 0


@both_platforms
def test_a_widening_policy_found_at_the_first_up_is_taken_over_and_put_back(db: Database, fresh_db: str) -> None:
    with psycopg.connect(fresh_db) as conn:
        conn.execute('create policy "open" on storage.objects for all to anon, authenticated using (true)')
    before = bucket_catalog(fresh_db)
    resource = StorageBucket()
    logged: list[str] = []
    _, _, state = create(resource, db, inputs("exports"), logged.append)
    assert list(state["adoptedPolicies"]) == ["open"]
    assert any("dropped the policy 'open'" in m and "destroy puts it back" in m for m in logged)
    assert "open" not in policy_names(fresh_db)
    resource.delete(db, state, print)
    assert bucket_catalog(fresh_db) == before


@both_platforms
def test_destroy_refuses_a_bucket_with_objects_and_gives_back_the_catalog(db: Database, fresh_db: str) -> None:
    before = bucket_catalog(fresh_db)
    resource = StorageBucket()
    _, _, state = create(resource, db, inputs("site-assets"))
    put_object(fresh_db, "site-assets", "logo.png")
    with pytest.raises(InputError, match=r"bucket site-assets holds 1 objects and supabase-access never deletes files"):
        resource.delete(db, state, print)
    assert bucket_catalog(fresh_db)[0][0][0] == "site-assets", "nothing half-done"
    with psycopg.connect(fresh_db) as conn:
        conn.execute("set storage.allow_delete_query = 'true'")
        conn.execute("delete from storage.objects")
    resource.delete(db, state, print)
    assert bucket_catalog(fresh_db) == before


@both_platforms
def test_a_bucket_and_policy_found_are_taken_over_and_put_back(db: Database, fresh_db: str) -> None:
    with psycopg.connect(fresh_db) as conn:
        conn.execute(
            "insert into storage.buckets (id, name, public, file_size_limit) values ('avatars', 'Avatars', true, 5)"
        )
        conn.execute(
            "create policy \"avatars: select\" on storage.objects for select to anon using (bucket_id = 'avatars')"
        )
        conn.execute("create policy other_app on storage.objects for select to authenticated using (false)")
    before = bucket_catalog(fresh_db)
    resource = StorageBucket()
    _, _, state = create(resource, db, inputs("avatars"))
    assert state["adopted"] == {"name": "Avatars", "public": True, "fileSizeLimit": 5, "allowedMimeTypes": None}
    assert list(state["adoptedPolicies"]) == ["avatars: select"]
    buckets, policies = bucket_catalog(fresh_db)
    assert buckets == [("avatars", "avatars", False, 1048576, ["image/png", "image/*"])]
    assert "other_app" in [p[0] for p in policies], "another policy on storage.objects is left alone"
    put_object(fresh_db, "avatars", "kept.png")
    resource.delete(db, state, print)
    after = bucket_catalog(fresh_db)
    assert after == before, "the row and the policy as they were; the object stays"


@pytest.mark.parametrize(
    ("changes", "prop", "message"),
    [
        ({"bucketId": "a/../b"}, "bucketId", "is not a bucket id"),
        ({"access": "owner"}, "access", "access: 'owner' is not one of"),
        ({"groupFunction": "x.y"}, "groupFunction", "give it for a member bucket, and only for one"),
        ({"fileSizeLimit": -1}, "fileSizeLimit", "expected a number of bytes"),
        ({"allowedMimeTypes": ["png"]}, "allowedMimeTypes", "expected MIME types"),
    ],
)
def test_bad_input_names_the_input(changes: dict[str, Any], prop: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        StorageBucket().check(UnreachableDatabase(), {}, inputs("avatars", **changes))
    assert info.value.property == prop and message in info.value.reason


PREFLIGHT = REFERENCE_PREFLIGHT


def test_the_preflight_names_each_bucket_the_model_leaves_out(db: Database, fresh_db: str) -> None:
    with psycopg.connect(fresh_db) as conn:
        conn.execute(
            "insert into storage.buckets (id, name, public) values ('docs', 'docs', false), ('cdn', 'cdn', true)"
        )
    # Another stack's bucket (its policies carry that stack's mark) is that stack's to cover.
    create(StorageBucket(), db, inputs("avatars"))
    with pytest.raises(InputError) as raised:
        AccessPreflight().check(db, {}, {**PREFLIGHT, "uncoveredTables": "fail", "buckets": ["docs"]})
    assert raised.value.property == "buckets"
    assert raised.value.reason.startswith("storage.buckets holds 1 bucket(s) the model does not cover")
    assert "cdn: add `cdn: {publicRead: true, public: true}`" in raised.value.reason
    assert "under `buckets:` in supabase-access:modelFile (access-model.yaml)" in raised.value.reason
    with pytest.raises(InputError, match=r"docs: add `docs: \{owner: folder\}`"):
        AccessPreflight().check(db, {}, {**PREFLIGHT, "uncoveredTables": "fail"})
    # Dev: said, not refused.
    said: list[str] = []
    token = CHECK_LOG.set(said.append)
    try:
        AccessPreflight().check(db, {}, {**PREFLIGHT, "uncoveredTables": "warn"})
    finally:
        CHECK_LOG.reset(token)
    assert len(said) == 1 and "2 bucket(s) the model does not cover" in said[0]


def test_the_storage_matrix_shows_each_persona_on_each_bucket(app: App) -> None:
    model = parse_model(
        {
            "tables": {
                "projects": {"owner": "owner_id"},
                "project_members": {
                    "membership": {
                        "group": "projects",
                        "column": "project_id",
                        "user": "user_id",
                        "role": "role",
                        "admins": ["admin"],
                    }
                },
            },
            "buckets": {
                "avatars": {"owner": "folder"},
                "project-files": {"member": {"group": "projects"}},
                "site-assets": {"publicRead": True},
                "exports": {"serviceOnly": True},
            },
        },
        setting="test",
    )
    matrix = compute_storage_matrix(app.dsn, model)
    assert matrix is not None and not matrix.failed
    print(matrix.render_compact())
    # Each cell: upload, download, list, delete; own then other.
    rows = {line.split()[0]: line.split()[1:] for line in matrix.render_compact().splitlines()[1:5]}
    everything, nothing, read_only = "✓" * 8, "✗" * 8, "✗✗✓✓✓✓✗✗"
    own_only = "✓✗✓✗✓✗✓✗"
    # anon, A, B, P, member, admin, service
    assert rows["avatars"] == [nothing, own_only, own_only, own_only, nothing, nothing, everything]
    assert rows["project-files"] == [nothing, own_only, own_only, own_only, own_only, own_only, everything]
    assert rows["site-assets"] == [read_only] * 6 + [everything]
    assert rows["exports"] == [nothing] * 6 + [everything]
    with psycopg.connect(app.dsn) as conn:
        assert conn.execute("select count(*) from storage.objects").fetchone() == (0,), "the fixture is gone"


def test_the_policies_read_the_first_folder_as_storage_foldername(fresh_db: str) -> None:
    """The policies find an object's first folder without calling storage.foldername (it costs every
    statement a parse and every row two string_to_array): on awkward paths both admit the same rows."""
    names = ["u/x.png", "u", "u/", "/u/x", "u//x", "u/../v/x", "../u/x", "", "u/v/w", "uu/x", "u/x/", "u\\x", "%/x"]
    folders = ["u", "", "uu", "..", "%", None]
    ours = render.first_folder_matches(sql.SQL("= %(folder)s"))
    with psycopg.connect(fresh_db) as conn:
        for name in names:
            for folder in folders:
                row = conn.execute(
                    sql.SQL(
                        "select coalesce({}, false), coalesce((storage.foldername(name))[1] = %(folder)s, false)"
                        " from (select %(name)s::text as name) as o"
                    ).format(ours),
                    {"name": name, "folder": folder},
                ).fetchone()
                assert row is not None and row[0] == row[1], (name, folder, row)
