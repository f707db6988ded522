"""TableGrant, retired: grants are `pulumi_postgresql.Grant` resources now (one per role and table).

A stack made before that still holds TableGrant resources. The `pulumi up` that upgrades it
creates the Grants first, then deletes these: deleting must not touch the database (the old
delete put back the privileges found before the stack, Supabase's `anon=arwdDxt` among them,
which would undo the Grants just applied). So delete only says where the grants went, and the
resource cannot be declared again.
"""

from __future__ import annotations

from supabase_access.provider import specs
from supabase_access.provider.base import DatabaseResource, InputError, Log, Notice, not_importable
from supabase_access.provider.specs import TableGrantInputs as Inputs
from supabase_access.provider.specs import TableGrantState as State
from supabase_access.sql.database import Database

HANDED_OVER = (
    "TableGrant is retired: the privileges stay as they are, managed by the stack's "
    "postgresql:index/grant:Grant resources (one per role and table)"
)


class TableGrant(DatabaseResource[Inputs, State]):
    spec = specs.TABLE_GRANT

    def normalize(self, inputs: Inputs) -> Inputs:
        raise InputError("role", f"{HANDED_OVER}; declare pulumi_postgresql.Grant instead")

    def diff_live(self, db: Database, state: State, inputs: Inputs) -> dict[str, str]:
        return {}

    def on_create(self, db: Database, inputs: Inputs, log: Log) -> tuple[str, State]:
        raise InputError("role", HANDED_OVER)

    def on_update(self, db: Database, state: State, inputs: Inputs, log: Log) -> State:
        raise InputError("role", HANDED_OVER)

    def on_delete(self, db: Database, state: State, log: Log) -> None:
        log(Notice(f"{HANDED_OVER}; nothing was revoked or restored"))

    def on_read(
        self, db: Database, resource_id: str, state: State | None, inputs: Inputs | None
    ) -> tuple[State, Inputs] | None:
        # Refresh keeps the old record until the upgrading `up` deletes it.
        if state is None:
            raise not_importable("TableGrant", "it is retired; grants are pulumi_postgresql Grant resources")
        return state, inputs or Inputs.taking(state)
