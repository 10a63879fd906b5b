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


REASONS: dict[Why, str] = {  # str.format templates over reason_text's facts
    Why.OPEN_POLICY: "No access policy is configured: profile {profile} is open to everyone.",
    Why.MAY_REQUEST: "You may request deployments with profile {profile}.",
    Why.ENVIRONMENT_DECLARED: "Profile {profile} may deploy environment {environment}.",
    Why.APPROVER: "You are an approver for {scope}.",
    Why.REQUESTER: "You requested this deployment.",
    Why.DEPLOYMENT_APPROVER: "You are an approver for this deployment.",
    Why.MAY_CONFIRM_FIX: "You may confirm changes to {bucket}: {cause}",
    Why.PROFILE_UNLISTED: "Profile {profile} is not in the access policy, so nobody may use it."
    " Ask an operator to add it.",
    Why.PROFILE_UNLISTED_ENVIRONMENT: "Profile {profile} is not in the access policy, so nobody may use it.",
    Why.PROFILE_UNLISTED_APPROVAL: "Profile {profile} is not in the access policy, so nobody may approve"
    " plans for it.",
    Why.NOT_REQUESTER: "You may not request deployments with profile {profile}. Requesters: {people}.",
    Why.ENVIRONMENT_UNDECLARED: "Environment {environment} is not declared for profile {profile}."
    " Allowed: {declared}. An operator can declare more in the access policy.",
    Why.NO_APPROVERS: "Nobody is configured to approve plans for {scope}; an operator must set {setting}.",
    Why.NOT_APPROVER: "You are not an approver for {scope}. Approvers: {people}.",
    Why.NOT_STEERER: "Only the requester {requester} or an approver for profile {profile} can do that.",
    Why.LEADS_ONLY: "Only an approver (lead) can override a blocking check. {cause}",
    Why.FOREIGN_BUCKET: "{foreign}. {cause}",
    Why.FOREIGN_BUCKET_SELF: "{foreign} other than the requester ({scope} does not allow self-approval)."
    " Ask another approver: {people}.",
}


def reason_text(decision: Decision) -> str:
    """The answer's reason, written for the person who asked: REASONS[why] with the decision's facts."""
    d = decision
    return REASONS[d.why].format(
        profile=d.profile,
        environment=d.environment,
        scope=d.scope,
        bucket=d.bucket,
        cause=reason_text(d.cause) if d.cause is not None else "",
        people=describe(d.people),
        declared=_listed(d.declared),
        setting="ECS_DEPLOY_APPROVERS" if d.open_policy else "the access policy",
        requester=mention(d.user_id),
        foreign=_foreign(d.bucket),
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
