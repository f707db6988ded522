"""DefaultPrivilegesBaseline: the default privileges one creating role gave the API roles in one
schema before the stack closed them, put back by `destroy`.

The closing itself is pulumi_postgresql.DefaultPrivileges (privileges: none), which depends on
this resource: on destroy it revokes first, then this resource grants back what was found. The
baseline goes to the ledger too (first record stands), so a run killed after the revoke still
knows what to restore.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from supabase_access.provider import ledger, specs
from supabase_access.provider.base import (
    CURRENT_STACK,
    DatabaseResource,
    InputError,
    Log,
    Notice,
    identifier,
    not_importable,
    split_id,
)
from supabase_access.provider.spec import Props
from supabase_access.provider.specs import DefaultAcl
from supabase_access.provider.specs import DefaultPrivilegesBaselineInputs as Inputs
from supabase_access.provider.specs import DefaultPrivilegesBaselineState as State
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from supabase_access.sql.transaction import write_transaction

LEDGER_KIND = "default-privileges"


@dataclass(frozen=True, kw_only=True)
class DefaultsRecord(Props):
    """The ledger's record of an owner's defaults in a schema: what they were before the first stack (the
    first record stands), and the stacks that keep them closed."""

    previous: DefaultAcl | None = None
    roles: tuple[str, ...] = ()
    stacks: tuple[str, ...] = ()


class DefaultPrivilegesBaseline(DatabaseResource[Inputs, State]):
    spec = specs.DEFAULT_PRIVILEGES_BASELINE

    def normalize(self, inputs: Inputs) -> Inputs:
        roles = [identifier(r, "roles") for r in inputs.roles]
        if not roles:
            raise InputError("roles", "roles: name the roles whose default privileges the stack manages")
        return Inputs(
            owner=identifier(inputs.owner, "owner"),
            schema=identifier(inputs.schema, "schema"),
            roles=tuple(sorted(set(roles))),
        )

    def validate(self, db: Database, olds: Inputs | None, checked: Inputs) -> None:
        with db.connection() as conn:
            role_exists, schema_exists = catalog.role_and_schema_exist(conn, checked.owner, checked.schema)
        if not role_exists:
            raise InputError("owner", f"owner: role {checked.owner} does not exist in the database")
        if not schema_exists:
            raise InputError("schema", f"schema: schema {checked.schema} does not exist in the database")

    def _read(self, db: Database, inputs: Inputs) -> DefaultAcl:
        """object type -> role -> privileges, for the inputs' roles (every object type present, maybe empty)."""
        found: dict[str, dict[str, list[str]]] = {t: {r: [] for r in inputs.roles} for t in render.DEFAULT_ACL_OBJECTS}
        with db.connection() as conn:
            for acl in catalog.read_default_privileges(conn, inputs.owner, inputs.schema):
                if acl.object_type in found and acl.grantee in found[acl.object_type]:
                    found[acl.object_type][acl.grantee].append(acl.privilege)
        return {t: {r: tuple(sorted(p)) for r, p in by_role.items()} for t, by_role in found.items()}

    def diff_live(self, db: Database, state: State, inputs: Inputs) -> dict[str, str]:
        # It only remembers (pulumi_postgresql.DefaultPrivileges keeps the live ones): which stacks
        # use the baseline, so the last one gives it back (a stack made before that is added by `up`).
        with db.connection() as conn:
            recorded = ledger.read_as(conn, LEDGER_KIND, f"{inputs.owner}.{inputs.schema}", DefaultsRecord)
        return {} if recorded and CURRENT_STACK.get() in recorded.stacks else {"previous": "update"}

    def _register(self, db: Database, inputs: Inputs, previous: DefaultAcl) -> DefaultsRecord:
        """The ledger's record (the first stands: what was there before the first stack), this stack among its users."""
        key = f"{inputs.owner}.{inputs.schema}"
        with write_transaction(db) as conn:
            ledger.record(conn, LEDGER_KIND, key, DefaultsRecord(previous=previous, roles=inputs.roles))
            known = ledger.read_as(conn, LEDGER_KIND, key, DefaultsRecord) or DefaultsRecord()
            stacks = tuple(sorted({*known.stacks, CURRENT_STACK.get()}))
            ledger.record(conn, LEDGER_KIND, key, replace(known, stacks=stacks), replace=True)
        return known

    def on_create(self, db: Database, inputs: Inputs, log: Log) -> tuple[str, State]:
        previous = self._read(db, inputs)
        known = self._register(db, inputs, previous)
        # An earlier run's record (killed after closing), or another stack's, holds what was there before it.
        return f"{inputs.owner}.{inputs.schema}", State.taking(inputs, previous=known.previous or previous)

    def on_update(self, db: Database, state: State, inputs: Inputs, log: Log) -> State:
        previous = state.previous or {}
        self._register(db, inputs, previous)
        return State.taking(inputs, previous=previous)

    def on_delete(self, db: Database, state: State, log: Log) -> None:
        owner, schema = state.owner, state.schema
        key = f"{owner}.{schema}"
        with write_transaction(db) as conn:
            known = ledger.read_as(conn, LEDGER_KIND, key, DefaultsRecord) or DefaultsRecord()
            others = tuple(s for s in known.stacks if s != CURRENT_STACK.get())
            if others:
                # The defaults stay closed for the stacks still using them; the last one gives them back.
                ledger.record(conn, LEDGER_KIND, key, replace(known, stacks=others), replace=True)
                users = ", ".join(others)
                log(Notice(f"left the default privileges of {owner} in {schema} closed: stack(s) {users} use them"))
                return
            ledger.forget(conn, LEDGER_KIND, key)
            for object_type, by_role in (state.previous or {}).items():
                if object_type not in render.DEFAULT_ACL_OBJECTS:
                    continue
                for role, privileges in by_role.items():
                    conn.execute(render.alter_default_privileges(owner, schema, object_type, role, (), grant=False))
                    if privileges:
                        conn.execute(
                            render.alter_default_privileges(owner, schema, object_type, role, privileges, grant=True)
                        )
        ledger.tidy(db)

    def on_read(
        self, db: Database, resource_id: str, state: State | None, inputs: Inputs | None
    ) -> tuple[State, Inputs] | None:
        split_id(resource_id, 2, "postgres.public")
        if state is None:
            raise not_importable(
                "DefaultPrivilegesBaseline",
                "it holds the default privileges found before a stack closed them, which only that stack saw",
            )
        return state, inputs or Inputs.taking(state)
