"""RlsForNewTables: an event trigger that switches row-level security on for every table created
later in the exposed schemas, so a table nobody declared is born closed.

PostgreSQL lets only superusers create event triggers (on Supabase, postgres may, through
supautils). When the login role may not, the preview says so, nothing is created, and the stack's
default privileges and the next preview's coverage check are what keep such a table closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import psycopg

from supabase_access.model import hardening
from supabase_access.provider import ledger, specs
from supabase_access.provider.base import (
    CHECK_LOG,
    CURRENT_STACK,
    DatabaseResource,
    InputError,
    Log,
    identifier,
    not_importable,
)
from supabase_access.provider.private_schema import drop_private_schema_if_unused, ensure_private_schema
from supabase_access.provider.spec import Props
from supabase_access.provider.specs import RlsForNewTablesInputs as Inputs
from supabase_access.provider.specs import RlsForNewTablesState as State
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from supabase_access.sql.transaction import write_transaction


class RlsForNewTables(DatabaseResource[Inputs, State]):
    spec = specs.RLS_FOR_NEW_TABLES

    def normalize(self, inputs: Inputs) -> Inputs:
        schemas = [identifier(s, "schemas") for s in inputs.schemas]
        if not schemas:
            raise InputError("schemas", "schemas: name the exposed schemas")
        private = identifier(inputs.private_schema or hardening.PRIVATE_SCHEMA, "privateSchema")
        return Inputs(schemas=tuple(sorted(set(schemas))), private_schema=private)

    def _refusal(self, db: Database, inputs: Inputs) -> str | None:
        """Why the login role may not install the trigger (a rolled-back try), or None."""
        try:
            with write_transaction(db, rollback=True) as conn:
                self._install(conn, inputs)
        except psycopg.errors.InsufficientPrivilege as exc:
            return exc.diag.message_primary or str(exc)
        return None

    def validate(self, db: Database, olds: Inputs | None, checked: Inputs) -> None:
        refusal = self._refusal(db, checked)
        log = CHECK_LOG.get()
        if refusal is not None and log is not None:
            log(_not_installed(refusal))

    def _install(self, conn: psycopg.Connection, inputs: Inputs) -> None:
        private = inputs.private_schema or hardening.PRIVATE_SCHEMA
        ensure_private_schema(conn, private)
        for statement in render.drop_rls_event_trigger(private)[:1]:
            conn.execute(statement)
        conn.execute(render.create_rls_event_function(private, list(inputs.schemas)))
        conn.execute(render.create_rls_event_trigger(private))

    def _apply(self, db: Database, inputs: Inputs, log: Log) -> State:
        refusal = self._refusal(db, inputs)
        if refusal is not None:
            log(_not_installed(refusal))
            return State.taking(inputs, installed=False)
        with write_transaction(db) as conn:
            users = _users(conn)
            users[CURRENT_STACK.get()] = inputs.schemas
            self._install(conn, replace(inputs, schemas=_union(users)))
            ledger.record(conn, LEDGER_KIND, render.RLS_EVENT_TRIGGER, TriggerUsers(stacks=users), replace=True)
        return State.taking(inputs, installed=True)

    def diff_live(self, db: Database, state: State, inputs: Inputs) -> dict[str, str]:
        if state.schemas != inputs.schemas:
            return {"schemas": "update"}
        if state.installed and not self._present(db):
            return {"installed": "update"}
        return {}

    def _present(self, db: Database) -> bool:
        with db.connection() as conn:
            return catalog.event_trigger_exists(conn, render.RLS_EVENT_TRIGGER)

    def on_create(self, db: Database, inputs: Inputs, log: Log) -> tuple[str, State]:
        return render.RLS_EVENT_TRIGGER, self._apply(db, inputs, log)

    def on_update(self, db: Database, state: State, inputs: Inputs, log: Log) -> State:
        return self._apply(db, inputs, log)

    def on_delete(self, db: Database, state: State, log: Log) -> None:
        if not state.installed:
            return
        private = state.private_schema or "supabase_access"
        with write_transaction(db) as conn:
            users = _users(conn)
            users.pop(CURRENT_STACK.get(), None)
            if users:
                # One trigger per database: the stacks still using it keep it, for their schemas.
                self._install(conn, Inputs(private_schema=private, schemas=_union(users)))
                ledger.record(conn, LEDGER_KIND, render.RLS_EVENT_TRIGGER, TriggerUsers(stacks=users), replace=True)
                return
            ledger.forget(conn, LEDGER_KIND, render.RLS_EVENT_TRIGGER)
            for statement in render.drop_rls_event_trigger(private):
                conn.execute(statement)
        ledger.tidy(db)
        drop_private_schema_if_unused(db, private)

    def on_read(
        self, db: Database, resource_id: str, state: State | None, inputs: Inputs | None
    ) -> tuple[State, Inputs] | None:
        if state is None:
            raise not_importable("RlsForNewTables", "declare it in the program (prod stacks do); its up installs it")
        return replace(state, installed=bool(state.installed) and self._present(db)), inputs or Inputs.taking(state)


# The ledger's record of the stacks using the one event trigger of a database, and their schemas.
LEDGER_KIND = "rls-for-new-tables"


@dataclass(frozen=True, kw_only=True)
class TriggerUsers(Props):
    """The ledger's record: stack -> the schemas it asked the trigger to cover."""

    stacks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def _users(conn: psycopg.Connection) -> dict[str, tuple[str, ...]]:
    """Stack -> the schemas it asked the trigger to cover (inside a write transaction)."""
    recorded = ledger.read_as(conn, LEDGER_KIND, render.RLS_EVENT_TRIGGER, TriggerUsers)
    return dict(recorded.stacks) if recorded is not None else {}


def _union(users: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    return tuple(sorted({s for schemas in users.values() for s in schemas}))


def _not_installed(refusal: str) -> str:
    return (
        f"RLS is not switched on automatically for new tables: the login role may not create event triggers "
        f"({refusal}; PostgreSQL allows superusers only, Supabase allows its postgres role). New tables are still "
        "born closed by the default privileges (anon and authenticated get nothing on them), and the next preview "
        "names them"
    )
