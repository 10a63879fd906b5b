"""RQ entry points, one per pipeline step. Thin: frame the job, hand over to the step.

Every entry takes (deployment_id, options) and is named by dotted path in storage.queue.JOB_FUNCTIONS.
"""

from __future__ import annotations

from collections.abc import Callable

from core.models import Deployment, DeploymentStopped
from workers.metrics import timed_job
from workers.runtime import Runtime, job_frame, runtime
from workers.steps import analysis, backend, postdeploy, terraform, workspace

StepRunner = Callable[[Runtime, Deployment, dict[str, str]], None]


@timed_job  # ecs_deploy_step_duration_seconds (workers/metrics.py)
def _run(deployment_id: str, options: dict[str, str] | None, what: str, step: StepRunner) -> str:
    with job_frame(deployment_id, what) as (rt, deployment):
        if deployment.status.is_stopped:
            raise DeploymentStopped(deployment.status.value)
        step(rt, deployment, options or {})
        return "done"
    return "failed"


def run_verify(deployment_id: str, options: dict[str, str] | None = None) -> str:
    return _run(deployment_id, options, "verify AWS access", analysis.run_verify)


def run_analyse(deployment_id: str, options: dict[str, str] | None = None) -> str:
    return _run(deployment_id, options, "analyse the account", analysis.run_analyse)


def run_backend(deployment_id: str, options: dict[str, str] | None = None) -> str:
    return _run(deployment_id, options, "prepare the state backend", backend.run)


def run_workspace(deployment_id: str, options: dict[str, str] | None = None) -> str:
    return _run(deployment_id, options, "prepare the workspace", workspace.run)


def run_plan(deployment_id: str, options: dict[str, str] | None = None) -> str:
    return _run(deployment_id, options, "terraform plan", terraform.run_plan)


def run_apply(deployment_id: str, options: dict[str, str] | None = None) -> str:
    return _run(deployment_id, options, "terraform apply", terraform.run_apply)


def run_verify_deployment(deployment_id: str, options: dict[str, str] | None = None) -> str:
    return _run(deployment_id, options, "verify the deployment", postdeploy.run)


def commit_config(environment_key: str, deployment_id: str) -> str:
    """Commit and push the environment's configuration after an apply (an environment job: it
    never moves the deployment's status; a failure is reported in the thread with a Retry button)."""
    from workers.environments import run_commit_config

    return run_commit_config(runtime(), environment_key, deployment_id)


def check_drift(environment_key: str) -> str:
    """A drift check of a live environment (an environment job, scheduled with RQ's scheduler:
    workers/drift.py)."""
    from workers.drift import run_check

    return run_check(runtime(), environment_key)
