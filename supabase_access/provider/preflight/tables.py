"""The model's tables and roles against the database: they exist, the login role may alter them and keep
the stack's ledger, no other stack manages them, and the columns the column rules name are there."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from supabase_access.model.access_model import ModelError, parse_column_rules
from supabase_access.model.connection import CONNECTION_SETTINGS
from supabase_access.provider import claims, ledger
from supabase_access.provider.base import InputError
from supabase_access.provider.specs import AccessPreflightInputs as Inputs
from supabase_access.sql import catalog
from supabase_access.sql import statements as render


def table_problems(conn: psycopg.Connection, checked: Inputs, problems: list[InputError]) -> list[str]:
    """Add to `problems` what is wrong with the model's tables and roles; returns the tables no further
    check should look into (missing, or the login role may not even read them)."""
    schema, source, tables = checked.schema, checked.source, list(checked.tables)
    # On every preview (the database can be reached, the tables and roles are there): one round trip.
    missing, missing_roles = catalog.missing_tables_and_roles(conn, schema, tables, checked.roles)
    if missing:
        named = ", ".join(f"{schema}.{t}" for t in missing)
        problems.append(InputError("tables", f"{source}: table(s) {named} do not exist in the database"))
    if missing_roles:
        problems.append(
            InputError("roles", f"{source}: role(s) {', '.join(missing_roles)} do not exist in the database")
        )
    present = [t for t in tables if t not in missing]
    # Else PostgreSQL refuses the ALTERs half way through `up`, or ignores a REVOKE with a warning.
    foreign = catalog.tables_not_alterable(conn, schema, present)
    if foreign:
        login = catalog.current_user(conn)
        owned = "; ".join(f"{schema}.{t} is owned by {owner}" for t, owner in foreign.items())
        problems.append(
            InputError(
                "tables",
                f"{source}: the login role {login} ({CONNECTION_SETTINGS['username']}) "
                f"cannot alter every table: {owned}. Log in as the owner, or grant the owner role to the "
                "login role (`grant <owner> to <login role>`)",
            )
        )
    # One stack per table: another stack's table is refused here and again under its lock at apply.
    taken = claims.others(conn, schema, present)
    if taken:
        problems.append(InputError("tables", f"{source}: {claims.refusal(schema, taken)}"))
    try:
        _check_may_create_private_schema(conn)
    except InputError as exc:
        problems.append(exc)
    if checked.column_rules:
        problems.extend(_column_rule_problems(conn, schema, checked.column_rules, source, skip=[*missing, *foreign]))
    return [*missing, *foreign]


def _check_may_create_private_schema(conn: psycopg.Connection) -> None:
    """Every stack keeps its ledger in the private schema: the login role must be able to make both."""
    schema = ledger.LEDGER_SCHEMA
    rights = catalog.private_schema_rights(conn, schema, render.LEDGER_TABLE)
    login, setting = conn.info.user, CONNECTION_SETTINGS["username"]
    if not rights.exists and not rights.create_schemas:
        raise InputError(
            "tables",
            f"{setting}: the login role {login} may not create schemas in this database, and the stack keeps what "
            f"destroy restores in schema {schema}, which does not exist yet. Grant it (`grant create on database "
            f"{conn.info.dbname} to {login}`, as Supabase does for postgres) or create the schema as another role",
        )
    if rights.exists and not rights.has_table and not rights.create_in_schema:
        raise InputError(
            "tables",
            f"{setting}: the login role {login} may not create tables in schema {schema}, where the stack keeps "
            f"what destroy restores. Grant it (`grant create on schema {schema} to {login}`)",
        )


def _column_rule_problems(
    conn: psycopg.Connection, schema: str, rules: Mapping[str, Any], source: str, *, skip: Sequence[str]
) -> list[InputError]:
    """Each column a rule names exists in its table; a readOnly column gets a value without the client."""
    tables = [t for t in rules if t not in skip]
    defaults = catalog.column_defaults(conn, schema, tables)
    problems = []
    for table in tables:
        columns = defaults.get(table, {})
        try:
            parsed = parse_column_rules(rules[table], f"{source}: tables.{table}")
        except ModelError as exc:
            problems.append(InputError("columnRules", str(exc)))
            continue
        named = {
            "readOnly": parsed.read_only,
            "immutable": parsed.immutable,
            **{f"hidden.{role}": cols for role, cols in parsed.hidden},
        }
        for key, cols in named.items():
            unknown = [c for c in cols if c not in columns]
            if unknown:
                problems.append(
                    InputError(
                        "columnRules",
                        f"{source}: tables.{table}.{key}: {schema}.{table} has no column {', '.join(unknown)} "
                        f"(its columns: {', '.join(columns)})",
                    )
                )
        for column in parsed.read_only:
            if column in columns and not columns[column]:
                problems.append(
                    InputError(
                        "columnRules",
                        f"{source}: tables.{table}.readOnly: {column} has no default, and the API may never set it. "
                        f"Give it one (`alter table {schema}.{table} alter column {column} set default auth.uid()` "
                        "for who wrote the row; a column a trigger fills needs one too, which the trigger overrides)",
                    )
                )
    return problems
