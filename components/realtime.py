"""Realtime: the stack's tables in the `supabase_realtime` publication (Postgres Changes) and the
policies its private channels become on `realtime.messages` (Broadcast and Presence)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_supabase_access as supabase_access

from supabase_access.model.access_model import AccessModel
from supabase_access.model.realtime import plan_channels, realtime_problems
from supabase_access.sql.statements import channel_policy

PUBLIC_ACCESS_WARNING = (
    'Realtime: the project\'s "Allow public access" is left as it is, so a client may still join any topic as a '
    "public channel, where realtime.messages' policies are not asked. Set supabase-access:projectRef and "
    "`pulumi config set --secret supabase-access:accessToken <token>` for this stack to turn it off (the Management "
    "API's private_only), or turn it off in the dashboard (Project Settings > Realtime)"
)


@dataclass
class RealtimeArgs:
    model: AccessModel
    profile: str
    # Prod: a channel without a kind stops the preview (dev: a warning).
    refuse_kindless: bool
    # Where the model came from, named in the messages.
    source: str
    # Prod: public channels refused (Realtime's private_only), so every join meets the channels' policies.
    private_only: bool = False
    # The project whose Realtime settings the stack manages; None: it cannot reach the Management API.
    project_ref: str | None = None


class Realtime(pulumi.ComponentResource):
    """Give it the supabase-access provider in `opts.providers`, and depend it on the access rules: a
    table is published once its policies filter what subscribers receive, and a member channel's
    policies call the group functions."""

    def __init__(self, name: str, args: RealtimeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        errors, warnings = realtime_problems(args.model, refuse=args.refuse_kindless, setting=args.source)
        if errors:
            raise pulumi.RunError("; ".join(errors))
        super().__init__("supabase-access:components:Realtime", name, None, opts)
        for warning in warnings:
            pulumi.log.warn(warning, resource=self)
        child = pulumi.ResourceOptions(parent=self)
        realtime = args.model.realtime
        self.publication = (
            supabase_access.RealtimePublication(
                f"{name}-publication", schema=args.model.schema, tables=list(realtime.publish), opts=child
            )
            if realtime.publish
            else None
        )
        rules = plan_channels(args.model, args.profile, pulumi.get_stack())
        self.channel_policies = (
            supabase_access.ChannelPolicies(
                f"{name}-channel-policies",
                policies={
                    rule.name: {
                        key: value
                        for key, value in channel_policy(rule).to_plain().items()
                        if value is not None and key != "permissive"
                    }
                    for rule in rules
                },
                # Every declared pattern, serviceOnly ones included: no other stack may open them.
                channels=[c.pattern for c in realtime.channels],
                opts=child,
            )
            if realtime.channels
            else None
        )
        self.settings = None
        if args.private_only and realtime.channels:
            if args.project_ref is None:
                pulumi.log.warn(PUBLIC_ACCESS_WARNING, resource=self)
            else:
                self.settings = supabase_access.RealtimeSettings(
                    f"{name}-settings",
                    project_ref=args.project_ref,
                    settings={"private_only": True},
                    # Once the private channels' policies are there: turning public access off first
                    # would refuse every join meanwhile.
                    opts=pulumi.ResourceOptions(
                        parent=self, depends_on=[self.channel_policies] if self.channel_policies else []
                    ),
                )
        self.register_outputs({"published": list(realtime.publish), "channels": [c.pattern for c in realtime.channels]})
