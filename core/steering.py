"""Who may steer a deployment from its thread (buttons other than Approve/Reject)."""

from __future__ import annotations

from core.models import Deployment
from core.policy.access import AccessPolicy, Decision
from core.policy.principals import SlackIdentity, mention


def may_steer(policy: AccessPolicy, user: SlackIdentity, deployment: Deployment) -> Decision:
    """The requester, or anyone who may approve plans for the deployment's profile and environment."""
    if user.user_id == deployment.requester_id:
        return Decision.allow("You requested this deployment.")
    request = deployment.request
    if policy.can_approve(user, request.profile, request.environment).allowed:
        return Decision.allow("You are an approver for this deployment.")
    return Decision.deny(
        f"Only the requester {mention(deployment.requester_id)} or an approver for profile"
        f" {request.profile} can do that."
    )


def may_override(policy: AccessPolicy, user: SlackIdentity, deployment: Deployment) -> Decision:
    """Overriding a blocking check is a lead's decision, never the requester's alone."""
    request = deployment.request
    decision = policy.can_approve(user, request.profile, request.environment)
    if not decision.allowed:
        return Decision.deny("Only an approver (lead) can override a blocking check. " + decision.reason)
    return Decision.allow(decision.reason)
