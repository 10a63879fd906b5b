"""Who may see a deployment: its id, request, status, people and thread (`/ecs-deploy status`,
`/ecs-deploy list`, App Home). Pure: the access policy and the deployment in, a yes or no out.

A deployment is shown to its requester and to the approvers (leads) of its profile — the profile's
own approvers, the approvers of any of the profile's environments, and whoever may approve the
deployment's own environment. Everyone else is answered as if the deployment did not exist.
"""

from __future__ import annotations

from core.environments import Environment
from core.models import Deployment
from core.policy.access import AccessPolicy
from core.policy.principals import SlackIdentity


def may_see(policy: AccessPolicy, user: SlackIdentity, deployment: Deployment) -> bool:
    if user.user_id == deployment.requester_id:
        return True
    return _leads(policy, user, deployment.request.profile, deployment.request.environment)


def may_see_environment(
    policy: AccessPolicy, user: SlackIdentity, environment: Environment, latest: Deployment | None
) -> bool:
    """An environment (`/ecs-deploy envs`, App Home), by the same rule: whoever requested one of its
    applied changes or its newest deployment (`latest`), and the approvers of its profile."""
    requesters = {change.requester_id for change in environment.changes}
    if latest is not None:
        requesters.add(latest.requester_id)
    if user.user_id in requesters:
        return True
    return _leads(policy, user, environment.request.profile, environment.request.environment)


def _leads(policy: AccessPolicy, user: SlackIdentity, profile: str, environment: str) -> bool:
    """An approver of the profile (its own, any of its environments') or of this environment."""
    if policy.can_approve(user, profile, environment).allowed:
        return True
    entry = policy.entry_for(profile)
    if entry is None:
        return False
    if entry.approvers.includes(user):
        return True
    return any(
        env.approvers is not None and env.approvers.includes(user) for env in entry.environments.values()
    )
