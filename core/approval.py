"""Approval of a Terraform plan: who approved which exact plan, and whether it may be applied.

Storage model: one `ApprovalState` lives on the deployment (JSON in Redis). It names the current
plan by a `PlanBinding` (sha256 of the plan file, repo commit, sha256 of the tfvars, creation time,
attempt counter and, when known, the state serial/lineage). Every approval and rejection carries the
binding it was given for, and every click — allowed or refused — is kept in `clicks` as an audit
trail (the most recent MAX_CLICKS).

Invariants (prior-art.md §3, §7):
- A new plan discards earlier approvals and rejection (Atlantis --discard-approval-on-plan); its
  attempt must be higher than the previous one, so an old button can never approve a new plan.
- A click counts only for the binding its button was rendered for (`binding_seen`) and only before
  `plan_created_at + ttl` (expired exactly at the TTL).
- Approvals count distinct people; the requester cannot approve unless the policy allows it.
- Only full members of the installed workspace count (`member_may_approve`): never a guest
  (restricted / ultra-restricted), a user of another organisation (Slack Connect: another team_id),
  a bot or deactivated account, nor anyone Slack could not vouch for (fail closed).
- A plan for an environment its profile does not declare cannot be approved (the request form
  refuses such an environment; this catches a policy changed after the request).
- Once enough approvals are in (or the plan is rejected), every further click is
  REFUSED_ALREADY_DECIDED. The caller applies `record_approval` inside a Redis transaction
  (WATCH/MULTI on the deployment), so of two concurrent clicks exactly one yields APPROVED_READY.
- Rejection: any approver of the profile/environment may reject, and the requester may withdraw their
  own request (both are the safe direction). An approver may reject after approving. A rejection on
  a stale button is refused (the reviewer saw a different plan); an expired plan may still be
  rejected. Nothing can be rejected once it is ready to apply.

All transitions are pure: they return a new state and never mutate their input.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from core.policy.access import AccessPolicy, ApprovalRule, Decision
from core.policy.principals import SlackIdentity, mention

DEFAULT_APPROVAL_TTL = timedelta(hours=24)
MAX_CLICKS = 500
MAX_REASON = 1000
SHORT_HASH = 8


def _hex(length_min: int, length_max: int) -> AfterValidator:
    def check(value: str) -> str:
        value = value.strip().lower()
        if not (length_min <= len(value) <= length_max) or any(c not in "0123456789abcdef" for c in value):
            size = str(length_min) if length_min == length_max else f"{length_min}-{length_max}"
            raise ValueError(f"must be {size} hexadecimal characters")
        return value

    return AfterValidator(check)


Sha256 = Annotated[str, _hex(64, 64)]
CommitSha = Annotated[str, _hex(7, 64)]


class ClickAction(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


class ApprovalOutcome(StrEnum):
    APPROVED_READY = "approved_ready"  # enough distinct approvers: apply now
    APPROVED_WAITING = "approved_waiting"  # counted; more approvals needed
    REJECTED = "rejected"  # rejected by an approver, or withdrawn by the requester
    REFUSED_NOT_APPROVER = "refused_not_approver"
    REFUSED_NOT_FULL_MEMBER = "refused_not_full_member"  # guest, other organisation, or unknown
    REFUSED_UNDECLARED_ENVIRONMENT = "refused_undeclared_environment"
    REFUSED_SELF_APPROVAL = "refused_self_approval"
    REFUSED_ALREADY_APPROVED = "refused_already_approved"
    REFUSED_STALE_PLAN = "refused_stale_plan"
    REFUSED_EXPIRED = "refused_expired"
    REFUSED_ALREADY_DECIDED = "refused_already_decided"

    @property
    def accepted(self) -> bool:
        return self in (
            ApprovalOutcome.APPROVED_READY,
            ApprovalOutcome.APPROVED_WAITING,
            ApprovalOutcome.REJECTED,
        )


class PlanBinding(BaseModel):
    """Exactly which plan an approval is for. Two bindings are the same plan only if all fields match."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    plan_sha256: Sha256
    repo_commit: CommitSha
    tfvars_sha256: Sha256
    plan_created_at: AwareDatetime
    attempt: int = Field(ge=1)  # incremented for each plan of a deployment
    state_serial: int | None = Field(default=None, ge=0)  # Terraform state serial at plan time
    state_lineage: str | None = None  # Terraform state lineage at plan time

    @property
    def short(self) -> str:
        return self.plan_sha256[:SHORT_HASH] + "…"

    def expires_at(self, ttl: timedelta) -> datetime:
        return self.plan_created_at + ttl

    def differences(self, other: PlanBinding) -> list[str]:
        """Names of the fields in which the two bindings differ."""
        return [name for name in PlanBinding.model_fields if getattr(self, name) != getattr(other, name)]


class Approval(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    approver_id: str
    at: AwareDatetime
    binding: PlanBinding


class Rejection(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    by: str
    at: AwareDatetime
    reason: str = ""
    binding: PlanBinding
    by_requester: bool = False  # the requester withdrew their own request


class Click(BaseModel):
    """One button press, recorded whether or not it was allowed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user_id: str
    at: AwareDatetime
    action: ClickAction
    allowed: bool
    reason: str
    outcome: ApprovalOutcome
    binding_seen: PlanBinding | None = None


class ApprovalState(BaseModel):
    """The approval record of one deployment; replaced, never mutated, by the functions below."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    binding: PlanBinding | None = None
    approvals: tuple[Approval, ...] = ()
    rejection: Rejection | None = None
    clicks: tuple[Click, ...] = ()
    required_approvals: int = Field(default=1, ge=1)

    @property
    def current_approvals(self) -> tuple[Approval, ...]:
        """Approvals for the current binding, first one per person (distinct approvers only)."""
        seen: set[str] = set()
        result = []
        for approval in self.approvals:
            if (
                self.binding is not None
                and approval.binding == self.binding
                and approval.approver_id not in seen
            ):
                seen.add(approval.approver_id)
                result.append(approval)
        return tuple(result)

    @property
    def approver_ids(self) -> list[str]:
        return [a.approver_id for a in self.current_approvals]

    @property
    def missing_approvals(self) -> int:
        return max(0, self.required_approvals - len(self.current_approvals))

    @property
    def is_rejected(self) -> bool:
        return self.rejection is not None

    @property
    def is_ready(self) -> bool:
        """Enough distinct approvals for the current plan and no rejection (apply may start)."""
        return (
            self.binding is not None
            and not self.is_rejected
            and bool(self.current_approvals)
            and self.missing_approvals == 0
        )

    @property
    def is_decided(self) -> bool:
        return self.is_rejected or self.is_ready


class ApprovalResult(BaseModel):
    """A transition's outcome: the new state to store, and a message for the person who clicked."""

    model_config = ConfigDict(frozen=True)

    state: ApprovalState
    outcome: ApprovalOutcome
    message: str

    @property
    def allowed(self) -> bool:
        return self.outcome.accepted

    @property
    def apply_now(self) -> bool:
        return self.outcome is ApprovalOutcome.APPROVED_READY


# ---------------------------------------------------------------------------------------------
# Who counts


def member_may_approve(user: SlackIdentity) -> Decision:
    """Whether an approval by this user may count at all, from what Slack says about them: only an
    active, human, full member of the workspace the bot is installed in. Unknown facts refuse."""
    member, workspace = user.member, user.workspace_team_id
    if member is None or workspace is None:
        return Decision.deny(
            "The bot could not confirm with Slack that you are a full member of this workspace, so your"
            " approval cannot count. Try again in a minute."
        )
    if member.deleted or member.is_bot:
        return Decision.deny("Only active people can approve plans, not bots or deactivated accounts.")
    if member.is_restricted or member.is_ultra_restricted:
        return Decision.deny(
            "Guests of this workspace cannot approve plans, even when the access policy names them."
            " Ask an approver who is a full member."
        )
    if member.team_id != workspace:
        return Decision.deny(
            "You belong to another organisation's Slack workspace (a Slack Connect channel); only full"
            " members of this workspace can approve plans."
        )
    return Decision.allow("You are a full member of this workspace.")


# ---------------------------------------------------------------------------------------------
# Transitions


def new_plan(
    state: ApprovalState, binding: PlanBinding, *, required_approvals: int | None = None
) -> ApprovalState:
    """A fresh plan: earlier approvals and any rejection are discarded; clicks are kept for audit.
    The attempt must increase so that buttons rendered for an earlier plan can never match."""
    if state.binding is not None and binding.attempt <= state.binding.attempt:
        raise ValueError(
            f"plan attempt {binding.attempt} must be greater than the current attempt {state.binding.attempt}"
        )
    return state.model_copy(
        update={
            "binding": binding,
            "approvals": (),
            "rejection": None,
            "required_approvals": required_approvals or state.required_approvals,
        }
    )


def record_approval(
    state: ApprovalState,
    policy: AccessPolicy,
    *,
    user: SlackIdentity,
    profile: str,
    environment: str,
    requester_id: str,
    value_authors: frozenset[str] = frozenset(),
    binding_seen: PlanBinding | None,
    now: datetime,
    ttl: timedelta = DEFAULT_APPROVAL_TTL,
) -> ApprovalResult:
    """An Approve click on a button rendered for `binding_seen`. The policy is consulted live."""
    _check_clock(now, ttl)
    action = ClickAction.APPROVE

    def refuse(outcome: ApprovalOutcome, message: str) -> ApprovalResult:
        return _result(state, user.user_id, now, action, binding_seen, outcome, message)

    if state.is_decided:
        return refuse(ApprovalOutcome.REFUSED_ALREADY_DECIDED, _decided_message(state))
    rule = policy.approval_rule(profile, environment)
    decision = policy.can_approve(user, profile, environment)
    if rule is None or not decision.allowed:
        return refuse(ApprovalOutcome.REFUSED_NOT_APPROVER, decision.reason)
    declared = policy.check_environment(profile, environment)
    if not declared.allowed:
        return refuse(
            ApprovalOutcome.REFUSED_UNDECLARED_ENVIRONMENT,
            f"{declared.reason} A plan for it cannot be approved; make a new request.",
        )
    member = member_may_approve(user)
    if not member.allowed:
        return refuse(ApprovalOutcome.REFUSED_NOT_FULL_MEMBER, member.reason)
    if user.user_id == requester_id and not rule.allow_self_approval:
        return refuse(
            ApprovalOutcome.REFUSED_SELF_APPROVAL,
            f"You requested this deployment, so you cannot approve it yourself ({rule.scope} does not"
            f" allow self-approval). Ask another approver: {rule.approvers.describe()}.",
        )
    if user.user_id in value_authors and not rule.allow_self_approval:
        # Whoever chose values that went into the plan reviews their own work when approving it.
        return refuse(
            ApprovalOutcome.REFUSED_SELF_APPROVAL,
            f"You set values of this deployment, so you cannot approve its plan yourself ({rule.scope} does"
            f" not allow self-approval). Ask another approver: {rule.approvers.describe()}.",
        )
    stale = _stale_message(state, binding_seen)
    if stale:
        return refuse(ApprovalOutcome.REFUSED_STALE_PLAN, stale)
    current = state.binding
    assert current is not None  # _stale_message refuses when there is no current plan
    if now >= current.expires_at(ttl):
        return refuse(ApprovalOutcome.REFUSED_EXPIRED, _expired_message(current, ttl))
    earlier = next((a for a in state.current_approvals if a.approver_id == user.user_id), None)
    if earlier is not None:
        return refuse(
            ApprovalOutcome.REFUSED_ALREADY_APPROVED,
            f"You already approved plan {current.short} at {_clock(earlier.at)}; one person counts once."
            f" {_missing_text(state.missing_approvals, rule)}",
        )

    approved = state.model_copy(
        update={
            "approvals": (*state.approvals, Approval(approver_id=user.user_id, at=now, binding=current)),
            "required_approvals": rule.required_approvals,
        }
    )
    if approved.is_ready:
        outcome = ApprovalOutcome.APPROVED_READY
        message = f"You approved plan {current.short}; it has all required approvals and will be applied now."
    else:
        outcome = ApprovalOutcome.APPROVED_WAITING
        message = f"You approved plan {current.short}. {_missing_text(approved.missing_approvals, rule)}"
    return _result(approved, user.user_id, now, action, binding_seen, outcome, message)


def record_rejection(
    state: ApprovalState,
    policy: AccessPolicy,
    *,
    user: SlackIdentity,
    profile: str,
    environment: str,
    requester_id: str,
    binding_seen: PlanBinding | None,
    now: datetime,
    reason: str = "",
) -> ApprovalResult:
    """A Reject click: allowed for approvers of the profile/environment and for the requester
    (withdrawal). An expired plan may be rejected; a ready or already rejected one may not."""
    _check_clock(now, DEFAULT_APPROVAL_TTL)
    action = ClickAction.REJECT
    reason = reason.strip()[:MAX_REASON]

    def refuse(outcome: ApprovalOutcome, message: str) -> ApprovalResult:
        return _result(state, user.user_id, now, action, binding_seen, outcome, message)

    if state.is_decided:
        return refuse(ApprovalOutcome.REFUSED_ALREADY_DECIDED, _decided_message(state))
    is_requester = user.user_id == requester_id
    decision = policy.can_approve(user, profile, environment)
    if not (is_requester or decision.allowed):
        return refuse(
            ApprovalOutcome.REFUSED_NOT_APPROVER,
            f"Only the requester or an approver can reject this plan. {decision.reason}",
        )
    stale = _stale_message(state, binding_seen)
    if stale:
        return refuse(ApprovalOutcome.REFUSED_STALE_PLAN, stale)
    current = state.binding
    assert current is not None
    rejection = Rejection(by=user.user_id, at=now, reason=reason, binding=current, by_requester=is_requester)
    rejected = state.model_copy(update={"rejection": rejection})
    verb = "withdrew your request for" if is_requester else "rejected"
    return _result(
        rejected,
        user.user_id,
        now,
        action,
        binding_seen,
        ApprovalOutcome.REJECTED,
        f"You {verb} plan {current.short}; it will not be applied.",
    )


def is_applyable(
    state: ApprovalState,
    binding_on_disk: PlanBinding | None,
    now: datetime,
    ttl: timedelta = DEFAULT_APPROVAL_TTL,
) -> Decision:
    """The last check before `terraform apply`: the plan on disk is the approved one, it has not
    expired, it has enough distinct approvals, and it was not rejected."""
    _check_clock(now, ttl)
    current = state.binding
    if current is None:
        return Decision.deny("There is no plan to apply.")
    if state.rejection is not None:
        return Decision.deny(_rejected_text(state.rejection) + ".")
    if binding_on_disk is None:
        return Decision.deny(f"The plan file for plan {current.short} is missing; make a new plan.")
    if binding_on_disk != current:
        fields = ", ".join(current.differences(binding_on_disk))
        return Decision.deny(
            f"The plan on disk is not the plan that was approved ({fields} differ); make a new plan."
        )
    if now >= current.expires_at(ttl):
        return Decision.deny(_expired_message(current, ttl))
    if not state.is_ready:
        count = state.missing_approvals
        return Decision.deny(
            f"{count} more approval{'s' if count != 1 else ''} needed"
            f" ({state.required_approvals} required) before plan {current.short} can be applied."
        )
    return Decision.allow(_approved_text(state) + ".")


# ---------------------------------------------------------------------------------------------
# Text


def decision_text(state: ApprovalState, *, environment: str | None = None) -> str:
    """The line that replaces the buttons, e.g. "Approved by <@U1> at 14:02 UTC (plan 3f2a9c1b…)",
    "Rejected by <@U2>: <reason>", "Approved by <@U1> — 1 more approval needed (prod requires 2)"."""
    if state.binding is None:
        return "No plan yet."
    if state.rejection is not None:
        return _rejected_text(state.rejection)
    if state.is_ready:
        return _approved_text(state)
    requires = (
        f"{environment} requires {state.required_approvals}"
        if environment
        else f"{state.required_approvals} required"
    )
    count = state.missing_approvals
    needed = f"{count} more approval{'s' if count != 1 else ''} needed ({requires})"
    if not state.current_approvals:
        return f"Waiting for approval — {needed} (plan {state.binding.short})"
    who = _join([mention(a.approver_id) for a in state.current_approvals])
    return f"Approved by {who} — {needed}"


def _approved_text(state: ApprovalState) -> str:
    assert state.binding is not None
    who = _join([f"{mention(a.approver_id)} at {_clock(a.at)}" for a in state.current_approvals])
    return f"Approved by {who} (plan {state.binding.short})"


def _rejected_text(rejection: Rejection) -> str:
    verb = "Withdrawn by the requester" if rejection.by_requester else "Rejected by"
    text = f"{verb} {mention(rejection.by)}"
    return f"{text}: {_escaped(rejection.reason)}" if rejection.reason else text


def _escaped(text: str) -> str:
    """Free text shown in Slack: `<!channel>`, `<@U…>` and `<url|label>` must stay plain text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _decided_message(state: ApprovalState) -> str:
    if state.rejection is not None:
        return f"This plan was already decided: {_rejected_text(state.rejection)}."
    return f"This plan was already decided: {_approved_text(state)}; it is being applied."


def _stale_message(state: ApprovalState, binding_seen: PlanBinding | None) -> str:
    current = state.binding
    if current is None:
        return "There is no plan waiting for approval on this deployment."
    if binding_seen is None or binding_seen != current:
        seen = (
            f"plan {binding_seen.short} (attempt {binding_seen.attempt})"
            if binding_seen
            else "an unknown plan"
        )
        return (
            f"This button was for {seen}, but the current plan is {current.short} (attempt"
            f" {current.attempt}). Review the latest plan and use its buttons."
        )
    return ""


def _expired_message(binding: PlanBinding, ttl: timedelta) -> str:
    return (
        f"Plan {binding.short} expired at {binding.expires_at(ttl).astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        f" (plans can be approved and applied for {_duration(ttl)} after planning). Make a new plan."
    )


def _missing_text(missing: int, rule: ApprovalRule) -> str:
    if missing <= 0:
        return "No more approvals are needed."
    return (
        f"{missing} more approval{'s' if missing != 1 else ''} needed"
        f" ({rule.environment} requires {rule.required_approvals})."
    )


def _result(
    state: ApprovalState,
    user_id: str,
    now: datetime,
    action: ClickAction,
    binding_seen: PlanBinding | None,
    outcome: ApprovalOutcome,
    message: str,
) -> ApprovalResult:
    click = Click(
        user_id=user_id,
        at=now,
        action=action,
        allowed=outcome.accepted,
        reason=message,
        outcome=outcome,
        binding_seen=binding_seen,
    )
    clicks = (*state.clicks, click)[-MAX_CLICKS:]
    return ApprovalResult(state=state.model_copy(update={"clicks": clicks}), outcome=outcome, message=message)


def _check_clock(now: datetime, ttl: timedelta) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    if ttl <= timedelta(0):
        raise ValueError("ttl must be positive")


def _clock(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%H:%M UTC")


def _duration(ttl: timedelta) -> str:
    minutes = int(ttl.total_seconds() // 60)
    if minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min"


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]
