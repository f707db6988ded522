"""ProductionHardening: a stack's in-database limits (write quotas and retention).

`plan_hardening` turns a stack's `supabase-access:writeQuotas`, `:retention` and `:permanentUsersOnly`
into resources; the last one is not a resource of its own but RESTRICTIVE policies added to the
AccessRules' `extra_policies`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_supabase_access as supabase_access

from supabase_access.model import hardening
from supabase_access.model.hardening import QUOTA_SQLSTATE
from supabase_access.model.rule_data import DeclaredPolicy
from supabase_access.model.stack_config import StackSettings, extra_policies_with_hardening, hardening_policy_settings


@dataclass(frozen=True)
class HardeningPlan:
    write_quotas: tuple[hardening.WriteQuotaTarget, ...] = ()
    retention: hardening.RetentionTarget | None = None
    # The stack's extraPolicies plus the permanentUsersOnly policies, per table.
    extra_policies: dict[str, tuple[DeclaredPolicy, ...]] = field(default_factory=dict)
    # The setting of each of those that is not in extraPolicies ("table.policy" -> setting), for errors.
    policy_settings: dict[str, str] = field(default_factory=dict)
    private_schema: str = hardening.PRIVATE_SCHEMA

    @property
    def has_resources(self) -> bool:
        return bool(self.write_quotas or self.retention)


def plan_hardening(settings: StackSettings) -> HardeningPlan:
    """The hardening a stack declares (its settings are validated by `read_stack_settings`)."""
    parsed = settings.hardening
    return HardeningPlan(
        write_quotas=hardening.write_quota_targets(settings.model, parsed.write_quotas),
        retention=None if parsed.retention is None else hardening.retention_target(settings.model, parsed.retention),
        extra_policies=extra_policies_with_hardening(settings.extra_policies, parsed),
        policy_settings=hardening_policy_settings(parsed),
    )


class ProductionHardening(pulumi.ComponentResource):
    def __init__(self, name: str, plan: HardeningPlan, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("supabase-access:components:ProductionHardening", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.write_quotas = {
            quota.table: supabase_access.WriteQuota(
                f"{quota.table}-write-quota",
                schema=quota.schema,
                table=quota.table,
                limit=quota.limit,
                window_seconds=quota.window_seconds,
                window_label=quota.window_label,
                private_schema=plan.private_schema,
                opts=child,
            )
            for quota in plan.write_quotas
        }
        retention = plan.retention
        self.retention = (
            None
            if retention is None
            else supabase_access.RetentionPolicy(
                "retention",
                schema=retention.schema,
                owned_tables=[{"table": t.table, "ownerColumn": t.owner_column} for t in retention.owned_tables],
                sessions_table=retention.sessions_table,
                sessions_timestamp_column=retention.sessions_timestamp_column,
                anonymous_users_days=retention.anonymous_users_days,
                sessions_days=retention.sessions_days,
                schedule=retention.schedule,
                job_name=retention.job_name,
                private_schema=plan.private_schema,
                opts=child,
            )
        )
        summary: dict[str, object] = {
            "writeQuotas": {
                q.table: f"at most {q.limit} new rows per user per {q.window_label}" for q in plan.write_quotas
            },
            # What API clients see when a quota refuses an insert (PostgREST answers HTTP 429).
            "quotaSqlstate": QUOTA_SQLSTATE if plan.write_quotas else None,
        }
        if self.retention is not None:
            # Says whether pg_cron runs the purge, and otherwise the exact SQL to run.
            summary["retention"] = {
                "scheduled": self.retention.scheduled,
                "status": self.retention.status,
                "runManually": self.retention.run_manually,
            }
        self.summary = summary
        self.register_outputs(summary)
