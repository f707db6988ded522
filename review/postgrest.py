"""Run SQL the way PostgREST runs an API request, to test access rules as the app meets them.

PostgREST logs in as `authenticator` and, inside one transaction per request, switches to
the request's role and publishes the JWT claims as transaction-local settings that
`auth.uid()`, `auth.role()` and `auth.jwt()` read.

    with connect_as_authenticator(dsn) as conn, as_persona(conn, Persona.anon()) as cur:
        cur.execute("insert into sessions (user_id) values (%s)", (user_id,))
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar, get_args

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow, tuple_row

ApiRole = Literal["anon", "authenticated", "service_role"]
API_ROLES: Final[frozenset[str]] = frozenset(get_args(ApiRole))
AUTHENTICATOR: Final = "authenticator"
# The local cluster's password (scripts/localdb); never a real project's.
LOCAL_AUTHENTICATOR_PASSWORD: Final = "sa-local-pw-7d3f9b2c"
# PostgREST runs these methods in read-only transactions.
READ_ONLY_METHODS: Final = frozenset({"GET", "HEAD"})

RowT = TypeVar("RowT")


@dataclass(frozen=True)
class Persona:
    """Who a request acts as: the database role PostgREST switches to and the JWT payload."""

    role: ApiRole
    claims: Mapping[str, Any] | None = field(default=None, hash=False)  # None: no JWT at all

    def __post_init__(self) -> None:
        if self.role not in API_ROLES:
            raise ValueError(f"role must be one of {sorted(API_ROLES)}, not {self.role!r}")

    @classmethod
    def anon(cls) -> Persona:
        """A request without a JWT."""
        return cls("anon", None)

    @classmethod
    def signed_in(cls, user_id: uuid.UUID | str, *, is_anonymous: bool) -> Persona:
        """A signed-in user; anonymous sign-ins also get role `authenticated`."""
        claims = {"sub": str(user_id), "role": "authenticated", "is_anonymous": is_anonymous, "aud": "authenticated"}
        return cls("authenticated", claims)

    @classmethod
    def service(cls) -> Persona:
        """A trusted server using the service_role key (bypasses row-level security)."""
        return cls("service_role", {"role": "service_role"})

    def claims_setting(self) -> str:
        """The value PostgREST gives `request.jwt.claims`; empty without a JWT."""
        return "" if self.claims is None else json.dumps(dict(self.claims), separators=(",", ":"))


def authenticator_conninfo(dsn: str, password: str = LOCAL_AUTHENTICATOR_PASSWORD) -> str:
    """`dsn` (URL or key=value) with its user and password replaced by PostgREST's login role."""
    return make_conninfo(dsn, user=AUTHENTICATOR, password=password)


def connect_as_authenticator(dsn: str, password: str = LOCAL_AUTHENTICATOR_PASSWORD) -> psycopg.Connection[TupleRow]:
    """An autocommit connection to the database of `dsn`, logged in as `authenticator`."""
    return psycopg.connect(authenticator_conninfo(dsn, password), autocommit=True)


@contextmanager
def as_persona(
    conn: psycopg.Connection[RowT],
    persona: Persona,
    *,
    method: str | None = None,
    commit: bool = False,
) -> Iterator[psycopg.Cursor[RowT]]:
    """A cursor inside one transaction set up as PostgREST sets up a request for `persona`.

    Rolls back at the end unless `commit`, so tests leave no trace. `method` (e.g. "GET")
    sets `request.method`; GET and HEAD run read-only, as in PostgREST.
    """
    if conn.info.user != AUTHENTICATOR:
        raise ValueError(f"connect as {AUTHENTICATOR} (see connect_as_authenticator), not {conn.info.user}")
    # A transaction already open would make ours a savepoint, and the settings would leak past it.
    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise ValueError("the connection must be idle, not inside a transaction")
    with conn.transaction() as transaction, conn.cursor() as cur:
        if method is not None and method.upper() in READ_ONLY_METHODS:
            cur.execute("set transaction read only")
        cur.execute(
            "select set_config('search_path', 'public', true),"
            " set_config('role', %(role)s, true),"
            " set_config('request.jwt.claims', %(claims)s, true),"
            " set_config('request.method', %(method)s, true)",
            {"role": persona.role, "claims": persona.claims_setting(), "method": (method or "").upper()},
        )
        yield cur
        if not commit:
            raise psycopg.Rollback(transaction)


class RlsBypassError(AssertionError):
    """The current role is not subject to row-level security, so a test would prove nothing."""


# Tables whose owner skips their row-level security (owners are exempt unless FORCE is set).
_RLS_EXEMPTIONS = sql.SQL(
    """
    select r.rolname, r.rolsuper, r.rolbypassrls,
           coalesce(array_agg(c.oid::regclass::text order by c.oid::regclass::text)
                    filter (where c.oid is not null), '{}')
    from pg_roles r
    left join pg_class c
      on c.relowner = r.oid
     and c.relkind in ('r', 'p')
     and not c.relforcerowsecurity
     and c.relnamespace not in ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
    where r.rolname = current_user
    group by r.rolname, r.rolsuper, r.rolbypassrls
    """
)


def assert_rls_applies(cur: psycopg.Cursor[Any]) -> None:
    """Raise RlsBypassError if `current_user` is a superuser, has BYPASSRLS or owns a table."""
    # A cursor of its own on the same connection: same transaction and role, known row shape.
    with cur.connection.cursor(row_factory=tuple_row) as check:
        check.execute(_RLS_EXEMPTIONS)
        row = check.fetchone()
    if row is None:
        raise RlsBypassError("current_user not found in pg_roles")
    role, is_superuser, bypasses_rls, owned_tables = row
    reasons = []
    if is_superuser:
        reasons.append("is a superuser")
    if bypasses_rls:
        reasons.append("has BYPASSRLS")
    if owned_tables:
        reasons.append(f"owns {', '.join(owned_tables)} without FORCE ROW LEVEL SECURITY")
    if reasons:
        raise RlsBypassError(f"row-level security does not apply to {role}: it {'; it '.join(reasons)}")
