"""Fixtures of the `platform` tier: one cluster built from Supabase's own SQL per PostgreSQL version
(tests/support/platform.py), built once per session, and a database per test cloned from the
template of a grant platform."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.platform import (
    PLATFORMS,
    PlatformBuildError,
    PlatformCluster,
    known_versions,
    remove_platform_cluster,
    start_platform_cluster,
)

VERSIONS = known_versions()


@pytest.fixture(scope="session", params=VERSIONS, ids=[v.label for v in VERSIONS])
def platform_cluster(request: pytest.FixtureRequest) -> Iterator[PlatformCluster]:
    try:
        cluster = start_platform_cluster(request.param)
    except PlatformBuildError as error:
        # Fail, never skip: a conformance test that cannot run has not passed.
        pytest.fail(str(error), pytrace=False)
    yield cluster
    remove_platform_cluster(cluster)


# The explicit-grant platform joins once every access kind declares service_role's privileges itself
# (issue 20, item 3): until then the server reaches nothing there.
ACCESS_PLATFORMS = tuple(p for p in PLATFORMS if p == "legacy")


@pytest.fixture(params=ACCESS_PLATFORMS)
def platform_db(request: pytest.FixtureRequest, platform_cluster: PlatformCluster) -> Iterator[str]:
    """Conninfo of `postgres` (over TCP, with its password, as a hosted project's) on a new database."""
    name = platform_cluster.create_database(request.param)
    try:
        yield platform_cluster.dsn(name)
    finally:
        platform_cluster.drop_database(name)
