"""On prod, no extra permissive policy may let a persona reach rows the table's kind does not give them,
unless its entry declares `widens`: proved by probing (sql.widening_probe), not by its text."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg.sql import Composed

from supabase_access.model.access_model import ModelError, parse_model
from supabase_access.model.policy import PolicySpec, policy_from_plain
from supabase_access.provider.base import CHECK_LOG, InputError
from supabase_access.provider.resources.table_policies import added_columns, rendered_policies
from supabase_access.provider.specs import AccessPreflightInputs as Inputs
from supabase_access.sql.widening_probe import Cell, probe_widening

WIDENS_KEY = "widens"


def same_widening_inputs(olds: Inputs, checked: Inputs) -> bool:
    """The probe proved exactly these policies, model and declarations before: no need to ask again."""
    return (olds.policies, olds.model, olds.widenings, olds.replaced_policies, olds.policy_settings, olds.schema) == (
        checked.policies,
        checked.model,
        checked.widenings,
        checked.replaced_policies,
        checked.policy_settings,
        checked.schema,
    )


def check_no_widening(conn: psycopg.Connection, checked: Inputs, prelude: Sequence[Composed]) -> None:
    """Probe the extra permissive policies (`policySettings` names them) as the API's personas: refuse one
    that gives rows the table's kind does not, unless `widenings` declares it; log what is not proved."""
    source = checked.source
    if checked.model is None:
        return  # a program from before the probe, or no extra permissive policy to judge
    try:
        model = parse_model(checked.model, setting="model")
    except ModelError as exc:
        raise InputError("model", str(exc)) from exc
    widenings = checked.widenings or {}
    replaced = checked.replaced_policies or {}
    policy_settings = checked.policy_settings
    schema = model.schema
    base: dict[str, dict[str, PolicySpec]] = {}
    candidates: dict[str, dict[str, PolicySpec]] = {}
    for table in model.table_names:
        raw = checked.policies.get(table) or {}
        originals = rendered_policies(schema, replaced.get(table) or {})
        base[table] = {}
        candidates[table] = {}
        for name, spec in raw.items():
            policy = policy_from_plain(name, spec, setting=f"policies.{table}.{name}")
            if f"{table}.{name}" in policy_settings and policy.permissive:
                candidates[table][name] = policy
                if name in originals:
                    base[table][name] = policy_from_plain(name, originals[name], setting=f"replaced {table}.{name}")
            else:
                base[table][name] = policy
    by_table = checked.table_grants or {}
    role_grants = {t: dict(by_table.get(t) or checked.grants) for t in model.table_names}
    try:
        report = probe_widening(
            conn, model, base, candidates, role_grants, prelude, added_columns(checked.added_columns)
        )
    except psycopg.errors.LockNotAvailable as exc:
        raise InputError(
            "policySettings",
            f"{source}: the widening probe of the extra policies waited longer than lock_timeout for the tables of "
            f"the model (another transaction holds them: {exc.diag.message_primary}); preview again",
        ) from exc
    except psycopg.Error as exc:
        raise InputError(
            "policySettings",
            f"{source}: the widening probe of the extra policies failed ({exc.diag.message_primary or exc}), so "
            "they are not proved to widen nothing; fix the cause and preview again",
        ) from exc
    log = CHECK_LOG.get()

    def setting(table: str, name: str) -> str:
        return policy_settings.get(f"{table}.{name}") or f"policy {table}.{name}"

    for (table, name), cells in report.widened.items():
        found = _described(cells)
        why = widenings.get(f"{table}.{name}")
        if why is None:
            # Named by policySettings, the input that holds the extra policies' settings.
            raise InputError(
                "policySettings",
                f"{setting(table, name)}: on a prod stack an extra policy may not give rows the access kind of "
                f"{schema}.{table} does not, and the preflight's probe (requests as PostgREST makes them, in a "
                f"rolled-back transaction) found: {found}. Check the row (e.g. its owner column against "
                "(select auth.uid())), make the policy restrictive (permissive: false), or declare "
                f'`{WIDENS_KEY}: "<why>"` on the entry if that is meant',
            )
        if log is not None:
            log(f"{setting(table, name)} widens access as declared ({WIDENS_KEY}: {why!r}): {found}")
    for key, why in widenings.items():
        table, _, name = key.partition(".")
        if (table, name) not in report.widened and table not in report.unprobed and log is not None:
            log(
                f"{setting(table, name)} declares `{WIDENS_KEY}` ({why!r}), but the probe found no row it gives beyond "
                f"the access kind of {schema}.{table}: the declaration can go"
            )
    if log is None:
        return
    for table, reason in report.unprobed.items():
        names = sorted(candidates.get(table.split(" ")[0], {}))
        if names:
            where = ", ".join(setting(table.split(" ")[0], name) for name in names)
            log(
                f"{where}: the widening probe could not check {schema}.{table} ({reason}), so it is not proved to "
                "give nothing beyond the table's access kind; review it by hand"
            )
    for (table, name), stopped in report.inconclusive.items():
        cell, error = stopped[0]
        log(
            f"{setting(table, name)}: the probe could not tell whether {cell.describe()} ({len(stopped)} probe(s) "
            f"stopped by something other than a policy, e.g. {error}); review the policy by hand"
        )


def _described(cells: Sequence[Cell], shown: int = 3) -> str:
    text = "; ".join(c.describe() for c in cells[:shown])
    return text + (f" (and {len(cells) - shown} more)" if len(cells) > shown else "")
