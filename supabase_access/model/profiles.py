"""Access profiles: what each role may do on the model's tables.

open  - the seed guide's access: anon and authenticated may use every table; the
        user foreign key is removed so clients can invent user ids.
owner - each signed-in user (anonymous sign-ins included) reaches only rows they
        own, through every table; anon has no table privileges; the FK is kept present
        (re-created if someone dropped it). The other access kinds of the model: rows under
        a group are read by its members and written by whom the model says; a membership
        table is written by the group's owner and admins (and a member may leave); public-read
        tables are read by everyone; service-only tables by no API role.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from supabase_access.model.access_model import (
    AUTHOR_WRITER,
    ROLE_GRANTERS,
    AccessModel,
    ColumnRules,
    Hop,
    Membership,
    ModelError,
    Table,
    short_identifier,
)
from supabase_access.model.helper_schema import HELPER_SCHEMA

PROFILES = ("open", "owner")
TABLE_COMMANDS: tuple[str, ...] = ("SELECT", "INSERT", "UPDATE", "DELETE")
API_ROLES = ("anon", "authenticated")
# The server's role (the secret key): it bypasses RLS but, on today's platform (explicit grants, no
# default privileges), reaches only what it is granted, so every table of the model declares it.
SERVER_ROLE = "service_role"
SERVER_PRIVILEGES: dict[str, tuple[str, ...]] = {SERVER_ROLE: TABLE_COMMANDS}


T = TypeVar("T")


class PredicateVisitor(ABC, Generic[T]):
    """What to make of each kind of predicate: `predicate.fold(visitor)` calls the method of its kind,
    the parts of allOf and anyOf folded first. The one place predicates are told apart."""

    @abstractmethod
    def always(self) -> T: ...

    @abstractmethod
    def not_anonymous(self) -> T: ...

    @abstractmethod
    def owned_by(self, predicate: OwnedByCurrentUser) -> T: ...

    @abstractmethod
    def in_group(self, predicate: InGroup) -> T: ...

    @abstractmethod
    def all_of(self, parts: list[T]) -> T: ...

    @abstractmethod
    def any_of(self, parts: list[T]) -> T: ...

    @abstractmethod
    def role_in(self, predicate: RoleIn) -> T: ...

    @abstractmethod
    def not_current_user(self, predicate: NotCurrentUser) -> T: ...

    @abstractmethod
    def not_group_owner(self, predicate: NotGroupOwner) -> T: ...


class _Predicate(ABC):
    @abstractmethod
    def fold(self, visitor: PredicateVisitor[T]) -> T: ...

    def owner_paths(self, *, groups: bool = False) -> tuple[OwnedByCurrentUser, ...]:
        """The owner paths the predicate searches; with `groups`, a group path too, as the path up to
        the table whose link column holds the group's key (searched by that column)."""
        return self.fold(_OwnerPaths(groups))


@dataclass(frozen=True)
class Always(_Predicate):
    """A predicate that is true for every row."""

    def fold(self, visitor: PredicateVisitor[T]) -> T:
        return visitor.always()


@dataclass(frozen=True)
class OwnedByCurrentUser(_Predicate):
    """Rows whose ownership path ends at a row whose owner column is auth.uid()."""

    hops: tuple[Hop, ...]
    root_table: str
    owner_column: str

    def fold(self, visitor: PredicateVisitor[T]) -> T:
        return visitor.owned_by(self)


@dataclass(frozen=True)
class NotAnonymousUser(_Predicate):
    """The request does not come from an anonymous sign-in."""

    def fold(self, visitor: PredicateVisitor[T]) -> T:
        return visitor.not_anonymous()


@dataclass(frozen=True)
class AllOf(_Predicate):
    """Every one of the parts holds."""

    parts: tuple[Predicate, ...]

    def fold(self, visitor: PredicateVisitor[T]) -> T:
        return visitor.all_of([part.fold(visitor) for part in self.parts])


@dataclass(frozen=True)
class InGroup(_Predicate):
    """Rows whose group is one the current user belongs to (or, with an admins' helper, administers).

    The group key is the row's own `column` (no hops), or is found at the end of `hops` (the last
    hop points at the group table); `helper` is the function returning the user's groups.
    """

    hops: tuple[Hop, ...]
    column: str
    helper_schema: str
    helper: str

    def fold(self, visitor: PredicateVisitor[T]) -> T:
        return visitor.in_group(self)


@dataclass(frozen=True)
class AnyOf(_Predicate):
    """At least one of the parts holds."""

    parts: tuple[Predicate, ...]

    def fold(self, visitor: PredicateVisitor[T]) -> T:
        return visitor.any_of([part.fold(visitor) for part in self.parts])


class _OwnerPaths(PredicateVisitor[tuple[OwnedByCurrentUser, ...]]):
    def __init__(self, groups: bool) -> None:
        self._groups = groups

    def always(self) -> tuple[OwnedByCurrentUser, ...]:
        return ()

    def not_anonymous(self) -> tuple[OwnedByCurrentUser, ...]:
        return ()

    def owned_by(self, predicate: OwnedByCurrentUser) -> tuple[OwnedByCurrentUser, ...]:
        return (predicate,)

    def in_group(self, predicate: InGroup) -> tuple[OwnedByCurrentUser, ...]:
        if not self._groups or not predicate.hops:
            return ()
        top = predicate.hops[-1]
        return (OwnedByCurrentUser(predicate.hops[:-1], top.table, top.column),)

    def all_of(self, parts: list[tuple[OwnedByCurrentUser, ...]]) -> tuple[OwnedByCurrentUser, ...]:
        return tuple(path for part in parts for path in part)

    def any_of(self, parts: list[tuple[OwnedByCurrentUser, ...]]) -> tuple[OwnedByCurrentUser, ...]:
        return self.all_of(parts)

    # Tests of the row's own columns, and the owners of the groups one administers (by its helper).
    def role_in(self, predicate: RoleIn) -> tuple[OwnedByCurrentUser, ...]:
        return ()

    def not_current_user(self, predicate: NotCurrentUser) -> tuple[OwnedByCurrentUser, ...]:
        return ()

    def not_group_owner(self, predicate: NotGroupOwner) -> tuple[OwnedByCurrentUser, ...]:
        return ()


@dataclass(frozen=True)
class RoleIn(_Predicate):
    """The row's `column` (a membership's role) holds one of `values`."""

    column: str
    values: tuple[str, ...]

    def fold(self, visitor: PredicateVisitor[T]) -> T:
        return visitor.role_in(self)


@dataclass(frozen=True)
class NotCurrentUser(_Predicate):
    """The row's `column` holds a user other than the current one (a membership nobody grants themself)."""

    column: str

    def fold(self, visitor: PredicateVisitor[T]) -> T:
        return visitor.not_current_user(self)


@dataclass(frozen=True)
class NotGroupOwner(_Predicate):
    """The user in the row's `user_column` does not own the group whose `key` is in its `column`
    (the group table's `owner_column`): the owner's membership row is nobody else's to change.

    Asked of the groups the current user administers (`helper`, owned ones included), once per
    statement: wherever it decides a policy the row's group is one of them (a grant needs it, and a
    member leaving a group they do not administer owns none of it)."""

    column: str
    user_column: str
    group: str
    key: str
    owner_column: str
    helper_schema: str
    helper: str

    def fold(self, visitor: PredicateVisitor[T]) -> T:
        return visitor.not_group_owner(self)


Predicate = (
    Always | OwnedByCurrentUser | NotAnonymousUser | AllOf | InGroup | AnyOf | RoleIn | NotCurrentUser | NotGroupOwner
)


@dataclass(frozen=True)
class GroupLookup:
    """The functions that give the current user's groups of one group table: those they belong to
    (`member_function`, and `member_ids_function`: the same as one text[] for Storage folders) and
    those they administer (`admin_function`), owned ones included."""

    membership_table: str
    membership: Membership
    group_owner_column: str
    helper_schema: str = HELPER_SCHEMA

    @property
    def member_function(self) -> str:
        return short_identifier(self.membership_table, suffix="_groups")

    @property
    def admin_function(self) -> str:
        return short_identifier(self.membership_table, suffix="_admin_groups")

    @property
    def member_ids_function(self) -> str:
        return short_identifier(self.membership_table, suffix="_group_ids")


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
    # role -> privileges on this table, where it differs from the plan's `grants`.
    grants: dict[str, tuple[str, ...]] | None = None


@dataclass(frozen=True)
class KeptForeignKey:
    """A foreign key from `column` to auth.users (id) that the plan keeps present (re-created if dropped)."""

    table: str
    constraint: str
    column: str
    # What happens to the rows when their user is deleted (retention relies on the cascade).
    on_delete: str = "cascade"


@dataclass(frozen=True)
class OwnerCopy:
    """A copy of the owner that the plan adds to `table` and keeps right (the model's `copyOwner`),
    or with `group` of the group's key (`copyGroup`).

    `hops` lead from `table` up to `root_table`, whose `root_column` holds the owner (the group
    table and its key, for a group); the copy in `column` always equals it (a trigger on `table`
    takes it from the parent on every insert and re-parenting update; triggers on the tables above
    pass a change down).
    """

    table: str
    column: str
    hops: tuple[Hop, ...]
    root_table: str
    root_column: str
    group: bool = False


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
    # The group helper functions the policies call.
    group_lookups: tuple[GroupLookup, ...] = ()

    def grants_on(self, table: str) -> dict[str, tuple[str, ...]]:
        """role -> privileges on one table of the plan."""
        for access in self.tables:
            if access.table == table and access.grants is not None:
                return access.grants
        return self.grants

    # The owner copies the plan keeps (the owner profile: every `copyOwner` and `copyGroup` of the model).
    owner_copies: tuple[OwnerCopy, ...] = ()
    # The model's column rules (readOnly, immutable, hidden), per table that has any; every profile keeps them.
    column_rules: tuple[tuple[str, ColumnRules], ...] = ()

    def columns_of(self, table: str) -> ColumnRules:
        """The column rules of one table of the plan (empty when it has none)."""
        return dict(self.column_rules).get(table, ColumnRules())


def plan_access(model: AccessModel, profile: str, *, setting: str = "supabase-access:profile") -> AccessPlan:
    rules = tuple((t.name, t.columns) for t in model.tables if t.columns)
    if profile == "open":
        return replace(_open_plan(model), column_rules=rules)
    if profile == "owner":
        return replace(_owner_plan(model), column_rules=rules)
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
        grants={role: TABLE_COMMANDS for role in API_ROLES} | SERVER_PRIVILEGES,
        tables=tables,
        removed_constraints=removed,
    )


def _owned(hops: tuple[Hop, ...], root: Table) -> OwnedByCurrentUser:
    assert root.owner_column is not None  # guaranteed by AccessModel.ownership_path
    return OwnedByCurrentUser(hops, root.name, root.owner_column)


def _owner_plan(model: AccessModel) -> AccessPlan:
    lookups = {
        t.membership.group: GroupLookup(t.name, t.membership, model.table(t.membership.group).owner_column or "")
        for t in model.tables
        if t.membership is not None
    }
    tables = [_owner_access(model, table, lookups) for table in model.tables]
    return AccessPlan(
        profile="owner",
        schema=model.schema,
        grants={"anon": (), "authenticated": TABLE_COMMANDS} | SERVER_PRIVILEGES,
        tables=tuple(tables),
        removed_constraints=(),
        kept_constraints=tuple(
            KeptForeignKey(t.name, t.user_foreign_key, t.owner_column)
            for t in model.tables
            if t.user_foreign_key is not None and t.owner_column is not None
        ),
        group_lookups=tuple(lookups[group] for group in sorted(lookups)),
        owner_copies=(
            *(_owner_copy(model, t) for t in model.tables if t.owner_copy),
            *(_group_copy(model, t) for t in model.tables if t.group_copy is not None),
        ),
    )


def _rule_name(table: str, command: str, who: str) -> str:
    return short_identifier(f"{table}_{command.lower()}", suffix=f"_{who}")


def _rules(
    table: str, who: str, read: Predicate | None, written: Predicate | None, *, commands: tuple[str, ...]
) -> tuple[PolicyRule, ...]:
    """One permissive policy per command for authenticated: `read` decides which rows a command sees
    (USING), `written` which rows it may leave behind (WITH CHECK on insert and update)."""
    return tuple(
        PolicyRule(
            name=_rule_name(table, command, who),
            command=command,
            roles=("authenticated",),
            using=None if command == "INSERT" else read,
            with_check=written if command in ("INSERT", "UPDATE") else None,
        )
        for command in commands
    )


def _owner_access(model: AccessModel, table: Table, lookups: dict[str, GroupLookup]) -> TableAccess:
    if table.service_only:
        # RLS on and no policy: only roles that bypass RLS (service_role) reach the rows.
        return TableAccess(table.name, (), grants={"anon": (), "authenticated": (), **SERVER_PRIVILEGES})
    if table.membership is not None:
        return _membership_access(table, lookups[table.membership.group])
    rules: tuple[PolicyRule, ...] = ()
    writes: tuple[str, ...] = TABLE_COMMANDS
    if table.owned:
        rules = _owned_rules(model, table, lookups)
    else:
        writes = ("SELECT",)  # public-read alone: written by the server only
    if table.public_read:
        readers = API_ROLES if table.public_read_anon else ("authenticated",)
        # One permissive SELECT policy per role: the public one replaces the owner's.
        public = PolicyRule(
            name=_rule_name(table.name, "SELECT", "public"),
            command="SELECT",
            roles=readers,
            using=Always(),
            with_check=None,
        )
        rules = (public, *(r for r in rules if r.command != "SELECT"))
        # The server writes it (alone, when the table has no owner).
        grants = {"anon": ("SELECT",) if table.public_read_anon else (), "authenticated": writes} | SERVER_PRIVILEGES
        return TableAccess(table.name, rules, grants=grants)
    return TableAccess(table.name, rules)


def _owned_rules(model: AccessModel, table: Table, lookups: dict[str, GroupLookup]) -> tuple[PolicyRule, ...]:
    hops, root = model.ownership_path(table.name)
    group = lookups.get(root.name)
    if group is not None and hops:
        return _group_row_rules(table, _via_group_copy(model, hops), group)
    owned = _owned(hops, root)
    if group is not None:
        # The group row itself: its owner writes it; its members read it too.
        member = InGroup((), group.membership.key, group.helper_schema, group.member_function)
        return (
            *_rules(table.name, "owner_or_member", AnyOf((owned, member)), None, commands=("SELECT",)),
            *_rules(table.name, "own", owned, owned, commands=("INSERT", "UPDATE", "DELETE")),
        )
    # A table with its own copy of the owner is read by that column; a write must also hang
    # under a parent the user owns, so nobody can attach a row to someone else's data. A copy
    # kept by supabase-access (copyOwner) says that already: its BEFORE trigger sets it from
    # the parent before the policy sees the row, whatever the client sent, so the column alone
    # is checked (the path would gather every parent key the user owns on each write). Only
    # the table's owner could disable that trigger, and it could drop the policies as well.
    through = None if table.owner_copy else model.parent_path(table.name)
    written: Predicate = owned if through is None else AllOf((owned, _owned(*through)))
    # WITH CHECK on insert and update: no row may land under someone else.
    return _rules(table.name, "own", owned, written, commands=TABLE_COMMANDS)


def _via_group_copy(model: AccessModel, hops: tuple[Hop, ...]) -> tuple[Hop, ...]:
    """The path up to a group, ending at the first table on it with a copy of the group's key
    (`copyGroup`): the last hop goes from that copy straight to the group. Its BEFORE trigger sets
    the copy from the parent before a policy sees the row, whatever the client sent, so a write
    is checked on it as surely as on the path (as with copyOwner)."""
    for level, hop in enumerate(hops):
        copy = model.table(hop.table).group_copy
        if copy is not None:
            return (*hops[:level], Hop(hop.table, copy, hops[-1].parent, hops[-1].key))
    return hops


def _group_writer(kind: str, hops: tuple[Hop, ...], group: GroupLookup) -> tuple[Predicate, str]:
    """Who writes rows under a group (one of GROUP_WRITERS), as a predicate, and its name in policies."""
    if kind == "members":
        return InGroup(hops, hops[0].column, group.helper_schema, group.member_function), "member"
    if kind == "admins":
        return InGroup(hops, hops[0].column, group.helper_schema, group.admin_function), "admin"
    # The group's own owner column, as an owner path: `project_id = any (array(select id from projects ...))`.
    return OwnedByCurrentUser(hops, hops[-1].parent, group.group_owner_column), "group_owner"


def _group_row_rules(table: Table, hops: tuple[Hop, ...], group: GroupLookup) -> tuple[PolicyRule, ...]:
    """Rows under a group: its members read them, and `write` says who changes them (the group's
    owner is always among them). A write must leave the row under a group the writer may write."""
    member = InGroup(hops, hops[0].column, group.helper_schema, group.member_function)
    if table.write == AUTHOR_WRITER:
        return _authored_rules(table, member, hops, group)
    writer, who = _group_writer(table.write or "owner", hops, group)
    return (
        *_rules(table.name, "member", member, None, commands=("SELECT",)),
        *_rules(table.name, who, writer, writer, commands=("INSERT", "UPDATE", "DELETE")),
    )


def _authored_rules(table: Table, member: InGroup, hops: tuple[Hop, ...], group: GroupLookup) -> tuple[PolicyRule, ...]:
    """`write: author`: members read and write the group's rows, as with `write: members`, and a
    RESTRICTIVE policy per write adds that the row is the user's own: inserted as its author
    (`author = auth.uid()`), updated and deleted by its author (or, for delete, by whom `delete`
    says). The author column stays theirs on update (WITH CHECK); a WITH CHECK cannot see the old
    row, but USING already limits an update to rows the user wrote, and the column's own rule
    (readOnly) keeps clients from sending it at all.

    Restrictive, not one permissive policy of both tests: the member test then stays the very qual
    of the SELECT policy, which PostgreSQL applies once for both (an update's read and its RETURNING),
    so the author's update costs what a member's does plus one `auth.uid()` (bench.groups)."""
    assert table.author_column is not None  # guaranteed by parse_model
    author: Predicate = OwnedByCurrentUser((), table.name, table.author_column)
    who = "author"
    remover = author
    if table.delete is not None:
        deleter, deleter_name = _group_writer(table.delete, hops, group)
        who, remover = f"author_or_{deleter_name}", AnyOf((author, deleter))
    restrictive = (
        *_rules(table.name, "author", author, author, commands=("INSERT", "UPDATE")),
        *_rules(table.name, who, remover, None, commands=("DELETE",)),
    )
    return (
        *_rules(table.name, "member", member, None, commands=("SELECT",)),
        *_rules(table.name, "member", member, member, commands=("INSERT", "UPDATE", "DELETE")),
        *(replace(rule, permissive=False) for rule in restrictive),
    )


def _membership_access(table: Table, group: GroupLookup) -> TableAccess:
    """Members see who else is in their groups; the group's owner and admins add and remove members;
    a member may remove themself; nobody adds themself to a group they do not administer. No
    UPDATE at all: WITH CHECK cannot see the old row, so an update could move a membership to
    another group or user; a change of role is a delete and an insert by an admin."""
    membership = group.membership
    member = InGroup((), membership.column, group.helper_schema, group.member_function)
    if membership.grants:
        return _granted_membership_access(table, group, member)
    admin = InGroup((), membership.column, group.helper_schema, group.admin_function)
    themself = OwnedByCurrentUser((), table.name, membership.user)
    rules = (
        *_rules(table.name, "member", member, None, commands=("SELECT",)),
        *_rules(table.name, "admin", None, admin, commands=("INSERT",)),
        *_rules(table.name, "admin_or_self", AnyOf((admin, themself)), None, commands=("DELETE",)),
    )
    grants = {"anon": (), "authenticated": ("SELECT", "INSERT", "DELETE")} | SERVER_PRIVILEGES
    return TableAccess(table.name, rules, grants=grants)


def _granted_membership_access(table: Table, group: GroupLookup, member: InGroup) -> TableAccess:
    """`grants: {admin: owner, member: admins}`: a membership row of role R is added, changed and
    removed only by whom grants R (the group's owner, or its admins, owner included), never by its
    own user (nobody changes their own role), and the group owner's row holds an admin role and is
    nobody else's to change. An UPDATE is checked on both rows: USING the old (its role is one the
    writer revokes), WITH CHECK the new (one the writer grants), so it is no more than the delete
    and insert the writer may make. A member may leave, the owner may not."""
    membership = group.membership
    assert membership.role is not None  # guaranteed by parse_model
    hop = Hop(table.name, membership.column, membership.group, membership.key)
    granters: dict[str, Predicate] = {
        "owner": OwnedByCurrentUser((hop,), membership.group, group.group_owner_column),
        "admins": InGroup((), membership.column, group.helper_schema, group.admin_function),
    }
    granted: list[Predicate] = []
    for granter in ROLE_GRANTERS:
        roles = tuple(role for role, who in membership.grants if who == granter)
        if roles:
            granted.append(AllOf((RoleIn(membership.role, roles), granters[granter])))
    may_grant = granted[0] if len(granted) == 1 else AnyOf(tuple(granted))
    not_owner = NotGroupOwner(
        membership.column,
        membership.user,
        membership.group,
        membership.key,
        group.group_owner_column,
        group.helper_schema,
        group.admin_function,
    )
    owner_stays_admin: Predicate = (
        AnyOf((RoleIn(membership.role, membership.admins), not_owner)) if membership.admins else not_owner
    )
    managed = AllOf((may_grant, NotCurrentUser(membership.user), owner_stays_admin))
    leaves = AllOf((OwnedByCurrentUser((), table.name, membership.user), not_owner))
    rules = (
        *_rules(table.name, "member", member, None, commands=("SELECT",)),
        *_rules(table.name, "grantor", managed, managed, commands=("INSERT", "UPDATE")),
        *_rules(table.name, "grantor_or_self", AnyOf((managed, leaves)), None, commands=("DELETE",)),
    )
    return TableAccess(table.name, rules)


def _owner_copy(model: AccessModel, table: Table) -> OwnerCopy:
    through = model.parent_path(table.name)
    assert through is not None and table.owner_column is not None  # a copy has both (parse_model)
    hops, root = through
    assert root.owner_column is not None
    return OwnerCopy(table.name, table.owner_column, hops, root.name, root.owner_column)


def _group_copy(model: AccessModel, table: Table) -> OwnerCopy:
    found = model.group_path(table.name)
    assert found is not None and table.group_copy is not None  # guaranteed by parse_model
    hops, _ = found
    return OwnerCopy(table.name, table.group_copy, hops, hops[-1].parent, hops[-1].key, group=True)
