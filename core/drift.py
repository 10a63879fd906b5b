"""Drift: how a live environment differs from what was last approved and applied (pure rules).

A drift check runs two read-only plans against the environment's last applied configuration:
`plan -refresh-only` (what changed outside Terraform: its `resource_drift`) and a normal plan (what
Terraform would change to bring the environment back: its `resource_changes`). `drift_report` reads
both with the plan summary's own code (core.plan: the same actions, the same attribute diff, the same
masking of sensitive values), so a drift message never carries a value a plan review would not show.

The channel hears about drift only when it changes (`compare` against the report it last heard of):
new, grew, changed or resolved — never "still the same" and never "no drift". An acknowledgement
silences exactly one drift (its `fingerprint`) until the drift changes.

Everything here is pure: models in, models out.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from core.plan.document import ChangeValues, DriftEntry, ResourceEntry, optional_str
from core.plan.errors import PlanParseError
from core.plan.model import AttributeChange, PlanAction
from core.plan.reading import read_plan
from core.plan.rules import parse_action
from core.plan.values import any_true, attribute_diff, child, masked
from core.values import Value

MAX_LISTED_RESOURCES = 200  # a report keeps this many resources per kind (the rest are counted)


class DriftKind(StrEnum):
    OUTSIDE = "outside"  # changed (or deleted) outside Terraform: `plan -refresh-only`
    PENDING = "pending"  # Terraform would change it back: the normal plan


class DriftedResource(Value):
    kind: DriftKind
    address: str
    type: str
    action: PlanAction
    attributes: tuple[AttributeChange, ...] = ()  # the first few, masked and short (core.plan.values)
    more_attributes: int = 0
    changed: tuple[str, ...] = ()  # every changed top-level attribute name (sorted)
    digest: str = ""  # of the masked values of every changed attribute: what makes this drift this one

    @property
    def identity(self) -> tuple[str, str]:
        return self.kind.value, self.address


class DriftReport(Value):
    """What one check found; `resources` sorted by kind, then address."""

    resources: tuple[DriftedResource, ...] = ()
    more_resources: int = 0  # beyond MAX_LISTED_RESOURCES (counted in the fingerprint too)

    @property
    def has_drift(self) -> bool:
        return bool(self.resources) or self.more_resources > 0

    @property
    def outside(self) -> tuple[DriftedResource, ...]:
        return tuple(r for r in self.resources if r.kind is DriftKind.OUTSIDE)

    @property
    def pending(self) -> tuple[DriftedResource, ...]:
        return tuple(r for r in self.resources if r.kind is DriftKind.PENDING)

    @property
    def fingerprint(self) -> str:
        """The same drift gives the same fingerprint; any other resource, attribute or (shown) value
        gives another. Empty when there is no drift."""
        if not self.has_drift:
            return ""
        parts = [[r.kind.value, r.address, r.action.value, list(r.changed), r.digest] for r in self.resources]
        text = json.dumps({"resources": parts, "more": self.more_resources}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


def drift_report(
    refresh_only_plan: bytes | str | Mapping[str, Any], plan: bytes | str | Mapping[str, Any]
) -> DriftReport:
    """The drift of an environment from `terraform show -json` of its refresh-only plan and of its
    normal plan; an unusable plan raises PlanParseError (core.plan)."""
    outside = [
        _outside(entry, index) for index, entry in enumerate(read_plan(refresh_only_plan).resource_drift)
    ]
    pending = [_pending(entry, index) for index, entry in enumerate(read_plan(plan).resource_changes)]
    found = [r for r in (*outside, *pending) if r is not None]
    found.sort(key=lambda r: (r.kind is not DriftKind.OUTSIDE, r.address))
    return DriftReport(
        resources=tuple(found[:MAX_LISTED_RESOURCES]),
        more_resources=max(0, len(found) - MAX_LISTED_RESOURCES),
    )


def _outside(entry: DriftEntry, index: int) -> DriftedResource | None:
    address = entry.shown_address
    action = parse_action(entry.change.actions, f"resource_drift[{index}] ({address}).change.actions")
    if action is PlanAction.NO_OP or (optional_str(entry.mode) or "managed") != "managed":
        return None
    return _resource(DriftKind.OUTSIDE, address, entry.type, action, entry.change.values())


def _pending(entry: ResourceEntry, index: int) -> DriftedResource | None:
    address = optional_str(entry.address)
    if address is None:
        raise PlanParseError(f"resource_changes[{index}] in the plan has no `address`.")
    action = parse_action(entry.change.actions, f"resource_changes[{index}] ({address}).change.actions")
    if action in (PlanAction.NO_OP, PlanAction.READ) or (optional_str(entry.mode) or "managed") != "managed":
        return None
    return _resource(DriftKind.PENDING, address, entry.type, action, entry.change.values())


def _resource(
    kind: DriftKind, address: str, type_name: Any, action: PlanAction, values: ChangeValues
) -> DriftedResource:
    shows_attributes = action is PlanAction.UPDATE or action.is_replace
    attributes, more = attribute_diff(values) if shows_attributes else ((), 0)
    changed = _changed_names(values) if shows_attributes else []
    masked_values = [
        [name, _masked(values, name, "before"), _masked(values, name, "after")] for name in sorted(changed)
    ]
    digest = hashlib.sha256(json.dumps(masked_values, sort_keys=True).encode()).hexdigest()[:16]
    return DriftedResource(
        kind=kind,
        address=address,
        type=optional_str(type_name) or _type_from_address(address),
        action=action,
        attributes=attributes,
        more_attributes=more,
        changed=tuple(sorted(changed)),
        digest=digest,
    )


def _type_from_address(address: str) -> str:
    steps = [step for step in address.split("[", 1)[0].split(".") if step]
    return steps[-2] if len(steps) >= 2 else address


def _changed_names(values: ChangeValues) -> list[str]:
    before, after = values.before, values.after
    if not isinstance(before, Mapping) or not isinstance(after, Mapping):
        return []
    names = list(after) + [name for name in before if name not in after]
    return [n for n in names if before.get(n) != after.get(n) or any_true(child(values.after_unknown, n))]


def _masked(values: ChangeValues, name: str, side: str) -> str:
    """A value as a drift message could show it (never a sensitive one): the fingerprint is built from
    these, so no secret — not even its hash — is kept."""
    sensitive = any_true(child(values.before_sensitive, name)) or any_true(
        child(values.after_sensitive, name)
    )
    source = values.before if side == "before" else values.after
    value = source.get(name) if isinstance(source, Mapping) else None
    unknown = side == "after" and any_true(child(values.after_unknown, name))
    return masked(value, marked=values.marked, sensitive=sensitive, unknown=unknown)


# -- what changed since the channel last heard ------------------------------------------------------


class DriftChange(StrEnum):
    NEW = "new"  # drift where the channel last heard of none
    GREW = "grew"  # everything it heard of is still there, and more
    CHANGED = "changed"  # different drift
    RESOLVED = "resolved"  # no drift any more
    SAME = "same"  # nothing to say (also: no drift, as before)


def compare(reported: DriftReport | None, current: DriftReport) -> DriftChange:
    """How `current` differs from the drift the channel last heard of (`reported`; None: none)."""
    before = reported if reported is not None and reported.has_drift else None
    if before is None:
        return DriftChange.NEW if current.has_drift else DriftChange.SAME
    if not current.has_drift:
        return DriftChange.RESOLVED
    if before.fingerprint == current.fingerprint:
        return DriftChange.SAME
    old = {r.identity: r for r in before.resources}
    new = {r.identity: r for r in current.resources}
    kept = all(identity in new and new[identity].digest == r.digest for identity, r in old.items())
    if kept and len(new) + current.more_resources > len(old) + before.more_resources:
        return DriftChange.GREW
    return DriftChange.CHANGED


# -- the record of an environment's checks ---------------------------------------------------------


class CheckOutcome(StrEnum):
    CHECKED = "checked"
    BUSY = "busy"  # the state was in use (a plan or apply held it): skipped, retried soon
    FAILED = "failed"  # the check could not run (workspace, init, plan): the reason is kept


class DriftState(StrEnum):
    """Environments by drift state (the metric's label values: a bounded set)."""

    NONE = "none"
    DRIFTED = "drifted"
    ACKNOWLEDGED = "acknowledged"
    UNKNOWN = "unknown"


class DriftCheck(Value):
    at: datetime
    outcome: CheckOutcome
    report: DriftReport | None = None  # with CHECKED
    detail: str = ""  # why it was busy or failed (no values)


class Acknowledgement(Value):
    fingerprint: str
    user_id: str
    reason: str
    at: datetime


class DriftRecord(BaseModel):
    """One environment's drift: its last check, the last CHECKED result, what the channel last heard
    of, the acknowledgement, the next scheduled run."""

    environment_key: str
    last_check: DriftCheck | None = None
    last_result: DriftCheck | None = None
    reported: DriftReport | None = None
    reported_at: datetime | None = None
    acknowledgement: Acknowledgement | None = None
    next_run_at: datetime | None = None
    checks: int = Field(default=0, ge=0)

    @property
    def state(self) -> DriftState:
        return drift_state(self)


def is_acknowledged(acknowledgement: Acknowledgement | None, report: DriftReport) -> bool:
    """An acknowledgement silences exactly the drift it was given for."""
    return (
        acknowledgement is not None and report.has_drift and acknowledgement.fingerprint == report.fingerprint
    )


def drift_state(record: DriftRecord | None) -> DriftState:
    if record is None or record.last_result is None or record.last_result.report is None:
        return DriftState.UNKNOWN
    report = record.last_result.report
    if not report.has_drift:
        return DriftState.NONE
    return DriftState.ACKNOWLEDGED if is_acknowledged(record.acknowledgement, report) else DriftState.DRIFTED


class CheckVerdict(Value):
    record: DriftRecord
    change: DriftChange
    notify: bool  # post `change` in the environment's channel


def after_check(record: DriftRecord, check: DriftCheck) -> CheckVerdict:
    """The record after `check`, and whether the channel hears about it. Busy and failed checks say
    nothing and leave what the channel heard of as it was."""
    counted = record.model_copy(update={"last_check": check, "checks": record.checks + 1})
    if check.outcome is not CheckOutcome.CHECKED or check.report is None:
        return CheckVerdict(record=counted, change=DriftChange.SAME, notify=False)
    report = check.report
    change = compare(record.reported, report)
    updated = counted.model_copy(update={"last_result": check})
    if change is DriftChange.SAME:
        return CheckVerdict(record=updated, change=change, notify=False)
    acknowledgement = record.acknowledgement if report.has_drift else None
    updated = updated.model_copy(
        update={"reported": report, "reported_at": check.at, "acknowledgement": acknowledgement}
    )
    notify = not is_acknowledged(record.acknowledgement, report)
    return CheckVerdict(record=updated, change=change, notify=notify)


def acknowledge(
    record: DriftRecord, fingerprint: str, user_id: str, reason: str, at: datetime
) -> DriftRecord | None:
    """Silence the drift with `fingerprint`; None when that is not the drift the channel last heard of
    (it changed since the message was posted: the newer message has its own button)."""
    if record.reported is None or record.reported.fingerprint != fingerprint or not fingerprint:
        return None
    return record.model_copy(
        update={
            "acknowledgement": Acknowledgement(fingerprint=fingerprint, user_id=user_id, reason=reason, at=at)
        }
    )


# -- when checks run ----------------------------------------------------------------------------------

BUSY_RETRY_SECONDS = 60  # a busy state is tried again this soon (bounded by the interval)


def next_slot(now: datetime, interval_seconds: int) -> datetime:
    """The next run of a check every `interval_seconds`: aligned to multiples of the interval, so every
    worker that asks in the same period names the same slot (one job id, one claim)."""
    epoch = now.timestamp()
    slot = (math.floor(epoch / interval_seconds) + 1) * interval_seconds
    return datetime.fromtimestamp(slot, tz=UTC)


def retry_at(now: datetime, interval_seconds: int) -> datetime:
    return now + timedelta(seconds=max(1, min(BUSY_RETRY_SECONDS, interval_seconds // 2 or 1)))


def effective_interval(default_seconds: int, override_seconds: int | None) -> int:
    """The environment's interval: its policy override when set, else the setting (0: off)."""
    return default_seconds if override_seconds is None else override_seconds


def slot_job_id(environment_key: str, at: datetime, *, retry: bool = False) -> str:
    """RQ job id of the check of `environment_key` at `at` (deterministic: a second enqueue of the same
    slot replaces the first instead of adding a check)."""
    return f"drift-{environment_key}-{'retry-' if retry else ''}{int(at.timestamp())}"


def listed(resources: Iterable[DriftedResource], limit: int) -> tuple[list[DriftedResource], int]:
    items = list(resources)
    return items[:limit], max(0, len(items) - limit)
