"""`pulumi import` of the provider's resources writes code, with the generated SDK (pulumi_supabase_access),
that a user's program runs as it is: its next preview shows no change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pulumi import automation as auto

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
# carries) or check rather than make (AccessPreflight): import refuses them, saying why.
IMPORTABLE = {
    "owner": ("TablePolicies", "RowLevelSecurity", "ConstraintPresence", "PolicyIndex", "WriteQuota"),
    "open": ("TablePolicies", "RowLevelSecurity", "ConstraintRemoval"),
}

# A user's program: the provider, connected as the stack's postgresql:* settings say, as `db`
# (the name the import's name table gives it); the generated code goes below it.
USER_PROGRAM = """\
import pulumi
import pulumi_supabase_access as supabase_access

postgresql = pulumi.Config("postgresql")
db = supabase_access.Provider(
    "db",
    host=postgresql.require("host"),
    port=postgresql.require_int("port"),
    database=postgresql.require("database"),
    username=postgresql.require("username"),
    password=postgresql.require_secret("password"),
)
"""


def resources_of(stack: auto.Stack) -> list[dict[str, object]]:
    deployment = stack.export_stack().deployment
    assert deployment is not None
    return list(deployment["resources"])


@pytest.mark.parametrize(("stack_name", "config", "profile"), [("local-prod", OWNER, "owner"), ("local", OPEN, "open")])
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

    program = tmp_path / "program"
    program.mkdir()
    (program / "__main__.py").write_text(USER_PROGRAM)
    user = new_stack(tmp_path / "user", "local", fresh_db, {}, main=program)
    user.up()
    provider = next(r for r in resources_of(user) if r["type"] == "pulumi:providers:supabase-access")
    imported = user.import_resources(
        resources=[
            {"type": f"supabase-access:index:{kind}", "name": f"imported-{kind}", "id": made[kind], "provider": "db"}
            for kind in IMPORTABLE[profile]
        ],
        name_table={"db": str(provider["urn"])},
        generate_code=True,
    )
    assert changes(imported.summary.resource_changes) == {"import": len(IMPORTABLE[profile])}
    code = imported.generated_code
    assert "import pulumi_supabase_access as supabase_access" in code, code
    # Below the provider, without the imports the program has already.
    body = "\n".join(line for line in code.splitlines() if not line.startswith("import "))
    (program / "__main__.py").write_text(USER_PROGRAM + body + "\n")
    preview = user.preview(diff=True)
    assert changes(preview.change_summary) == {}, preview.stdout + "\n" + code
