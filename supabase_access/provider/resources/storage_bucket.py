"""StorageBucket: one bucket's row in storage.buckets and its policies on storage.objects."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import psycopg
from psycopg.rows import class_row

from supabase_access.model.buckets import BUCKET_ID, MAX_FILE_SIZE, MIME_TYPE, OWNER_ACCESS
from supabase_access.model.policy import PolicySpec, policy_from_stored
from supabase_access.provider import caller_function, specs
from supabase_access.provider.base import CURRENT_STACK, DatabaseResource, InputError, Log, Notice, not_importable
from supabase_access.provider.resources.table_policies import declaration_digest, plain_policies
from supabase_access.provider.specs import BucketSettings
from supabase_access.provider.specs import StorageBucketInputs as Inputs
from supabase_access.provider.specs import StorageBucketState as State
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from supabase_access.sql.errors import PolicyRejectedError
from supabase_access.sql.foreign_policies import (
    ForeignPolicies,
    ProbeRow,
    dropped_lines,
    foreign_widenings,
    probe_personas,
    user_id,
)
from supabase_access.sql.transaction import lock_tables, write_transaction

SCHEMA = render.STORAGE_SCHEMA
OBJECTS = "objects"
# What the Storage API's statements do to an object, as a finding says it.
STORAGE_VERBS = {"select": "download or list", "insert": "upload", "update": "overwrite or move", "delete": "delete"}


@dataclass(frozen=True)
class BucketRow:
    """A bucket's row as the resource manages it (and as `adopted` keeps it)."""

    name: str
    public: bool
    file_size_limit: int | None
    allowed_mime_types: list[str] | None

    def settings(self) -> BucketSettings:
        return BucketSettings(
            name=self.name,
            public=self.public,
            file_size_limit=self.file_size_limit,
            allowed_mime_types=None if self.allowed_mime_types is None else tuple(self.allowed_mime_types),
        )


class StorageBucket(DatabaseResource[Inputs, State]):
    """The bucket row (public, fileSizeLimit, allowedMimeTypes) and the policies its kind gives, in one
    transaction, so a request never sees the bucket half changed.

    Only the policies named after the bucket (`avatars: select`, ...) are this resource's; others on
    storage.objects are left alone. A bucket row or a policy of those names found at the first `up`
    is taken over: destroy puts it back as it was. A bucket the stack created is deleted by destroy
    only once it holds no object (files are data: never deleted here).
    """

    spec = specs.STORAGE_BUCKET

    def normalize(self, inputs: Inputs) -> Inputs:
        if not BUCKET_ID.match(inputs.bucket_id):
            raise InputError(
                "bucketId", f"bucketId: {inputs.bucket_id!r} is not a bucket id (lower-case letters, digits, - and _)"
            )
        if inputs.access not in render.BUCKET_ACCESS:
            raise InputError("access", f"access: {inputs.access!r} is not one of {', '.join(render.BUCKET_ACCESS)}")
        group_function = inputs.group_function or None
        if (inputs.access == "member") != (group_function is not None):
            raise InputError("groupFunction", "groupFunction: give it for a member bucket, and only for one")
        if group_function is not None and (
            group_function.count(".") != 1 or not all(part.isidentifier() for part in group_function.split("."))
        ):
            raise InputError("groupFunction", f"groupFunction: expected schema.name, got {group_function!r}")
        caller = inputs.caller_function or None
        if caller is not None:
            if inputs.access not in OWNER_ACCESS:
                raise InputError(
                    "callerFunction", f"callerFunction: give it for an {' or '.join(OWNER_ACCESS)} bucket only"
                )
            caller = ".".join(caller_function.parse(caller))
        limit = inputs.file_size_limit
        if limit is not None and not 0 < limit <= MAX_FILE_SIZE:
            raise InputError("fileSizeLimit", f"fileSizeLimit: expected a number of bytes (1 to {MAX_FILE_SIZE})")
        types = inputs.allowed_mime_types
        if types is not None and not all(MIME_TYPE.match(t) for t in types):
            raise InputError("allowedMimeTypes", "allowedMimeTypes: expected MIME types such as image/png or image/*")
        return replace(inputs, group_function=group_function, caller_function=caller)

    def validate(self, db: Database, olds: Inputs | None, checked: Inputs) -> None:
        with db.connection() as conn:
            if catalog.missing_tables(conn, SCHEMA, ["buckets", OBJECTS]):
                raise InputError(
                    "bucketId", "bucketId: this database has no storage.buckets and storage.objects (is Storage on?)"
                )
            if checked.caller_function is not None:
                caller_function.check(conn, checked.caller_function)

    def diff_live(self, db: Database, state: State, inputs: Inputs) -> dict[str, str]:
        with db.connection() as conn:
            row = _read_row(conn, inputs.bucket_id)
            live = _ours(catalog.read_policies(conn, SCHEMA, OBJECTS), _names(inputs.bucket_id))
            foreign = _foreign_widenings(conn, inputs.bucket_id)
            desired = _desired(conn, state, inputs)
            caller_as_made = inputs.caller_function is None or caller_function.is_as_made(conn, inputs.caller_function)
        if row is None:
            return {"bucketId": "update"}
        changes = {
            name: "update"
            for name, live_value, wanted in (
                ("public", row.public, inputs.public),
                ("fileSizeLimit", row.file_size_limit, inputs.file_size_limit),
                ("allowedMimeTypes", row.allowed_mime_types, _listed(inputs.allowed_mime_types)),
            )
            if live_value != wanted
        }
        if state.access != inputs.access:
            changes["access"] = "update"
        elif state.group_function != inputs.group_function:
            changes["groupFunction"] = "update"
        elif live != desired or foreign.widening:
            changes["policies"] = "update"
        if state.caller_function != inputs.caller_function or not caller_as_made:
            # A stack made before the function: its policies are made again, calling it (one transaction).
            changes["callerFunction"] = "update"
        return changes

    def _apply(self, db: Database, inputs: Inputs, state: State | None, log: Log) -> State:
        bucket, names = inputs.bucket_id, _names(inputs.bucket_id)
        values = (inputs.public, inputs.file_size_limit, _listed(inputs.allowed_mime_types))
        with write_transaction(db) as conn:
            lock_tables(conn, SCHEMA, [OBJECTS])
            row = _read_row(conn, bucket)
            adopted: BucketSettings | None
            if state is None:
                adopted = None if row is None else row.settings()
                existing = catalog.read_policies(conn, SCHEMA, OBJECTS)
                adopted_policies = {name: existing[name].to_plain() for name in names if name in existing}
            else:
                adopted, adopted_policies = state.adopted, dict(state.adopted_policies or {})
            if row is None:
                conn.execute(render.insert_bucket(), (bucket, bucket, *values))
            else:
                conn.execute(render.update_bucket(), (bucket, *values, bucket, bucket, *values))
            if inputs.caller_function is not None:
                caller_function.install(conn, inputs.caller_function)
            policies = _rendered(inputs)
            _replace_policies(conn, names, policies, marker=render.stack_marker(CURRENT_STACK.get()))
            previous_caller = None if state is None else state.caller_function
            if previous_caller is not None and previous_caller != inputs.caller_function:
                caller_function.drop_if_unused(conn, previous_caller)
            # Policies made by hand that open this bucket's objects wider than its kind: taken back in this
            # same transaction (as TablePolicies drops an undeclared policy); found at the first `up`, they
            # are taken over and put back by destroy.
            foreign = _foreign_widenings(conn, bucket)
            for name in foreign.widening:
                conn.execute(render.drop_policy(SCHEMA, OBJECTS, name))
            if state is None:
                adopted_policies |= {name: p.to_plain() for name, p in foreign.policies.items()}
            live = _ours(catalog.read_policies(conn, SCHEMA, OBJECTS), names)
        _log_foreign(log, bucket, foreign, taken_over=state is None)
        return State.taking(
            inputs,
            adopted=adopted,
            adopted_policies=adopted_policies,
            policies=live,
            rendered_digest=_digest(policies),
            normalized=None,
        )

    def on_create(self, db: Database, inputs: Inputs, log: Log) -> tuple[str, State]:
        state = self._apply(db, inputs, None, log)
        if state.adopted is not None:
            log(Notice(f"bucket {inputs.bucket_id} existed: taken over, destroy puts its settings back"))
        return inputs.bucket_id, state

    def on_update(self, db: Database, state: State, inputs: Inputs, log: Log) -> State:
        return self._apply(db, inputs, state, log)

    def on_delete(self, db: Database, state: State, log: Log) -> None:
        bucket, adopted = state.bucket_id, state.adopted
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
            existing = catalog.read_policies(conn, SCHEMA, OBJECTS)
            names = _names(bucket)
            taken = [
                policy_from_stored(name, plain)
                for name, plain in (state.adopted_policies or {}).items()
                if name in names or name not in existing  # one made again by hand since is left as it is
            ]
            _replace_policies(conn, names, taken, marker=None)
            if state.caller_function is not None:
                caller_function.drop_if_unused(conn, state.caller_function)
            if row is None:
                return
            if adopted is None:
                allow, delete = render.delete_empty_bucket()
                conn.execute(allow)
                conn.execute(delete, (bucket, bucket))
            else:
                name = adopted.name or bucket
                values = (adopted.public, adopted.file_size_limit, _listed(adopted.allowed_mime_types))
                conn.execute(render.update_bucket(), (name, *values, bucket, name, *values))

    def on_read(
        self, db: Database, resource_id: str, state: State | None, inputs: Inputs | None
    ) -> tuple[State, Inputs] | None:
        if state is None or inputs is None:
            raise not_importable("a StorageBucket", "its access kind is the model's, not the database's")
        with db.connection() as conn:
            row = _read_row(conn, resource_id)
            live = _ours(catalog.read_policies(conn, SCHEMA, OBJECTS), _names(resource_id))
            # A policy made by hand that widens the bucket reads back among its own: drift the diff shows.
            live |= {name: p.to_plain() for name, p in _foreign_widenings(conn, resource_id).policies.items()}
        if row is None:
            return None
        current = replace(
            inputs,
            public=row.public,
            file_size_limit=row.file_size_limit,
            allowed_mime_types=None if row.allowed_mime_types is None else tuple(row.allowed_mime_types),
        )
        # What the last apply left, before the drift, unless recorded already (as TablePolicies keeps it).
        normalized = state.normalized if state.normalized is not None or state.policies == live else state.policies
        found = State.taking(
            current,
            adopted=state.adopted,
            adopted_policies=state.adopted_policies,
            policies=live,
            rendered_digest=state.rendered_digest,
            normalized=normalized,
        )
        return found, current


def _rendered(inputs: Inputs) -> tuple[PolicySpec, ...]:
    """The policies this code renders for a bucket's inputs: what `up` makes."""
    return render.bucket_policies(
        inputs.bucket_id,
        inputs.access,
        inputs.group_function,
        public=inputs.public,
        caller_function=inputs.caller_function,
    )


def _digest(policies: Iterable[PolicySpec]) -> str:
    return declaration_digest({p.name: p.to_plain() for p in policies})


def _desired(conn: psycopg.Connection, state: State, inputs: Inputs) -> dict[str, Any] | None:
    """The bucket's policies as PostgreSQL stores what this code renders for `inputs`, as TablePolicies
    finds its desired set: the last apply's when it rendered the same, or when the inputs changed (their
    update makes the policies again anyway); otherwise (a stack made by a supabase-access that rendered
    them otherwise, or a state from before `renderedDigest`) PostgreSQL parses today's rendering on a
    scratch copy of storage.objects (no lock on it). None: PostgreSQL refused it (a group function
    dropped by hand): the update makes the policies again, and names the error if it remains."""
    rendered = _rendered(inputs)
    applied = dict((state.normalized if state.normalized is not None else state.policies) or {})
    if state.rendered_digest == _digest(rendered) or _rendered(state) != rendered:
        return applied
    try:
        return plain_policies(catalog.normalize_policies(conn, SCHEMA, OBJECTS, {p.name: p for p in rendered}))
    except PolicyRejectedError:
        return None


def _foreign_widenings(conn: psycopg.Connection, bucket: str) -> ForeignPolicies:
    """Policies on storage.objects no stack marks that let a persona reach an object of `bucket` the bucket's
    kind does not: probed on objects of user A, of user B and in a folder nobody owns (a group's)."""
    personas = probe_personas()
    a, b = user_id(personas, "user A"), user_id(personas, "user B")
    rows = [
        ProbeRow(
            f"an object of {label} in bucket {bucket}",
            # path_tokens: Storage's generated column (string_to_array(name, '/')), which policies may read.
            {"bucket_id": bucket, "name": f"{owner}/probe.txt", "path_tokens": [owner, "probe.txt"], **who},
        )
        for label, owner, who in (
            ("user A", a, {"owner": a, "owner_id": a}),
            ("user B", b, {"owner": b, "owner_id": b}),
            ("nobody (a group's folder)", str(uuid.uuid4()), {}),
        )
    ]
    return foreign_widenings(conn, SCHEMA, OBJECTS, personas, rows, STORAGE_VERBS)


def _log_foreign(log: Log, bucket: str, foreign: ForeignPolicies, *, taken_over: bool) -> None:
    for line in dropped_lines("storage.objects", f"bucket {bucket}", foreign, taken_over=taken_over):
        log(Notice(line))
    if foreign.unprobed:
        log(foreign.unprobed)


def _names(bucket: str) -> tuple[str, ...]:
    return tuple(render.bucket_policy_name(bucket, command) for command in render.STORAGE_COMMANDS)


def _listed(types: tuple[str, ...] | None) -> list[str] | None:
    return None if types is None else list(types)


def _read_row(conn: psycopg.Connection, bucket: str) -> BucketRow | None:
    with conn.cursor(row_factory=class_row(BucketRow)) as cur:
        return cur.execute(render.read_bucket(), (bucket,)).fetchone()


def _ours(policies: Mapping[str, PolicySpec], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: policies[name].to_plain() for name in names if name in policies}


def _replace_policies(
    conn: psycopg.Connection, names: tuple[str, ...], policies: Iterable[PolicySpec], *, marker: str | None
) -> None:
    """Drop this bucket's policies and create `policies`, inside the caller's transaction (the switch is
    atomic: no request sees a state outside old ∪ new); `marker`: the stack's comment on each."""
    existing = catalog.read_policies(conn, SCHEMA, OBJECTS)
    for name in names:
        if name in existing:
            conn.execute(render.drop_policy(SCHEMA, OBJECTS, name))
    for policy in policies:
        conn.execute(render.create_policy(SCHEMA, OBJECTS, policy))
        if marker is not None:
            conn.execute(render.mark_policy(SCHEMA, OBJECTS, policy.name, marker))
