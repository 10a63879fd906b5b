"""A reviewable summary of a Terraform plan, following Terraform's own rules.

The summary is what a lead reads before approving an apply, so the counts match the "Plan: …" line
Terraform prints (internal/command/jsonformat), destroys and replacements come first with their
reason, and no value Terraform marked sensitive is ever carried (core.plan.values).

One pass over `resource_changes` keeps only a few short, already-masked strings per resource; the
values of a change are decoded only for updates and replacements (core.plan.document).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from core.plan.document import (
    DriftEntry,
    PlanInput,
    ResourceEntry,
    json_type,
    mapping,
    optional_str,
    required_str,
)
from core.plan.errors import PlanParseError
from core.plan.model import (
    COSTLY_RESOURCE_TYPES,
    SENSITIVE,
    ChangeGroup,
    CostlyChange,
    DriftChange,
    OutputChange,
    PlanAction,
    PlanCounts,
    PlanSummary,
    ResourceChange,
)
from core.plan.reading import read_plan
from core.plan.values import any_true, attribute_diff, masked

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

_GROUP_BY_ACTION: Mapping[PlanAction, ChangeGroup] = {
    PlanAction.DELETE: ChangeGroup.DESTROY,
    PlanAction.DELETE_THEN_CREATE: ChangeGroup.REPLACE,
    PlanAction.CREATE_THEN_DELETE: ChangeGroup.REPLACE,
    PlanAction.CREATE_THEN_FORGET: ChangeGroup.REPLACE,
    PlanAction.FORGET: ChangeGroup.FORGET,
    PlanAction.UPDATE: ChangeGroup.UPDATE,
    PlanAction.CREATE: ChangeGroup.CREATE,
}

_GROUP_ORDER = {group: position for position, group in enumerate(ChangeGroup)}


def summarise_plan(plan: bytes | str | Mapping[str, Any], *, monthly_cost: str | None = None) -> PlanSummary:
    """Summarise `terraform show -json` output; anything unusable raises `PlanParseError`."""
    plan_input = read_plan(plan)
    try:
        return summarise(plan_input, monthly_cost=monthly_cost)
    except RecursionError as error:
        raise PlanParseError("The plan JSON is nested too deeply to summarise.") from error


def summarise(plan: PlanInput, *, monthly_cost: str | None = None) -> PlanSummary:
    changes, reads, counts = _resource_changes(plan.resource_changes)
    outputs = _output_changes(plan.output_changes)
    drift = _drift(plan.resource_drift)
    errored = plan.errored is True
    has_changes = bool(changes or reads or outputs)
    applyable, reason = _applyability(plan.applyable, errored=errored, has_changes=has_changes)
    return PlanSummary(
        format_version=plan.format_version,
        terraform_version=optional_str(plan.terraform_version),
        errored=errored,
        complete=plan.complete if isinstance(plan.complete, bool) else None,
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
    entries: Iterable[ResourceEntry],
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


def _resource_change(entry: ResourceEntry, where: str) -> ResourceChange | None:
    """One `resource_changes` entry, or None when Terraform would not show it (plain no-ops)."""
    address = required_str(entry.address, "address", where)
    action = parse_action(entry.change.actions, f"{where} ({address}).change.actions")
    mode = optional_str(entry.mode) or "managed"
    previous_address = optional_str(entry.previous_address)
    importing = isinstance(entry.change.importing, Mapping)
    moved = bool(previous_address) and previous_address != address
    if action is PlanAction.NO_OP and not moved and not importing:
        return None
    if action is PlanAction.DELETE and mode != "managed":
        return None  # Terraform does not show data sources leaving state
    attribute_changes, more = (
        attribute_diff(entry.change.values()) if action is PlanAction.UPDATE or action.is_replace else ((), 0)
    )
    return ResourceChange(
        address=address,
        type=optional_str(entry.type) or _type_from_address(address),
        mode=mode,
        action=action,
        group=_group(action, importing=importing, moved=moved),
        reason=_reason_words(optional_str(entry.action_reason), deposed=entry.deposed),
        previous_address=previous_address if moved else None,
        importing=importing,
        attribute_changes=attribute_changes,
        more_attribute_changes=more,
    )


def _group(action: PlanAction, *, importing: bool, moved: bool) -> ChangeGroup | None:
    if action is PlanAction.READ:
        return None
    if action is PlanAction.NO_OP:
        return ChangeGroup.IMPORT if importing else ChangeGroup.MOVE
    return _GROUP_BY_ACTION[action]


def parse_action(value: Any, where: str) -> PlanAction:
    if isinstance(value, list):
        with contextlib.suppress(TypeError):  # an unhashable item: explained below
            action = _ACTIONS_BY_LIST.get(tuple(value))
            if action is not None:
                return action
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise PlanParseError(f"{where} must be a list of action names, got {json_type(value)}.")
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


def _output_changes(value: Any) -> tuple[OutputChange, ...]:
    if value is None:
        return ()
    outputs = mapping(value, "output_changes")
    return tuple(
        output for name in sorted(outputs) if (output := _output_change(str(name), outputs[name])) is not None
    )


def _output_change(name: str, value: Any) -> OutputChange | None:
    change = mapping(value, f"output_changes.{name}")
    action = parse_action(change.get("actions"), f"output_changes.{name}.actions")
    if action is PlanAction.NO_OP:
        return None
    sensitive = any_true(change.get("before_sensitive")) or any_true(change.get("after_sensitive"))
    if action is PlanAction.DELETE:
        shown = SENSITIVE if sensitive else "(removed)"
    else:
        shown = masked(
            change.get("after"),
            marked="after_sensitive" in change,
            sensitive=sensitive,
            unknown=any_true(change.get("after_unknown")),
        )
    return OutputChange(name=name, action=action, value=shown, sensitive=sensitive)


def _drift(entries: Iterable[DriftEntry]) -> tuple[DriftChange, ...]:
    """Managed resources that changed outside Terraform (no-op entries are only refresh noise)."""
    drifted: list[DriftChange] = []
    for index, entry in enumerate(entries):
        address = entry.shown_address
        action = parse_action(entry.change.actions, f"resource_drift[{index}] ({address}).change.actions")
        if action is PlanAction.NO_OP or (optional_str(entry.mode) or "managed") != "managed":
            continue
        description = (
            "deleted outside Terraform" if action is PlanAction.DELETE else "changed outside Terraform"
        )
        drifted.append(
            DriftChange(
                address=address,
                type=optional_str(entry.type) or _type_from_address(address),
                action=action,
                description=description,
            )
        )
    return tuple(sorted(drifted, key=lambda drift: drift.address))


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
