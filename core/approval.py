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

All transitions are pure: they return a new state and never mutate their input. They return
outcomes and the facts behind them as data (`ClickFacts`, `Membership`); the words a person reads
are bot/views/approval.py's. Whether an approved plan may be applied now is core/apply_gate.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, ConfigDict, Field

from core.policy.access import AccessPolicy, Decision
from core.policy.principals import Principals, SlackIdentity
from core.values import Value

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
    REFUSED_PROTECTED = "refused_protected"  # a destroy of a protected environment (issue 13)
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


class Membership(StrEnum):
    """What Slack says about a person, as far as approving goes (`member_may_approve`)."""

    FULL_MEMBER = "full_member"
    UNCONFIRMED = "unconfirmed"  # Slack could not vouch for them (users.info or auth.test failed)
    INACTIVE = "inactive"  # a bot or a deactivated account
    GUEST = "guest"  # restricted or ultra-restricted
    OTHER_ORGANISATION = "other_organisation"  # Slack Connect: another team

    @property
    def may_approve(self) -> bool:
        return self is Membership.FULL_MEMBER


class PlanBinding(Value):
    """Exactly which plan an approval is for. Two bindings are the same plan only if all fields match."""

    model_config = ConfigDict(extra="forbid")

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


class Approval(Value):
    model_config = ConfigDict(extra="forbid")

    approver_id: str
    at: AwareDatetime
    binding: PlanBinding


class Rejection(Value):
    model_config = ConfigDict(extra="forbid")

    by: str
    at: AwareDatetime
    reason: str = ""
    binding: PlanBinding
    by_requester: bool = False  # the requester withdrew their own request


class ClickFacts(Value):
    """Why a click had its outcome, as data (bot/views/approval.py words it). Only the fields the
    outcome concerns are set."""

    model_config = ConfigDict(extra="forbid")

    plan: PlanBinding | None = None  # the current plan
    seen: PlanBinding | None = None  # the plan the button was rendered for
    policy: Decision | None = None  # the access policy's own answer
    membership: Membership | None = None
    scope: str = ""  # the approval rule's profile/environment
    approvers: Principals | None = None  # who may approve under that rule
    environment: str = ""
    required: int = 0
    missing: int = 0  # approvals still needed after this click
    earlier_at: AwareDatetime | None = None  # this person's earlier approval of the same plan
    expires_at: AwareDatetime | None = None
    ttl: timedelta | None = None
    value_author: bool = False  # refused because they set values of the deployment
    destroy: bool = False  # the rule was a destroy's (allow_self_destroy_approval, not allow_self_approval)
    by_requester: bool = False  # a rejection by the requester (a withdrawal)


class Click(Value):
    """One button press, recorded whether or not it was allowed."""

    model_config = ConfigDict(extra="forbid")

    user_id: str
    at: AwareDatetime
    action: ClickAction
    allowed: bool
    reason: str = ""  # the message shown, on clicks recorded before outcomes became data (`facts`)
    outcome: ApprovalOutcome
    binding_seen: PlanBinding | None = None
    facts: ClickFacts | None = None


class ClickContext(Value):
    """What an Approve or Reject click is judged on besides the state and the policy: who clicked,
    the deployment's profile, environment and requester, the plan the button was rendered for
    (None when it is no longer the one under review), and when."""

    model_config = ConfigDict(extra="forbid")

    user: SlackIdentity
    profile: str
    environment: str
    requester_id: str
    binding_seen: PlanBinding | None
    now: AwareDatetime


class ApprovalState(Value):
    """The approval record of one deployment; replaced, never mutated, by the functions below."""

    model_config = ConfigDict(extra="forbid")

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


class ApprovalResult(Value):
    """A transition's outcome: the new state to store, and why (bot/views/approval.py tells the
    person who clicked)."""

    state: ApprovalState
    action: ClickAction
    outcome: ApprovalOutcome
    facts: ClickFacts

    @property
    def allowed(self) -> bool:
        return self.outcome.accepted

    @property
    def apply_now(self) -> bool:
        return self.outcome is ApprovalOutcome.APPROVED_READY

    @property
    def audit_event(self) -> str:
        """The audit trail's name for this click: approval, rejection, or either with `_refused`."""
        event = "approval" if self.action is ClickAction.APPROVE else "rejection"
        return event if self.allowed else f"{event}_refused"

    @property
    def plan_sha256(self) -> str | None:
        """The current plan's hash after the click (None when there is no plan)."""
        binding = self.state.binding
        return binding.plan_sha256 if binding else None


# ---------------------------------------------------------------------------------------------
# Who counts


def member_may_approve(user: SlackIdentity) -> Membership:
    """Whether an approval by this user may count at all, from what Slack says about them: only an
    active, human, full member of the workspace the bot is installed in. Unknown facts refuse."""
    member, workspace = user.member, user.workspace_team_id
    if member is None or workspace is None:
        return Membership.UNCONFIRMED
    if member.deleted or member.is_bot:
        return Membership.INACTIVE
    if member.is_restricted or member.is_ultra_restricted:
        return Membership.GUEST
    if member.team_id != workspace:
        return Membership.OTHER_ORGANISATION
    return Membership.FULL_MEMBER


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
    click: ClickContext,
    *,
    value_authors: frozenset[str] = frozenset(),
    ttl: timedelta = DEFAULT_APPROVAL_TTL,
    destroy: bool = False,
) -> ApprovalResult:
    """An Approve click on a button rendered for `click.binding_seen`. The policy is consulted live;
    with `destroy` (a destroy's plan) its destroy rule applies: destroy_approvals, the self-destroy
    setting, and no approval at all for a protected environment."""
    user, profile, environment = click.user, click.profile, click.environment
    binding_seen, now = click.binding_seen, click.now
    check_clock(now, ttl)
    action = ClickAction.APPROVE

    def refuse(outcome: ApprovalOutcome, facts: ClickFacts) -> ApprovalResult:
        return _result(state, click, action, outcome, facts)

    if state.is_decided:
        return refuse(ApprovalOutcome.REFUSED_ALREADY_DECIDED, ClickFacts(plan=state.binding))
    rule = policy.approval_rule(profile, environment, destroy=destroy)
    decision = policy.can_approve(user, profile, environment)
    if rule is None or not decision.allowed:
        return refuse(ApprovalOutcome.REFUSED_NOT_APPROVER, ClickFacts(policy=decision))
    if rule.protected:
        return refuse(
            ApprovalOutcome.REFUSED_PROTECTED, ClickFacts(scope=rule.scope, environment=environment)
        )
    declared = policy.check_environment(profile, environment)
    if not declared.allowed:
        return refuse(ApprovalOutcome.REFUSED_UNDECLARED_ENVIRONMENT, ClickFacts(policy=declared))
    membership = member_may_approve(user)
    if not membership.may_approve:
        return refuse(ApprovalOutcome.REFUSED_NOT_FULL_MEMBER, ClickFacts(membership=membership))
    is_author = user.user_id in value_authors
    if (user.user_id == click.requester_id or is_author) and not rule.allow_self_approval:
        # Whoever chose values that went into the plan reviews their own work when approving it.
        facts = ClickFacts(
            scope=rule.scope,
            approvers=rule.approvers,
            value_author=user.user_id != click.requester_id,
            destroy=rule.destroy,
        )
        return refuse(ApprovalOutcome.REFUSED_SELF_APPROVAL, facts)
    if _is_stale(state, binding_seen):
        return refuse(ApprovalOutcome.REFUSED_STALE_PLAN, ClickFacts(plan=state.binding, seen=binding_seen))
    current = state.binding
    assert current is not None  # _is_stale refuses when there is no current plan
    if now >= current.expires_at(ttl):
        return refuse(
            ApprovalOutcome.REFUSED_EXPIRED,
            ClickFacts(plan=current, expires_at=current.expires_at(ttl), ttl=ttl),
        )
    rule_facts = ClickFacts(plan=current, environment=rule.environment, required=rule.required_approvals)
    earlier = next((a for a in state.current_approvals if a.approver_id == user.user_id), None)
    if earlier is not None:
        facts = rule_facts.model_copy(update={"earlier_at": earlier.at, "missing": state.missing_approvals})
        return refuse(ApprovalOutcome.REFUSED_ALREADY_APPROVED, facts)

    approved = state.model_copy(
        update={
            "approvals": (*state.approvals, Approval(approver_id=user.user_id, at=now, binding=current)),
            "required_approvals": rule.required_approvals,
        }
    )
    outcome = ApprovalOutcome.APPROVED_READY if approved.is_ready else ApprovalOutcome.APPROVED_WAITING
    facts = rule_facts.model_copy(update={"missing": approved.missing_approvals})
    return _result(approved, click, action, outcome, facts)


def record_rejection(
    state: ApprovalState, policy: AccessPolicy, click: ClickContext, *, reason: str = ""
) -> ApprovalResult:
    """A Reject click: allowed for approvers of the profile/environment and for the requester
    (withdrawal). An expired plan may be rejected; a ready or already rejected one may not."""
    user, binding_seen, now = click.user, click.binding_seen, click.now
    check_clock(now, DEFAULT_APPROVAL_TTL)
    action = ClickAction.REJECT
    reason = reason.strip()[:MAX_REASON]

    def refuse(outcome: ApprovalOutcome, facts: ClickFacts) -> ApprovalResult:
        return _result(state, click, action, outcome, facts)

    if state.is_decided:
        return refuse(ApprovalOutcome.REFUSED_ALREADY_DECIDED, ClickFacts(plan=state.binding))
    is_requester = user.user_id == click.requester_id
    decision = policy.can_approve(user, click.profile, click.environment)
    if not (is_requester or decision.allowed):
        return refuse(ApprovalOutcome.REFUSED_NOT_APPROVER, ClickFacts(policy=decision))
    if _is_stale(state, binding_seen):
        return refuse(ApprovalOutcome.REFUSED_STALE_PLAN, ClickFacts(plan=state.binding, seen=binding_seen))
    current = state.binding
    assert current is not None
    rejection = Rejection(by=user.user_id, at=now, reason=reason, binding=current, by_requester=is_requester)
    rejected = state.model_copy(update={"rejection": rejection})
    facts = ClickFacts(plan=current, by_requester=is_requester)
    return _result(rejected, click, action, ApprovalOutcome.REJECTED, facts)


# ---------------------------------------------------------------------------------------------
# Helpers


def _is_stale(state: ApprovalState, binding_seen: PlanBinding | None) -> bool:
    """The button was not rendered for the current plan (or there is none)."""
    return state.binding is None or binding_seen is None or binding_seen != state.binding


def _result(
    state: ApprovalState,
    context: ClickContext,
    action: ClickAction,
    outcome: ApprovalOutcome,
    facts: ClickFacts,
) -> ApprovalResult:
    click = Click(
        user_id=context.user.user_id,
        at=context.now,
        action=action,
        allowed=outcome.accepted,
        outcome=outcome,
        binding_seen=context.binding_seen,
        facts=facts,
    )
    clicks = (*state.clicks, click)[-MAX_CLICKS:]
    return ApprovalResult(
        state=state.model_copy(update={"clicks": clicks}), action=action, outcome=outcome, facts=facts
    )


def check_clock(now: datetime, ttl: timedelta) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    if ttl <= timedelta(0):
        raise ValueError("ttl must be positive")
