"""The objects that keep a copy of the owner on a table deep in an ownership path (`copyOwner`),
or of the group's key on a table two or more hops below its group (`copyGroup`).

Pure names and shapes: no Pulumi, no database. A table two or more hops from its owner pays for
its policy on every statement (the owned parents' keys are gathered up the path); a column
holding the owner makes its policy a comparison. The copy is ours to keep right: a trigger on
the table takes it from the parent on every insert and on every update that re-parents a row
(or touches the copy, which a client never sets), and a trigger on each table above passes a
change of its link (or of the root's owner) down. A CHECK constraint keeps it present, a foreign
key to auth.users (on delete cascade) keeps it real, an index serves its policy and the cascade.
A group's copy is the same with the group table's key in place of the owner column, and its
foreign key references that key (on delete cascade).
"""

from __future__ import annotations

from dataclasses import dataclass

from supabase_access.model.access_model import Hop, short_identifier

# Every object of an owner copy carries this comment, with the stack that made it.
MARKER_PREFIX = "supabase-access: owner copy kept by stack "
# The copy's column type: it references auth.users (id).
COLUMN_TYPE = "uuid"
# The types a group's key may have to be copied (the copy takes the key's type).
GROUP_KEY_TYPES = (COLUMN_TYPE, "bigint", "integer", "text")


def type_of(table: str, column: str) -> str:
    """An added column's type given as the type of another column of the schema (a group's key)."""
    return f"{table}.{column}"


def marker(stack: str, about: str = "") -> str:
    """The comment on what a stack's owner copy created, with a note for whoever reads the catalog."""
    return f"{MARKER_PREFIX}{stack}" + (f": {about}" if about else "")


def marked_by(comment: str | None) -> str | None:
    """The stack named by an owner copy's comment, None if the comment is not ours."""
    if comment is None or not comment.startswith(MARKER_PREFIX):
        return None
    return comment[len(MARKER_PREFIX) :].split(": ", 1)[0]


@dataclass(frozen=True)
class Watched:
    """A table above the copy whose `column` decides the owner of the rows below it: its link up
    the path, or at the root the owner column itself."""

    level: int  # 0: the copy table's direct parent
    table: str
    column: str


@dataclass(frozen=True)
class OwnerCopyNames:
    """What one owner copy creates, by name."""

    schema: str
    table: str
    column: str
    hops: tuple[Hop, ...]
    root_column: str
    # A copy of the group's key (`copyGroup`: root_column is the group table's key), not of the owner.
    group: bool = False

    def _base(self) -> str:
        return f"{self.table}_{self.column}"

    @property
    def check_constraint(self) -> str:
        return short_identifier(self._base(), suffix="_copy_check")

    @property
    def foreign_key(self) -> str:
        return short_identifier(self._base(), suffix="_copy_fkey")

    @property
    def index(self) -> str:
        return short_identifier(self._base(), suffix="_copy_idx")

    @property
    def index_build(self) -> str:
        """Where the index is built before it takes its name and mark (see PolicyIndex)."""
        return short_identifier(self._base(), suffix="_copy_build")

    @property
    def function(self) -> str:
        """The trigger function on the copy table: the owner from the parent."""
        return short_identifier(f"owner_copy_{self.schema}_{self.table}_{self.column}")

    def ancestor_function(self, ancestor: str) -> str:
        return short_identifier(f"owner_copy_{self.schema}_{self.table}_{self.column}_from_{ancestor}")

    @property
    def insert_trigger(self) -> str:
        return short_identifier(f"supabase_access_owner_copy_{self.column}", suffix="_insert")

    @property
    def update_trigger(self) -> str:
        return short_identifier(f"supabase_access_owner_copy_{self.column}", suffix="_update")

    @property
    def ancestor_trigger(self) -> str:
        """The trigger on each table above (one per copy: named after the copy's table and column)."""
        return short_identifier(f"supabase_access_owner_copy_{self.table}_{self.column}")

    @property
    def link(self) -> str:
        """The copy table's own column up the path."""
        return self.hops[0].column

    @property
    def watched(self) -> tuple[Watched, ...]:
        """Each table above, and the column whose change moves rows below it to another owner."""
        last = len(self.hops) - 1
        return tuple(
            Watched(level, hop.parent, self.root_column if level == last else self.hops[level + 1].column)
            for level, hop in enumerate(self.hops)
        )

    @property
    def functions(self) -> tuple[str, ...]:
        return (self.function, *(self.ancestor_function(w.table) for w in self.watched))

    @property
    def triggers(self) -> tuple[tuple[str, str], ...]:
        """(table, trigger) of every trigger of the copy."""
        return (
            (self.table, self.insert_trigger),
            (self.table, self.update_trigger),
            *((w.table, self.ancestor_trigger) for w in self.watched),
        )

    @property
    def tables(self) -> tuple[str, ...]:
        """The copy table and every table above it: what a change locks."""
        return (self.table, *(hop.parent for hop in self.hops))
