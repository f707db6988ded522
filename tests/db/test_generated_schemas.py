"""The review tools on any schema the model accepts: Hypothesis draws apps (tests/support/generated_apps.py),
and on each, in a schema of its own in one database, the model parses, the preflight passes, the owner
profile's policies and grants go in in one transaction, and the access matrix agrees, cell by cell,
with what the model's kinds say (no `!` but the deletes a child row without ON DELETE CASCADE stops).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, event, given, seed, settings
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from review.matrix import compute_matrix, personas_for
from supabase_access.model.access_model import AccessModel, parse_model
from supabase_access.model.profiles import AccessPlan, plan_access
from supabase_access.model.rule_data import group_lookup_to_plain, rule_to_plain
from supabase_access.provider.resources.access_preflight import AccessPreflight
from supabase_access.provider.resources.group_functions import creation_statements
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from tests.support.generated_apps import EXAMPLES, SEED, GeneratedApp, generated_apps
from tests.support.localdb import create_database_from_template, drop_database

pytestmark = pytest.mark.db

SOURCE = "generated model"


@pytest.fixture(scope="module")
def app_db(localdb_url: str, localdb_admin_conninfo: str) -> Iterator[tuple[str, Database]]:
    """One database for every example (each gets a schema of its own), and the provider's pool on it."""
    name = create_database_from_template(localdb_admin_conninfo)
    dsn = make_conninfo(localdb_url, dbname=name)
    params = conninfo_to_dict(dsn)
    database = Database(
        {
            "host": params["host"],
            "port": params.get("port", 5432),
            "database": name,
            "username": params["user"],
            "password": params["password"],
        }
    )
    try:
        yield dsn, database
    finally:
        database.close()
        drop_database(localdb_admin_conninfo, name)


def preflight_inputs(plan: AccessPlan) -> dict[str, Any]:
    """What a prod stack's AccessRules gives its AccessPreflight for the plan."""
    policies = {access.table: {rule.name: rule_to_plain(rule) for rule in access.rules} for access in plan.tables}
    roles = sorted({r for specs in policies.values() for p in specs.values() for r in p["roles"]} | set(plan.grants))
    return {
        "schema": plan.schema,
        "tables": list(policies),
        "roles": roles,
        "policies": policies,
        "source": SOURCE,
        "grants": {role: list(p) for role, p in plan.grants.items()},
        "refuseOpenWrites": True,
        "exposedSchemas": [plan.schema],
        "uncoveredTables": "fail",
        "tableGrants": {a.table: {r: list(p) for r, p in a.grants.items()} for a in plan.tables if a.grants} or None,
        "groupHelpers": [group_lookup_to_plain(lookup) for lookup in plan.group_lookups] or None,
    }


def apply_owner_profile(conn: psycopg.Connection, plan: AccessPlan) -> None:
    """Group functions, RLS, policies and grants of the owner profile, in one transaction."""
    with conn.transaction():
        for lookup in plan.group_lookups:
            for statement in creation_statements(plan.schema, lookup):
                conn.execute(statement)
        for statement in render.plan_table_statements(plan):
            conn.execute(statement)


def drop_app(conn: psycopg.Connection, model: AccessModel | None, schema: str) -> None:
    conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema)))
    if model is not None and model.group_names:
        for lookup in plan_access(model, "owner").group_lookups:
            for function in (lookup.member_function, lookup.admin_function):
                conn.execute(
                    sql.SQL("drop function if exists {}()").format(sql.Identifier(lookup.helper_schema, function))
                )


def check_app(dsn: str, database: Database, app: GeneratedApp, schema: str) -> None:
    model: AccessModel | None = None
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            conn.execute(app.ddl(schema))
            model = parse_model(app.model(schema), setting=SOURCE)
            plan = plan_access(model, "owner")
            AccessPreflight().check(database, {}, preflight_inputs(plan))
            apply_owner_profile(conn, plan)
            matrix = compute_matrix(dsn, model)
            personas = {p.label: p for p in personas_for(model)}
            wrong = [
                f"{cell.label()}: {matrix.state(cell)}, the model says {expected}"
                + (f" ({matrix.failed[cell]})" if cell in matrix.failed else "")
                for cell in matrix.cells()
                if matrix.state(cell) != (expected := app.expected(cell, personas[cell.persona]))
            ]
            assert wrong == [], "\n".join(wrong)
            unexpected = [note for cell, note in matrix.failed.items() if not note.startswith("ForeignKeyViolation")]
            assert unexpected == []
        finally:
            drop_app(conn, model, schema)


_schemas = itertools.count()


# A fixed seed: CI draws the same 200 apps every run (`--hypothesis-show-statistics` counts their kinds).
@seed(SEED)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(app=generated_apps())
def test_the_review_tools_work_on_every_generated_schema(app_db: tuple[str, Database], app: GeneratedApp) -> None:
    dsn, database = app_db
    for table in app.tables:
        event(f"table kind: {table.kind}" + (f", write: {table.write}" if table.write else ""))
    event(f"path hops: {app.depth}")
    check_app(dsn, database, app, f"generated_{next(_schemas)}")
