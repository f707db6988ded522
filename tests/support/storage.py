"""Acting as the Storage API does on storage.objects: the caller's role and JWT claims set for one
transaction (as PostgREST sets them), then its INSERT (upload), SELECT (download, list), UPDATE (move,
upsert) and DELETE (with storage.allow_delete_query, which Storage sets before its deletes)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import psycopg

from review.postgrest import Persona, as_persona, connect_as_authenticator


class RefusedError(Exception):
    """PostgreSQL refused the statement (a policy's WITH CHECK, or a privilege)."""


@dataclass(frozen=True)
class StorageCaller:
    """One persona on an authenticator connection; each call is one request, rolled back."""

    conn: psycopg.Connection
    persona: Persona

    def upload(self, bucket: str, name: str) -> None:
        with as_persona(self.conn, self.persona) as cur:
            try:
                cur.execute(
                    "insert into storage.objects (bucket_id, name, owner_id) values (%s, %s, %s)",
                    (bucket, name, (self.persona.claims or {}).get("sub")),
                )
            except psycopg.errors.InsufficientPrivilege as exc:
                raise RefusedError(str(exc)) from exc

    def may_upload(self, bucket: str, name: str) -> bool:
        try:
            self.upload(bucket, name)
        except RefusedError:
            return False
        return True

    def listed(self, *buckets: str) -> set[tuple[str, str]]:
        """(bucket, name) of what a list or download request may see, in one request naming the buckets."""
        with as_persona(self.conn, self.persona, method="GET") as cur:
            rows = cur.execute(
                "select bucket_id, name from storage.objects where bucket_id = any(%s)", (list(buckets),)
            ).fetchall()
        return {(str(b), str(n)) for b, n in rows}

    def moved(self, bucket: str, name: str, new_bucket: str, new_name: str) -> int:
        """Rows a move changed (0: not visible); RefusedError when the new place is not the caller's."""
        with as_persona(self.conn, self.persona) as cur:
            try:
                cur.execute(
                    "update storage.objects set bucket_id = %s, name = %s where bucket_id = %s and name = %s",
                    (new_bucket, new_name, bucket, name),
                )
            except psycopg.errors.InsufficientPrivilege as exc:
                raise RefusedError(str(exc)) from exc
            return cur.rowcount

    def deleted(self, bucket: str, name: str) -> int:
        with as_persona(self.conn, self.persona) as cur:
            cur.execute("select set_config('storage.allow_delete_query', 'true', true)")
            cur.execute("delete from storage.objects where bucket_id = %s and name = %s", (bucket, name))
            return cur.rowcount


def owner_access(dsn: str, alice: uuid.UUID, bob: uuid.UUID) -> dict[str, int]:
    """What alice, bob and anon may do in avatars (owner folders), as the Storage API asks: rows or yes (1)."""
    with connect_as_authenticator(dsn) as conn:
        a = StorageCaller(conn, Persona.signed_in(alice, is_anonymous=False))
        b = StorageCaller(conn, Persona.signed_in(bob, is_anonymous=False))
        anon = StorageCaller(conn, Persona.anon())
        return {
            "alice lists": len(a.listed("avatars")),
            "bob lists": len(b.listed("avatars")),
            "anon lists": len(anon.listed("avatars")),
            "alice uploads her own": int(a.may_upload("avatars", f"{alice}/new.png")),
            "alice uploads into bob's": int(a.may_upload("avatars", f"{bob}/new.png")),
            "alice uploads a dot-dot path": int(a.may_upload("avatars", f"{alice}/../{bob}/x.png")),
            "anon uploads": int(anon.may_upload("avatars", f"{alice}/new.png")),
            "bob deletes alice's": b.deleted("avatars", f"{alice}/a.png"),
            "bob moves alice's": b.moved("avatars", f"{alice}/a.png", "avatars", f"{bob}/a.png"),
        }


def add_user(dsn: str, *, anonymous: bool = False) -> uuid.UUID:
    user = uuid.uuid4()
    with psycopg.connect(dsn) as conn:
        conn.execute("insert into auth.users (id, is_anonymous) values (%s, %s)", (user, anonymous))
    return user


def put_object(dsn: str, bucket: str, name: str, owner: uuid.UUID | None = None) -> None:
    """An object as Storage's own service writes it (the tables' owner side, past RLS)."""
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "insert into storage.objects (bucket_id, name, owner_id) values (%s, %s, %s)",
            (bucket, name, None if owner is None else str(owner)),
        )


def bucket_catalog(dsn: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """The bucket rows and every policy of the storage schema, as PostgreSQL shows them."""
    with psycopg.connect(dsn) as conn:
        buckets = conn.execute(
            "select id, name, public, file_size_limit, allowed_mime_types from storage.buckets order by id"
        ).fetchall()
        policies = conn.execute(
            "select policyname, cmd, roles::text, qual, with_check from pg_policies"
            " where schemaname = 'storage' order by 1"
        ).fetchall()
    return buckets, policies
