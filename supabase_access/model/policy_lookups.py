"""The lookups an access plan's policies make, and the covering index that serves each one.

Pure data: no Pulumi, no database. An owner policy on a table one or more hops from its owner
renders a subquery that searches each parent table on the path by its link column and returns
the key the level below compares with: `select "id" from "sessions" where "user_id" = ...`, or
for deeper tables one join up to the owner. Each such search is cheap only as an index-only scan,
which needs an index on (link column) that also holds the returned key, e.g.
`sessions (user_id) include (id)`. A plain index on the link column alone cannot serve it.

A predicate that compares the table's own owner column (no hops) needs no covering index.
Rows under a group search the path up to the table holding the group's key the same way, and
the group helpers search the membership table by user and the group table by owner.
"""

from __future__ import annotations

from dataclasses import dataclass

from supabase_access.model.access_model import short_identifier
from supabase_access.model.profiles import AccessPlan, OwnedByCurrentUser

INDEX_SUFFIX = "_rls_idx"
# The name an index is built under: ours by name from the moment the build starts, so a build
# interrupted anywhere (invalid, or finished by a killed run's backend) is known as ours.
BUILD_SUFFIX = "_rls_build"


@dataclass(frozen=True, order=True)
class PolicyLookup:
    """Policies search `table` by `column` and read `include` from the rows found."""

    table: str
    column: str
    include: str

    @property
    def index_name(self) -> str:
        return policy_index_name(self.table, self.column, self.include)


def policy_index_name(table: str, column: str, include: str) -> str:
    """`<table>_<column>_<include>_rls_idx`, shortened with a hash when PostgreSQL would cut it."""
    return short_identifier(f"{table}_{column}_{include}", suffix=INDEX_SUFFIX)


def policy_index_build_name(table: str, column: str, include: str) -> str:
    """`<table>_<column>_<include>_rls_build`: where the index is built before it takes its name and mark."""
    return short_identifier(f"{table}_{column}_{include}", suffix=BUILD_SUFFIX)


def predicate_lookups(predicate: OwnedByCurrentUser) -> tuple[PolicyLookup, ...]:
    """One lookup per level of the predicate's subquery (none for an owner column compared directly)."""
    hops = predicate.hops
    lookups = []
    for level, hop in enumerate(hops):
        link = hops[level + 1].column if level + 1 < len(hops) else predicate.owner_column
        # An index on the link column alone already returns it; nothing to include then.
        if link != hop.key:
            lookups.append(PolicyLookup(table=hop.parent, column=link, include=hop.key))
    return tuple(lookups)


def policy_lookups(plan: AccessPlan) -> tuple[PolicyLookup, ...]:
    """Every lookup the plan's policies make, sorted and without repeats."""
    found = {
        lookup
        for access in plan.tables
        for rule in access.rules
        for predicate in (rule.using, rule.with_check)
        if predicate is not None
        # A group path ends at the table whose link column holds the group's key, searched by that column.
        for owned in predicate.owner_paths(groups=True)
        for lookup in predicate_lookups(owned)
    }
    for group in plan.group_lookups:
        membership = group.membership
        found.add(PolicyLookup(table=group.membership_table, column=membership.user, include=membership.column))
        if group.group_owner_column != membership.key:
            found.add(PolicyLookup(table=membership.group, column=group.group_owner_column, include=membership.key))
    return tuple(sorted(found))
