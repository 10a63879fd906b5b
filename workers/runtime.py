"""Per-process resources of a worker, and the frame every job runs in."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

import redis
import structlog
from redis.client import Pipeline
from rq import get_current_job

from bot.notifier import Notifier
from bot.slack import make_web_client
from bot.views import failures
from core import lifecycle
from core.lifecycle import Move
from core.logs import get_logger
from core.models import Deployment, DeploymentStopped
from core.policy.access import AccessPolicy
from core.policy.loading import policy_from_settings
from core.settings import Settings, settings
from storage.audit import AuditTrail
from storage.connection import redis_connection
from storage.queue import enqueue_step
from storage.store import DeploymentStore

log = get_logger(__name__)


@dataclass
class Runtime:
    settings: Settings
    redis: redis.Redis
    store: DeploymentStore
    notifier: Notifier
    policy: AccessPolicy
    audit: AuditTrail

    def enqueue_in(
        self, step: lifecycle.Step, options: dict[str, str] | None = None
    ) -> Callable[[Pipeline, Deployment], object]:
        """For a move's transaction: queue `step` in the same MULTI as the new status."""
        return lambda pipe, deployment: enqueue_step(
            self.redis, self.settings, step, deployment.id, pipeline=pipe, options=options
        )


@cache
def runtime() -> Runtime:
    current = settings()
    job = get_current_job()
    connection = job.connection if job is not None else redis_connection(current, "worker")
    store = DeploymentStore(connection)
    return Runtime(
        settings=current,
        redis=connection,
        store=store,
        notifier=Notifier(make_web_client(current), store, background=True),  # jobs never wait on Slack
        policy=policy_from_settings(current.policy_file, current.approver_ids),
        audit=AuditTrail(connection, retention_days=current.audit_retention_days),
    )


def move(
    rt: Runtime, deployment_id: str, event: Move, detail: str = "", options: dict[str, str] | None = None
) -> Deployment:
    """Move the deployment's status by `event` (core.lifecycle) and, when the move starts a job,
    enqueue that job (with `options`) in the same Redis transaction: a status that promises a job
    never exists without it. Raises DeploymentStopped when the table refuses the move (the
    deployment was cancelled, rejected, interrupted or moved on meanwhile)."""
    job = lifecycle.job_of(event)
    enqueue = rt.enqueue_in(job, options) if job is not None else None
    return rt.notifier.set_status(deployment_id, event, detail, also=enqueue)


class StepFailure(Exception):
    """An expected, explainable failure: the thread says `reason` and `what_next`."""

    def __init__(self, reason: str, what_next: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.what_next = what_next


@contextmanager
def job_frame(deployment_id: str, step: str) -> Iterator[tuple[Runtime, Deployment]]:
    """Bind log context; turn any exception into a failed status and a message a user can act on."""
    rt = runtime()
    job = get_current_job()
    structlog.contextvars.bind_contextvars(
        deployment_id=deployment_id, job_id=job.id if job else None, step=step
    )
    deployment = rt.store.get(deployment_id)
    try:
        yield rt, deployment
    except DeploymentStopped as stopped:
        log.info("step_skipped", reason=f"deployment {stopped}")
    except StepFailure as failure:
        log.info("step_failed", reason=failure.reason)
        _fail(rt, deployment_id, step, failure.reason, failure.what_next)
    except Exception as exc:
        log.exception("step_crashed")
        _fail(rt, deployment_id, step, *failures.step_crashed(type(exc).__name__))
        raise
    finally:
        structlog.contextvars.clear_contextvars()


def _fail(rt: Runtime, deployment_id: str, step: str, reason: str, what_next: str) -> None:
    rt.audit.record("step_failed", deployment_id, "worker", step=step, reason=reason)
    try:
        deployment = move(rt, deployment_id, Move.FAIL, f"{step}: {reason[:300]}")
    except DeploymentStopped:
        deployment = rt.store.get(deployment_id)
        rt.notifier.post(deployment, failures.stopped_failure_message(step, deployment.status, reason))
        return
    rt.notifier.post(deployment, failures.step_failure_message(step, failures.Failure(reason, what_next)))
