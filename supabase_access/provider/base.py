"""What every resource of the provider implements, and helpers they share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import psycopg

from supabase_access import catalog
from supabase_access.catalog import CatalogError
from supabase_access.model import ModelError, check_identifier
from supabase_access.provider.database import STATEMENT_TIMEOUT, Database

# Writes to the same table are serialised with a transaction-scoped advisory lock, because
# concurrent GRANT/ALTER on one table can fail with "tuple concurrently updated".
LOCK_NAMESPACE = "supabase-access:"

# The stack of the engine call at work (from its URN), for the marks on what we create. The
# server sets it per call; threads started with asyncio.to_thread see the caller's value.
CURRENT_STACK: ContextVar[str] = ContextVar("CURRENT_STACK", default="")

# Messages for the user, next to the resource: warnings unless they are a Notice.
Log = Callable[[str], None]

# Where `check` (which runs on every preview) may say something without failing; the server sets it per call.
CHECK_LOG: ContextVar[Log | None] = ContextVar("CHECK_LOG", default=None)


class Notice(str):
    """A message that reports what was done (shown as info), not something to act on (a warning)."""


class InputError(ValueError):
    """Bad input for one property; `property` is the input's name as the user wrote it."""

    def __init__(self, property: str, reason: str) -> None:
        super().__init__(reason)
        self.property = property
        self.reason = reason


@dataclass
class Diff:
    replaces: list[str] = field(default_factory=list)
    # property path -> "add" | "delete" | "update"
    changes: dict[str, str] = field(default_factory=dict)

    @property
    def has_changes(self) -> bool:
        return bool(self.replaces or self.changes)


class ManagedResource(ABC):
    token: str
    # Inputs whose change PostgreSQL cannot apply in place.
    replace_on: tuple[str, ...] = ()

    def check(self, db: Database, olds: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
        """Validate and return the inputs; raise InputError naming the property.

        By default the inputs are normalised, and the database is asked (`validate`) only when they
        differ from the last apply's: those passed then, and diff reads the live state anyway.
        """
        checked = self.normalize(inputs)
        if checked != olds:
            self.validate(db, olds, checked)
        return checked

    def normalize(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """The inputs with defaults filled in, checked without the database."""
        return dict(inputs)

    def validate(self, db: Database, olds: dict[str, Any], checked: dict[str, Any]) -> None:
        """What only the database can tell about new or changed inputs (by default: nothing to ask)."""
        return None

    @abstractmethod
    def diff_live(self, db: Database, state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, str]:
        """Compare the live database with the desired inputs (no replacement keys changed)."""

    @abstractmethod
    def create(self, db: Database, inputs: dict[str, Any], log: Log) -> tuple[str, dict[str, Any]]: ...

    @abstractmethod
    def update(self, db: Database, state: dict[str, Any], inputs: dict[str, Any], log: Log) -> dict[str, Any]: ...

    @abstractmethod
    def delete(self, db: Database, state: dict[str, Any], log: Log) -> None: ...

    @abstractmethod
    def read(
        self, db: Database, resource_id: str, state: dict[str, Any], inputs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(outputs, inputs) as the database has them now, or None if the object is gone."""

    def diff(self, db: Database, state: dict[str, Any], inputs: dict[str, Any]) -> Diff:
        replaces = [k for k in self.replace_on if state.get(k) != inputs.get(k)]
        if replaces:
            return Diff(replaces=replaces)
        return Diff(changes=self.diff_live(db, state, inputs))


def identifier(inputs: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = inputs.get(key, default)
    try:
        return check_identifier(value, key)
    except ModelError as exc:
        raise InputError(key, str(exc)) from exc


def missing_table(table_property: str, schema: str, table: str) -> InputError:
    """The error for a table the database does not have, naming the input that holds it."""
    return InputError(table_property, f"{table_property}: {schema}.{table} does not exist in the database")


def require_table(conn: psycopg.Connection, schema: str, table: str, table_property: str = "table") -> None:
    if catalog.missing_tables(conn, schema, [table]):
        raise missing_table(table_property, schema, table)


class LockWaitError(CatalogError):
    """A statement gave up waiting for a lock (lock_timeout) or ran too long (statement_timeout)."""


# What each open write transaction locks (or is about to): named when a wait times out.
_LOCKING: dict[int, list[tuple[str, str]]] = {}


def lock_tables(conn: psycopg.Connection, schema: str, tables: Iterable[str]) -> None:
    """Serialise our writes to these tables (in a fixed order), inside the caller's write_transaction."""
    for table in sorted(set(tables)):
        _LOCKING.setdefault(id(conn), []).append((schema, table))
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"{LOCK_NAMESPACE}{schema}.{table}",))


@contextmanager
def write_transaction(db: Database, *, rollback: bool = False) -> Iterator[psycopg.Connection]:
    """The one way resources change the database: one transaction, bounded waits, clear lock errors.

    The connection's lock_timeout and statement_timeout are set before any statement (see
    database.configure_session), so every lock taken inside (lock_tables' advisory locks first)
    waits a bounded time; a timeout fails naming the tables and who holds their locks.
    `rollback` makes it a dry run that leaves nothing behind.
    """
    with db.connection() as conn:
        _LOCKING[id(conn)] = []
        try:
            with conn.transaction(force_rollback=rollback):
                yield conn
        except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled) as exc:
            raise _wait_error(conn, exc) from exc
        finally:
            _LOCKING.pop(id(conn), None)


@contextmanager
def autocommit(
    db: Database, schema: str, table: str, *, statement_timeout: str | None = None
) -> Iterator[psycopg.Connection]:
    """For (CREATE|DROP) INDEX CONCURRENTLY on `table`, which cannot run inside a transaction.

    The session's lock_timeout bounds its waits too (a concurrent build waits for each older
    transaction); `statement_timeout` replaces the session's for a build that may take longer.
    """
    with db.connection() as conn:
        _LOCKING[id(conn)] = [(schema, table)]
        conn.autocommit = True
        try:
            if statement_timeout is not None:
                conn.execute("select set_config('statement_timeout', %s, false)", (statement_timeout,))
            yield conn
        except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled) as exc:
            raise _wait_error(conn, exc) from exc
        finally:
            _LOCKING.pop(id(conn), None)
            if statement_timeout is not None and not conn.closed:
                conn.execute("select set_config('statement_timeout', %s, false)", (STATEMENT_TIMEOUT,))
            conn.autocommit = False


def _wait_error(conn: psycopg.Connection, exc: psycopg.Error) -> LockWaitError:
    targets = list(dict.fromkeys(_LOCKING.get(id(conn), [])))
    holders = lock_holders(conn, targets) if targets else []
    # Named by what other sessions hold (PostgreSQL's error does not say which lock it waited for).
    held_targets = list(dict.fromkeys(target for target, _ in holders))
    where = ", ".join(held_targets or [_describe(*t) for t in targets]) or "the database"
    if isinstance(exc, psycopg.errors.LockNotAvailable):
        what = f"gave up waiting for a lock on {where} after {_setting(conn, 'lock_timeout')} (lock_timeout)"
    else:
        what = f"a statement on {where} was cancelled: {exc.diag.message_primary or exc}"
    if not holders:
        return LockWaitError(f"{what}; no session holds those locks any more, so running `pulumi up` again may pass")
    held = "; ".join(holder for _, holder in holders)
    return LockWaitError(f"{what}; held by {held}. Run `pulumi up` again once it ends (or end it)")


def _describe(schema: str, table: str) -> str:
    # lock_private_schema's pseudo-table, "(private schema)", cannot be a table's name.
    return f"the private schema {schema}" if table.startswith("(") else f"{schema}.{table}"


def _setting(conn: psycopg.Connection, name: str) -> str:
    try:
        row = conn.execute("select current_setting(%s)", (name,)).fetchone()
    except psycopg.Error:
        row = None
    return str(row[0]) if row else "?"


def lock_holders(conn: psycopg.Connection, targets: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """(what, who) of other sessions holding a lock on these tables or our advisory lock for them,
    as pg_locks and pg_stat_activity show them."""
    schemas, tables = [s for s, _ in targets], [t for _, t in targets]
    keys = [f"{LOCK_NAMESPACE}{s}.{t}" for s, t in targets]
    try:
        rows = conn.execute(
            "select distinct a.pid, a.application_name, a.state, a.query_start, "
            "  case when l.locktype = 'advisory' then 'supabase-access lock' else l.mode end, "
            "  coalesce(n.nspname, k.target[1]), coalesce(c.relname, k.target[2]) "
            "from pg_locks l join pg_stat_activity a on a.pid = l.pid "
            "left join pg_class c on l.locktype = 'relation' and c.oid = l.relation "
            "left join pg_namespace n on n.oid = c.relnamespace "
            "left join lateral (select array[s, t] as target "
            "  from unnest(%s::text[], %s::text[], %s::text[]) u(s, t, key) "
            "  where l.locktype = 'advisory' and l.objsubid = 1 "
            "  and hashtext(u.key)::bigint = ((l.classid::bigint << 32) | l.objid::bigint) limit 1) k on true "
            "where l.granted and l.pid <> pg_backend_pid() and ("
            "  (l.locktype = 'relation' and (n.nspname, c.relname) in (select * from unnest(%s::text[], %s::text[])))"
            "  or k.target is not null) "
            "order by 1",
            (schemas, tables, keys, schemas, tables),
        ).fetchall()
    except psycopg.Error:
        return []
    return [
        (
            _describe(schema, table),
            f"pid {pid} (application_name {app or '(none)'!r}, state {state or 'unknown'}, "
            f"query started {started.isoformat(timespec='seconds') if started else 'unknown'}, {mode})",
        )
        for pid, app, state, started, mode, schema, table in rows
    ]


def split_id(resource_id: str, parts: int, example: str) -> list[str]:
    pieces = resource_id.split(".")
    if len(pieces) != parts or not all(pieces):
        raise InputError("id", f"expected an id like {example!r}, got {resource_id!r}")
    return pieces


def compare_fields(prefix: str, live: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, str]:
    return {f"{prefix}{k}": "update" for k in desired if live.get(k) != desired.get(k)}
