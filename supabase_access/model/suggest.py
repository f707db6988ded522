"""What a mistyped key probably meant: the closest known one (difflib), for the error naming it."""

from __future__ import annotations

import difflib
from collections.abc import Sequence


def did_you_mean(key: object, known: Sequence[str], prefix: str = "") -> str:
    """` (did you mean <prefix><closest>?)`, or nothing when no known key is close."""
    close = difflib.get_close_matches(str(key), list(known), n=1)
    return f" (did you mean {prefix}{close[0]}?)" if close else ""


def unknown_keys_message(setting: str, unknown: Sequence[object], known: Sequence[str]) -> str:
    """`<setting>.<key>: unknown key (did you mean ...?)` for the first unknown key, then the known ones."""
    first = sorted(str(key) for key in unknown)[0]
    more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
    return f"{setting}.{first}: unknown key{did_you_mean(first, known)}{more}; known: {', '.join(known)}"
