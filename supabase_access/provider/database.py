"""The provider's connection to PostgreSQL: one small pool per provider process."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from supabase_access.catalog import CatalogError

# Stack settings that hold each connection field, named in errors.
CONNECTION_SETTINGS = {
    "host": "postgresql:host",
    "port": "postgresql:port",
    "database": "postgresql:database",
    "username": "postgresql:username",
    "password": "postgresql:password",
    "sslmode": "postgresql:sslmode",
}


class Database:
    """Lazily opened pool; the engine runs resource operations in parallel, so one connection is not enough."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        missing = [CONNECTION_SETTINGS[k] for k in ("host", "username", "password") if not config.get(k)]
        if missing:
            raise CatalogError(f"PostgreSQL connection is not configured: set {', '.join(missing)}")
        port, database = int(config.get("port") or 5432), config.get("database") or "postgres"
        self.description = f"{config['username']}@{config['host']}:{port}/{database}"
        self._conninfo = psycopg.conninfo.make_conninfo(
            host=str(config["host"]),
            port=str(int(config.get("port") or 5432)),
            dbname=str(config.get("database") or "postgres"),
            user=str(config["username"]),
            password=str(config["password"]),
            sslmode=str(config.get("sslmode") or "prefer"),
            connect_timeout="10",
            application_name="supabase-access",
        )
        self._pool: ConnectionPool | None = None
        self._opening = threading.Lock()

    def connection(self) -> Any:
        """A context manager yielding a pooled connection; errors name the settings to check."""
        with self._opening:
            if self._pool is None:
                # Connect once directly: a wrong password or host fails now with PostgreSQL's own
                # message, instead of as a pool timeout.
                try:
                    psycopg.connect(self._conninfo).close()
                except psycopg.OperationalError as exc:
                    raise self._connect_error(exc) from exc
                self._pool = ConnectionPool(
                    self._conninfo, min_size=0, max_size=4, open=True, timeout=15, check=ConnectionPool.check_connection
                )
        return _Checkout(self)

    def warm_up(self) -> None:
        """Open the pool and one connection ahead of the first call; a failure is left for that call to report."""
        try:
            with self.connection():
                pass
        except CatalogError:
            pass

    def _connect_error(self, exc: Exception) -> CatalogError:
        settings = ", ".join(CONNECTION_SETTINGS[k] for k in ("host", "port", "database", "username", "password"))
        return CatalogError(f"cannot connect to PostgreSQL as {self.description} (check {settings}): {exc}")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()


class _Checkout:
    def __init__(self, database: Database) -> None:
        self._database = database
        self._context: Any = None

    def __enter__(self) -> psycopg.Connection:
        assert self._database._pool is not None
        try:
            self._context = self._database._pool.connection()
            return self._context.__enter__()  # type: ignore[no-any-return]
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise self._database._connect_error(exc) from exc

    def __exit__(self, *exc_info: Any) -> None:
        self._context.__exit__(*exc_info)


def read_together(conn: psycopg.Connection, *queries: tuple[Any, Any]) -> list[list[tuple[Any, ...]]]:
    """The rows of several reads, sent in one round trip (libpq pipeline mode), in order.

    Against a hosted database every round trip costs 20-80 ms; a resource's reads do not depend
    on one another, so they need not wait for each other.
    """
    with conn.pipeline():
        cursors = [conn.execute(query, params) for query, params in queries]
    return [cursor.fetchall() if cursor.description is not None else [] for cursor in cursors]
