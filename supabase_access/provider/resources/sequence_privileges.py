"""SequencePrivileges: sequences follow their table.

A role that may insert into the table gets USAGE on the sequences its column defaults call (serial,
bigserial: `nextval` needs it); identity columns need none, and no role gets SELECT or UPDATE
(`setval`, which a rollback does not undo, so a caller could make the server's next insert fail on a
duplicate key). Every other privilege the named roles hold on the table's sequences is taken.

pulumi_postgresql.Grant (object type `sequence`) cannot say this: which sequences a table's defaults
call is a catalog fact the program does not know at preview, and a Grant given no object means every
sequence of the schema. So the sequences are read at each apply.

Before the stack's first change the privileges the roles held on the table's sequences are recorded
in the ledger (the first record stands; a sequence found later is added to it before it is changed),
and delete gives exactly those back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import psycopg

from supabase_access.provider import ledger, specs
from supabase_access.provider.base import DatabaseResource, InputError, Log, identifier, missing_table, split_id
from supabase_access.provider.spec import Props
from supabase_access.provider.specs import SequencePrivilegesInputs as Inputs
from supabase_access.provider.specs import SequencePrivilegesState as State
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from supabase_access.sql.transaction import lock_tables, write_transaction

LEDGER_KIND = "sequence-baseline"
USAGE = ["USAGE"]

Held = dict[tuple[str, str], dict[str, list[str]]]


@dataclass(frozen=True, kw_only=True)
class SequenceHeld(Props):
    """What the roles held on one sequence before the stack first changed it (role -> privileges)."""

    schema: str
    name: str
    privileges: Mapping[str, tuple[str, ...]] | None = None


@dataclass(frozen=True, kw_only=True)
class SequencesRecord(Props):
    """The ledger's record of a table's sequences: the first one recorded of each stands."""

    sequences: tuple[SequenceHeld, ...] = ()


def _roles(names: tuple[str, ...], setting: str) -> tuple[str, ...]:
    return tuple(sorted({identifier(r, setting) for r in names}))


def _wanted(sequences: list[catalog.TableSequence], inputs: Inputs) -> Held:
    return {
        (s.schema, s.name): {r: USAGE if s.called and r in inputs.usage else [] for r in inputs.roles}
        for s in sequences
    }


class SequencePrivileges(DatabaseResource[Inputs, State]):
    spec = specs.SEQUENCE_PRIVILEGES

    def normalize(self, inputs: Inputs) -> Inputs:
        roles, usage = _roles(inputs.roles, "roles"), _roles(inputs.usage, "usage")
        if not roles:
            raise InputError("roles", "roles: name the roles whose sequence privileges the stack manages")
        if set(usage) - set(roles):
            raise InputError("usage", f"usage: {', '.join(sorted(set(usage) - set(roles)))} not in roles")
        return Inputs(
            schema=identifier(inputs.schema, "schema"),
            table=identifier(inputs.table, "table"),
            roles=roles,
            usage=usage,
        )

    def validate(self, db: Database, olds: Inputs | None, checked: Inputs) -> None:
        with db.connection() as conn:
            if catalog.read_rls(conn, checked.schema, checked.table) is None:
                raise missing_table("table", checked.schema, checked.table)
            missing = catalog.missing_roles(conn, list(checked.roles))
        if missing:
            raise InputError("roles", f"roles: role {', '.join(missing)} does not exist")

    def _live(self, conn: psycopg.Connection, inputs: Inputs) -> tuple[list[catalog.TableSequence], Held]:
        sequences = catalog.read_table_sequences(conn, inputs.schema, inputs.table)
        return sequences, catalog.read_sequence_privileges(conn, sequences, list(inputs.roles))

    def _drifted(self, conn: psycopg.Connection, inputs: Inputs) -> set[str]:
        """The roles holding other privileges on the table's sequences than the inputs give."""
        sequences, held = self._live(conn, inputs)
        wanted = _wanted(sequences, inputs)
        return {r for key, by_role in wanted.items() for r, p in by_role.items() if sorted(held[key][r]) != p}

    def diff_live(self, db: Database, state: State, inputs: Inputs) -> dict[str, str]:
        with db.connection() as conn:
            drifted = self._drifted(conn, inputs)
        return {"usage": "update"} if drifted else {}

    def _apply(self, db: Database, inputs: Inputs) -> State:
        key = f"{inputs.schema}.{inputs.table}"
        with write_transaction(db) as conn:
            lock_tables(conn, inputs.schema, [inputs.table])
            ledger.prepare(conn)  # the private schema's lock after the table's
            sequences, held = self._live(conn, inputs)
            _record(conn, key, held)
            for (seq_schema, name), by_role in _wanted(sequences, inputs).items():
                conn.execute(render.revoke_all_on_sequence(list(inputs.roles), seq_schema, name))
                for role, privileges in by_role.items():
                    if privileges:
                        conn.execute(render.grant_on_sequence(role, seq_schema, name, privileges))
        return State.taking(inputs, sequences=tuple(f"{s.schema}.{s.name}" for s in sequences))

    def on_create(self, db: Database, inputs: Inputs, log: Log) -> tuple[str, State]:
        return f"{inputs.schema}.{inputs.table}", self._apply(db, inputs)

    def on_update(self, db: Database, state: State, inputs: Inputs, log: Log) -> State:
        return self._apply(db, inputs)

    def on_delete(self, db: Database, state: State, log: Log) -> None:
        schema, table = state.schema, state.table
        key = f"{schema}.{table}"
        with write_transaction(db) as conn:
            if catalog.read_rls(conn, schema, table) is not None:
                lock_tables(conn, schema, [table])
            recorded = ledger.read_as(conn, LEDGER_KIND, key, SequencesRecord) or SequencesRecord()
            live = {(s.schema, s.name) for s in catalog.read_table_sequences(conn, schema, table)}
            for entry in recorded.sequences:
                if (entry.schema, entry.name) not in live:
                    continue  # dropped since: nothing to give back
                privileges = entry.privileges or {}
                if not privileges:
                    continue
                conn.execute(render.revoke_all_on_sequence(sorted(privileges), entry.schema, entry.name))
                for role, held in privileges.items():
                    if held:
                        conn.execute(render.grant_on_sequence(role, entry.schema, entry.name, list(held)))
            ledger.forget(conn, LEDGER_KIND, key)
        ledger.tidy(db)

    def on_read(
        self, db: Database, resource_id: str, state: State | None, inputs: Inputs | None
    ) -> tuple[State, Inputs] | None:
        schema, table = split_id(resource_id, 2, "public.audit_log")
        known = state or inputs
        if known is None or not known.roles:
            return None
        asked = Inputs.taking(known, schema=schema, table=table)
        with db.connection() as conn:
            if catalog.read_rls(conn, schema, table) is None:
                return None
            drifted = self._drifted(conn, asked)
        # A role holding other privileges shows as drift (left out of usage / roles), which `up` repairs.
        read_inputs = replace(
            asked,
            roles=tuple(r for r in asked.roles if r not in drifted),
            usage=tuple(r for r in asked.usage if r not in drifted),
        )
        return State.taking(state, read_inputs), read_inputs


def _record(conn: psycopg.Connection, key: str, held: Held) -> None:
    """The baseline: what the roles held on each of the table's sequences before the stack first changed
    it. The first record stands; a sequence not in it yet (a serial column added since) is added."""
    recorded = ledger.read_as(conn, LEDGER_KIND, key, SequencesRecord)
    entries = recorded.sequences if recorded is not None else ()
    known = {(e.schema, e.name) for e in entries}
    new = tuple(
        SequenceHeld(schema=schema, name=name, privileges={role: tuple(p) for role, p in by_role.items()})
        for (schema, name), by_role in held.items()
        if (schema, name) not in known
    )
    if recorded is None:
        ledger.record(conn, LEDGER_KIND, key, SequencesRecord(sequences=new))
    elif new:
        ledger.record(conn, LEDGER_KIND, key, SequencesRecord(sequences=(*entries, *new)), replace=True)
