"""Stack settings: every bad value is refused with the setting's name, before anything runs."""

from pathlib import Path

import pytest

from supabase_access.stack_config import ConfigError, parse_stack_settings

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[1]
LOCAL = {"host": "127.0.0.1", "port": "54322"}


def parse(access: dict, postgresql: dict | None = None):
    return parse_stack_settings(access, LOCAL if postgresql is None else postgresql, project_dir=REPO)


def test_defaults_follow_the_environment() -> None:
    assert parse({"environment": "dev"}).profile == "open"
    assert parse({"environment": "prod"}).profile == "owner"
    assert parse({}).connection.port == 54322


def test_prod_refuses_the_open_profile_unless_overridden() -> None:
    with pytest.raises(ConfigError, match="supabase-access:profile: a prod stack cannot use the open profile"):
        parse({"environment": "prod", "profile": "open"})
    assert parse({"environment": "prod", "profile": "open", "allowOpenProfileInProd": True}).profile == "open"


@pytest.mark.parametrize(
    ("access", "postgresql", "message"),
    [
        ({"environment": "staging"}, None, "supabase-access:environment"),
        ({"profile": "closed"}, None, "supabase-access:profile"),
        ({"modelFile": "missing.yaml"}, None, "supabase-access:modelFile: cannot read"),
        ({"model": {"tables": {"x'y": {"owner": "u"}}}}, None, "supabase-access:model.tables"),
        ({"model": {"tables": {"a": {"owner": "u"}}}, "modelFile": "m.yaml"}, None, "keep one"),
        ({"forceRls": "yes"}, None, "supabase-access:forceRls"),
        ({}, {"port": "1"}, "postgresql:host"),
        ({}, {"host": "h", "port": "many"}, "postgresql:port"),
        ({"extraPolicies": {"nope": {}}}, None, "supabase-access:extraPolicies.nope: unknown table"),
        (
            {"extraPolicies": {"sessions": {"p": {"command": "SELECT", "using": "true; drop table sessions"}}}},
            None,
            "supabase-access:extraPolicies.sessions.p.using",
        ),
        ({"extraPolicies": {"sessions": {"p": {"command": "TRUNCATE", "using": "true"}}}}, None, "p.command"),
    ],
)
def test_bad_settings_are_named(access: dict, postgresql: dict | None, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(access, postgresql)
    assert message in str(info.value)


def test_inline_model_and_extra_policies() -> None:
    settings = parse(
        {
            "model": {"tables": {"notes": {"owner": "author_id"}}},
            "extraPolicies": {
                "notes": {
                    "notes_insert_not_anonymous": {
                        "command": "INSERT",
                        "permissive": False,
                        "roles": ["authenticated"],
                        "withCheck": "true",
                    }
                }
            },
        }
    )
    assert settings.model.table_names == ("notes",)
    assert settings.model_source == "supabase-access:model"
    (policy,) = settings.extra_policies["notes"]
    assert policy.permissive is False and policy.command == "INSERT"
