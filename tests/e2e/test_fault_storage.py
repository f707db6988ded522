"""`kill -9` of the CLI and every process below it while a prod stack's buckets change kind (avatars: owner
folder -> Storage's owner_id; exports: serviceOnly -> publicRead) and the provider waits for the
storage.objects lock, with a prober acting as the Storage API beside it: no sample, before, during the kill,
or through `scripts/recover`, sees access outside old ∪ new; nothing is half-applied; the next `up`
converges, and destroy gives back the catalog exactly."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import psycopg
import pytest
from pulumi import automation as auto

from review.postgrest import Persona, as_persona, connect_as_authenticator
from tests.e2e.test_e2e_storage import BUCKETS, stack_config
from tests.support.engine import changes, new_stack
from tests.support.fault import (
    Prober,
    catalog_snapshot,
    kill_up_waiting_on,
    recover,
    wider,
)
from tests.support.storage import StorageCaller, add_user, bucket_catalog, put_object
from tests.support.teams_app import load_teams_app

pytestmark = [pytest.mark.e2e, pytest.mark.fault]

Probe = dict[str, int]
CHANGED: dict[str, object] = {
    **BUCKETS,
    "avatars": {"owner": "ownerId", "fileSizeLimit": 1048576, "allowedMimeTypes": ["image/*"]},
    "exports": {"publicRead": True},
}
PROBED = ("avatars", "exports", "project-files")


def with_buckets(buckets: dict[str, object]) -> dict[str, str]:
    config = stack_config("prod")
    model = json.loads(config["supabase-access:model"])
    return {**config, "supabase-access:model": json.dumps({**model, "buckets": buckets})}


def probe(dsn: str, users: dict[str, uuid.UUID]) -> Probe:
    """Per persona and bucket: objects a list sees, objects an update and a delete touch, and 1 where an
    upload into the persona's own folder and into another user's goes through (each request rolled back)."""
    personas = {name: Persona.signed_in(user, is_anonymous=False) for name, user in users.items()}
    personas["anon"] = Persona.anon()
    found: Probe = {}
    with connect_as_authenticator(dsn) as conn:
        for who, persona in personas.items():
            caller = StorageCaller(conn, persona)
            mine = users.get(who, uuid.uuid4())
            theirs = users["bob"] if who != "bob" else users["alice"]
            for bucket in PROBED:
                found[f"{who} list {bucket}"] = len(caller.listed(bucket))
                found[f"{who} upload own folder {bucket}"] = int(caller.may_upload(bucket, f"{mine}/probe.png"))
                found[f"{who} upload other folder {bucket}"] = int(caller.may_upload(bucket, f"{theirs}/probe.png"))
                for verb, statement in (
                    ("update", "update storage.objects set name = name where bucket_id = %s"),
                    ("delete", "delete from storage.objects where bucket_id = %s"),
                ):
                    with as_persona(conn, persona) as cur:
                        cur.execute("select set_config('storage.allow_delete_query', 'true', true)")
                        cur.execute(statement, (bucket,))  # type: ignore[arg-type]
                        found[f"{who} {verb} {bucket}"] = cur.rowcount
    return found


def test_a_bucket_change_killed_while_waiting_never_opens_more_than_old_or_new(tmp_path: Path, fresh_db: str) -> None:
    load_teams_app(fresh_db)
    before = catalog_snapshot(fresh_db), bucket_catalog(fresh_db)
    stack = new_stack(tmp_path / "prod", "prod", fresh_db, with_buckets(BUCKETS))
    stack.up()
    users = {name: add_user(fresh_db) for name in ("alice", "bob", "carol")}
    # Where folder and owner_id disagree the two kinds differ: alice's folder holds an object bob uploaded.
    put_object(fresh_db, "avatars", f"{users['alice']}/swap.png", users["bob"])
    put_object(fresh_db, "avatars", f"{users['bob']}/me.png", users["bob"])
    put_object(fresh_db, "exports", "dump.csv")
    old = probe(fresh_db, users)
    stack.set_all_config({k: auto.ConfigValue(v) for k, v in with_buckets(CHANGED).items()})
    with Prober(lambda: probe(fresh_db, users)) as prober:
        kill_up_waiting_on(tmp_path / "prod", fresh_db, "storage.objects", tree=True, wait_seconds=120)
        assert probe(fresh_db, users) == old, "nothing half-applied"
        recover(stack)
    new = probe(fresh_db, users)
    assert new["alice list avatars"] == 0 and new["bob list avatars"] == 2 and new["anon list exports"] == 1
    assert old["alice list avatars"] == 1 and old["anon list exports"] == 0
    assert prober.samples, "the prober took no sample"
    violations = [w for sample in prober.samples if (w := wider(sample, old, new))]
    assert violations == [], f"{len(violations)} of {len(prober.samples)} samples saw wider access: {violations[:3]}"
    print(f"bucket kinds changed through a kill: {len(prober.samples)} samples, none outside old ∪ new")
    assert changes(stack.preview().change_summary) == {}
    with psycopg.connect(fresh_db) as conn:
        conn.execute("set storage.allow_delete_query = 'true'")
        conn.execute("delete from storage.objects")
    stack.destroy()
    assert (catalog_snapshot(fresh_db), bucket_catalog(fresh_db)) == before
