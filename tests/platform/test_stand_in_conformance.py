"""The stand-in of scripts/localdb (database/00-supabase-platform.sql) against a database built from
Supabase's own SQL, on each PostgreSQL version: the API roles and `postgres` (attributes and
memberships), what they may do in `public` and `auth`, `postgres`'s default privileges in `public`,
`auth.uid()`, `auth.role()`, `auth.jwt()` (kind, who may call them, what they answer under PostgREST's
claims) and the `auth.users` columns the tests use. Every difference is listed here with its reason:
a new one fails, and so does one that went away (then drop it from the list)."""

from __future__ import annotations

import pytest

from tests.support.conformance import differences, facts
from tests.support.localdb import both_platforms
from tests.support.platform import PlatformCluster

pytestmark = pytest.mark.platform

# Fact -> why the stand-in differs from Supabase there.
KNOWN_DIFFERENCES = {
    "role postgres": (
        "Supabase's postgres has BYPASSRLS, the stand-in's has not: the db and e2e tiers run without it, "
        "this tier with it"
    ),
}
# PostgreSQL 15: Supabase gives postgres the API roles without ADMIN OPTION (CREATEROLE lets it grant
# them there); on 16 and later with it (20250605172253_grant_with_admin_to_postgres_16_and_above),
# which the stand-in gives on every version.
ADMIN_OPTION_BEFORE_16 = {
    f"postgres member of {role}": "CREATEROLE grants them on 15" for role in ("anon", "authenticated", "service_role")
}


@both_platforms
def test_the_stand_in_matches_supabases_sql(platform_cluster: PlatformCluster, platform: str, fresh_db: str) -> None:
    # Each of the stand-in's grant platforms against the same platform built from Supabase's SQL.
    name = platform_cluster.create_database(platform)
    try:
        found = differences(facts(fresh_db), facts(platform_cluster.dsn(name)))
    finally:
        platform_cluster.drop_database(name)
    expected = {**KNOWN_DIFFERENCES, **(ADMIN_OPTION_BEFORE_16 if platform_cluster.version.major < 16 else {})}
    assert set(found) == set(expected), {key: found.get(key) for key in set(found) ^ set(expected)}
    stand_in_postgres, built_postgres = found["role postgres"]
    assert {**stand_in_postgres, "bypassrls": True} == built_postgres, "postgres differs in more than BYPASSRLS"
