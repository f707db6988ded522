"""supabase-access: the access rules of one Supabase database, per stack."""

from pathlib import Path

import pulumi

from components.access_rules import AccessRules, AccessRulesArgs
from components.auth_settings import declare_auth_settings
from components.hardening import ProductionHardening, read_hardening_settings
from components.resources import Provider
from supabase_access.profiles import plan_access
from supabase_access.stack_config import (
    NAMESPACE,
    ConfigError,
    check_extra_policy_names,
    parse_auth_stack_settings,
    parse_stack_settings,
)

access_config = pulumi.Config(NAMESPACE)
postgresql_config = pulumi.Config("postgresql")

try:
    settings = parse_stack_settings(
        {
            "environment": access_config.get("environment"),
            "profile": access_config.get("profile"),
            "allowOpenProfileInProd": access_config.get_bool("allowOpenProfileInProd"),
            "model": access_config.get_object("model"),
            "modelFile": access_config.get("modelFile"),
            "forceRls": access_config.get_bool("forceRls") or False,
            "extraPolicies": access_config.get_object("extraPolicies"),
        },
        {key: postgresql_config.get(key) for key in ("host", "port", "database", "username", "sslmode")},
        project_dir=Path(__file__).parent,
    )
    auth_settings = parse_auth_stack_settings(
        {
            "projectRef": access_config.get("projectRef"),
            "managementApiUrl": access_config.get("managementApiUrl"),
            "authSettings": access_config.get_object("authSettings"),
        },
        environment=settings.environment,
        token_set=access_config.get_secret("accessToken") is not None,
    )
except ConfigError as exc:
    # A clean one-line error at preview, before any resource is registered.
    raise pulumi.RunError(str(exc)) from None

# writeQuotas, retention and permanentUsersOnly (dev stacks set none of them); bad values stop the preview.
hardening_plan = read_hardening_settings(access_config, settings)

connection = settings.connection
database = Provider(
    "supabase-db",
    host=connection.host,
    port=connection.port,
    database=connection.database,
    username=connection.username,
    sslmode=connection.sslmode,
    password=postgresql_config.require_secret("password"),
    management_api_url=access_config.get("managementApiUrl"),
    access_token=access_config.get_secret("accessToken"),
)
access_plan = plan_access(settings.model, settings.profile)
try:
    check_extra_policy_names(access_plan, hardening_plan.extra_policies)
except ConfigError as exc:
    raise pulumi.RunError(str(exc)) from None
access = AccessRules(
    "access",
    AccessRulesArgs(
        plan=access_plan,
        source=settings.model_source,
        force_rls=settings.force_rls,
        extra_policies=hardening_plan.extra_policies,
    ),
    opts=pulumi.ResourceOptions(providers=[database]),
)
declare_auth_settings("auth-settings", auth_settings, provider=database)
pulumi.export("environment", settings.environment)
pulumi.export("profile", settings.profile)
pulumi.export("tables", list(settings.model.table_names))
if hardening_plan.has_resources:
    # After the access rules: a quota's trigger on a table must not be created while that table's
    # policy lookup index is built concurrently (each would wait for the other).
    production_hardening = ProductionHardening(
        "hardening", hardening_plan, opts=pulumi.ResourceOptions(providers=[database], depends_on=[access])
    )
    pulumi.export("hardening", production_hardening.summary)
