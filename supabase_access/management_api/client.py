"""Client for the Supabase Management API's auth and Realtime config
(`/v1/projects/{ref}/config/auth`, `/v1/projects/{ref}/config/realtime`).

Retry policy, all inside urllib3's `Retry` mounted on the session's adapters:
- 429 means the request was not processed, so GET and PATCH both wait as the API says
  (`Retry-After`, else `X-RateLimit-Reset`) and try again, a bounded number of times.
- 5xx and dropped connections are retried for GET only. A PATCH the server may have
  seen is never sent twice: the caller is told the outcome is unknown and to refresh.
- A connection that could not even be opened is retried for both: nothing was sent.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any, Self

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3.exceptions import ConnectTimeoutError, InvalidHeader
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from supabase_access.model.auth_settings import DEFAULT_BASE_URL, PROJECT_REF_PATTERN, SECRET_AUTH_SETTINGS

__all__ = ["DEFAULT_BASE_URL", "PROJECT_REF_PATTERN", "ManagementApi", "ManagementApiError"]
# (connect, read) seconds; every request carries it, requests has no default timeout.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)
# The API's rate-limit window is one minute; never wait much longer than that at once.
DEFAULT_MAX_WAIT_SECONDS = 65.0
# A 429 without any hint: retrying at once would just spend an attempt.
RATE_LIMIT_FALLBACK_WAIT_SECONDS = 2.0
# Supabase documents X-RateLimit-Reset as seconds until the window resets (at most a
# minute). Numbers this large can only be Unix timestamps, in seconds or milliseconds.
EPOCH_SECONDS_THRESHOLD = 1_000_000_000
EPOCH_MILLISECONDS_THRESHOLD = 1_000_000_000_000

log = logging.getLogger(__name__)


class ManagementApiError(Exception):
    """A Management API call failed; the message never contains the token or a secret."""

    def __init__(self, message: str, *, project_ref: str, status: int | None = None) -> None:
        super().__init__(message)
        self.project_ref = project_ref
        self.status = status


class ManagementApiAuthError(ManagementApiError):
    """401/403: the token is missing, wrong, expired or lacks access to the project."""


class ManagementApiRateLimitError(ManagementApiError):
    """Still 429 after the bounded number of attempts; nothing was applied."""


class ManagementApiWriteOutcomeUnknownError(ManagementApiError):
    """A PATCH failed after it was sent: it may or may not have been applied."""


def seconds_until_rate_limit_reset(header_value: str | None, *, now: float) -> float | None:
    """Seconds to wait according to `X-RateLimit-Reset`, or None if it gives no usable hint.

    Accepts the documented seconds-until-reset form and, defensively, a Unix timestamp in
    seconds or milliseconds (told apart by size; a reset already past means no wait).
    """
    if header_value is None:
        return None
    try:
        number = float(header_value.strip())
    except ValueError:
        return None
    if not math.isfinite(number) or number < 0:
        return None
    if number >= EPOCH_MILLISECONDS_THRESHOLD:
        return max(number / 1000 - now, 0.0)
    if number >= EPOCH_SECONDS_THRESHOLD:
        return max(number - now, 0.0)
    return number


class _ManagementApiRetry(Retry):
    """urllib3's Retry with the changes this API needs.

    - `is_retry`: urllib3 repeats a 429 only with a Retry-After header or through
      `status_forcelist`, which is tied to `allowed_methods` (GET only here, for 5xx).
      A 429 was not processed, so it is repeated for every method.
    - `sleep`: urllib3 calls `time.sleep` itself and knows only Retry-After. This one
      still uses urllib3's Retry-After parser and backoff formula, adds the documented
      X-RateLimit-Reset, caps each wait, and sleeps through an injectable function.
    """

    sleeper: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time
    max_wait: float = DEFAULT_MAX_WAIT_SECONDS

    def new(self, **kw: Any) -> Self:
        # urllib3 rebuilds the object after every attempt from its own parameters only.
        retry = super().new(**kw)
        retry.sleeper, retry.clock, retry.max_wait = self.sleeper, self.clock, self.max_wait
        return retry

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if status_code == 429:
            return bool(self.total)
        return super().is_retry(method, status_code, has_retry_after)

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        delay = self.get_backoff_time()
        if response is not None:
            hinted = self._server_requested_wait(response)
            if hinted is not None:
                delay = hinted
            elif response.status == 429:
                delay = max(delay, RATE_LIMIT_FALLBACK_WAIT_SECONDS)
        delay = min(delay, self.max_wait)
        if self.history:
            last = self.history[-1]
            log.info(
                "Supabase Management API: %s %s got %s; attempt %d, retrying in %.1f s",
                last.method,
                last.url,
                last.status or last.error,
                len(self.history),
                delay,
            )
        if delay > 0:
            self.sleeper(float(delay))

    def _server_requested_wait(self, response: BaseHTTPResponse) -> float | None:
        if self.respect_retry_after_header:
            try:
                retry_after = self.get_retry_after(response)
            except InvalidHeader:
                retry_after = None  # a malformed header should not abort the call
            if retry_after is not None:
                return retry_after
        return seconds_until_rate_limit_reset(response.headers.get("X-RateLimit-Reset"), now=self.clock())


class _BearerAuth(AuthBase):
    """Sets the Authorization header. Being the session's auth also stops requests
    from replacing it with credentials from ~/.netrc."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_BearerAuth(token=[secret])"


class ManagementApi:
    """GET and PATCH one project's auth config and Realtime config.

    `token_setting` is the config key that holds the token (e.g.
    `supabase-access:accessToken`); errors name it and the project, never the token.
    `sleep` and `clock` are injectable so tests need not wait.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        project_ref: str,
        token_setting: str,
        max_attempts: int = 5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        max_wait: float = DEFAULT_MAX_WAIT_SECONDS,
    ) -> None:
        if not isinstance(token, str) or not token.strip():
            raise ValueError(f"no Supabase access token: set {token_setting}")
        if not PROJECT_REF_PATTERN.match(project_ref):
            raise ValueError(f"project ref {project_ref!r} is not 20 lower-case letters")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self.base_url = base_url.rstrip("/")
        self.project_ref = project_ref
        self.token_setting = token_setting
        self.max_attempts = max_attempts
        self._token = token
        self._timeout = timeout

        retry = _ManagementApiRetry(
            total=max_attempts - 1,
            other=0,  # errors urllib3 cannot place before or after sending: never repeat
            allowed_methods=frozenset({"GET"}),
            status_forcelist=frozenset(range(500, 600)),
            backoff_factor=0.5,
            backoff_max=10.0,
            raise_on_status=False,  # hand back the last answer so its message is kept
            respect_retry_after_header=True,
        )
        retry.sleeper, retry.clock, retry.max_wait = sleep, clock, max_wait
        adapter = HTTPAdapter(max_retries=retry)
        self._session = requests.Session()
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.auth = _BearerAuth(token)
        self._session.headers.update({"Accept": "application/json", "User-Agent": "supabase-access"})

    def __repr__(self) -> str:
        return (
            f"ManagementApi(base_url={self.base_url!r}, project_ref={self.project_ref!r}, "
            f"token_setting={self.token_setting!r})"
        )

    def __enter__(self) -> ManagementApi:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    @property
    def auth_config_path(self) -> str:
        return f"/v1/projects/{self.project_ref}/config/auth"

    def get_auth_config(self) -> dict[str, Any]:
        """The project's full `AuthConfigResponse` (`security_captcha_secret` hashed)."""
        return self._call("GET", None)

    def patch_auth_config(self, changes: Mapping[str, object]) -> dict[str, Any]:
        """Send only `changes` (a partial update); returns the full config after it.

        With no changes nothing is sent and the current config is read instead.
        """
        if not changes:
            return self.get_auth_config()
        secrets = [value for key, value in changes.items() if key in SECRET_AUTH_SETTINGS and isinstance(value, str)]
        return self._call("PATCH", dict(changes), secrets)

    @property
    def realtime_config_path(self) -> str:
        return f"/v1/projects/{self.project_ref}/config/realtime"

    def get_realtime_config(self) -> dict[str, Any]:
        """The project's full `RealtimeConfigResponse` (`private_only`: public channels refused)."""
        return self._call("GET", None, path=self.realtime_config_path)

    def patch_realtime_config(self, changes: Mapping[str, object]) -> dict[str, Any]:
        """Send only `changes` (a partial update; the API answers 204), then read the full config back."""
        if changes:
            self._call("PATCH", dict(changes), path=self.realtime_config_path)
        return self.get_realtime_config()

    def _call(
        self, method: str, body: dict[str, object] | None, secrets: Collection[str] = (), *, path: str | None = None
    ) -> dict[str, Any]:
        hidden = [self._token, *secrets]
        path = path or self.auth_config_path
        try:
            response = self._session.request(method, self.base_url + path, json=body, timeout=self._timeout)
        except requests.RequestException as error:
            raise self._transport_error(method, path, error, hidden) from error
        return self._interpret(method, path, response, hidden)

    def _where(self, method: str, path: str) -> str:
        return f"{method} {path} (project {self.project_ref})"

    def _transport_error(
        self, method: str, path: str, error: requests.RequestException, hidden: Collection[str]
    ) -> ManagementApiError:
        reason = _scrub(_innermost_reason(error), hidden)
        if method != "GET" and not _never_sent(error):
            return ManagementApiWriteOutcomeUnknownError(
                f"Supabase Management API: {self._where(method, path)} failed after the request "
                f"was sent ({reason}); the change may or may not have been applied. "
                "It is not retried automatically: run `pulumi refresh` to read the "
                "project's current settings, then run the update again.",
                project_ref=self.project_ref,
            )
        return ManagementApiError(
            f"Supabase Management API: {self._where(method, path)} could not reach "
            f"{self.base_url} ({reason}); nothing was changed.",
            project_ref=self.project_ref,
        )

    def _interpret(
        self, method: str, path: str, response: requests.Response, hidden: Collection[str]
    ) -> dict[str, Any]:
        status = response.status_code
        if status == 204 and method != "GET":
            return {}  # applied; the answer has no body by definition (the Realtime config's PATCH)
        if 200 <= status < 300:
            try:
                payload = response.json()
            except ValueError:
                payload = None
            if isinstance(payload, dict):
                return payload
            applied = " The change was applied." if method != "GET" else ""
            raise ManagementApiError(
                f"Supabase Management API: {self._where(method, path)} answered {status} without a JSON object."
                f"{applied}",
                project_ref=self.project_ref,
                status=status,
            )

        detail = _scrub(_api_message(response), hidden)
        attempts = _attempts_made(response)
        if status in (401, 403):
            problem = (
                "was not accepted (missing, wrong or expired)"
                if status == 401
                else "is not allowed to do this on this project"
            )
            raise ManagementApiAuthError(
                f"Supabase Management API: {self._where(method, path)} answered {status}: "
                f"the access token from {self.token_setting} {problem}. Check that "
                f"{self.token_setting} holds a personal access token with access to "
                f"project {self.project_ref}. API message: {detail}",
                project_ref=self.project_ref,
                status=status,
            )
        if status == 429:
            raise ManagementApiRateLimitError(
                f"Supabase Management API: {self._where(method, path)} was still rate limited "
                f"(429) after {attempts} attempt(s); nothing was changed. The API allows "
                "about 120 requests per minute per user and project: wait a minute and "
                f"run again. API message: {detail}",
                project_ref=self.project_ref,
                status=status,
            )
        if status >= 500 and method != "GET":
            raise ManagementApiWriteOutcomeUnknownError(
                f"Supabase Management API: {self._where(method, path)} answered {status} "
                f"({detail}); the change may or may not have been applied. It is not "
                "retried automatically: run `pulumi refresh` to read the project's "
                "current settings, then run the update again.",
                project_ref=self.project_ref,
                status=status,
            )
        after = f" after {attempts} attempt(s)" if status >= 500 else ""
        raise ManagementApiError(
            f"Supabase Management API: {self._where(method, path)} answered {status} {response.reason}{after}: "
            f"{detail}",
            project_ref=self.project_ref,
            status=status,
        )


def _api_message(response: requests.Response) -> str:
    """The API's own explanation: `message` (a string or a list of them), else the body."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        for key in ("message", "error", "msg"):
            message = payload.get(key)
            if isinstance(message, list) and message:
                return "; ".join(str(item) for item in message)
            if isinstance(message, str) and message:
                return message
    text = response.text.strip()
    return text[:500] if text else "(no message)"


def _attempts_made(response: requests.Response) -> int:
    retry = getattr(response.raw, "retries", None)
    history = getattr(retry, "history", ())
    return len(history) + 1


def _innermost_reason(error: requests.RequestException) -> str:
    # requests wraps urllib3's MaxRetryError, whose `reason` says what actually failed.
    cause = error.args[0] if error.args else error
    reason = getattr(cause, "reason", cause)
    return f"{type(reason).__name__}: {reason}" if isinstance(reason, Exception) else str(reason)


def _never_sent(error: requests.RequestException) -> bool:
    """True only when the connection itself failed, so the server cannot have seen it."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    cause = error.args[0] if error.args else None
    # NewConnectionError (refused, DNS failure) is a subclass of ConnectTimeoutError.
    return isinstance(getattr(cause, "reason", None), ConnectTimeoutError)


def _scrub(text: str, hidden: Collection[str]) -> str:
    """Remove secrets in case the API echoes submitted values back in a message."""
    for secret in hidden:
        if secret:
            text = text.replace(secret, "[secret]")
    return text
