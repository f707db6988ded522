"""Policy rules as plain data: what the Pulumi program declares, for the provider to render.

The program sends a rule's predicates as data (`{"ownedBy": {...}}`) instead of SQL, so it
needs no database driver; the provider's check renders them with `sql.render_predicate`, and
the rendered SQL is what state holds and `pulumi preview` shows. Policies written as SQL (the
stack's `extraPolicies`) are sent as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from supabase_access.model.access_model import Hop, ModelError, check_identifier
from supabase_access.model.policy import PolicySpec
from supabase_access.model.profiles import (
    AllOf,
    Always,
    AnyOf,
    GroupLookup,
    InGroup,
    NotAnonymousUser,
    OwnedByCurrentUser,
    PolicyRule,
    Predicate,
    PredicateVisitor,
)

# A policy the program declares: written as SQL (extraPolicies) or made from a rule.
DeclaredPolicy = PolicySpec | PolicyRule


def declared_to_plain(policy: DeclaredPolicy) -> dict[str, Any]:
    return policy.to_plain() if isinstance(policy, PolicySpec) else rule_to_plain(policy)


def rule_to_plain(rule: PolicyRule) -> dict[str, Any]:
    """A rule as a policy input of TablePolicies, its predicates still as data."""
    return {
        "command": rule.command,
        "roles": sorted(rule.roles),
        "permissive": rule.permissive,
        "using": None if rule.using is None else predicate_to_plain(rule.using),
        "withCheck": None if rule.with_check is None else predicate_to_plain(rule.with_check),
    }


def group_lookup_to_plain(lookup: GroupLookup) -> dict[str, Any]:
    """A plan's group functions as the inputs of GroupFunctions (and of the preflight's dry run)."""
    membership = lookup.membership
    plain: dict[str, Any] = {
        "membershipTable": lookup.membership_table,
        "group": membership.group,
        "column": membership.column,
        "user": membership.user,
        "key": membership.key,
        "groupOwnerColumn": lookup.group_owner_column,
        "helperSchema": lookup.helper_schema,
        "admins": list(membership.admins),
    }
    if membership.role is not None:
        plain["role"] = membership.role
    return plain


def predicate_to_plain(predicate: Predicate) -> dict[str, Any]:
    return predicate.fold(_Plain())


class _Plain(PredicateVisitor[dict[str, Any]]):
    def always(self) -> dict[str, Any]:
        return {"always": True}

    def not_anonymous(self) -> dict[str, Any]:
        return {"notAnonymous": True}

    def owned_by(self, predicate: OwnedByCurrentUser) -> dict[str, Any]:
        return {
            "ownedBy": {
                "rootTable": predicate.root_table,
                "ownerColumn": predicate.owner_column,
                "path": _hops_to_plain(predicate.hops),
            }
        }

    def in_group(self, predicate: InGroup) -> dict[str, Any]:
        return {
            "inGroup": {
                "column": predicate.column,
                "helperSchema": predicate.helper_schema,
                "helper": predicate.helper,
                "path": _hops_to_plain(predicate.hops),
            }
        }

    def all_of(self, parts: list[dict[str, Any]]) -> dict[str, Any]:
        return {"allOf": parts}

    def any_of(self, parts: list[dict[str, Any]]) -> dict[str, Any]:
        return {"anyOf": parts}


def _hops_to_plain(hops: tuple[Hop, ...]) -> list[dict[str, str]]:
    return [{"table": h.table, "column": h.column, "parent": h.parent, "key": h.key} for h in hops]


def _hops_from_plain(path: object, setting: str) -> tuple[Hop, ...]:
    if not isinstance(path, list) or not all(isinstance(hop, Mapping) for hop in path):
        raise ModelError(f"{setting}: expected a list of hops")
    fields = ("table", "column", "parent", "key")
    return tuple(Hop(*(check_identifier(hop.get(k), f"{setting}.{k}") for k in fields)) for hop in path)


KINDS = "always, notAnonymous, allOf, anyOf, ownedBy, inGroup"


def predicate_from_plain(value: object, setting: str) -> Predicate:
    """The predicate `predicate_to_plain` gave; anything else is a ModelError naming `setting`."""
    kind, body = _kind(value, setting)
    if kind == "always" and body is True:
        return Always()
    if kind == "notAnonymous" and body is True:
        return NotAnonymousUser()
    if kind == "allOf" and isinstance(body, list) and body:
        return AllOf(_parts(body, f"{setting}.allOf", _owned_by, "only ownedBy predicates can be combined"))
    if kind == "anyOf" and isinstance(body, list) and body:
        why = "only ownedBy and inGroup predicates can be combined"
        return AnyOf(_parts(body, f"{setting}.anyOf", _owned_by_or_in_group, why))
    leaf = _owned_by_or_in_group(kind, body, setting)
    if leaf is None:
        raise ModelError(f"{setting}: expected SQL text or one of {KINDS}")
    return leaf


P = TypeVar("P", bound=Predicate)


def _kind(value: object, setting: str) -> tuple[str, object]:
    if not isinstance(value, Mapping) or len(value) != 1:
        raise ModelError(f"{setting}: expected SQL text or one of {KINDS}")
    ((kind, body),) = value.items()
    return str(kind), body


def _parts(body: list[object], setting: str, parse: Callable[[str, object, str], P | None], why: str) -> tuple[P, ...]:
    """The parts of allOf or anyOf: each a valid predicate (else its own error), of the kinds `parse`
    takes (else `why`)."""
    for part in body:
        predicate_from_plain(part, setting)
    parts = [parse(*_kind(part, setting), setting) for part in body]
    if any(part is None for part in parts):
        raise ModelError(f"{setting}: {why}")
    return tuple(part for part in parts if part is not None)


def _owned_by(kind: str, body: object, setting: str) -> OwnedByCurrentUser | None:
    if kind != "ownedBy" or not isinstance(body, Mapping):
        return None
    return OwnedByCurrentUser(
        _hops_from_plain(body.get("path"), f"{setting}.ownedBy.path"),
        check_identifier(body.get("rootTable"), f"{setting}.ownedBy.rootTable"),
        check_identifier(body.get("ownerColumn"), f"{setting}.ownedBy.ownerColumn"),
    )


def _owned_by_or_in_group(kind: str, body: object, setting: str) -> OwnedByCurrentUser | InGroup | None:
    if kind == "inGroup" and isinstance(body, Mapping):
        return InGroup(
            _hops_from_plain(body.get("path"), f"{setting}.inGroup.path"),
            check_identifier(body.get("column"), f"{setting}.inGroup.column"),
            check_identifier(body.get("helperSchema"), f"{setting}.inGroup.helperSchema"),
            check_identifier(body.get("helper"), f"{setting}.inGroup.helper"),
        )
    return _owned_by(kind, body, setting)
