"""What the Data API exposes beyond the model: tables of the exposed schemas the model leaves out,
Storage buckets it does not cover, tables Realtime publishes without a kind, and views and functions
that act with their owner's rights. Each
reported with the model line or statement that fixes it; a prod stack (`uncoveredTables: fail`) stops."""

from __future__ import annotations

from collections.abc import Collection, Mapping

import psycopg
from psycopg import sql

from supabase_access.model.access_model import suggested_entry
from supabase_access.model.buckets import BUCKET_ID
from supabase_access.model.realtime import PUBLICATION
from supabase_access.provider import claims
from supabase_access.provider.base import CHECK_LOG, InputError
from supabase_access.provider.specs import AccessPreflightInputs as Inputs
from supabase_access.sql import catalog

EXPOSED_SCHEMAS_SETTING = "supabase-access:schemas"
DEFINER_OBJECTS_SETTING = "supabase-access:definerObjects"


def exposed_problems(conn: psycopg.Connection, checked: Inputs, problems: list[InputError]) -> None:
    """Add to `problems` what the exposed schemas (and Storage) hold beyond the model, where it fails
    the preview; otherwise it is a warning."""
    schema, tables, source = checked.schema, list(checked.tables), checked.source
    fail = checked.uncovered_tables == "fail"
    # Realtime sends a published table's changes to whoever its grants and policies admit: it needs a kind.
    kindless = catalog.kindless_published_tables(conn, PUBLICATION, schema, tables, checked.published or ())
    if kindless:
        kindless = _not_managed_elsewhere(conn, kindless)
    uncovered: list[catalog.ExposedTable] = []
    found: list[catalog.OwnerRightsObject] = []
    buckets: list[catalog.BucketVisibility] = []
    if checked.exposed_schemas:
        uncovered, found = catalog.exposed_surface(conn, checked.exposed_schemas, schema, tables)
        if uncovered:
            uncovered = _not_managed_elsewhere(conn, uncovered)
        buckets = catalog.uncovered_buckets(conn, checked.buckets or ())
    published = {(t.schema, t.table) for t in kindless}
    # Named once: a kindless published table the Data API exposes is in the exposed tables' report.
    kindless = [t for t in kindless if t not in uncovered]
    declared = set(checked.definer_objects or ())
    owner_rights = [o for o in found if o.qualified not in declared]
    for report in (
        (lambda: report_uncovered(uncovered, schema, tables, source, fail=fail, published=published))
        if uncovered
        else None,
        (lambda: _report_kindless_published(conn, kindless, schema, tables, source, fail=fail)) if kindless else None,
        (lambda: _report_uncovered_buckets(buckets, source, fail=fail)) if buckets else None,
        (lambda: _report_owner_rights(conn, owner_rights, fail=fail)) if owner_rights else None,
    ):
        if report is None:
            continue
        try:
            report()
        except InputError as exc:
            problems.append(exc)


def _warn_or_fail(property: str, message: str, refusal: str, *, fail: bool) -> None:
    if fail:
        raise InputError(property, f"{message}. {refusal}")
    log = CHECK_LOG.get()
    if log is not None:
        log(message)


def report_uncovered(
    uncovered: list[catalog.ExposedTable],
    schema: str,
    tables: list[str],
    source: str,
    *,
    fail: bool,
    published: Collection[tuple[str, str]] = (),
) -> None:
    """Tables the Data API exposes that the model leaves out: each with the model line to add."""
    hint = f"take {{schema}} out of {EXPOSED_SCHEMAS_SETTING}"
    described = _with_lines(uncovered, schema, tables, other_schema=hint, published=published)
    where = f"under `tables:` in {source}"
    message = (
        f"{EXPOSED_SCHEMAS_SETTING}: the Data API exposes {len(uncovered)} table(s) the model does not cover, so "
        f"nothing here controls who reaches them (Supabase's default privileges give anon and authenticated "
        f"everything on a new table). Add them {where}: " + "; ".join(described)
    )
    refusal = "A prod stack applies nothing until every exposed table is covered"
    _warn_or_fail("tables", message, refusal, fail=fail)


def _report_kindless_published(
    conn: psycopg.Connection,
    kindless: list[catalog.ExposedTable],
    schema: str,
    tables: list[str],
    source: str,
    *,
    fail: bool,
) -> None:
    """Tables in supabase_realtime (or the model's realtime.publish) without a kind: each with its line. A
    partitioned table is named (its partitions are its rows); the statement that takes it out names what
    was added: the table, or the partitions published alone."""
    hint = f"take it out of the publication (`alter publication {PUBLICATION} drop table {{table}}`)"
    members = catalog.published_members(conn, PUBLICATION, [(t.schema, t.table) for t in kindless])
    described = _with_lines(
        kindless,
        schema,
        tables,
        other_schema=hint,
        published=(),
        instead="take it out of the publication",
        members={f"{s}.{t}": ", ".join(names) for (s, t), names in members.items()},
    )
    message = (
        f"realtime.publish: {PUBLICATION} publishes {len(kindless)} table(s) the model gives no kind, so nothing "
        "here decides who receives their row changes (Realtime sends each to every subscriber the table's own "
        f"grants and policies admit). Add them under `tables:` in {source}: " + "; ".join(described)
    )
    refusal = "A prod stack applies nothing until every published table has a kind"
    _warn_or_fail("published", message, refusal, fail=fail)


def _with_lines(
    uncovered: list[catalog.ExposedTable],
    schema: str,
    tables: list[str],
    *,
    other_schema: str,
    published: Collection[tuple[str, str]],
    instead: str = "move it out of the exposed schemas",
    members: Mapping[str, str] | None = None,
) -> list[str]:
    """Each table with the model line to add (guessed from its foreign keys), or what to do instead;
    `other_schema` (with {schema} and {table}) for a table outside the model's schema; `members`: what
    {table} reads for a qualified name (its partitions published alone), when not the name itself."""
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
        state = ("RLS on" if t.rls else "RLS off") + (
            f", published to {PUBLICATION}" if (t.schema, t.table) in published else ""
        )
        if t.schema != schema:
            qualified = f"{t.schema}.{t.table}"
            named = (members or {}).get(qualified, qualified)
            hint = f"the model describes schema {schema} only: " + other_schema.format(schema=t.schema, table=named)
        elif t.table in lines:
            hint = f"add `{lines[t.table]}`"
        else:
            hint = (
                "no column references auth.users or a table of the model: give it an owner column "
                f"(`{t.table}: {{owner: <column>}}`), declare it `{t.table}: {{publicRead: true}}` (everyone "
                f"signed in reads, the server writes) or `{t.table}: {{serviceOnly: true}}` (the server alone), "
                f"or {instead}"
            )
        described.append(f"{t.schema}.{t.table} ({state}): {hint}")
    return described


def _report_uncovered_buckets(buckets: list[catalog.BucketVisibility], source: str, *, fail: bool) -> None:
    """Storage buckets the model leaves out: whoever wrote their policies on storage.objects decides who
    reaches their files. Each with the model line to add."""

    def line(bucket: catalog.BucketVisibility) -> str:
        if not BUCKET_ID.match(bucket.id):
            return f"{bucket.id!r}: the model takes lower-case ids of letters, digits, - and _ (rename the bucket)"
        if bucket.public:
            return f"add `{bucket.id}: {{publicRead: true, public: true}}`"
        return f"add `{bucket.id}: {{owner: folder}}` (or member: {{group}}, publicRead, serviceOnly)"

    message = (
        f"storage.buckets holds {len(buckets)} bucket(s) the model does not cover, so nothing here controls who "
        f"reaches their files. Add them under `buckets:` in {source}: "
        + "; ".join(f"{bucket.id}: {line(bucket)}" for bucket in buckets)
    )
    _warn_or_fail("buckets", message, "A prod stack applies nothing until every bucket is covered", fail=fail)


def _references(table: catalog.ExposedTable, schema: str, others: set[str]) -> bool:
    return any(fk.referenced_schema == schema and fk.referenced_table in others for fk in table.foreign_keys)


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
    refusal = "A prod stack applies nothing until each is fixed or declared"
    _warn_or_fail("definerObjects", message, refusal, fail=fail)


def _not_managed_elsewhere(
    conn: psycopg.Connection, uncovered: list[catalog.ExposedTable]
) -> list[catalog.ExposedTable]:
    """The tables outside the model that no other stack on the database manages (those are covered by its model)."""
    elsewhere = {
        (s, t) for s in {u.schema for u in uncovered} for t in claims.others(conn, s, [u.table for u in uncovered])
    }
    return [u for u in uncovered if (u.schema, u.table) not in elsewhere]
