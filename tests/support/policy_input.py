"""Policy expressions that try to leave their place, with the start of the problem the scan names:
refused by the scan in tests/unit and before the database in tests/db."""

from __future__ import annotations

ESCAPES = [
    ("user_id = auth.uid()) with check (true", "a ')' closes more than it opened"),
    ("user_id = auth.uid() or true) --", "a ')' closes more than it opened"),
    ("true -- and user_id = auth.uid()", "comments are not allowed"),
    ("true /* and user_id = auth.uid() */", "comments are not allowed"),
    ("true; drop table sessions", "';' is not allowed"),
    ("title = ''); drop table sessions; --'", "';' is not allowed"),
    ("(user_id = auth.uid()", "1 '(' without a matching ')'"),
    ("title = 'unterminated", "unterminated string"),
    ('"title = 1', "unterminated quoted identifier"),
    ("title = $q$) with check (true", "unterminated dollar-quoted string $q$"),
    ("title = '\\' or true or title = '", "a backslash in a plain string is ambiguous"),
]
