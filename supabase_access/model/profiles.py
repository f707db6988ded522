"""Access profiles: what each role may do on the model's tables.

open  - the seed guide's access: anon and authenticated may use every table; the
        user foreign key is removed so clients can invent user ids.
owner - each signed-in user (anonymous sign-ins included) reaches only rows they
        own, through every table; anon has no table privileges; the FK is kept present
        (re-created if someone dropped it).
"""

from __future__ import annotations

from dataclasses import dataclass

from supabase_access.model.access_model import AccessModel, Hop, ModelError, Table

PROFILES = ("open", "owner")
TABLE_COMMANDS = ("SELECT", "INSERT", "UPDATE", "DELETE")
API_ROLES = ("anon", "authenticated")


@dataclass(frozen=True)
class Always:
    """A predicate that is true for every row."""


@dataclass(frozen=True)
class OwnedByCurrentUser:
    """Rows whose ownership path ends at a row whose owner column is auth.uid()."""

    hops: tuple[Hop, ...]
    root_table: str
    owner_column: str


@dataclass(frozen=True)
class NotAnonymousUser:
    """The request does not come from an anonymous sign-in."""


@dataclass(frozen=True)
class AllOf:
    """Every one of the parts holds."""

    parts: tuple[OwnedByCurrentUser, ...]


Predicate = Always | OwnedByCurrentUser | NotAnonymousUser | AllOf


@dataclass(frozen=True)
class PolicyRule:
    name: str
    command: str
    roles: tuple[str, ...]
    using: Predicate | None
    with_check: Predicate | None
    permissive: bool = True


@dataclass(frozen=True)
class TableAccess:
    table: str
    rules: tuple[PolicyRule, ...]


@dataclass(frozen=True)
class KeptForeignKey:
    """A foreign key from `column` to auth.users (id) that the plan keeps present (re-created if dropped)."""

    table: str
    constraint: str
    column: str
    # What happens to the rows when their user is deleted (retention relies on the cascade).
    on_delete: str = "cascade"


@dataclass(frozen=True)
class AccessPlan:
    profile: str
    schema: str
    # role -> privileges on every table of the model (empty tuple: none at all).
    grants: dict[str, tuple[str, ...]]
    tables: tuple[TableAccess, ...]
    # (table, constraint) pairs the profile removes.
    removed_constraints: tuple[tuple[str, str], ...]
    # The user foreign keys the profile keeps present (the owner profile: those the open one removes).
    kept_constraints: tuple[KeptForeignKey, ...] = ()


def plan_access(model: AccessModel, profile: str, *, setting: str = "supabase-access:profile") -> AccessPlan:
    if profile == "open":
        return _open_plan(model)
    if profile == "owner":
        return _owner_plan(model)
    raise ModelError(f"{setting}: unknown profile {profile!r} (choose one of: {', '.join(PROFILES)})")


def _open_plan(model: AccessModel) -> AccessPlan:
    tables = tuple(
        TableAccess(
            table.name,
            tuple(
                PolicyRule(
                    name=f"{table.name}_{command.lower()}_open",
                    command=command,
                    roles=API_ROLES,
                    using=None if command == "INSERT" else Always(),
                    with_check=Always() if command in ("INSERT", "UPDATE") else None,
                )
                for command in TABLE_COMMANDS
            ),
        )
        for table in model.tables
    )
    removed = tuple((t.name, t.user_foreign_key) for t in model.tables if t.user_foreign_key is not None)
    return AccessPlan(
        profile="open",
        schema=model.schema,
        grants={role: TABLE_COMMANDS for role in API_ROLES},
        tables=tables,
        removed_constraints=removed,
    )


def _owned(hops: tuple[Hop, ...], root: Table) -> OwnedByCurrentUser:
    assert root.owner_column is not None  # guaranteed by AccessModel.ownership_path
    return OwnedByCurrentUser(hops, root.name, root.owner_column)


def _owner_plan(model: AccessModel) -> AccessPlan:
    tables = []
    for table in model.tables:
        owned = _owned(*model.ownership_path(table.name))
        # A table with its own copy of the owner is read by that column; a write must also hang
        # under a parent the user owns, so nobody can attach a row to someone else's data.
        through = model.parent_path(table.name)
        written: Predicate = owned if through is None else AllOf((owned, _owned(*through)))
        tables.append(
            TableAccess(
                table.name,
                tuple(
                    PolicyRule(
                        name=f"{table.name}_{command.lower()}_own",
                        command=command,
                        roles=("authenticated",),
                        using=None if command == "INSERT" else owned,
                        # WITH CHECK on insert and update: no row may land under someone else.
                        with_check=written if command in ("INSERT", "UPDATE") else None,
                    )
                    for command in TABLE_COMMANDS
                ),
            )
        )
    return AccessPlan(
        profile="owner",
        schema=model.schema,
        grants={"anon": (), "authenticated": TABLE_COMMANDS},
        tables=tuple(tables),
        removed_constraints=(),
        kept_constraints=tuple(
            KeptForeignKey(t.name, t.user_foreign_key, t.owner_column)
            for t in model.tables
            if t.user_foreign_key is not None and t.owner_column is not None
        ),
    )
