"""A row-level-security policy as PostgreSQL stores it: the unit every layer passes around."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from supabase_access.model.access_model import ModelError, check_identifier
from supabase_access.model.suggest import unknown_keys_message

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

    def clauses(self) -> list[tuple[str, str]]:
        """(input name, expression) of each clause given: `using`, `withCheck`."""
        found = (("using", self.using), ("withCheck", self.with_check))
        return [(key, text) for key, text in found if text is not None]

    def to_plain(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "roles": list(self.roles),
            "permissive": self.permissive,
            "using": self.using,
            "withCheck": self.with_check,
        }


POLICY_KEYS = ("command", "roles", "permissive", "using", "withCheck")


def policy_from_plain(name: str, raw: Mapping[str, Any], *, setting: str) -> PolicySpec:
    """Validate one policy given as plain data (provider input or stack config)."""
    check_identifier(name, setting)
    unknown = [key for key in raw if key not in POLICY_KEYS]
    if unknown:
        raise ModelError(unknown_keys_message(setting, unknown, POLICY_KEYS))
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
    problem = single_expression_problem(value)
    if problem:
        raise ModelError(f"{setting}: {problem}; a policy expression must be exactly one SQL boolean expression")
    return value.strip()


# A dollar-quote opener: `$$` or `$tag$` (a `$` after an identifier character belongs to that identifier).
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\x80-\uffff][A-Za-z0-9_\x80-\uffff]*)?\$")
_IDENTIFIER_CHAR = re.compile(r"[A-Za-z0-9_$\x80-\uffff]")


def single_expression_problem(text: str) -> str | None:
    """Why `text` could reach outside the parentheses it is put in, or None.

    Scans as PostgreSQL's lexer does (string constants, quoted identifiers, dollar quotes) and
    refuses comments and parentheses that do not pair up outside of those, so `(<text>)` in a
    statement is always one parenthesised expression: `a) with check (true` or `true) --` cannot
    close the clause it is written in. PostgreSQL parses it afterwards. A semicolon can only
    smuggle in another statement, and a backslash in a plain string reads differently under
    `standard_conforming_strings = off`, so both are refused anywhere.
    """
    if ";" in text:
        return "';' is not allowed"
    depth, i, n = 0, 0, len(text)
    while i < n:
        char, pair = text[i], text[i : i + 2]
        if pair in ("--", "/*"):
            return "comments are not allowed"
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return "a ')' closes more than it opened"
        elif char in "'\"":
            # E'...' strings take backslash escapes; others only double the quote.
            escapes = char == "'" and i > 0 and text[i - 1] in "eE" and not _IDENTIFIER_CHAR.match(text[i - 2 : i - 1])
            end = _quoted_end(text, i, char, escapes=escapes)
            if end is None:
                what = "string" if char == "'" else "quoted identifier"
                return f"unterminated {what} starting at {text[i : i + 20]!r}"
            if char == "'" and not escapes and "\\" in text[i:end]:
                return "a backslash in a plain string is ambiguous (write E'...' for escapes)"
            i = end
            continue
        elif char == "$" and not (i > 0 and _IDENTIFIER_CHAR.match(text[i - 1])):
            tag = _DOLLAR_TAG.match(text, i)
            if tag:
                close = text.find(tag.group(), tag.end())
                if close < 0:
                    return f"unterminated dollar-quoted string {tag.group()}"
                i = close + len(tag.group())
                continue
        i += 1
    if depth:
        return f"{depth} '(' without a matching ')'"
    return None


def _quoted_end(text: str, start: int, quote: str, *, escapes: bool) -> int | None:
    """Index just past the literal or quoted identifier opened at `start`, or None if it never closes."""
    i = start + 1
    while i < len(text):
        if escapes and text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            if text[i + 1 : i + 2] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return None
