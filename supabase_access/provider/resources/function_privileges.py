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

from typing import Any

import psycopg

from supabase_access.provider import ledger, specs
from supabase_access.provider.base import CHECK_LOG, InputError, Log, PlainDatabaseResource, identifier, split_id
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from supabase_access.sql.transaction import write_transaction

LEDGER_KIND = "function-baseline"
PUBLIC = "public"
MODEL_FUNCTIONS = "supabase-access:model.functions"


def _grantees(inputs: dict[str, Any]) -> list[str]:
    return [PUBLIC, *inputs["roles"], *inputs["server"]]


def _wanted(function: catalog.ExposedFunction, inputs: dict[str, Any]) -> dict[str, bool] | None:
    """grantee -> EXECUTE as the stack wants it; None for a function the stack leaves alone."""
    if function.name in inputs["unmanaged"]:
        return None
    callers = inputs["declared"].get(function.name) or []
    return {
        PUBLIC: False,
        **{role: role in callers for role in inputs["roles"]},
        **{role: True for role in inputs["server"]},
    }


def _undeclared_open(functions: list[catalog.ExposedFunction], inputs: dict[str, Any]) -> list[str]:
    """The functions outside the model that anon or authenticated may execute (through PUBLIC too)."""
    return [
        f.signature
        for f in functions
        if f.name not in inputs["declared"]
        and f.name not in inputs["unmanaged"]
        and not f.returns_trigger
        and any(f.execute.get(g) for g in (PUBLIC, *inputs["roles"]))
    ]


class FunctionPrivileges(PlainDatabaseResource):
    spec = specs.FUNCTION_PRIVILEGES

    def normalize(self, inputs: dict[str, Any]) -> dict[str, Any]:
        declared = inputs.get("declared") or {}
        if not isinstance(declared, dict):
            raise InputError("declared", "declared: expected a map of function name to the roles that may call it")
        roles = sorted({identifier({"roles": r}, "roles") for r in inputs.get("roles") or []})
        checked_declared = {}
        for name, callers in sorted(declared.items()):
            identifier({"declared": name}, "declared")
            if not isinstance(callers, list) or set(callers) - set(roles):
                raise InputError("declared", f"declared.{name}: expected a list of roles among {', '.join(roles)}")
            checked_declared[name] = sorted(callers)
        unmanaged = sorted({identifier({"unmanaged": n}, "unmanaged") for n in inputs.get("unmanaged") or []})
        enforce = inputs.get("enforce", False)
        if not isinstance(enforce, bool):
            raise InputError("enforce", "enforce: expected true or false")
        return {
            "schema": identifier(inputs, "schema", "public"),
            "roles": roles,
            "server": sorted({identifier({"server": r}, "server") for r in inputs.get("server") or []}),
            "declared": checked_declared,
            "unmanaged": unmanaged,
            "enforce": enforce,
        }

    # Overridden: the schema's functions change without the inputs changing, so every preview reads
    # them and names each undeclared one anon or authenticated may call.
    def check(self, db: Database, olds: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
        checked = self.normalize(inputs)
        with db.connection() as conn:
            missing = catalog.missing_roles(conn, [*checked["roles"], *checked["server"]])
            functions = catalog.read_exposed_functions(conn, checked["schema"], _grantees(checked))
        if missing:
            raise InputError("roles", f"roles: role {', '.join(missing)} does not exist")
        open_ones = _undeclared_open(functions, checked)
        log = CHECK_LOG.get()
        if open_ones and log is not None:
            what = (
                "are closed to them by this prod stack" if checked["enforce"] else "stay open (a dev stack only warns)"
            )
            lines = "; ".join(f"{s}: add `{s.split('(')[0].split('.', 1)[1]}: [authenticated]`" for s in open_ones)
            log(
                f"{MODEL_FUNCTIONS}: {len(open_ones)} function(s) of {checked['schema']} that anon or authenticated "
                f"may execute (through PUBLIC's default too) are not in the model and {what}. To keep one "
                f"callable through the API, add it with the roles that may call it: {lines}"
            )
        return checked

    def _drifted(self, conn: psycopg.Connection, inputs: dict[str, Any]) -> list[str]:
        if not inputs["enforce"]:
            return []
        functions = catalog.read_exposed_functions(conn, inputs["schema"], _grantees(inputs))
        return [
            f.signature
            for f in functions
            if (wanted := _wanted(f, inputs)) is not None and any(f.execute[g] != w for g, w in wanted.items())
        ]

    def diff_live(self, db: Database, state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, str]:
        with db.connection() as conn:
            drifted = self._drifted(conn, inputs)
        return {"declared": "update"} if drifted else {}

    def _apply(self, db: Database, inputs: dict[str, Any]) -> dict[str, Any]:
        if not inputs["enforce"]:
            return dict(inputs)
        schema = inputs["schema"]
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
        return dict(inputs)

    def create(self, db: Database, inputs: dict[str, Any], log: Log) -> tuple[str, dict[str, Any]]:
        return f"functions.{inputs['schema']}", self._apply(db, inputs)

    def update(self, db: Database, state: dict[str, Any], inputs: dict[str, Any], log: Log) -> dict[str, Any]:
        return self._apply(db, inputs)

    def delete(self, db: Database, state: dict[str, Any], log: Log) -> None:
        schema = state["schema"]
        with write_transaction(db) as conn:
            recorded = ledger.read(conn, LEDGER_KIND, schema) or {}
            entries = recorded.get("functions") or []
            grantees = sorted({g for e in entries for g in e["execute"]})
            live = {(f.name, f.arguments) for f in catalog.read_exposed_functions(conn, schema, grantees)}
            for entry in entries:
                if (entry["name"], entry["arguments"]) not in live:
                    continue  # dropped since
                ref = render.function_ref(schema, entry["name"], entry["arguments"])
                held = entry["execute"]
                if taken := [g for g, w in held.items() if not w]:
                    conn.execute(render.set_function_execute(ref, taken, grant=False))
                if given := [g for g, w in held.items() if w]:
                    conn.execute(render.set_function_execute(ref, given, grant=True))
            ledger.forget(conn, LEDGER_KIND, schema)
        ledger.tidy(db)

    def read(
        self, db: Database, resource_id: str, state: dict[str, Any], inputs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        split_id(resource_id, 2, "functions.public")
        known = dict(state or inputs or {})
        if not known:
            return None
        with db.connection() as conn:
            drifted = self._drifted(conn, known)
        # A function whose EXECUTE differs shows as drift (the declared map read as empty), which `up` repairs.
        read_inputs = {**known, "declared": {} if drifted else known.get("declared") or {}}
        return read_inputs, read_inputs


def _record(conn: psycopg.Connection, schema: str, functions: list[catalog.ExposedFunction]) -> None:
    """The baseline: EXECUTE per grantee on each function before the stack first changed it."""
    recorded = ledger.read(conn, LEDGER_KIND, schema)
    entries: list[dict[str, Any]] = list((recorded or {}).get("functions") or [])
    known = {(e["name"], e["arguments"]) for e in entries}
    new = [
        {"name": f.name, "arguments": f.arguments, "execute": f.execute}
        for f in functions
        if (f.name, f.arguments) not in known
    ]
    if recorded is None:
        ledger.record(conn, LEDGER_KIND, schema, {"functions": new})
    elif new:
        ledger.record(conn, LEDGER_KIND, schema, {**recorded, "functions": [*entries, *new]}, replace=True)
