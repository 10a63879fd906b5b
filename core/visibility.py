"""Who may see a deployment: its id, request, status, people and thread (`/ecs-deploy status`,
`/ecs-deploy list`, App Home). Pure: the access policy and the deployment in, a yes or no out.

A deployment is shown to its requester and to the approvers (leads) of its profile — the profile's
own approvers, the approvers of any of the profile's environments, and whoever may approve the
deployment's own environment. Everyone else is answered as if the deployment did not exist.
"""

from __future__ import annotations

from core.models import Deployment
from core.policy.access import AccessPolicy
from core.policy.principals import SlackIdentity


def may_see(policy: AccessPolicy, user: SlackIdentity, deployment: Deployment) -> bool:
    if user.user_id == deployment.requester_id:
        return True
    request = deployment.request
    if policy.can_approve(user, request.profile, request.environment).allowed:
        return True
    entry = policy.entry_for(request.profile)
    if entry is None:
        return False
    if entry.approvers.includes(user):
        return True
    return any(
        env.approvers is not None and env.approvers.includes(user) for env in entry.environments.values()
    )
