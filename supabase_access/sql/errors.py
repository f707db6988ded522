"""What a database step fails on: one type per cause, each with a one-line message naming the object.

The provider shows each as `<resource>: <message>`, never with a Python traceback (`provider/server.py`).
"""

from __future__ import annotations

import psycopg


class DatabaseError(ValueError):
    """An expected failure of a database step; the message names the object and, where it can, what to do."""


class ConnectionFailedError(DatabaseError):
    """PostgreSQL cannot be reached as configured (or the connection is not configured, or was closed)."""


class LockTimeoutError(DatabaseError):
    """A statement gave up waiting for a lock (lock_timeout) or ran too long (statement_timeout)."""


class PrivilegeError(DatabaseError):
    """The login role lacks a privilege (or the ownership) a statement needs."""


class CatalogError(DatabaseError):
    """The database does not hold what a setting names (or holds something in its way); the message says which."""


class PolicyRejectedError(CatalogError):
    """PostgreSQL refused a policy (an expression that does not parse, an unknown column, ...)."""

    def __init__(self, policy: str, message: str) -> None:
        super().__init__(f"{policy}: PostgreSQL rejected the policy: {message}")
        self.policy = policy
        self.message = message


def database_error(exc: psycopg.Error) -> DatabaseError:
    """The type of an error PostgreSQL (or the driver) raised, with its message on one line."""
    if isinstance(exc, psycopg.errors.DeadlockDetected):
        return LockTimeoutError(
            "PostgreSQL ended this step in a deadlock with another session and rolled it back (nothing of it "
            "was applied); run the command again"
        )
    primary = exc.diag.message_primary or str(exc)
    why = f"PostgreSQL refused it: {primary}" + (f" ({exc.diag.message_detail})" if exc.diag.message_detail else "")
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return PrivilegeError(why)
    if isinstance(exc, (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled)):
        return LockTimeoutError(why)
    if isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None:
        # No SQLSTATE: the driver's own (the server went away, the connection broke).
        return ConnectionFailedError(f"the connection to PostgreSQL failed: {' '.join(str(exc).split())}")
    return CatalogError(why)
