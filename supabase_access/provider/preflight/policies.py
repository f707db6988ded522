"""Each table's policies: PostgreSQL parses them (with the group functions they call made first, in a
rolled-back transaction), every role they name may run their command, and on prod no write policy for
the API's roles admits every row."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import psycopg
from psycopg.sql import Composed

from supabase_access.model.access_model import ModelError
from supabase_access.model.policy import PolicySpec, policy_from_plain
from supabase_access.provider.base import InputError
from supabase_access.provider.resources.group_functions import prelude_for
from supabase_access.provider.resources.table_policies import NORMALIZED
from supabase_access.provider.specs import AccessPreflightInputs as Inputs
from supabase_access.sql import catalog
from supabase_access.sql.errors import PolicyRejectedError

TABLE_COMMANDS = ("SELECT", "INSERT", "UPDATE", "DELETE")
# Roles a request from the API can take: a write policy for them that admits every row opens the table.
API_ROLES = frozenset({"anon", "authenticated", "public"})

# Role -> privileges, as `grants` and each table's `tableGrants` give them.
RoleGrants = Mapping[str, Sequence[str]]


def group_helper_prelude(checked: Inputs) -> list[Composed]:
    """The group helper functions the policies call: made in each parse's rolled-back transaction."""
    return prelude_for(checked.schema, checked.group_helpers) if checked.group_helpers is not None else []


def table_grants(checked: Inputs, table: str) -> RoleGrants:
    """Role -> the privileges this stack grants on `table` (roles not there keep the database's grants)."""
    return (checked.table_grants or {}).get(table, checked.grants)


def policy_setting(checked: Inputs, table: str, name: str) -> str:
    """The stack setting that declared a policy, as errors name it."""
    return checked.policy_settings.get(f"{table}.{name}") or f"{checked.source}: policy {table}.{name}"


def policy_problems(
    conn: psycopg.Connection,
    checked: Inputs,
    *,
    skip: Sequence[str],
    previous: Mapping[str, object],
    same_rules: bool,
    prelude: Sequence[Composed],
    added: catalog.AddedColumns,
    problems: list[InputError],
) -> None:
    """Add to `problems` what is wrong with each table's policies. Left out: the tables in `skip`, and
    those whose policies equal `previous`'s (the last check's) when the grants and rules are the same
    (`same_rules`): accepted exactly before."""
    if prelude and not all(previous.get(t) == raw for t, raw in checked.policies.items()):
        _check_prelude(conn, prelude, checked.source)
    for table, raw in checked.policies.items():
        if table in skip or (previous.get(table) == raw and same_rules):
            continue  # said before (the login role may not even read it), or accepted exactly before

        def setting(name: str, table: str = table) -> str:
            return policy_setting(checked, table, name)

        try:
            specs = {name: policy_from_plain(name, spec, setting=setting(name)) for name, spec in raw.items()}
            normalized = NORMALIZED.get(conn, checked.schema, table, raw, specs, prelude, added)
        except ModelError as exc:
            problems.append(InputError("policies", str(exc)))
            continue
        except PolicyRejectedError as exc:
            problems.append(
                InputError("policies", f"{setting(exc.policy)}: PostgreSQL rejected the policy: {exc.message}")
            )
            continue
        try:
            _check_roles_hold_grants(conn, checked.schema, table, normalized, table_grants(checked, table), setting)
            if checked.refuse_open_writes:
                _check_no_open_writes(conn, checked.schema, table, normalized, setting, prelude, added)
        except InputError as exc:
            problems.append(exc)


def _check_prelude(conn: psycopg.Connection, prelude: Sequence[Composed], source: str) -> None:
    try:
        with conn.transaction(force_rollback=True):
            for statement in prelude:
                conn.execute(statement)
    except psycopg.Error as exc:
        raise InputError(
            "groupHelpers",
            f"{source}: PostgreSQL refused the functions that give each user's groups (for the membership "
            f"tables' policies): {exc.diag.message_primary or exc}",
        ) from exc


def _needed_privileges(command: str) -> tuple[str, ...]:
    # A FOR ALL policy is of use as soon as the role holds any one of the commands.
    return TABLE_COMMANDS if command == "ALL" else (command,)


def _check_roles_hold_grants(
    conn: psycopg.Connection,
    schema: str,
    table: str,
    policies: Mapping[str, PolicySpec],
    managed: RoleGrants,
    setting: Callable[[str], str],
) -> None:
    """A policy for a role that cannot run its command on the table never applies: likely a mistake."""
    for name, policy in policies.items():
        needed = _needed_privileges(policy.command)
        in_database = {}
        for role in policy.roles:
            if role == "public":
                continue
            if role in managed:
                if not set(needed) & set(managed[role] or ()):
                    held = ", ".join(managed[role] or ()) or "no privileges"
                    raise InputError(
                        "policies",
                        f"{setting(name)}.roles: {role} has no {' or '.join(needed)} grant on {schema}.{table} "
                        f"(this stack grants {role} {held}), so the policy would never apply. "
                        f"Remove {role} from the policy's roles, or use a profile that grants it",
                    )
            else:
                in_database[role] = needed
        for role in catalog.roles_lacking_privilege(conn, schema, table, in_database):
            raise InputError(
                "policies",
                f"{setting(name)}.roles: {role} has no {' or '.join(needed)} grant on {schema}.{table} in the "
                f"database, so the policy would never apply. Remove {role} from the policy's roles, or grant it",
            )


def _check_no_open_writes(
    conn: psycopg.Connection,
    schema: str,
    table: str,
    policies: Mapping[str, PolicySpec],
    setting: Callable[[str], str],
    prelude: Sequence[Composed] = (),
    added: catalog.AddedColumns | None = None,
) -> None:
    """On prod, no permissive write policy for the API's roles may admit every row (asked of PostgreSQL's planner)."""
    expressions = {}
    for name, policy in policies.items():
        if policy.permissive and policy.command != "SELECT" and API_ROLES & set(policy.roles):
            for part, expression in (("using", policy.using), ("withCheck", policy.with_check)):
                if expression is not None:
                    expressions[(name, part)] = expression
    keys = list(expressions)
    folded = catalog.expressions_folded_to_true(
        conn, schema, table, {str(i): expressions[key] for i, key in enumerate(keys)}, prelude, added
    )
    for index in folded:
        name, part = keys[int(index)]
        policy = policies[name]
        raise InputError(
            "policies",
            f"{setting(name)}.{part}: on a prod stack a {policy.command} policy for "
            f"{', '.join(sorted(API_ROLES & set(policy.roles)))} may not admit every row, and PostgreSQL reduces "
            f"`{expressions[(name, part)]}` to constant true. Check the row (e.g. its owner column against "
            "(select auth.uid())), or make the policy restrictive (permissive: false)",
        )
