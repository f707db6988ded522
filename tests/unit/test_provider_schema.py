"""The package schema the provider serves (read by `pulumi import`) names every resource it implements."""

import json

import pytest

from supabase_access.provider.schema import package_schema
from supabase_access.provider.server import RESOURCE_TYPES

pytestmark = pytest.mark.unit


def test_schema_lists_every_registered_resource_and_keeps_secrets_secret() -> None:
    schema = json.loads(package_schema("0.1.0"))
    assert sorted(schema["resources"]) == sorted(RESOURCE_TYPES)
    assert schema["config"]["variables"]["password"]["secret"] is True
    assert schema["config"]["variables"]["accessToken"]["secret"] is True
