"""How the program and the provider reach PostgreSQL: the `postgresql:*` settings and their defaults, once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_PORT = 5432
DEFAULT_DATABASE = "postgres"
DEFAULT_USERNAME = "postgres"
DEFAULT_SSLMODE = "prefer"
# The stack setting that holds each connection field, named in errors.
CONNECTION_SETTINGS = {
    "host": "postgresql:host",
    "port": "postgresql:port",
    "database": "postgresql:database",
    "username": "postgresql:username",
    "password": "postgresql:password",
    "sslmode": "postgresql:sslmode",
}


@dataclass(frozen=True)
class Connection:
    host: str
    port: int = DEFAULT_PORT
    database: str = DEFAULT_DATABASE
    username: str = DEFAULT_USERNAME
    sslmode: str = DEFAULT_SSLMODE

    @classmethod
    def of(cls, settings: Mapping[str, object]) -> Connection:
        """From `postgresql:*` values (by field name), the unset or empty ones defaulted; a port that is
        not a whole number raises ValueError."""
        return cls(
            host=str(settings.get("host") or ""),
            port=int(str(settings.get("port") or DEFAULT_PORT)),
            database=str(settings.get("database") or DEFAULT_DATABASE),
            username=str(settings.get("username") or DEFAULT_USERNAME),
            sslmode=str(settings.get("sslmode") or DEFAULT_SSLMODE),
        )

    @property
    def description(self) -> str:
        """`username@host:port/database`, as errors name the connection."""
        return f"{self.username}@{self.host}:{self.port}/{self.database}"
