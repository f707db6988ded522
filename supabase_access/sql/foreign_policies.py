"""Hand-made policies on a shared table (storage.objects, realtime.messages) judged by what they let an API
persona do to the rows a stack manages there (its bucket's objects, its channels' messages).

Those tables hold everyone's policies (the dashboard's, other apps', other stacks'), so a stack cannot own
them all as TablePolicies owns an app table. A permissive policy no stack marks is a widening of the stack's
rows when, added to the others, it lets a persona reach one of the stack's probe rows that the others do not:
`using (true)` on storage.objects widens every bucket; `using (bucket_id = 'theirs')` or `topic = 'lobby'`
widens none, and is left alone, as is any policy a stack marks as its own.

Nothing is written: each policy's expression (as PostgreSQL deparses it) is evaluated as the persona (`SET
LOCAL ROLE`, `request.jwt.claims`, and `realtime.topic` where a row gives it) on typed probe rows built in the
query itself, inside a rolled-back savepoint, so the probe takes no lock beyond what reading takes. An
expression that fails for a persona admits nothing to it, as a failing policy refuses the request.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from supabase_access.model.policy import PolicySpec
from supabase_access.sql import catalog
from supabase_access.sql import statements as render

# Each operation: the commands whose policies apply, and whether it needs USING (the row it targets) and
# the check (the row it writes: WITH CHECK, else USING).
OPERATIONS: Mapping[str, tuple[tuple[str, ...], bool, bool]] = {
    "select": (("SELECT", "ALL"), True, False),
    "insert": (("INSERT", "ALL"), False, True),
    "update": (("UPDATE", "ALL"), True, True),
    "delete": (("DELETE", "ALL"), True, False),
}
PRIVILEGES = {"select": "SELECT", "insert": "INSERT", "update": "UPDATE", "delete": "DELETE"}


@dataclass(frozen=True)
class ProbePersona:
    label: str
    role: str
    claims: Mapping[str, object] | None = None


def probe_personas() -> tuple[ProbePersona, ...]:
    """Two users (A and B), an anonymous sign-in and anon without a JWT, with fresh ids."""
    users = {name: str(uuid.uuid4()) for name in ("A", "B", "S")}

    def signed_in(user: str, anonymous: bool) -> dict[str, object]:
        return {"sub": users[user], "role": "authenticated", "is_anonymous": anonymous, "aud": "authenticated"}

    return (
        ProbePersona("user A", "authenticated", signed_in("A", False)),
        ProbePersona("user B", "authenticated", signed_in("B", False)),
        ProbePersona("an anonymous sign-in", "authenticated", signed_in("S", True)),
        ProbePersona("anon (no JWT)", "anon"),
    )


def user_id(personas: Sequence[ProbePersona], label: str) -> str:
    (found,) = (str((p.claims or {})["sub"]) for p in personas if p.label == label)
    return found


@dataclass(frozen=True)
class ProbeRow:
    """One row of the stack's, as `label` names it in a finding; `settings`: what the request sets for it."""

    label: str
    values: Mapping[str, object]
    settings: Mapping[str, str] = field(default_factory=dict)


@dataclass
class ForeignPolicies:
    # Policy name -> what it lets a persona do that the other policies do not.
    widening: dict[str, list[str]] = field(default_factory=dict)
    # Policy name -> the policy, as PostgreSQL stores it (what `destroy` puts back when a stack takes it).
    policies: dict[str, PolicySpec] = field(default_factory=dict)
    # Why the probe could not run (a warning, never a pass).
    unprobed: str | None = None


def dropped_lines(table: str, opened: str, foreign: ForeignPolicies, *, taken_over: bool) -> list[str]:
    """What an apply that dropped `foreign.widening` says of each (`opened`: what it opened, e.g. "bucket avatars")."""
    kept = "; destroy puts it back" if taken_over else ""
    return [
        f"dropped the policy {name!r} on {table}, which no stack declares: it opened {opened} wider than "
        f"{'its kind' if opened.startswith('bucket') else 'their kinds'} ({'; '.join(cells)}){kept}"
        for name, cells in foreign.widening.items()
    ]


def foreign_widenings(
    conn: psycopg.Connection,
    schema: str,
    table: str,
    personas: Sequence[ProbePersona],
    rows: Sequence[ProbeRow],
    verbs: Mapping[str, str],
) -> ForeignPolicies:
    """The permissive policies on schema.table that no stack marks and that let one of `personas` do one of
    `verbs` (operation -> how a finding says it, e.g. {"select": "read"}) to one of `rows` the other policies
    do not let it do. Runs inside a savepoint rolled back at the end."""
    policies = catalog.read_policies(conn, schema, table)
    comments = catalog.policy_comments(conn, schema, table)
    candidates = [
        n
        for n, p in policies.items()
        if p.permissive and not (comments.get(n) or "").startswith(render.STACK_MARKER_PREFIX)
    ]
    found = ForeignPolicies()
    if not candidates or not rows:
        return found
    roles = sorted({p.role for p in personas})
    cannot = [
        r
        for (r,) in conn.execute(
            "select r from unnest(%s::text[]) r where not exists (select from pg_roles where rolname = r) "
            "or not pg_has_role(current_user, r, 'MEMBER')",
            (roles,),
        ).fetchall()
    ]
    if cannot:
        found.unprobed = (
            f"the login role cannot act as {', '.join(cannot)} (`grant {', '.join(cannot)} to <login role>`), so "
            f"the policies made by hand on {schema}.{table} ({', '.join(candidates)}) are not proved to widen nothing"
        )
        return found
    members = _memberships(conn, roles)
    granted = _privileges(conn, schema, table, roles)
    columns = _columns(conn, schema, table)
    with conn.transaction(force_rollback=True):
        admits = {
            persona.label: _evaluate(conn, schema, table, columns, persona, rows, policies) for persona in personas
        }
    applicable = {
        persona.label: {n for n, p in policies.items() if "public" in p.roles or members[persona.role] & set(p.roles)}
        for persona in personas
    }
    others = {n: p for n, p in policies.items() if n not in candidates}
    for name in candidates:
        widened = {**others, name: policies[name]}
        cells = [
            f"{persona.label} may {verb} {row.label}"
            for persona in personas
            for operation, verb in verbs.items()
            if operation in granted[persona.role]
            for index, row in enumerate(rows)
            if _admitted(widened, applicable[persona.label], admits[persona.label], operation, index)
            and not _admitted(others, applicable[persona.label], admits[persona.label], operation, index)
        ]
        if cells:
            found.widening[name] = cells
            found.policies[name] = policies[name]
    return found


def _admitted(
    policies: Mapping[str, PolicySpec],
    applicable: set[str],
    admits: Mapping[tuple[str, str], list[bool]],
    operation: str,
    row: int,
) -> bool:
    """What PostgreSQL decides: some permissive policy and every restrictive one of the command admit."""
    commands, needs_using, needs_check = OPERATIONS[operation]
    chosen = [p for n, p in sorted(policies.items()) if n in applicable and p.command in commands]

    def part(p: PolicySpec, kind: str) -> bool:
        key = "using" if kind == "using" or p.with_check is None else "check"
        answers = admits.get((p.name, key))
        return answers is not None and answers[row]  # no expression at all admits nothing (PostgreSQL's rule)

    def passes(kind: str) -> bool:
        permissive = [p for p in chosen if p.permissive]
        restrictive = [p for p in chosen if not p.permissive]
        return any(part(p, kind) for p in permissive) and all(part(p, kind) for p in restrictive)

    return (not needs_using or passes("using")) and (not needs_check or passes("check"))


def _memberships(conn: psycopg.Connection, roles: list[str]) -> dict[str, set[str]]:
    rows = conn.execute(
        "select r, g.rolname from unnest(%s::text[]) r join pg_roles g on pg_has_role(r, g.oid, 'MEMBER')", (roles,)
    ).fetchall()
    members: dict[str, set[str]] = {r: set() for r in roles}
    for role, group in rows:
        members[role].add(group)
    return members


def _privileges(conn: psycopg.Connection, schema: str, table: str, roles: list[str]) -> dict[str, set[str]]:
    rows = conn.execute(
        "select r, o from unnest(%s::text[]) r, unnest(%s::text[]) o "
        "where has_table_privilege(r, format('%%I.%%I', %s::text, %s::text), upper(o))",
        (roles, list(PRIVILEGES), schema, table),
    ).fetchall()
    granted: dict[str, set[str]] = {r: set() for r in roles}
    for role, operation in rows:
        granted[role].add(operation)
    return granted


def _columns(conn: psycopg.Connection, schema: str, table: str) -> list[tuple[str, str]]:
    rows = conn.execute(
        "select attname, format_type(atttypid, atttypmod) from pg_attribute "
        "where attrelid = format('%%I.%%I', %s::text, %s::text)::regclass and attnum > 0 and not attisdropped "
        "order by attnum",
        (schema, table),
    ).fetchall()
    return [(str(name), str(kind)) for name, kind in rows]


def _rows_source(columns: Sequence[tuple[str, str]], rows: Sequence[ProbeRow]) -> tuple[sql.Composed, list[object]]:
    """`(select <typed values> union all ...)`: the probe rows, typed as the table's columns, built in the query."""
    params: list[object] = []
    selects = []
    for row in rows:
        fields = []
        for name, kind in columns:
            fields.append(sql.SQL("%s::{} as {}").format(sql.SQL(kind), sql.Identifier(name)))
            value = row.values.get(name)
            params.append(json.dumps(value) if isinstance(value, dict) else value)  # a list is an array
        selects.append(sql.SQL("select ") + sql.SQL(", ").join(fields))
    return sql.SQL("(") + sql.SQL(" union all ").join(selects) + sql.SQL(")"), params


def _evaluate(
    conn: psycopg.Connection,
    schema: str,
    table: str,
    columns: Sequence[tuple[str, str]],
    persona: ProbePersona,
    rows: Sequence[ProbeRow],
    policies: Mapping[str, PolicySpec],
) -> dict[tuple[str, str], list[bool]]:
    """(policy, "using" | "check") -> per row, whether the expression is true for `persona`. One query per
    row (each may set its own request settings) asks every expression; when one fails, each is asked alone."""
    parts = [
        ((name, key), text)
        for name, p in policies.items()
        for key, text in (("using", p.using), ("check", p.with_check))
        if text is not None
    ]
    results: dict[tuple[str, str], list[bool]] = {key: [] for key, _ in parts}
    for row in rows:
        source, params = _rows_source(columns, [row])

        def ask(
            texts: list[str],
            source: sql.Composed = source,
            params: list[object] = params,
            settings: Mapping[str, str] = row.settings,
        ) -> list[bool] | None:
            query = sql.SQL("select {} from {} as {}").format(
                sql.SQL(", ").join(sql.SQL("coalesce(({}), false)").format(sql.SQL(t)) for t in texts),
                source,
                sql.Identifier(table),
            )
            return _as_persona(conn, persona, settings, query, params)

        answers = ask([text for _, text in parts])
        if answers is None:  # a policy that fails refuses the request: false for that one alone
            answers = [(ask([text]) or [False])[0] for _, text in parts]
        for (key, _), answer in zip(parts, answers, strict=True):
            results[key].append(answer)
    return results


def _as_persona(
    conn: psycopg.Connection,
    persona: ProbePersona,
    settings: Mapping[str, str],
    query: sql.Composed,
    params: list[object],
) -> list[bool] | None:
    """The query's one row as `persona` (None when it fails), in a savepoint rolled back at once."""
    claims = "" if persona.claims is None else json.dumps(dict(persona.claims), separators=(",", ":"))
    sub = "" if persona.claims is None else str(persona.claims.get("sub", ""))
    names = ["request.jwt.claims", "request.jwt.claim.sub", "request.jwt.claim.role", *settings]
    values = [claims, sub, persona.role, *settings.values()]
    try:
        with conn.transaction(force_rollback=True):
            conn.execute("select set_config(n, v, true) from unnest(%s::text[], %s::text[]) s(n, v)", (names, values))
            conn.execute(sql.SQL("set local role {}").format(sql.Identifier(persona.role)))
            row = conn.execute(query, params).fetchone()
    except psycopg.errors.QueryCanceled:
        raise
    except psycopg.Error:
        return None
    return [bool(v) for v in row or ()]
