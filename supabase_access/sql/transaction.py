"""The one way the provider changes the database: `write_transaction` (and `autocommit` for the
statements that cannot run in a transaction), with bounded waits and lock errors that name who holds
the locks."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import psycopg

from supabase_access.sql.database import STATEMENT_TIMEOUT, Database
from supabase_access.sql.errors import LockTimeoutError

# Writes to the same table are serialised with a transaction-scoped advisory lock, because
# concurrent GRANT/ALTER on one table can fail with "tuple concurrently updated".
LOCK_NAMESPACE = "supabase-access:"


# What each open write transaction locks (or is about to): named when a wait times out.
_LOCKING: dict[int, list[tuple[str, str]]] = {}


class LockOrderError(AssertionError):
    """A table's lock asked for after the private schema's: two transactions could then deadlock."""


def lock_tables(conn: psycopg.Connection, schema: str, tables: Iterable[str]) -> None:
    """Serialise our writes to these tables (in a fixed order), inside the caller's write_transaction.

    One order for every path (create, update, delete): the tables' locks, then the private
    schema's (lock_private_schema), then statements. A table's lock after the private schema's is
    refused, since a transaction holding the schema while it waits for a table deadlocks with one
    holding the table while it waits for the schema.
    """
    wanted = sorted(set(tables))
    held = _LOCKING.setdefault(id(conn), [])
    if any(table.startswith("(") for _, table in held) and not all(t.startswith("(") for t in wanted):
        raise LockOrderError(f"lock on {schema}.{', '.join(wanted)} asked for after the private schema's")
    for table in wanted:
        if (schema, table) in held:
            continue  # advisory locks stack: taken once is enough
        held.append((schema, table))
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"{LOCK_NAMESPACE}{schema}.{table}",))


def holds_lock(conn: psycopg.Connection, schema: str, table: str) -> bool:
    return (schema, table) in _LOCKING.get(id(conn), [])


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


def _wait_error(conn: psycopg.Connection, exc: psycopg.Error) -> LockTimeoutError:
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
        return LockTimeoutError(f"{what}; no session holds those locks any more, so running `pulumi up` again may pass")
    held = "; ".join(holder for _, holder in holders)
    return LockTimeoutError(f"{what}; held by {held}. Run `pulumi up` again once it ends (or end it)")


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
