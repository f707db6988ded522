"""AccessRules: the grants, RLS, policies, constraint removals and policy lookup indexes one access plan declares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_postgresql as postgresql
import pulumi_supabase_access as supabase_access

from components.column_grants import column_grants, table_wide, withheld_columns
from supabase_access.model.access_model import DeclaredFunction, column_rules_to_plain
from supabase_access.model.owner_copy import COLUMN_TYPE, type_of
from supabase_access.model.policy_lookups import PolicyLookup, policy_lookups
from supabase_access.model.profiles import (
    API_ROLES,
    TABLE_COMMANDS,
    AccessPlan,
    TableAccess,
)
from supabase_access.model.rule_data import DeclaredPolicy, declared_to_plain, group_lookup_to_plain, rule_to_plain


@dataclass
class AccessRulesArgs:
    plan: AccessPlan
    # The database the grants are in (pulumi_postgresql.Grant names it).
    database: str
    # Where the model came from, named in preflight errors (e.g. "supabase-access:modelFile (access-model.yaml)").
    source: str
    force_rls: bool = False
    # Extra policies per table (for example restrictive ones), added to the plan's.
    extra_policies: dict[str, tuple[DeclaredPolicy, ...]] = field(default_factory=dict)
    # The setting that holds extra_policies, named in errors.
    extra_policies_setting: str = "supabase-access:extraPolicies"
    # The setting of an extra policy declared elsewhere ("table.policy" -> setting, e.g. permanentUsersOnly).
    policy_settings: dict[str, str] = field(default_factory=dict)
    # Prod: refuse permissive write policies for the API's roles that admit every row.
    refuse_open_writes: bool = False
    # The schemas the Data API exposes; every table in them must be in the model.
    exposed_schemas: tuple[str, ...] = ("public",)
    # Prod: a table outside the model in those schemas stops the preview (else a warning).
    refuse_uncovered_tables: bool = False
    # Views and functions of those schemas declared to run with their owner's rights ("schema.name").
    definer_objects: tuple[str, ...] = ()
    # Prod: objects created later in the exposed schemas give the API roles nothing (default privileges).
    born_closed: bool = False
    # The model's Storage buckets (ids): every other bucket of the database fails (prod) or warns, as tables do.
    buckets: tuple[str, ...] = ()
    # The model's `realtime.publish`: one without a kind (outside `tables:`) fails (prod) or warns.
    published: tuple[str, ...] = ()
    # The model's `functions:`: what the API may call in the exposed schemas (prod closes every other).
    functions: tuple[DeclaredFunction, ...] = ()
    # The model (as plain data), for the preflight's widening probe of the extra policies (prod).
    model: dict[str, Any] | None = None
    # "table.policy" -> why, for the extra policies declared to widen access (`widens:`).
    widenings: Mapping[str, str] = field(default_factory=dict)
    # table -> its columns in the database, for the tables with column rules (their Grants name columns).
    table_columns: Mapping[str, Sequence[str]] = field(default_factory=dict)


# The roles that create objects in a Supabase project's schemas and that the login role may speak
# for (supabase_admin's defaults only a superuser may change: see README, "Born closed").
OBJECT_CREATORS = ("postgres",)
# pulumi_postgresql.DefaultPrivileges object types closed for the API roles.
CLOSED_OBJECT_TYPES = ("table", "sequence", "function")


@dataclass(frozen=True)
class PolicyData:
    """The policies one plan declares, as the provider takes them (rules as data, rendered to SQL there)."""

    # table -> policy name -> policy, the profile's rules and the extra policies.
    policies: dict[str, dict[str, dict[str, Any]]]
    # table -> the names of its extra policies.
    extra_names: dict[str, set[str]]
    # table -> the generated policies an extra one replaces (the widening probe judges it against them).
    replaced: dict[str, dict[str, dict[str, Any]]]
    # table -> column -> type of the owner copies (the model's copyOwner; the owner profile only): the
    # policies that read one are checked as if it were there already, and applied once it is.
    added_columns: dict[str, dict[str, str]]

    @classmethod
    def of(cls, plan: AccessPlan, extra_policies: Mapping[str, tuple[DeclaredPolicy, ...]]) -> PolicyData:
        extra_names = {table: {p.name for p in specs} for table, specs in extra_policies.items()}
        return cls(
            policies={
                access.table: {rule.name: rule_to_plain(rule) for rule in access.rules}
                | {p.name: declared_to_plain(p) for p in extra_policies.get(access.table, ())}
                for access in plan.tables
            },
            extra_names=extra_names,
            replaced={
                a.table: {r.name: rule_to_plain(r) for r in a.rules if r.name in extra_names.get(a.table, ())}
                for a in plan.tables
            },
            added_columns={
                copy.table: {copy.column: type_of(copy.root_table, copy.root_column) if copy.group else COLUMN_TYPE}
                for copy in plan.owner_copies
            },
        )

    @property
    def tables(self) -> list[str]:
        return list(self.policies)


class AccessRules(pulumi.ComponentResource):
    """Give it, in `opts.providers`, a supabase-access provider and a pulumi_postgresql one.

    Each kind of resource has its builder below, declared in dependency order; the names and parents
    never change (stacks hold them).
    """

    def __init__(self, name: str, args: AccessRulesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("supabase-access:components:AccessRules", name, None, opts)
        self._args = args
        self._plan = args.plan
        self._schema = args.plan.schema
        self._data = PolicyData.of(args.plan, args.extra_policies)
        self._preflight = self._declare_preflight(name)
        self.group_functions = self._declare_group_functions()
        self.row_level_security = self._declare_row_level_security()
        self.sequence_privileges = self._declare_sequence_privileges()
        self.owner_copies = self._declare_owner_copies()
        self.policies = self._declare_policies()
        self.constraint_removals, self.kept_constraints = self._declare_constraints()
        self.grants = self._declare_grants()
        self.column_grants = self._declare_column_grants()
        self.immutable_columns = self._declare_immutable_columns()
        self.policy_indexes = self._declare_policy_indexes()
        self.rls_for_new_tables, self.default_privileges = self._declare_born_closed()
        self.function_privileges = self._declare_function_privileges()
        self.register_outputs(self._outputs())

    def _after(self, *resources: pulumi.Resource) -> pulumi.ResourceOptions:
        """A child that waits for the preflight and `resources`."""
        return pulumi.ResourceOptions(parent=self, depends_on=[self._preflight, *resources])

    def _declare_preflight(self, name: str) -> supabase_access.AccessPreflight:
        args, plan, data = self._args, self._plan, self._data
        # The probe is only asked when there is an extra permissive policy to judge (prod).
        probed = args.refuse_open_writes and any(p.permissive for specs in args.extra_policies.values() for p in specs)
        roles = sorted(
            {r for specs in data.policies.values() for p in specs.values() for r in p["roles"]} | set(plan.grants)
        )
        return supabase_access.AccessPreflight(
            f"{name}-preflight",
            schema=self._schema,
            tables=data.tables,
            roles=roles,
            policies=data.policies,
            source=args.source,
            policy_settings={
                f"{table}.{p.name}": args.policy_settings.get(
                    f"{table}.{p.name}", f"{args.extra_policies_setting}.{table}.{p.name}"
                )
                for table, specs in args.extra_policies.items()
                for p in specs
            },
            grants=plan.grants,
            refuse_open_writes=args.refuse_open_writes,
            exposed_schemas=args.exposed_schemas,
            uncovered_tables="fail" if args.refuse_uncovered_tables else "warn",
            buckets=list(args.buckets) or None,
            published=list(args.published) or None,
            table_grants={a.table: a.grants for a in plan.tables if a.grants is not None} or None,
            group_helpers=[group_lookup_to_plain(lookup) for lookup in plan.group_lookups] or None,
            # Left out when none, so stacks made before the setting existed see no change.
            # Definer functions declared in the model's functions: are meant, as definerObjects' are.
            definer_objects=[*args.definer_objects, *(f.qualified for f in args.functions)] or None,
            added_columns=data.added_columns or None,
            model=args.model if probed else None,
            widenings=dict(args.widenings) or None,
            replaced_policies={t: r for t, r in data.replaced.items() if r} or None,
            column_rules={t: column_rules_to_plain(r) for t, r in plan.column_rules} or None,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _declare_group_functions(self) -> list[supabase_access.GroupFunctions]:
        """The functions that tell group rows' policies which groups the user belongs to: before the policies."""
        return [
            supabase_access.GroupFunctions(
                f"{lookup.membership_table}-group-functions",
                opts=self._after(),
                schema=self._schema,
                force_rls=True if self._args.force_rls else None,
                membership_table=lookup.membership_table,
                group=lookup.membership.group,
                column=lookup.membership.column,
                user=lookup.membership.user,
                key=lookup.membership.key,
                group_owner_column=lookup.group_owner_column,
                helper_schema=lookup.helper_schema,
                admins=list(lookup.membership.admins),
                role=lookup.membership.role,
            )
            for lookup in self._plan.group_lookups
        ]

    def _declare_row_level_security(self) -> dict[str, supabase_access.RowLevelSecurity]:
        plan = self._plan
        return {
            table: supabase_access.RowLevelSecurity(
                f"{table}-rls",
                schema=self._schema,
                table=table,
                force=self._args.force_rls,
                # service_role included: it holds what its Grant declares on both platforms (the legacy
                # one gave it TRUNCATE, ... too); destroy gives back what each held before.
                revoke_unguarded_from=sorted(plan.grants),
                revoke_undeclared=_undeclared(_table_wide_grants(plan, table)) or None,
                withheld_columns=withheld_columns(sorted(plan.grants), plan.columns_of(table)) or None,
                opts=self._after(),
            )
            for table in self._data.tables
        }

    def _declare_sequence_privileges(self) -> dict[str, supabase_access.SequencePrivileges]:
        """Sequences follow their table: USAGE on those its defaults call for the roles that may insert,
        nothing else for any role of the plan (after RLS: the table is closed first)."""
        plan = self._plan
        return {
            table: supabase_access.SequencePrivileges(
                f"{table}-sequence-privileges",
                schema=self._schema,
                table=table,
                roles=sorted(plan.grants),
                usage=sorted(r for r, p in plan.grants_on(table).items() if "INSERT" in p),
                opts=self._after(self.row_level_security[table]),
            )
            for table in self._data.tables
        }

    def _declare_owner_copies(self) -> dict[str, supabase_access.OwnerCopy]:
        """Each after RLS on its tables (the copy's column and triggers take those tables' locks), and
        before the policies that read it."""
        return {
            copy.table: supabase_access.OwnerCopy(
                f"{copy.table}-{copy.column}-{'group' if copy.group else 'owner'}-copy",
                schema=self._schema,
                table=copy.table,
                column=copy.column,
                path=[{"table": h.table, "column": h.column, "parent": h.parent, "key": h.key} for h in copy.hops],
                root_column=copy.root_column,
                group=copy.group or None,
                opts=self._after(*(self.row_level_security[t] for t in (copy.table, *(h.parent for h in copy.hops)))),
            )
            for copy in self._plan.owner_copies
        }

    def _declare_policies(self) -> dict[str, supabase_access.TablePolicies]:
        data = self._data
        copies_read = {access.table: _copies_read(access, set(self.owner_copies)) for access in self._plan.tables}
        return {
            table: supabase_access.TablePolicies(
                f"{table}-policies",
                schema=self._schema,
                table=table,
                policies=data.policies[table],
                added_columns={t: data.added_columns[t] for t in copies_read.get(table, ())} or None,
                # Policies go in only once RLS is on, so the table is never open in between.
                opts=self._after(
                    self.row_level_security[table],
                    *self.group_functions,
                    *(self.owner_copies[t] for t in copies_read.get(table, ())),
                ),
            )
            for table in data.tables
        }

    def _declare_constraints(
        self,
    ) -> tuple[list[supabase_access.ConstraintRemoval], list[supabase_access.ConstraintPresence]]:
        """The open profile's removed user foreign keys; the owner profile keeps them present (re-created
        if someone dropped them)."""
        schema = self._schema
        removals = [
            supabase_access.ConstraintRemoval(
                f"{table}-{constraint}-removal", schema=schema, table=table, constraint=constraint, opts=self._after()
            )
            for table, constraint in self._plan.removed_constraints
        ]
        kept = [
            supabase_access.ConstraintPresence(
                f"{kept.table}-{kept.constraint}-presence",
                schema=schema,
                table=kept.table,
                constraint=kept.constraint,
                columns=[kept.column],
                on_delete=kept.on_delete,
                opts=self._after(),
            )
            for kept in self._plan.kept_constraints
        ]
        return removals, kept

    def _constraint_changes_of(self, table: str) -> list[pulumi.Resource]:
        plan = self._plan
        return [
            *(r for (t, _), r in zip(plan.removed_constraints, self.constraint_removals, strict=True) if t == table),
            *(r for k, r in zip(plan.kept_constraints, self.kept_constraints, strict=True) if k.table == table),
        ]

    def _declare_grants(self) -> dict[tuple[str, str], postgresql.Grant]:
        """One Grant per role and table: adding a table adds Grants and changing privileges updates
        in place (revoke and grant in one transaction), so no change replaces a grant and no
        moment passes with other access than the old or the new. After RLS: the table is closed
        (and its unguarded privileges revoked) before any privilege is declared, and after the
        table's policies and constraint changes (concurrent catalog updates of one table fail)."""
        plan = self._plan
        return {
            (role, table): postgresql.Grant(
                f"{role}-{table}-grant",
                role=role,
                database=self._args.database,
                schema=self._schema,
                object_type="table",
                objects=[table],
                privileges=privileges,
                opts=self._after(
                    self.row_level_security[table], self.policies[table], *self._constraint_changes_of(table)
                ),
            )
            for role in plan.grants
            for table in self._data.tables
            for privileges in (_table_wide_grants(plan, table)[role],)
        }

    def _declare_column_grants(self) -> dict[tuple[str, str, str], postgresql.Grant]:
        """A table with column rules: the privileges they narrow, column by column (components/column_grants)."""
        plan = self._plan
        return {
            (role, table, privilege): grant
            for (role, table), table_grant in self.grants.items()
            if plan.columns_of(table)
            for privilege, grant in column_grants(
                role=role,
                table=table,
                schema=self._schema,
                database=self._args.database,
                privileges=plan.grants_on(table)[role],
                rules=plan.columns_of(table),
                columns=self._args.table_columns,
                table_grant=table_grant,
                parent=self,
            ).items()
        }

    def _declare_immutable_columns(self) -> dict[str, supabase_access.ImmutableColumns]:
        """Immutable columns: a trigger refuses their change where column privileges cannot see it (a
        definer function the API calls). After RLS on the table, which it locks."""
        return {
            table: supabase_access.ImmutableColumns(
                f"{table}-immutable-columns",
                schema=self._schema,
                table=table,
                columns=list(rules.immutable),
                opts=self._after(self.row_level_security[table]),
            )
            for table, rules in self._plan.column_rules
            if rules.immutable
        }

    def _declare_policy_indexes(self) -> dict[PolicyLookup, supabase_access.PolicyIndex]:
        """One covering index per lookup the policies make. A concurrent index build waits for every
        older transaction, so it must not run beside a change to its own table (RLS, policies) or
        to the grants: such a change would wait for the build's lock and the build for it."""
        lookups = policy_lookups(self._plan)
        return {
            lookup: supabase_access.PolicyIndex(
                _lookup_resource_name(lookup, lookups),
                schema=self._schema,
                table=lookup.table,
                column=lookup.column,
                include=lookup.include,
                opts=self._after(
                    self.row_level_security[lookup.table],
                    self.policies[lookup.table],
                    *self.grants.values(),
                    *self.column_grants.values(),
                    *self.sequence_privileges.values(),
                    *self.immutable_columns.values(),
                ),
            )
            for lookup in lookups
        }

    def _declare_born_closed(
        self,
    ) -> tuple[supabase_access.RlsForNewTables | None, dict[tuple[str, str, str, str], postgresql.DefaultPrivileges]]:
        """Born closed: what postgres creates later in an exposed schema gives anon and authenticated
        nothing until declared (Supabase's defaults give them everything). The baseline remembers
        the defaults found, and destroy puts them back after the DefaultPrivileges revoke.
        After the Grants, never beside them: pulumi-postgresql locks a role and then its members, a
        Grant its role's (anon: authenticator, postgres), a DefaultPrivileges its owner's (postgres:
        authenticator where Storage's migration made authenticator a member of postgres, as on a
        database built from Supabase's SQL), so the two in parallel deadlock."""
        args = self._args
        default_privileges: dict[tuple[str, str, str, str], postgresql.DefaultPrivileges] = {}
        if not args.born_closed:
            return None, default_privileges
        rls_for_new_tables = supabase_access.RlsForNewTables(
            "rls-for-new-tables", schemas=args.exposed_schemas, opts=self._after()
        )
        # The server's defaults are the platform's: born closed is for the API's callers.
        api_roles = sorted(set(self._plan.grants) & set(API_ROLES))
        for owner in OBJECT_CREATORS:
            for exposed in args.exposed_schemas:
                baseline = supabase_access.DefaultPrivilegesBaseline(
                    f"{owner}-{exposed}-default-privileges-baseline",
                    owner=owner,
                    schema=exposed,
                    roles=api_roles,
                    opts=self._after(),
                )
                for role in api_roles:
                    for object_type in CLOSED_OBJECT_TYPES:
                        default_privileges[owner, exposed, role, object_type] = postgresql.DefaultPrivileges(
                            f"{owner}-{exposed}-{role}-{object_type}-defaults",
                            database=args.database,
                            owner=owner,
                            schema=exposed,
                            role=role,
                            object_type=object_type,
                            privileges=[],
                            opts=self._after(baseline, *self.grants.values(), *self.column_grants.values()),
                        )
        return rls_for_new_tables, default_privileges

    def _declare_function_privileges(self) -> list[supabase_access.FunctionPrivileges]:
        """The functions of each exposed schema: those of the model for the roles it names, every other
        closed to the API roles and PUBLIC on prod (named at every preview on dev), service_role all."""
        args, plan = self._args, self._plan
        return [
            supabase_access.FunctionPrivileges(
                f"{exposed}-function-privileges",
                schema=exposed,
                roles=sorted(set(plan.grants) & set(API_ROLES)),
                server=sorted(set(plan.grants) - set(API_ROLES)),
                declared={f.name: list(f.roles) for f in args.functions if f.schema == exposed},
                # The deprecated definerObjects' functions stay as they are (see __main__'s warning).
                unmanaged=sorted({o.split(".", 1)[1] for o in args.definer_objects if o.split(".", 1)[0] == exposed})
                or None,
                enforce=args.born_closed,
                opts=self._after(),
            )
            for exposed in args.exposed_schemas
        ]

    def _outputs(self) -> dict[str, Any]:
        args, plan, data = self._args, self._plan, self._data
        table_grants = {a.table: {r: list(p) for r, p in a.grants.items()} for a in plan.tables if a.grants}
        # The stack's own extra policies and the widenings it declares, for the policy pack's static check.
        extras = {t: sorted(names) for t, names in data.extra_names.items() if names}
        return (
            ({"tableGrants": table_grants} if table_grants else {})
            | (
                {"columnRules": {t: column_rules_to_plain(r) for t, r in plan.column_rules}}
                if plan.column_rules
                else {}
            )
            | ({"extraPolicies": extras} if extras else {})
            | ({"widenings": dict(args.widenings)} if args.widenings else {})
            | {
                "profile": plan.profile,
                "tables": data.tables,
                "policyNames": {t: sorted(p) for t, p in data.policies.items()},
                "grants": {role: list(p) for role, p in plan.grants.items()},
                "removedConstraints": [f"{t}.{c}" for t, c in plan.removed_constraints],
                "keptConstraints": [f"{k.table}.{k.constraint}" for k in plan.kept_constraints],
                "policyIndexes": [
                    f"{lookup.table} ({lookup.column}) include ({lookup.include})" for lookup in self.policy_indexes
                ],
                "ownerCopies": [f"{c.table}.{c.column}" for c in plan.owner_copies],
            }
        )


def _table_wide_grants(plan: AccessPlan, table: str) -> dict[str, list[str]]:
    """role -> the privileges it holds on the whole table (column rules narrow the rest column by column)."""
    rules = plan.columns_of(table)
    return {role: table_wide(privileges, role, rules) for role, privileges in plan.grants_on(table).items()}


def _undeclared(grants: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Role -> the commands a role may not run on a table it may partly use: a Grant's first apply
    revokes only what it declares (a role given none gets REVOKE ALL), so these are taken first."""
    return {
        role: [c for c in TABLE_COMMANDS if c not in privileges]
        for role, privileges in grants.items()
        if privileges and set(TABLE_COMMANDS) - set(privileges)
    }


def _copies_read(access: TableAccess, copies: set[str]) -> tuple[str, ...]:
    """The tables among `copies` whose copied column (of the owner, or of the group: the end of a group
    path) the table's rules compare."""
    read = {
        path.root_table
        for rule in access.rules
        for predicate in (rule.using, rule.with_check)
        if predicate is not None
        for path in predicate.owner_paths(groups=True)
    }
    return tuple(sorted(read & copies))


def _lookup_resource_name(lookup: PolicyLookup, lookups: tuple[PolicyLookup, ...]) -> str:
    """`<table>-<column>-lookup-index`, naming the included column too only where two lookups share both."""
    shared = sum(1 for other in lookups if (other.table, other.column) == (lookup.table, lookup.column))
    middle = lookup.column if shared == 1 else f"{lookup.column}-{lookup.include}"
    return f"{lookup.table}-{middle}-lookup-index"
