"""RealtimePublication: the stack's tables in Supabase's `supabase_realtime` publication (Postgres Changes).

Realtime sends a published table's row changes to each subscriber whose role and claims may select
the row, so the table's kind (its SELECT policies) decides who receives what. The publication is
shared by every stack and by hand-made settings: before the stack first adds a table, the ledger
records whether it was published already, and delete takes out only the tables it added.
"""

from __future__ import annotations

from typing import Any

import psycopg

from supabase_access.provider import ledger, specs
from supabase_access.provider.base import InputError, Log, PlainDatabaseResource, identifier, not_importable
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from supabase_access.sql.transaction import lock_tables, write_transaction

LEDGER_KIND = "realtime-publication-baseline"
# After the tables' locks: one writer of the publication's membership at a time (stacks share it).
PUBLICATION_LOCK = "(publication)"


def _key(publication: str, schema: str, table: str) -> str:
    return f"{publication}:{schema}.{table}"


def published(conn: psycopg.Connection, publication: str, schema: str) -> set[str]:
    return {t for s, t in conn.execute(render.publication_tables(publication)).fetchall() if s == schema}


class RealtimePublication(PlainDatabaseResource):
    spec = specs.REALTIME_PUBLICATION

    def normalize(self, inputs: dict[str, Any]) -> dict[str, Any]:
        raw = inputs.get("tables")
        if not isinstance(raw, list):
            raise InputError("tables", "tables: expected a list of table names")
        return {
            "schema": identifier(inputs, "schema", "public"),
            "tables": sorted({identifier({"tables": t}, "tables") for t in raw}),
            "publication": identifier(inputs, "publication", "supabase_realtime"),
        }

    def validate(self, db: Database, olds: dict[str, Any], checked: dict[str, Any]) -> None:
        with db.connection() as conn:
            missing = catalog.missing_tables(conn, checked["schema"], checked["tables"])
            exists = conn.execute(
                "select 1 from pg_catalog.pg_publication where pubname = %s", (checked["publication"],)
            ).fetchone()
        if missing:
            names = ", ".join(f"{checked['schema']}.{t}" for t in missing)
            raise InputError("tables", f"tables: {names} not found")
        if exists is None:
            raise InputError(
                "publication", f"publication: {checked['publication']} does not exist (every Supabase project has it)"
            )

    def diff_live(self, db: Database, state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, str]:
        with db.connection() as conn:
            live = published(conn, inputs["publication"], inputs["schema"])
        return {"tables": "update"} if set(inputs["tables"]) - live or state.get("tables") != inputs["tables"] else {}

    def _apply(self, db: Database, inputs: dict[str, Any], dropped: list[str]) -> list[str]:
        """Add the missing tables (recording first what was there), take out `dropped`; the tables added."""
        schema, publication = inputs["schema"], inputs["publication"]
        with write_transaction(db) as conn:
            lock_tables(conn, schema, [*inputs["tables"], *dropped])
            lock_tables(conn, schema, [PUBLICATION_LOCK])
            ledger.prepare(conn)
            live = published(conn, publication, schema)
            for table in inputs["tables"]:
                key = _key(publication, schema, table)
                ledger.record(conn, LEDGER_KIND, key, {"published": table in live})
                if table not in live:
                    conn.execute(render.publication_add_table(publication, schema, table))
            for table in dropped:
                self._give_back(conn, publication, schema, table, live)
            return [
                t
                for t in inputs["tables"]
                if not (ledger.read(conn, LEDGER_KIND, _key(publication, schema, t)) or {}).get("published")
            ]

    @staticmethod
    def _give_back(conn: psycopg.Connection, publication: str, schema: str, table: str, live: set[str]) -> None:
        key = _key(publication, schema, table)
        recorded = ledger.read(conn, LEDGER_KIND, key)
        if recorded is not None and not recorded.get("published") and table in live:
            conn.execute(render.publication_drop_table(publication, schema, table))
        ledger.forget(conn, LEDGER_KIND, key)

    def create(self, db: Database, inputs: dict[str, Any], log: Log) -> tuple[str, dict[str, Any]]:
        added = self._apply(db, inputs, [])
        return f"{inputs['publication']}:{inputs['schema']}", {**inputs, "added": added}

    def update(self, db: Database, state: dict[str, Any], inputs: dict[str, Any], log: Log) -> dict[str, Any]:
        dropped = sorted(set(state.get("tables") or []) - set(inputs["tables"]))
        return {**inputs, "added": self._apply(db, inputs, dropped)}

    def delete(self, db: Database, state: dict[str, Any], log: Log) -> None:
        schema, publication = state["schema"], state["publication"]
        tables = list(state.get("tables") or [])
        with write_transaction(db) as conn:
            existing = [t for t in tables if not catalog.missing_tables(conn, schema, [t])]
            lock_tables(conn, schema, existing)
            lock_tables(conn, schema, [PUBLICATION_LOCK])
            live = published(conn, publication, schema)
            for table in tables:
                self._give_back(conn, publication, schema, table, live)
        ledger.tidy(db)

    def read(
        self, db: Database, resource_id: str, state: dict[str, Any], inputs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        known = dict(state or inputs or {})
        if not known.get("tables"):
            raise not_importable("RealtimePublication", "the id names the publication, not the stack's tables")
        with db.connection() as conn:
            live = published(conn, known["publication"], known["schema"])
        read_inputs = {
            "schema": known["schema"],
            "tables": [t for t in known["tables"] if t in live],
            "publication": known["publication"],
        }
        return {**known, **read_inputs}, read_inputs
