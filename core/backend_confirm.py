"""Who may confirm that the bot changes an existing state bucket (issue 10, finding 1).

A bucket the bot created (tagged, `BackendFixPlan.managed`) may be fixed on the word of whoever may
steer the deployment: its requester or an approver of its profile. A bucket the bot did not create
belongs to someone else as far as the bot knows: only an approver of the deployment's profile and
environment may let the bot change it, and the self-approval rules of plans apply — the requester
(who typed the bucket's name), or anyone who set values of the deployment, confirms only where the
policy allows self-approval.

Pure: the policy functions of core.policy are called, nothing is read or written.
"""

from __future__ import annotations

from core.backend_fix import BackendFixPlan
from core.models import Deployment
from core.policy.access import AccessPolicy, Decision, Why
from core.policy.principals import SlackIdentity
from core.steering import may_steer


def may_confirm_fix(
    policy: AccessPolicy, user: SlackIdentity, deployment: Deployment, plan: BackendFixPlan
) -> Decision:
    """May `user` confirm `plan` for `deployment`? (bot/views/access.py words the answer.)"""
    if plan.managed:
        return may_steer(policy, user, deployment)
    request = deployment.request
    rule = policy.approval_rule(request.profile, request.environment)
    decision = policy.can_approve(user, request.profile, request.environment)
    if rule is None or not decision.allowed:
        return Decision.deny(Why.FOREIGN_BUCKET, bucket=plan.bucket, cause=decision)
    own = user.user_id == deployment.requester_id or user.user_id in deployment.value_authors
    if own and not rule.allow_self_approval:
        return Decision.deny(
            Why.FOREIGN_BUCKET_SELF, bucket=plan.bucket, scope=rule.scope, people=rule.approvers
        )
    return Decision.allow(Why.MAY_CONFIRM_FIX, bucket=plan.bucket, cause=decision)
