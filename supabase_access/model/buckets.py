"""Storage buckets of the model (`buckets:`): each bucket's settings and who owns its objects.

A bucket's objects are owned with the kinds the tables have, read from the object's path:
- `owner: folder`: the first folder of the path is the user's id (`<uid>/avatar.png`);
  `owner: ownerId`: Storage's `owner_id` (the uploader) is the user;
- `member: {group: projects}`: the first folder is the id of a group row the user belongs to;
- `publicRead: true`: everyone reads, anon included; only the server writes;
- `serviceOnly: true`: the server alone.
Pure data and validation: no Pulumi, no database.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from supabase_access.model.helper_schema import HELPER_SCHEMA
from supabase_access.model.suggest import unknown_keys_message

# Storage's bucket ids are free text; the model keeps to names that read well in a path, a policy
# name and a URL (no `/`, no `..`, no quotes).
BUCKET_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,54}$")
OWNER_SOURCES = ("folder", "ownerId")
KIND_KEYS = ("owner", "member", "publicRead", "serviceOnly")
SETTING_KEYS = ("public", "fileSizeLimit", "allowedMimeTypes")
BUCKET_KEYS = (*KIND_KEYS, *SETTING_KEYS)
MIME_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/(\*|[a-z0-9][a-z0-9!#$&^_.+-]*)$")
# Storage's own ceiling is the project's; this only refuses nonsense.
MAX_FILE_SIZE = 500 * 1024**3
KINDS_HINT = "'owner: folder', 'owner: ownerId', 'member: {group: <table>}', 'publicRead: true' or 'serviceOnly: true'"


class BucketError(ValueError):
    """Bad bucket input; the message names the setting that holds it."""


@dataclass(frozen=True)
class Bucket:
    id: str
    # One of "owner", "member", "publicRead", "serviceOnly"; None: no kind given (prod refuses it).
    kind: str | None = None
    # `owner`: where the user's id is ("folder" or "ownerId"); `member`: the group table.
    owner_source: str | None = None
    group: str | None = None
    public: bool = False
    file_size_limit: int | None = None
    allowed_mime_types: tuple[str, ...] | None = None

    @property
    def kind_line(self) -> str:
        """The model line that gives this bucket a kind (the one the preflight asks for)."""
        return f"{self.id}: {{owner: folder}}"


def parse_buckets(raw: object, setting: str) -> tuple[Bucket, ...]:
    """`buckets: {avatars: {owner: folder, fileSizeLimit: 1048576}, ...}`."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise BucketError(f"{setting}: expected a mapping of bucket id to its kind and settings")
    return tuple(_parse_bucket(key, spec, f"{setting}.{key}") for key, spec in raw.items())


def _parse_bucket(key: object, spec: object, setting: str) -> Bucket:
    if not isinstance(key, str) or not BUCKET_ID.match(key):
        raise BucketError(
            f"{setting}: {key!r} is not a bucket id this model takes (lower-case letters, digits, '-' and '_', "
            "at most 55 characters, starting with a letter or digit)"
        )
    spec = {} if spec is None else spec
    if not isinstance(spec, Mapping):
        raise BucketError(f"{setting}: expected one of {KINDS_HINT}, with public, fileSizeLimit, allowedMimeTypes")
    unknown = [k for k in spec if k not in BUCKET_KEYS]
    if unknown:
        raise BucketError(unknown_keys_message(setting, unknown, BUCKET_KEYS))
    kinds = [k for k in KIND_KEYS if k in spec and spec[k] is not False]
    if len(kinds) > 1:
        raise BucketError(f"{setting}: give one kind, not {' and '.join(kinds)}")
    bucket = Bucket(id=key, **_settings(spec, setting))
    if not kinds:
        return bucket
    kind = kinds[0]
    value = spec[kind]
    if kind == "owner":
        if value not in OWNER_SOURCES:
            raise BucketError(
                f"{setting}.owner: expected 'folder' (the path's first folder is the user's id) or 'ownerId' "
                f"(Storage's owner_id), got {value!r}"
            )
        return replace(bucket, kind=kind, owner_source=value)
    if kind == "member":
        if not isinstance(value, Mapping) or set(value) != {"group"} or not isinstance(value["group"], str):
            raise BucketError(
                f"{setting}.member: expected {{group: <group table>}} (the path's first folder is a group's id)"
            )
        return replace(bucket, kind=kind, group=value["group"])
    if value is not True:
        raise BucketError(f"{setting}.{kind}: expected true")
    return replace(bucket, kind=kind)


def _settings(spec: Mapping[str, Any], setting: str) -> dict[str, Any]:
    """The bucket row's settings in `spec` (public, fileSizeLimit, allowedMimeTypes), as Bucket's fields."""
    found: dict[str, Any] = {}
    if "public" in spec:
        if not isinstance(spec["public"], bool):
            raise BucketError(f"{setting}.public: expected true or false")
        found["public"] = spec["public"]
    if "fileSizeLimit" in spec:
        limit = spec["fileSizeLimit"]
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= MAX_FILE_SIZE
        ):
            raise BucketError(f"{setting}.fileSizeLimit: expected a number of bytes (1 to {MAX_FILE_SIZE}) or null")
        found["file_size_limit"] = limit
    if "allowedMimeTypes" in spec:
        types = spec["allowedMimeTypes"]
        if types is not None and (
            not isinstance(types, list) or not all(isinstance(t, str) and MIME_TYPE.match(t) for t in types)
        ):
            raise BucketError(
                f"{setting}.allowedMimeTypes: expected a list of MIME types (image/png, image/*) or null for any"
            )
        found["allowed_mime_types"] = None if types is None else tuple(dict.fromkeys(types))
    return found


def override_buckets(buckets: tuple[Bucket, ...], raw: object, setting: str) -> tuple[Bucket, ...]:
    """A stack's own public/fileSizeLimit/allowedMimeTypes for buckets of the model (`supabase-access:buckets`)."""
    if raw is None:
        return buckets
    if not isinstance(raw, Mapping):
        raise BucketError(f"{setting}: expected a mapping of bucket id to public, fileSizeLimit, allowedMimeTypes")
    by_id = {b.id: b for b in buckets}
    for key, spec in raw.items():
        where = f"{setting}.{key}"
        if key not in by_id:
            raise BucketError(f"{where}: no bucket {key!r} in the model (known: {', '.join(by_id) or 'none'})")
        if not isinstance(spec, Mapping):
            raise BucketError(f"{where}: expected public, fileSizeLimit, allowedMimeTypes")
        unknown = [k for k in spec if k not in SETTING_KEYS]
        if unknown:
            raise BucketError(unknown_keys_message(where, unknown, SETTING_KEYS))
        by_id[key] = replace(by_id[key], **_settings(spec, where))
    return tuple(by_id[b.id] for b in buckets)


def bucket_to_plain(bucket: Bucket) -> dict[str, Any]:
    """The bucket as parse_buckets reads it."""
    plain: dict[str, Any] = {}
    if bucket.kind == "owner":
        plain["owner"] = bucket.owner_source
    elif bucket.kind == "member":
        plain["member"] = {"group": bucket.group}
    elif bucket.kind is not None:
        plain[bucket.kind] = True
    plain["public"] = bucket.public
    if bucket.file_size_limit is not None:
        plain["fileSizeLimit"] = bucket.file_size_limit
    if bucket.allowed_mime_types is not None:
        plain["allowedMimeTypes"] = list(bucket.allowed_mime_types)
    return plain


# How the provider's StorageBucket names each kind's policies (its `access` input).
ACCESS_OF_KIND = {
    ("owner", "folder"): "owner-folder",
    ("owner", "ownerId"): "owner-id",
    ("member", None): "member",
    ("publicRead", None): "public-read",
    ("serviceOnly", None): "service-only",
}


def bucket_access(bucket: Bucket, profile: str) -> str:
    """What a bucket's objects are open to under a profile: the open profile (dev) opens every bucket of the
    model as the seed guide opens its tables; the owner profile gives its kind (none: the server alone)."""
    if profile == "open":
        return "open"
    if bucket.kind is None:
        return "service-only"
    return ACCESS_OF_KIND[(bucket.kind, bucket.owner_source if bucket.kind == "owner" else None)]


# The owner kinds' policies read the caller's id through a function of ours (StorageBucket makes it), in the
# schema of the group functions: not exposed to the Data API.
OWNER_ACCESS = ("owner-folder", "owner-id")
CALLER_FUNCTION = f"{HELPER_SCHEMA}.auth_uid_text"


def caller_function(access: str) -> str | None:
    """`schema.name` of the function giving a bucket's policies the caller's id, for the kinds that compare it."""
    return CALLER_FUNCTION if access in OWNER_ACCESS else None
