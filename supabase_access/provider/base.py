"""What every resource of the provider implements, and helpers they share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar, cast

import psycopg

from supabase_access.model.access_model import ModelError, check_identifier
from supabase_access.provider.spec import Props, PropsError, ResourceSpec
from supabase_access.sql import catalog
from supabase_access.sql.database import Database

# The stack of the engine call at work (from its URN), for the marks on what we create. The
# server sets it per call; threads started with asyncio.to_thread see the caller's value.
CURRENT_STACK: ContextVar[str] = ContextVar("CURRENT_STACK", default="")

# Messages for the user, next to the resource: warnings unless they are a Notice.
Log = Callable[[str], None]

# Where `check` (which runs on every preview) may say something without failing; the server sets it per call.
CHECK_LOG: ContextVar[Log | None] = ContextVar("CHECK_LOG", default=None)


class Notice(str):
    """A message that reports what was done (shown as info), not something to act on (a warning)."""


class InputError(ValueError):
    """Bad input for one property; `property` is the input's name as the user wrote it."""

    def __init__(self, property: str, reason: str) -> None:
        super().__init__(reason)
        self.property = property
        self.reason = reason


class InputProblemsError(InputError):
    """Several independent problems found in one check: the preview lists each, so one run shows them all."""

    def __init__(self, errors: Sequence[InputError]) -> None:
        super().__init__(errors[0].property, "; ".join(error.reason for error in errors))
        self.errors = list(errors)


def raise_collected(problems: Sequence[InputError]) -> None:
    """Raise the one problem as it is, several as InputProblemsError, none: nothing."""
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise InputProblemsError(problems)


@dataclass
class Diff:
    replaces: list[str] = field(default_factory=list)
    # property path -> "add" | "delete" | "update"
    changes: dict[str, str] = field(default_factory=dict)

    @property
    def has_changes(self) -> bool:
        return bool(self.replaces or self.changes)


class Resource:
    """What every resource shares: its spec (specs.py) gives its token and the inputs whose change replaces it."""

    spec: ClassVar[ResourceSpec]
    token: ClassVar[str]
    # Inputs whose change cannot be applied in place (from the spec).
    replace_on: ClassVar[tuple[str, ...]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "spec" in cls.__dict__:
            cls.token = cls.spec.token
            cls.replace_on = cls.spec.replace_on

    def replaced(self, state: Mapping[str, Any], inputs: Mapping[str, Any]) -> list[str]:
        return [k for k in self.replace_on if state.get(k) != inputs.get(k)]


class DatabaseSteps(Resource, ABC):
    """The steps the provider runs on a resource that lives in the database, as the engine hands them:
    plain data keyed by the wire's property names. Each step gets the provider's connections (`db`)."""

    @abstractmethod
    def check(self, db: Database, olds: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]: ...

    @abstractmethod
    def diff(self, db: Database, state: dict[str, Any], inputs: dict[str, Any]) -> Diff: ...

    @abstractmethod
    def create(self, db: Database, inputs: dict[str, Any], log: Log) -> tuple[str, dict[str, Any]]: ...

    @abstractmethod
    def update(self, db: Database, state: dict[str, Any], inputs: dict[str, Any], log: Log) -> dict[str, Any]: ...

    @abstractmethod
    def delete(self, db: Database, state: dict[str, Any], log: Log) -> None: ...

    @abstractmethod
    def read(
        self, db: Database, resource_id: str, state: dict[str, Any], inputs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(outputs, inputs) as the database has them now, or None if the object is gone."""


InputsT = TypeVar("InputsT", bound=Props)
StateT = TypeVar("StateT", bound=Props)


class TypedEdge(Resource, Generic[InputsT, StateT]):
    """Where a typed resource meets the engine: its spec is declared by two frozen dataclasses (inputs, and
    state, which holds the inputs too; `ResourceSpec.typed`). The engine's plain data is parsed into them
    once, here, and what goes back is made plain again (`wire`)."""

    inputs_type: type[InputsT]
    state_type: type[StateT]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        spec = cls.__dict__.get("spec")
        if spec is not None:
            assert spec.inputs_type and spec.state_type, f"{spec.name}: declare its spec with ResourceSpec.typed"
            cls.inputs_type = cast(Any, spec.inputs_type)
            cls.state_type = cast(Any, spec.state_type)

    def parse_inputs(self, values: dict[str, Any]) -> InputsT:
        try:
            return self.inputs_type.from_wire(values)
        except PropsError as exc:
            raise InputError(exc.property, exc.reason) from None

    def parse_state(self, values: dict[str, Any]) -> StateT:
        try:
            return self.state_type.from_wire(values)
        except PropsError as exc:
            raise InputError(exc.property, exc.reason) from None

    def _known_inputs(self, values: dict[str, Any]) -> InputsT | None:
        """Earlier checked inputs (olds, or what a refresh is given), or None when there are none to read."""
        if not values:
            return None
        try:
            return self.inputs_type.from_wire(values)
        except PropsError:
            return None

    def replaced_props(self, was: StateT, wanted: InputsT) -> list[str]:
        """The replacing inputs (the spec's) whose value changed."""
        return [
            p.name
            for p in self.spec.inputs
            if p.replaces and getattr(was, p.python_name) != getattr(wanted, p.python_name)
        ]

    def wire(self, values: Props) -> dict[str, Any]:
        """Inputs or state as plain data for the engine (a resource with secrets inside a map marks them here)."""
        return values.to_wire()


class DatabaseResource(DatabaseSteps, TypedEdge[InputsT, StateT]):
    """A resource that lives in the database, typed (TypedEdge): the steps hand the resource's hooks objects.

    normalize (no database) and validate (new or changed inputs only) make `check`; `diff_live`;
    on_create, on_read, on_update, on_delete.
    """

    # What the inputs mean depends on the database, which changes without them (say the functions of a
    # schema): `validate` runs at every check, not only for new or changed inputs.
    validate_every_check: ClassVar[bool] = False

    def check(self, db: Database, olds: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
        """Validate and return the inputs; raise InputError naming the property.

        The inputs are normalised, and the database is asked (`validate`) only when they differ
        from the last apply's: those passed then, and diff reads the live state anyway.
        """
        checked = self.normalize(self.parse_inputs(inputs))
        previous = self._known_inputs(olds)
        if checked != previous or self.validate_every_check:
            self.validate(db, previous, checked)
        return checked.to_wire()

    def diff(self, db: Database, state: dict[str, Any], inputs: dict[str, Any]) -> Diff:
        was, wanted = self.parse_state(state), self.parse_inputs(inputs)
        replaces = self.replaced_props(was, wanted)
        if replaces:
            return Diff(replaces=replaces)
        return Diff(changes=self.diff_live(db, was, wanted))

    def create(self, db: Database, inputs: dict[str, Any], log: Log) -> tuple[str, dict[str, Any]]:
        resource_id, state = self.on_create(db, self.parse_inputs(inputs), log)
        return resource_id, state.to_wire()

    def update(self, db: Database, state: dict[str, Any], inputs: dict[str, Any], log: Log) -> dict[str, Any]:
        return self.on_update(db, self.parse_state(state), self.parse_inputs(inputs), log).to_wire()

    def delete(self, db: Database, state: dict[str, Any], log: Log) -> None:
        self.on_delete(db, self.parse_state(state), log)

    def read(
        self, db: Database, resource_id: str, state: dict[str, Any], inputs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        found = self.on_read(db, resource_id, self.parse_state(state) if state else None, self._known_inputs(inputs))
        if found is None:
            return None
        outputs, current_inputs = found
        return outputs.to_wire(), current_inputs.to_wire()

    # --- the resource's hooks: typed --------------------------------------------------------------------
    def normalize(self, inputs: InputsT) -> InputsT:
        """The inputs with defaults filled in, checked without the database."""
        return inputs

    def validate(self, db: Database, olds: InputsT | None, checked: InputsT) -> None:
        """What only the database can tell about new or changed inputs (by default: nothing to ask)."""
        return None

    @abstractmethod
    def diff_live(self, db: Database, state: StateT, inputs: InputsT) -> dict[str, str]:
        """Compare the live database with the desired inputs (no replacement keys changed)."""

    @abstractmethod
    def on_create(self, db: Database, inputs: InputsT, log: Log) -> tuple[str, StateT]: ...

    @abstractmethod
    def on_update(self, db: Database, state: StateT, inputs: InputsT, log: Log) -> StateT: ...

    @abstractmethod
    def on_delete(self, db: Database, state: StateT, log: Log) -> None: ...

    @abstractmethod
    def on_read(
        self, db: Database, resource_id: str, state: StateT | None, inputs: InputsT | None
    ) -> tuple[StateT, InputsT] | None:
        """(state, inputs) as the database has them now, or None if the object is gone. `state` and
        `inputs` are None when the engine has none (`pulumi import`: the id alone)."""


class HttpResource(TypedEdge[InputsT, StateT], ABC):
    """A resource behind an HTTP API, typed (TypedEdge): its client comes with the resource (injected), no
    database per step.

    The same shape as DatabaseResource: normalize and validate (at every check: the client's settings
    change without the inputs) make `check`, then diff_live, on_create, on_read, on_update, on_delete.
    """

    # --- the edge: plain data in, plain data out ------------------------------------------------------
    def check(self, olds: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
        checked = self.normalize(self.parse_inputs(inputs))
        self.validate(self._known_inputs(olds), checked)
        return self.wire(checked)

    def diff(self, state: dict[str, Any], inputs: dict[str, Any]) -> Diff:
        was, wanted = self.parse_state(state), self.parse_inputs(inputs)
        replaces = self.replaced_props(was, wanted)
        if replaces:
            return Diff(replaces=replaces)
        return Diff(changes=self.diff_live(was, wanted))

    def create(self, inputs: dict[str, Any], log: Log) -> tuple[str, dict[str, Any]]:
        resource_id, state = self.on_create(self.parse_inputs(inputs), log)
        return resource_id, self.wire(state)

    def update(self, state: dict[str, Any], inputs: dict[str, Any], log: Log) -> dict[str, Any]:
        return self.wire(self.on_update(self.parse_state(state), self.parse_inputs(inputs), log))

    def delete(self, state: dict[str, Any], log: Log) -> None:
        self.on_delete(self.parse_state(state), log)

    def read(
        self, resource_id: str, state: dict[str, Any], inputs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        found = self.on_read(resource_id, self.parse_state(state) if state else None, self._known_inputs(inputs))
        if found is None:
            return None
        outputs, current_inputs = found
        return self.wire(outputs), self.wire(current_inputs)

    # --- the resource's hooks: typed --------------------------------------------------------------------
    def normalize(self, inputs: InputsT) -> InputsT:
        return inputs

    def validate(self, olds: InputsT | None, checked: InputsT) -> None:
        """What the client's settings can tell without a request (by default: nothing)."""
        return None

    @abstractmethod
    def diff_live(self, state: StateT, inputs: InputsT) -> dict[str, str]: ...

    @abstractmethod
    def on_create(self, inputs: InputsT, log: Log) -> tuple[str, StateT]: ...

    @abstractmethod
    def on_update(self, state: StateT, inputs: InputsT, log: Log) -> StateT: ...

    @abstractmethod
    def on_delete(self, state: StateT, log: Log) -> None: ...

    @abstractmethod
    def on_read(self, resource_id: str, state: StateT | None, inputs: InputsT | None) -> tuple[StateT, InputsT] | None:
        """(state, inputs) as the API has them now, or None if the object is gone; `state` and `inputs` are
        None when the engine has none (`pulumi import`: the id alone)."""


def identifier(value: object, setting: str) -> str:
    """`value` as an identifier, or the input error naming the input (`setting`) that holds it."""
    try:
        return check_identifier(value, setting)
    except ModelError as exc:
        raise InputError(setting, str(exc)) from exc


def not_importable(kind: str, why: str) -> InputError:
    """What `read` raises when asked for a resource by its id alone (`pulumi import`, `.get`) and the id
    cannot tell it: rather than "does not exist", which is not true."""
    return InputError("id", f"{kind} cannot be imported by its id: {why}")


def missing_table(table_property: str, schema: str, table: str) -> InputError:
    """The error for a table the database does not have, naming the input that holds it."""
    return InputError(table_property, f"{table_property}: {schema}.{table} does not exist in the database")


def require_table(conn: psycopg.Connection, schema: str, table: str, table_property: str = "table") -> None:
    if catalog.missing_tables(conn, schema, [table]):
        raise missing_table(table_property, schema, table)


def split_id(resource_id: str, parts: int, example: str) -> list[str]:
    pieces = resource_id.split(".")
    if len(pieces) != parts or not all(pieces):
        raise InputError("id", f"expected an id like {example!r}, got {resource_id!r}")
    return pieces


def compare_fields(prefix: str, live: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, str]:
    return {f"{prefix}{k}": "update" for k in desired if live.get(k) != desired.get(k)}
