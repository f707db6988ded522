"""Generated apps for the review tools' property tests: a schema (DDL) and its access model, drawn by
Hypothesis, and an oracle saying what each matrix cell should be from the model's kinds alone.

Every access kind of the model (owner, paths several hops deep, groups with members and admins,
publicRead, serviceOnly), keys of every shape (uuid, identity, serial, text, composite, the owner
as the key, the parent as the key, a key other than `id`), generated and identity columns, tables
with no required column, reserved words as names, and parent links with and without ON DELETE
CASCADE (a delete the policy allows then fails on the child row: the one `!` the oracle expects).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from review.matrix import Cell, ProbePersona

# Names a table or column may have: plain ones, SQL reserved words (quoted everywhere or broken),
# and one of PostgreSQL's full 63 characters (names made from it must be shortened, not cut).
TABLE_NAMES = (
    "projects",
    "notes",
    "order",
    "user",
    "items",
    "profiles",
    "group",
    "entries",
    "a_table_name_of_the_full_sixty_three_characters_postgres_allows",
    "comments",
)
OWNER_COLUMNS = ("user_id", "owner_id", "created_by", "user", "author")
KEY_STYLES = ("uuid", "identity_always", "identity_default", "serial", "text", "composite", "owner_key", "parent_key")
KEY_TYPES = {
    "uuid": "uuid",
    "identity_always": "bigint",
    "identity_default": "bigint",
    "serial": "bigint",
    "text": "text",
}
EXTRA_COLUMNS = (
    ("title", "text not null"),
    ("body", "text"),
    ("note", "text default ''"),
    ("created_at", "timestamptz not null default now()"),
    ("amount", "numeric(10, 2) not null"),
    ("done", "boolean not null"),
    ("order", "integer not null"),
    ("payload", "jsonb not null default '{}'"),
    ("tags", "text[]"),
    ("answer", "integer generated always as (42) stored"),
    ("seq", "bigint generated always as identity"),
    ("rating", "numeric(3, 1) not null"),
    ("mood", "{schema}.mood not null"),
)


# The seed and number of the apps the property tests draw: CI draws the same ones every run.
# tests/unit/test_generated_apps.py checks that these still cover every kind (a change to the
# strategies changes what a seed gives).
SEED = 8
EXAMPLES = 200


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class GenTable:
    name: str
    # owner | group | through | member | membership | public | service
    kind: str
    entry: dict[str, Any]
    columns: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)
    # The column children reference (None: not a parent) and its type.
    key: str | None = None
    key_type: str = "uuid"
    # Set for tables under a path: (parent table, whether the link cascades on delete).
    parent: str | None = None
    cascades: bool = True
    # The group table whose members reach the rows (group rows, rows under a group, memberships).
    group: str | None = None
    write: str | None = None
    has_admins: bool = False
    public_read: bool = False
    public_read_anon: bool = False

    @property
    def owned(self) -> bool:
        return self.kind in ("owner", "group", "through", "member")


@dataclass
class GeneratedApp:
    tables: list[GenTable]
    # Supabase's legacy platform granted new tables to the API roles; the explicit-grant one does not.
    legacy_grants: bool

    def model(self, schema: str) -> dict[str, Any]:
        return {"schema": schema, "tables": {t.name: t.entry for t in self.tables}}

    def ddl(self, schema: str) -> str:
        s = q(schema)
        roles = "anon, authenticated, service_role"
        granted = roles if self.legacy_grants else "service_role"
        lines = [
            f"create schema {s};",
            f"grant usage on schema {s} to {roles};",
            f"alter default privileges for role postgres in schema {s} grant all on tables to {granted};",
            f"alter default privileges for role postgres in schema {s} grant all on sequences to {granted};",
            f"create type {s}.mood as enum ('calm', 'busy');",
        ]
        for table in self.tables:
            body = ",\n  ".join([*table.columns, *table.constraints]).replace("{schema}", s)
            lines.append(f"create table {s}.{q(table.name)} (\n  {body}\n);")
        return "\n".join(lines)

    def table(self, name: str) -> GenTable:
        return next(t for t in self.tables if t.name == name)

    @property
    def depth(self) -> int:
        """The most hops of any table's path."""
        return max(_depth(self.tables, t) for t in self.tables)

    def delete_fails(self, name: str) -> bool:
        """A delete of a fixture row meets a child row held by a link without ON DELETE CASCADE."""
        return any(
            child.parent == name and (not child.cascades or self.delete_fails(child.name)) for child in self.tables
        )

    def expected(self, cell: Cell, persona: ProbePersona) -> str:
        """'allowed', 'denied' or 'probe failed', from the model's kinds alone."""
        table = self.table(cell.table)
        allowed = self._allowed(table, cell.operation, persona, persona.own if cell.whose == "own" else persona.other)
        if allowed and cell.operation == "delete" and self.delete_fails(table.name):
            return "probe failed"
        return "allowed" if allowed else "denied"

    def _allowed(self, table: GenTable, operation: str, persona: ProbePersona, owner: str) -> bool:
        if persona.role == "service_role":
            return True
        if persona.role == "anon":
            return operation == "select" and table.public_read_anon
        if operation == "select" and table.public_read:
            return True
        user = persona.user

        def member() -> bool:
            return user == owner or (user in ("M", "D") and owner == "A")

        def admin() -> bool:
            return user == owner or (user == "D" and owner == "A" and self.table(table.group or "").has_admins)

        if table.kind in ("public", "service"):
            return False
        if table.kind == "membership":
            return {"select": member, "insert": admin, "update": lambda: False, "delete": admin}[operation]()
        if table.group is not None:
            if operation == "select":
                return member()
            writer = {"members": member, "admins": admin}.get(table.write or "owner", lambda: user == owner)
            return writer()
        return user == owner


@st.composite
def key_columns(draw: st.DrawFn, table: GenTable, link: tuple[str, str] | None, *, serial: bool) -> None:
    """The table's key (and the column children reference); `link` is (column, type) of its owner or
    parent column, which a composite, owner or parent key is made of. A serial key needs USAGE on its
    sequence, which only the legacy platform gives the API roles (`serial`)."""
    style = draw(st.sampled_from(KEY_STYLES if link is not None else KEY_STYLES[:5]))
    if style == "serial" and not serial:
        style = "identity_default"
    if style in ("owner_key", "parent_key") and link is not None:
        table.constraints.append(f"primary key ({q(link[0])})")
        table.key, table.key_type = link[0], link[1]
        return
    if style == "composite" and link is not None:
        position = draw(st.sampled_from(("integer not null default 0", "integer not null", "smallint not null")))
        table.columns.append(f"{q('position')} {position}")
        table.constraints.append(f"primary key ({q(link[0])}, {q('position')})")
        # Children reference a column of its own, unique.
        table.columns.append(f"{q('code')} uuid not null unique default gen_random_uuid()")
        table.key, table.key_type = "code", "uuid"
        return
    if style in ("composite", "owner_key", "parent_key"):
        style = "uuid"
    name = draw(st.sampled_from(("id", "id", "pk")))
    definition = {
        "uuid": "uuid primary key default gen_random_uuid()",
        "identity_always": "bigint generated always as identity primary key",
        "identity_default": "bigint generated by default as identity primary key",
        "serial": "bigserial primary key",
        "text": "text primary key default md5(random()::text)",
    }[style]
    table.columns.insert(0, f"{q(name)} {definition}")
    table.key, table.key_type = name, KEY_TYPES[style]


def _extra_columns(draw: st.DrawFn, table: GenTable) -> None:
    taken = {c.split(" ")[0].strip('"') for c in table.columns}
    extras = draw(st.lists(st.sampled_from(EXTRA_COLUMNS), max_size=3, unique_by=lambda c: c[0]))
    for name, definition in extras:
        if name not in taken:
            table.columns.append(f"{q(name)} {definition}")


def _owner_column(draw: st.DrawFn, table: GenTable, taken: set[str]) -> tuple[str, str]:
    name = draw(st.sampled_from([c for c in OWNER_COLUMNS if c not in taken]))
    not_null = draw(st.booleans())
    default = draw(st.booleans())
    references = draw(st.booleans())
    definition = "uuid" + (" not null" if not_null else "") + (" default auth.uid()" if default else "")
    if references:
        definition += " references auth.users (id) on delete cascade"
    table.columns.append(f"{q(name)} {definition}")
    return name, "uuid"


def _parent_column(draw: st.DrawFn, table: GenTable, parent: GenTable) -> tuple[str, str]:
    name = draw(st.sampled_from(("parent_id", f"{parent.name[:40]}_ref")))
    table.cascades = draw(st.booleans())
    on_delete = " on delete cascade" if table.cascades else ""
    not_null = " not null" if draw(st.booleans()) else ""
    table.columns.append(
        f"{q(name)} {parent.key_type}{not_null} references {{schema}}.{q(parent.name)} ({q(parent.key or 'id')})"
        + on_delete
    )
    table.parent = parent.name
    return name, parent.key_type


def _link(parent: GenTable, column: str) -> dict[str, str]:
    link = {"column": column}
    if parent.key != "id":
        link["key"] = parent.key or "id"
    return link


@st.composite
def generated_apps(draw: st.DrawFn, max_tables: int = 6) -> GeneratedApp:
    legacy = draw(st.booleans())
    names = draw(st.lists(st.sampled_from(TABLE_NAMES), min_size=2, max_size=max_tables, unique=True))
    tables: list[GenTable] = []
    pending_membership: list[GenTable] = []
    for name in names:
        if pending_membership:
            tables.append(_membership(draw, name, pending_membership.pop()))
            continue
        owned = [t for t in tables if t.owned]
        groups = [t for t in tables if t.kind == "group"]
        kinds = ["owner", "public", "service", "group"]
        kinds += ["through"] * 4 if owned else []
        kinds += ["member"] * 2 if groups else []
        kind = draw(st.sampled_from(kinds))
        table = GenTable(name, kind, {})
        if kind in ("public", "service"):
            draw(key_columns(table, None, serial=legacy))
            if kind == "service":
                table.entry = {"serviceOnly": True}
            else:
                table.public_read, table.public_read_anon = True, draw(st.booleans())
                table.entry = {"publicRead": {"anon": True} if table.public_read_anon else True}
            # Nothing required: a row is `insert ... default values`.
            table.columns.append(f"{q('body')} text")
            tables.append(table)
            continue
        if kind in ("owner", "group"):
            column = _owner_column(draw, table, set())
            table.entry = {"owner": column[0]}
            if kind == "group":
                table.group = name
                pending_membership.append(table)
        else:
            # The deepest parent more likely: paths several hops deep.
            deepest = max(owned, key=lambda t: _depth(tables, t))
            if kind == "member":
                parent = draw(st.sampled_from(groups))
            else:
                parent = deepest if draw(st.booleans()) else draw(st.sampled_from(owned))
            column = _parent_column(draw, table, parent)
            table.group = parent.group
            if kind == "member":
                table.entry = {"member": {"group": parent.name, **_link(parent, column[0])}}
            else:
                table.entry = {"through": {"table": parent.name, **_link(parent, column[0])}}
                if table.group is None and draw(st.booleans()):
                    # Its own copy of the owner too: read by it, written under an owned parent.
                    owner = _owner_column(draw, table, {column[0]})
                    table.entry["owner"] = owner[0]
            if table.group is not None:
                group = next(t for t in tables if t.name == table.group)
                table.write = draw(st.sampled_from(("members", "owner", *(("admins",) if group.has_admins else ()))))
                table.entry["write"] = table.write
        draw(key_columns(table, column, serial=legacy))
        if draw(st.integers(0, 3)) == 0:
            table.public_read, table.public_read_anon = True, draw(st.booleans())
            table.entry["publicRead"] = {"anon": True} if table.public_read_anon else True
        _extra_columns(draw, table)
        tables.append(table)
    for group in pending_membership:
        # No name left for its membership table: the group stays a plain owner table.
        group.kind, group.group = "owner", None
        for table in tables:
            if table.group == group.name:
                table.group, table.write = None, None
                table.entry.pop("write", None)
                if "member" in table.entry:
                    member = table.entry.pop("member")
                    table.entry["through"] = {"table": member.pop("group"), **member}
                    table.kind = "through"
    return GeneratedApp(tables, legacy_grants=legacy)


def _depth(tables: list[GenTable], table: GenTable) -> int:
    return 0 if table.parent is None else 1 + _depth(tables, next(t for t in tables if t.name == table.parent))


def _membership(draw: st.DrawFn, name: str, group: GenTable) -> GenTable:
    table = GenTable(name, "membership", {}, group=group.name)
    column = _parent_column(draw, table, group)
    user = draw(st.sampled_from(("user_id", "member_id", "user")))
    table.columns.append(f"{q(user)} uuid not null references auth.users (id) on delete cascade")
    membership: dict[str, Any] = {"group": group.name, "user": user, **_link(group, column[0])}
    if draw(st.integers(0, 3)) > 0:
        # Every member's role defaults to a plain one (the matrix cannot guess a role value a CHECK takes).
        check = f" check ({q('role')} in ('member', 'admin', 'owner'))" if draw(st.booleans()) else ""
        table.columns.append(f"{q('role')} text not null default 'member'{check}")
        membership["role"] = "role"
        admins = draw(st.sampled_from((["admin"], ["admin", "owner"], [])))
        if admins:
            membership["admins"] = admins
            group.has_admins = True
    if draw(st.booleans()):
        table.constraints.append(f"primary key ({q(column[0])}, {q(user)})")
    else:
        table.columns.insert(0, f"{q('id')} bigint generated by default as identity primary key")
    table.entry = {"membership": membership}
    return table
