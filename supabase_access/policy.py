"""A row-level-security policy as PostgreSQL stores it: the unit every layer passes around."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from supabase_access.model import ModelError, check_identifier

COMMANDS = ("ALL", "SELECT", "INSERT", "UPDATE", "DELETE")


@dataclass(frozen=True)
class PolicySpec:
    name: str
    command: str = "ALL"
    roles: tuple[str, ...] = ("public",)
    permissive: bool = True
    using: str | None = None
    with_check: str | None = None
    # Free text kept with the policy in PostgreSQL as its comment, so people see why it exists.
    comment: str | None = field(default=None, compare=False)

    def to_plain(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "roles": list(self.roles),
            "permissive": self.permissive,
            "using": self.using,
            "withCheck": self.with_check,
        }


def policy_from_plain(name: str, raw: Mapping[str, Any], *, setting: str) -> PolicySpec:
    """Validate one policy given as plain data (provider input or stack config)."""
    check_identifier(name, setting)
    unknown = set(raw) - {"command", "roles", "permissive", "using", "withCheck"}
    if unknown:
        raise ModelError(f"{setting}: unknown key(s) {sorted(unknown)}")
    command = str(raw.get("command", "ALL")).upper()
    if command not in COMMANDS:
        raise ModelError(f"{setting}.command: {raw.get('command')!r} is not one of {', '.join(COMMANDS)}")
    roles_raw = raw.get("roles", ["public"])
    if not isinstance(roles_raw, (list, tuple)) or not roles_raw:
        raise ModelError(f"{setting}.roles: expected a non-empty list of role names")
    roles = tuple(sorted(check_identifier(r, f"{setting}.roles") for r in roles_raw))
    permissive = raw.get("permissive", True)
    if not isinstance(permissive, bool):
        raise ModelError(f"{setting}.permissive: expected true or false")
    using = _expression(raw.get("using"), f"{setting}.using")
    with_check = _expression(raw.get("withCheck"), f"{setting}.withCheck")
    if command == "INSERT" and using is not None:
        raise ModelError(f"{setting}.using: an INSERT policy takes only withCheck")
    if command in ("SELECT", "DELETE") and with_check is not None:
        raise ModelError(f"{setting}.withCheck: a {command} policy takes only using")
    if using is None and with_check is None:
        raise ModelError(f"{setting}: give using and/or withCheck")
    return PolicySpec(name, command, roles, permissive, using, with_check)


def policy_from_stored(name: str, raw: Mapping[str, Any]) -> PolicySpec:
    """A policy read back from state or the catalog: already PostgreSQL's own, so not re-validated."""
    return PolicySpec(
        name=name,
        command=str(raw["command"]),
        roles=tuple(sorted(raw["roles"])),
        permissive=bool(raw["permissive"]),
        using=raw.get("using"),
        with_check=raw.get("withCheck"),
    )


def _expression(value: object, setting: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ModelError(f"{setting}: expected an SQL boolean expression")
    if ";" in value:
        # A policy expression is one expression; a semicolon can only smuggle in another statement.
        raise ModelError(f"{setting}: a policy expression cannot contain ';'")
    return value.strip()
