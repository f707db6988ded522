"""Column rules as privileges: the Grants of a table whose columns the model narrows (readOnly, immutable, hidden).

A table-level privilege covers every column, so for such a table a role gets its narrowed privileges
(SELECT, INSERT, UPDATE) column by column, through `pulumi_postgresql.Grant` with `object_type:
column` (one privilege per Grant: that is what the resource takes), and the rest table-wide. A table
without column rules keeps its one table Grant per role, unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_postgresql as postgresql

from supabase_access.model.access_model import COLUMN_PRIVILEGES, ColumnRules


def table_wide(privileges: Sequence[str], role: str, rules: ColumnRules) -> list[str]:
    """The privileges a role keeps on the whole table: those no column rule narrows for it."""
    return [p for p in privileges if not (p in COLUMN_PRIVILEGES and rules.excluded(role, p))]


def narrowed(privileges: Sequence[str], role: str, rules: ColumnRules, columns: Sequence[str]) -> dict[str, list[str]]:
    """privilege -> the table's columns the role may use it on, for each privilege a rule narrows
    (a privilege left with no column is not given at all)."""
    found = {}
    for privilege in privileges:
        excluded = rules.excluded(role, privilege) if privilege in COLUMN_PRIVILEGES else ()
        allowed = [c for c in columns if c not in excluded]
        if excluded and allowed:
            found[privilege] = allowed
    return found


def withheld_columns(roles: Sequence[str], rules: ColumnRules) -> dict[str, dict[str, list[str]]]:
    """role -> privilege -> the columns its rules keep from it, whether or not it gets the privilege
    elsewhere: RowLevelSecurity takes back a column grant of one (made by hand), which no Grant reads."""
    found: dict[str, dict[str, list[str]]] = {}
    for role in roles:
        for privilege in COLUMN_PRIVILEGES:
            if excluded := rules.excluded(role, privilege):
                found.setdefault(role, {})[privilege] = sorted(excluded)
    return found


def column_grants(
    *,
    role: str,
    table: str,
    schema: str,
    database: str,
    privileges: Sequence[str],
    rules: ColumnRules,
    columns: Mapping[str, Sequence[str]],
    table_grant: postgresql.Grant,
    parent: pulumi.Resource,
) -> dict[str, postgresql.Grant]:
    """privilege -> the role's column Grant for it on the table. After the table Grant: its first
    apply revokes ALL on the table when the role keeps nothing table-wide, column grants included."""
    if table not in columns:  # a table the database lacks: the preflight names it
        return {}
    return {
        privilege: postgresql.Grant(
            f"{role}-{table}-{privilege.lower()}-columns-grant",
            role=role,
            database=database,
            schema=schema,
            object_type="column",
            objects=[table],
            columns=allowed,
            privileges=[privilege],
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[table_grant]),
        )
        for privilege, allowed in narrowed(privileges, role, rules, columns[table]).items()
    }
