"""The provider's connection to PostgreSQL: a few connections per provider process, kept open and reused.

A hosted database is 20-80 ms away, so round trips are what a preview waits for. Connections
are in autocommit: a read is one round trip (no BEGIN, no COMMIT), and a write says where its
transaction begins and ends (`with conn.transaction():`). A connection taken back is not pinged
again unless it sat idle long enough for a server or pooler to have closed it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import class_row

from supabase_access.model.connection import CONNECTION_SETTINGS, Connection
from supabase_access.sql.catalog import table_column_names
from supabase_access.sql.errors import ConnectionFailedError, database_error
from supabase_access.sql.rows import Query

# The engine runs up to this many resource operations at once against us (more wait for a connection).
MAX_CONNECTIONS = 4
WAIT_FOR_CONNECTION_SECONDS = 15.0
CONNECT_TIMEOUT_SECONDS = 10
# A connection idle longer than this is pinged before use (poolers close idle clients after minutes).
PING_AFTER_IDLE_SECONDS = 30.0


# Every statement of the provider waits a bounded time: for a lock (advisory locks included,
# so one stuck `up` cannot queue every other one behind it), and in all. Set on each pooled
# connection before its first statement, so nothing runs without them.
LOCK_TIMEOUT = "10s"
STATEMENT_TIMEOUT = "5min"
# How often a busy backend checks that we are still there: a plugin killed mid-statement (or
# mid lock wait) leaves no backend holding locks for longer than this.
CLIENT_CHECK_INTERVAL = "1s"
# The same bounds for pulumi-postgresql's connections (Grants, DefaultPrivileges), which take no
# session settings of ours: lib/pq reads PGOPTIONS, which bin/pulumi-resource-postgresql (the
# plugin's path in Pulumi.yaml) sets before it starts the plugin. Its role lock sets
# statement_timeout to 0, so only these two hold there.
OFFICIAL_PROVIDER_PGOPTIONS = (
    f"-c lock_timeout={LOCK_TIMEOUT} -c client_connection_check_interval={CLIENT_CHECK_INTERVAL}"
)
SESSION_SETTINGS = {
    "lock_timeout": LOCK_TIMEOUT,
    "statement_timeout": STATEMENT_TIMEOUT,
    "idle_in_transaction_session_timeout": STATEMENT_TIMEOUT,
    "client_connection_check_interval": CLIENT_CHECK_INTERVAL,
}


def configure_session(conn: psycopg.Connection) -> None:
    """The provider's session settings (those this server knows: client_connection_check_interval is PostgreSQL 14+)."""
    autocommit = conn.autocommit
    conn.autocommit = True
    try:
        conn.execute(
            "select set_config(s.name, v.value, false) from pg_settings s "
            "join unnest(%s::text[], %s::text[]) v(name, value) on v.name = s.name",
            (list(SESSION_SETTINGS), list(SESSION_SETTINGS.values())),
        )
    finally:
        conn.autocommit = autocommit


class Database:
    """Up to MAX_CONNECTIONS connections, opened on demand and reused; the engine runs operations in parallel."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        missing = [CONNECTION_SETTINGS[k] for k in ("host", "username", "password") if not config.get(k)]
        if missing:
            raise ConnectionFailedError(f"PostgreSQL connection is not configured: set {', '.join(missing)}")
        connection = Connection.of(config)
        self.description = connection.description
        self._conninfo = psycopg.conninfo.make_conninfo(
            host=connection.host,
            port=str(connection.port),
            dbname=connection.database,
            user=connection.username,
            password=str(config["password"]),
            sslmode=connection.sslmode,
            connect_timeout=str(CONNECT_TIMEOUT_SECONDS),
            application_name="supabase-access",
        )
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._lock = threading.Lock()
        self._idle: list[tuple[psycopg.Connection, float]] = []  # (connection, when it was given back)
        self._closed = False
        # Set while warm_up opens the first connection: a call arriving meanwhile waits for that one
        # (it is given back at once) instead of opening a second (three more round trips, one more
        # of the project's connections).
        self._warming_up = threading.Event()
        self._warmed_up = threading.Event()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A connection in autocommit, for this operation alone; errors name the settings to check."""
        if not self._slots.acquire(timeout=WAIT_FOR_CONNECTION_SECONDS):
            raise ConnectionFailedError(
                f"no PostgreSQL connection to {self.description} became free within {WAIT_FOR_CONNECTION_SECONDS:g} s"
            )
        try:
            conn = self._take()
            try:
                yield conn
            finally:
                self._give_back(conn)
        finally:
            self._slots.release()

    def _take(self) -> psycopg.Connection:
        if self._warming_up.is_set():
            self._warmed_up.wait(CONNECT_TIMEOUT_SECONDS)
        while True:
            with self._lock:
                if self._closed:
                    raise ConnectionFailedError(
                        f"the connection to {self.description} was closed (the provider is stopping)"
                    )
                if not self._idle:
                    break
                conn, returned_at = self._idle.pop()
            if conn.closed or conn.broken:
                continue
            if time.monotonic() - returned_at < PING_AFTER_IDLE_SECONDS:
                return conn
            try:
                conn.execute("")  # an empty query: one round trip, nothing parsed
                return conn
            except psycopg.Error:
                conn.close()
        try:
            return self._connect()
        except psycopg.OperationalError as exc:
            raise self._connect_error(exc) from exc

    def _connect(self) -> psycopg.Connection:
        conn = psycopg.connect(self._conninfo, autocommit=True)
        configure_session(conn)  # before its first statement: every wait is bounded
        return conn

    def _give_back(self, conn: psycopg.Connection) -> None:
        if not conn.closed and not conn.broken:
            try:
                if conn.info.transaction_status != TransactionStatus.IDLE:
                    conn.rollback()  # an operation that left a transaction open (a bug) must not leak it
                conn.autocommit = True
            except psycopg.Error:
                conn.close()
        with self._lock:
            if conn.closed or conn.broken or self._closed:
                conn.close()
            else:
                self._idle.append((conn, time.monotonic()))

    def warm_up(self) -> None:
        """Open one connection ahead of the first call; a failure is left for that call to report."""
        self._warming_up.set()
        try:
            conn = self._take_warm_up()
            if conn is not None:
                self._give_back(conn)
        finally:
            self._warmed_up.set()

    def _take_warm_up(self) -> psycopg.Connection | None:
        with self._lock:
            if self._idle or self._closed:
                return None
        try:
            return self._connect()
        except psycopg.OperationalError:
            return None

    def _connect_error(self, exc: Exception) -> ConnectionFailedError:
        settings = ", ".join(CONNECTION_SETTINGS[k] for k in ("host", "port", "database", "username", "password"))
        return ConnectionFailedError(f"cannot connect to PostgreSQL as {self.description} (check {settings}): {exc}")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()


def read_together(conn: psycopg.Connection, *queries: tuple[Any, Any]) -> list[list[Any]]:
    """The rows of several reads, sent in one round trip (libpq pipeline mode), in order; a `rows.Query`'s
    rows come as its dataclass.

    Against a hosted database every round trip costs 20-80 ms; a resource's reads do not depend
    on one another, so they need not wait for each other.
    """
    with conn.pipeline():
        cursors = []
        for query, params in queries:
            if isinstance(query, Query):
                cursor: psycopg.Cursor[Any] = conn.cursor(row_factory=class_row(query.row))
                cursors.append(cursor.execute(query.sql, params))
            else:
                cursors.append(conn.execute(query, params))
    return [cursor.fetchall() if cursor.description is not None else [] for cursor in cursors]


def execute_together(conn: psycopg.Connection, statements: Iterable[Any]) -> None:
    """Statements that return nothing the caller needs, sent in one round trip (libpq pipeline mode).

    PostgreSQL still runs them one after another; the first error stops the rest and is raised
    here, inside the caller's transaction, which then rolls back as before.
    """
    with conn.pipeline():
        for statement in statements:
            conn.execute(statement)


def read_table_columns(config: Mapping[str, Any], schema: str, tables: Sequence[str]) -> dict[str, list[str]]:
    """table -> its live columns, read once by the program (a table the database lacks is left out)."""
    db = Database(config)
    try:
        with db.connection() as conn:
            return table_column_names(conn, schema, tables)
    except psycopg.Error as exc:
        raise database_error(exc) from exc
    finally:
        db.close()
