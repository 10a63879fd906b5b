"""The deployment pipeline's steps as RQ jobs.

Job functions are named by dotted path so the Slack side never imports the workers. Every job gets
an explicit timeout: RQ's default of 180 s would kill a Terraform apply mid-flight.
"""

from __future__ import annotations

from enum import StrEnum

import redis
from rq import Queue
from rq.job import Job

from core.settings import Settings


class Step(StrEnum):
    VERIFY = "verify"
    ANALYSE = "analyse"
    BACKEND = "backend"
    WORKSPACE = "workspace"
    PLAN = "plan"
    APPLY = "apply"
    VERIFY_DEPLOYMENT = "verify_deployment"


JOB_FUNCTIONS: dict[Step, str] = {step: f"workers.jobs.run_{step.value}" for step in Step}

DESCRIPTIONS: dict[Step, str] = {
    Step.VERIFY: "verify AWS access",
    Step.ANALYSE: "analyse the AWS account",
    Step.BACKEND: "prepare the S3/DynamoDB state backend",
    Step.WORKSPACE: "prepare the Terraform workspace",
    Step.PLAN: "terraform plan",
    Step.APPLY: "terraform apply",
    Step.VERIFY_DEPLOYMENT: "verify the deployed resources",
}


def step_timeout(settings: Settings, step: Step) -> int:
    """RQ's job timeout sits above every Terraform timeout inside the job (waiting for the state lock,
    init, then plan or apply), so Terraform is always stopped by our runner (SIGINT: its lock is
    released) and never killed by RQ mid-run."""
    margin = 300
    if step is Step.APPLY:
        return settings.job_timeout_seconds + settings.plan_timeout_seconds + settings.apply_timeout_seconds + margin
    if step is Step.PLAN:
        return settings.job_timeout_seconds + 2 * settings.plan_timeout_seconds + margin
    return settings.job_timeout_seconds


def queue(connection: redis.Redis, settings: Settings) -> Queue:
    return Queue(settings.queue_name, connection=connection)


def enqueue_step(
    connection: redis.Redis,
    settings: Settings,
    step: Step,
    deployment_id: str,
    *,
    pipeline: redis.client.Pipeline | None = None,
    options: dict[str, str] | None = None,
) -> Job:
    return queue(connection, settings).enqueue(
        JOB_FUNCTIONS[step],
        deployment_id,
        options or {},
        job_timeout=step_timeout(settings, step),
        result_ttl=7 * 24 * 3600,
        failure_ttl=30 * 24 * 3600,
        description=f"{deployment_id}: {DESCRIPTIONS[step]}",
        meta={"deployment_id": deployment_id, "step": step.value},
        pipeline=pipeline,
    )
