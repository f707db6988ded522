"""Quiet means quiet: a first prod `up` of a 10-table app, as scripts/up shows it (Pulumi's output through
review/quiet_up.py, then the compact matrix), fits a screen with what changed and every message that needs
action, each said once."""

from __future__ import annotations

import json
import re
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg.conninfo import make_conninfo

from review.matrix import compute_matrix
from review.quiet_up import quiet
from supabase_access.model.access_model import parse_model
from tests.support.engine import new_stack
from tests.support.localdb import create_database_from_template, drop_database
from tests.support.teams_app import TEAMS_APP, load_teams_app

pytestmark = pytest.mark.e2e

SCREEN = 60
# The teams app's eight tables and two more: an owner table and one three hops below a group.
MORE_TABLES = """
set role postgres;
create table invoices (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references auth.users on delete cascade,
  total numeric
);
create table attachments (
  id uuid primary key default gen_random_uuid(),
  comment_id uuid not null references comments on delete cascade,
  url text
);
reset role;
"""


def ten_table_model() -> dict[str, object]:
    model = yaml.safe_load((TEAMS_APP / "access-model.yaml").read_text())
    model["tables"]["invoices"] = {"owner": "user_id"}
    model["tables"]["attachments"] = {"through": {"column": "comment_id", "table": "comments"}, "write": "members"}
    return model


def test_a_first_up_of_a_ten_table_app_fits_a_screen(
    localdb_url: str, localdb_admin_conninfo: str, tmp_path: Path
) -> None:
    name = create_database_from_template(localdb_admin_conninfo)
    dsn = make_conninfo(localdb_url, dbname=name)
    try:
        load_teams_app(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(MORE_TABLES)
        model = ten_table_model()
        config = {
            "supabase-access:environment": "prod",
            "supabase-access:profile": "owner",
            "supabase-access:model": json.dumps(model),
        }
        stack = new_stack(tmp_path / "prod", "prod", dsn, config)
        # What scripts/up runs (its quiet form), line by line: `pulumi up` previews, then updates.
        raw: list[str] = []
        flags = {"color": "never", "refresh": True, "suppress_outputs": True, "suppress_progress": True}
        stack.preview(on_output=raw.append, **flags)  # type: ignore[arg-type]
        stack.up(on_output=raw.append, **flags)  # type: ignore[arg-type]
        pulumi_lines = "\n".join(raw).splitlines()
        shown: list[str] = []
        quiet(pulumi_lines, shown.append)
        matrix = compute_matrix(dsn, parse_model(model, setting="test model"))
        shown += ["Access matrix of the database:", *matrix.render_compact().splitlines()]
    finally:
        drop_database(localdb_admin_conninfo, name)
    screen = "\n".join(shown)
    print(f"{len(pulumi_lines)} lines from pulumi up; {len(shown)} shown:\n{screen}")
    assert len(shown) <= SCREEN, screen
    # What changed: every resource type created, with Pulumi's own summary.
    created = {m["type"]: m for m in re.finditer(r"^ \+  (?P<type>\S+)(?: ×(?P<n>\d+))? created", screen, re.M)}
    assert created["supabase-access:index:RowLevelSecurity"]["n"] == "10"
    assert created["supabase-access:index:TablePolicies"]["n"] == "10"
    # anon or authenticated where the table's kind gives them rows, and service_role on every table.
    assert created["postgresql:index:Grant"]["n"] == "30"
    assert re.search(r"^    \+ \d+ created$", screen, re.M)
    # What needs action: every message of the raw output, each said once.
    messages = {line.strip() for line in pulumi_lines if line.strip().startswith("warning:")}
    messages |= {m.group(1) for line in pulumi_lines if (m := re.search(r" (warning: .*)$", line))}
    assert messages
    for message in messages:
        assert screen.count(message) == 1, message
    # The matrix, one line per table.
    assert sum(1 for line in shown if line.startswith(("attachments ", "invoices "))) == 2
