"""Declares a stack's Supabase Auth settings resource, or says at preview why it does not."""

from __future__ import annotations

import pulumi
import pulumi_supabase_access as supabase_access

from supabase_access.model.auth_settings import SECRET_AUTH_SETTINGS
from supabase_access.model.stack_config import AuthStackSettings


def declare_auth_settings(
    name: str, auth: AuthStackSettings | None, *, provider: supabase_access.Provider
) -> supabase_access.AuthSettings | None:
    """The AuthSettings resource when the stack has everything it needs, else None and a warning.

    `auth` is None only for a dev stack that mentions no auth setting at all: nothing to say.
    """
    if auth is None:
        return None
    if not auth.declared or auth.project_ref is None:
        # Never silently: a prod stack without these would run with the project's defaults.
        pulumi.log.warn(auth.skip_message())
        return None
    for message in auth.warnings:
        pulumi.log.warn(message)
    # Config values arrive plain; the secret must go to the engine marked, or state would hold it in clear.
    settings = {
        key: pulumi.Output.secret(value) if key in SECRET_AUTH_SETTINGS else value
        for key, value in auth.settings.items()
    }
    return supabase_access.AuthSettings(
        name, project_ref=auth.project_ref, settings=settings, opts=pulumi.ResourceOptions(provider=provider)
    )
