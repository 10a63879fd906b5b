"""A reviewable summary of a Terraform plan, from the JSON of `terraform show -json <planfile>`.

The summary is what a lead reads before approving an apply, so it follows Terraform's own
semantics (the counts match the "Plan: …" line Terraform prints) and it never carries a value
that Terraform marked sensitive: `terraform show -json` does not redact, it keeps the clear value
in `before`/`after` and only *marks* it in `before_sensitive`/`after_sensitive`.

The plan is read in one pass over `resource_changes` without copying it; only a few short,
already-masked strings per resource are kept, so a 10,000-resource plan stays cheap.
"""

from __future__ import annotations

import gc
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

SENSITIVE = "(sensitive)"
UNKNOWN = "(known after apply)"
# Plans from Terraform < 0.15 carry no sensitivity marks at all, so no value can be shown safely.
UNMARKED = "(not shown)"
UNRECORDED_ADDRESS = "(address not recorded by this Terraform version)"

MAX_ATTRIBUTES_PER_RESOURCE = 3
MAX_VALUE_CHARS = 60
SUPPORTED_FORMAT_MAJORS = frozenset({0, 1})

# Resource types that move the monthly bill noticeably; the one list the rest of the bot consults.
COSTLY_RESOURCE_TYPES: Mapping[str, str] = {
    "aws_nat_gateway": "NAT gateway",
    "aws_db_instance": "RDS DB instance",
    "aws_rds_cluster_instance": "Aurora DB instance",
    "aws_docdb_cluster_instance": "DocumentDB instance",
    "aws_elasticache_replication_group": "ElastiCache replication group",
    "aws_elasticache_cluster": "ElastiCache cluster",
    "aws_ec2_client_vpn_endpoint": "Client VPN endpoint",
}

# Terraform's `action_reason` values, in the words a reviewer needs.
ACTION_REASON_WORDS: Mapping[str, str] = {
    "replace_because_tainted": "tainted",
    "replace_because_cannot_update": "a change forces replacement",
    "replace_by_request": "replacement requested (-replace)",
    "replace_by_triggers": "replace_triggered_by changed",
    "delete_because_no_resource_config": "removed from configuration",
    "delete_because_no_module": "its module was removed from configuration",
    "delete_because_wrong_repetition": "count/for_each usage changed",
    "delete_because_count_index": "count index is out of range",
    "delete_because_each_key": "for_each key was removed",
    "delete_because_no_move_target": "moved to an address that is not in configuration",
    "read_because_config_unknown": "configuration refers to values not yet known",
    "read_because_dependency_pending": "depends on changes pending",
    "read_because_check_nested": "re-read to verify a check block",
}


class PlanSummaryError(Exception):
    """Root of every error this module raises on purpose."""


class PlanParseError(PlanSummaryError):
    """The input is not a usable `terraform show -json` plan; the message says why, for a person."""


class PlanAction(StrEnum):
    """One resource instance's action, as Terraform's `change.actions` list encodes it."""

    CREATE = "create"
    READ = "read"
    UPDATE = "update"
    DELETE = "delete"
    DELETE_THEN_CREATE = "delete-then-create"
    CREATE_THEN_DELETE = "create-then-delete"
    FORGET = "forget"
    CREATE_THEN_FORGET = "create-then-forget"
    NO_OP = "no-op"

    @property
    def is_replace(self) -> bool:
        return self in _REPLACE_ACTIONS


_REPLACE_ACTIONS = frozenset(
    {PlanAction.DELETE_THEN_CREATE, PlanAction.CREATE_THEN_DELETE, PlanAction.CREATE_THEN_FORGET}
)

_ACTIONS_BY_LIST: Mapping[tuple[str, ...], PlanAction] = {
    ("no-op",): PlanAction.NO_OP,
    ("create",): PlanAction.CREATE,
    ("read",): PlanAction.READ,
    ("update",): PlanAction.UPDATE,
    ("delete",): PlanAction.DELETE,
    ("delete", "create"): PlanAction.DELETE_THEN_CREATE,
    ("create", "delete"): PlanAction.CREATE_THEN_DELETE,
    ("forget",): PlanAction.FORGET,
    ("create", "forget"): PlanAction.CREATE_THEN_FORGET,
}


class ChangeGroup(StrEnum):
    """How changes are grouped for review; the declaration order is the display order."""

    DESTROY = "destroy"
    REPLACE = "replace"
    FORGET = "forget"
    UPDATE = "update"
    CREATE = "create"
    IMPORT = "import"
    MOVE = "move"

    @property
    def is_flagged(self) -> bool:
        """Destroys and replacements lose data or cause downtime: they are shown first, flagged."""
        return self in (ChangeGroup.DESTROY, ChangeGroup.REPLACE)


_GROUP_ORDER = {group: position for position, group in enumerate(ChangeGroup)}

_GROUP_BY_ACTION: Mapping[PlanAction, ChangeGroup] = {
    PlanAction.DELETE: ChangeGroup.DESTROY,
    PlanAction.DELETE_THEN_CREATE: ChangeGroup.REPLACE,
    PlanAction.CREATE_THEN_DELETE: ChangeGroup.REPLACE,
    PlanAction.CREATE_THEN_FORGET: ChangeGroup.REPLACE,
    PlanAction.FORGET: ChangeGroup.FORGET,
    PlanAction.UPDATE: ChangeGroup.UPDATE,
    PlanAction.CREATE: ChangeGroup.CREATE,
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class AttributeChange(_Frozen):
    """One top-level attribute of an update or replacement; values are already masked and short."""

    name: str
    before: str
    after: str
    forces_replacement: bool = False


class ResourceChange(_Frozen):
    address: str
    type: str
    mode: str = "managed"
    action: PlanAction
    group: ChangeGroup | None = None  # None for data-source reads, which are not changes
    reason: str | None = None
    previous_address: str | None = None
    importing: bool = False
    attribute_changes: tuple[AttributeChange, ...] = ()
    more_attribute_changes: int = 0

    @property
    def is_flagged(self) -> bool:
        return self.group is not None and self.group.is_flagged

    @property
    def moved(self) -> bool:
        return bool(self.previous_address) and self.previous_address != self.address


class DriftChange(_Frozen):
    """A resource Terraform found changed (or deleted) outside Terraform while refreshing."""

    address: str
    type: str
    action: PlanAction
    description: str


class OutputChange(_Frozen):
    name: str
    action: PlanAction
    value: str
    sensitive: bool = False


class CostlyChange(_Frozen):
    """How many resources of one costly type this plan adds, replaces, changes or destroys."""

    type: str
    label: str
    added: int = 0
    replaced: int = 0
    changed: int = 0
    destroyed: int = 0

    @property
    def total(self) -> int:
        return self.added + self.replaced + self.changed + self.destroyed


class PlanCounts(_Frozen):
    """Terraform's counts: a replacement is one to add and one to destroy."""

    to_import: int = 0
    to_add: int = 0
    to_change: int = 0
    to_destroy: int = 0
    to_forget: int = 0
    to_move: int = 0
    to_read: int = 0


class TypeCount(_Frozen):
    type: str
    changes: tuple[ResourceChange, ...]

    @property
    def count(self) -> int:
        return len(self.changes)


class GroupedChanges(_Frozen):
    group: ChangeGroup
    by_type: tuple[TypeCount, ...]

    @property
    def total(self) -> int:
        return sum(type_count.count for type_count in self.by_type)


class PlanSummary(_Frozen):
    format_version: str
    terraform_version: str | None = None
    errored: bool = False
    complete: bool | None = None
    applyable: bool = True
    not_applyable_reason: str | None = None
    counts: PlanCounts = PlanCounts()
    changes: tuple[ResourceChange, ...] = ()  # flagged first, then by group, type, address
    data_reads: tuple[ResourceChange, ...] = ()
    drift: tuple[DriftChange, ...] = ()
    outputs: tuple[OutputChange, ...] = ()
    costly: tuple[CostlyChange, ...] = ()
    monthly_cost: str | None = None

    @property
    def has_resource_changes(self) -> bool:
        """Terraform prints a "Plan:" line when anything is listed: changes, moves, imports, reads."""
        return bool(self.changes or self.data_reads)

    @property
    def has_changes(self) -> bool:
        return self.has_resource_changes or bool(self.outputs)

    @property
    def flagged(self) -> tuple[ResourceChange, ...]:
        return tuple(change for change in self.changes if change.is_flagged)

    @property
    def sentence(self) -> str:
        """Terraform's own summary sentence, e.g. "Plan: 1 to add, 0 to change, 1 to destroy."."""
        if self.has_resource_changes:
            return plan_sentence(self.counts)
        if self.errored:
            return "Planning failed."
        if self.outputs:
            return f"No resource changes. {_plural(len(self.outputs), 'output')} to change."
        return "No changes."

    def grouped(self) -> tuple[GroupedChanges, ...]:
        return group_changes(self.changes)


def plan_sentence(counts: PlanCounts) -> str:
    """Terraform's "Plan:" line: import first and forget last, each only when there are some."""
    parts = [f"{counts.to_import} to import"] if counts.to_import else []
    parts += [f"{counts.to_add} to add", f"{counts.to_change} to change", f"{counts.to_destroy} to destroy"]
    if counts.to_forget:
        parts.append(f"{counts.to_forget} to forget")
    return "Plan: " + ", ".join(parts) + "."


def group_changes(changes: Iterable[ResourceChange]) -> tuple[GroupedChanges, ...]:
    """Group by display group, then by resource type (costly types first, then the most frequent)."""
    by_group: dict[ChangeGroup, dict[str, list[ResourceChange]]] = {}
    for change in changes:
        if change.group is not None:
            by_group.setdefault(change.group, {}).setdefault(change.type, []).append(change)
    return tuple(
        GroupedChanges(
            group=group,
            by_type=tuple(
                TypeCount(type=type_name, changes=tuple(members))
                for type_name, members in sorted(by_group[group].items(), key=_type_priority)
            ),
        )
        for group in ChangeGroup
        if group in by_group
    )


def _type_priority(item: tuple[str, list[ResourceChange]]) -> tuple[bool, int, str]:
    """A database among 500 log groups must not be folded away: costly types lead, then the commonest."""
    type_name, members = item
    return type_name not in COSTLY_RESOURCE_TYPES, -len(members), type_name


def summarise_plan(plan: bytes | str | Mapping[str, Any], *, monthly_cost: str | None = None) -> PlanSummary:
    """Summarise `terraform show -json` output; anything unusable raises `PlanParseError`."""
    document = plan if isinstance(plan, Mapping) else load_plan_json(plan)
    check_is_plan(document)
    try:
        return _summarise(document, monthly_cost)
    except RecursionError as error:
        raise PlanParseError("The plan JSON is nested too deeply to summarise.") from error


def _loads_without_gc(raw: str) -> Any:
    """json.loads of a large plan allocates millions of containers and nothing cyclic; the cyclic
    garbage collector running during the parse roughly doubles its time (bench/plan_summary.py)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return json.loads(raw)
    finally:
        if enabled:
            gc.enable()


def decode_plan_text(raw: bytes) -> str:
    """Plan JSON as text in any encoding JSON allows (RFC 8259 §8.1 and Python's json module): UTF-8
    with or without a BOM, or UTF-16/32 as editors and PowerShell's `>` redirection save it."""
    codec = json.detect_encoding(raw)
    try:
        return raw.decode(codec)
    except UnicodeDecodeError as error:
        if codec in ("utf-8", "utf-8-sig"):
            raise PlanParseError(
                "The plan is not UTF-8 or UTF-16 text, so it is not `terraform show -json` output."
            ) from error
        raise PlanParseError(
            f"The plan looks like {codec.upper()} text but does not decode as such."
        ) from error


def load_plan_json(raw: bytes | str) -> Any:
    """Parse JSON text, turning every way it can fail into a `PlanParseError` a person understands."""
    if isinstance(raw, bytes | bytearray):
        raw = decode_plan_text(bytes(raw))
    if not isinstance(raw, str):
        raise PlanParseError(f"Expected plan JSON as text or bytes, got {type(raw).__name__}.")
    raw = raw.removeprefix("\ufeff")
    if not raw.strip():
        raise PlanParseError("The plan is empty: `terraform show -json <planfile>` printed nothing.")
    try:
        return _loads_without_gc(raw)
    except json.JSONDecodeError as error:
        if not raw[error.pos :].strip():
            raise PlanParseError(
                f"The plan JSON ends early (after {error.pos} characters): it looks truncated."
            ) from error
        _refuse_text_before_json(raw)
        raise PlanParseError(
            f"The plan is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})."
        ) from error
    except RecursionError as error:
        raise PlanParseError("The plan JSON is nested too deeply to read.") from error


def _refuse_text_before_json(raw: str) -> None:
    """A wrapper (setup-terraform's, a CI logger) that prints lines before Terraform's JSON gets a
    message that names the cause instead of a JSON syntax error at line 1."""
    lines = raw.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if index and line.lstrip().startswith("{"):
            try:
                json.loads("".join(lines[index:]))
            except (json.JSONDecodeError, RecursionError):
                return
            raise PlanParseError(
                f"{_plural(index, 'line')} of non-JSON text precede the plan JSON "
                f"(the first: {short_value(lines[0].strip(), 60)}): is TERRAFORM_BIN a wrapper?"
            )


def check_is_plan(document: Any) -> None:
    """Tell a plan from the other JSON Terraform prints (state, raw state files) or any other JSON."""
    if not isinstance(document, Mapping):
        raise PlanParseError(
            f"The plan JSON must be an object, got {_json_type(document)}: is this `terraform show -json` output?"
        )
    if (
        "lineage" in document
        or "serial" in document
        or ("version" in document and "format_version" not in document)
    ):
        raise PlanParseError(
            "This is a Terraform state file, not a plan: run `terraform show -json <planfile>` on a saved plan."
        )
    format_version = document.get("format_version")
    if not isinstance(format_version, str):
        raise PlanParseError("The JSON has no `format_version`, so it is not `terraform show -json` output.")
    if _format_major(format_version) not in SUPPORTED_FORMAT_MAJORS:
        raise PlanParseError(
            f"Plan format_version {format_version!r} is newer than this bot understands (0.x–1.x)."
        )
    if not any(
        key in document for key in ("planned_values", "resource_changes", "output_changes", "errored")
    ):
        raise PlanParseError(
            "This JSON describes Terraform state, not a plan (no planned_values or resource_changes):"
            " run `terraform show -json` on a saved plan file."
        )


def _format_major(format_version: str) -> int | None:
    major = format_version.split(".", 1)[0]
    return int(major) if major.isdigit() else None


def _summarise(document: Mapping[str, Any], monthly_cost: str | None) -> PlanSummary:
    changes, reads, counts = _resource_changes(_list_at(document, "resource_changes"))
    outputs = _output_changes(document.get("output_changes"))
    drift = _drift(_list_at(document, "resource_drift"))
    errored = document.get("errored") is True
    complete = document.get("complete")
    has_changes = bool(changes or reads or outputs)
    applyable, reason = _applyability(document.get("applyable"), errored=errored, has_changes=has_changes)
    return PlanSummary(
        format_version=str(document["format_version"]),
        terraform_version=_optional_str(document.get("terraform_version")),
        errored=errored,
        complete=complete if isinstance(complete, bool) else None,
        applyable=applyable,
        not_applyable_reason=reason,
        counts=counts,
        changes=tuple(sorted(changes, key=_display_order)),
        data_reads=tuple(sorted(reads, key=lambda change: change.address)),
        drift=drift,
        outputs=outputs,
        costly=_costly(changes),
        monthly_cost=monthly_cost,
    )


def _applyability(declared: Any, *, errored: bool, has_changes: bool) -> tuple[bool, str | None]:
    """Terraform's `applyable` when the plan says (format ≥ 1.0), otherwise derived the same way."""
    if errored:
        return False, "Terraform encountered an error while generating this plan, so it cannot be applied."
    applyable = declared if isinstance(declared, bool) else has_changes
    if applyable:
        return True, None
    if not has_changes:
        return False, "No changes: there is nothing to apply."
    return False, "Terraform marked this plan as not applyable."


def _display_order(change: ResourceChange) -> tuple[int, str, str]:
    group_position = _GROUP_ORDER[change.group] if change.group is not None else len(_GROUP_ORDER)
    return group_position, change.type, change.address


def _resource_changes(
    entries: list[Any],
) -> tuple[list[ResourceChange], list[ResourceChange], PlanCounts]:
    """One pass over `resource_changes`, counting the way Terraform's plan renderer does."""
    changes: list[ResourceChange] = []
    reads: list[ResourceChange] = []
    actions: Counter[PlanAction] = Counter()
    imports = moves = 0
    for index, entry in enumerate(entries):
        change = _resource_change(entry, f"resource_changes[{index}]")
        if change is None:
            continue
        imports += change.importing
        moves += change.moved
        if change.action is not PlanAction.NO_OP:
            actions[change.action] += 1
        (reads if change.action is PlanAction.READ else changes).append(change)
    return changes, reads, _counts(actions, imports=imports, moves=moves)


def _counts(actions: Counter[PlanAction], *, imports: int, moves: int) -> PlanCounts:
    replaced = actions[PlanAction.DELETE_THEN_CREATE] + actions[PlanAction.CREATE_THEN_DELETE]
    return PlanCounts(
        to_import=imports,
        to_add=actions[PlanAction.CREATE] + replaced + actions[PlanAction.CREATE_THEN_FORGET],
        to_change=actions[PlanAction.UPDATE],
        to_destroy=actions[PlanAction.DELETE] + replaced,
        to_forget=actions[PlanAction.FORGET] + actions[PlanAction.CREATE_THEN_FORGET],
        to_move=moves,
        to_read=actions[PlanAction.READ],
    )


def _resource_change(entry: Any, where: str) -> ResourceChange | None:
    """One `resource_changes` entry, or None when Terraform would not show it (plain no-ops)."""
    entry = _mapping(entry, where)
    address = _required_str(entry, "address", where)
    change = _mapping(entry.get("change"), f"{where} ({address}).change")
    action = _action(change.get("actions"), f"{where} ({address}).change.actions")
    mode = _optional_str(entry.get("mode")) or "managed"
    previous_address = _optional_str(entry.get("previous_address"))
    importing = isinstance(change.get("importing"), Mapping)
    moved = bool(previous_address) and previous_address != address
    if action is PlanAction.NO_OP and not moved and not importing:
        return None
    if action is PlanAction.DELETE and mode != "managed":
        return None  # Terraform does not show data sources leaving state
    return ResourceChange(
        address=address,
        type=_optional_str(entry.get("type")) or _type_from_address(address),
        mode=mode,
        action=action,
        group=_group(action, importing=importing, moved=moved),
        reason=_reason_words(_optional_str(entry.get("action_reason")), deposed=entry.get("deposed")),
        previous_address=previous_address if moved else None,
        importing=importing,
        **_attribute_diff(change, action),
    )


def _group(action: PlanAction, *, importing: bool, moved: bool) -> ChangeGroup | None:
    if action is PlanAction.READ:
        return None
    if action is PlanAction.NO_OP:
        return ChangeGroup.IMPORT if importing else ChangeGroup.MOVE
    return _GROUP_BY_ACTION[action]


def _action(value: Any, where: str) -> PlanAction:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise PlanParseError(f"{where} must be a list of action names, got {_json_type(value)}.")
    try:
        return _ACTIONS_BY_LIST[tuple(value)]
    except KeyError:
        raise PlanParseError(
            f"{where} is {value}, an action this bot does not understand; it will not summarise a plan"
            " it cannot fully read."
        ) from None


def _reason_words(action_reason: str | None, *, deposed: Any) -> str | None:
    words = ACTION_REASON_WORDS.get(action_reason, action_reason.replace("_", " ")) if action_reason else None
    if deposed:
        left_over = "left over from a partially failed replacement"
        words = f"{words}; {left_over}" if words else left_over
    return words


def _type_from_address(address: str) -> str:
    """The resource type in an address like `module.a["k"].aws_s3_bucket.b[0]` (old plans lack `type`)."""
    steps = [step for step in address.split("[", 1)[0].split(".") if step]
    if len(steps) >= 2:
        return steps[-2]
    return address


def _attribute_diff(change: Mapping[str, Any], action: PlanAction) -> dict[str, Any]:
    """The first few changed top-level attributes of an update or replacement, masked.

    Creates and deletes list no attributes: every attribute "changes" there, and showing them
    adds noise (and risk) without helping the review.
    """
    if action is not PlanAction.UPDATE and not action.is_replace:
        return {}
    before, after = change.get("before"), change.get("after")
    if not isinstance(before, Mapping) or not isinstance(after, Mapping):
        return {}
    unknown = change.get("after_unknown")
    changed = [
        name
        for name in _union_keys(before, after)
        if before.get(name) != after.get(name) or _any_true(_child(unknown, name))
    ]
    forcing = _replace_attribute_names(change.get("replace_paths"))
    changed.sort(key=lambda name: name not in forcing)
    shown = changed[:MAX_ATTRIBUTES_PER_RESOURCE]
    return {
        "attribute_changes": tuple(_attribute_change(change, name, forcing) for name in shown),
        "more_attribute_changes": len(changed) - len(shown),
    }


def _attribute_change(change: Mapping[str, Any], name: str, forcing: set[str]) -> AttributeChange:
    marked = "after_sensitive" in change or "before_sensitive" in change
    sensitive = _any_true(_child(change.get("before_sensitive"), name)) or _any_true(
        _child(change.get("after_sensitive"), name)
    )
    before = _masked(change["before"].get(name), marked=marked, sensitive=sensitive, unknown=False)
    after = _masked(
        change["after"].get(name),
        marked=marked,
        sensitive=sensitive,
        unknown=_any_true(_child(change.get("after_unknown"), name)),
    )
    return AttributeChange(name=name, before=before, after=after, forces_replacement=name in forcing)


def _masked(value: Any, *, marked: bool, sensitive: bool, unknown: bool) -> str:
    """A value safe to post: sensitive wins over unknown; without marks nothing is shown."""
    if sensitive:
        return SENSITIVE
    if unknown:
        return UNKNOWN
    if not marked:
        return UNMARKED
    return short_value(value)


def short_value(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _union_keys(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    return list(after) + [name for name in before if name not in after]


def _replace_attribute_names(replace_paths: Any) -> set[str]:
    """Top-level attribute names of `replace_paths` (each path is a list of steps)."""
    if not isinstance(replace_paths, list):
        return set()
    return {path[0] for path in replace_paths if isinstance(path, list) and path and isinstance(path[0], str)}


def _child(marks: Any, name: str) -> Any:
    """The marks for attribute `name`: a `true` above it covers it too."""
    if marks is True:
        return True
    return marks.get(name) if isinstance(marks, Mapping) else None


def _any_true(marks: Any) -> bool:
    """Whether a sensitivity/unknown structure has `true` anywhere (iterative: plans can nest deep)."""
    stack = [marks]
    while stack:
        item = stack.pop()
        if item is True:
            return True
        if isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _output_changes(value: Any) -> tuple[OutputChange, ...]:
    if value is None:
        return ()
    outputs = _mapping(value, "output_changes")
    return tuple(
        output for name in sorted(outputs) if (output := _output_change(str(name), outputs[name])) is not None
    )


def _output_change(name: str, value: Any) -> OutputChange | None:
    change = _mapping(value, f"output_changes.{name}")
    action = _action(change.get("actions"), f"output_changes.{name}.actions")
    if action is PlanAction.NO_OP:
        return None
    sensitive = _any_true(change.get("before_sensitive")) or _any_true(change.get("after_sensitive"))
    if action is PlanAction.DELETE:
        shown = SENSITIVE if sensitive else "(removed)"
    else:
        shown = _masked(
            change.get("after"),
            marked="after_sensitive" in change,
            sensitive=sensitive,
            unknown=_any_true(change.get("after_unknown")),
        )
    return OutputChange(name=name, action=action, value=shown, sensitive=sensitive)


def _drift(entries: list[Any]) -> tuple[DriftChange, ...]:
    """Managed resources that changed outside Terraform (no-op entries are only refresh noise)."""
    drifted: list[DriftChange] = []
    for index, entry in enumerate(entries):
        where = f"resource_drift[{index}]"
        entry = _mapping(entry, where)
        address = _optional_str(entry.get("address")) or drift_address(entry)
        change = _mapping(entry.get("change"), f"{where} ({address}).change")
        action = _action(change.get("actions"), f"{where} ({address}).change.actions")
        if action is PlanAction.NO_OP or (_optional_str(entry.get("mode")) or "managed") != "managed":
            continue
        description = (
            "deleted outside Terraform" if action is PlanAction.DELETE else "changed outside Terraform"
        )
        drifted.append(
            DriftChange(
                address=address,
                type=_optional_str(entry.get("type")) or _type_from_address(address),
                action=action,
                description=description,
            )
        )
    return tuple(sorted(drifted, key=lambda drift: drift.address))


def drift_address(entry: Mapping[str, Any]) -> str:
    """Terraform 0.15.4 to 1.0.x wrote drift entries without `address`: rebuild it from the parts they
    kept, or say that it is unknown rather than refuse the whole plan."""
    type_name, name = _optional_str(entry.get("type")), _optional_str(entry.get("name"))
    if not type_name or not name:
        return UNRECORDED_ADDRESS
    address = f"{type_name}.{name}"
    if entry.get("mode") == "data":
        address = f"data.{address}"
    module = _optional_str(entry.get("module_address"))
    if module:
        address = f"{module}.{address}"
    index = entry.get("index")
    if isinstance(index, bool) or index is None:
        return address
    return f"{address}[{json.dumps(index)}]" if isinstance(index, int | str) else address


def _costly(changes: Iterable[ResourceChange]) -> tuple[CostlyChange, ...]:
    tallies: dict[str, Counter[str]] = {}
    for change in changes:
        if change.type in COSTLY_RESOURCE_TYPES and change.mode == "managed":
            effect = _cost_effect(change)
            if effect is not None:
                tallies.setdefault(change.type, Counter())[effect] += 1
    return tuple(
        CostlyChange(type=type_name, label=COSTLY_RESOURCE_TYPES[type_name], **tally)
        for type_name, tally in sorted(tallies.items())
    )


def _cost_effect(change: ResourceChange) -> str | None:
    if change.group is ChangeGroup.CREATE:
        return "added"
    if change.group is ChangeGroup.REPLACE:
        return "replaced"
    if change.group is ChangeGroup.DESTROY:
        return "destroyed"
    if change.group is ChangeGroup.UPDATE:
        return "changed"
    return None  # forget/import/move leave the bill as it is


def _list_at(document: Mapping[str, Any], key: str) -> list[Any]:
    value = document.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise PlanParseError(f"`{key}` in the plan must be a list, got {_json_type(value)}.")
    return value


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PlanParseError(f"{where} in the plan must be an object, got {_json_type(value)}.")
    return value


def _required_str(entry: Mapping[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise PlanParseError(f"{where} in the plan has no `{key}`.")
    return value


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _json_type(value: Any) -> str:
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


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
