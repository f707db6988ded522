"""The access model: which tables an app has and how each row is owned.

Pure data and validation: no Pulumi, no database. A table is owned either
directly (a column holds the owner's `auth.users.id`) or through a foreign-key
column pointing at another table of the model, possibly over several hops, or both:
a table deep in a path may carry a copy of its owner, so reading it needs no path
walk while writing it still checks the path. That copy is the app's own column (`owner` and
`through`) or one supabase-access adds and keeps right (`through` and `copyOwner`).

Other access kinds: a membership table (`membership`) makes users members of a
group table's rows, and rows hanging under a group (`member`, or `through` a path
ending at one) are read by its members and written by whom `write` says; `publicRead`
tables are read by everyone; `serviceOnly` tables by the server alone.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from supabase_access.model.buckets import Bucket, BucketError, bucket_to_plain, parse_buckets
from supabase_access.model.suggest import unknown_keys_message

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
MAX_IDENTIFIER = 63  # PostgreSQL's NAMEDATALEN - 1: longer names are cut silently


class ModelError(ValueError):
    """Bad access model input; the message names the setting that holds it."""


def check_identifier(value: object, setting: str) -> str:
    """Accept plain lower-case SQL identifiers only, so nothing needs quoting tricks."""
    if not isinstance(value, str) or not IDENTIFIER.match(value):
        raise ModelError(
            f"{setting}: {value!r} is not a valid identifier "
            "(lower-case letters, digits and underscores, at most 63 characters, "
            "no quotes, spaces or semicolons)"
        )
    return value


def short_identifier(name: str, *, suffix: str = "") -> str:
    """`name + suffix` if PostgreSQL keeps it whole, else a prefix of `name`, a hash of the whole
    and `suffix`: two long names never collide, and the suffix stays readable."""
    whole = name + suffix
    if len(whole) <= MAX_IDENTIFIER:
        return whole
    digest = hashlib.sha256(whole.encode()).hexdigest()[:10]
    return f"{name[: MAX_IDENTIFIER - len(suffix) - 11]}_{digest}{suffix}"


@dataclass(frozen=True)
class ParentLink:
    """A foreign-key hop: `column` of this table references `table`.`key`."""

    column: str
    table: str
    key: str = "id"
    # Declared as `member: {group, column}`: the parent must be a group table.
    group: bool = False


# Who may write the rows of a group (`write:`): any member, its admins, or its owner alone.
# The group's owner is always one of them.
GROUP_WRITERS = ("members", "admins", "owner")
# `write: author`: members read, the row's author (its `author` column) updates and deletes it;
# `delete:` adds who else may delete (one of GROUP_WRITERS).
AUTHOR_WRITER = "author"
WRITE_KINDS = (*GROUP_WRITERS, AUTHOR_WRITER)
# Who may grant (and revoke) a role of a membership table (`grants: {admin: owner, member: admins}`).
ROLE_GRANTERS = ("owner", "admins")
MAX_ROLE_VALUE = 63


@dataclass(frozen=True)
class Membership:
    """Each row of the table makes `user` a member of the `group` row whose `key` is in `column`;
    members whose `role` column holds one of `admins` administer the group with its owner."""

    group: str
    column: str
    user: str
    key: str = "id"
    role: str | None = None
    admins: tuple[str, ...] = ()
    # (role value, who grants it: one of ROLE_GRANTERS), in the model's order. Empty: the kind as it
    # was before `grants` (admins add and remove members of any role, nobody updates a membership).
    grants: tuple[tuple[str, str], ...] = ()


# The API roles a column may be hidden from (service_role reads every column).
HIDDEN_ROLES = ("anon", "authenticated")


@dataclass(frozen=True)
class ColumnRules:
    """What the API roles may not do to single columns of a table (service_role is not bound).

    `read_only`: never in an INSERT or UPDATE (the column's default or a trigger sets it);
    `immutable`: set on insert, never changed; `hidden`: (role, columns) not selectable by that role.
    """

    read_only: tuple[str, ...] = ()
    immutable: tuple[str, ...] = ()
    hidden: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.read_only or self.immutable or self.hidden)

    def hidden_from(self, role: str) -> tuple[str, ...]:
        return dict(self.hidden).get(role, ())

    @property
    def named(self) -> tuple[str, ...]:
        """Every column the rules name, each once."""
        return tuple(dict.fromkeys([*self.read_only, *self.immutable, *(c for _, cs in self.hidden for c in cs)]))

    def excluded(self, role: str, privilege: str) -> tuple[str, ...]:
        """The columns `role` may not use with `privilege` (SELECT, INSERT or UPDATE); () for the rest."""
        if role not in HIDDEN_ROLES:
            return ()
        if privilege == "SELECT":
            return self.hidden_from(role)
        if privilege == "INSERT":
            return self.read_only
        if privilege == "UPDATE":
            return (*self.read_only, *self.immutable)
        return ()


# The privileges column rules narrow to columns (every other stays table-wide).
COLUMN_PRIVILEGES = ("SELECT", "INSERT", "UPDATE")


@dataclass(frozen=True)
class Table:
    name: str
    # Both may be set: the owner column answers reads, the parent link is checked on writes.
    owner_column: str | None = None
    parent: ParentLink | None = None
    # The FK from owner_column to auth.users that the open profile removes.
    user_foreign_key: str | None = None
    # The table is a membership table of a group (its rows: who belongs to which group row).
    membership: Membership | None = None
    # Everyone signed in reads every row (and anon too when public_read_anon); writes as the rest says.
    public_read: bool = False
    public_read_anon: bool = False
    # Reached by the server alone (service_role): RLS on, no policies, no API privileges.
    service_only: bool = False
    # Who writes rows under a group: one of WRITE_KINDS (required for them, refused elsewhere).
    write: str | None = None
    # `write: author`: the column holding each row's author (defaulted to auth.uid() by the table),
    # and who besides the author may delete a row (one of GROUP_WRITERS, or None: the author alone).
    author_column: str | None = None
    delete: str | None = None
    # owner_column is a copy of the owner that supabase-access adds, fills and keeps right
    # (`copyOwner`), not a column of the app's own: the owner profile manages it.
    owner_copy: bool = False
    # A copy of the group's key that supabase-access adds, fills and keeps right on a table two or more
    # hops below its group (`copyGroup`): its policies test membership on it, as a `member` table's do.
    group_copy: str | None = None
    # readOnly, immutable and hidden: column privileges (and a trigger for immutable) narrow the grants.
    columns: ColumnRules = ColumnRules()

    @property
    def owned(self) -> bool:
        """Rows belong to a user, or to a group, through an owner column or a path."""
        return self.owner_column is not None or self.parent is not None


@dataclass(frozen=True)
class Hop:
    """One step of an ownership path: rows of `table` whose `column` is in `parent`'s `key`."""

    table: str
    column: str
    parent: str
    key: str


# The API roles a function of the model may be executed by (service_role always may).
FUNCTION_ROLES = ("anon", "authenticated")


@dataclass(frozen=True)
class DeclaredFunction:
    """A function of an exposed schema the API may call (`/rpc`), every overload of the name, and who."""

    schema: str
    name: str
    roles: tuple[str, ...]

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


# Who may use a private Realtime channel (`realtime.channels`), as the tables' kinds say who reads rows.
CHANNEL_KINDS = ("member", "owner", "publicRead", "serviceOnly")


@dataclass(frozen=True)
class Channel:
    """Private Broadcast and Presence channels whose topic is `prefix`, or `prefix` + an id (`{id}`).

    `member`: members of the group whose key is the id receive and send; `owner`: the user whose id it
    is; `publicRead`: every signed-in user (and anon with `{anon: true}`) receives, nobody sends;
    `serviceOnly`: the server alone. `kind` None: declared without one (prod refuses it, dev warns).
    """

    pattern: str
    prefix: str
    has_id: bool
    kind: str | None
    group: str | None = None
    anon: bool = False


@dataclass(frozen=True)
class RealtimeModel:
    """`realtime:`: the tables in the `supabase_realtime` publication and the private channels."""

    publish: tuple[str, ...] = ()
    channels: tuple[Channel, ...] = ()


@dataclass(frozen=True)
class AccessModel:
    schema: str
    tables: tuple[Table, ...]
    # `functions:`: what the API may call; every other function of the exposed schemas is closed (prod).
    functions: tuple[DeclaredFunction, ...] = ()
    # `realtime:`: Postgres Changes (published tables, filtered by their kinds) and private channels.
    realtime: RealtimeModel = RealtimeModel()
    # `buckets:`: Storage buckets, their settings and who owns their objects.
    buckets: tuple[Bucket, ...] = ()

    def table(self, name: str) -> Table:
        for table in self.tables:
            if table.name == name:
                return table
        raise KeyError(name)

    @property
    def table_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tables)

    def membership_of(self, group: str) -> Table | None:
        """The membership table of a group table, or None when `group` is no group."""
        for table in self.tables:
            if table.membership is not None and table.membership.group == group:
                return table
        return None

    @property
    def group_names(self) -> tuple[str, ...]:
        return tuple(t.membership.group for t in self.tables if t.membership is not None)

    def group_path(self, name: str) -> tuple[tuple[Hop, ...], Table] | None:
        """For a table whose ownership path ends at a group table (the group itself excluded): the
        hops up to the group and the group's membership table. None for other tables."""
        table = self.table(name)
        if table.membership is not None or not table.owned:
            return None
        hops, root = self.ownership_path(name)
        if not hops:
            return None
        membership = self.membership_of(root.name)
        return None if membership is None else (hops, membership)

    def ownership_path(self, name: str) -> tuple[tuple[Hop, ...], Table]:
        """The hops from `name` up to the nearest table with an owner column (`name` itself if it
        has one), and that table."""
        hops: list[Hop] = []
        table = self.table(name)
        while table.owner_column is None:
            assert table.parent is not None  # guaranteed by parse_model
            hops.append(Hop(table.name, table.parent.column, table.parent.table, table.parent.key))
            table = self.table(table.parent.table)
        return tuple(hops), table

    def parent_path(self, name: str) -> tuple[tuple[Hop, ...], Table] | None:
        """For a table with both an owner column and a parent: the path through its parent, which
        writes must also satisfy. None for other tables."""
        table = self.table(name)
        if table.owner_column is None or table.parent is None:
            return None
        hops, root = self.ownership_path(table.parent.table)
        return (Hop(table.name, table.parent.column, table.parent.table, table.parent.key), *hops), root


def parse_model(raw: Mapping[str, Any], *, setting: str) -> AccessModel:
    """Build and validate a model from plain data (YAML file or stack config)."""
    if not isinstance(raw, Mapping):
        raise ModelError(f"{setting}: expected a mapping with 'schema' and 'tables'")
    _refuse_unknown_keys(raw, MODEL_KEYS, setting)
    schema = check_identifier(raw.get("schema", "public"), f"{setting}.schema")
    raw_tables = raw.get("tables")
    if not isinstance(raw_tables, Mapping) or not raw_tables:
        raise ModelError(f"{setting}.tables: expected a non-empty mapping of table name to ownership")
    tables = tuple(_parse_table(name, spec, f"{setting}.tables.{name}") for name, spec in raw_tables.items())
    functions = _parse_functions(raw.get("functions"), schema, f"{setting}.functions")
    try:
        buckets = parse_buckets(raw.get("buckets"), f"{setting}.buckets")
    except BucketError as exc:
        raise ModelError(str(exc)) from exc
    model = AccessModel(schema=schema, tables=tables)
    _check_paths(model, setting)
    model = _name_owner_copies(model, setting)
    _check_groups(model, setting)
    model = _name_group_copies(model, setting)
    from supabase_access.model.realtime import parse_realtime  # it builds on this module's names

    model = replace(
        model,
        functions=functions,
        realtime=parse_realtime(raw.get("realtime"), model, f"{setting}.realtime"),
        buckets=buckets,
    )
    _check_bucket_groups(model, setting)
    return model


def _check_bucket_groups(model: AccessModel, setting: str) -> None:
    """A `member` bucket names a group table of the model (one with a membership table)."""
    for bucket in model.buckets:
        if bucket.kind == "member" and (bucket.group is None or model.membership_of(bucket.group) is None):
            groups = ", ".join(model.group_names) or "none: add a membership table"
            raise ModelError(
                f"{setting}.buckets.{bucket.id}.member.group: {bucket.group!r} is no group of the model "
                f"(groups: {groups})"
            )


def _parse_functions(raw: object, schema: str, setting: str) -> tuple[DeclaredFunction, ...]:
    """`functions: {search_notes: [authenticated], other_schema.fn: [anon, authenticated]}`."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise ModelError(f"{setting}: expected a mapping of function name to the roles that may call it")
    found = []
    for key, roles in raw.items():
        where = f"{setting}.{key}"
        parts = key.split(".") if isinstance(key, str) else [key]
        if len(parts) > 2:
            raise ModelError(f"{where}: expected a function name or schema.name")
        names = [check_identifier(part, where) for part in parts]
        function_schema, name = (schema, names[0]) if len(names) == 1 else (names[0], names[1])
        if not isinstance(roles, list) or not all(isinstance(r, str) and r in FUNCTION_ROLES for r in roles):
            raise ModelError(
                f"{where}: expected a list of the roles that may call it ({', '.join(FUNCTION_ROLES)}; "
                "service_role always may; [] for the server alone)"
            )
        found.append(DeclaredFunction(function_schema, name, tuple(r for r in FUNCTION_ROLES if r in roles)))
    qualified = [f.qualified for f in found]
    if len(set(qualified)) != len(qualified):
        raise ModelError(f"{setting}: a function is named twice")
    return tuple(found)


def model_to_plain(model: AccessModel) -> dict[str, Any]:
    """The model as `parse_model` reads it (owner copies named): how the program hands it to the provider."""
    plain: dict[str, Any] = {"schema": model.schema, "tables": {t.name: _table_to_plain(t) for t in model.tables}}
    if model.functions:
        plain["functions"] = {
            (f.name if f.schema == model.schema else f.qualified): list(f.roles) for f in model.functions
        }
    if model.realtime != RealtimeModel():
        from supabase_access.model.realtime import realtime_to_plain

        plain["realtime"] = realtime_to_plain(model.realtime)
    if model.buckets:
        plain["buckets"] = {b.id: bucket_to_plain(b) for b in model.buckets}
    return plain


def _table_to_plain(table: Table) -> dict[str, Any]:
    return _kind_to_plain(table) | column_rules_to_plain(table.columns)


def column_rules_to_plain(rules: ColumnRules) -> dict[str, Any]:
    """The model keys of column rules (none when the table has none)."""
    plain: dict[str, Any] = {}
    if rules.read_only:
        plain["readOnly"] = list(rules.read_only)
    if rules.immutable:
        plain["immutable"] = list(rules.immutable)
    if rules.hidden:
        plain["hidden"] = {role: list(columns) for role, columns in rules.hidden}
    return plain


def _kind_to_plain(table: Table) -> dict[str, Any]:
    if table.service_only:
        return {"serviceOnly": True}
    if table.membership is not None:
        m = table.membership
        membership: dict[str, Any] = {"group": m.group, "column": m.column, "user": m.user, "key": m.key}
        if m.role is not None:
            membership |= {"role": m.role, "admins": list(m.admins)}
        if m.grants:
            membership["grants"] = dict(m.grants)
        return {"membership": membership}
    plain: dict[str, Any] = {}
    if table.owner_column is not None:
        plain["copyOwner" if table.owner_copy else "owner"] = table.owner_column
    if table.group_copy is not None:
        plain["copyGroup"] = table.group_copy
    if table.parent is not None:
        link = {"column": table.parent.column, "key": table.parent.key}
        plain |= (
            {"member": {"group": table.parent.table, **link}}
            if table.parent.group
            else {"through": {"table": table.parent.table, **link}}
        )
    if table.user_foreign_key is not None:
        plain["userForeignKey"] = table.user_foreign_key
    if table.public_read:
        plain["publicRead"] = {"anon": True} if table.public_read_anon else True
    if table.write is not None:
        plain["write"] = table.write
    if table.author_column is not None:
        plain["author"] = table.author_column
    if table.delete is not None:
        plain["delete"] = table.delete
    return plain


def load_model_file(path: Path, *, setting: str) -> AccessModel:
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ModelError(f"{setting}: cannot read model file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        # One line: where, then what (PyYAML's own text spans several, with the line quoted).
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        what = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise ModelError(f"{setting}: {path}{where} is not valid YAML: {what}") from exc
    return parse_model(raw, setting=f"{setting} ({path})")


# The top-level keys of a model (file or `supabase-access:model`); any other is a typo.
MODEL_KEYS = ("schema", "tables", "functions", "realtime", "buckets")
TABLE_KEYS = (
    "owner",
    "through",
    "member",
    "membership",
    "publicRead",
    "serviceOnly",
    "write",
    "author",
    "delete",
    "userForeignKey",
    "copyOwner",
    "copyGroup",
    "readOnly",
    "immutable",
    "hidden",
)
# Column rules go with any kind but serviceOnly (no API role reaches such a table's columns).
COLUMN_RULE_KEYS = ("readOnly", "immutable", "hidden")
KINDS_HINT = (
    "'owner: <column>', 'through: {column, table}', 'member: {group, column}', "
    "'membership: {group, column, user}', 'publicRead: true' or 'serviceOnly: true'"
)


def _parse_table(name: object, spec: object, setting: str) -> Table:
    table_name = check_identifier(name, setting)
    if not isinstance(spec, Mapping):
        raise ModelError(f"{setting}: expected one of {KINDS_HINT}")
    _refuse_unknown_keys(spec, TABLE_KEYS, setting)
    columns = parse_column_rules(spec, setting)
    if columns and spec.get("serviceOnly", False) is True:
        raise ModelError(
            f"{setting}: a service-only table gives the API roles no column to begin with, remove "
            f"{[k for k in COLUMN_RULE_KEYS if k in spec]}"
        )
    spec = {k: v for k, v in spec.items() if k not in COLUMN_RULE_KEYS}
    return replace(_parse_kind(table_name, spec, setting), columns=columns)


def _parse_kind(table_name: str, spec: Mapping[str, Any], setting: str) -> Table:
    copy = _parse_copy_owner(spec, setting)
    has_owner, has_through, has_member = "owner" in spec, "through" in spec, "member" in spec
    if has_through and has_member:
        raise ModelError(f"{setting}: give 'through' or 'member', not both ('member' is a path to a group)")
    public_read, public_anon = _parse_public_read(spec.get("publicRead", False), f"{setting}.publicRead")
    service_only = spec.get("serviceOnly", False)
    if not isinstance(service_only, bool):
        raise ModelError(f"{setting}.serviceOnly: expected true or false")
    if service_only and set(spec) - {"serviceOnly"}:
        others = sorted(set(spec) - {"serviceOnly"})
        raise ModelError(f"{setting}.serviceOnly: a service-only table has no other access, remove {others}")
    if "membership" in spec:
        others = sorted(set(spec) - {"membership"})
        if others:
            raise ModelError(
                f"{setting}.membership: a membership table's access is generated from it alone, remove {others}"
            )
        return Table(name=table_name, membership=_parse_membership(spec["membership"], f"{setting}.membership"))
    if not (has_owner or has_through or has_member or public_read or service_only):
        raise ModelError(
            f"{setting}: give 'owner', 'through', or both (an owner column copied down a path); "
            f"or another kind: {KINDS_HINT}"
        )
    if "userForeignKey" in spec and not has_owner:
        raise ModelError(f"{setting}.userForeignKey: only a table with 'owner' references auth.users")
    write = spec.get("write")
    if write is not None and write not in WRITE_KINDS:
        raise ModelError(f"{setting}.write: {write!r} is not one of {', '.join(WRITE_KINDS)}")
    author, delete = _parse_author(spec, write, setting)
    fk = spec.get("userForeignKey")
    parent = None
    if has_through:
        parent = _parse_through(spec["through"], f"{setting}.through")
    elif has_member:
        parent = _parse_member(spec["member"], f"{setting}.member")
    if copy and parent is not None and copy == parent.column:
        raise ModelError(f"{setting}.copyOwner: {copy} is the path's own column (through.column); name another")
    return Table(
        name=table_name,
        # A copy named after the root's owner column (`copyOwner: true`) is named once the model is whole.
        owner_column=check_identifier(spec["owner"], f"{setting}.owner") if has_owner else copy,
        parent=parent,
        user_foreign_key=None if fk is None else check_identifier(fk, f"{setting}.userForeignKey"),
        public_read=public_read,
        public_read_anon=public_anon,
        service_only=service_only,
        write=write,
        author_column=author,
        delete=delete,
        owner_copy=copy is not None,
        group_copy=_parse_copy_group(spec, setting),
    )


def parse_column_rules(spec: Mapping[str, Any], setting: str) -> ColumnRules:
    """`readOnly: [col, ...]`, `immutable: [col, ...]`, `hidden: {role: [col, ...]}` of one table."""
    read_only = _column_list(spec.get("readOnly", []), f"{setting}.readOnly")
    immutable = _column_list(spec.get("immutable", []), f"{setting}.immutable")
    both = [c for c in immutable if c in read_only]
    if both:
        raise ModelError(
            f"{setting}.immutable: {', '.join(both)} is already readOnly (never written by the API at all); "
            "name it in one of the two"
        )
    raw_hidden = spec.get("hidden", {})
    where = f"{setting}.hidden"
    if not isinstance(raw_hidden, Mapping):
        raise ModelError(
            f"{where}: expected a mapping of role ({', '.join(HIDDEN_ROLES)}) to the columns it may not select"
        )
    _refuse_unknown_keys(raw_hidden, HIDDEN_ROLES, where)
    hidden = tuple(
        (role, columns)
        for role in HIDDEN_ROLES
        if role in raw_hidden
        for columns in (_column_list(raw_hidden[role], f"{where}.{role}"),)
        if columns
    )
    return ColumnRules(read_only=read_only, immutable=immutable, hidden=hidden)


def _column_list(raw: object, setting: str) -> tuple[str, ...]:
    if not isinstance(raw, (list, tuple)):
        raise ModelError(f"{setting}: expected a list of column names")
    columns = tuple(check_identifier(c, setting) for c in raw)
    if len(set(columns)) != len(columns):
        raise ModelError(f"{setting}: a column is named twice")
    return columns


def _parse_author(spec: Mapping[str, Any], write: object, setting: str) -> tuple[str | None, str | None]:
    """`write: author` with `author: <column>` and, optionally, `delete: <who else deletes>`."""
    author, delete = spec.get("author"), spec.get("delete")
    if write != AUTHOR_WRITER:
        for key in ("author", "delete"):
            if key in spec:
                raise ModelError(f"{setting}.{key}: only with 'write: author' (rows their author edits)")
        return None, None
    if author is None:
        raise ModelError(
            f"{setting}.author: 'write: author' needs the column holding each row's author "
            "(author: <column>, defaulted to auth.uid())"
        )
    if delete is not None and delete not in GROUP_WRITERS:
        raise ModelError(
            f"{setting}.delete: {delete!r} is not one of {', '.join(GROUP_WRITERS)} (who deletes rows besides "
            "their author)"
        )
    return check_identifier(author, f"{setting}.author"), delete


def _refuse_unknown_keys(raw: Mapping[Any, Any], known: tuple[str, ...], setting: str) -> None:
    unknown = [key for key in raw if key not in known]
    if unknown:
        raise ModelError(unknown_keys_message(setting, unknown, known))


def _parse_public_read(value: object, setting: str) -> tuple[bool, bool]:
    """`publicRead: true` (signed-in users read every row) or `{anon: true}` (visitors without a JWT too)."""
    if isinstance(value, bool):
        return value, False
    if isinstance(value, Mapping):
        _refuse_unknown_keys(value, ("anon",), setting)
    if isinstance(value, Mapping) and isinstance(value.get("anon", False), bool):
        return True, bool(value.get("anon", False))
    raise ModelError(f"{setting}: expected true, false or {{anon: true|false}}")


def _parse_member(member: object, setting: str) -> ParentLink:
    if isinstance(member, Mapping):
        _refuse_unknown_keys(member, ("group", "column", "key"), setting)
    if not isinstance(member, Mapping):
        raise ModelError(f"{setting}: expected {{group, column[, key]}} (this table's column holding the group's key)")
    return ParentLink(
        column=check_identifier(member.get("column"), f"{setting}.column"),
        table=check_identifier(member.get("group"), f"{setting}.group"),
        key=check_identifier(member.get("key", "id"), f"{setting}.key"),
        group=True,
    )


def _parse_membership(raw: object, setting: str) -> Membership:
    if isinstance(raw, Mapping):
        _refuse_unknown_keys(raw, ("group", "column", "user", "key", "role", "admins", "grants"), setting)
    if not isinstance(raw, Mapping):
        raise ModelError(f"{setting}: expected {{group, column, user[, key, role, admins, grants]}}")
    role = raw.get("role")
    admins_raw = raw.get("admins", [])
    if not isinstance(admins_raw, (list, tuple)) or not all(
        isinstance(a, str) and 0 < len(a) <= MAX_ROLE_VALUE and a.isprintable() for a in admins_raw
    ):
        raise ModelError(f"{setting}.admins: expected a list of role values (printable text, 1 to 63 characters)")
    if admins_raw and role is None:
        raise ModelError(f"{setting}.admins: name the column holding each member's role (role: <column>)")
    return Membership(
        group=check_identifier(raw.get("group"), f"{setting}.group"),
        column=check_identifier(raw.get("column"), f"{setting}.column"),
        user=check_identifier(raw.get("user"), f"{setting}.user"),
        key=check_identifier(raw.get("key", "id"), f"{setting}.key"),
        role=None if role is None else check_identifier(role, f"{setting}.role"),
        admins=tuple(dict.fromkeys(admins_raw)),
        grants=_parse_grants(raw.get("grants"), role, f"{setting}.grants"),
    )


def _parse_grants(raw: object, role: object, setting: str) -> tuple[tuple[str, str], ...]:
    """`grants: {admin: owner, member: admins}`: who grants and revokes each role value."""
    if raw is None:
        return ()
    if role is None:
        raise ModelError(f"{setting}: name the column holding each member's role (role: <column>)")
    if not isinstance(raw, Mapping) or not raw:
        raise ModelError(f"{setting}: expected a mapping of role value to who grants it ({', '.join(ROLE_GRANTERS)})")
    found = []
    for value, granter in raw.items():
        if not (isinstance(value, str) and 0 < len(value) <= MAX_ROLE_VALUE and value.isprintable()):
            raise ModelError(f"{setting}: {value!r} is not a role value (printable text, 1 to 63 characters)")
        if granter not in ROLE_GRANTERS:
            raise ModelError(f"{setting}.{value}: {granter!r} is not one of {', '.join(ROLE_GRANTERS)}")
        found.append((value, str(granter)))
    return tuple(found)


# `copyOwner: true` before the model is whole: the column is not named yet.
UNNAMED_COPY = ""


def _parse_copy_owner(spec: Mapping[str, Any], setting: str) -> str | None:
    """The copy's column (UNNAMED_COPY for `copyOwner: true`: named like the owner column it copies), or None."""
    copy = spec.get("copyOwner", False)
    if copy is False:
        return None
    where = f"{setting}.copyOwner"
    if "through" not in spec:
        raise ModelError(f"{where}: only a table owned through a path ('through') can carry a copy of its owner")
    if "owner" in spec or "userForeignKey" in spec:
        raise ModelError(
            f"{where}: give either 'owner' (a column the app keeps itself) or 'copyOwner' (a column supabase-access "
            "adds and keeps right), not both; 'userForeignKey' goes with 'owner'"
        )
    return _copy_column(copy, where, "the owner column")


def _copy_column(copy: object, where: str, named_like: str) -> str:
    """`true`: UNNAMED_COPY (named like the column it copies, once the model is whole), or a column name."""
    if copy is True:
        return UNNAMED_COPY
    if isinstance(copy, str):
        return check_identifier(copy, where)
    raise ModelError(f"{where}: expected true (a column named like {named_like}) or a column name")


def _name_owner_copies(model: AccessModel, setting: str) -> AccessModel:
    """Give each `copyOwner: true` table its column: the name of the owner column it copies."""

    def owner_of(name: str) -> Table:
        table = model.table(name)
        if table.owner_column:
            return table
        assert table.parent is not None  # guaranteed by _parse_copy_owner and _check_paths
        return owner_of(table.parent.table)

    tables = []
    for table in model.tables:
        if table.owner_copy:
            assert table.parent is not None
            root = owner_of(table.parent.table)
            if model.membership_of(root.name) is not None:
                raise ModelError(
                    f"{setting}.tables.{table.name}.copyOwner: the path ends at the group {root.name!r}, whose rows "
                    "are its members'; a copy of the owner is for rows one user owns (copy the group's key with "
                    "'copyGroup: true')"
                )
        if table.owner_column == UNNAMED_COPY:
            assert table.parent is not None and root.owner_column is not None
            column = root.owner_column
            if column == table.parent.column:
                raise ModelError(
                    f"{setting}.tables.{table.name}.copyOwner: the copy would be named {column}, the path's own "
                    "column; name it (copyOwner: <column>)"
                )
            table = replace(table, owner_column=column)
        tables.append(table)
    return replace(model, tables=tuple(tables))


def _parse_copy_group(spec: Mapping[str, Any], setting: str) -> str | None:
    """`copyGroup: true` (UNNAMED_COPY: named like the column holding the group's key) or a column name."""
    copy = spec.get("copyGroup", False)
    return None if copy is False else _copy_column(copy, f"{setting}.copyGroup", "the one holding the group's key")


def _name_group_copies(model: AccessModel, setting: str) -> AccessModel:
    """Check each `copyGroup` table is two or more hops below its group, and name its column."""
    tables = []
    for table in model.tables:
        if table.group_copy is not None:
            where = f"{setting}.tables.{table.name}.copyGroup"
            found = model.group_path(table.name)
            if found is None:
                raise ModelError(
                    f"{where}: only a table under a group (a path through 'through' to a 'member' table) can carry "
                    "a copy of its group's key"
                )
            hops, _ = found
            if len(hops) < 2:
                raise ModelError(
                    f"{where}: {table.name} holds its group's key already ({hops[0].column}); a copy is for tables "
                    "two or more hops below their group"
                )
            column = table.group_copy or hops[-1].column
            if column in (hops[0].column, table.author_column):
                raise ModelError(
                    f"{where}: the copy would be named {column}, a column the model gives another role; name it "
                    "(copyGroup: <column>)"
                )
            table = replace(table, group_copy=column)
        tables.append(table)
    return replace(model, tables=tuple(tables))


def _parse_through(through: object, setting: str) -> ParentLink:
    if isinstance(through, Mapping):
        _refuse_unknown_keys(through, ("column", "table", "key"), setting)
    if not isinstance(through, Mapping):
        raise ModelError(f"{setting}: expected {{column, table[, key]}}")
    return ParentLink(
        column=check_identifier(through.get("column"), f"{setting}.column"),
        table=check_identifier(through.get("table"), f"{setting}.table"),
        key=check_identifier(through.get("key", "id"), f"{setting}.key"),
    )


def _check_paths(model: AccessModel, setting: str) -> None:
    names = set(model.table_names)
    for table in model.tables:
        seen = {table.name}
        current = table
        while current.parent is not None:
            link = "member.group" if current.parent.group else "through.table"
            where = f"{setting}.tables.{current.name}.{link}"
            if current.parent.table not in names:
                raise ModelError(f"{where}: unknown table {current.parent.table!r} (known: {', '.join(sorted(names))})")
            if current.parent.table in seen:
                raise ModelError(f"{where}: ownership path of {table.name!r} loops back to {current.parent.table!r}")
            seen.add(current.parent.table)
            parent = model.table(current.parent.table)
            if not parent.owned:
                raise ModelError(
                    f"{where}: {parent.name!r} has no owner to inherit (a membership, public-read or "
                    "service-only table cannot be a parent)"
                )
            if current.parent.group and model.membership_of(parent.name) is None:
                raise ModelError(
                    f"{where}: {parent.name!r} is no group (no table of the model has "
                    f"'membership: {{group: {parent.name}, ...}}'); use 'through' for a parent row"
                )
            current = parent


def _check_groups(model: AccessModel, setting: str) -> None:
    """Membership tables point at owned group tables, one each; rows under a group say who writes them."""
    groups: dict[str, str] = {}
    names = set(model.table_names)
    for table in model.tables:
        membership = table.membership
        if membership is None:
            continue
        where = f"{setting}.tables.{table.name}.membership"
        if membership.group not in names:
            raise ModelError(f"{where}.group: unknown table {membership.group!r} (known: {', '.join(sorted(names))})")
        group = model.table(membership.group)
        if group.owner_column is None or group.parent is not None or group.membership is not None:
            raise ModelError(
                f"{where}.group: the group table {group.name!r} must be owned directly ('owner: <column>', no "
                "'through'): its owner adds the first members"
            )
        if membership.group in groups:
            raise ModelError(
                f"{where}.group: {membership.group!r} already has the membership table {groups[membership.group]!r}"
            )
        groups[membership.group] = table.name
    for table in model.tables:
        where = f"{setting}.tables.{table.name}"
        through = model.parent_path(table.name)
        if through is not None and model.membership_of(through[1].name) is not None:
            raise ModelError(
                f"{where}.owner: rows under the group {through[1].name!r} are its members' (give 'write' instead "
                "of an owner column)"
            )
        found = model.group_path(table.name) if table.owned else None
        if found is None:
            if table.write is not None:
                raise ModelError(
                    f"{where}.write: only rows under a group (a 'member' table, or a path to one) say who writes them"
                )
            continue
        hops, membership_table = found
        assert membership_table.membership is not None
        if hops[-1].key != membership_table.membership.key:
            raise ModelError(
                f"{where}: the path reaches the group {hops[-1].parent!r} by its column {hops[-1].key!r}, but "
                f"{membership_table.name!r} names its rows by {membership_table.membership.key!r} (membership.key)"
            )
        if table.write is None:
            raise ModelError(
                f"{where}.write: rows under the group {hops[-1].parent!r} are read by its members; say who writes "
                f"them: {', '.join(GROUP_WRITERS)}"
            )
        for key, who in (("write", table.write), ("delete", table.delete)):
            if who == "admins" and not membership_table.membership.admins:
                raise ModelError(
                    f"{where}.{key}: 'admins' needs admin roles in {setting}.tables.{membership_table.name}.membership "
                    "(role: <column>, admins: [<value>, ...])"
                )
        if table.author_column is not None and table.author_column == hops[0].column:
            raise ModelError(
                f"{where}.author: {table.author_column} is the path's own column; name the column holding the author"
            )


class ForeignKeyShape(NamedTuple):
    """One foreign key of a table, as the catalog reads it."""

    columns: tuple[str, ...]
    referenced_schema: str
    referenced_table: str
    referenced_columns: tuple[str, ...]


def suggested_entry(
    table: str, foreign_keys: tuple[ForeignKeyShape, ...], schema: str, model_tables: tuple[str, ...]
) -> str | None:
    """The model line for a table, guessed from its foreign keys: a path to a table of the model,
    else an owner column referencing auth.users; None when it has neither.

    The path comes first: a table with both (a team's `project_members (project_id, user_id)`, a
    task's `comments (task_id, author_id)`) given `owner: user_id` would let anyone add rows under
    someone else's parent (join their project); owned through the parent, only its owner writes.
    """
    single = [
        (fk.columns[0], fk.referenced_schema, fk.referenced_table, fk.referenced_columns[0])
        for fk in foreign_keys
        if len(fk.columns) == 1
    ]
    for column, ref_schema, ref_table, ref_column in single:
        if ref_schema == schema and ref_table in model_tables and ref_table != table:
            key = "" if ref_column == "id" else f", key: {ref_column}"
            return f"{table}: {{through: {{column: {column}, table: {ref_table}{key}}}}}"
    for column, ref_schema, ref_table, ref_column in single:
        if (ref_schema, ref_table, ref_column) == ("auth", "users", "id"):
            return f"{table}: {{owner: {column}}}"
    return None
