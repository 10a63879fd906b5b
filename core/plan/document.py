"""The parts of a plan's JSON that the summary reads, as typed records.

Decoded straight from the plan's bytes (core.plan.reading), a 10,000-resource plan costs milliseconds:
the keys the summary never reads (planned_values, prior_state, configuration: most of the document)
are skipped by msgspec without building Python objects, and the values of each change
(before/after and their marks: most of the rest) stay raw JSON until an update or a replacement
needs its changed attributes shown. The records hold no reference cycles, so they are not tracked by
the cyclic garbage collector (`gc=False`).

A plan handed over already parsed (a mapping) becomes the same records one entry at a time, as the
rules reach it (`entries_from`), so an unusable entry is refused with the same message, in the same
order, whichever way the plan arrived.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import msgspec
from msgspec import UNSET, Raw, UnsetType

from core.plan.errors import PlanParseError
from core.plan.model import UNRECORDED_ADDRESS

T = TypeVar("T")
ABSENT = Raw()  # a key the plan does not have (the raw JSON of a present value is never empty)


class ChangeValues(NamedTuple):
    """A change's values and marks, decoded; None where the plan has no such key."""

    before: Any
    after: Any
    after_unknown: Any
    before_sensitive: Any
    after_sensitive: Any
    replace_paths: Any
    marked: bool  # the plan has sensitivity marks (`before_sensitive`/`after_sensitive`) at all


# The change object's keys read into ChangeValues (its fields of the same names; `marked` is
# derived).
VALUE_KEYS = ("before", "after", "after_unknown", "before_sensitive", "after_sensitive", "replace_paths")


class ChangeBody(msgspec.Struct, frozen=True, gc=False):
    """A `change` object: its actions decoded, its values kept as raw JSON until `values()`."""

    actions: Any = None
    importing: Any = None
    before: Raw = ABSENT
    after: Raw = ABSENT
    after_unknown: Raw = ABSENT
    before_sensitive: Raw = ABSENT
    after_sensitive: Raw = ABSENT
    replace_paths: Raw = ABSENT

    def values(self) -> ChangeValues:
        return ChangeValues(
            **{key: _decoded(getattr(self, key)) for key in VALUE_KEYS},
            marked=bool(self.before_sensitive) or bool(self.after_sensitive),
        )


class MappedChangeBody(ChangeBody, frozen=True):
    """A `change` object of an already parsed plan: its values are read from the mapping itself."""

    source: Mapping[str, Any] = msgspec.field(default_factory=dict)

    def values(self) -> ChangeValues:
        source = self.source
        return ChangeValues(
            **{key: source.get(key) for key in VALUE_KEYS},
            marked="after_sensitive" in source or "before_sensitive" in source,
        )


def _decoded(raw: Raw) -> Any:
    # The standard library's json, as for a plan read the exact way (core.plan.reading): the same
    # Python values for every number JSON can write (1e999 is inf there, an error in msgspec).
    return json.loads(bytes(raw)) if raw else None


class _Entry(msgspec.Struct, frozen=True, gc=False):
    """What a `resource_changes` and a `resource_drift` entry both have: a change of a resource."""

    change: ChangeBody
    address: Any = None
    type: Any = None
    mode: Any = None


class ResourceEntry(_Entry, frozen=True, gc=False):
    """One `resource_changes` entry."""

    previous_address: Any = None
    action_reason: Any = None
    deposed: Any = None


class DriftEntry(_Entry, frozen=True, gc=False):
    """One `resource_drift` entry (only its address parts and actions are read)."""

    name: Any = None
    module_address: Any = None
    index: Any = None

    @property
    def shown_address(self) -> str:
        return optional_str(self.address) or address_from_parts(
            self.type, self.name, mode=self.mode, module=self.module_address, index=self.index
        )


class PlanDocument(msgspec.Struct, frozen=True, gc=False):
    """The top of a `terraform show -json` document: what the summary reads, and which keys exist
    (a state file or other JSON is told apart by its keys, core.plan.reading.check_is_plan)."""

    format_version: Any = UNSET
    terraform_version: Any = None
    errored: Any = UNSET
    complete: Any = None
    applyable: Any = None
    resource_changes: list[ResourceEntry] | UnsetType | None = UNSET
    resource_drift: list[DriftEntry] | None = None
    output_changes: Any = UNSET
    planned_values: Raw = ABSENT
    lineage: Raw = ABSENT
    serial: Raw = ABSENT
    version: Raw = ABSENT

    def has(self, key: str) -> bool:
        value = getattr(self, key)
        return bool(value) if isinstance(value, Raw) else value is not UNSET

    def plan_input(self) -> PlanInput:
        return PlanInput(
            format_version=str(self.format_version),
            terraform_version=self.terraform_version,
            errored=self.errored,
            complete=self.complete,
            applyable=self.applyable,
            output_changes=None if self.output_changes is UNSET else self.output_changes,
            resource_changes=self.resource_changes if isinstance(self.resource_changes, list) else [],
            resource_drift=self.resource_drift or [],
        )


@dataclass(frozen=True, slots=True)
class PlanInput:
    """A plan as the rules read it, whichever way it arrived (a document checked by check_is_plan)."""

    format_version: str
    terraform_version: Any
    errored: Any
    complete: Any
    applyable: Any
    output_changes: Any  # None when the plan has none; read as plain JSON values (they are few)
    resource_changes: list[ResourceEntry] | Iterator[ResourceEntry]
    resource_drift: list[DriftEntry] | Iterator[DriftEntry]


def plan_input_from_mapping(document: Mapping[str, Any]) -> PlanInput:
    """An already parsed plan (checked by check_is_plan): its entries become records lazily."""
    return PlanInput(
        format_version=str(document["format_version"]),
        terraform_version=document.get("terraform_version"),
        errored=document.get("errored"),
        complete=document.get("complete"),
        applyable=document.get("applyable"),
        output_changes=document.get("output_changes"),
        resource_changes=entries_from(document, "resource_changes", resource_entry),
        resource_drift=entries_from(document, "resource_drift", drift_entry),
    )


def entries_from(document: Mapping[str, Any], key: str, make: Callable[[Any, str], T]) -> Iterator[T]:
    """The records of the list at `key`; nothing is checked until the rules start reading it."""
    value = document.get(key)
    if value is None:
        return
    if not isinstance(value, list):
        raise PlanParseError(f"`{key}` in the plan must be a list, got {json_type(value)}.")
    for index, item in enumerate(value):
        yield make(item, f"{key}[{index}]")


_E = TypeVar("_E", ResourceEntry, DriftEntry)


def resource_entry(value: Any, where: str) -> ResourceEntry:
    entry = mapping(value, where)
    return _entry(ResourceEntry, entry, required_str(entry.get("address"), "address", where), where)


def drift_entry(value: Any, where: str) -> DriftEntry:
    entry = mapping(value, where)
    return _entry(DriftEntry, entry, optional_str(entry.get("address")) or drift_address(entry), where)


def _entry(kind: type[_E], entry: Mapping[str, Any], address: str, where: str) -> _E:
    """An entry of `kind` at `address`: its change body, and its other fields read from `entry`."""
    fields = {name: entry.get(name) for name in kind.__struct_fields__ if name not in ("change", "address")}
    return kind(
        change=_change_body(entry.get("change"), f"{where} ({address}).change"), address=address, **fields
    )


def _change_body(value: Any, where: str) -> MappedChangeBody:
    change = mapping(value, where)
    return MappedChangeBody(actions=change.get("actions"), importing=change.get("importing"), source=change)


def drift_address(entry: Mapping[str, Any]) -> str:
    """Terraform 0.15.4 to 1.0.x wrote drift entries without `address`: rebuild it from the parts they
    kept, or say that it is unknown rather than refuse the whole plan."""
    return address_from_parts(
        entry.get("type"),
        entry.get("name"),
        mode=entry.get("mode"),
        module=entry.get("module_address"),
        index=entry.get("index"),
    )


def address_from_parts(type_name: Any, name: Any, *, mode: Any, module: Any, index: Any) -> str:
    type_name, name = optional_str(type_name), optional_str(name)
    if not type_name or not name:
        return UNRECORDED_ADDRESS
    address = f"{type_name}.{name}"
    if mode == "data":
        address = f"data.{address}"
    module = optional_str(module)
    if module:
        address = f"{module}.{address}"
    if isinstance(index, bool) or index is None:
        return address
    return f"{address}[{json.dumps(index)}]" if isinstance(index, int | str) else address


# --- Checks on plain JSON values ----------------------------------------------------------------


def mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PlanParseError(f"{where} in the plan must be an object, got {json_type(value)}.")
    return value


def required_str(value: Any, key: str, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise PlanParseError(f"{where} in the plan has no `{key}`.")
    return value


def optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
