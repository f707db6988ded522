"""The Storage section of the access matrix: what each persona may do with the objects of each bucket
of the model, in a live database, as the Storage API asks it (role and JWT claims set, then its
statements on storage.objects).

Operations: upload (a new object), download (one object by its name), list (the objects under a
folder) and delete (with `storage.allow_delete_query`, as Storage sets it). "own" is the persona's
place in the bucket, "other" another user's, with the table matrix's convention (anon and
service_role: own = user A's, other = user B's; the member and the admin of A's groups: A's and B's).
A place is the path the bucket's kind reads: `<user id>/...` (owner: folder), `<group id>/...`
(member: the user's group of the fixture), or `<user key>/...` with `owner_id` set (owner: ownerId,
public and service-only buckets). The fixture's users, groups and objects are made by the connecting
role (the buckets' owner side) and removed at the end; every probe is rolled back.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import LiteralString

import psycopg
from psycopg import errors
from psycopg.rows import TupleRow

from review.matrix import (
    ALLOWED,
    DENIED,
    FAILED,
    SHORT_LABELS,
    WHOSE,
    ProbePersona,
    create_fixture,
    delete_fixture,
    persona_of,
    personas_for,
)
from review.postgrest import LOCAL_AUTHENTICATOR_PASSWORD, as_persona, connect_as_authenticator
from supabase_access.model.access_model import AccessModel
from supabase_access.model.buckets import Bucket
from supabase_access.sql.fixture_rows import Fixture
from supabase_access.sql.rows import fetch_values

STORAGE_OPERATIONS = ("upload", "download", "list", "delete")
METHODS = {"upload": "POST", "download": "GET", "list": "GET", "delete": "DELETE"}
FIXTURE_FILE = "fixture.txt"


@dataclass(frozen=True)
class StorageCell:
    persona: str
    bucket: str
    operation: str
    whose: str

    def label(self) -> str:
        return f"{self.persona} · bucket {self.bucket} · {self.operation} {self.whose}"


@dataclass(frozen=True)
class StorageMatrix:
    personas: tuple[str, ...]
    buckets: tuple[str, ...]
    allowed: dict[StorageCell, bool]
    failed: dict[StorageCell, str] = field(default_factory=dict)

    def cells(self) -> Iterator[StorageCell]:
        for persona, bucket, operation, whose in itertools.product(
            self.personas, self.buckets, STORAGE_OPERATIONS, WHOSE
        ):
            yield StorageCell(persona, bucket, operation, whose)

    def state(self, cell: StorageCell) -> str:
        if cell in self.failed:
            return "probe failed"
        if cell not in self.allowed:
            return "absent"
        return "allowed" if self.allowed[cell] else "denied"

    def symbol(self, cell: StorageCell) -> str:
        if cell in self.failed:
            return FAILED
        return "?" if cell not in self.allowed else ALLOWED if self.allowed[cell] else DENIED

    def render_compact(self) -> str:
        """One line per bucket, one column per persona; each cell its eight probes (upload own, upload other,
        download own, ...)."""
        personas = [(label, SHORT_LABELS.get(label, label)) for label in self.personas]
        rows = [["bucket", *(short for _, short in personas)]] + [
            [
                bucket,
                *(
                    "".join(
                        self.symbol(StorageCell(label, bucket, op, whose))
                        for op, whose in itertools.product(STORAGE_OPERATIONS, WHOSE)
                    )
                    for label, _ in personas
                ),
            ]
            for bucket in self.buckets
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows]
        legend = f"each cell: upload, download, list, delete, own then other; {ALLOWED} allowed  {DENIED} denied"
        return "\n".join([*lines, legend + (f"  {FAILED} probe failed" if self.failed else "")])

    def render_markdown(self) -> str:
        header = ["persona", "bucket", *(f"{op} {whose}" for op, whose in itertools.product(STORAGE_OPERATIONS, WHOSE))]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for persona in self.personas:
            for bucket in self.buckets:
                symbols = [
                    self.symbol(StorageCell(persona, bucket, op, whose))
                    for op, whose in itertools.product(STORAGE_OPERATIONS, WHOSE)
                ]
                lines.append("| " + " | ".join([persona, bucket, *symbols]) + " |")
        return "\n".join(lines)


def storage_diff(before: StorageMatrix, after: StorageMatrix) -> list[str]:
    """One line per changed cell: 'persona · bucket b · operation whose: allowed → denied'."""
    ordered = list(after.cells()) + [cell for cell in before.cells() if cell not in after.allowed]
    return [
        f"{cell.label()}: {before.state(cell)} → {after.state(cell)}"
        for cell in ordered
        if before.state(cell) != after.state(cell)
    ]


def folder_of(bucket: Bucket, fixture: Fixture, user: str) -> str:
    """The first folder of `user`'s objects in the bucket, as its kind reads the path."""
    if bucket.kind == "owner" and bucket.owner_source == "folder":
        return str(fixture.user_ids[user])
    if bucket.kind == "member" and bucket.group is not None:
        membership = fixture.model.membership_of(bucket.group)
        assert membership is not None and membership.membership is not None
        return str(fixture.rows[(user, bucket.group)][membership.membership.key])
    return user


def _put_fixture_objects(conn: psycopg.Connection[TupleRow], fixture: Fixture, buckets: tuple[Bucket, ...]) -> None:
    with conn.transaction():
        for bucket, user in itertools.product(buckets, ("A", "B", "P")):
            conn.execute(
                "insert into storage.objects (bucket_id, name, owner_id) values (%s, %s, %s)",
                (bucket.id, f"{folder_of(bucket, fixture, user)}/{FIXTURE_FILE}", str(fixture.user_ids[user])),
            )


def _remove_fixture_objects(conn: psycopg.Connection[TupleRow], buckets: tuple[Bucket, ...]) -> None:
    with conn.transaction():
        conn.execute("select set_config('storage.allow_delete_query', 'true', true)")
        conn.execute(
            "delete from storage.objects where bucket_id = any(%s) and name like %s",
            ([b.id for b in buckets], f"%/{FIXTURE_FILE}"),
        )


def _statement(operation: str, folder: str, caller: str | None) -> tuple[LiteralString, tuple[object, ...]]:
    """The Storage API's statement for one operation on the folder (the bucket id goes first)."""
    if operation == "upload":
        return "insert into storage.objects (bucket_id, name, owner_id) values (%s, %s, %s)", (
            folder + "/new-upload.txt",
            caller,
        )
    if operation == "download":
        return "select 1 from storage.objects where bucket_id = %s and name = %s", (folder + "/" + FIXTURE_FILE,)
    if operation == "list":
        return "select name from storage.objects where bucket_id = %s and name like %s", (folder + "/%",)
    return "delete from storage.objects where bucket_id = %s and name = %s", (folder + "/" + FIXTURE_FILE,)


def _probe(
    conn: psycopg.Connection[TupleRow], fixture: Fixture, spec: ProbePersona, buckets: tuple[Bucket, ...]
) -> tuple[dict[StorageCell, bool], dict[StorageCell, str]]:
    allowed: dict[StorageCell, bool] = {}
    failed: dict[StorageCell, str] = {}
    persona = persona_of(spec, fixture)
    caller = (persona.claims or {}).get("sub")
    for operation in STORAGE_OPERATIONS:
        with as_persona(conn, persona, method=METHODS[operation]) as cur:
            cur.execute("select set_config('storage.allow_delete_query', 'true', true)")
            for bucket, whose in itertools.product(buckets, WHOSE):
                cell = StorageCell(spec.label, bucket.id, operation, whose)
                folder = folder_of(bucket, fixture, spec.own if whose == "own" else spec.other)
                statement, params = _statement(operation, folder, caller)
                try:
                    with conn.transaction(force_rollback=True):
                        cur.execute(statement, (bucket.id, *params))
                        affected = len(cur.fetchall()) if cur.description else cur.rowcount
                    allowed[cell] = affected > 0
                except errors.InsufficientPrivilege:
                    allowed[cell] = False
                except psycopg.Error as exc:
                    failed[cell] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return allowed, failed


def compute_storage_matrix(
    dsn: str, model: AccessModel, *, authenticator_password: str = LOCAL_AUTHENTICATOR_PASSWORD
) -> StorageMatrix | None:
    """The Storage section for the model's buckets (None without any). The buckets must exist (a stack made them)."""
    if not model.buckets:
        return None
    specs = personas_for(model)
    allowed: dict[StorageCell, bool] = {}
    failed: dict[StorageCell, str] = {}
    with psycopg.connect(dsn) as admin:
        # A bucket not there (yet: nothing deployed) has no cell: each of its cells reads "absent".
        present = set(
            fetch_values(admin, "select id from storage.buckets where id = any(%s)", ([b.id for b in model.buckets],))
        )
        admin.commit()
        buckets = tuple(b for b in model.buckets if b.id in present)
        fixture = create_fixture(admin, model)
        try:
            _put_fixture_objects(admin, fixture, buckets)
            try:
                with connect_as_authenticator(dsn, authenticator_password) as api:
                    for spec in specs:
                        found, broken = _probe(api, fixture, spec, buckets)
                        allowed |= found
                        failed |= broken
            finally:
                _remove_fixture_objects(admin, buckets)
        finally:
            delete_fixture(admin, fixture)
    return StorageMatrix(tuple(s.label for s in specs), tuple(b.id for b in model.buckets), allowed, failed)
