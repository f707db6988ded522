"""Policy rules as plain data: what the Pulumi program declares, for the provider to render.

The program sends a rule's predicates as data (`{"ownedBy": {...}}`) instead of SQL, so it
needs no database driver; the provider's check renders them with `sql.render_predicate`, and
the rendered SQL is what state holds and `pulumi preview` shows. Policies written as SQL (the
stack's `extraPolicies`) are sent as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from supabase_access.model.access_model import MAX_ROLE_VALUE, Hop, ModelError, check_identifier
from supabase_access.model.policy import PolicySpec
from supabase_access.model.profiles import (
    AllOf,
    Always,
    AnyOf,
    GroupLookup,
    InGroup,
    NotAnonymousUser,
    NotCurrentUser,
    NotGroupOwner,
    OwnedByCurrentUser,
    PolicyRule,
    Predicate,
    PredicateVisitor,
    RoleIn,
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

    def role_in(self, predicate: RoleIn) -> dict[str, Any]:
        return {"roleIn": {"column": predicate.column, "values": list(predicate.values)}}

    def not_current_user(self, predicate: NotCurrentUser) -> dict[str, Any]:
        return {"notCurrentUser": {"column": predicate.column}}

    def not_group_owner(self, predicate: NotGroupOwner) -> dict[str, Any]:
        return {"notGroupOwner": {key: getattr(predicate, field) for key, field in _NOT_GROUP_OWNER}}


def _hops_to_plain(hops: tuple[Hop, ...]) -> list[dict[str, str]]:
    return [{"table": h.table, "column": h.column, "parent": h.parent, "key": h.key} for h in hops]


def _hops_from_plain(path: object, setting: str) -> tuple[Hop, ...]:
    if not isinstance(path, list) or not all(isinstance(hop, Mapping) for hop in path):
        raise ModelError(f"{setting}: expected a list of hops")
    fields = ("table", "column", "parent", "key")
    return tuple(Hop(*(check_identifier(hop.get(k), f"{setting}.{k}") for k in fields)) for hop in path)


KINDS = "always, notAnonymous, allOf, anyOf, ownedBy, inGroup, roleIn, notCurrentUser, notGroupOwner"
COMBINED = "ownedBy, inGroup, roleIn, notCurrentUser, notGroupOwner, allOf, anyOf"
# notGroupOwner's keys and the fields of NotGroupOwner they hold.
_NOT_GROUP_OWNER = (
    ("column", "column"),
    ("user", "user_column"),
    ("group", "group"),
    ("key", "key"),
    ("ownerColumn", "owner_column"),
    ("helperSchema", "helper_schema"),
    ("helper", "helper"),
)


def predicate_from_plain(value: object, setting: str) -> Predicate:
    """The predicate `predicate_to_plain` gave; anything else is a ModelError naming `setting`."""
    kind, body = _kind(value, setting)
    if kind == "always" and body is True:
        return Always()
    if kind == "notAnonymous" and body is True:
        return NotAnonymousUser()
    if kind in ("allOf", "anyOf") and isinstance(body, list) and body:
        parts = tuple(predicate_from_plain(part, f"{setting}.{kind}") for part in body)
        # A rule combines tests of rows; `always` in one would make it a tautology.
        if any(isinstance(part, (Always, NotAnonymousUser)) for part in parts):
            raise ModelError(f"{setting}.{kind}: only row predicates can be combined ({COMBINED})")
        return AllOf(parts) if kind == "allOf" else AnyOf(parts)
    leaf = _row_test(kind, body, setting)
    if leaf is None:
        raise ModelError(f"{setting}: expected SQL text or one of {KINDS}")
    return leaf


def _kind(value: object, setting: str) -> tuple[str, object]:
    if not isinstance(value, Mapping) or len(value) != 1:
        raise ModelError(f"{setting}: expected SQL text or one of {KINDS}")
    ((kind, body),) = value.items()
    return str(kind), body


def _row_test(kind: str, body: object, setting: str) -> Predicate | None:
    """One of the leaf predicates that test a row, or None when `kind` and `body` are none of them."""
    if not isinstance(body, Mapping):
        return None
    if kind == "ownedBy":
        return OwnedByCurrentUser(
            _hops_from_plain(body.get("path"), f"{setting}.ownedBy.path"),
            check_identifier(body.get("rootTable"), f"{setting}.ownedBy.rootTable"),
            check_identifier(body.get("ownerColumn"), f"{setting}.ownedBy.ownerColumn"),
        )
    if kind == "inGroup":
        return InGroup(
            _hops_from_plain(body.get("path"), f"{setting}.inGroup.path"),
            check_identifier(body.get("column"), f"{setting}.inGroup.column"),
            check_identifier(body.get("helperSchema"), f"{setting}.inGroup.helperSchema"),
            check_identifier(body.get("helper"), f"{setting}.inGroup.helper"),
        )
    if kind == "roleIn":
        values = body.get("values")
        if not isinstance(values, list) or not all(
            isinstance(v, str) and 0 < len(v) <= MAX_ROLE_VALUE and v.isprintable() for v in values
        ):
            raise ModelError(f"{setting}.roleIn.values: expected a list of role values")
        return RoleIn(check_identifier(body.get("column"), f"{setting}.roleIn.column"), tuple(values))
    if kind == "notCurrentUser":
        return NotCurrentUser(check_identifier(body.get("column"), f"{setting}.notCurrentUser.column"))
    if kind == "notGroupOwner":
        where = f"{setting}.notGroupOwner"
        fields = {field: check_identifier(body.get(key), f"{where}.{key}") for key, field in _NOT_GROUP_OWNER}
        return NotGroupOwner(**fields)
    return None
