"""FunctionPrivileges: the functions of one exposed schema the API may call, and nothing else.

PostgreSQL lets PUBLIC execute every new function, so every function of an exposed schema is an
`/rpc` endpoint for anon and authenticated unless taken back. The model's `functions:` names those
the API may call and who; on a prod stack (`enforce`) every other function of the schema is closed
to anon, authenticated and PUBLIC (trigger functions included: a trigger runs its function without
the caller's EXECUTE), and service_role keeps EXECUTE on all of them (given explicitly, as PUBLIC's
is taken). Functions named in `unmanaged` (the deprecated `supabase-access:definerObjects`) are left
as they are. On a dev stack nothing changes: the preview only names them.

pulumi_postgresql.Grant (object type `function`) cannot say "every other function": the set is a
catalog fact that changes without the program, so it is read at each preview and apply.

Before the stack's first change the EXECUTE of PUBLIC and the roles on each function is recorded in
the ledger (the first record stands; a function found later is added before it is changed), and
delete gives exactly that back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import psycopg

from supabase_access.provider import ledger, specs
from supabase_access.provider.base import CHECK_LOG, DatabaseResource, InputError, Log, identifier, split_id
from supabase_access.provider.spec import Props
from supabase_access.provider.specs import FunctionPrivilegesInputs as Inputs
from supabase_access.provider.specs import FunctionPrivilegesState as State
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from supabase_access.sql.transaction import write_transaction

LEDGER_KIND = "function-baseline"


@dataclass(frozen=True, kw_only=True)
class FunctionExecute(Props):
    """Who held EXECUTE on one function before the stack first changed it (grantee -> holds it)."""

    name: str
    arguments: str
    execute: Mapping[str, bool]


@dataclass(frozen=True, kw_only=True)
class FunctionsRecord(Props):
    """The ledger's record of a schema's functions: the first one recorded of each stands."""

    functions: tuple[FunctionExecute, ...] = ()


PUBLIC = "public"
MODEL_FUNCTIONS = "supabase-access:model.functions"


def _grantees(inputs: Inputs) -> list[str]:
    return [PUBLIC, *inputs.roles, *inputs.server]


def _wanted(function: catalog.ExposedFunction, inputs: Inputs) -> dict[str, bool] | None:
    """grantee -> EXECUTE as the stack wants it; None for a function the stack leaves alone."""
    if function.name in inputs.unmanaged:
        return None
    callers = inputs.declared.get(function.name) or ()
    return {
        PUBLIC: False,
        **{role: role in callers for role in inputs.roles},
        **{role: True for role in inputs.server},
    }


def _undeclared_open(functions: list[catalog.ExposedFunction], inputs: Inputs) -> list[str]:
    """The functions outside the model that anon or authenticated may execute (through PUBLIC too)."""
    return [
        f.signature
        for f in functions
        if f.name not in inputs.declared
        and f.name not in inputs.unmanaged
        and not f.returns_trigger
        and any(f.execute.get(g) for g in (PUBLIC, *inputs.roles))
    ]


def _identifiers(names: tuple[str, ...], setting: str) -> tuple[str, ...]:
    return tuple(sorted({identifier(n, setting) for n in names}))


class FunctionPrivileges(DatabaseResource[Inputs, State]):
    spec = specs.FUNCTION_PRIVILEGES
    # The schema's functions change without the inputs changing: every preview reads them and names
    # each undeclared one anon or authenticated may call.
    validate_every_check = True

    def normalize(self, inputs: Inputs) -> Inputs:
        roles = _identifiers(inputs.roles, "roles")
        checked_declared = {}
        for name, callers in sorted(inputs.declared.items()):
            identifier(name, "declared")
            if set(callers) - set(roles):
                raise InputError("declared", f"declared.{name}: expected a list of roles among {', '.join(roles)}")
            checked_declared[name] = tuple(sorted(callers))
        return Inputs(
            schema=identifier(inputs.schema, "schema"),
            roles=roles,
            server=_identifiers(inputs.server, "server"),
            declared=checked_declared,
            unmanaged=_identifiers(inputs.unmanaged, "unmanaged"),
            enforce=inputs.enforce,
        )

    def validate(self, db: Database, olds: Inputs | None, checked: Inputs) -> None:
        with db.connection() as conn:
            missing = catalog.missing_roles(conn, [*checked.roles, *checked.server])
            functions = catalog.read_exposed_functions(conn, checked.schema, _grantees(checked))
        if missing:
            raise InputError("roles", f"roles: role {', '.join(missing)} does not exist")
        open_ones = _undeclared_open(functions, checked)
        log = CHECK_LOG.get()
        if open_ones and log is not None:
            what = "are closed to them by this prod stack" if checked.enforce else "stay open (a dev stack only warns)"
            lines = "; ".join(f"{s}: add `{s.split('(')[0].split('.', 1)[1]}: [authenticated]`" for s in open_ones)
            log(
                f"{MODEL_FUNCTIONS}: {len(open_ones)} function(s) of {checked.schema} that anon or authenticated "
                f"may execute (through PUBLIC's default too) are not in the model and {what}. To keep one "
                f"callable through the API, add it with the roles that may call it: {lines}"
            )

    def _drifted(self, conn: psycopg.Connection, inputs: Inputs) -> list[str]:
        if not inputs.enforce:
            return []
        functions = catalog.read_exposed_functions(conn, inputs.schema, _grantees(inputs))
        return [
            f.signature
            for f in functions
            if (wanted := _wanted(f, inputs)) is not None and any(f.execute[g] != w for g, w in wanted.items())
        ]

    def diff_live(self, db: Database, state: State, inputs: Inputs) -> dict[str, str]:
        with db.connection() as conn:
            drifted = self._drifted(conn, inputs)
        return {"declared": "update"} if drifted else {}

    def _apply(self, db: Database, inputs: Inputs) -> State:
        if not inputs.enforce:
            return State.taking(inputs)
        schema = inputs.schema
        with write_transaction(db) as conn:
            ledger.prepare(conn)
            functions = catalog.read_exposed_functions(conn, schema, _grantees(inputs))
            _record(conn, schema, functions)
            for function in functions:
                wanted = _wanted(function, inputs)
                if wanted is None:
                    continue
                ref = render.function_ref(schema, function.name, function.arguments)
                if taken := [g for g, w in wanted.items() if not w and function.execute[g]]:
                    conn.execute(render.set_function_execute(ref, taken, grant=False))
                if given := [g for g, w in wanted.items() if w and not function.execute[g]]:
                    conn.execute(render.set_function_execute(ref, given, grant=True))
        return State.taking(inputs)

    def on_create(self, db: Database, inputs: Inputs, log: Log) -> tuple[str, State]:
        return f"functions.{inputs.schema}", self._apply(db, inputs)

    def on_update(self, db: Database, state: State, inputs: Inputs, log: Log) -> State:
        return self._apply(db, inputs)

    def on_delete(self, db: Database, state: State, log: Log) -> None:
        schema = state.schema
        with write_transaction(db) as conn:
            entries = (ledger.read_as(conn, LEDGER_KIND, schema, FunctionsRecord) or FunctionsRecord()).functions
            grantees = sorted({g for e in entries for g in e.execute})
            live = {(f.name, f.arguments) for f in catalog.read_exposed_functions(conn, schema, grantees)}
            for entry in entries:
                if (entry.name, entry.arguments) not in live:
                    continue  # dropped since
                ref = render.function_ref(schema, entry.name, entry.arguments)
                held = entry.execute
                if taken := [g for g, w in held.items() if not w]:
                    conn.execute(render.set_function_execute(ref, taken, grant=False))
                if given := [g for g, w in held.items() if w]:
                    conn.execute(render.set_function_execute(ref, given, grant=True))
            ledger.forget(conn, LEDGER_KIND, schema)
        ledger.tidy(db)

    def on_read(
        self, db: Database, resource_id: str, state: State | None, inputs: Inputs | None
    ) -> tuple[State, Inputs] | None:
        split_id(resource_id, 2, "functions.public")
        known = state or inputs
        if known is None:
            return None
        asked = Inputs.taking(known)
        with db.connection() as conn:
            drifted = self._drifted(conn, asked)
        # A function whose EXECUTE differs shows as drift (the declared map read as empty), which `up` repairs.
        read_inputs = replace(asked, declared={} if drifted else asked.declared)
        return State.taking(read_inputs), read_inputs


def _record(conn: psycopg.Connection, schema: str, functions: list[catalog.ExposedFunction]) -> None:
    """The baseline: EXECUTE per grantee on each function before the stack first changed it."""
    recorded = ledger.read_as(conn, LEDGER_KIND, schema, FunctionsRecord)
    entries = recorded.functions if recorded is not None else ()
    known = {(e.name, e.arguments) for e in entries}
    new = tuple(
        FunctionExecute(name=f.name, arguments=f.arguments, execute=f.execute)
        for f in functions
        if (f.name, f.arguments) not in known
    )
    if recorded is None:
        ledger.record(conn, LEDGER_KIND, schema, FunctionsRecord(functions=new))
    elif new:
        ledger.record(conn, LEDGER_KIND, schema, FunctionsRecord(functions=(*entries, *new)), replace=True)
