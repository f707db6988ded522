"""Stack settings: the `supabase-access:*` and `postgresql:*` config of one stack, validated.

Pure: takes plain values (what `pulumi config` holds), so it is tested without an engine.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from supabase_access.model.access_model import AccessModel, ModelError, check_identifier, load_model_file, parse_model
from supabase_access.model.auth_settings import PROJECT_REF_PATTERN, SECRET_AUTH_SETTINGS, validate_auth_settings
from supabase_access.model.buckets import BucketError, override_buckets
from supabase_access.model.connection import Connection
from supabase_access.model.hardening import (
    CRON_SCHEDULE,
    DEFAULT_PURGE_SCHEDULE,
    MAX_QUOTA_LIMIT,
    MAX_RETENTION_DAYS,
    PERMANENT_ONLY_COMMANDS,
    QUOTA_WINDOWS,
    HardeningSettings,
    RetentionSetting,
    WriteQuotaSetting,
    permanent_users_only_policies,
)
from supabase_access.model.policy import POLICY_KEYS, PolicySpec, policy_from_plain
from supabase_access.model.profiles import PROFILES, plan_access
from supabase_access.model.rule_data import DeclaredPolicy
from supabase_access.model.suggest import did_you_mean, unknown_keys_message

NAMESPACE = "supabase-access"
ENVIRONMENTS = ("dev", "prod")
# Every key of the `supabase-access` namespace the program reads; any other is a typo.
KNOWN_KEYS = (
    "environment",
    "profile",
    "allowOpenProfileInProd",
    "model",
    "modelFile",
    "forceRls",
    "extraPolicies",
    "projectRef",
    "accessToken",
    "managementApiUrl",
    "authSettings",
    "writeQuotas",
    "retention",
    "permanentUsersOnly",
    "schemas",
    "definerObjects",
    "buckets",
)
# Settings that must be stored encrypted, and how to set each one again as a secret.
SECRET_SETTINGS = {
    "postgresql:password": "pulumi config set --secret postgresql:password <database password>",
    f"{NAMESPACE}:accessToken": f"pulumi config set --secret {NAMESPACE}:accessToken <personal access token>",
}
# An extraPolicies entry may take the place of a policy the profile generates only if it says so.
REPLACES_KEY = "replaces"
# An extraPolicies entry that gives someone rows the table's access kind does not give them must say
# why (`widens: "<why>"`); on prod the preflight proves the others give nobody more.
WIDENS_KEY = "widens"
ENTRY_KEYS = (REPLACES_KEY, WIDENS_KEY)
# Stacks whose secrets use the published local passphrase (scripts/env.sh); never dev or prod.
LOCAL_STACKS = ("local", "local-prod")


class ConfigError(ValueError):
    """A stack setting is wrong; the message names it."""


@dataclass(frozen=True)
class StackSettings:
    environment: str
    profile: str
    model: AccessModel
    model_source: str
    force_rls: bool
    connection: Connection
    # Policies added to the profile's, per table (e.g. RESTRICTIVE ones).
    extra_policies: dict[str, tuple[PolicySpec, ...]]
    # "table.policy" of the extraPolicies entries that replace a policy the profile generates.
    replaced_policies: tuple[str, ...] = ()
    # The schemas the Data API exposes (supabase-access:schemas): every table in them must be in the model.
    exposed_schemas: tuple[str, ...] = ("public",)
    # Views and functions of the exposed schemas declared to run with their owner's rights
    # (supabase-access:definerObjects, "schema.name"); any other is reported by the preflight.
    definer_objects: tuple[str, ...] = ()
    # "table.policy" -> why, for the extraPolicies entries declared to widen access (`widens:`).
    widenings: Mapping[str, str] = field(default_factory=dict)
    # The Supabase Auth settings (None: a dev stack that says nothing about them).
    auth: AuthStackSettings | None = None
    # writeQuotas, retention and permanentUsersOnly (none set: no hardening).
    hardening: HardeningSettings = field(default_factory=HardeningSettings)

    def replacement_notices(self) -> list[str]:
        """What the preview says about each generated policy an extraPolicies entry replaces."""
        return [
            f"{NAMESPACE}:extraPolicies.{name} replaces the {self.profile} profile's own policy {name.split('.')[1]} "
            f"on {name.split('.')[0]} (it says `{REPLACES_KEY}: true`): the profile's rule for it no longer applies"
            for name in self.replaced_policies
        ]


# The `postgresql` namespace's keys the program reads (both providers connect with them); the
# provider's other keys would be ignored, so they are refused like typos.
POSTGRESQL_KEYS = ("host", "port", "database", "username", "password", "sslmode")
# A key whose last word is one of these holds a credential (postgresql:password, accessToken,
# authSettings.security_captcha_secret, ...): never in plain text in a stack file.
SECRET_WORDS = re.compile(r"(^|_)(secret|secrets|password|pass|passwd|token|apikey|api_key|private_key)$")


def looks_secret(name: str) -> bool:
    """Whether a setting's name ends with a credential's word (camelCase or snake_case)."""
    return bool(SECRET_WORDS.search(re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()))


def check_config_keys(secret_by_key: Mapping[str, bool], auth_settings: Mapping[str, object] | None = None) -> None:
    """Refuse unknown `supabase-access:` and `postgresql:` keys, and credentials kept in plain text.

    `secret_by_key` holds every config key of the stack (`namespace:name`) and whether Pulumi stores
    it encrypted (an object with one secret inside counts as secret); `auth_settings` the
    `supabase-access:authSettings` object, whose values are never read here.
    """
    for namespace, known in ((NAMESPACE, KNOWN_KEYS), ("postgresql", POSTGRESQL_KEYS)):
        prefix = f"{namespace}:"
        for key in sorted(k for k in secret_by_key if k.startswith(prefix)):
            name = key[len(prefix) :]
            if name not in known:
                raise ConfigError(
                    f"{key}: unknown setting{did_you_mean(name, known, prefix)}; known: {', '.join(known)}. "
                    f"Remove it with `pulumi config rm {key}`"
                )
    for key, command in SECRET_SETTINGS.items():
        if key in secret_by_key and not secret_by_key[key]:
            raise ConfigError(
                f"{key} is stored in plain text in the stack's config; it must be a secret. "
                f"Set it again with `{command}`"
            )
    for key in sorted(secret_by_key):
        if looks_secret(key.rsplit(":", 1)[-1]) and not secret_by_key[key]:
            raise ConfigError(
                f"{key} is stored in plain text in the stack's config; it must be a secret. "
                f"Set it again with `pulumi config set --secret {key} <value>`"
            )
    for name in sorted(str(name) for name in (auth_settings if isinstance(auth_settings, Mapping) else {})):
        if (name in SECRET_AUTH_SETTINGS or looks_secret(name)) and not secret_by_key.get(AUTH_SETTINGS_SETTING, False):
            raise ConfigError(
                f"{AUTH_SETTINGS_SETTING}.{name} is stored in plain text in the stack's config; it must be a secret. "
                f"Set it again with `pulumi config set --secret --path {AUTH_SETTINGS_SETTING}.{name} <value>`"
            )


# A stack's config as Pulumi holds it: the raw string of a full key (`supabase-access:profile`), None when unset.
ConfigValue = Callable[[str], str | None]
# The `supabase-access` keys holding an object (JSON in `pulumi config`) and those holding true or false.
OBJECT_KEYS = (
    "model",
    "extraPolicies",
    "schemas",
    "definerObjects",
    "authSettings",
    "writeQuotas",
    "retention",
    "permanentUsersOnly",
    "buckets",
)
FLAG_KEYS = ("allowOpenProfileInProd", "forceRls")
CONNECTION_KEYS = ("host", "port", "database", "username", "sslmode")


def read_stack_settings(value: ConfigValue, secret_by_key: Mapping[str, bool], *, project_dir: Path) -> StackSettings:
    """Every setting of a stack, validated: the one reader of stack config (the program, the matrix and
    the access review call it), from the raw strings `pulumi config` holds.

    `secret_by_key` holds every config key of the stack and whether Pulumi keeps it encrypted (see
    `check_config_keys`); the secrets themselves are never read here.
    """
    access = {name: _config_value(value, name) for name in KNOWN_KEYS if name != "accessToken"}
    check_config_keys(secret_by_key, access["authSettings"])
    settings = parse_stack_settings(
        access, {key: value(f"postgresql:{key}") for key in CONNECTION_KEYS}, project_dir=project_dir
    )
    auth = parse_auth_stack_settings(
        access, environment=settings.environment, token_set=ACCESS_TOKEN_SETTING in secret_by_key
    )
    hardening = parse_hardening_settings(access, settings.model)
    extra_policies_with_hardening(settings.extra_policies, hardening)  # refuses a name declared in both
    return replace(settings, auth=auth, hardening=hardening)


def _config_value(value: ConfigValue, name: str) -> Any:
    """A `supabase-access` setting as Pulumi's Config reads it: text, true/false or an object (JSON)."""
    key = f"{NAMESPACE}:{name}"
    raw = value(key)
    if raw is None:
        return None
    if name in FLAG_KEYS:
        if raw not in ("true", "True", "false", "False"):
            raise ConfigError(f"{key}: expected true or false, got {raw!r}")
        return raw in ("true", "True")
    if name in OBJECT_KEYS:
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{key}: not valid JSON: {exc}") from None
    return raw


def parse_stack_settings(
    access: Mapping[str, Any], postgresql: Mapping[str, Any], *, project_dir: Path
) -> StackSettings:
    environment = access.get("environment")
    if not environment:
        # No silent default: a stack that forgot it would get the open profile.
        raise ConfigError(
            f"{NAMESPACE}:environment is not set; say which kind of stack this is: "
            f"`pulumi config set {NAMESPACE}:environment prod` (owner-only access) or "
            f"`pulumi config set {NAMESPACE}:environment dev` (the open profile)"
        )
    if environment not in ENVIRONMENTS:
        raise ConfigError(f"{NAMESPACE}:environment: {environment!r} is not one of {', '.join(ENVIRONMENTS)}")
    profile = access.get("profile") or ("owner" if environment == "prod" else "open")
    if profile not in PROFILES:
        raise ConfigError(f"{NAMESPACE}:profile: {profile!r} is not one of {', '.join(PROFILES)}")
    if environment == "prod" and profile == "open" and access.get("allowOpenProfileInProd") is not True:
        raise ConfigError(
            f"{NAMESPACE}:profile: a prod stack cannot use the open profile (every visitor could read and change "
            f"every row). Use `owner`, or set {NAMESPACE}:allowOpenProfileInProd to true if you really mean it."
        )
    model, source = _model(access, project_dir)
    model = _stack_buckets(model, source, access.get("buckets"), environment)
    force_rls = access.get("forceRls")
    force_rls = False if force_rls is None else force_rls
    if not isinstance(force_rls, bool):
        raise ConfigError(f"{NAMESPACE}:forceRls: expected true or false")
    copies = [t.name for t in model.tables if t.owner_copy or t.group_copy is not None]
    if force_rls and profile == "owner" and copies:
        # The copies' triggers read the parent rows as the table owner, whom FORCE would show none.
        raise ConfigError(
            f"{NAMESPACE}:forceRls: the copies of {', '.join(copies)} ({source}: copyOwner, copyGroup) are kept by "
            "triggers that read the rows up the path as the tables' owner, and FORCE ROW LEVEL SECURITY would hide "
            "every row from it. Turn forceRls off, or keep the owner column yourself (`owner` and `through`)"
        )
    extra, replaced, widenings = _extra_policies(access.get("extraPolicies"), model, profile)
    schemas = _exposed_schemas(access.get("schemas"))
    definers = _definer_objects(access.get("definerObjects"))
    return StackSettings(
        environment,
        profile,
        model,
        source,
        force_rls,
        _connection(postgresql),
        extra,
        replaced,
        schemas,
        definers,
        widenings,
    )


def _stack_buckets(model: AccessModel, source: str, raw: Any, environment: str) -> AccessModel:
    """The stack's overrides of the buckets' settings applied; on prod every bucket must say who owns its objects."""
    try:
        buckets = override_buckets(model.buckets, raw, f"{NAMESPACE}:buckets")
    except BucketError as exc:
        raise ConfigError(str(exc)) from exc
    unkinded = [b for b in buckets if b.kind is None]
    if environment == "prod" and unkinded:
        lines = "; ".join(f"`{b.kind_line}`" for b in unkinded)
        raise ConfigError(
            f"{source}: buckets {', '.join(b.id for b in unkinded)} say nobody owns their objects, so prod would open "
            f"them to no one but the server; give each a kind (owner: folder|ownerId, member: {{group}}, publicRead, "
            f"serviceOnly), e.g. {lines}"
        )
    return replace(model, buckets=buckets)


def bucket_warnings(settings: StackSettings) -> list[str]:
    """What a dev stack says about buckets without a kind (prod refuses them)."""
    return [
        f"{settings.model_source}: bucket {b.id} has no kind: dev opens it to everyone; prod will refuse it until "
        f"it has one (`{b.kind_line}`)"
        for b in settings.model.buckets
        if b.kind is None
    ]


def _definer_objects(raw: Any) -> tuple[str, ...]:
    setting = f"{NAMESPACE}:definerObjects"
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"{setting}: expected a list of `schema.name` (views or functions), e.g. [public.stats]")
    names = []
    for i, entry in enumerate(raw):
        parts = entry.split(".") if isinstance(entry, str) else []
        if len(parts) != 2:
            raise ConfigError(f"{setting}[{i}]: expected `schema.name` (a view or function), got {entry!r}")
        try:
            names.append(".".join(check_identifier(part, f"{setting}[{i}]") for part in parts))
        except ModelError as exc:
            raise ConfigError(str(exc)) from exc
    return tuple(dict.fromkeys(names))


def _exposed_schemas(raw: Any) -> tuple[str, ...]:
    setting = f"{NAMESPACE}:schemas"
    if raw is None:
        return ("public",)
    if not isinstance(raw, list) or not raw:
        raise ConfigError(
            f"{setting}: expected a non-empty list of the schemas the Data API exposes, e.g. [public] "
            "(Supabase: Project Settings > Data API > Exposed schemas)"
        )
    try:
        return tuple(dict.fromkeys(check_identifier(name, f"{setting}[{i}]") for i, name in enumerate(raw)))
    except ModelError as exc:
        raise ConfigError(str(exc)) from exc


def _extra_policies(
    raw: Any, model: AccessModel, profile: str
) -> tuple[dict[str, tuple[PolicySpec, ...]], tuple[str, ...], dict[str, str]]:
    setting = f"{NAMESPACE}:extraPolicies"
    if raw is None:
        return {}, (), {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{setting}: expected a map of table name to {{policy name: policy}}")
    try:
        plan = plan_access(model, profile)
    except ModelError as exc:
        raise ConfigError(str(exc)) from exc
    generated = {access.table: {rule.name for rule in access.rules} for access in plan.tables}
    extra: dict[str, tuple[PolicySpec, ...]] = {}
    replaced: list[str] = []
    widenings: dict[str, str] = {}
    for table, policies in raw.items():
        if table not in model.table_names:
            raise ConfigError(f"{setting}.{table}: unknown table (the model has {', '.join(model.table_names)})")
        if not isinstance(policies, Mapping):
            raise ConfigError(f"{setting}.{table}: expected a map of policy name to policy")
        specs = []
        for name, spec in policies.items():
            where = f"{setting}.{table}.{name}"
            if not isinstance(spec, Mapping):
                raise ConfigError(f"{where}: expected a policy (command, roles, using, withCheck)")
            unknown = [key for key in spec if key not in (*POLICY_KEYS, *ENTRY_KEYS)]
            if unknown:
                message = unknown_keys_message(where, unknown, (*POLICY_KEYS, *ENTRY_KEYS))
                if "restrictive" in unknown:
                    message += " (a restrictive policy is `permissive: false`)"
                raise ConfigError(message)
            replaces = spec.get(REPLACES_KEY, False)
            if not isinstance(replaces, bool):
                raise ConfigError(f"{where}.{REPLACES_KEY}: expected true or false")
            if name in generated.get(table, set()):
                if not replaces:
                    raise ConfigError(
                        f"{where}: the {profile} profile already generates a policy named {name} on {table}; this "
                        f"entry would silently take its place. Give it another name, or add `{REPLACES_KEY}: true` "
                        "to the entry if replacing the profile's policy is what you mean"
                    )
                replaced.append(f"{table}.{name}")
            elif replaces:
                raise ConfigError(
                    f"{where}.{REPLACES_KEY}: the {profile} profile generates no policy named {name} on {table} "
                    f"(it has {', '.join(sorted(generated.get(table, ())))})"
                )
            try:
                policy = policy_from_plain(name, {k: v for k, v in spec.items() if k not in ENTRY_KEYS}, setting=where)
            except ModelError as exc:
                raise ConfigError(str(exc)) from exc
            why = _widens(spec.get(WIDENS_KEY), policy, where)
            if why is not None:
                widenings[f"{table}.{name}"] = why
            specs.append(policy)
        extra[table] = tuple(specs)
    return extra, tuple(replaced), widenings


def _widens(raw: Any, policy: PolicySpec, where: str) -> str | None:
    """The reason an entry gives for widening access, or None when it declares none."""
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(
            f"{where}.{WIDENS_KEY}: expected a sentence saying why this policy gives rows the table's access kind "
            f'does not (e.g. {WIDENS_KEY}: "support staff read every session")'
        )
    if not policy.permissive:
        raise ConfigError(
            f"{where}.{WIDENS_KEY}: a restrictive policy (permissive: false) only narrows access; remove {WIDENS_KEY}"
        )
    return " ".join(raw.split())


def _model(access: Mapping[str, Any], project_dir: Path) -> tuple[AccessModel, str]:
    try:
        if access.get("model") is not None:
            if access.get("modelFile") is not None:
                raise ConfigError(f"{NAMESPACE}:model and {NAMESPACE}:modelFile are both set; keep one")
            return parse_model(access["model"], setting=f"{NAMESPACE}:model"), f"{NAMESPACE}:model"
        relative = access.get("modelFile") or "access-model.yaml"
        source = f"{NAMESPACE}:modelFile ({relative})"
        return load_model_file(project_dir / relative, setting=f"{NAMESPACE}:modelFile"), source
    except ModelError as exc:
        raise ConfigError(str(exc)) from exc


def _connection(postgresql: Mapping[str, Any]) -> Connection:
    if not postgresql.get("host"):
        raise ConfigError("postgresql:host is not set (pulumi config set postgresql:host <host>)")
    try:
        connection = Connection.of(postgresql)
    except ValueError as exc:
        raise ConfigError(f"postgresql:port: {postgresql.get('port')!r} is not a port number") from exc
    if not 0 < connection.port < 65536:
        raise ConfigError(f"postgresql:port: {connection.port} is not a port number")
    return connection


def passphrase_env(stack: str, environ: Mapping[str, str]) -> dict[str, str]:
    """What a pulumi call on `stack` adds to `environ`: the local passphrase (that scripts/env.sh
    offers as SUPABASE_ACCESS_LOCAL_PASSPHRASE) for the local stacks only, never a chosen one's override."""
    local = environ.get("SUPABASE_ACCESS_LOCAL_PASSPHRASE")
    chosen = environ.get("PULUMI_CONFIG_PASSPHRASE") or environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    if stack in LOCAL_STACKS and local and not chosen:
        return {"PULUMI_CONFIG_PASSPHRASE": local}
    return {}


# --- Supabase Auth settings (Management API) -------------------------------------------
PROJECT_REF_SETTING = f"{NAMESPACE}:projectRef"
ACCESS_TOKEN_SETTING = f"{NAMESPACE}:accessToken"
MANAGEMENT_API_URL_SETTING = f"{NAMESPACE}:managementApiUrl"
AUTH_SETTINGS_SETTING = f"{NAMESPACE}:authSettings"


@dataclass(frozen=True)
class AuthStackSettings:
    """The project's Supabase Auth settings as one stack declares them."""

    # Validated, in canonical order; may hold the CAPTCHA secret, hence no repr.
    settings: dict[str, object] = field(repr=False)
    project_ref: str | None
    management_api_url: str | None
    # Settings still to set before the resource can be declared (empty: declare it).
    missing: tuple[str, ...]
    # Things worth telling at preview that do not stop the stack.
    warnings: tuple[str, ...] = ()

    @property
    def declared(self) -> bool:
        return not self.missing

    @property
    def reaches_management_api(self) -> bool:
        """The project ref and access token are set (other resources than AuthSettings may use them)."""
        return self.project_ref is not None and ACCESS_TOKEN_SETTING not in self.missing

    def skip_message(self) -> str:
        what = f"the values in {AUTH_SETTINGS_SETTING} are not applied" if self.settings else "none are managed"
        how = {
            PROJECT_REF_SETTING: f"`pulumi config set {PROJECT_REF_SETTING} <project-ref>`",
            ACCESS_TOKEN_SETTING: f"`pulumi config set --secret {ACCESS_TOKEN_SETTING} <personal access token>`",
            AUTH_SETTINGS_SETTING: f"{AUTH_SETTINGS_SETTING} (an object of the auth settings to manage)",
        }
        return (
            "Supabase Auth settings (rate limits, anonymous sign-ins, CAPTCHA) are skipped on this stack: "
            f"{', '.join(self.missing)} not set, so {what}. Set {'; '.join(how[name] for name in self.missing)}."
        )


def parse_auth_stack_settings(
    access: Mapping[str, Any], *, environment: str, token_set: bool
) -> AuthStackSettings | None:
    """The auth settings part of a stack, or None when a dev stack says nothing about them.

    `access` holds `projectRef`, `managementApiUrl` and `authSettings` (an object); the token
    itself stays out of plain data, only whether it is set. A prod stack always gets an
    answer, so that a missing project ref or token is reported rather than silently ignored.
    """
    raw, project_ref, url = access.get("authSettings"), access.get("projectRef"), access.get("managementApiUrl")
    if raw is None and not project_ref and not url and not token_set and environment != "prod":
        return None
    try:
        settings = {} if raw is None else validate_auth_settings(raw, setting_prefix=AUTH_SETTINGS_SETTING)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if project_ref and (not isinstance(project_ref, str) or not PROJECT_REF_PATTERN.match(project_ref)):
        raise ConfigError(
            f"{PROJECT_REF_SETTING}: {project_ref!r} is not a Supabase project reference (20 lower-case letters, "
            "as in https://supabase.com/dashboard/project/<ref>)"
        )
    if url and not (isinstance(url, str) and url.startswith(("https://", "http://"))):
        raise ConfigError(
            f"{MANAGEMENT_API_URL_SETTING}: {url!r} is not an http(s) URL (default https://api.supabase.com)"
        )
    if project_ref and raw is not None and not token_set:
        # The stack manages this project's settings: skipping them now would plan their revert
        # (a destroy of the resource) instead of saying what is missing.
        raise ConfigError(
            f"{ACCESS_TOKEN_SETTING} is not set, but this stack manages the Supabase Auth settings of project "
            f"{project_ref} ({AUTH_SETTINGS_SETTING}); set it: `pulumi config set --secret {ACCESS_TOKEN_SETTING} "
            "<personal access token>` (in CI, the secret that provides it)"
        )
    missing = tuple(
        name
        for name, present in (
            (PROJECT_REF_SETTING, bool(project_ref)),
            (ACCESS_TOKEN_SETTING, token_set),
            (AUTH_SETTINGS_SETTING, raw is not None),
        )
        if not present
    )
    warnings: list[str] = []
    if settings.get("security_captcha_enabled") is True and "security_captcha_secret" not in settings:
        warnings.append(
            f"{AUTH_SETTINGS_SETTING}.security_captcha_enabled is true but "
            f"{AUTH_SETTINGS_SETTING}.security_captcha_secret is not set: the project keeps whatever secret it has. "
            "Set it with `pulumi config set --secret --path "
            f"{AUTH_SETTINGS_SETTING}.security_captcha_secret <secret key from the CAPTCHA provider>`."
        )
    return AuthStackSettings(
        settings=settings,
        project_ref=project_ref or None,
        management_api_url=url or None,
        missing=missing,
        warnings=tuple(warnings),
    )


# --- Production hardening: writeQuotas, retention, permanentUsersOnly ---------------------------

WRITE_QUOTAS_SETTING = f"{NAMESPACE}:writeQuotas"
RETENTION_SETTING = f"{NAMESPACE}:retention"
PERMANENT_USERS_ONLY_SETTING = f"{NAMESPACE}:permanentUsersOnly"
RETENTION_KEYS = ("anonymousUsersDays", "sessionsDays", "sessionsTable", "schedule")


def parse_hardening_settings(access: Mapping[str, Any], model: AccessModel) -> HardeningSettings:
    """`writeQuotas`, `retention` and `permanentUsersOnly`; none set (dev stacks) means no hardening."""
    return HardeningSettings(
        write_quotas=_write_quotas(access.get("writeQuotas"), model),
        retention=_retention(access.get("retention"), model),
        permanent_users_only=_permanent_users_only(access.get("permanentUsersOnly"), model),
    )


def _whole_number(value: object, setting: str, maximum: int) -> int:
    # `pulumi config set --path` stores numbers as strings; YAML and JSON give ints. bool is not a count.
    number = int(value) if isinstance(value, str) and value.isdigit() else value
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= maximum:
        raise ConfigError(f"{setting}: expected a whole number from 1 to {maximum}, got {number!r}")
    return number


def _known_table(table: Any, model: AccessModel, setting: str) -> str:
    if table not in model.table_names:
        raise ConfigError(f"{setting}: unknown table {table!r} (the model has {', '.join(model.table_names)})")
    return str(table)


def _write_quotas(raw: Any, model: AccessModel) -> tuple[WriteQuotaSetting, ...]:
    setting = WRITE_QUOTAS_SETTING
    if raw is None:
        return ()
    windows = " / ".join(QUOTA_WINDOWS)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{setting}: expected a map of table name to {{perHour: N}} (or {windows})")
    quotas = []
    for table, spec in raw.items():
        where = f"{setting}.{table}"
        _known_table(table, model, where)
        # One window per table: the table has one quota trigger.
        if isinstance(spec, Mapping) and len(spec) == 1 and next(iter(spec)) not in QUOTA_WINDOWS:
            raise ConfigError(unknown_keys_message(where, list(spec), list(QUOTA_WINDOWS)))
        if not isinstance(spec, Mapping) or len(spec) != 1:
            raise ConfigError(f"{where}: expected exactly one of {windows} with a whole number, e.g. {{perHour: 20}}")
        ((window, limit),) = spec.items()
        quotas.append(WriteQuotaSetting(table, _whole_number(limit, f"{where}.{window}", MAX_QUOTA_LIMIT), window))
    return tuple(quotas)


def _retention(raw: Any, model: AccessModel) -> RetentionSetting | None:
    setting = RETENTION_SETTING
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{setting}: expected {{anonymousUsersDays: N, sessionsDays: M}}")
    unknown = [key for key in raw if key not in RETENTION_KEYS]
    if unknown:
        raise ConfigError(unknown_keys_message(setting, unknown, RETENTION_KEYS))
    days = {
        key: None if raw.get(key) is None else _whole_number(raw[key], f"{setting}.{key}", MAX_RETENTION_DAYS)
        for key in ("anonymousUsersDays", "sessionsDays")
    }
    if days["anonymousUsersDays"] is None and days["sessionsDays"] is None:
        raise ConfigError(f"{setting}: set anonymousUsersDays and/or sessionsDays")
    sessions_table = _known_table(raw.get("sessionsTable", "sessions"), model, f"{setting}.sessionsTable")
    schedule = raw.get("schedule", DEFAULT_PURGE_SCHEDULE)
    if not isinstance(schedule, str) or not CRON_SCHEDULE.match(schedule):
        raise ConfigError(f"{setting}.schedule: {schedule!r} is not a cron schedule like '17 3 * * *'")
    return RetentionSetting(days["anonymousUsersDays"], days["sessionsDays"], sessions_table, schedule)


def _permanent_users_only(raw: Any, model: AccessModel) -> dict[str, tuple[str, ...]]:
    setting = PERMANENT_USERS_ONLY_SETTING
    if raw is None:
        return {}
    commands_list = ", ".join(PERMANENT_ONLY_COMMANDS)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{setting}: expected a map of table name to a list of commands ({commands_list})")
    reserved: dict[str, tuple[str, ...]] = {}
    for table, commands in raw.items():
        where = f"{setting}.{table}"
        _known_table(table, model, where)
        if not isinstance(commands, list) or not commands:
            raise ConfigError(f"{where}: expected a non-empty list of commands ({commands_list})")
        wanted = {str(c).upper() for c in commands}
        unknown = sorted(wanted - set(PERMANENT_ONLY_COMMANDS))
        if unknown:
            raise ConfigError(f"{where}: unknown command(s) {unknown} (known: {commands_list})")
        reserved[table] = tuple(c for c in PERMANENT_ONLY_COMMANDS if c in wanted)
    return reserved


def extra_policies_with_hardening(
    extra_policies: Mapping[str, tuple[PolicySpec, ...]], hardening: HardeningSettings
) -> dict[str, tuple[DeclaredPolicy, ...]]:
    """`extraPolicies` plus the RESTRICTIVE policies of `permanentUsersOnly`, per table."""
    reserved = permanent_users_only_policies(hardening.permanent_users_only)
    merged: dict[str, tuple[DeclaredPolicy, ...]] = {table: tuple(p) for table, p in extra_policies.items()}
    for table, policies in reserved.items():
        clash = sorted({p.name for p in merged.get(table, ())} & {p.name for p in policies})
        if clash:
            raise ConfigError(
                f"{PERMANENT_USERS_ONLY_SETTING}.{table}: policy name(s) {clash} are also declared in "
                f"{NAMESPACE}:extraPolicies.{table}; rename those"
            )
        merged[table] = merged.get(table, ()) + policies
    return merged


def hardening_policy_settings(hardening: HardeningSettings) -> dict[str, str]:
    """The setting each permanentUsersOnly policy comes from ("table.policy" -> setting), for errors."""
    return {
        f"{table}.{policy.name}": f"{PERMANENT_USERS_ONLY_SETTING}.{table}"
        for table, policies in permanent_users_only_policies(hardening.permanent_users_only).items()
        for policy in policies
    }
