"""AccessPreflight: checks everything the other resources need before any of them runs.

The other resources depend on it, so when a table is missing, an expression does not
parse or the database cannot be reached, `up` stops before anything is applied.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.sql import Composed

from supabase_access.model.access_model import ModelError, parse_column_rules, parse_model, suggested_entry
from supabase_access.model.buckets import BUCKET_ID
from supabase_access.model.connection import CONNECTION_SETTINGS
from supabase_access.model.policy import PolicySpec, policy_from_plain
from supabase_access.provider import claims, ledger, specs
from supabase_access.provider.base import (
    CHECK_LOG,
    CURRENT_STACK,
    InputError,
    Log,
    PlainDatabaseResource,
    identifier,
    not_importable,
    raise_collected,
)
from supabase_access.provider.resources.group_functions import prelude_for
from supabase_access.provider.resources.table_policies import NORMALIZED, added_columns, rendered_policies
from supabase_access.sql import catalog
from supabase_access.sql import statements as render
from supabase_access.sql.database import Database
from supabase_access.sql.errors import PolicyRejectedError
from supabase_access.sql.transaction import write_transaction
from supabase_access.sql.widening_probe import Cell, probe_widening

TABLE_COMMANDS = ("SELECT", "INSERT", "UPDATE", "DELETE")
# Roles a request from the API can take: a write policy for them that admits every row opens the table.
API_ROLES = frozenset({"anon", "authenticated", "public"})


class AccessPreflight(PlainDatabaseResource):
    spec = specs.ACCESS_PREFLIGHT

    # Not the shared check: the preflight is the gate, so it asks the database on every preview (one round trip).
    def check(self, db: Database, olds: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
        schema = identifier(inputs, "schema", "public")
        source = str(inputs.get("source") or "the access model")
        tables = [identifier({"tables": t}, "tables") for t in inputs.get("tables") or []]
        roles = [identifier({"roles": r}, "roles") for r in inputs.get("roles") or []]
        raw_policies = inputs.get("policies") or {}
        if not isinstance(raw_policies, dict):
            raise InputError("policies", f"{source}: policies: expected a map of table to policies")
        policies_by_table = {
            # Not a map: named below, with the table.
            table: rendered_policies(schema, raw) if isinstance(raw, Mapping) else raw
            for table, raw in raw_policies.items()
        }
        # Where each policy was declared, e.g. {"sessions.p": "supabase-access:extraPolicies.sessions.p"}.
        policy_settings = inputs.get("policySettings") or {}
        # Columns the stack adds before the policies that name them (owner copies).
        added = added_columns(inputs.get("addedColumns"))
        # Independent problems are collected, so one preview names them all (each with its fix).
        problems: list[InputError] = []
        with db.connection() as conn:
            # On every preview (the database can be reached, the tables and roles are there): one round trip.
            missing, missing_roles = catalog.missing_tables_and_roles(conn, schema, tables, roles)
            if missing:
                named = ", ".join(f"{schema}.{t}" for t in missing)
                problems.append(InputError("tables", f"{source}: table(s) {named} do not exist in the database"))
            if missing_roles:
                problems.append(
                    InputError("roles", f"{source}: role(s) {', '.join(missing_roles)} do not exist in the database")
                )
            present = [t for t in tables if t not in missing]
            # Else PostgreSQL refuses the ALTERs half way through `up`, or ignores a REVOKE with a warning.
            foreign = catalog.tables_not_alterable(conn, schema, present)
            if foreign:
                login = catalog.current_user(conn)
                owned = "; ".join(f"{schema}.{t} is owned by {owner}" for t, owner in foreign.items())
                problems.append(
                    InputError(
                        "tables",
                        f"{source}: the login role {login} ({CONNECTION_SETTINGS['username']}) "
                        f"cannot alter every table: {owned}. Log in as the owner, or grant the owner role to the "
                        "login role (`grant <owner> to <login role>`)",
                    )
                )
            # One stack per table: another stack's table is refused here and again under its lock at apply.
            taken = claims.others(conn, schema, present)
            if taken:
                problems.append(InputError("tables", f"{source}: {claims.refusal(schema, taken)}"))
            _collect(problems, lambda: _check_may_create_private_schema(conn))
            rules = inputs.get("columnRules") or {}
            if rules:
                problems.extend(_column_rule_problems(conn, schema, rules, source, skip=[*missing, *foreign]))
            exposed = [identifier({"exposedSchemas": s}, "exposedSchemas") for s in inputs.get("exposedSchemas") or []]
            if exposed:
                uncovered, found = catalog.exposed_surface(conn, exposed, schema, tables)
                if uncovered:
                    uncovered = _not_managed_elsewhere(conn, uncovered)
                fail = inputs.get("uncoveredTables") == "fail"
                if uncovered:
                    _collect(problems, lambda: _report_uncovered(uncovered, schema, tables, source, fail=fail))
                buckets = catalog.uncovered_buckets(conn, [str(b) for b in inputs.get("buckets") or []])
                if buckets:
                    _collect(problems, lambda: _report_uncovered_buckets(buckets, source, fail=fail))
                declared = set(inputs.get("definerObjects") or [])
                owner_rights = [o for o in found if o.qualified not in declared]
                if owner_rights:
                    _collect(problems, lambda: _report_owner_rights(conn, owner_rights, fail=fail))
            old_policies = olds.get("policies") or {} if olds.get("schema") == schema else {}
            # Role -> privileges this stack grants on every table (roles not here keep the database's grants),
            # and per table where a table's access kind grants otherwise.
            grants = inputs.get("grants")
            table_grants = inputs.get("tableGrants") or {}
            if not isinstance(table_grants, Mapping):
                raise InputError("tableGrants", "tableGrants: expected a map of table to role privileges")
            refuse_open_writes = inputs.get("refuseOpenWrites") is True
            same_rules = all(
                olds.get(k) == inputs.get(k) for k in ("grants", "tableGrants", "refuseOpenWrites", "addedColumns")
            )
            # The group helper functions the policies call: made in each parse's rolled-back transaction.
            prelude = _group_helper_prelude(schema, inputs.get("groupHelpers"))
            if prelude and not all(old_policies.get(t) == raw for t, raw in policies_by_table.items()):
                _check_prelude(conn, prelude, source)
            for table, raw in policies_by_table.items():
                if not isinstance(raw, Mapping):
                    raise InputError("policies", f"{source}: policies.{table}: expected a map of policy name to policy")
                if table in missing or table in foreign or (old_policies.get(table) == raw and same_rules):
                    continue  # said above (the login role may not even read it), or accepted exactly before

                def setting(name: str, table: str = table) -> str:
                    return str(policy_settings.get(f"{table}.{name}") or f"{source}: policy {table}.{name}")

                try:
                    specs = {name: policy_from_plain(name, spec, setting=setting(name)) for name, spec in raw.items()}
                    normalized = NORMALIZED.get(conn, schema, table, raw, specs, prelude, added)
                except ModelError as exc:
                    problems.append(InputError("policies", str(exc)))
                    continue
                except PolicyRejectedError as exc:
                    problems.append(
                        InputError("policies", f"{setting(exc.policy)}: PostgreSQL rejected the policy: {exc.message}")
                    )
                    continue
                try:
                    _check_roles_hold_grants(conn, schema, table, normalized, table_grants.get(table, grants), setting)
                    if refuse_open_writes:
                        _check_no_open_writes(conn, schema, table, normalized, setting, prelude, added)
                except InputError as exc:
                    problems.append(exc)
            # The probe plays the stack's policies on its tables: only once the rest holds.
            raise_collected(problems)
            if refuse_open_writes and not (same_rules and _same_widening_inputs(olds, inputs, policies_by_table)):
                _check_no_widening(conn, inputs, policies_by_table, policy_settings, grants, table_grants, prelude)
        # The rendered SQL, not the rules' data, is what state keeps and previews show.
        return {**inputs, "schema": schema, "policies": policies_by_table}

    def diff_live(self, db: Database, state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, str]:
        # Its checks are done in check, which the engine runs on every preview and update. What
        # it changes: the claim on each table (a stack made before claims gets them at its next `up`).
        tables = list(inputs.get("tables") or [])
        with db.connection() as conn:
            found = claims.read(conn, inputs["schema"], tables)
        stack = CURRENT_STACK.get()
        grants = _claimed_grants(inputs)
        if any((found.get(t) or {}) != {"stack": stack, "grants": grants[t]} for t in tables):
            return {"tables": "update"}
        return {}

    def _claim(self, db: Database, inputs: dict[str, Any], state: Mapping[str, Any]) -> None:
        """Under the ledger's lock: each table claimed for this stack, or refused naming the stack that
        has it; a table the model no longer has is released (its resources are deleted after this).

        Not under the tables' locks: claims are serialised by the ledger's (the private schema's)
        lock, and a stack's first `up` must not wait for every table before changing any.
        """
        schema = inputs["schema"]
        tables = list(inputs.get("tables") or [])
        dropped = [t for t in state.get("tables") or [] if t not in tables] if state.get("schema") == schema else []
        with write_transaction(db) as conn:
            claims.claim(conn, schema, _claimed_grants(inputs))
            if dropped:
                claims.release(conn, schema, dropped)

    def create(self, db: Database, inputs: dict[str, Any], log: Log) -> tuple[str, dict[str, Any]]:
        self._claim(db, inputs, {})
        return f"preflight.{inputs['schema']}", _outputs(inputs)

    def update(self, db: Database, state: dict[str, Any], inputs: dict[str, Any], log: Log) -> dict[str, Any]:
        self._claim(db, inputs, state)
        return _outputs(inputs)

    def delete(self, db: Database, state: dict[str, Any], log: Log) -> None:
        # Last of the stack's resources (they all depend on it): its claims go, then the ledger if empty.
        schema, tables = state.get("schema") or "public", list(state.get("tables") or [])
        with write_transaction(db) as conn:
            claims.release(conn, schema, tables)
        ledger.tidy(db)

    def read(
        self, db: Database, resource_id: str, state: dict[str, Any], inputs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        if not state:
            raise not_importable("AccessPreflight", "it checks the model against the database and makes nothing")
        return state, inputs


def _collect(problems: list[InputError], check: Callable[[], None]) -> None:
    try:
        check()
    except InputError as exc:
        problems.append(exc)


EXPOSED_SCHEMAS_SETTING = "supabase-access:schemas"


def _report_uncovered(
    uncovered: list[catalog.ExposedTable], schema: str, tables: list[str], source: str, *, fail: bool
) -> None:
    """Tables the Data API exposes that the model leaves out: each with the model line to add."""
    # A table may hang under another uncovered one (comments -> tasks -> projects): guess in rounds.
    # A path beats an owner column (see suggested_entry), so a table that references another table
    # still waiting for its line waits too, unless nothing else can move.
    known, lines = tuple(tables), {}
    candidates = [t for t in uncovered if t.schema == schema]
    while True:
        waiting = {t.table for t in candidates if t.table not in lines}
        found = {}
        for patient in (True, False):
            found = {
                t.table: line
                for t in candidates
                if t.table in waiting
                and not (patient and _references(t, schema, waiting - {t.table}))
                and (line := suggested_entry(t.table, t.foreign_keys, schema, known)) is not None
            }
            if found:
                break
        if not found:
            break
        lines.update(found)
        known = (*known, *found)
    described = []
    for t in uncovered:
        state = "RLS on" if t.rls else "RLS off"
        if t.schema != schema:
            hint = f"the model describes schema {schema} only: take {t.schema} out of {EXPOSED_SCHEMAS_SETTING}"
        elif t.table in lines:
            hint = f"add `{lines[t.table]}`"
        else:
            hint = (
                "no column references auth.users or a table of the model: give it an owner column "
                f"(`{t.table}: {{owner: <column>}}`), declare it `{t.table}: {{publicRead: true}}` (everyone "
                f"signed in reads, the server writes) or `{t.table}: {{serviceOnly: true}}` (the server alone), "
                "or move it out of the exposed schemas"
            )
        described.append(f"{t.schema}.{t.table} ({state}): {hint}")
    where = f"under `tables:` in {source}"
    message = (
        f"{EXPOSED_SCHEMAS_SETTING}: the Data API exposes {len(uncovered)} table(s) the model does not cover, so "
        f"nothing here controls who reaches them (Supabase's default privileges give anon and authenticated "
        f"everything on a new table). Add them {where}: " + "; ".join(described)
    )
    if fail:
        raise InputError("tables", f"{message}. A prod stack applies nothing until every exposed table is covered")
    log = CHECK_LOG.get()
    if log is not None:
        log(message)


def _report_uncovered_buckets(buckets: list[tuple[str, bool]], source: str, *, fail: bool) -> None:
    """Storage buckets the model leaves out: whoever wrote their policies on storage.objects decides who
    reaches their files. Each with the model line to add."""

    def line(bucket: str, public: bool) -> str:
        if not BUCKET_ID.match(bucket):
            return f"{bucket!r}: the model takes lower-case ids of letters, digits, - and _ (rename the bucket)"
        if public:
            return f"add `{bucket}: {{publicRead: true, public: true}}`"
        return f"add `{bucket}: {{owner: folder}}` (or member: {{group}}, publicRead, serviceOnly)"

    message = (
        f"storage.buckets holds {len(buckets)} bucket(s) the model does not cover, so nothing here controls who "
        f"reaches their files. Add them under `buckets:` in {source}: "
        + "; ".join(f"{bucket}: {line(bucket, public)}" for bucket, public in buckets)
    )
    if fail:
        raise InputError("buckets", f"{message}. A prod stack applies nothing until every bucket is covered")
    log = CHECK_LOG.get()
    if log is not None:
        log(message)


def _group_helper_prelude(schema: str, raw: object) -> list[Composed]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(entry, Mapping) for entry in raw):
        raise InputError("groupHelpers", "groupHelpers: expected a list of membership tables' group functions")
    return prelude_for(schema, raw)


def _check_prelude(conn: psycopg.Connection, prelude: Sequence[Composed], source: str) -> None:
    try:
        with conn.transaction(force_rollback=True):
            for statement in prelude:
                conn.execute(statement)
    except psycopg.Error as exc:
        raise InputError(
            "groupHelpers",
            f"{source}: PostgreSQL refused the functions that give each user's groups (for the membership "
            f"tables' policies): {exc.diag.message_primary or exc}",
        ) from exc


def _references(table: catalog.ExposedTable, schema: str, others: set[str]) -> bool:
    return any(ref_schema == schema and ref_table in others for _, ref_schema, ref_table, _ in table.foreign_keys)


DEFINER_OBJECTS_SETTING = "supabase-access:definerObjects"


def _report_owner_rights(conn: psycopg.Connection, found: list[catalog.OwnerRightsObject], *, fail: bool) -> None:
    """Views and functions through which API callers act with their owner's rights, past RLS."""

    def fix(o: catalog.OwnerRightsObject) -> str:
        name = sql.Identifier(o.schema, o.name).as_string(conn)
        if o.kind == "view":
            return f"`alter view {name} set (security_invoker = on)`"
        if o.kind == "function":
            return (
                f"`alter function {name}({o.arguments}) security invoker`, or "
                f"`revoke execute on function {name}({o.arguments}) from public, anon, authenticated`"
            )
        return f"`revoke select on {name} from anon, authenticated` (it has no row-level security)"

    described = "; ".join(
        f"{o.kind} {o.qualified}{f'({o.arguments})' if o.kind == 'function' else ''}: {fix(o)}" for o in found
    )
    message = (
        f"{EXPOSED_SCHEMAS_SETTING}: {len(found)} object(s) in the exposed schemas let anon or authenticated act "
        f"with their owner's rights, so no policy of the model applies to what they reach: {described}. Or, "
        f"if that is meant, declare each in {DEFINER_OBJECTS_SETTING} (`schema.name`)"
    )
    if fail:
        raise InputError("definerObjects", f"{message}. A prod stack applies nothing until each is fixed or declared")
    log = CHECK_LOG.get()
    if log is not None:
        log(message)


WIDENS_KEY = "widens"


def _same_widening_inputs(olds: Mapping[str, Any], inputs: Mapping[str, Any], policies: Mapping[str, Any]) -> bool:
    """The probe proved exactly these policies, model and declarations before: no need to ask again."""
    keys = ("model", "widenings", "replacedPolicies", "policySettings", "schema")
    return olds.get("policies") == policies and all(olds.get(k) == inputs.get(k) for k in keys)


def _check_no_widening(
    conn: psycopg.Connection,
    inputs: Mapping[str, Any],
    policies_by_table: Mapping[str, Any],
    policy_settings: Mapping[str, str],
    grants: object,
    table_grants: Mapping[str, Any],
    prelude: Sequence[Composed],
) -> None:
    """On prod, no extra permissive policy may let a persona reach rows the table's kind does not give
    them, unless its entry declares `widens`: proved by probing (sql.widening_probe), not by its text."""
    source = str(inputs.get("source") or "the access model")
    raw_model = inputs.get("model")
    if raw_model is None:
        return  # a program from before the probe, or no extra permissive policy to judge
    try:
        model = parse_model(raw_model, setting="model")
    except ModelError as exc:
        raise InputError("model", str(exc)) from exc
    widenings = inputs.get("widenings") or {}
    replaced = inputs.get("replacedPolicies") or {}
    if not isinstance(widenings, Mapping) or not isinstance(replaced, Mapping):
        raise InputError("widenings", "widenings and replacedPolicies: expected maps")
    schema = model.schema
    base: dict[str, dict[str, PolicySpec]] = {}
    candidates: dict[str, dict[str, PolicySpec]] = {}
    for table in model.table_names:
        raw = policies_by_table.get(table) or {}
        originals = rendered_policies(schema, replaced.get(table) or {})
        assert isinstance(raw, Mapping) and isinstance(originals, Mapping)  # checked by the parse above
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
    default_grants = grants if isinstance(grants, Mapping) else {}
    role_grants = {t: dict(table_grants.get(t) or default_grants) for t in model.table_names}
    try:
        report = probe_widening(
            conn, model, base, candidates, role_grants, prelude, added_columns(inputs.get("addedColumns"))
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
        return str(policy_settings.get(f"{table}.{name}") or f"policy {table}.{name}")

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
        table, _, name = str(key).partition(".")
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


def _not_managed_elsewhere(
    conn: psycopg.Connection, uncovered: list[catalog.ExposedTable]
) -> list[catalog.ExposedTable]:
    """The tables outside the model that no other stack on the database manages (those are covered by its model)."""
    elsewhere = {
        (s, t) for s in {u.schema for u in uncovered} for t in claims.others(conn, s, [u.table for u in uncovered])
    }
    return [u for u in uncovered if (u.schema, u.table) not in elsewhere]


def _claimed_grants(inputs: Mapping[str, Any]) -> dict[str, dict[str, list[str]]]:
    """table -> role -> the privileges this stack's Grants give there (what a claim records)."""
    grants = inputs.get("grants") or {}
    table_grants = inputs.get("tableGrants") or {}
    return {
        t: {str(r): list(p or []) for r, p in sorted((table_grants.get(t, grants) or {}).items())}
        for t in inputs.get("tables") or []
    }


def _check_may_create_private_schema(conn: psycopg.Connection) -> None:
    """Every stack keeps its ledger in the private schema: the login role must be able to make both."""
    schema = ledger.LEDGER_SCHEMA
    exists, on_database, on_schema, has_ledger = catalog.private_schema_rights(conn, schema, render.LEDGER_TABLE)
    login, setting = conn.info.user, CONNECTION_SETTINGS["username"]
    if not exists and not on_database:
        raise InputError(
            "tables",
            f"{setting}: the login role {login} may not create schemas in this database, and the stack keeps what "
            f"destroy restores in schema {schema}, which does not exist yet. Grant it (`grant create on database "
            f"{conn.info.dbname} to {login}`, as Supabase does for postgres) or create the schema as another role",
        )
    if exists and not has_ledger and not on_schema:
        raise InputError(
            "tables",
            f"{setting}: the login role {login} may not create tables in schema {schema}, where the stack keeps "
            f"what destroy restores. Grant it (`grant create on schema {schema} to {login}`)",
        )


def _column_rule_problems(
    conn: psycopg.Connection, schema: str, rules: Mapping[str, Any], source: str, *, skip: Sequence[str]
) -> list[InputError]:
    """Each column a rule names exists in its table; a readOnly column gets a value without the client."""
    tables = [t for t in rules if t not in skip]
    defaults = catalog.column_defaults(conn, schema, tables)
    problems = []
    for table in tables:
        columns = defaults.get(table, {})
        try:
            parsed = parse_column_rules(rules[table], f"{source}: tables.{table}")
        except ModelError as exc:
            problems.append(InputError("columnRules", str(exc)))
            continue
        named = {
            "readOnly": parsed.read_only,
            "immutable": parsed.immutable,
            **{f"hidden.{role}": cols for role, cols in parsed.hidden},
        }
        for key, cols in named.items():
            unknown = [c for c in cols if c not in columns]
            if unknown:
                problems.append(
                    InputError(
                        "columnRules",
                        f"{source}: tables.{table}.{key}: {schema}.{table} has no column {', '.join(unknown)} "
                        f"(its columns: {', '.join(columns)})",
                    )
                )
        for column in parsed.read_only:
            if column in columns and not columns[column]:
                problems.append(
                    InputError(
                        "columnRules",
                        f"{source}: tables.{table}.readOnly: {column} has no default, and the API may never set it. "
                        f"Give it one (`alter table {schema}.{table} alter column {column} set default auth.uid()` "
                        "for who wrote the row; a column a trigger fills needs one too, which the trigger overrides)",
                    )
                )
    return problems


def _outputs(inputs: dict[str, Any]) -> dict[str, Any]:
    # Not the policies again: the engine rewrites the whole state file after every step, so a
    # second copy of every table's policies would cost each step of a large stack.
    return {"schema": inputs["schema"], "tables": inputs.get("tables") or []}


def _needed_privileges(command: str) -> tuple[str, ...]:
    # A FOR ALL policy is of use as soon as the role holds any one of the commands.
    return TABLE_COMMANDS if command == "ALL" else (command,)


def _check_roles_hold_grants(
    conn: psycopg.Connection,
    schema: str,
    table: str,
    policies: Mapping[str, PolicySpec],
    grants: object,
    setting: Callable[[str], str],
) -> None:
    """A policy for a role that cannot run its command on the table never applies: likely a mistake."""
    managed = grants if isinstance(grants, Mapping) else {}
    for name, policy in policies.items():
        needed = _needed_privileges(policy.command)
        in_database = {}
        for role in policy.roles:
            if role == "public":
                continue
            if role in managed:
                if not set(needed) & set(managed[role] or ()):
                    held = ", ".join(managed[role] or ()) or "no privileges"
                    raise InputError(
                        "policies",
                        f"{setting(name)}.roles: {role} has no {' or '.join(needed)} grant on {schema}.{table} "
                        f"(this stack grants {role} {held}), so the policy would never apply. "
                        f"Remove {role} from the policy's roles, or use a profile that grants it",
                    )
            else:
                in_database[role] = needed
        for role in catalog.roles_lacking_privilege(conn, schema, table, in_database):
            raise InputError(
                "policies",
                f"{setting(name)}.roles: {role} has no {' or '.join(needed)} grant on {schema}.{table} in the "
                f"database, so the policy would never apply. Remove {role} from the policy's roles, or grant it",
            )


def _check_no_open_writes(
    conn: psycopg.Connection,
    schema: str,
    table: str,
    policies: Mapping[str, PolicySpec],
    setting: Callable[[str], str],
    prelude: Sequence[Composed] = (),
    added: catalog.AddedColumns | None = None,
) -> None:
    """On prod, no permissive write policy for the API's roles may admit every row (asked of PostgreSQL's planner)."""
    expressions = {}
    for name, policy in policies.items():
        if policy.permissive and policy.command != "SELECT" and API_ROLES & set(policy.roles):
            for part, expression in (("using", policy.using), ("withCheck", policy.with_check)):
                if expression is not None:
                    expressions[(name, part)] = expression
    keys = list(expressions)
    folded = catalog.expressions_folded_to_true(
        conn, schema, table, {str(i): expressions[key] for i, key in enumerate(keys)}, prelude, added
    )
    for index in folded:
        name, part = keys[int(index)]
        policy = policies[name]
        raise InputError(
            "policies",
            f"{setting(name)}.{part}: on a prod stack a {policy.command} policy for "
            f"{', '.join(sorted(API_ROLES & set(policy.roles)))} may not admit every row, and PostgreSQL reduces "
            f"`{expressions[(name, part)]}` to constant true. Check the row (e.g. its owner column against "
            "(select auth.uid())), or make the policy restrictive (permissive: false)",
        )
