"""`realtime:` in the model: Postgres Changes and private Broadcast/Presence channels. Pure: no database.

    realtime:
      publish: [notes, projects]              # in the supabase_realtime publication
      channels:
        "project:{id}": {member: {group: projects}}
        "user:{id}": {owner: true}
        "news": {publicRead: true}            # {publicRead: {anon: true}}: visitors too
        "ops:{id}": {serviceOnly: true}

A published table's changes reach a subscriber when its SELECT policies admit the row for the
subscriber's role and claims, so the table's kind decides (one outside `tables:` has none: the
preflight refuses it on prod with the line to add, and warns on dev).
A channel's kind becomes policies on `realtime.messages` (Realtime Authorization): SELECT to receive,
INSERT to send, for the extensions broadcast and presence, the topic read from `realtime.topic()`.
The open profile (dev) opens every declared channel to anon and authenticated, as it opens the tables.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from supabase_access.model.access_model import (
    CHANNEL_KINDS,
    AccessModel,
    Channel,
    ModelError,
    RealtimeModel,
    check_identifier,
    short_identifier,
)
from supabase_access.model.helper_schema import HELPER_SCHEMA
from supabase_access.model.profiles import API_ROLES, GroupLookup
from supabase_access.model.suggest import unknown_keys_message

PUBLICATION = "supabase_realtime"
ID_PLACEHOLDER = "{id}"
# A topic's fixed part: letters, digits and the separators topics use; never a quote, space or wildcard.
TOPIC_PREFIX = re.compile(r"^[A-Za-z0-9_.:/-]{0,100}$")
REALTIME_KEYS = ("publish", "channels")
EXTENSIONS = ("broadcast", "presence")
CHANNEL_KINDS_HINT = "'member: {group: <table>}', 'owner: true', 'publicRead: true' or 'serviceOnly: true'"


def parse_realtime(raw: object, model: AccessModel, setting: str) -> RealtimeModel:
    if raw is None:
        return RealtimeModel()
    if not isinstance(raw, Mapping):
        raise ModelError(f"{setting}: expected a mapping with 'publish' and/or 'channels'")
    unknown = [key for key in raw if key not in REALTIME_KEYS]
    if unknown:
        raise ModelError(unknown_keys_message(setting, unknown, REALTIME_KEYS))
    return RealtimeModel(
        publish=_parse_publish(raw.get("publish"), f"{setting}.publish"),
        channels=_parse_channels(raw.get("channels"), model, f"{setting}.channels"),
    )


def _parse_publish(raw: object, setting: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ModelError(f"{setting}: expected a list of the model's tables whose changes Realtime sends")
    # A table outside `tables:` has no kind: the preflight refuses it on prod with its line, dev warns.
    names = tuple(check_identifier(name, setting) for name in raw)
    if len(set(names)) != len(names):
        raise ModelError(f"{setting}: a table is named twice")
    return names


def parse_pattern(pattern: object, setting: str) -> tuple[str, bool]:
    """(prefix, has_id) of `project:{id}` or a fixed topic; anything else is refused, naming the setting."""
    text = pattern if isinstance(pattern, str) else ""
    has_id = text.endswith(ID_PLACEHOLDER)
    prefix = text[: -len(ID_PLACEHOLDER)] if has_id else text
    if not text or not TOPIC_PREFIX.match(prefix) or (not has_id and not prefix):
        raise ModelError(
            f"{setting}: {pattern!r} is not a channel topic pattern (a fixed topic like 'news', or one ending in "
            "'{id}' like 'project:{id}'; letters, digits and _ . : / - only)"
        )
    return prefix, has_id


def _parse_channels(raw: object, model: AccessModel, setting: str) -> tuple[Channel, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise ModelError(f"{setting}: expected a mapping of topic pattern to kind ({CHANNEL_KINDS_HINT})")
    channels = tuple(_parse_channel(pattern, spec, model, f"{setting}.{pattern}") for pattern, spec in raw.items())
    slugs = [_slug(c.pattern) for c in channels]
    if len(set(slugs)) != len(slugs):
        twice = sorted(c.pattern for c, s in zip(channels, slugs, strict=True) if slugs.count(s) > 1)
        raise ModelError(f"{setting}: {', '.join(twice)} would name the same policies; rename one")
    return channels


def _parse_channel(pattern: object, spec: object, model: AccessModel, setting: str) -> Channel:
    prefix, has_id = parse_pattern(pattern, setting)
    assert isinstance(pattern, str)
    if spec is None or spec == {}:
        return Channel(pattern, prefix, has_id, kind=None)
    if not isinstance(spec, Mapping):
        raise ModelError(f"{setting}: expected one of {CHANNEL_KINDS_HINT}")
    unknown = [key for key in spec if key not in CHANNEL_KINDS]
    if unknown:
        raise ModelError(unknown_keys_message(setting, unknown, CHANNEL_KINDS))
    if len(spec) != 1:
        raise ModelError(f"{setting}: give one kind, not {sorted(spec)}")
    ((kind, value),) = spec.items()
    where = f"{setting}.{kind}"
    if kind in ("member", "owner") and not has_id:
        raise ModelError(f"{where}: the topic names whose channel it is: end the pattern with '{{id}}'")
    if kind == "member":
        if not isinstance(value, Mapping) or set(value) != {"group"}:
            raise ModelError(f"{where}: expected {{group: <group table>}}")
        group = check_identifier(value["group"], f"{where}.group")
        if group not in model.group_names:
            raise ModelError(
                f"{where}.group: {group!r} is no group "
                f"(no table of the model has 'membership: {{group: {group}, ...}}')"
            )
        return Channel(pattern, prefix, has_id, kind, group=group)
    if kind == "publicRead":
        if isinstance(value, Mapping):
            unknown = [key for key in value if key != "anon"]
            if unknown or not isinstance(value.get("anon", False), bool):
                raise ModelError(f"{where}: expected true or {{anon: true|false}}")
            return Channel(pattern, prefix, has_id, kind, anon=bool(value.get("anon", False)))
    if value is not True:
        raise ModelError(f"{where}: expected true")
    return Channel(pattern, prefix, has_id, kind)


def realtime_to_plain(realtime: RealtimeModel) -> dict[str, Any]:
    plain: dict[str, Any] = {}
    if realtime.publish:
        plain["publish"] = list(realtime.publish)
    if realtime.channels:
        plain["channels"] = {c.pattern: _channel_to_plain(c) for c in realtime.channels}
    return plain


def _channel_to_plain(channel: Channel) -> dict[str, Any]:
    if channel.kind is None:
        return {}
    if channel.kind == "member":
        return {"member": {"group": channel.group}}
    if channel.kind == "publicRead" and channel.anon:
        return {"publicRead": {"anon": True}}
    return {channel.kind: True}


def channel_line(channel: Channel, model: AccessModel) -> str:
    """The model line that gives a kindless channel one: members of the model's first group when the
    topic carries an id and there is a group, else the server alone."""
    if channel.has_id and model.group_names:
        return f'"{channel.pattern}": {{member: {{group: {model.group_names[0]}}}}}'
    return f'"{channel.pattern}": {{serviceOnly: true}}'


# --- The channel plan: which policies on realtime.messages each kind becomes ----------------------


@dataclass(frozen=True)
class ChannelRule:
    """One policy on realtime.messages: `command` (SELECT: receive, INSERT: send) for `roles` on the
    channels of `channel`, admitting the topic when `who` holds: "anyone", "user" (the id is the
    current user's) or "member" (the id is a group `group_lookup` says the user belongs to)."""

    name: str
    command: str
    roles: tuple[str, ...]
    channel: Channel
    who: str
    group_lookup: GroupLookup | None = None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_") or "x"


def channel_rule_name(stack: str, channel: Channel, action: str) -> str:
    """`realtime_<stack>_<pattern>_<action>` as an identifier (`realtime_prod_project_id_receive`): the
    stack's name keeps two stacks' policies apart on the table they share."""
    return short_identifier(f"realtime_{_slug(stack)}_{_slug(channel.pattern)}", suffix=f"_{action}")


def plan_channels(model: AccessModel, profile: str, stack: str) -> tuple[ChannelRule, ...]:
    """The policies the stack's channels become (a kindless channel: none on prod, open on dev)."""
    rules: list[ChannelRule] = []
    lookups = {
        t.membership.group: GroupLookup(
            t.name, t.membership, model.table(t.membership.group).owner_column or "", HELPER_SCHEMA
        )
        for t in model.tables
        if t.membership is not None
    }
    for channel in model.realtime.channels:
        receive = channel_rule_name(stack, channel, "receive")
        send = channel_rule_name(stack, channel, "send")
        if profile == "open":
            rules += [
                ChannelRule(receive, "SELECT", API_ROLES, channel, "anyone"),
                ChannelRule(send, "INSERT", API_ROLES, channel, "anyone"),
            ]
        elif channel.kind == "member":
            assert channel.group is not None
            lookup = lookups[channel.group]
            rules += [
                ChannelRule(receive, "SELECT", ("authenticated",), channel, "member", lookup),
                ChannelRule(send, "INSERT", ("authenticated",), channel, "member", lookup),
            ]
        elif channel.kind == "owner":
            rules += [
                ChannelRule(receive, "SELECT", ("authenticated",), channel, "user"),
                ChannelRule(send, "INSERT", ("authenticated",), channel, "user"),
            ]
        elif channel.kind == "publicRead":
            roles = API_ROLES if channel.anon else ("authenticated",)
            rules.append(ChannelRule(receive, "SELECT", roles, channel, "anyone"))
        # serviceOnly and kindless (refused on prod by the preflight): no policy, service_role alone.
    return tuple(rules)


def realtime_problems(model: AccessModel, *, refuse: bool, setting: str) -> tuple[list[str], list[str]]:
    """(errors, warnings) about `realtime:` entries without a kind: errors when `refuse` (prod), each
    with the line to add; else warnings (dev opens declared channels anyway)."""
    problems = [
        f"{setting}.realtime.channels.{c.pattern}: no kind, so nobody knows who may join it; add one: "
        f"{channel_line(c, model)} (or {CHANNEL_KINDS_HINT})"
        for c in model.realtime.channels
        if c.kind is None
    ]
    return (problems, []) if refuse else ([], problems)
