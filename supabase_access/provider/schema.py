"""The provider's Pulumi package schema: what `pulumi import` and SDK generators read."""

from __future__ import annotations

import json
from typing import Any

STRING: dict[str, Any] = {"type": "string"}
BOOLEAN: dict[str, Any] = {"type": "boolean"}
INTEGER: dict[str, Any] = {"type": "integer"}
STRINGS: dict[str, Any] = {"type": "array", "items": STRING}
ANY_MAP: dict[str, Any] = {"type": "object", "additionalProperties": {"$ref": "pulumi.json#/Any"}}

# resource name -> (required inputs, optional inputs, outputs beyond the inputs)
RESOURCES: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "AccessPreflight": (
        {"schema": STRING, "tables": STRINGS},
        {
            "roles": STRINGS,
            "policies": ANY_MAP,
            "source": STRING,
            "policySettings": ANY_MAP,
            "exposedSchemas": STRINGS,
            "uncoveredTables": STRING,
            "tableGrants": ANY_MAP,
            "groupHelpers": {"type": "array", "items": ANY_MAP},
            "definerObjects": STRINGS,
        },
        {},
    ),
    "RowLevelSecurity": (
        {"schema": STRING, "table": STRING},
        {"force": BOOLEAN, "revokeUnguardedFrom": STRINGS, "revokeUndeclared": ANY_MAP},
        {"enabled": BOOLEAN, "previous": ANY_MAP},
    ),
    "TablePolicies": ({"schema": STRING, "table": STRING, "policies": ANY_MAP}, {}, {"adopted": ANY_MAP}),
    "TableGrant": (
        {"role": STRING, "schema": STRING, "objects": STRINGS, "privileges": STRINGS},
        {"objectType": STRING},
        {"previous": ANY_MAP},
    ),
    "ConstraintRemoval": (
        {"schema": STRING, "table": STRING, "constraint": STRING},
        {"definition": STRING},
        {"present": BOOLEAN, "columns": STRINGS, "referencedTable": STRING, "referencedColumns": STRINGS},
    ),
    "ConstraintPresence": (
        {"schema": STRING, "table": STRING, "constraint": STRING, "columns": STRINGS},
        {"referencedTable": STRING, "referencedColumns": STRINGS, "onDelete": STRING},
        {"present": BOOLEAN, "validated": BOOLEAN, "definition": STRING},
    ),
    "DefaultPrivilegesBaseline": (
        {"owner": STRING, "schema": STRING, "roles": STRINGS},
        {},
        {"previous": ANY_MAP},
    ),
    "RlsForNewTables": ({"schemas": STRINGS}, {"privateSchema": STRING}, {"installed": BOOLEAN}),
    "GroupFunctions": (
        {"membershipTable": STRING, "group": STRING, "column": STRING, "user": STRING, "groupOwnerColumn": STRING},
        {
            "schema": STRING,
            "key": STRING,
            "role": STRING,
            "admins": STRINGS,
            "helperSchema": STRING,
            "forceRls": BOOLEAN,
        },
        {"memberFunction": STRING, "adminFunction": STRING},
    ),
    "PolicyIndex": (
        {"table": STRING, "column": STRING, "include": STRING},
        {"schema": STRING},
        {"index": STRING, "created": BOOLEAN},
    ),
    "AuthSettings": (
        {"projectRef": STRING, "settings": ANY_MAP},
        {},
        {"live": ANY_MAP, "previous": ANY_MAP, "sentSecretHashes": ANY_MAP, "appliedSecretHashes": ANY_MAP},
    ),
    "WriteQuota": (
        {"schema": STRING, "table": STRING, "limit": INTEGER, "windowSeconds": INTEGER},
        {"windowLabel": STRING, "privateSchema": STRING},
        {"function": STRING, "trigger": STRING, "usageTable": STRING, "sqlstate": STRING},
    ),
    "RetentionPolicy": (
        {"schema": STRING, "ownedTables": {"type": "array", "items": ANY_MAP}, "sessionsTable": STRING},
        {
            "sessionsTimestampColumn": STRING,
            "anonymousUsersDays": INTEGER,
            "sessionsDays": INTEGER,
            "schedule": STRING,
            "jobName": STRING,
            "privateSchema": STRING,
        },
        {"function": STRING, "scheduled": BOOLEAN, "runManually": STRING, "status": STRING},
    ),
}
CONFIG: dict[str, Any] = {
    "host": STRING,
    "port": {"type": "integer"},
    "database": STRING,
    "username": STRING,
    "password": {**STRING, "secret": True},
    "sslmode": STRING,
    "managementApiUrl": STRING,
    "accessToken": {**STRING, "secret": True},
}


def package_schema(version: str, extra_resources: dict[str, Any] | None = None) -> str:
    resources: dict[str, Any] = {}
    for name, (required, optional, outputs) in RESOURCES.items():
        inputs = {**required, **optional}
        resources[f"supabase-access:index:{name}"] = {
            "inputProperties": inputs,
            "requiredInputs": sorted(required),
            "properties": {**inputs, **outputs},
            "required": sorted(required),
        }
    resources.update(extra_resources or {})
    return json.dumps(
        {
            "name": "supabase-access",
            "version": version,
            "description": "Supabase access rules: RLS, policies, grants and constraint removal as resources.",
            "config": {"variables": CONFIG},
            "provider": {"inputProperties": CONFIG, "requiredInputs": ["host", "password"]},
            "resources": resources,
        }
    )
