"""GroupFunctions: the functions that tell the policies of group rows which groups the current user
belongs to (`<membership>_groups`; `<membership>_group_ids`, the same as text[] for Storage folders)
and administers (`<membership>_admin_groups`).

They are SECURITY DEFINER, so a membership table's own policies can ask who belongs to a group
without reading the table through those policies again (PostgreSQL refuses such a loop as
infinite recursion). They live in a schema of their own, not exposed to the Data API, where
`authenticated` gets USAGE and EXECUTE on them and nothing else; `anon` and PUBLIC get nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from supabase_access.model.access_model import MAX_ROLE_VALUE, Membership
from supabase_access.model.helper_schema import HELPER_SCHEMA
from supabase_access.model.profiles import GroupLookup
from supabase_access.provider import claims, specs
from supabase_access.provider.base import (
    DatabaseResource,
    InputError,
    Log,
    Notice,
    identifier,
    not_importable,
    split_id,
)
from supabase_access.provider.private_schema import drop_schema_if_empty, require_columns, require_rls_not_filtering
from supabase_access.provider.spec import PropsError
from supabase_access.provider.specs import GroupFunctionsInputs as Inputs
from supabase_access.provider.specs import GroupFunctionsState as State
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database, read_together
from supabase_access.sql.rows import fetch_one
from supabase_access.sql.transaction import lock_tables, write_transaction

# The schema lock key: a pseudo-table name no real table can have (identifiers are [a-z0-9_]).
HELPER_SCHEMA_LOCK = "(helper schema)"
# What prosrc / proconfig / prosecdef must show for a function of ours to be as declared.
EXPECTED_CONFIG = ['search_path=""', "row_security=off"]


def group_lookup(inputs: Inputs) -> GroupLookup:
    """The inputs as a GroupLookup; a bad one is an InputError naming the input."""
    admins = inputs.admins
    if not all(0 < len(a) <= MAX_ROLE_VALUE and a.isprintable() for a in admins):
        raise InputError("admins", "admins: expected a list of role values (printable text, 1 to 63 characters)")
    if admins and inputs.role is None:
        raise InputError("admins", "admins: name the column holding each member's role (role)")
    return GroupLookup(
        membership_table=identifier(inputs.membership_table, "membershipTable"),
        membership=Membership(
            group=identifier(inputs.group, "group"),
            column=identifier(inputs.column, "column"),
            user=identifier(inputs.user, "user"),
            key=identifier(inputs.key, "key"),
            role=None if inputs.role is None else identifier(inputs.role, "role"),
            admins=tuple(admins),
        ),
        group_owner_column=identifier(inputs.group_owner_column, "groupOwnerColumn"),
        helper_schema=identifier(inputs.helper_schema or HELPER_SCHEMA, "helperSchema"),
    )


def _inputs_of(schema: str, lookup: GroupLookup, *, force_rls: bool) -> Inputs:
    membership = lookup.membership
    return Inputs(
        schema=schema,
        membership_table=lookup.membership_table,
        group=membership.group,
        column=membership.column,
        user=membership.user,
        key=membership.key,
        role=membership.role,
        admins=membership.admins,
        group_owner_column=lookup.group_owner_column,
        helper_schema=lookup.helper_schema,
        force_rls=True if force_rls else None,
    )


@dataclass(frozen=True)
class _Function:
    name: str
    admins: bool
    as_text: bool = False
    # The property a drifted function shows as changed in the preview (an output of the resource).
    shown_as: str = "memberFunction"

    def create(self, schema: str, lookup: GroupLookup) -> psycopg.sql.Composed:
        return render.create_group_function(schema, lookup, admins=self.admins, as_text=self.as_text)

    def body(self, schema: str, lookup: GroupLookup) -> str:
        return render.group_function_body(schema, lookup, admins=self.admins, as_text=self.as_text)


def creation_statements(schema: str, lookup: GroupLookup) -> list[psycopg.sql.Composed]:
    """The helper schema (if missing) and the functions, as create and the preflight's dry run make them."""
    return [
        *render.create_helper_schema(lookup.helper_schema)[:1],
        *(f.create(schema, lookup) for f in _functions(lookup)),
    ]


def _functions(lookup: GroupLookup) -> tuple[_Function, ...]:
    """A stack made before the ids function (as_text) has the other two only."""
    return (
        _Function(lookup.member_function, admins=False),
        _Function(lookup.admin_function, admins=True, shown_as="adminFunction"),
        _Function(lookup.member_ids_function, admins=False, as_text=True),
    )


class GroupFunctions(DatabaseResource[Inputs, State]):
    spec = specs.GROUP_FUNCTIONS

    def normalize(self, inputs: Inputs) -> Inputs:
        lookup = group_lookup(inputs)
        schema = identifier(inputs.schema or "public", "schema")
        return _inputs_of(schema, lookup, force_rls=bool(inputs.force_rls))

    def validate(self, db: Database, olds: Inputs | None, checked: Inputs) -> None:
        schema, lookup = checked.schema, group_lookup(checked)
        membership = lookup.membership
        with db.connection() as conn:
            wanted = {membership.column: "column", membership.user: "user"}
            if membership.role is not None:
                wanted[membership.role] = "role"
            require_columns(conn, schema, lookup.membership_table, wanted, table_property="membershipTable")
            require_columns(
                conn,
                schema,
                membership.group,
                {membership.key: "key", lookup.group_owner_column: "groupOwnerColumn"},
                table_property="group",
            )
            check_helper_schema(conn, lookup.helper_schema, "helperSchema")
            # The functions read both tables as their owner: RLS must not filter that role.
            require_rls_not_filtering(conn, "membershipTable", schema, [lookup.membership_table, membership.group])
            if checked.force_rls:
                _require_bypass(conn, lookup)
        try:
            with write_transaction(db, rollback=True) as conn:
                _install(conn, schema, lookup)
        except psycopg.Error as exc:
            message = exc.diag.message_primary or str(exc)
            raise InputError(
                "membershipTable",
                f"membershipTable: PostgreSQL refused the group functions of {schema}.{lookup.membership_table}: "
                f"{message}",
            ) from exc

    def _apply(self, db: Database, inputs: Inputs) -> State:
        lookup = group_lookup(inputs)
        with write_transaction(db) as conn:
            _install(conn, inputs.schema, lookup)
        return State.taking(inputs, member_function=lookup.member_function, admin_function=lookup.admin_function)

    def diff_live(self, db: Database, state: State, inputs: Inputs) -> dict[str, str]:
        changed = {
            p.name: "update"
            for p in self.spec.inputs
            if not p.replaces
            and getattr(inputs, p.python_name) is not None
            and getattr(state, p.python_name) != getattr(inputs, p.python_name)
        }
        if changed:
            return changed
        lookup = group_lookup(inputs)
        functions = _functions(lookup)
        with db.connection() as conn:  # the functions in one round trip: this runs on every preview
            live = read_together(conn, *((catalog.GROUP_FUNCTION, (lookup.helper_schema, f.name)) for f in functions))
        for function, rows in zip(functions, live, strict=True):
            expected = (function.body(inputs.schema, lookup), EXPECTED_CONFIG, True)
            if _function_state(next(iter(rows), None)) != expected:
                return {function.shown_as: "update"}
        return {}

    def on_create(self, db: Database, inputs: Inputs, log: Log) -> tuple[str, State]:
        return f"{inputs.schema}.{inputs.membership_table}", self._apply(db, inputs)

    def on_update(self, db: Database, state: State, inputs: Inputs, log: Log) -> State:
        old = group_lookup(state)
        new = group_lookup(inputs)
        outputs = self._apply(db, inputs)
        if old.helper_schema == new.helper_schema:
            return outputs
        _drop(db, old)
        return outputs

    def on_delete(self, db: Database, state: State, log: Log) -> None:
        lookup = group_lookup(state)
        with db.connection() as conn:
            other = claims.other_stack(conn, state.schema or "public", lookup.membership_table)
        if other is not None:
            # Its policies call them: the stack that manages the membership table keeps them.
            log(Notice(f"left the group functions of {lookup.membership_table}: stack {other!r} manages it"))
            return
        _drop(db, lookup)

    def on_read(
        self, db: Database, resource_id: str, state: State | None, inputs: Inputs | None
    ) -> tuple[State, Inputs] | None:
        if state is None:
            schema, table = split_id(resource_id, 2, "public.project_members")
            raise not_importable("GroupFunctions", f"declare the membership {schema}.{table} in the model instead")
        lookup = group_lookup(state)
        with db.connection() as conn:
            # The member and admin functions: an ids function missing (a stack made before it) is drift.
            present = all(
                _live_function(conn, lookup.helper_schema, f.name) is not None
                for f in _functions(lookup)
                if not f.as_text
            )
        return (state, inputs or Inputs.taking(state)) if present else None


def check_helper_schema(conn: psycopg.Connection, helper_schema: str, setting: str) -> None:
    """The helper schema can be made, or is ours (`setting`: the input naming it)."""
    found = fetch_one(conn, catalog.SCHEMA_COMMENT, (helper_schema,))
    if found is None:
        if not catalog.may_create_schemas(conn):
            raise InputError(
                setting,
                f"{setting}: schema {helper_schema} does not exist and role {conn.info.user} may not create "
                "schemas in this database (grant create on database to it, as Supabase does for postgres)",
            )
    elif found.comment != render.HELPER_SCHEMA_MARKER:
        # authenticated gets USAGE there: it must hold our functions only.
        raise InputError(
            setting,
            f"{setting}: schema {helper_schema} exists but was not created by supabase-access; choose another name",
        )


def _require_bypass(conn: psycopg.Connection, lookup: GroupLookup) -> None:
    """With FORCE ROW LEVEL SECURITY (supabase-access:forceRls) even the tables' owner is filtered,
    so the functions, which run as the login role, need a role that bypasses RLS."""
    if not catalog.bypasses_rls(conn):
        raise InputError(
            "forceRls",
            f"supabase-access:forceRls: FORCE ROW LEVEL SECURITY would apply to role {conn.info.user} on "
            f"{lookup.membership_table} and {lookup.membership.group}, so the functions that give each user's "
            "groups could not read them (their policies call those functions). Connect as a role with BYPASSRLS "
            "(Supabase's postgres has it), or leave forceRls off",
        )


def lock_helper_schema(conn: psycopg.Connection, helper_schema: str) -> None:
    lock_tables(conn, helper_schema, [HELPER_SCHEMA_LOCK])


def _install(conn: psycopg.Connection, schema: str, lookup: GroupLookup) -> None:
    ensure_helper_schema(conn, lookup.helper_schema)
    for function in _functions(lookup):
        conn.execute(function.create(schema, lookup))
        for statement in render.group_function_access(lookup, function.name):
            conn.execute(statement)


def ensure_helper_schema(conn: psycopg.Connection, helper_schema: str) -> None:
    """Its lock (held to the transaction's end), and the schema made if missing."""
    lock_helper_schema(conn, helper_schema)
    if fetch_one(conn, catalog.SCHEMA_COMMENT, (helper_schema,)) is None:
        for statement in render.create_helper_schema(helper_schema):
            conn.execute(statement)


def drop_helper_schema_if_empty(conn: psycopg.Connection, helper_schema: str) -> None:
    """The helper schema, if ours and nothing is left in it; the caller holds its lock."""
    drop_schema_if_empty(conn, helper_schema, render.HELPER_SCHEMA_MARKER)


def _live_function(conn: psycopg.Connection, helper_schema: str, function: str) -> tuple[str, list[str], bool] | None:
    return _function_state(fetch_one(conn, catalog.GROUP_FUNCTION, (helper_schema, function)))


def _function_state(function: catalog.GroupFunction | None) -> tuple[str, list[str], bool] | None:
    """(body, settings, SECURITY DEFINER) of a helper of ours (None: missing, or not marked as ours)."""
    if function is None or function.comment != render.GROUP_FUNCTION_MARKER:
        return None
    return function.body, list(function.config), function.definer


def _drop(db: Database, lookup: GroupLookup) -> None:
    with write_transaction(db) as conn:
        lock_helper_schema(conn, lookup.helper_schema)
        for function in _functions(lookup):
            if _live_function(conn, lookup.helper_schema, function.name) is not None:
                conn.execute(render.drop_helper_function(lookup.helper_schema, function.name))
        drop_helper_schema_if_empty(conn, lookup.helper_schema)


def prelude_for(schema: str, raw: Sequence[Mapping[str, Any]]) -> list[psycopg.sql.Composed]:
    """The statements that make the helpers a plan's policies call (for a rolled-back parse)."""
    statements: list[psycopg.sql.Composed] = []
    for entry in raw:
        try:
            lookup = group_lookup(Inputs.from_wire(entry))
        except PropsError as exc:
            raise InputError(exc.property, exc.reason) from None
        statements.extend(creation_statements(schema, lookup))
    return statements
