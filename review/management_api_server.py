"""A local stand-in for the Supabase Management API's auth and Realtime config endpoints.

Serves `GET` and `PATCH /v1/projects/{ref}/config/auth` on 127.0.0.1 as the OpenAPI spec
describes: bearer-token check, `UpdateAuthConfigBody` validation of every PATCH (its own
small validator, deliberately independent of the client code under test), partial
updates, the full `AuthConfigResponse` in every answer, and `security_captcha_secret`
answered hashed as the real API does. `GET` and `PATCH /v1/projects/{ref}/config/realtime`
likewise (`UpdateRealtimeConfigBody`, no other property; the PATCH answers 204 without a
body, the GET the full `RealtimeConfigResponse`). Tests can queue failures (401, 429, 5xx, dropped
connections, slow answers) and change values behind the client's back.

    with ManagementApiServer(token="t") as server:
        server.base_url
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OPENAPI_PATH = REPO_ROOT.parent / "shared" / "supabase-management-api" / "openapi.json"
# Without the shared spec, the package's committed extract (managed settings only).
FALLBACK_SCHEMA_PATH = REPO_ROOT / "supabase_access" / "model" / "data" / "auth_config_schema.json"

AUTH_CONFIG_PATH = re.compile(r"^/v1/projects/(?P<ref>[^/]+)/config/auth$")
REALTIME_CONFIG_PATH = re.compile(r"^/v1/projects/(?P<ref>[^/]+)/config/realtime$")
# The spec's `ref` path parameter: minLength 20, maxLength 20, pattern ^[a-z]+$.
PROJECT_REF = re.compile(r"^[a-z]{20}$")
HASHED_SETTINGS = frozenset({"security_captcha_secret"})

# Defaults of a new project, from shared/reference/supabase.md; everything else is null.
PROJECT_DEFAULTS: dict[str, object] = {
    "rate_limit_anonymous_users": 30,
    "rate_limit_email_sent": 30,
    "rate_limit_sms_sent": 30,
    "rate_limit_token_refresh": 150,
    "rate_limit_verify": 30,
    "rate_limit_otp": 30,
    "rate_limit_web3": 30,
    "external_anonymous_users_enabled": False,
    "security_captcha_enabled": False,
    "security_captcha_provider": None,
    "security_captcha_secret": None,
}

# A new project's Realtime: public channels allowed ("Allow public access" on), presence on; the
# rate limits and pool are the spec's nullable "not set".
REALTIME_DEFAULTS: dict[str, object] = {"private_only": False, "suspend": False, "presence_enabled": True}

DEFAULT_RATE_LIMIT_HEADERS: dict[str, str] = {
    "Retry-After": "1",
    "X-RateLimit-Limit": "120",
    "X-RateLimit-Remaining": "0",
    "X-RateLimit-Reset": "1",
}

# Words for people, not rules (the Realtime body's properties carry them).
_ANNOTATIONS = frozenset({"description", "example"})
_VALIDATED_KEYWORDS = frozenset({"type", "nullable", "minimum", "maximum", "enum", "pattern", "format"})
# Loose on purpose: the fake only needs to tell an address from a non-address.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    body: object  # parsed JSON; the raw text if it was not JSON; None if empty
    headers: dict[str, str]


@dataclass(frozen=True)
class _PlannedAnswer:
    status: int | None = None  # None: answer normally (after `stall_seconds`)
    headers: dict[str, str] = field(default_factory=dict)
    message: str | None = None
    drop_connection: bool = False
    stall_seconds: float = 0.0


def hash_secret(value: str) -> str:
    """How this fake answers a secret: sha256 hex, like the real API's hashed value."""
    return hashlib.sha256(value.encode()).hexdigest()


def validate_update_body(body: object, properties: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """class-validator-style problems with a PATCH body; empty when it is acceptable."""
    if not isinstance(body, dict):
        return ["request body must be a JSON object"]
    problems: list[str] = []
    for key, value in body.items():
        schema = properties.get(key)
        if schema is None:
            problems.append(f"property {key} should not exist")
            continue
        problem = _schema_problem(key, value, schema)
        if problem:
            problems.append(problem)
    return problems


def _schema_problem(key: str, value: object, schema: Mapping[str, Any]) -> str | None:
    if value is None:
        return None if schema.get("nullable") else f"{key} should not be null"
    kind = schema["type"]
    if kind == "boolean" and not isinstance(value, bool):
        return f"{key} must be a boolean value"
    if kind == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
        return f"{key} must be an integer number"
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return f"{key} must be a number"
    if kind == "string" and not isinstance(value, str):
        return f"{key} must be a string"
    if "enum" in schema and value not in schema["enum"]:
        return f"{key} must be one of the following values: {', '.join(schema['enum'])}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{key} must not be less than {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{key} must not be greater than {schema['maximum']}"
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            return f"{key} must match {schema['pattern']} regular expression"
        if schema.get("format") == "email" and not _EMAIL.match(value):
            return f"{key} must be an email"
        if schema.get("format") == "date-time" and not _is_iso_datetime(value):
            return f"{key} must be a valid ISO 8601 date string"
    return None


def _is_iso_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class _ConfigSchemas:
    """One config endpoint's schemas: its PATCH body's property schemas and its GET answer's fields."""

    update_properties: dict[str, dict[str, Any]]
    response_fields: list[str]


def _config_schemas(schemas: Mapping[str, Any], update: str, response: str, source: Path) -> _ConfigSchemas:
    update_properties: dict[str, dict[str, Any]] = schemas[update]["properties"]
    for name, schema in update_properties.items():
        unknown = set(schema) - _VALIDATED_KEYWORDS - _ANNOTATIONS
        formats_known = schema.get("format") in (None, "email", "date-time")
        if unknown or not formats_known:
            # Fail loudly rather than let a spec change skip validation silently.
            raise ValueError(f"{source}: cannot validate {name}: {schema}")
    return _ConfigSchemas(update_properties, list(schemas.get(response, schemas[update])["properties"]))


def _load_schemas(openapi_path: Path) -> tuple[_ConfigSchemas, _ConfigSchemas | None]:
    """The auth config's schemas, and the Realtime config's (None in the auth-only extract)."""
    document = json.loads(openapi_path.read_text(encoding="utf-8"))
    schemas = document["components"]["schemas"]
    auth = _config_schemas(schemas, "UpdateAuthConfigBody", "AuthConfigResponse", openapi_path)
    realtime = (
        _config_schemas(schemas, "UpdateRealtimeConfigBody", "RealtimeConfigResponse", openapi_path)
        if "UpdateRealtimeConfigBody" in schemas
        else None
    )
    return auth, realtime


class _HttpServer(ThreadingHTTPServer):
    # Join handler threads on close, so a slow answer cannot outlive its test.
    daemon_threads = False

    def __init__(self, app: ManagementApiServer) -> None:
        self.app = app
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer

    def do_GET(self) -> None:
        self.server.app._handle(self, "GET")

    def do_PATCH(self) -> None:
        self.server.app._handle(self, "PATCH")

    def do_POST(self) -> None:
        self.server.app._handle(self, "POST")

    def do_PUT(self) -> None:
        self.server.app._handle(self, "PUT")

    def do_DELETE(self) -> None:
        self.server.app._handle(self, "DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean; requests are recorded instead


class ManagementApiServer:
    def __init__(self, token: str, *, openapi_path: str | Path | None = None) -> None:
        if openapi_path is not None:
            spec_path = Path(openapi_path)
        elif DEFAULT_OPENAPI_PATH.is_file():
            spec_path = DEFAULT_OPENAPI_PATH
        else:
            spec_path = FALLBACK_SCHEMA_PATH
        self.spec_path = spec_path
        auth, self._realtime_schemas = _load_schemas(spec_path)
        self.update_properties, self.response_fields = auth.update_properties, auth.response_fields
        self._token = token
        self._lock = threading.Lock()
        self._projects: dict[str, dict[str, object]] = {}
        self._realtime: dict[str, dict[str, object]] = {}
        self._planned: deque[_PlannedAnswer] = deque()
        self._requests: list[RecordedRequest] = []
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> ManagementApiServer:
        self._httpd = _HttpServer(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},  # shutdown waits up to one poll interval
            name="management-api-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("ManagementApiServer is not running: use it in a `with` block")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- controls for tests ------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        count: int = 1,
        headers: Mapping[str, str] | None = None,
        *,
        message: str | None = None,
    ) -> None:
        """Answer the next `count` requests with `status` (nothing is applied).

        429 answers carry `DEFAULT_RATE_LIMIT_HEADERS` unless `headers` is given.
        """
        if headers is None:
            headers = DEFAULT_RATE_LIMIT_HEADERS if status == 429 else {}
        planned = _PlannedAnswer(status=status, headers=dict(headers), message=message)
        with self._lock:
            self._planned.extend([planned] * count)

    def drop_next(self, count: int = 1) -> None:
        """Close the connection without answering, after reading the request."""
        with self._lock:
            self._planned.extend([_PlannedAnswer(drop_connection=True)] * count)

    def stall_next(self, seconds: float, count: int = 1) -> None:
        """Wait `seconds`, then process and answer normally (a PATCH still applies)."""
        with self._lock:
            self._planned.extend([_PlannedAnswer(stall_seconds=seconds)] * count)

    def set_value(self, ref: str, key: str, value: object) -> None:
        """Change a setting behind the client's back (no validation, like a dashboard edit)."""
        with self._lock:
            self._project(ref)[key] = value

    def set_realtime_value(self, ref: str, key: str, value: object) -> None:
        """Change a Realtime setting behind the client's back (a dashboard edit)."""
        with self._lock:
            self._realtime_project(ref)[key] = value

    def realtime_config(self, ref: str) -> dict[str, object]:
        """What a GET of the Realtime config would answer now."""
        with self._lock:
            return dict(self._realtime_project(ref))

    def config(self, ref: str) -> dict[str, object]:
        """What a GET would answer now (secret hashed)."""
        with self._lock:
            return self._answer_view(self._project(ref))

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_with(self, method: str) -> list[RecordedRequest]:
        return [request for request in self.requests if request.method == method]

    # -- request handling ------------------------------------------------------------

    def _project(self, ref: str) -> dict[str, object]:
        if ref not in self._projects:
            state: dict[str, object] = dict.fromkeys(self.response_fields)
            state.update(PROJECT_DEFAULTS)
            self._projects[ref] = state
        return self._projects[ref]

    def _realtime_project(self, ref: str) -> dict[str, object]:
        if ref not in self._realtime:
            fields = self._realtime_schemas.response_fields if self._realtime_schemas else list(REALTIME_DEFAULTS)
            state: dict[str, object] = dict.fromkeys(fields)
            state.update(REALTIME_DEFAULTS)
            self._realtime[ref] = state
        return self._realtime[ref]

    def _answer_view(self, state: Mapping[str, object]) -> dict[str, object]:
        view = dict(state)
        for key in HASHED_SETTINGS:
            value = view.get(key)
            if isinstance(value, str):
                view[key] = hash_secret(value)
        return view

    def _handle(self, handler: _Handler, method: str) -> None:
        path = handler.path.split("?", 1)[0]
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length).decode("utf-8", "replace") if length else ""
        body: object
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        with self._lock:
            self._requests.append(RecordedRequest(method, path, body, dict(handler.headers)))
            planned = self._planned.popleft() if self._planned else _PlannedAnswer()

        if planned.drop_connection:
            handler.close_connection = True
            return
        if planned.stall_seconds:
            time.sleep(planned.stall_seconds)
        if planned.status is not None:
            message = planned.message or HTTPStatus(planned.status).phrase
            self._send(handler, planned.status, {"message": message}, planned.headers)
            return

        status, answer = self._route(handler, method, path, raw, body)
        self._send(handler, status, answer)

    def _route(
        self, handler: _Handler, method: str, path: str, raw: str, body: object
    ) -> tuple[int, dict[str, object] | None]:
        expected = f"Bearer {self._token}".encode()
        given = handler.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return 401, {"message": "Unauthorized"}
        realtime = REALTIME_CONFIG_PATH.match(path)
        if realtime is not None and self._realtime_schemas is not None:
            return self._route_realtime(method, path, realtime.group("ref"), raw, body, self._realtime_schemas)
        match = AUTH_CONFIG_PATH.match(path)
        if match is None:
            return 404, {"message": f"Cannot {method} {path}"}
        ref = match.group("ref")
        if not PROJECT_REF.match(ref):
            return 400, {"message": ["ref must be 20 lower-case letters"]}
        if method == "GET":
            with self._lock:
                return 200, self._answer_view(self._project(ref))
        if method != "PATCH":
            return 405, {"message": f"Cannot {method} {path}"}
        if raw and isinstance(body, str):
            return 400, {"message": "request body is not valid JSON"}
        problems = validate_update_body(body, self.update_properties)
        if problems:
            return 400, {"message": problems, "error": "Bad Request", "statusCode": 400}
        assert isinstance(body, dict)  # validate_update_body checked it
        with self._lock:
            state = self._project(ref)
            for key, value in body.items():
                # Assumption (the spec does not say): null means "not given".
                if value is not None:
                    state[key] = value
            return 200, self._answer_view(state)

    def _route_realtime(
        self, method: str, path: str, ref: str, raw: str, body: object, schemas: _ConfigSchemas
    ) -> tuple[int, dict[str, object] | None]:
        if not PROJECT_REF.match(ref):
            return 400, {"message": ["ref must be 20 lower-case letters"]}
        if method == "GET":
            with self._lock:
                return 200, dict(self._realtime_project(ref))
        if method != "PATCH":
            return 405, {"message": f"Cannot {method} {path}"}
        if raw and isinstance(body, str):
            return 400, {"message": "request body is not valid JSON"}
        # additionalProperties: false, so an unknown property is refused like the auth body's.
        problems = validate_update_body(body, schemas.update_properties)
        if problems:
            return 400, {"message": problems, "error": "Bad Request", "statusCode": 400}
        assert isinstance(body, dict)
        with self._lock:
            self._realtime_project(ref).update(body)
        return 204, None

    @staticmethod
    def _send(
        handler: _Handler,
        status: int,
        payload: Mapping[str, object] | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        try:
            handler.send_response(status)
            if payload is not None:
                handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. its read timeout); nothing to tell it
