"""RealtimePublication: the stack's tables in Supabase's `supabase_realtime` publication (Postgres Changes).

Realtime sends a published table's row changes to each subscriber whose role and claims may select
the row, so the table's kind (its SELECT policies) decides who receives what. The publication is
shared by every stack and by hand-made settings: before the stack first adds a table, the ledger
records whether it was published already, and delete takes out only the tables it added.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from supabase_access.provider import ledger, specs
from supabase_access.provider.base import DatabaseResource, InputError, Log, identifier, not_importable
from supabase_access.provider.spec import Props
from supabase_access.provider.specs import RealtimePublicationInputs as Inputs
from supabase_access.provider.specs import RealtimePublicationState as State
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from supabase_access.sql.transaction import lock_tables, write_transaction

LEDGER_KIND = "realtime-publication-baseline"


@dataclass(frozen=True, kw_only=True)
class PublishedRecord(Props):
    """The ledger's record of a table: whether it was in the publication before the stack."""

    published: bool = False


# After the tables' locks: one writer of the publication's membership at a time (stacks share it).
PUBLICATION_LOCK = "(publication)"


def _key(publication: str, schema: str, table: str) -> str:
    return f"{publication}:{schema}.{table}"


published = catalog.published_tables


class RealtimePublication(DatabaseResource[Inputs, State]):
    spec = specs.REALTIME_PUBLICATION

    def normalize(self, inputs: Inputs) -> Inputs:
        return Inputs(
            schema=identifier(inputs.schema, "schema"),
            tables=tuple(sorted({identifier(t, "tables") for t in inputs.tables})),
            publication=identifier(inputs.publication, "publication"),
        )

    def validate(self, db: Database, olds: Inputs | None, checked: Inputs) -> None:
        with db.connection() as conn:
            missing = catalog.missing_tables(conn, checked.schema, checked.tables)
            exists = catalog.publication_exists(conn, checked.publication)
        if missing:
            names = ", ".join(f"{checked.schema}.{t}" for t in missing)
            raise InputError("tables", f"tables: {names} not found")
        if not exists:
            raise InputError(
                "publication", f"publication: {checked.publication} does not exist (every Supabase project has it)"
            )

    def diff_live(self, db: Database, state: State, inputs: Inputs) -> dict[str, str]:
        with db.connection() as conn:
            live = published(conn, inputs.publication, inputs.schema)
        return {"tables": "update"} if set(inputs.tables) - live or state.tables != inputs.tables else {}

    def _apply(self, db: Database, inputs: Inputs, dropped: list[str]) -> State:
        """Add the missing tables (recording first what was there), take out `dropped`; the tables added."""
        schema, publication = inputs.schema, inputs.publication
        with write_transaction(db) as conn:
            lock_tables(conn, schema, [*inputs.tables, *dropped])
            lock_tables(conn, schema, [PUBLICATION_LOCK])
            ledger.prepare(conn)
            live = published(conn, publication, schema)
            for table in inputs.tables:
                key = _key(publication, schema, table)
                ledger.record(conn, LEDGER_KIND, key, PublishedRecord(published=table in live))
                if table not in live:
                    conn.execute(render.publication_add_table(publication, schema, table))
            for table in dropped:
                self._give_back(conn, publication, schema, table, live)
            added = tuple(t for t in inputs.tables if not _was_published(conn, publication, schema, t))
        return State.taking(inputs, added=added)

    @staticmethod
    def _give_back(conn: psycopg.Connection, publication: str, schema: str, table: str, live: set[str]) -> None:
        key = _key(publication, schema, table)
        recorded = ledger.read_as(conn, LEDGER_KIND, key, PublishedRecord)
        if recorded is not None and not recorded.published and table in live:
            conn.execute(render.publication_drop_table(publication, schema, table))
        ledger.forget(conn, LEDGER_KIND, key)

    def on_create(self, db: Database, inputs: Inputs, log: Log) -> tuple[str, State]:
        return f"{inputs.publication}:{inputs.schema}", self._apply(db, inputs, [])

    def on_update(self, db: Database, state: State, inputs: Inputs, log: Log) -> State:
        return self._apply(db, inputs, sorted(set(state.tables) - set(inputs.tables)))

    def on_delete(self, db: Database, state: State, log: Log) -> None:
        schema, publication = state.schema, state.publication
        with write_transaction(db) as conn:
            existing = [t for t in state.tables if not catalog.missing_tables(conn, schema, [t])]
            lock_tables(conn, schema, existing)
            lock_tables(conn, schema, [PUBLICATION_LOCK])
            live = published(conn, publication, schema)
            for table in state.tables:
                self._give_back(conn, publication, schema, table, live)
        ledger.tidy(db)

    def on_read(
        self, db: Database, resource_id: str, state: State | None, inputs: Inputs | None
    ) -> tuple[State, Inputs] | None:
        known = state or inputs
        if known is None or not known.tables:
            raise not_importable("RealtimePublication", "the id names the publication, not the stack's tables")
        with db.connection() as conn:
            live = published(conn, known.publication, known.schema)
        read_inputs = Inputs(
            schema=known.schema, tables=tuple(t for t in known.tables if t in live), publication=known.publication
        )
        return State.taking(state, read_inputs), read_inputs


def _was_published(conn: psycopg.Connection, publication: str, schema: str, table: str) -> bool:
    recorded = ledger.read_as(conn, LEDGER_KIND, _key(publication, schema, table), PublishedRecord)
    return recorded is not None and recorded.published
