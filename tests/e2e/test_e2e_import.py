"""`pulumi import` of the provider's resources writes code, with the generated SDK (pulumi_supabase_access),
that a user's program runs as it is: its next preview shows no change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pulumi import automation as auto

from review.management_api_server import ManagementApiServer
from tests.support.engine import changes, new_stack

pytestmark = pytest.mark.e2e

OWNER = {
    "supabase-access:environment": "prod",
    "supabase-access:profile": "owner",
    "supabase-access:writeQuotas": json.dumps({"sessions": {"perHour": 2}}),
}
OPEN = {"supabase-access:environment": "dev", "supabase-access:profile": "open"}
# What each profile's stack makes that can be imported by its id alone. The other kinds hold what
# only the stack that made them knows (the privileges and defaults from before it, inputs no id
# carries) or check rather than make (AccessPreflight): import refuses them, saying why (unit tests
# name each; one here through the engine). AuthSettings, by its project's ref: a test of its own.
IMPORTABLE = {
    "owner": ("TablePolicies", "RowLevelSecurity", "ConstraintPresence", "PolicyIndex", "WriteQuota"),
    "open": ("TablePolicies", "RowLevelSecurity", "ConstraintRemoval"),
}

# A user's program: the provider, connected as the stack's postgresql:* settings say (and to the
# Management API where it has one), as `db` (the name the import's name table gives it); the
# generated code goes below it.
USER_PROGRAM = """\
import pulumi
import pulumi_supabase_access as supabase_access

postgresql = pulumi.Config("postgresql")
api = pulumi.Config("supabase-access")
db = supabase_access.Provider(
    "db",
    host=postgresql.require("host"),
    port=postgresql.require_int("port"),
    database=postgresql.require("database"),
    username=postgresql.require("username"),
    password=postgresql.require_secret("password"),
    management_api_url=api.get("managementApiUrl"),
    access_token=api.get_secret("accessToken"),
)
"""
TOKEN = "sbp_e2e_0123456789abcdef0123456789abcdef01234"


def resources_of(stack: auto.Stack) -> list[dict[str, object]]:
    deployment = stack.export_stack().deployment
    assert deployment is not None
    return list(deployment["resources"])


@pytest.mark.parametrize(
    ("stack_name", "config", "profile"),
    [("local-prod", OWNER, "owner"), ("local", OPEN, "open")],
    ids=["owner", "open"],
)
def test_imported_resources_generated_code_previews_with_no_change(
    tmp_path: Path, fresh_db: str, stack_name: str, config: dict[str, str], profile: str
) -> None:
    # The objects: what this program's stack made on the database.
    source = new_stack(tmp_path / "source", stack_name, fresh_db, config)
    source.up()
    made = {}
    for resource in resources_of(source):
        kind = str(resource["type"]).rsplit(":", 1)[-1]
        if str(resource["type"]).startswith("supabase-access:index:") and kind not in made:
            made[kind] = str(resource["id"])
    assert set(IMPORTABLE[profile]) <= set(made)

    import_and_preview(tmp_path, fresh_db, {kind: made[kind] for kind in IMPORTABLE[profile]})


def user_stack(tmp_path: Path, fresh_db: str, config: dict[str, str] | None = None) -> tuple[auto.Stack, Path, str]:
    """A stack of the user's program (its provider only, after an up), the program's folder and the provider's URN."""
    program = tmp_path / "program"
    program.mkdir()
    (program / "__main__.py").write_text(USER_PROGRAM)
    user = new_stack(tmp_path / "user", "local", fresh_db, {}, main=program)
    for key, value in (config or {}).items():
        user.set_config(key, auto.ConfigValue(value, secret=key.endswith("accessToken")))
    user.up()
    provider = next(r for r in resources_of(user) if r["type"] == "pulumi:providers:supabase-access")
    return user, program, str(provider["urn"])


def import_and_preview(
    tmp_path: Path, fresh_db: str, ids: dict[str, str], config: dict[str, str] | None = None
) -> None:
    """Import each kind by its id into a user's program with generated code, run that code: no change."""
    user, program, provider_urn = user_stack(tmp_path, fresh_db, config)
    imported = user.import_resources(
        resources=[
            {"type": f"supabase-access:index:{kind}", "name": f"imported-{kind}", "id": resource_id, "provider": "db"}
            for kind, resource_id in ids.items()
        ],
        name_table={"db": provider_urn},
        generate_code=True,
    )
    assert changes(imported.summary.resource_changes) == {"import": len(ids)}
    code = imported.generated_code
    assert "import pulumi_supabase_access as supabase_access" in code, code
    # Below the provider, without the imports the program has already.
    body = "\n".join(line for line in code.splitlines() if not line.startswith("import "))
    (program / "__main__.py").write_text(USER_PROGRAM + body + "\n")
    preview = user.preview(diff=True)
    assert changes(preview.change_summary) == {}, preview.stdout + "\n" + code


def test_imported_auth_settings_generated_code_previews_with_no_change(tmp_path: Path, fresh_db: str) -> None:
    """A project's auth settings, by its ref: the import manages no key until the program names some."""
    with ManagementApiServer(token=TOKEN) as server:
        config = {"supabase-access:managementApiUrl": server.base_url, "supabase-access:accessToken": TOKEN}
        import_and_preview(tmp_path, fresh_db, {"AuthSettings": "localprodprojectrefa"}, config)


def test_a_kind_its_id_cannot_tell_is_refused_saying_why(tmp_path: Path, fresh_db: str) -> None:
    user, _, provider_urn = user_stack(tmp_path, fresh_db)
    with pytest.raises(auto.CommandError, match="AccessPreflight cannot be imported by its id: it checks"):
        user.import_resources(
            resources=[{"type": "supabase-access:index:AccessPreflight", "name": "p", "id": "x", "provider": "db"}],
            name_table={"db": provider_urn},
        )
