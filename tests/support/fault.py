"""Killing a real `pulumi up` at a chosen point: a lock held by another session makes the
provider wait there, the test waits for its backend in pg_stat_activity, then kills."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg
from pulumi import automation as auto

from supabase_access.sql.transaction import LOCK_NAMESPACE
from tests.support.engine import REPO, engine_env

# application_name of the provider's connections (supabase_access/sql/database.py).
PLUGIN_APPLICATION = "supabase-access"
# How long a killed plugin's backends may take to end: they end because their client is gone, not
# because a wait timed out; generous, as on a loaded 2-core machine that takes a few client checks.
GONE_WITHIN_SECONDS = 20


def start_up(work_dir: Path, stack_name: str) -> subprocess.Popen[bytes]:
    """`pulumi up` of a stack made by engine.new_stack, in a process group of its own."""
    pulumi = shutil.which("pulumi")
    assert pulumi, "pulumi is not on PATH (source scripts/env.sh)"
    return subprocess.Popen(
        [pulumi, "up", "--yes", "--skip-preview", "--non-interactive", "--stack", stack_name],
        cwd=work_dir,
        env={**os.environ, **engine_env(work_dir / "state")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def plugin_backends(dsn: str, *, waiting: bool = False) -> list[tuple[int, str | None, str | None]]:
    """(pid, state, wait event) of the provider's backends on this database."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "select pid, state, wait_event from pg_stat_activity where application_name = %s "
            "and datname = current_database() and (not %s or wait_event_type = 'Lock')",
            (PLUGIN_APPLICATION, waiting),
        ).fetchall()


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {seconds}s waiting until {what}")
        time.sleep(0.2)


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (the engine starts each plugin in a process group of its own)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                # The field after the parenthesised command name: state, then the parent pid.
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int, marker: str = "") -> bool:
    """Running (not gone, not a zombie), and with `marker` in its command line."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, IndexError):
        return False
    return state != "Z" and marker in command


def kill(process: subprocess.Popen[bytes], *, tree: bool) -> list[int]:
    """SIGKILL the CLI alone, or it and every process below it; returns the processes below it."""
    below = descendants(process.pid)
    for pid in [process.pid, *below] if tree else [process.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=10)
    return below


def reap(pids: list[int]) -> None:
    """Whatever of a killed run is still alive at the end of a test (a failed test's orphans)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# The provider's module, in the command line of its plugin processes.
PLUGIN_MODULE = "supabase_access.provider"


def kill_up_waiting_on(
    work_dir: Path,
    dsn: str,
    locked: str,
    *,
    tree: bool,
    after: Callable[[], bool] | None = None,
    wait_seconds: float = 25,
) -> None:
    """Start `up` while another session holds the provider's lock on `locked` (`schema.table`); once
    `after` holds (if given) and the plugin waits for the lock, kill the CLI (or its whole tree). Still
    holding the lock, the plugin's backend and process must go because the plugin went."""
    with psycopg.connect(dsn, autocommit=True, application_name="fault-test-holder") as holder:
        holder.execute("select pg_advisory_lock(hashtext(%s))", (f"{LOCK_NAMESPACE}{locked}",))
        cli = start_up(work_dir, work_dir.name)
        below: list[int] = []
        try:
            if after is not None:
                wait_until(after, wait_seconds, "the change before the lock is applied")
            waiting = "the provider waits for the lock"
            wait_until(lambda: bool(plugin_backends(dsn, waiting=True)), wait_seconds, waiting)
            below = kill(cli, tree=tree)
            wait_until(lambda: not plugin_backends(dsn), GONE_WITHIN_SECONDS, "no plugin backend is left")
            wait_until(lambda: not [p for p in below if alive(p, PLUGIN_MODULE)], 5, "no plugin process is left")
        finally:
            reap(below or descendants(cli.pid))
            cli.kill()
        holder.execute("select pg_advisory_unlock_all()")


def catalog_snapshot(dsn: str) -> dict[str, list[tuple[object, ...]]]:
    """What a stack may change, as PostgreSQL reports it: policies, ACLs and RLS flags, columns (with
    type, NOT NULL, comment and ACL), constraints (with comment), indexes (with validity and comment),
    triggers, functions (with their ACLs) and sequences' ACLs outside PostgreSQL's own schemas, and the
    schemas with their comments."""
    queries = {
        "policies": "select schemaname, tablename, policyname, permissive, roles::text, cmd, qual, with_check "
        "from pg_policies order by 1, 2, 3",
        # ACL entries as a sorted list: destroy's grants put back the same entries, not their order. A
        # NULL ACL is the owner's default (acldefault): what PostgreSQL applies, and what any GRANT or
        # REVOKE (a Grant's, destroy's) writes out in full; only a superuser could set it NULL again.
        "tables": "select n.nspname, c.relname, array(select a::text from unnest("
        "coalesce(c.relacl, acldefault('r', c.relowner))) a order by 1), "
        "c.relrowsecurity, c.relforcerowsecurity "
        "from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.relkind in ('r', 'p') "
        "and n.nspname not in ('pg_catalog', 'information_schema') order by 1, 2",
        # The tables Realtime sends the changes of (RealtimePublication adds and takes back).
        "publications": "select pubname, schemaname, tablename from pg_publication_tables order by 1, 2, 3",
        # Column ACLs too (column rules grant column by column); an emptied one reads as none.
        "columns": "select n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
        "col_description(c.oid, a.attnum), array(select x::text from unnest(coalesce(a.attacl, '{}')) x order by 1) "
        "from pg_attribute a join pg_class c on c.oid = a.attrelid "
        "join pg_namespace n on n.oid = c.relnamespace where c.relkind = 'r' and a.attnum > 0 "
        "and not a.attisdropped and n.nspname not in ('pg_catalog', 'information_schema') order by 1, 2, 3",
        "constraints": "select conrelid::regclass::text, conname, pg_get_constraintdef(oid), convalidated, "
        "obj_description(oid, 'pg_constraint') "
        "from pg_constraint where connamespace <> 'pg_catalog'::regnamespace order by 1, 2",
        "indexes": "select i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), i.indisvalid, "
        "obj_description(i.indexrelid, 'pg_class') from pg_index i join pg_class c on c.oid = i.indexrelid "
        "where c.relnamespace <> 'pg_catalog'::regnamespace order by 1",
        "triggers": "select tgrelid::regclass::text, tgname, tgenabled from pg_trigger where not tgisinternal "
        "order by 1, 2",
        "functions": "select n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), p.prosecdef, "
        "md5(p.prosrc), array(select a::text from unnest(coalesce(p.proacl, acldefault('f', p.proowner))) a "
        "order by 1) from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
        "where n.nspname not in ('pg_catalog', 'information_schema') order by 1, 2, 3",
        "sequences": "select n.nspname, c.relname, array(select a::text from unnest("
        "coalesce(c.relacl, acldefault('s', c.relowner))) a order by 1) "
        "from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.relkind = 'S' "
        "and n.nspname not in ('pg_catalog', 'information_schema') order by 1, 2",
        "schemas": "select nspname, obj_description(oid, 'pg_namespace') from pg_namespace order by 1",
    }
    with psycopg.connect(dsn) as conn:
        return {name: conn.execute(query).fetchall() for name, query in queries.items()}  # type: ignore[arg-type]


def index_validity(dsn: str, name: str) -> bool | None:
    """pg_index.indisvalid of public.<name> (None: no such index)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select indisvalid from pg_index where indexrelid = to_regclass(%s)", (f"public.{name}",)
        ).fetchone()
    return None if row is None else bool(row[0])


@contextmanager
def up_waiting_on_index_build(
    work_dir: Path, dsn: str, build: str, hold: Sequence[str]
) -> Iterator[subprocess.Popen[bytes]]:
    """`up` of the stack in `work_dir`, held in a concurrent index build's wait phase (its invalid
    index `build` already in the catalog) by another session's open transaction (`hold`'s
    statements); yields the CLI then. Whatever of the run is left afterwards is killed."""
    holder = psycopg.connect(dsn, application_name="fault-test-holder")
    try:
        for statement in hold:
            holder.execute(statement)  # type: ignore[arg-type]
        cli = start_up(work_dir, work_dir.name)
        below = descendants(cli.pid)
        try:
            wait_until(lambda: index_validity(dsn, build) is False, 25, "the build is under way")
            wait_until(lambda: bool(plugin_backends(dsn, waiting=True)), 10, "the build waits for the holder")
            below = descendants(cli.pid)
            yield cli
        finally:
            reap(below)
            cli.kill()
            cli.wait()
    finally:
        holder.close()  # its transaction ends with it (or already ended with a stopped server)


def run_recover(work_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """scripts/recover in a test's project folder (engine.new_stack), with its file backend and passphrase."""
    return subprocess.run(
        [str(REPO / "scripts" / "recover"), *args],
        cwd=work_dir,
        env={**os.environ, **engine_env(work_dir / "state")},
        capture_output=True,
        text=True,
        check=False,
    )


def recover(stack: auto.Stack) -> None:
    """scripts/recover, the documented way out of a killed run: the file backend's checkpoint repaired
    (a kill during its write leaves an empty sidecar: "failed to load checkpoint: EOF"), cancel, up."""
    workspace = stack.workspace
    assert isinstance(workspace, auto.LocalWorkspace) and workspace.work_dir
    result = run_recover(Path(workspace.work_dir), stack.name)
    assert result.returncode == 0, result.stdout + result.stderr


class Prober:
    """Takes `sample()` (what the personas can do right now, per cell) in a thread until stopped, beside a change
    under test; `samples` holds every one taken."""

    def __init__(self, sample: Callable[[], dict[str, int]]) -> None:
        self.samples: list[dict[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(sample,), daemon=True)

    def _loop(self, sample: Callable[[], dict[str, int]]) -> None:
        while not self._stop.is_set():
            self.samples.append(sample())

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)


def wider(sample: dict[str, int], old: dict[str, int], new: dict[str, int]) -> dict[str, tuple[int, int, int]]:
    """The cells of `sample` beyond both the stable state before a change and the one after it."""
    return {cell: (n, old[cell], new[cell]) for cell, n in sample.items() if n > max(old[cell], new[cell])}
