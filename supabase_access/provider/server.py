"""The provider plugin: Pulumi's experimental Python provider interface, dispatching by resource type."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
import grpc.aio
import psycopg
from pulumi.provider.experimental import provider as api
from pulumi.provider.experimental.server import ProviderServicer
from pulumi.runtime._grpc_settings import _GRPC_CHANNEL_OPTIONS
from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc, provider_pb2, provider_pb2_grpc

from supabase_access.management_api.access import ManagementApiAccess
from supabase_access.provider.base import (
    CHECK_LOG,
    CURRENT_STACK,
    DatabaseSteps,
    Diff,
    InputError,
    InputProblemsError,
    Notice,
    Resource,
)
from supabase_access.provider.resources.access_preflight import AccessPreflight
from supabase_access.provider.resources.auth_settings import AuthSettings
from supabase_access.provider.resources.channel_policies import ChannelPolicies
from supabase_access.provider.resources.constraint_presence import ConstraintPresence
from supabase_access.provider.resources.constraint_removal import ConstraintRemoval
from supabase_access.provider.resources.default_privileges_baseline import DefaultPrivilegesBaseline
from supabase_access.provider.resources.function_privileges import FunctionPrivileges
from supabase_access.provider.resources.group_functions import GroupFunctions
from supabase_access.provider.resources.immutable_columns import ImmutableColumns
from supabase_access.provider.resources.owner_copy import OwnerCopy
from supabase_access.provider.resources.policy_index import PolicyIndex
from supabase_access.provider.resources.realtime_publication import RealtimePublication
from supabase_access.provider.resources.realtime_settings import RealtimeSettings
from supabase_access.provider.resources.retention_policy import RetentionPolicy
from supabase_access.provider.resources.rls_for_new_tables import RlsForNewTables
from supabase_access.provider.resources.row_level_security import RowLevelSecurity
from supabase_access.provider.resources.sequence_privileges import SequencePrivileges
from supabase_access.provider.resources.storage_bucket import StorageBucket
from supabase_access.provider.resources.table_grant import TableGrant
from supabase_access.provider.resources.table_policies import TablePolicies
from supabase_access.provider.resources.write_quota import WriteQuota
from supabase_access.provider.schema import package_schema
from supabase_access.provider.spec import VERSION
from supabase_access.provider.values import (
    changed_config,
    known_plain_map,
    plain_map,
    property_map,
    state_properties,
    typed_config,
)
from supabase_access.sql.database import Database
from supabase_access.sql.errors import ConnectionFailedError, DatabaseError, database_error

DATABASE_RESOURCES: tuple[type[DatabaseSteps], ...] = (
    AccessPreflight,
    RowLevelSecurity,
    TablePolicies,
    TableGrant,
    ConstraintRemoval,
    ConstraintPresence,
    DefaultPrivilegesBaseline,
    SequencePrivileges,
    FunctionPrivileges,
    RlsForNewTables,
    GroupFunctions,
    PolicyIndex,
    OwnerCopy,
    WriteQuota,
    RetentionPolicy,
    RealtimePublication,
    ChannelPolicies,
    ImmutableColumns,
    StorageBucket,
)
HTTP_RESOURCES: tuple[type[Resource], ...] = (AuthSettings, RealtimeSettings)
RESOURCE_TYPES: dict[str, type[Resource]] = {r.token: r for r in (*DATABASE_RESOURCES, *HTTP_RESOURCES)}


def provider_resources(api: ManagementApiAccess, database: Callable[[], Database | None]) -> dict[str, Resource]:
    """One instance of each resource for a provider process, given what they reach the outside with."""
    resources: dict[str, Resource] = {r.token: r() for r in DATABASE_RESOURCES}
    resources[AuthSettings.token] = AuthSettings(api, database)
    resources[RealtimeSettings.token] = RealtimeSettings(api, database)
    return resources


KINDS = {"add": api.PropertyDiffKind.ADD, "delete": api.PropertyDiffKind.DELETE, "update": api.PropertyDiffKind.UPDATE}
T = TypeVar("T")


def _token(urn: str) -> str:
    # urn:pulumi:<stack>::<project>::<parent type>$<type>::<name>; the SDK helper keeps the parent types.
    # The stack goes with the call (to its worker thread too): what we create is marked with it.
    CURRENT_STACK.set(urn.split("::")[0].split(":", 2)[-1])
    return urn.split("::")[2].split("$")[-1]


class StepError(Exception):
    """A step's failure as the user sees it: one line naming the resource, no Python traceback."""


def step_message(urn: str, exc: BaseException) -> str:
    """What failed, on one line: the resource (as the program names it), then why."""
    name = urn.split("::")[-1]
    if isinstance(exc, psycopg.Error):
        exc = database_error(exc)
    if isinstance(exc, InputError):
        why = exc.reason
    elif isinstance(exc, DatabaseError):
        why = str(exc)
    else:
        why = f"{type(exc).__name__}: {exc}"
    return f"{name}: {' '.join(why.split())}"


class OneLineErrors(ProviderServicer):
    """The SDK's servicer, but a StepError reaches the engine as its message alone (the SDK adds a
    Python traceback to every error, which tells the user nothing)."""

    async def _quiet(self, step: Callable[..., Any], request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await step(request, context)
        except Exception as exc:
            cause = exc if isinstance(exc, StepError) else exc.__context__
            if isinstance(cause, StepError):
                await context.abort(grpc.StatusCode.UNKNOWN, str(cause))
            raise

    async def Create(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC's names)
        return await self._quiet(super().Create, request, context)

    async def Update(self, request: Any, context: Any) -> Any:  # noqa: N802
        return await self._quiet(super().Update, request, context)

    async def Delete(self, request: Any, context: Any) -> Any:  # noqa: N802
        return await self._quiet(super().Delete, request, context)

    async def Read(self, request: Any, context: Any) -> Any:  # noqa: N802
        return await self._quiet(super().Read, request, context)

    async def Diff(self, request: Any, context: Any) -> Any:  # noqa: N802
        return await self._quiet(super().Diff, request, context)

    async def Check(self, request: Any, context: Any) -> Any:  # noqa: N802
        return await self._quiet(super().Check, request, context)


class EngineLog:
    """Warnings shown to the user next to the resource, through the engine's Log service.

    Each message once per run (one plugin process serves one stack's operation): a warning
    several resources raise, or one raised at check and again at apply, is said by the first.
    """

    def __init__(self, engine_address: str) -> None:
        self._stub = engine_pb2_grpc.EngineStub(grpc.insecure_channel(engine_address)) if engine_address else None
        self._said: set[tuple[bool, str]] = set()
        self._said_lock = threading.Lock()

    def write(self, urn: str, message: str) -> None:
        notice = isinstance(message, Notice)
        with self._said_lock:
            if (notice, str(message)) in self._said:
                return
            self._said.add((notice, str(message)))
        if self._stub is None:
            print(f"{'info' if notice else 'warning'}: {message}", file=sys.stderr)
            return
        severity = engine_pb2.INFO if notice else engine_pb2.WARNING
        self._stub.Log(engine_pb2.LogRequest(severity=severity, message=message, urn=urn))


class SupabaseAccessProvider(api.Provider):
    def __init__(self, engine_address: str) -> None:
        self._db: Database | None = None
        self._config: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._log = EngineLog(engine_address)
        self._running = 0  # calls at work in threads; guarded by _lock
        self._api = ManagementApiAccess()
        self._resources = provider_resources(self._api, self._ledger_database)

    # --- configuration -----------------------------------------------------------------
    async def get_schema(self, request: api.GetSchemaRequest) -> api.GetSchemaResponse:
        return api.GetSchemaResponse(schema=package_schema())

    async def check_config(self, request: api.CheckRequest) -> api.CheckResponse:
        return api.CheckResponse(inputs=typed_config(request.new_inputs))

    async def diff_config(self, request: api.DiffRequest) -> api.DiffResponse:
        # The settings alone: the engine adds keys of its own (`version`, which the SDK's Provider sends
        # and a stack made before it lacks), and left to compare everything it would see an update.
        changed = changed_config(request.old_state, request.new_inputs)
        if changed is None:
            return api.DiffResponse()  # a setting not known yet (preview): the engine decides
        # The SDK's DiffConfig hands `changes` to the protocol as it is (False would read as "unknown",
        # True as "none") and cannot send a detailed diff (it reads `inputDiff`): the protocol's values, then.
        changes = provider_pb2.DiffResponse.DIFF_SOME if changed else provider_pb2.DiffResponse.DIFF_NONE
        return api.DiffResponse(changes=changes, diffs=sorted(changed))  # type: ignore[arg-type]

    async def configure(self, request: api.ConfigureRequest) -> api.ConfigureResponse:
        config = known_plain_map(request.args)
        if config is not None:
            self._config = config
            self._api.configure(config)
            if config.get("host"):
                # Connecting (TLS, SCRAM) overlaps with the engine's own work before its first call.
                threading.Thread(target=self._warm_up, name="warm-up", daemon=True).start()
        return api.ConfigureResponse(accept_secrets=True, supports_preview=False)

    def _warm_up(self) -> None:
        try:
            db = self._database()
        except ConnectionFailedError:
            return  # incomplete settings: the first call names them
        db.warm_up()

    def _database(self) -> Database:
        with self._lock:
            if self._db is None:
                self._db = Database(self._config)
            return self._db

    def _ledger_database(self) -> Database | None:
        # The Management API resources keep their baseline in the database's ledger when one is configured.
        return self._database() if self._config.get("host") else None

    def _resource(self, urn: str) -> Resource:
        return self._resources[_token(urn)]

    def _step(self, resource: Resource, step: str, *args: Any) -> Any:
        """The resource's step: a database resource gets the provider's connections first."""
        method = getattr(resource, step)
        if isinstance(resource, DatabaseSteps):
            return method(self._database(), *args)
        return method(*args)

    async def _run(self, work: Callable[[], T], urn: str = "") -> T:
        # psycopg is synchronous; threads keep the engine's parallel calls parallel.
        with self._lock:
            self._running += 1
        try:
            return await asyncio.to_thread(work)
        except (InputError, DatabaseError) as exc:
            if not urn:
                raise
            raise StepError(step_message(urn, exc)) from None
        except Exception as exc:
            if not urn:
                raise
            raise StepError(step_message(urn, exc)) from exc
        finally:
            with self._lock:
                self._running -= 1

    def stop_if_idle(self) -> bool:
        """Close the database connections and end the process, unless a call is at work."""
        # Called from a signal handler, on the main thread, which may hold the lock already.
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if self._running:
                return False
            if self._db is not None:
                self._db.close()
        finally:
            self._lock.release()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    # --- resource operations -----------------------------------------------------------
    async def check(self, request: api.CheckRequest) -> api.CheckResponse:
        resource = self._resource(request.urn)
        inputs = known_plain_map(request.new_inputs)
        if inputs is None:
            return api.CheckResponse(inputs=request.new_inputs)
        inputs = resource.spec.with_defaults(inputs)
        olds = plain_map(request.old_inputs)
        CHECK_LOG.set(self._warner(request.urn))
        try:
            checked = await self._run(lambda: self._step(resource, "check", olds, inputs))
        except (InputError, DatabaseError) as exc:
            # No property named: the engine would print the property's whole value before the reason
            # (6-20 KB for `policies`). The reason names the setting the user wrote.
            problems: list[Exception] = list(exc.errors) if isinstance(exc, InputProblemsError) else [exc]
            failures = [api.CheckFailure("", one_line(problem)) for problem in problems]
            return api.CheckResponse(inputs=request.new_inputs, failures=failures)
        except Exception as exc:
            raise StepError(step_message(request.urn, exc)) from exc
        return api.CheckResponse(inputs=property_map(checked))

    async def diff(self, request: api.DiffRequest) -> api.DiffResponse:
        resource = self._resource(request.urn)
        inputs = known_plain_map(request.new_inputs)
        if inputs is None:
            return api.DiffResponse(changes=None)
        state = plain_map(request.old_state)
        diff: Diff = await self._run(lambda: self._step(resource, "diff", state, inputs), request.urn)
        detailed = {k: api.PropertyDiff(KINDS[v], input_diff=False) for k, v in diff.changes.items()}
        detailed.update(
            {k: api.PropertyDiff(api.PropertyDiffKind.UPDATE_REPLACE, input_diff=True) for k in diff.replaces}
        )
        return api.DiffResponse(
            changes=diff.has_changes,
            replaces=diff.replaces,
            diffs=sorted({k.split(".")[0] for k in detailed}),
            detailed_diff=detailed,
            delete_before_replace=bool(diff.replaces),
        )

    async def create(self, request: api.CreateRequest) -> api.CreateResponse:
        resource = self._resource(request.urn)
        inputs = plain_map(request.properties)
        resource_id, outputs = await self._run(
            lambda: self._step(resource, "create", inputs, self._warner(request.urn)), request.urn
        )
        return api.CreateResponse(resource_id=resource_id, properties=state_properties(resource.spec, outputs))

    async def update(self, request: api.UpdateRequest) -> api.UpdateResponse:
        resource = self._resource(request.urn)
        state, inputs = plain_map(request.olds), plain_map(request.news)
        outputs = await self._run(
            lambda: self._step(resource, "update", state, inputs, self._warner(request.urn)), request.urn
        )
        return api.UpdateResponse(properties=state_properties(resource.spec, outputs))

    async def delete(self, request: api.DeleteRequest) -> None:
        resource = self._resource(request.urn)
        state = plain_map(request.properties)
        await self._run(lambda: self._step(resource, "delete", state, self._warner(request.urn)), request.urn)

    async def read(self, request: api.ReadRequest) -> api.ReadResponse:
        resource = self._resource(request.urn)
        state, inputs = plain_map(request.properties), plain_map(request.inputs)
        found = await self._run(lambda: self._step(resource, "read", request.resource_id, state, inputs), request.urn)
        if found is None:
            return api.ReadResponse(resource_id="")
        outputs, current_inputs = found
        return api.ReadResponse(
            resource_id=request.resource_id,
            properties=state_properties(resource.spec, outputs),
            inputs=property_map(current_inputs),
        )

    def _warner(self, urn: str) -> Callable[[str], None]:
        return lambda message: self._log.write(urn, message)


def one_line(exc: Exception) -> str:
    """A refusal as one line (PostgreSQL's messages span several: LINE 1: ..., HINT: ...)."""
    return " ".join(str(exc.reason if isinstance(exc, InputError) else exc).split())


# How often the plugin checks that the engine that started it is still there.
PARENT_CHECK_SECONDS = 0.5


def exit_when_orphaned(parent: int) -> None:
    """End the process once its parent (the engine) is gone, say killed with SIGKILL.

    Otherwise the plugin lives on, its connections and any lock it holds with it. The kernel
    closes our connections; each backend notices within client_connection_check_interval, even
    mid-statement or mid lock wait, and rolls back.
    """
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(1)


def main() -> None:
    engine_address = next((a for a in sys.argv[1:] if not a.startswith("-")), "")
    provider = SupabaseAccessProvider(engine_address)
    threading.Thread(target=exit_when_orphaned, args=(os.getppid(),), name="parent-watch", daemon=True).start()

    def on_engine_close(signum: int, frame: object) -> None:
        # The engine ends a plugin with SIGINT and waits for it to exit. The SDK server's own
        # teardown takes about 70 ms on every preview and up; with nothing at work there is
        # nothing to wait for. Otherwise the SDK's shutdown lets the running calls finish.
        if not provider.stop_if_idle():
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_engine_close)
    serve(sys.argv[1:], provider, engine_address)


def serve(args: list[str], provider: SupabaseAccessProvider, engine_address: str) -> None:
    """The SDK's provider server (pulumi.provider.experimental.server.main), with OneLineErrors as its servicer."""

    async def run() -> None:
        server = grpc.aio.server(options=_GRPC_CHANNEL_OPTIONS)
        provider_pb2_grpc.add_ResourceProviderServicer_to_server(
            OneLineErrors(args, VERSION, provider, engine_address=engine_address), server
        )
        port = server.add_insecure_port(address="127.0.0.1:0")
        await server.start()
        sys.stdout.buffer.write(f"{port}\n".encode())
        sys.stdout.buffer.flush()
        await server.wait_for_termination()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
