"""What the access rules' answers say: a `Decision` (core/policy/access.py, core/steering.py,
core/backend_confirm.py) worded for the person it concerns, and people named in Slack's markup
(pure: models in, mrkdwn out)."""

from __future__ import annotations

from core.backend_fix import BackendFixPlan
from core.models import Deployment
from core.policy.access import AccessPolicy, Decision, Why
from core.policy.principals import EVERYONE, USERGROUP_ID, Principals

MAX_LISTED_ENVIRONMENTS = 30


def mention(slack_id: str) -> str:
    """Slack markup for a user (<@U…>), a user group (<!subteam^S…>) or everyone."""
    if slack_id == EVERYONE:
        return "everyone"
    if USERGROUP_ID.fullmatch(slack_id):
        return f"<!subteam^{slack_id}>"
    return f"<@{slack_id}>"


def describe(people: Principals | None) -> str:
    """ "everyone", or the mentions in a stable order (users, then groups), or "nobody"."""
    if people is None:
        return "nobody"
    if people.everyone:
        return "everyone"
    parts = [mention(u) for u in sorted(people.users)] + [mention(g) for g in sorted(people.groups)]
    return ", ".join(parts) if parts else "nobody"


def _listed(declared: tuple[str, ...]) -> str:
    more = ", …" if len(declared) > MAX_LISTED_ENVIRONMENTS else ""
    return ", ".join(declared[:MAX_LISTED_ENVIRONMENTS]) + more


def _foreign(bucket: str) -> str:
    return (
        f"Bucket {bucket} was not created by the bot (it has no ecs-deploy-bot:managed tag), so"
        " changing it needs an approver of the profile"
    )


def reason_text(decision: Decision) -> str:
    """The answer's reason, written for the person who asked."""
    d = decision
    cause = reason_text(d.cause) if d.cause is not None else ""
    match d.why:
        case Why.OPEN_POLICY:
            return f"No access policy is configured: profile {d.profile} is open to everyone."
        case Why.MAY_REQUEST:
            return f"You may request deployments with profile {d.profile}."
        case Why.ENVIRONMENT_DECLARED:
            return f"Profile {d.profile} may deploy environment {d.environment}."
        case Why.APPROVER:
            return f"You are an approver for {d.scope}."
        case Why.REQUESTER:
            return "You requested this deployment."
        case Why.DEPLOYMENT_APPROVER:
            return "You are an approver for this deployment."
        case Why.MAY_CONFIRM_FIX:
            return f"You may confirm changes to {d.bucket}: {cause}"
        case Why.PROFILE_UNLISTED:
            return (
                f"Profile {d.profile} is not in the access policy, so nobody may use it."
                " Ask an operator to add it."
            )
        case Why.PROFILE_UNLISTED_ENVIRONMENT:
            return f"Profile {d.profile} is not in the access policy, so nobody may use it."
        case Why.PROFILE_UNLISTED_APPROVAL:
            return f"Profile {d.profile} is not in the access policy, so nobody may approve plans for it."
        case Why.NOT_REQUESTER:
            return (
                f"You may not request deployments with profile {d.profile}. Requesters: {describe(d.people)}."
            )
        case Why.ENVIRONMENT_UNDECLARED:
            return (
                f"Environment {d.environment} is not declared for profile {d.profile}."
                f" Allowed: {_listed(d.declared)}. An operator can declare more in the access policy."
            )
        case Why.NO_APPROVERS:
            setting = "ECS_DEPLOY_APPROVERS" if d.open_policy else "the access policy"
            return f"Nobody is configured to approve plans for {d.scope}; an operator must set {setting}."
        case Why.NOT_APPROVER:
            return f"You are not an approver for {d.scope}. Approvers: {describe(d.people)}."
        case Why.NOT_STEERER:
            return (
                f"Only the requester {mention(d.user_id)} or an approver for profile {d.profile} can do that."
            )
        case Why.LEADS_ONLY:
            return "Only an approver (lead) can override a blocking check. " + cause
        case Why.FOREIGN_BUCKET:
            return f"{_foreign(d.bucket)}. {cause}"
        case Why.FOREIGN_BUCKET_SELF:
            return (
                f"{_foreign(d.bucket)} other than the requester ({d.scope} does not allow self-approval)."
                f" Ask another approver: {describe(d.people)}."
            )


def who_may_confirm(policy: AccessPolicy, deployment: Deployment, plan: BackendFixPlan) -> str:
    """The sentence under the confirmation button saying who can press it."""
    request = deployment.request
    if plan.managed:
        return (
            f"The bot created {plan.bucket}: the requester or an approver of profile {request.profile}"
            " can confirm."
        )
    rule = policy.approval_rule(request.profile, request.environment)
    approvers = describe(rule.approvers) if rule is not None else "nobody"
    scope = rule.scope if rule is not None else f"profile {request.profile}"
    others = "" if rule is not None and rule.allow_self_approval else ", other than the requester"
    return (
        f"{plan.bucket} was not created by the bot (no ecs-deploy-bot:managed tag): only an approver of"
        f" {scope}{others}, can confirm these changes. Approvers: {approvers}."
    )
