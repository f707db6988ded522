"""Stack settings: every bad value is refused with the setting's name, before anything runs."""

from pathlib import Path

import pytest

from supabase_access.model.stack_config import (
    KNOWN_KEYS,
    ConfigError,
    check_config_keys,
    parse_stack_settings,
    read_stack_settings,
)

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
LOCAL = {"host": "127.0.0.1", "port": "54322"}


def parse(access: dict, postgresql: dict | None = None):
    access = {"environment": "dev", **access}
    return parse_stack_settings(access, LOCAL if postgresql is None else postgresql, project_dir=REPO)


def test_defaults_follow_the_environment() -> None:
    assert parse({"environment": "dev"}).profile == "open"
    assert parse({"environment": "prod"}).profile == "owner"
    assert parse({}).connection.port == 54322
    assert parse({}).exposed_schemas == ("public",)
    assert parse({"schemas": ["public", "api", "public"]}).exposed_schemas == ("public", "api")
    assert parse({}).definer_objects == ()
    assert parse({"definerObjects": ["public.stats", "api.f", "public.stats"]}).definer_objects == (
        "public.stats",
        "api.f",
    )


def test_a_stack_without_environment_is_refused_with_the_command() -> None:
    with pytest.raises(ConfigError) as info:
        parse_stack_settings({}, LOCAL, project_dir=REPO)
    assert "supabase-access:environment is not set" in str(info.value)
    assert "`pulumi config set supabase-access:environment prod`" in str(info.value)


def test_unknown_keys_name_the_closest_known_one() -> None:
    with pytest.raises(ConfigError) as info:
        check_config_keys({"supabase-access:enviroment": False, "postgresql:password": True})
    message = str(info.value)
    assert message.startswith("supabase-access:enviroment: unknown setting (did you mean supabase-access:environment?)")
    assert "\n" not in message
    with pytest.raises(ConfigError, match="did you mean supabase-access:writeQuotas"):
        check_config_keys({"supabase-access:writeQuota": False})
    # The postgresql namespace: the keys both providers connect with; any other would be ignored.
    with pytest.raises(
        ConfigError, match=r"^postgresql:usrname: unknown setting \(did you mean postgresql:username\?\)"
    ):
        check_config_keys({"postgresql:usrname": False})
    with pytest.raises(ConfigError, match=r"^postgresql:superuser: unknown setting; known: host, port"):
        check_config_keys({"postgresql:superuser": False})
    # Other namespaces (a provider's own) are not ours to judge.
    check_config_keys({"postgresql:sslmode": False, "aws:region": False, "supabase-access:forceRls": False})


@pytest.mark.parametrize("key", ["postgresql:password", "supabase-access:accessToken", "other:apiToken"])
def test_secrets_in_plain_text_are_refused(key: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_config_keys({key: False})
    assert str(info.value).startswith(f"{key} is stored in plain text")
    assert f"pulumi config set --secret {key}" in str(info.value)
    check_config_keys({key: True})


@pytest.mark.parametrize(
    "name", ["security_captcha_secret", "smtp_pass", "sms_twilio_auth_token", "external_apple_secret"]
)
def test_auth_settings_secrets_in_plain_text_are_refused(name: str) -> None:
    setting = "supabase-access:authSettings"
    with pytest.raises(ConfigError) as info:
        check_config_keys({setting: False}, {name: "s3cr3t", "rate_limit_otp": 30})
    message = str(info.value)
    assert message == (
        f"{setting}.{name} is stored in plain text in the stack's config; it must be a secret. "
        f"Set it again with `pulumi config set --secret --path {setting}.{name} <value>`"
    )
    assert "s3cr3t" not in message
    check_config_keys({setting: True}, {name: "s3cr3t"})
    # Names that only contain a credential's word are plain settings.
    check_config_keys({setting: False}, {"rate_limit_token_refresh": 30, "security_refresh_token_reuse_interval": 10})


def test_an_extra_policy_may_not_take_a_generated_name_unless_it_says_so() -> None:
    entry = {"command": "SELECT", "roles": ["anon", "authenticated"], "using": "title is not null"}
    with pytest.raises(ConfigError) as info:
        parse({"extraPolicies": {"sessions": {"sessions_select_open": entry}}})
    assert str(info.value).startswith(
        "supabase-access:extraPolicies.sessions.sessions_select_open: the open profile already generates"
    )
    assert "`replaces: true`" in str(info.value)
    settings = parse({"extraPolicies": {"sessions": {"sessions_select_open": {**entry, "replaces": True}}}})
    assert settings.replaced_policies == ("sessions.sessions_select_open",)
    (notice,) = settings.replacement_notices()
    assert (
        "supabase-access:extraPolicies.sessions.sessions_select_open replaces the open profile's own policy" in notice
    )
    with pytest.raises(ConfigError, match=r"sessions_titled\.replaces: the open profile generates no policy"):
        parse({"extraPolicies": {"sessions": {"sessions_titled": {**entry, "replaces": True}}}})


def test_an_extra_policy_declares_the_access_it_widens() -> None:
    entry = {"command": "SELECT", "roles": ["authenticated"], "using": "auth.jwt() ->> 'role' = 'support'"}
    declared = {**entry, "widens": " support\n staff "}
    settings = parse({"environment": "prod", "extraPolicies": {"sessions": {"support_reads": declared}}})
    assert settings.widenings == {"sessions.support_reads": "support staff"}
    assert [p.name for p in settings.extra_policies["sessions"]] == ["support_reads"]
    assert parse({"environment": "prod", "extraPolicies": {"sessions": {"support_reads": entry}}}).widenings == {}
    with pytest.raises(ConfigError, match=r"sessions\.support_reads\.widens: expected a sentence saying why"):
        parse({"extraPolicies": {"sessions": {"support_reads": {**entry, "widens": True}}}})
    with pytest.raises(ConfigError, match=r"support_reads\.widens: a restrictive policy .* only narrows"):
        parse({"extraPolicies": {"sessions": {"support_reads": {**entry, "permissive": False, "widens": "x"}}}})


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
        ({"schemas": []}, None, "supabase-access:schemas: expected a non-empty list"),
        ({"schemas": "public"}, None, "supabase-access:schemas: expected a non-empty list"),
        (
            {"schemas": ["public", "My Schema"]},
            None,
            "supabase-access:schemas[1]: 'My Schema' is not a valid identifier",
        ),
        ({"definerObjects": "public.stats"}, None, "supabase-access:definerObjects: expected a list of `schema.name`"),
        ({"definerObjects": ["stats"]}, None, "supabase-access:definerObjects[0]: expected `schema.name`"),
        ({"definerObjects": ["public.a", 'public.b"; drop'], "schemas": ["public"]}, None, "definerObjects[1]"),
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


def test_a_stack_managing_auth_settings_without_its_token_stops_the_preview() -> None:
    from supabase_access.model.stack_config import parse_auth_stack_settings

    access = {"projectRef": "abcdefghijklmnopqrst", "authSettings": {"rate_limit_otp": 30}}
    with pytest.raises(ConfigError) as raised:
        parse_auth_stack_settings(access, environment="prod", token_set=False)
    assert str(raised.value).startswith(
        "supabase-access:accessToken is not set, but this stack manages the Supabase Auth settings of project "
        "abcdefghijklmnopqrst (supabase-access:authSettings)"
    )
    # Without a project named yet, nothing was ever managed: skipped with a warning, as before.
    skipped = parse_auth_stack_settings({"authSettings": {"rate_limit_otp": 30}}, environment="prod", token_set=False)
    assert skipped is not None and not skipped.declared


@pytest.mark.parametrize(
    ("stack", "environ", "added"),
    [
        ("local", {"SUPABASE_ACCESS_LOCAL_PASSPHRASE": "lp"}, {"PULUMI_CONFIG_PASSPHRASE": "lp"}),
        ("local-prod", {"SUPABASE_ACCESS_LOCAL_PASSPHRASE": "lp"}, {"PULUMI_CONFIG_PASSPHRASE": "lp"}),
        ("dev", {"SUPABASE_ACCESS_LOCAL_PASSPHRASE": "lp"}, {}),
        ("prod", {"SUPABASE_ACCESS_LOCAL_PASSPHRASE": "lp"}, {}),
        ("local", {"SUPABASE_ACCESS_LOCAL_PASSPHRASE": "lp", "PULUMI_CONFIG_PASSPHRASE": "mine"}, {}),
        ("local", {}, {}),
    ],
)
def test_the_local_passphrase_goes_to_the_local_stacks_only(stack: str, environ: dict, added: dict) -> None:
    from supabase_access.model.stack_config import passphrase_env

    assert passphrase_env(stack, environ) == added


ENV_SH = REPO / "scripts" / "env.sh"


LOCAL_PASSPHRASE = "local-only-passphrase"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # The stack selected is `local`: only a command line naming no other stack gets the passphrase.
        ("up", LOCAL_PASSPHRASE),
        ("config set --secret postgresql:password x", LOCAL_PASSPHRASE),
        ("up --stack local", LOCAL_PASSPHRASE),
        ("preview -s local-prod --diff", LOCAL_PASSPHRASE),
        ("config set --secret postgresql:password x --stack=local", LOCAL_PASSPHRASE),
        ("up -slocal", LOCAL_PASSPHRASE),
        ("up -s=local-prod", LOCAL_PASSPHRASE),
        ("stack select local-prod", LOCAL_PASSPHRASE),
        ("up -s organization/supabase-access/local", LOCAL_PASSPHRASE),
        ("config set --secret postgresql:password x --stack prod", ""),
        ("config set --secret postgresql:password x -sprod", ""),
        ("config set --secret postgresql:password x -s=prod", ""),
        ("config set --secret postgresql:password x --stack=prod", ""),
        ("up -s dev", ""),
        ("up -ys prod", ""),
        ("up -ysprod", ""),
        ("stack init prod", ""),
        ("stack init --secrets-provider passphrase prod", ""),
        ("stack init --stack prod", ""),
        ("stack init -s prod", ""),
        ("stack init", ""),  # pulumi asks for the name
        ("new", ""),
        ("stack select prod", ""),
        ("stack select --create --stack prod", ""),
        ("-C . stack select prod", ""),
        ("-v 9 stack init prod", ""),
        ("stack rename prod", ""),
        ("stack init local --copy-config-from prod", ""),
        ("config cp --dest prod", ""),
        ("config cp -dprod", ""),
        ("up -s local -s prod", ""),
        ("up --stack org/other/local", ""),
    ],
)
def test_env_sh_gives_the_local_passphrase_to_local_stacks_only(args: str, expected: str, tmp_path: Path) -> None:
    # With `local` selected, as in the reports (`pulumi stack init prod` got the local passphrase).
    assert passphrase_from_env_sh(f"supabase_access_current_stack() {{ echo local; }} && {args}", tmp_path) == expected


def test_env_sh_leaves_a_passphrase_chosen_later_alone(tmp_path: Path) -> None:
    assert passphrase_from_env_sh("export PULUMI_CONFIG_PASSPHRASE=mine && -s local", tmp_path) == ""


def passphrase_from_env_sh(setup_and_args: str, tmp_path: Path) -> str:
    """What scripts/env.sh's `pulumi` passes as passphrase: `<shell setup> && <pulumi arguments>`."""
    import os
    import subprocess

    if not (REPO / ".venv" / ".pulumi-bin-dir").exists():
        pytest.fail("run scripts/bootstrap first", pytrace=False)
    setup, _, args = setup_and_args.rpartition(" && ")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "SUPABASE_ACCESS_LOCAL"))}
    script = f'source "{ENV_SH}" && test -z "${{PULUMI_CONFIG_PASSPHRASE:-}}" && {setup or "true"} '
    script += f"&& supabase_access_passphrase_for {args}"
    environ["PULUMI_HOME"] = str(tmp_path)
    result = subprocess.run(["bash", "-c", script], env=environ, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize(
    ("pending", "destroyed"), [(["creating", "updating"], False), (["updating"], True), ([], True)]
)
def test_env_sh_refuses_a_destroy_that_would_leave_pending_creates_behind(
    pending: list[str], destroyed: bool, tmp_path: Path
) -> None:
    import json
    import os
    import subprocess

    if not (REPO / ".venv" / ".pulumi-bin-dir").exists():
        pytest.fail("run scripts/bootstrap first", pytrace=False)
    # A pulumi that answers `stack export` with the pending operations and records any other command.
    export = {"deployment": {"pending_operations": [{"type": kind, "resource": {}} for kind in pending]}}
    fake = tmp_path / "bin" / "pulumi"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        f"if [ \"$1 $2\" = 'stack export' ]; then echo '{json.dumps(export)}'\n"
        f'else echo "ran $*" >> {tmp_path}/ran; fi\n'
    )
    fake.chmod(0o755)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "SUPABASE_ACCESS_LOCAL"))}
    environ["PULUMI_HOME"] = str(tmp_path)
    script = f'source "{ENV_SH}" && export PATH="{fake.parent}:$PATH" && pulumi destroy --yes -s local'
    result = subprocess.run(["bash", "-c", script], env=environ, capture_output=True, text=True, check=False)
    ran = (tmp_path / "ran").read_text() if (tmp_path / "ran").exists() else ""
    if destroyed:
        assert result.returncode == 0, result.stderr
        assert ran == "ran destroy --yes -s local\n"
    else:
        assert result.returncode == 1 and ran == ""
        assert "1 create(s) an interrupted run left pending" in result.stderr
        assert "scripts/recover [stack] --destroy" in result.stderr


def test_an_extra_policy_with_an_unknown_key_lists_every_key_an_entry_takes() -> None:
    entry = {"command": "SELECT", "roles": ["authenticated"], "using": "true", "restrictive": True}
    with pytest.raises(ConfigError) as info:
        parse({"extraPolicies": {"sessions": {"members_only": entry}}})
    message = str(info.value)
    assert message.startswith("supabase-access:extraPolicies.sessions.members_only.restrictive: unknown key")
    assert "known: command, roles, permissive, using, withCheck, replaces, widens" in message
    assert "a restrictive policy is `permissive: false`" in message


def read(config: dict[str, str], secret: frozenset[str] = frozenset()):
    """The one reader, as the program and the access review call it: raw `pulumi config` strings."""
    config = {"postgresql:host": "127.0.0.1", **config}
    return read_stack_settings(config.get, {key: key in secret for key in config}, project_dir=REPO)


def test_one_reader_reads_every_setting_from_pulumi_config_strings() -> None:
    settings = read(
        {
            "supabase-access:environment": "prod",
            "supabase-access:forceRls": "True",
            "supabase-access:schemas": '["public", "api"]',
            "supabase-access:definerObjects": '["public.stats"]',
            "supabase-access:writeQuotas": '{"sessions": {"perHour": 20}}',
            "supabase-access:retention": '{"anonymousUsersDays": 30}',
            "supabase-access:permanentUsersOnly": '{"sessions": ["insert"]}',
            "supabase-access:projectRef": "abcdefghijklmnopqrst",
            "supabase-access:authSettings": '{"rate_limit_otp": 30}',
            "supabase-access:accessToken": "token",
            "postgresql:port": "54322",
        },
        secret=frozenset({"supabase-access:accessToken"}),
    )
    assert (settings.environment, settings.profile, settings.force_rls) == ("prod", "owner", True)
    assert settings.exposed_schemas == ("public", "api")
    assert settings.definer_objects == ("public.stats",)
    assert settings.connection.port == 54322
    assert [(q.table, q.limit) for q in settings.hardening.write_quotas] == [("sessions", 20)]
    assert settings.hardening.retention is not None and settings.hardening.retention.anonymous_users_days == 30
    assert settings.hardening.permanent_users_only == {"sessions": ("INSERT",)}
    assert settings.auth is not None and settings.auth.declared and settings.auth.settings == {"rate_limit_otp": 30}
    assert read({"supabase-access:environment": "dev"}).auth is None


@pytest.mark.parametrize(
    ("key", "raw", "message"),
    [
        ("forceRls", "yes", "supabase-access:forceRls: expected true or false, got 'yes'"),
        ("schemas", "[public", "supabase-access:schemas: not valid JSON"),
        (
            "enviroment",
            "dev",
            "supabase-access:enviroment: unknown setting (did you mean supabase-access:environment?)",
        ),
        ("retention", '{"sessionsDays": 0}', "supabase-access:retention.sessionsDays: expected a whole number"),
    ],
)
def test_the_reader_names_the_bad_setting(key: str, raw: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        read({"supabase-access:environment": "dev", f"supabase-access:{key}": raw})
    assert message in str(info.value)


BAD_VALUES = {
    "environment": "staging",
    "profile": "everyone",
    "allowOpenProfileInProd": "sure",
    "model": "[]",
    "modelFile": "no-such-model.yaml",
    "forceRls": "1",
    "extraPolicies": "[]",
    "projectRef": "Not-A-Ref",
    "managementApiUrl": "ftp://api",
    "authSettings": '{"no_such_setting": 1}',
    "writeQuotas": "[]",
    "retention": "[]",
    "permanentUsersOnly": "[]",
    "schemas": "{}",
    "definerObjects": "{}",
    "buckets": "[]",
}


@pytest.mark.parametrize("key", [key for key in KNOWN_KEYS if key != "accessToken"])
def test_every_known_key_is_read_by_the_one_reader(key: str) -> None:
    """No drift between what the program, the matrix and the review read: each key's bad value is refused."""
    config = {"supabase-access:environment": "prod", f"supabase-access:{key}": BAD_VALUES[key]}
    if key == "allowOpenProfileInProd":
        config["supabase-access:profile"] = "open"
    with pytest.raises(ConfigError) as info:
        read(config, secret=frozenset({"supabase-access:accessToken"}))
    assert f"supabase-access:{key}" in str(info.value)
