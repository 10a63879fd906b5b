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
from core.policy.access import AccessPolicy, Decision
from core.policy.principals import SlackIdentity
from core.steering import may_steer


def may_confirm_fix(
    policy: AccessPolicy, user: SlackIdentity, deployment: Deployment, plan: BackendFixPlan
) -> Decision:
    """May `user` confirm `plan` for `deployment`? The reason is written for the person who clicked."""
    if plan.managed:
        return may_steer(policy, user, deployment)
    request = deployment.request
    foreign = (
        f"Bucket {plan.bucket} was not created by the bot (it has no ecs-deploy-bot:managed tag), so"
        " changing it needs an approver of the profile"
    )
    rule = policy.approval_rule(request.profile, request.environment)
    decision = policy.can_approve(user, request.profile, request.environment)
    if rule is None or not decision.allowed:
        return Decision.deny(f"{foreign}. {decision.reason}")
    own = user.user_id == deployment.requester_id or user.user_id in deployment.value_authors
    if own and not rule.allow_self_approval:
        return Decision.deny(
            f"{foreign} other than the requester ({rule.scope} does not allow self-approval)."
            f" Ask another approver: {rule.approvers.describe()}."
        )
    return Decision.allow(f"You may confirm changes to {plan.bucket}: {decision.reason}")


def who_may_confirm(policy: AccessPolicy, deployment: Deployment, plan: BackendFixPlan) -> str:
    """The sentence under the confirmation button saying who can press it."""
    request = deployment.request
    if plan.managed:
        return (
            f"The bot created {plan.bucket}: the requester or an approver of profile {request.profile}"
            " can confirm."
        )
    rule = policy.approval_rule(request.profile, request.environment)
    approvers = rule.approvers.describe() if rule is not None else "nobody"
    scope = rule.scope if rule is not None else f"profile {request.profile}"
    others = "" if rule is not None and rule.allow_self_approval else ", other than the requester"
    return (
        f"{plan.bucket} was not created by the bot (no ecs-deploy-bot:managed tag): only an approver of"
        f" {scope}{others}, can confirm these changes. Approvers: {approvers}."
    )
