"""The supabase-access provider's resources as the program declares them, made from their specs
(supabase_access/provider/specs.py): what a generated SDK would hold."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pulumi

from supabase_access.provider import specs
from supabase_access.provider.spec import PACKAGE, UNSET, ResourceSpec
from supabase_access.provider.specs import SPECS


class Provider(pulumi.ProviderResource):
    """A connection to one Supabase Postgres database; the password is always a secret."""

    def __init__(
        self,
        name: str,
        *,
        host: pulumi.Input[str],
        password: pulumi.Input[str],
        port: pulumi.Input[int] = 5432,
        database: pulumi.Input[str] = "postgres",
        username: pulumi.Input[str] = "postgres",
        sslmode: pulumi.Input[str] = "prefer",
        management_api_url: pulumi.Input[str] | None = None,
        access_token: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "host": host,
            "port": port,
            "database": database,
            "username": username,
            "sslmode": sslmode,
            "password": pulumi.Output.secret(password),
        }
        # Supabase Management API (AuthSettings); left out when unset so other stacks see no change.
        if management_api_url is not None:
            props["managementApiUrl"] = management_api_url
        if access_token is not None:
            props["accessToken"] = pulumi.Output.secret(access_token)
        super().__init__(PACKAGE, name, props, opts)


class SpecResource(pulumi.CustomResource):
    """A resource of the provider, made from its spec (supabase_access/provider/specs.py).

    Keyword arguments are the spec's inputs in snake_case (`revoke_unguarded_from=` for
    `revokeUnguardedFrom`); a missing required one or an unknown one is a TypeError. Inputs the
    spec calls secret are sent as secrets, its secret outputs are kept secret, and each output
    can be read by its snake_case name (`retention.run_manually`).
    """

    spec: ClassVar[ResourceSpec]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__doc__ = cls.spec.description

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None, **args: Any) -> None:
        props = program_inputs(self.spec, args)
        if self.spec.secret_outputs:
            secrets = pulumi.ResourceOptions(additional_secret_outputs=list(self.spec.secret_outputs))
            opts = pulumi.ResourceOptions.merge(opts, secrets)
        super().__init__(self.spec.token, name, {**props, **{p.name: None for p in self.spec.outputs}}, opts)

    def __getattr__(self, name: str) -> Any:
        # The SDK sets each property as an attribute named as the engine names it (camelCase).
        engine_name = _ENGINE_NAMES.get(name)
        if engine_name is not None and engine_name in self.__dict__:
            return self.__dict__[engine_name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")


_ENGINE_NAMES = {p.python_name: p.name for spec in SPECS for p in (*spec.inputs, *spec.outputs)}


def program_inputs(spec: ResourceSpec, args: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs the program sends for `args` (snake_case keyword arguments), defaults filled in."""
    known = {p.python_name: p for p in spec.inputs}
    unknown = sorted(set(args) - set(known))
    if unknown:
        raise TypeError(f"{spec.name}: unknown argument(s) {', '.join(unknown)}")
    props: dict[str, Any] = {}
    for python_name, prop in known.items():
        value = args.get(python_name, prop.default)
        if value is UNSET:
            if prop.required:
                raise TypeError(f"{spec.name}: missing argument {python_name}")
            continue
        if value is None:
            continue  # left out, as the SDK leaves out None
        value = _plain(value)
        props[prop.name] = pulumi.Output.secret(value) if prop.secret else value
    return props


def _plain(value: Any) -> Any:
    """Sequences as lists and mappings as dicts, all the way down (what the engine stores), Outputs as they are."""
    if isinstance(value, pulumi.Output):
        return value
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


# The provider's resources the program can declare (the retired TableGrant is not one of them).


class AccessPreflight(SpecResource):
    spec = specs.ACCESS_PREFLIGHT


class RowLevelSecurity(SpecResource):
    spec = specs.ROW_LEVEL_SECURITY


class TablePolicies(SpecResource):
    spec = specs.TABLE_POLICIES


class ConstraintRemoval(SpecResource):
    spec = specs.CONSTRAINT_REMOVAL


class ConstraintPresence(SpecResource):
    spec = specs.CONSTRAINT_PRESENCE


class DefaultPrivilegesBaseline(SpecResource):
    spec = specs.DEFAULT_PRIVILEGES_BASELINE


class RlsForNewTables(SpecResource):
    spec = specs.RLS_FOR_NEW_TABLES


class GroupFunctions(SpecResource):
    spec = specs.GROUP_FUNCTIONS


class PolicyIndex(SpecResource):
    spec = specs.POLICY_INDEX


class OwnerCopy(SpecResource):
    spec = specs.OWNER_COPY


class AuthSettings(SpecResource):
    spec = specs.AUTH_SETTINGS


class WriteQuota(SpecResource):
    spec = specs.WRITE_QUOTA


class RetentionPolicy(SpecResource):
    spec = specs.RETENTION_POLICY


PROGRAM_RESOURCES: tuple[type[SpecResource], ...] = (
    AccessPreflight,
    RowLevelSecurity,
    TablePolicies,
    ConstraintRemoval,
    ConstraintPresence,
    DefaultPrivilegesBaseline,
    RlsForNewTables,
    GroupFunctions,
    PolicyIndex,
    OwnerCopy,
    AuthSettings,
    WriteQuota,
    RetentionPolicy,
)
