"""A database built from Supabase's own SQL (../shared/supabase-platform/, read where it lies, never
copied), in a throwaway cluster of its own, for the `platform` test tier.

How it is built (the folder's README gives the order): `initdb` with bootstrap superuser
`supabase_admin`; its `build.sh` (Supabase's init scripts as `postgres`, the migrations as
`supabase_admin`, which make `postgres` NOSUPERUSER ... BYPASSRLS, the newer role/grant migrations,
the auth migrations as `supabase_auth_admin`); on PostgreSQL 16 and later, what Supabase's 16+/17
images add (below); Storage's migrations in numeric order as `supabase_storage_admin` with
`search_path=storage`; Realtime's part (`database/00-supabase-realtime.sql`: Realtime's own migrations
are not in the shared SQL); then the reference app's `database/01` and `02` as `postgres`, as a project's
owner loads its schema. Two template databases come out of it, one per grant platform (below); the
tests clone them, so a cluster is built once per session and version.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from review.postgrest import LOCAL_AUTHENTICATOR_PASSWORD
from tests.support.localdb import PLATFORMS
from tests.support.paths import REPO

PLATFORM_DIR: Final = REPO.parent / "shared" / "supabase-platform"
BUILD_SCRIPT: Final = PLATFORM_DIR / "build.sh"
POSTGRES_BIN_SCRIPT: Final = REPO / "scripts" / "postgres-bin"
STORAGE_MIGRATIONS: Final = PLATFORM_DIR / "storage"
REALTIME_SQL: Final = REPO / "database" / "00-supabase-realtime.sql"
APP_SCHEMA: Final = (REPO / "database" / "01-app-schema.sql", REPO / "database" / "02-baseline-access.sql")
ADMIN: Final = "supabase_admin"
# What the stacks log in with. Not build.sh's `postgres`: Pulumi masks every occurrence of a secret's value.
PASSWORD: Final = LOCAL_AUTHENTICATOR_PASSWORD
# psql for build.sh and the migrations: the server's own when it ships one, else Debian's 15 (a psql
# 15 talks to a 17 server).
FALLBACK_PSQL_DIR: Final = Path("/usr/lib/postgresql/15/bin")
# Ports tried for the cluster: from SUPABASE_ACCESS_PLATFORM_PORT (default 54460), ten of them.
DEFAULT_BASE_PORT: Final = 54460

# Supabase's 16+/17 images: since PostgreSQL 16 only a role with the ADMIN option on a role may grant
# it (CREATEROLE no longer suffices), and the shared files predate that (they are not edited). As
# supabase/postgres's 20250605172253_grant_with_admin_to_postgres_16_and_above does, `postgres` gets
# the ADMIN option on the three API roles. Storage's 0002-storage-schema.sql (storage.install_roles
# on, its default) grants the API roles and `postgres` to `authenticator` as `supabase_storage_admin`,
# so the service admin gets the option on all four (without it: `permission denied to grant role
# "anon"`; with the API roles alone: `... role "postgres"`).
ADMIN_OPTION_FOR_16_AND_LATER: Final = (
    "grant anon, authenticated, service_role to postgres with admin option",
    "grant anon, authenticated, service_role, postgres to supabase_storage_admin with admin option",
)

# Supabase's servers let postgres create, alter and drop policies on Storage's tables without owning
# them: supautils.policy_grants (its configuration lists storage.objects and storage.buckets for
# postgres), a preloaded library plain PostgreSQL lacks. Emulated here as the stand-in does
# (database/03-storage.sql): membership of their owner, as Supabase had it before 2025-04. Storage's
# role step (0002, storage.install_roles) made authenticator a member of postgres, and
# supabase_storage_admin is a member of authenticator (20231013070755): that membership is taken
# away first, and so is the 16+ step's postgres for supabase_storage_admin (only that role step
# needed it), or postgres in supabase_storage_admin would be a cycle (the stand-in never had either).
POLICY_GRANTS_EMULATION: Final = (
    "revoke postgres from authenticator",
    "revoke postgres from supabase_storage_admin cascade",
    "grant supabase_storage_admin to postgres",
)

# The explicit-grant platform (every project since 2026-10-30; the project setting "Default privileges
# for new entities" off), which the shared SQL does not cover: new tables, sequences and functions
# `postgres` creates in public are no longer granted to the API roles: postgres's default privileges
# in public give them nothing (Supabase does not publish the setting's statements; this is their
# effect). supabase_admin's stay, as on a project (postgres cannot change them).
EXPLICIT_GRANT_PLATFORM: Final = (
    "alter default privileges for role postgres in schema public"
    " revoke all on tables from anon, authenticated, service_role",
    "alter default privileges for role postgres in schema public"
    " revoke all on sequences from anon, authenticated, service_role",
    "alter default privileges for role postgres in schema public"
    " revoke all on functions from anon, authenticated, service_role",
)
# One template per grant platform of scripts/localdb's stand-in (tests/support/localdb.py).
TEMPLATES: Final = {platform: f"platform_{platform}" for platform in PLATFORMS}


class PlatformBuildError(RuntimeError):
    """A step of the build failed; the message names it and carries its output."""


@dataclass(frozen=True)
class PostgresVersion:
    major: int

    @property
    def label(self) -> str:
        return f"pg{self.major}"

    def server_bin_dir(self) -> Path:
        """The bin folder of this version's server, as scripts/localdb finds it (installed if needed)."""
        result = subprocess.run(
            [str(POSTGRES_BIN_SCRIPT), str(self.major)], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise PlatformBuildError(f"PostgreSQL {self.major}: scripts/postgres-bin failed:\n{result.stderr}")
        return Path(result.stdout.strip())


def known_versions() -> tuple[PostgresVersion, ...]:
    """The PostgreSQL versions the tier runs on: 17 (scripts/postgres-bin installs it) and 15, both
    in one run whichever version scripts/localdb runs; SUPABASE_ACCESS_PLATFORM_VERSIONS (e.g. `15`)
    narrows the list."""
    wanted = os.environ.get("SUPABASE_ACCESS_PLATFORM_VERSIONS", "17,15")
    return tuple(PostgresVersion(int(major)) for major in wanted.split(","))


def _psql_dir(bin_dir: Path) -> Path:
    return bin_dir if (bin_dir / "psql").is_file() else FALLBACK_PSQL_DIR


def _as_server_user(command: list[str]) -> list[str]:
    # The server must not run as root (scripts/localdb does the same).
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _free_port() -> int:
    base = int(os.environ.get("SUPABASE_ACCESS_PLATFORM_PORT", DEFAULT_BASE_PORT))
    for port in range(base, base + 10):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise PlatformBuildError(f"no free port in {base}-{base + 9} (SUPABASE_ACCESS_PLATFORM_PORT)")


def _run(step: str, command: list[str], env: Mapping[str, str] | None = None) -> None:
    result = subprocess.run(
        command, capture_output=True, text=True, check=False, cwd="/", env={**os.environ, **(env or {})}
    )
    if result.returncode != 0:
        raise PlatformBuildError(
            f"{step} exited with {result.returncode}:\n{result.stderr[-4000:]}{result.stdout[-2000:]}"
        )


@dataclass
class PlatformCluster:
    """A running cluster built from Supabase's SQL; `dsn(database)` logs in as `postgres` over TCP."""

    version: PostgresVersion
    bin_dir: Path
    folder: Path
    port: int

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    def dsn(self, database: str = "postgres", user: str = "postgres") -> str:
        return make_conninfo(host="127.0.0.1", port=self.port, dbname=database, user=user, password=PASSWORD)

    def admin_conninfo(self, database: str = "postgres") -> str:
        return make_conninfo(host=str(self.folder), port=self.port, dbname=database, user=ADMIN)

    def psql(self, step: str, user: str, *args: str, options: str = "", database: str = "postgres") -> None:
        command = [str(_psql_dir(self.bin_dir) / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1"]
        command += ["-h", str(self.folder), "-p", str(self.port), "-U", user, "-d", database, *args]
        _run(step, command, {"PGOPTIONS": options} if options else None)

    def start(self) -> None:
        initdb = [str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", ADMIN, "-E", "UTF8"]
        initdb += ["--locale=C.UTF-8", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"]
        _run("initdb", _as_server_user(initdb))
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        options += " -c synchronous_commit=off -c full_page_writes=off"
        pg_ctl = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.folder / "log")]
        _run("pg_ctl start", _as_server_user([*pg_ctl, "-w", "-t", "60", "-o", options, "start"]))

    def stop(self) -> None:
        pg_ctl = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w"]
        subprocess.run(_as_server_user([*pg_ctl, "stop"]), capture_output=True, check=False, cwd="/")

    def build(self) -> None:
        """Supabase's SQL, Storage's migrations and the reference app, then the two templates."""
        if not BUILD_SCRIPT.is_file():
            raise PlatformBuildError(
                f"Supabase's SQL is missing: expected {BUILD_SCRIPT} (../shared/supabase-platform/ beside "
                "the repository, see its README.md)"
            )
        path = f"{_psql_dir(self.bin_dir)}{os.pathsep}{os.environ['PATH']}"
        _run("build.sh", [str(BUILD_SCRIPT), str(self.folder), str(self.port)], {"PATH": path})
        if self.version.major >= 16:
            for statement in ADMIN_OPTION_FOR_16_AND_LATER:
                self.psql("the 16+ ADMIN options", ADMIN, "-c", statement)
        for migration in sorted(STORAGE_MIGRATIONS.glob("*.sql"), key=lambda p: int(p.name.split("-")[0])):
            self.psql(
                f"Storage's {migration.name}",
                "supabase_storage_admin",
                "-f",
                str(migration),
                options="-c search_path=storage",
            )
        for statement in POLICY_GRANTS_EMULATION:
            self.psql("supautils.policy_grants's emulation", ADMIN, "-c", statement)
        # Realtime's part (realtime.messages, realtime.topic()), which the Realtime service's own migrations
        # make on a project and the shared SQL does not hold: the stand-in, checked against Supabase's
        # documented definition (tests/db/test_realtime_schema.py), with its emulation of policy_grants.
        self.psql("Realtime's part", ADMIN, "-1", "-f", str(REALTIME_SQL))
        self.psql(
            "passwords",
            ADMIN,
            "-c",
            f"alter role postgres password '{PASSWORD}'",
            "-c",
            f"alter role authenticator password '{PASSWORD}'",
        )
        # The explicit-grant platform's template is made before the app is loaded, as on a project
        # created since the setting is off: the app's own tables get no API grant either.
        with psycopg.connect(self.admin_conninfo("template1"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("create database {} template postgres owner postgres").format(
                    sql.Identifier(TEMPLATES["explicit"])
                )
            )
        with psycopg.connect(self.admin_conninfo(TEMPLATES["explicit"]), autocommit=True) as db:
            for statement in EXPLICIT_GRANT_PLATFORM:
                db.execute(sql.SQL(statement))  # type: ignore[arg-type]
        for platform, template in TEMPLATES.items():
            database = "postgres" if platform == "legacy" else template
            for schema_file in APP_SCHEMA:
                self.psql(
                    f"the reference app's {schema_file.name}",
                    "postgres",
                    "-1",
                    "-f",
                    str(schema_file),
                    database=database,
                )
        with psycopg.connect(self.admin_conninfo("template1"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("create database {} template postgres owner postgres").format(
                    sql.Identifier(TEMPLATES["legacy"])
                )
            )
            for template in TEMPLATES.values():
                conn.execute(
                    sql.SQL("alter database {} with is_template true allow_connections false").format(
                        sql.Identifier(template)
                    )
                )

    def create_database(self, platform: str) -> str:
        """A new database cloned from the platform's template, owned by postgres as a project's is."""
        name = f"test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_conninfo("template1"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("create database {} template {} owner postgres").format(
                    sql.Identifier(name), sql.Identifier(TEMPLATES[platform])
                )
            )
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin_conninfo("template1"), autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def start_platform_cluster(version: PostgresVersion) -> PlatformCluster:
    """A new cluster in a folder of its own under /tmp (short enough for a unix socket), built."""
    bin_dir = version.server_bin_dir()
    folder = Path(tempfile.mkdtemp(prefix=f"sa-platform-{version.major}-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    cluster = PlatformCluster(version, bin_dir, folder, _free_port())
    try:
        cluster.start()
        cluster.build()
    except BaseException:
        remove_platform_cluster(cluster)
        raise
    return cluster


def remove_platform_cluster(cluster: PlatformCluster) -> None:
    cluster.stop()
    shutil.rmtree(cluster.folder, ignore_errors=True)
