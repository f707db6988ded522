"""TableGrant, retired: grants are `pulumi_postgresql.Grant` resources now (one per role and table).

A stack made before that still holds TableGrant resources. The `pulumi up` that upgrades it
creates the Grants first, then deletes these: deleting must not touch the database (the old
delete put back the privileges found before the stack, Supabase's `anon=arwdDxt` among them,
which would undo the Grants just applied). So delete only says where the grants went, and the
resource cannot be declared again.
"""

from __future__ import annotations

from typing import Any

from supabase_access.provider import specs
from supabase_access.provider.base import InputError, Log, Notice, PlainDatabaseResource, not_importable
from supabase_access.sql.database import Database

HANDED_OVER = (
    "TableGrant is retired: the privileges stay as they are, managed by the stack's "
    "postgresql:index/grant:Grant resources (one per role and table)"
)


class TableGrant(PlainDatabaseResource):
    spec = specs.TABLE_GRANT

    def normalize(self, inputs: dict[str, Any]) -> dict[str, Any]:
        raise InputError("role", f"{HANDED_OVER}; declare pulumi_postgresql.Grant instead")

    def diff_live(self, db: Database, state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, str]:
        return {}

    def create(self, db: Database, inputs: dict[str, Any], log: Log) -> tuple[str, dict[str, Any]]:
        raise InputError("role", HANDED_OVER)

    def update(self, db: Database, state: dict[str, Any], inputs: dict[str, Any], log: Log) -> dict[str, Any]:
        raise InputError("role", HANDED_OVER)

    def delete(self, db: Database, state: dict[str, Any], log: Log) -> None:
        log(Notice(f"{HANDED_OVER}; nothing was revoked or restored"))

    def read(
        self, db: Database, resource_id: str, state: dict[str, Any], inputs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        # Refresh keeps the old record until the upgrading `up` deletes it.
        if not state:
            raise not_importable("TableGrant", "it is retired; grants are pulumi_postgresql Grant resources")
        return dict(state), dict(inputs)
