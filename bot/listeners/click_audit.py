"""The audit trail's record of an approve or reject click: the approve button (bot/listeners/actions.py)
and the reject modal (bot/listeners/thread_modals.py) record it alike."""

from __future__ import annotations

from bot.services import Services
from core.approval import ApprovalResult


def record_click(
    services: Services, deployment_id: str, user_id: str, result: ApprovalResult, reason: str
) -> None:
    """`result.audit_event` (approval, rejection, or either `_refused`) bound to the plan after the
    click, with the click's outcome and `reason` (why it was refused, or the reject reason)."""
    services.audit.record(
        result.audit_event,
        deployment_id,
        user_id,
        plan_sha256=result.plan_sha256,
        outcome=result.outcome.value,
        reason=reason,
    )
