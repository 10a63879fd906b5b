"""RQ entry points, one per pipeline step. Thin: frame the job, hand over to the step.

Every entry takes (deployment_id, options) and is named by dotted path in storage.queue.JOB_FUNCTIONS.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from core.lifecycle import Step
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


class JobEntry(Protocol):
    """An RQ entry point of a step: (deployment_id, options) → "done" or "failed"."""

    def __call__(self, deployment_id: str, options: dict[str, str] | None = None) -> str: ...


def _entry(step: Step, what: str, runner: StepRunner) -> JobEntry:
    """The entry point of `step`, named as storage.queue.JOB_FUNCTIONS names it (`run_{step}`, a
    module-level name RQ imports by dotted path); it runs `runner` as `what`."""

    def entry(deployment_id: str, options: dict[str, str] | None = None) -> str:
        return _run(deployment_id, options, what, runner)

    entry.__name__ = entry.__qualname__ = f"run_{step.value}"
    return entry


run_verify = _entry(Step.VERIFY, "verify AWS access", analysis.run_verify)
run_analyse = _entry(Step.ANALYSE, "analyse the account", analysis.run_analyse)
run_backend = _entry(Step.BACKEND, "prepare the state backend", backend.run)
run_workspace = _entry(Step.WORKSPACE, "prepare the workspace", workspace.run)
run_plan = _entry(Step.PLAN, "terraform plan", terraform.run_plan)
run_apply = _entry(Step.APPLY, "terraform apply", terraform.run_apply)
run_verify_deployment = _entry(Step.VERIFY_DEPLOYMENT, "verify the deployment", postdeploy.run)


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
