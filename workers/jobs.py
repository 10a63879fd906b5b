"""RQ entry points, one per pipeline step. Thin: load the deployment, run the engine, report."""

from __future__ import annotations

from bot.views.messages import verified_message
from core.models import DeploymentStatus
from workers.aws.identity import verify_access
from workers.runtime import StepFailure, job_frame


def run_verify(deployment_id: str, options: dict[str, str] | None = None) -> str:
    with job_frame(deployment_id, "verify AWS access") as (rt, deployment):
        deployment = rt.notifier.set_status(deployment_id, DeploymentStatus.VERIFYING)
        request = deployment.request
        result = verify_access(
            request.profile, request.region, request.account_id, rt.policy.role_for(request.profile)
        )
        if result.problem is not None:
            raise StepFailure(result.problem.reason, result.problem.what_next)
        assert result.identity is not None
        deployment = rt.store.update(
            deployment_id, lambda d: d.model_copy(update={"identity": result.identity})
        )
        rt.notifier.post(deployment, verified_message(result.identity, request.profile))
        rt.notifier.set_status(deployment_id, DeploymentStatus.ANALYSING, "access verified")
        return "verified"
    return "failed"
