"""StorageBucket: one bucket's row in storage.buckets and its policies on storage.objects."""

from __future__ import annotations

from typing import Any

import psycopg

from supabase_access.model.buckets import BUCKET_ID, MAX_FILE_SIZE, MIME_TYPE
from supabase_access.model.policy import PolicySpec
from supabase_access.provider import specs
from supabase_access.provider.base import CURRENT_STACK, InputError, Log, Notice, PlainDatabaseResource
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from supabase_access.sql.transaction import lock_tables, write_transaction

SCHEMA = render.STORAGE_SCHEMA
OBJECTS = "objects"


class StorageBucket(PlainDatabaseResource):
    """The bucket row (public, fileSizeLimit, allowedMimeTypes) and the policies its kind gives, in one
    transaction, so a request never sees the bucket half changed.

    Only the policies named after the bucket (`avatars: select`, ...) are this resource's; others on
    storage.objects are left alone. A bucket row or a policy of those names found at the first `up`
    is taken over: destroy puts it back as it was. A bucket the stack created is deleted by destroy
    only once it holds no object (files are data: never deleted here).
    """

    spec = specs.STORAGE_BUCKET

    def normalize(self, inputs: dict[str, Any]) -> dict[str, Any]:
        bucket = inputs.get("bucketId")
        if not isinstance(bucket, str) or not BUCKET_ID.match(bucket):
            raise InputError(
                "bucketId", f"bucketId: {bucket!r} is not a bucket id (lower-case letters, digits, - and _)"
            )
        access = inputs.get("access")
        if access not in render.BUCKET_ACCESS:
            raise InputError("access", f"access: {access!r} is not one of {', '.join(render.BUCKET_ACCESS)}")
        group_function = inputs.get("groupFunction") or None
        if (access == "member") != (group_function is not None):
            raise InputError("groupFunction", "groupFunction: give it for a member bucket, and only for one")
        if group_function is not None and (
            group_function.count(".") != 1 or not all(part.isidentifier() for part in group_function.split("."))
        ):
            raise InputError("groupFunction", f"groupFunction: expected schema.name, got {group_function!r}")
        limit = inputs.get("fileSizeLimit")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit <= 0):
            raise InputError("fileSizeLimit", "fileSizeLimit: expected a number of bytes")
        if limit is not None and limit > MAX_FILE_SIZE:
            raise InputError("fileSizeLimit", f"fileSizeLimit: at most {MAX_FILE_SIZE} bytes")
        types = inputs.get("allowedMimeTypes")
        if types is not None and not all(isinstance(t, str) and MIME_TYPE.match(t) for t in types):
            raise InputError("allowedMimeTypes", "allowedMimeTypes: expected MIME types such as image/png or image/*")
        return {
            "bucketId": bucket,
            "access": access,
            **({"groupFunction": group_function} if group_function else {}),
            "public": bool(inputs.get("public", False)),
            **({"fileSizeLimit": int(limit)} if limit is not None else {}),
            **({"allowedMimeTypes": list(types)} if types is not None else {}),
        }

    def validate(self, db: Database, olds: dict[str, Any], checked: dict[str, Any]) -> None:
        with db.connection() as conn:
            if catalog.missing_tables(conn, SCHEMA, ["buckets", OBJECTS]):
                raise InputError(
                    "bucketId", "bucketId: this database has no storage.buckets and storage.objects (is Storage on?)"
                )

    def _desired_policies(self, inputs: dict[str, Any]) -> dict[str, PolicySpec]:
        found = render.bucket_policies(inputs["bucketId"], inputs["access"], inputs.get("groupFunction"))
        return {p.name: p for p in found}

    def _names(self, bucket: str) -> tuple[str, ...]:
        return tuple(render.bucket_policy_name(bucket, command) for command in render.STORAGE_COMMANDS)

    def diff_live(self, db: Database, state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, str]:
        bucket = inputs["bucketId"]
        changes: dict[str, str] = {}
        with db.connection() as conn:
            row = _read_row(conn, bucket)
            live = _ours(catalog.read_policies(conn, SCHEMA, OBJECTS), self._names(bucket))
        if row is None:
            return {"bucketId": "update"}
        for key, value in _settings(inputs).items():
            if row.get(key) != value:
                changes[key] = "update"
        if state.get("access") != inputs["access"] or state.get("groupFunction") != inputs.get("groupFunction"):
            changes["access"] = "update"
        elif live != state.get("policies"):
            changes["policies"] = "update"
        return changes

    def _apply(self, db: Database, inputs: dict[str, Any], state: dict[str, Any] | None) -> dict[str, Any]:
        bucket = inputs["bucketId"]
        names = self._names(bucket)
        settings = _settings(inputs)
        with write_transaction(db) as conn:
            lock_tables(conn, SCHEMA, [OBJECTS])
            row = _read_row(conn, bucket)
            if state is None:
                adopted = row
                existing = catalog.read_policies(conn, SCHEMA, OBJECTS)
                adopted_policies = {name: existing[name].to_plain() for name in names if name in existing}
            else:
                adopted, adopted_policies = state.get("adopted"), state.get("adoptedPolicies") or {}
            values = (settings["public"], settings["fileSizeLimit"], settings["allowedMimeTypes"])
            if row is None:
                conn.execute(render.insert_bucket(), (bucket, bucket, *values))
            else:
                conn.execute(render.update_bucket(), (bucket, *values, bucket, bucket, *values))
            _replace_policies(conn, names, self._desired_policies(inputs).values(), stack_marked=True)
            live = _ours(catalog.read_policies(conn, SCHEMA, OBJECTS), names)
        return {**inputs, "adopted": adopted, "adoptedPolicies": adopted_policies, "policies": live}

    def create(self, db: Database, inputs: dict[str, Any], log: Log) -> tuple[str, dict[str, Any]]:
        state = self._apply(db, inputs, None)
        if state["adopted"] is not None:
            log(Notice(f"bucket {inputs['bucketId']} existed: taken over, destroy puts its settings back"))
        return inputs["bucketId"], state

    def update(self, db: Database, state: dict[str, Any], inputs: dict[str, Any], log: Log) -> dict[str, Any]:
        return self._apply(db, inputs, state)

    def delete(self, db: Database, state: dict[str, Any], log: Log) -> None:
        bucket = state["bucketId"]
        adopted = state.get("adopted")
        with write_transaction(db) as conn:
            lock_tables(conn, SCHEMA, [OBJECTS])
            row = _read_row(conn, bucket)
            if adopted is None and row is not None:
                conn.execute(render.lock_bucket(), (bucket,))
                (count,) = conn.execute(render.count_bucket_objects(), (bucket,)).fetchone() or (0,)
                if count:
                    raise InputError(
                        "bucketId",
                        f"bucket {bucket} holds {count} objects and supabase-access never deletes files: empty it "
                        "through the Storage API (or the dashboard) and run destroy again, or keep the bucket and "
                        f"forget it with `pulumi state delete` on its StorageBucket ({bucket})",
                    )
            adopted_policies = [
                _policy_from_plain(name, plain) for name, plain in (state.get("adoptedPolicies") or {}).items()
            ]
            _replace_policies(conn, self._names(bucket), adopted_policies, stack_marked=False)
            if row is None:
                return
            if adopted is None:
                allow, delete = render.delete_empty_bucket()
                conn.execute(allow)
                conn.execute(delete, (bucket, bucket))
            else:
                values = (adopted["public"], adopted["fileSizeLimit"], adopted["allowedMimeTypes"])
                conn.execute(render.update_bucket(), (adopted["name"], *values, bucket, adopted["name"], *values))

    def read(
        self, db: Database, resource_id: str, state: dict[str, Any], inputs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        with db.connection() as conn:
            row = _read_row(conn, resource_id)
            live = _ours(catalog.read_policies(conn, SCHEMA, OBJECTS), self._names(resource_id))
        if row is None:
            return None
        if not state:
            raise InputError("id", "a StorageBucket cannot be imported by its id: its access kind is the model's")
        current = {
            **inputs,
            "public": row["public"],
            **({"fileSizeLimit": row["fileSizeLimit"]} if row["fileSizeLimit"] is not None else {}),
            **({"allowedMimeTypes": row["allowedMimeTypes"]} if row["allowedMimeTypes"] is not None else {}),
        }
        if row["fileSizeLimit"] is None:
            current.pop("fileSizeLimit", None)
        if row["allowedMimeTypes"] is None:
            current.pop("allowedMimeTypes", None)
        return {**state, **current, "policies": live}, current


def _settings(inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "public": inputs.get("public", False),
        "fileSizeLimit": inputs.get("fileSizeLimit"),
        "allowedMimeTypes": inputs.get("allowedMimeTypes"),
    }


def _read_row(conn: psycopg.Connection, bucket: str) -> dict[str, Any] | None:
    row = conn.execute(render.read_bucket(), (bucket,)).fetchone()
    if row is None:
        return None
    name, public, limit, types = row
    return {
        "name": name,
        "public": bool(public),
        "fileSizeLimit": limit,
        "allowedMimeTypes": None if types is None else list(types),
    }


def _ours(policies: dict[str, PolicySpec], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: policies[name].to_plain() for name in names if name in policies}


def _policy_from_plain(name: str, plain: dict[str, Any]) -> PolicySpec:
    return PolicySpec(
        name=name,
        command=plain["command"],
        roles=tuple(plain["roles"]),
        permissive=plain["permissive"],
        using=plain.get("using"),
        with_check=plain.get("withCheck"),
    )


def _replace_policies(conn: psycopg.Connection, names: tuple[str, ...], policies: Any, *, stack_marked: bool) -> None:
    """Drop this bucket's policies and create `policies`, inside the caller's transaction (the switch is
    atomic: no request sees a state outside old ∪ new)."""
    existing = catalog.read_policies(conn, SCHEMA, OBJECTS)
    for name in names:
        if name in existing:
            conn.execute(render.drop_policy(SCHEMA, OBJECTS, name))
    for policy in policies:
        conn.execute(render.create_policy(SCHEMA, OBJECTS, policy))
        if stack_marked:
            conn.execute(render.mark_policy(SCHEMA, OBJECTS, policy.name, render.stack_marker(CURRENT_STACK.get())))
