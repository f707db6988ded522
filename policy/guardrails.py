"""The guardrail rules, on plain data: what the policy pack checks, without the policy SDK.

The pack (`__main__.py`) turns the engine's resources into `StackResource`s and reports each
`Finding` as MANDATORY on a prod stack and ADVISORY on a dev stack. Kept free of Pulumi and of
the program's own code, so a change in the program cannot quietly change what is checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

PROVIDER: Final = "supabase-access:index"
STACK_TYPE: Final = "pulumi:pulumi:Stack"
ACCESS_RULES_TYPE: Final = "supabase-access:components:AccessRules"
TABLE_POLICIES_TYPE: Final = f"{PROVIDER}:TablePolicies"
# pulumi_postgresql's Grant: one per role and table (object type table).
TABLE_GRANT_TYPE: Final = "postgresql:index/grant:Grant"
ENVIRONMENT_KEY: Final = "supabase-access:environment"
RLS_TYPE: Final = f"{PROVIDER}:RowLevelSecurity"
CONSTRAINT_REMOVAL_TYPE: Final = f"{PROVIDER}:ConstraintRemoval"
AUTH_SETTINGS_TYPE: Final = f"{PROVIDER}:AuthSettings"

# Roles every visitor of a Supabase project acts as (`public` is PostgreSQL's "every role").
VISITOR_ROLES: Final = frozenset({"anon", "authenticated", "public"})
WRITE_COMMANDS: Final = frozenset({"INSERT", "UPDATE", "DELETE", "ALL"})
RATE_LIMIT_PREFIX: Final = "rate_limit_"
# Stack names that are prod whatever their config says (`prod`, `local-prod`, `prod-eu`, ...).
PROD_NAME_PARTS: Final = frozenset({"prod", "production"})


class Unknown:
    """A value the engine cannot know yet (an output during preview)."""

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN: Final = Unknown()

# Rule name -> what it asks for (the policy description shown with every violation).
RULES: Final[dict[str, str]] = {
    "no-open-write-policies": (
        "No permissive INSERT/UPDATE/DELETE/ALL policy whose USING or WITH CHECK is literally true "
        "for anon, authenticated or public: anyone could change every row."
    ),
    "no-row-blind-extra-policies": (
        "No extra permissive policy (supabase-access:extraPolicies) for anon, authenticated or public whose USING "
        "or WITH CHECK names no column of the row (`auth.uid() is not null`, `(select true)`, `random() >= 0`) "
        "or compares a column with itself (`user_id = user_id`): it admits every row to whoever it admits, "
        'unless its entry declares `widens: "<why>"`. A static subset of the preflight\'s probe.'
    ),
    "no-constraint-removal": "No ConstraintRemoval: foreign keys and other constraints stay in place.",
    "rls-enabled": "Row level security stays on (a RowLevelSecurity resource) on every table given policies or grants.",
    "no-open-profile": "The access profile is not `open` (supabase-access:profile).",
    "auth-rate-limits": (
        "Supabase Auth rate limits are managed: an AuthSettings resource (supabase-access:index:AuthSettings) "
        "with rate_limit_* settings (supabase-access:authSettings, projectRef and accessToken)."
    ),
}


@dataclass(frozen=True)
class StackResource:
    type: str
    urn: str
    name: str
    # Output properties as the engine sends them for stack checks; UNKNOWN where not known yet.
    props: Mapping[str, Any]


@dataclass(frozen=True)
class Finding:
    rule: str
    message: str
    urn: str | None = None


@dataclass(frozen=True)
class StackEnvironment:
    name: str  # "prod" or "dev"
    why: str


def stack_environment(stack_name: str | None, config: Mapping[str, Any] | None) -> StackEnvironment:
    """prod or dev, and why; prod when anything says prod or nothing says dev (fail closed).

    Evidence: the stack's name and its `supabase-access:environment` setting, which Pulumi's
    Python language host hands the pack (PULUMI_STACK, PULUMI_CONFIG). Missing either, the
    stack is checked as prod.
    """
    declared = (config or {}).get(ENVIRONMENT_KEY)
    named_prod = stack_name is not None and bool(PROD_NAME_PARTS & set(re.split(r"[-_.]", stack_name.lower())))
    if declared == "prod":
        return StackEnvironment("prod", f"stack {stack_name!r} has {ENVIRONMENT_KEY} prod")
    if named_prod:
        return StackEnvironment("prod", f"stack {stack_name!r} is named as a prod stack")
    if declared == "dev":
        return StackEnvironment("dev", f"stack {stack_name!r} has {ENVIRONMENT_KEY} dev")
    return StackEnvironment("prod", f"stack {stack_name!r} does not set {ENVIRONMENT_KEY}: checked as prod")


def findings(resources: Sequence[StackResource]) -> list[Finding]:
    """Every guardrail finding of one stack, in rule order."""
    return [
        *open_write_policies(resources),
        *row_blind_extra_policies(resources),
        *constraint_removals(resources),
        *rls_off(resources),
        *open_profile(resources),
        *missing_rate_limits(resources),
    ]


def open_write_policies(resources: Sequence[StackResource]) -> Iterator[Finding]:
    """One finding per TablePolicies resource that holds open write policies, naming them."""
    for resource in _of_type(resources, TABLE_POLICIES_TYPE):
        policies = resource.props.get("policies")
        if not isinstance(policies, Mapping):
            continue
        open_ones = [
            f"{name} ({described})"
            for name, policy in sorted(policies.items())
            if isinstance(policy, Mapping) and (described := _open_write(policy))
        ]
        if open_ones:
            table = _qualified(resource)
            yield Finding("no-open-write-policies", f"{table}: {'; '.join(open_ones)}", resource.urn)


def row_blind_extra_policies(resources: Sequence[StackResource]) -> Iterator[Finding]:
    """One finding per extra policy whose clause cannot tell one row from another (see RULES).

    The AccessRules component names the stack's extra policies and its declared widenings; the
    TablePolicies resources hold them as PostgreSQL will. The preflight proves the rest on the
    database (it probes every extra policy as the API's personas); this pack has no database.
    """
    extras: dict[str, set[str]] = {}
    declared: set[str] = set()
    for component in _of_type(resources, ACCESS_RULES_TYPE):
        named = component.props.get("extraPolicies")
        if isinstance(named, Mapping):
            for table, names in named.items():
                if isinstance(names, list):
                    extras.setdefault(str(table), set()).update(str(n) for n in names)
        widenings = component.props.get("widenings")
        if isinstance(widenings, Mapping):
            declared.update(str(key) for key in widenings)
    for resource in _of_type(resources, TABLE_POLICIES_TYPE):
        table = _text(resource.props.get("table"), "?")
        policies = resource.props.get("policies")
        if not isinstance(policies, Mapping):
            continue
        for name, policy in sorted(policies.items()):
            if name not in extras.get(table, set()) or f"{table}.{name}" in declared or not isinstance(policy, Mapping):
                continue
            if policy.get("permissive", True) is False or not _visitor_roles(policy):
                continue
            blind = [
                f"{label} ({policy[key]})"
                for key, label in (("using", "USING"), ("withCheck", "WITH CHECK"))
                if isinstance(policy.get(key), str) and row_blind(policy[key])
            ]
            if blind:
                yield Finding(
                    "no-row-blind-extra-policies",
                    f"{_qualified(resource)}: supabase-access:extraPolicies.{table}.{name} "
                    f"({_text(policy.get('command'), 'ALL')} to {', '.join(_visitor_roles(policy))}): "
                    f"{' and '.join(blind)} cannot tell one row from another, so it admits every row to whoever it "
                    'admits; check the row, or declare `widens: "<why>"` on the entry',
                    resource.urn,
                )


# Words of an expression that are no column: SQL keywords and type names (a cast's target).
_NOT_COLUMNS: Final = frozenset(
    "select from where and or not is null true false exists in any all some array case when then else end as "
    "distinct between like ilike similar escape at time zone interval cast current_date current_time "
    "current_timestamp current_user current_role session_user localtime localtimestamp with limit offset "
    "unknown".split()
)
_STRINGS: Final = re.compile(r"(?:[eE])?'(?:[^']|'')*'|\$\$.*?\$\$", re.S)
_WORD: Final = re.compile(r'"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*|::\s*[A-Za-z_][A-Za-z0-9_]*|\d[\w.]*|\S')
_SELF_COMPARISON: Final = re.compile(
    r'^\s*\(*\s*("?[A-Za-z_][\w$]*"?(?:\s*\.\s*"?[A-Za-z_][\w$]*"?)?)\s*(?:=|is\s+not\s+distinct\s+from)\s*'
    r"\1\s*\)*\s*$",
    re.I,
)


def row_blind(expression: str) -> bool:
    """True when the expression names no column (nor any relation) or compares a column with itself.

    Static and partial by design: `user_id is not null` names a column and is not caught here, nor
    a subquery over another table; the preflight's probe on the database catches both.
    """
    if _SELF_COMPARISON.match(expression):
        return True
    tokens = _WORD.findall(_STRINGS.sub("''", expression))

    def at(i: int) -> str:
        return tokens[i].lower() if 0 <= i < len(tokens) else ""

    for i, token in enumerate(tokens):
        if token.startswith("::") or not (token[0].isalpha() or token[0] in '_"'):
            continue  # a cast's type, a number, an operator
        called = at(i + 1) == "(" or (at(i + 1) == "." and at(i + 3) == "(") or (at(i - 1) == "." and at(i + 1) == "(")
        if called or token.lower() in _NOT_COLUMNS or at(i - 1) == "as":
            continue  # a function and its schema, a keyword, the type of cast(x as type)
        return False
    return True


def _visitor_roles(policy: Mapping[str, Any]) -> list[str]:
    roles_value = policy.get("roles")
    roles = {str(r).lower() for r in roles_value} if isinstance(roles_value, list) and roles_value else {"public"}
    return sorted(roles & VISITOR_ROLES)


def constraint_removals(resources: Sequence[StackResource]) -> Iterator[Finding]:
    for resource in _of_type(resources, CONSTRAINT_REMOVAL_TYPE):
        constraint = _text(resource.props.get("constraint"), "?")
        yield Finding(
            "no-constraint-removal", f"{_qualified(resource)}: constraint {constraint} is removed", resource.urn
        )


def rls_off(resources: Sequence[StackResource]) -> Iterator[Finding]:
    """Tables given policies or grants with no RowLevelSecurity resource keeping RLS on.

    A RowLevelSecurity resource dropped from the program is deleted, which puts back the RLS
    state found before (possibly off), so its absence is the finding.
    """
    # Not the `enabled` output: after a refresh it shows RLS switched off by hand, which the next
    # `up` repairs, and blocking that preview would block the repair.
    protected = {_table_key(r) for r in _of_type(resources, RLS_TYPE)}
    exposed: dict[tuple[str, str], str] = {}
    for resource in _of_type(resources, TABLE_POLICIES_TYPE):
        exposed.setdefault(_table_key(resource), resource.urn)
    for resource in _of_type(resources, TABLE_GRANT_TYPE):
        objects = resource.props.get("objects")
        privileges = resource.props.get("privileges")
        # A grant of nothing (anon on prod) exposes nothing.
        if isinstance(objects, Sequence) and not isinstance(objects, str) and privileges != []:
            for table in objects:
                exposed.setdefault((_text(resource.props.get("schema"), "public"), _text(table, "?")), resource.urn)
    for (schema, table), urn in sorted(exposed.items()):
        if (schema, table) not in protected and table != "?":
            yield Finding("rls-enabled", f"{schema}.{table}: no RowLevelSecurity resource keeps RLS on", urn)


def open_profile(resources: Sequence[StackResource]) -> Iterator[Finding]:
    """Once per stack: the AccessRules component (or the stack output) says profile `open`."""
    for resource in (*_of_type(resources, ACCESS_RULES_TYPE), *_of_type(resources, STACK_TYPE)):
        if resource.props.get("profile") == "open":
            yield Finding("no-open-profile", f"{resource.name}: profile is open", resource.urn)
            return


def missing_rate_limits(resources: Sequence[StackResource]) -> Iterator[Finding]:
    auth = list(_of_type(resources, AUTH_SETTINGS_TYPE))
    for resource in auth:
        settings = resource.props.get("settings")
        if isinstance(settings, Mapping) and any(str(key).startswith(RATE_LIMIT_PREFIX) for key in settings):
            return
    root = next((r.urn for r in resources if r.type == STACK_TYPE), None)
    if not auth:
        yield Finding("auth-rate-limits", "the stack declares no AuthSettings resource", root)
    else:
        names = ", ".join(r.name for r in auth)
        yield Finding("auth-rate-limits", f"AuthSettings {names} sets no rate_limit_* setting", auth[0].urn)


def is_literally_true(expression: object) -> bool:
    """`true`, `TRUE`, `(true)`, ` ( ( true ) ) `: what PostgreSQL keeps for "every row"."""
    if not isinstance(expression, str):
        return False
    text = expression.strip().lower()
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    return text == "true"


def _open_write(policy: Mapping[str, Any]) -> str | None:
    """How a policy is an open write policy for visitors ("INSERT to anon: WITH CHECK (true)"), else None."""
    command = _text(policy.get("command"), "ALL").upper()  # PostgreSQL's default is ALL
    if command not in WRITE_COMMANDS or policy.get("permissive", True) is False:
        return None
    roles_value = policy.get("roles")
    # No roles is PostgreSQL's TO PUBLIC.
    roles = {str(r).lower() for r in roles_value} if isinstance(roles_value, list) and roles_value else {"public"}
    visitors = sorted(roles & VISITOR_ROLES)
    clauses = [
        f"{label} (true)"
        for key, label in (("using", "USING"), ("withCheck", "WITH CHECK"))
        if is_literally_true(policy.get(key))
    ]
    if not visitors or not clauses:
        return None
    return f"{command} to {', '.join(visitors)}: {' and '.join(clauses)}"


def _of_type(resources: Iterable[StackResource], resource_type: str) -> Iterator[StackResource]:
    return (r for r in resources if r.type == resource_type)


def _table_key(resource: StackResource) -> tuple[str, str]:
    return _text(resource.props.get("schema"), "public"), _text(resource.props.get("table"), "?")


def _qualified(resource: StackResource) -> str:
    return ".".join(_table_key(resource))


def _text(value: object, default: str) -> str:
    return value if isinstance(value, str) else default
