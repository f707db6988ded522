"""`buckets:` in the model and `supabase-access:buckets` in a stack: kinds, settings, overrides, refusals."""

from pathlib import Path

import pytest

from supabase_access.model.access_model import AccessModel, ModelError, model_to_plain, parse_model
from supabase_access.model.buckets import Bucket
from supabase_access.model.stack_config import ConfigError, bucket_warnings, parse_stack_settings

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
LOCAL = {"host": "127.0.0.1", "port": "54322"}
TEAMS = {
    "projects": {"owner": "owner_id"},
    "project_members": {"membership": {"group": "projects", "column": "project_id", "user": "user_id"}},
}
BUCKETS = {
    "avatars": {"owner": "folder", "fileSizeLimit": 1048576, "allowedMimeTypes": ["image/png", "image/*"]},
    "uploads": {"owner": "ownerId"},
    "project-files": {"member": {"group": "projects"}},
    "site-assets": {"publicRead": True, "public": True},
    "exports": {"serviceOnly": True},
}


def model(buckets: object) -> AccessModel:
    return parse_model({"tables": TEAMS, "buckets": buckets}, setting="m")


def test_each_kind_and_its_settings() -> None:
    parsed = parse_model({"tables": TEAMS, "buckets": BUCKETS}, setting="m")
    assert parsed.buckets == (
        Bucket("avatars", "owner", "folder", None, False, 1048576, ("image/png", "image/*")),
        Bucket("uploads", "owner", "ownerId"),
        Bucket("project-files", "member", None, "projects"),
        Bucket("site-assets", "publicRead", public=True),
        Bucket("exports", "serviceOnly"),
    )
    # The plain form reads back to the same model (what the program hands the provider).
    assert parse_model(model_to_plain(parsed), setting="again").buckets == parsed.buckets


@pytest.mark.parametrize(
    ("buckets", "message"),
    [
        ({"Avatars": {"owner": "folder"}}, "m.buckets.Avatars: 'Avatars' is not a bucket id"),
        ({"a/../b": {"owner": "folder"}}, "is not a bucket id"),
        ({"avatars": {"owner": "uid"}}, "m.buckets.avatars.owner: expected 'folder'"),
        ({"avatars": {"owner": "folder", "publicRead": True}}, "give one kind, not owner and publicRead"),
        ({"avatars": {"member": {"group": "tasks"}}}, "m.buckets.avatars.member.group: 'tasks' is no group"),
        ({"avatars": {"publik": True}}, "m.buckets.avatars.publik: unknown key (did you mean public?)"),
        ({"avatars": {"fileSizeLimit": -1}}, "m.buckets.avatars.fileSizeLimit: expected a number of bytes"),
        ({"avatars": {"fileSizeLimit": True}}, "fileSizeLimit: expected a number of bytes"),
        ({"avatars": {"allowedMimeTypes": ["png"]}}, "allowedMimeTypes: expected a list of MIME types"),
        ({"avatars": {"serviceOnly": "yes"}}, "m.buckets.avatars.serviceOnly: expected true"),
        (["avatars"], "m.buckets: expected a mapping"),
    ],
)
def test_bad_buckets_are_named(buckets: object, message: str) -> None:
    with pytest.raises(ModelError) as info:
        model(buckets)
    assert message in str(info.value)


def stack(environment: str, buckets: object, overrides: object = None):
    access: dict[str, object] = {"environment": environment, "model": {"tables": TEAMS, "buckets": buckets}}
    if overrides is not None:
        access["buckets"] = overrides
    return parse_stack_settings(access, LOCAL, project_dir=REPO)


def test_a_stack_overrides_a_buckets_settings() -> None:
    settings = stack("dev", BUCKETS, {"avatars": {"fileSizeLimit": None, "public": True}})
    avatars = settings.model.buckets[0]
    assert (avatars.public, avatars.file_size_limit, avatars.kind) == (True, None, "owner")
    with pytest.raises(ConfigError, match=r"supabase-access:buckets.videos: no bucket 'videos' in the model"):
        stack("dev", BUCKETS, {"videos": {"public": True}})
    with pytest.raises(ConfigError, match=r"supabase-access:buckets.avatars.owner: unknown key"):
        stack("dev", BUCKETS, {"avatars": {"owner": "ownerId"}})


def test_a_bucket_without_a_kind_is_refused_on_prod_with_the_line_and_warned_on_dev() -> None:
    with pytest.raises(ConfigError) as info:
        stack("prod", {"avatars": {"public": False}})
    assert "buckets avatars say nobody owns their objects" in str(info.value)
    assert "`avatars: {owner: folder}`" in str(info.value)
    (warning,) = bucket_warnings(stack("dev", {"avatars": None}))
    assert "bucket avatars has no kind" in warning and "`avatars: {owner: folder}`" in warning
