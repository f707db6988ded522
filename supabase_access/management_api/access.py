"""The provider's way to the Supabase Management API: its settings (from the provider's configuration)
and a client per project. Given to the resources that need it (injected), never a module global."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from supabase_access.model.auth_settings import DEFAULT_BASE_URL

if TYPE_CHECKING:
    from supabase_access.management_api.client import ManagementApi

# The HTTP client (requests, urllib3) is imported on first use: most stacks never manage auth
# settings, and the provider's start-up is part of every preview.

# Provider configuration keys, as a stack sets them (`pulumi config set ...`).
TOKEN_SETTING = "supabase-access:accessToken"
API_URL_SETTING = "supabase-access:managementApiUrl"


class ManagementApiConfigError(ValueError):
    """The provider is missing what it needs to reach the Management API; names the setting."""


class ManagementApiAccess:
    def __init__(self, **client_options: Any) -> None:
        # Extra ManagementApi arguments; tests pass `sleep` so that retries need not wait.
        self._client_options = client_options
        self._provider_config: dict[str, Any] = {}
        self.configured = False

    def configure(self, provider_config: Mapping[str, Any]) -> None:
        """The provider's plain configuration (`managementApiUrl`, `accessToken`, ...)."""
        self._provider_config = dict(provider_config)
        self.configured = True

    def connection(self) -> tuple[str, str]:
        """(base URL, token); raises ManagementApiConfigError naming the setting that is missing or wrong."""
        token = self._provider_config.get("accessToken")
        if not isinstance(token, str) or not token.strip():
            raise ManagementApiConfigError(
                f"no Supabase access token: set {TOKEN_SETTING} "
                f"(pulumi config set --secret {TOKEN_SETTING} <personal access token>)"
            )
        base_url = self._provider_config.get("managementApiUrl") or DEFAULT_BASE_URL
        parts = urlsplit(str(base_url))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ManagementApiConfigError(
                f"{API_URL_SETTING}: {base_url!r} is not an http(s) URL (default {DEFAULT_BASE_URL})"
            )
        return str(base_url), token

    def client(self, project_ref: str) -> ManagementApi:
        from supabase_access.management_api.client import ManagementApi, ManagementApiError

        try:
            base_url, token = self.connection()
        except ManagementApiConfigError as exc:
            raise ManagementApiError(f"{exc} (project {project_ref})", project_ref=project_ref) from None
        return ManagementApi(
            base_url, token, project_ref=project_ref, token_setting=TOKEN_SETTING, **self._client_options
        )
