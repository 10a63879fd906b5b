"""The apply gate: the last check before `terraform apply` (core/approval.py records who approved
which plan; this says whether the plan on disk may be applied now, or what blocks it, as data)."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from core.approval import DEFAULT_APPROVAL_TTL, ApprovalState, PlanBinding, check_clock
from core.values import Value


class ApplyBlocker(StrEnum):
    """Why an approved plan may not be applied (`is_applyable`)."""

    NO_PLAN = "no_plan"
    REJECTED = "rejected"
    PLAN_MISSING = "plan_missing"  # no plan file for the current plan
    PLAN_DIFFERS = "plan_differs"  # the plan on disk is not the approved one (`differing` fields)
    EXPIRED = "expired"
    APPROVALS_MISSING = "approvals_missing"


class Applyability(Value):
    """The answer of `is_applyable`: allowed, or the blocker (with the state and facts to explain it)."""

    state: ApprovalState
    blocker: ApplyBlocker | None = None
    differing: tuple[str, ...] = ()
    ttl: timedelta = DEFAULT_APPROVAL_TTL

    @property
    def allowed(self) -> bool:
        return self.blocker is None


def is_applyable(
    state: ApprovalState,
    binding_on_disk: PlanBinding | None,
    now: datetime,
    ttl: timedelta = DEFAULT_APPROVAL_TTL,
) -> Applyability:
    """The last check before `terraform apply`: the plan on disk is the approved one, it has not
    expired, it has enough distinct approvals, and it was not rejected."""
    check_clock(now, ttl)

    def blocked(blocker: ApplyBlocker, differing: tuple[str, ...] = ()) -> Applyability:
        return Applyability(state=state, blocker=blocker, differing=differing, ttl=ttl)

    current = state.binding
    if current is None:
        return blocked(ApplyBlocker.NO_PLAN)
    if state.rejection is not None:
        return blocked(ApplyBlocker.REJECTED)
    if binding_on_disk is None:
        return blocked(ApplyBlocker.PLAN_MISSING)
    if binding_on_disk != current:
        return blocked(ApplyBlocker.PLAN_DIFFERS, tuple(current.differences(binding_on_disk)))
    if now >= current.expires_at(ttl):
        return blocked(ApplyBlocker.EXPIRED)
    if not state.is_ready:
        return blocked(ApplyBlocker.APPROVALS_MISSING)
    return Applyability(state=state, ttl=ttl)
