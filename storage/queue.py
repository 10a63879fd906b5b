"""The deployment pipeline's steps as RQ jobs.

Job functions are named by dotted path so the Slack side never imports the workers. Every job gets
an explicit timeout: RQ's default of 180 s would kill a Terraform apply mid-flight.

Jobs are stored with RQ's JSONSerializer, not its default pickle: whoever can write to Redis must
not be able to make a worker run code by unpickling a job. A job's arguments are a deployment id and
a small dict of strings, its meta and result are strings. Every Queue, Worker, Job.fetch and
registry of the bot's queue uses JOB_SERIALIZER (`queue()`, `fetch_job()` and the worker).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import redis
from rq import Callback, Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from core.lifecycle import Step as Step  # the pipeline's jobs are part of the lifecycle table
from core.settings import Settings

JOB_SERIALIZER = JSONSerializer


JOB_FUNCTIONS: dict[Step, str] = {step: f"workers.jobs.run_{step.value}" for step in Step}
# RQ calls it when a job fails; the bot acts on one case, RQ's registry cleanup finding the job
# abandoned (AbandonedJobError; see workers/sweeper.py). Its timeout covers the report, which waits
# up to 40 s for a killed Terraform to stop and then reads the state and lock in AWS.
ON_FAILURE = Callback("workers.worker.on_job_failure", timeout=300)

DESCRIPTIONS: dict[Step, str] = {
    Step.VERIFY: "verify AWS access",
    Step.ANALYSE: "analyse the AWS account",
    Step.BACKEND: "prepare the S3/DynamoDB state backend",
    Step.WORKSPACE: "prepare the Terraform workspace",
    Step.PLAN: "terraform plan",
    Step.APPLY: "terraform apply",
    Step.VERIFY_DEPLOYMENT: "verify the deployed resources",
}


# Bounds of the work around Terraform inside a job (seconds): rebuilding a workspace (git clone and
# waiting for the mirror lock), `show` / `output`, and the SIGINT grace of each command.
WORKSPACE_BOUND = 900
SHOW_OR_OUTPUT_BOUND = 300
GRACE_BOUND = 30
MARGIN = 300


def step_timeout(settings: Settings, step: Step) -> int:
    """RQ's job timeout sits above the sum of every bounded wait inside the job (the state lock's
    line, the workspace, init, plan or apply, show/output and their grace periods), so Terraform is
    always stopped by our runner (SIGINT: its lock is released) and never by RQ mid-run."""
    terraform = settings.job_timeout_seconds + WORKSPACE_BOUND + settings.plan_timeout_seconds + MARGIN
    if step is Step.APPLY:
        return terraform + settings.apply_timeout_seconds + SHOW_OR_OUTPUT_BOUND + 3 * GRACE_BOUND
    if step is Step.PLAN:
        return terraform + settings.plan_timeout_seconds + 2 * SHOW_OR_OUTPUT_BOUND + 4 * GRACE_BOUND
    return settings.job_timeout_seconds


def queue(connection: redis.Redis, settings: Settings) -> Queue:
    return Queue(settings.queue_name, connection=connection, serializer=JOB_SERIALIZER)


def fetch_job(connection: redis.Redis, job_id: str) -> Job:
    return Job.fetch(job_id, connection=connection, serializer=JOB_SERIALIZER)


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
        on_failure=ON_FAILURE,
        pipeline=pipeline,
    )


# -- drift checks (core/drift.py, workers/drift.py) -------------------------------------------------

DRIFT_JOB = "workers.jobs.check_drift"


def drift_timeout(settings: Settings) -> int:
    """A drift check: the workspace, init and two plans, each with its show, and their grace periods."""
    return (
        WORKSPACE_BOUND
        + 3 * settings.plan_timeout_seconds
        + 2 * SHOW_OR_OUTPUT_BOUND
        + 3 * GRACE_BOUND
        + MARGIN
    )


def enqueue_drift_check(
    connection: redis.Redis,
    settings: Settings,
    environment_key: str,
    *,
    job_id: str,
    at: datetime | None = None,
) -> Job:
    """Queue a drift check of the environment now, or at `at` with RQ's scheduler (the workers run it).
    `job_id` is deterministic per environment and time slot (core.drift.slot_job_id): enqueueing the
    same slot again replaces the job instead of adding one."""
    options: dict[str, Any] = {
        "job_id": job_id,
        "job_timeout": drift_timeout(settings),
        "result_ttl": 24 * 3600,
        "failure_ttl": 7 * 24 * 3600,
        "description": f"drift check of {environment_key}",
        "meta": {"environment_key": environment_key, "step": "drift"},
    }
    jobs = queue(connection, settings)
    if at is None:
        return jobs.enqueue(DRIFT_JOB, environment_key, **options)
    return jobs.enqueue_at(at, DRIFT_JOB, environment_key, **options)


# Environment jobs: not steps of a deployment's lifecycle (they never move its status). Named by
# dotted path like the steps; arguments are the environment key and the deployment id.
COMMIT_CONFIG = "workers.jobs.commit_config"
COMMIT_CONFIG_TIMEOUT = 900  # git clone/fetch/push (300 s each at most) and the GitHub calls


def enqueue_commit_config(
    connection: redis.Redis,
    settings: Settings,
    environment_key: str,
    deployment_id: str,
    *,
    pipeline: redis.client.Pipeline | None = None,
) -> Job:
    """Queue the commit of the environment's configuration after `deployment_id`'s apply."""
    return queue(connection, settings).enqueue(
        COMMIT_CONFIG,
        environment_key,
        deployment_id,
        job_timeout=COMMIT_CONFIG_TIMEOUT,
        result_ttl=7 * 24 * 3600,
        failure_ttl=30 * 24 * 3600,
        description=f"{deployment_id}: commit the configuration of {environment_key}",
        meta={"deployment_id": deployment_id, "environment_key": environment_key, "job": "commit_config"},
        pipeline=pipeline,
    )
