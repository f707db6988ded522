"""supabase-access guardrails: a Pulumi policy pack, run as `pulumi preview --policy-pack policy`.

Every rule of `guardrails.RULES` is two stack policies: `prod-<rule>` (MANDATORY: the preview
fails) and `dev-<rule>` (ADVISORY: shown, nothing stops). Only the one matching the stack's
environment reports; `guardrails.stack_environment` says how the environment is found, from
the stack name and config that Pulumi's language host passes the pack (PULUMI_STACK, PULUMI_CONFIG).
Stack policies, not resource ones: the environment is only known from the whole stack.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from guardrails import RULES, UNKNOWN, StackResource, findings, stack_environment
from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    PolicyResource,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

PACK_NAME = "supabase-access-guardrails"
LEVELS = {"prod": EnforcementLevel.MANDATORY, "dev": EnforcementLevel.ADVISORY}


def plain(value: Any) -> Any:
    """The SDK's proxied properties as plain data; values unknown during preview become UNKNOWN."""
    if isinstance(value, Mapping):
        result: dict[str, Any] = {}
        for key in value:
            try:
                result[key] = plain(value[key])
            except UnknownValueError:
                result[key] = UNKNOWN
        return result
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        items: list[Any] = []
        for index in range(len(value)):
            try:
                items.append(plain(value[index]))
            except UnknownValueError:
                items.append(UNKNOWN)
        return items
    return value


def stack_resources(resources: Sequence[PolicyResource]) -> list[StackResource]:
    return [StackResource(r.resource_type, r.urn, r.name, plain(r.props)) for r in resources]


def stack_config() -> dict[str, Any]:
    try:
        config = json.loads(os.environ.get("PULUMI_CONFIG") or "{}")
    except json.JSONDecodeError:
        return {}
    return config if isinstance(config, dict) else {}


def rule_policy(rule: str, environment: str) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = stack_resources(args.resources)
        stack = stack_environment(os.environ.get("PULUMI_STACK"), stack_config())
        if stack.name != environment:
            return
        for finding in findings(resources):
            if finding.rule == rule:
                # Never property values in messages: provider inputs include the database password.
                report_violation(f"{finding.message} [{stack.name}: {stack.why}]", finding.urn)

    validator: Callable[[StackValidationArgs, ReportViolation], None] = validate
    return StackValidationPolicy(
        name=f"{environment}-{rule}",
        description=RULES[rule],
        enforcement_level=LEVELS[environment],
        validate=validator,
    )


PolicyPack(
    name=PACK_NAME,
    enforcement_level=EnforcementLevel.ADVISORY,
    policies=[rule_policy(rule, environment) for environment in LEVELS for rule in RULES],
)
