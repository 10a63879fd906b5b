"""Who may steer a deployment from its thread (buttons other than Approve/Reject)."""

from __future__ import annotations

from core.models import Deployment
from core.policy.access import AccessPolicy, Decision, Why
from core.policy.principals import SlackIdentity


def may_steer(policy: AccessPolicy, user: SlackIdentity, deployment: Deployment) -> Decision:
    """The requester, or anyone who may approve plans for the deployment's profile and environment."""
    if user.user_id == deployment.requester_id:
        return Decision.allow(Why.REQUESTER)
    request = deployment.request
    if policy.can_approve(user, request.profile, request.environment).allowed:
        return Decision.allow(Why.DEPLOYMENT_APPROVER)
    return Decision.deny(Why.NOT_STEERER, user_id=deployment.requester_id, profile=request.profile)


def may_override(policy: AccessPolicy, user: SlackIdentity, deployment: Deployment) -> Decision:
    """Overriding a blocking check is a lead's decision, never the requester's alone."""
    request = deployment.request
    decision = policy.can_approve(user, request.profile, request.environment)
    if not decision.allowed:
        return Decision.deny(Why.LEADS_ONLY, cause=decision)
    return decision
