"""The words of plan approval: what a click did (`click_text`), the line that replaces the buttons
(`decision_text`) and why an approved plan was not applied (`applyability_text`). core/approval.py
decides; this module only says it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.views.access import describe, mention, reason_text
from bot.views.blocks import escape_mrkdwn
from bot.views.destroy import protected_approval_text
from bot.views.messages import Message, text_message
from core.apply_gate import Applyability, ApplyBlocker
from core.approval import (
    ApprovalOutcome,
    ApprovalResult,
    ApprovalState,
    ClickAction,
    ClickFacts,
    Membership,
    PlanBinding,
    Rejection,
)

MEMBERSHIP_TEXT = {
    Membership.FULL_MEMBER: "You are a full member of this workspace.",
    Membership.UNCONFIRMED: (
        "The bot could not confirm with Slack that you are a full member of this workspace, so your"
        " approval cannot count. Try again in a minute."
    ),
    Membership.INACTIVE: "Only active people can approve plans, not bots or deactivated accounts.",
    Membership.GUEST: (
        "Guests of this workspace cannot approve plans, even when the access policy names them."
        " Ask an approver who is a full member."
    ),
    Membership.OTHER_ORGANISATION: (
        "You belong to another organisation's Slack workspace (a Slack Connect channel); only full"
        " members of this workspace can approve plans."
    ),
}


def click_text(result: ApprovalResult) -> str:
    """What the person who clicked Approve or Reject is told."""
    facts, outcome = result.facts, result.outcome
    match outcome:
        case ApprovalOutcome.APPROVED_READY:
            return f"You approved plan {_short(facts.plan)}; it has all required approvals and will be applied now."
        case ApprovalOutcome.APPROVED_WAITING:
            return f"You approved plan {_short(facts.plan)}. {_missing_text(facts)}"
        case ApprovalOutcome.REJECTED:
            verb = "withdrew your request for" if facts.by_requester else "rejected"
            return f"You {verb} plan {_short(facts.plan)}; it will not be applied."
        case ApprovalOutcome.REFUSED_ALREADY_DECIDED:
            return _decided_text(result.state)
        case ApprovalOutcome.REFUSED_NOT_APPROVER:
            if result.action is ClickAction.REJECT:
                return f"Only the requester or an approver can reject this plan. {_policy_text(facts)}"
            return _policy_text(facts)
        case ApprovalOutcome.REFUSED_UNDECLARED_ENVIRONMENT:
            return f"{_policy_text(facts)} A plan for it cannot be approved; make a new request."
        case ApprovalOutcome.REFUSED_PROTECTED:
            return protected_approval_text(facts.scope)
        case ApprovalOutcome.REFUSED_NOT_FULL_MEMBER:
            return MEMBERSHIP_TEXT[facts.membership or Membership.UNCONFIRMED]
        case ApprovalOutcome.REFUSED_SELF_APPROVAL if facts.destroy:
            return (
                "You requested this destroy, so you cannot approve it yourself: a destroy needs approvers"
                " other than the person who requested it (the access policy's"
                f" `allow_self_destroy_approval` is off for {facts.scope}). Ask other approvers:"
                f" {describe(facts.approvers)}."
            )
        case ApprovalOutcome.REFUSED_SELF_APPROVAL:
            did = "set values of this deployment, so you cannot approve its plan yourself"
            if not facts.value_author:
                did = "requested this deployment, so you cannot approve it yourself"
            return (
                f"You {did} ({facts.scope} does not allow self-approval). Ask another approver:"
                f" {describe(facts.approvers)}."
            )
        case ApprovalOutcome.REFUSED_STALE_PLAN:
            return _stale_text(facts)
        case ApprovalOutcome.REFUSED_EXPIRED:
            assert facts.plan is not None and facts.ttl is not None
            return _expired_text(facts.plan, facts.ttl)
        case ApprovalOutcome.REFUSED_ALREADY_APPROVED:
            assert facts.earlier_at is not None
            return (
                f"You already approved plan {_short(facts.plan)} at {_clock(facts.earlier_at)}; one person"
                f" counts once. {_missing_text(facts)}"
            )


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
    needed = f"{_approvals(state.missing_approvals)} needed ({requires})"
    if not state.current_approvals:
        return f"Waiting for approval — {needed} (plan {state.binding.short})"
    who = _join([mention(a.approver_id) for a in state.current_approvals])
    return f"Approved by {who} — {needed}"


def applyability_text(answer: Applyability) -> str:
    """Why the plan may (or may not) be applied now."""
    state = answer.state
    current = state.binding
    match answer.blocker:
        case None:
            return _approved_text(state) + "."
        case ApplyBlocker.NO_PLAN:
            return "There is no plan to apply."
        case ApplyBlocker.REJECTED:
            assert state.rejection is not None
            return _rejected_text(state.rejection) + "."
        case ApplyBlocker.PLAN_MISSING:
            return f"The plan file for plan {_short(current)} is missing; make a new plan."
        case ApplyBlocker.PLAN_DIFFERS:
            fields = ", ".join(answer.differing)
            return f"The plan on disk is not the plan that was approved ({fields} differ); make a new plan."
        case ApplyBlocker.EXPIRED:
            assert current is not None
            return _expired_text(current, answer.ttl)
        case ApplyBlocker.APPROVALS_MISSING:
            return (
                f"{_approvals(state.missing_approvals)} needed ({state.required_approvals} required)"
                f" before plan {_short(current)} can be applied."
            )


def _approved_text(state: ApprovalState) -> str:
    who = _join([f"{mention(a.approver_id)} at {_clock(a.at)}" for a in state.current_approvals])
    return f"Approved by {who} (plan {_short(state.binding)})"


def _rejected_text(rejection: Rejection) -> str:
    verb = "Withdrawn by the requester" if rejection.by_requester else "Rejected by"
    text = f"{verb} {mention(rejection.by)}"
    return f"{text}: {escape_mrkdwn(rejection.reason)}" if rejection.reason else text


def _decided_text(state: ApprovalState) -> str:
    if state.rejection is not None:
        return f"This plan was already decided: {_rejected_text(state.rejection)}."
    return f"This plan was already decided: {_approved_text(state)}; it is being applied."


def _policy_text(facts: ClickFacts) -> str:
    return reason_text(facts.policy) if facts.policy is not None else ""


def _stale_text(facts: ClickFacts) -> str:
    current, seen = facts.plan, facts.seen
    if current is None:
        return "There is no plan waiting for approval on this deployment."
    shown = f"plan {seen.short} (attempt {seen.attempt})" if seen else "an unknown plan"
    return (
        f"This button was for {shown}, but the current plan is {current.short} (attempt"
        f" {current.attempt}). Review the latest plan and use its buttons."
    )


def _expired_text(binding: PlanBinding, ttl: timedelta) -> str:
    return (
        f"Plan {binding.short} expired at {binding.expires_at(ttl).astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        f" (plans can be approved and applied for {_duration(ttl)} after planning). Make a new plan."
    )


def _missing_text(facts: ClickFacts) -> str:
    if facts.missing <= 0:
        return "No more approvals are needed."
    return f"{_approvals(facts.missing)} needed ({facts.environment} requires {facts.required})."


def _approvals(count: int) -> str:
    return f"{count} more approval{'s' if count != 1 else ''}"


def _short(binding: PlanBinding | None) -> str:
    return binding.short if binding is not None else "(none)"


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


def ready_decision(state: ApprovalState, environment: str) -> str:
    """Replaces the plan's buttons once it has all its approvals."""
    return f":white_check_mark: {decision_text(state, environment=environment)}"


def ready_message(state: ApprovalState, environment: str) -> Message:
    return text_message(f"{ready_decision(state, environment)}. Applying exactly this plan.")


def waiting_message(state: ApprovalState, environment: str) -> Message:
    """An approval counted, more are needed."""
    return text_message(f":ballot_box_with_check: {decision_text(state, environment=environment)}")


def rejected_decision(state: ApprovalState, environment: str) -> str:
    return f":no_entry: {decision_text(state, environment=environment)}"


def rejected_message(state: ApprovalState, environment: str) -> Message:
    return text_message(rejected_decision(state, environment))
