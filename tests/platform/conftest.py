"""Fixtures of the `platform` tier: one cluster built from Supabase's own SQL per PostgreSQL version
(tests/support/platform.py), built once per session, and a database per test cloned from the
template of a grant platform."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.platform import (
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


@pytest.fixture
def platform_db(platform: str, platform_cluster: PlatformCluster) -> Iterator[str]:
    """Conninfo of `postgres` (over TCP, with its password, as a hosted project's) on a new database of
    the grant platform `platform` (tests/conftest.py; `@both_platforms` runs a test on each)."""
    name = platform_cluster.create_database(platform)
    try:
        yield platform_cluster.dsn(name)
    finally:
        platform_cluster.drop_database(name)
