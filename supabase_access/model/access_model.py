"""The access model: which tables an app has and how each row is owned.

Pure data and validation: no Pulumi, no database. A table is owned either
directly (a column holds the owner's `auth.users.id`) or through a foreign-key
column pointing at another table of the model, possibly over several hops, or both:
a table deep in a path may carry a copy of its owner, so reading it needs no path
walk while writing it still checks the path.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

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


@dataclass(frozen=True)
class Table:
    name: str
    # Both may be set: the owner column answers reads, the parent link is checked on writes.
    owner_column: str | None = None
    parent: ParentLink | None = None
    # The FK from owner_column to auth.users that the open profile removes.
    user_foreign_key: str | None = None


@dataclass(frozen=True)
class Hop:
    """One step of an ownership path: rows of `table` whose `column` is in `parent`'s `key`."""

    table: str
    column: str
    parent: str
    key: str


@dataclass(frozen=True)
class AccessModel:
    schema: str
    tables: tuple[Table, ...]

    def table(self, name: str) -> Table:
        for table in self.tables:
            if table.name == name:
                return table
        raise KeyError(name)

    @property
    def table_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tables)

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
    schema = check_identifier(raw.get("schema", "public"), f"{setting}.schema")
    raw_tables = raw.get("tables")
    if not isinstance(raw_tables, Mapping) or not raw_tables:
        raise ModelError(f"{setting}.tables: expected a non-empty mapping of table name to ownership")
    tables = tuple(_parse_table(name, spec, f"{setting}.tables.{name}") for name, spec in raw_tables.items())
    model = AccessModel(schema=schema, tables=tables)
    _check_paths(model, setting)
    return model


def load_model_file(path: Path, *, setting: str) -> AccessModel:
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ModelError(f"{setting}: cannot read model file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ModelError(f"{setting}: {path} is not valid YAML: {exc}") from exc
    return parse_model(raw, setting=f"{setting} ({path})")


def _parse_table(name: object, spec: object, setting: str) -> Table:
    table_name = check_identifier(name, setting)
    if not isinstance(spec, Mapping):
        raise ModelError(f"{setting}: expected 'owner: <column>' or 'through: {{column, table}}'")
    unknown = set(spec) - {"owner", "through", "userForeignKey"}
    if unknown:
        raise ModelError(f"{setting}: unknown key(s) {sorted(unknown)}")
    has_owner, has_through = "owner" in spec, "through" in spec
    if not (has_owner or has_through):
        raise ModelError(f"{setting}: give 'owner', 'through', or both (an owner column copied down a path)")
    if "userForeignKey" in spec and not has_owner:
        raise ModelError(f"{setting}.userForeignKey: only a table with 'owner' references auth.users")
    fk = spec.get("userForeignKey")
    return Table(
        name=table_name,
        owner_column=check_identifier(spec["owner"], f"{setting}.owner") if has_owner else None,
        parent=_parse_through(spec["through"], f"{setting}.through") if has_through else None,
        user_foreign_key=None if fk is None else check_identifier(fk, f"{setting}.userForeignKey"),
    )


def _parse_through(through: object, setting: str) -> ParentLink:
    if not isinstance(through, Mapping) or set(through) - {"column", "table", "key"}:
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
            where = f"{setting}.tables.{current.name}.through.table"
            if current.parent.table not in names:
                raise ModelError(f"{where}: unknown table {current.parent.table!r} (known: {', '.join(sorted(names))})")
            if current.parent.table in seen:
                raise ModelError(f"{where}: ownership path of {table.name!r} loops back to {current.parent.table!r}")
            seen.add(current.parent.table)
            current = model.table(current.parent.table)


# (columns, referenced schema, referenced table, referenced columns) of one foreign key.
ForeignKeyShape = tuple[tuple[str, ...], str, str, tuple[str, ...]]


def suggested_entry(
    table: str, foreign_keys: tuple[ForeignKeyShape, ...], schema: str, model_tables: tuple[str, ...]
) -> str | None:
    """The model line for a table, guessed from its foreign keys: an owner column referencing
    auth.users, else a path to a table of the model; None when it has neither."""
    single = [
        (cols[0], ref_schema, ref_table, ref_cols[0])
        for cols, ref_schema, ref_table, ref_cols in foreign_keys
        if len(cols) == 1
    ]
    for column, ref_schema, ref_table, ref_column in single:
        if (ref_schema, ref_table, ref_column) == ("auth", "users", "id"):
            return f"{table}: {{owner: {column}}}"
    for column, ref_schema, ref_table, ref_column in single:
        if ref_schema == schema and ref_table in model_tables and ref_table != table:
            key = "" if ref_column == "id" else f", key: {ref_column}"
            return f"{table}: {{through: {{column: {column}, table: {ref_table}{key}}}}}"
    return None
