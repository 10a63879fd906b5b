"""RQ's public hooks carry the bot's crash reports: every job's `on_failure` Callback (RQ's registry
cleanup calls it with AbandonedJobError) and the worker's `work_horse_killed_handler`. Real Redis,
real RQ registries and worker bookkeeping, the Slack stand-in; no process is faked, RQ's own cleanup
finds the job.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
import redis
from rq import Worker
from rq.exceptions import AbandonedJobError
from rq.job import Job
from rq.registry import FailedJobRegistry, StartedJobRegistry

from core.models import Deployment, DeploymentStatus
from core.settings import Settings
from storage.locks import interrupted_key
from storage.queue import JOB_SERIALIZER, ON_FAILURE, Step, enqueue_step, queue
from storage.store import DeploymentStore
from tests.harness.records import deployment_request
from tests.harness.slack_api import SlackApiStandIn
from workers.heartbeats import Bounds
from workers.worker import DeployWorker, on_job_failure


@pytest.fixture
def env(bot_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """This process is the one running RQ's cleanup: it reads the bot's settings like a worker."""
    for name, value in bot_env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def verifying(store: DeploymentStore) -> Deployment:
    """A stored deployment whose verify step is running."""
    deployment = Deployment(request=deployment_request(), requester_id="U0REQUEST1", channel_id="C_DEPLOYS")
    return store.create(deployment.with_status(DeploymentStatus.VERIFYING))[0]


def started_by_a_worker_that_died(connection: redis.Redis, settings: Settings, deployment: Deployment) -> Job:
    """A job a worker took (RQ's own bookkeeping: an execution in the StartedJobRegistry, the job
    STARTED) and then never finished: the worker is gone."""
    job = enqueue_step(connection, settings, Step.VERIFY, deployment.id)
    worker = Worker([queue(connection, settings)], connection=connection, serializer=JOB_SERIALIZER)
    worker.prepare_execution(job)
    worker.prepare_job_execution(job)
    assert job.get_status(refresh=True) == "started"
    return job


def test_a_job_rq_finds_abandoned_is_reported_once_through_its_on_failure_callback(
    env: Settings, redis_conn: redis.Redis, slack_api: SlackApiStandIn
) -> None:
    store = DeploymentStore(redis_conn)
    deployment = verifying(store)
    job = started_by_a_worker_that_died(redis_conn, env, deployment)
    assert job.failure_callback is on_job_failure and ON_FAILURE.name == "workers.worker.on_job_failure"

    registry = StartedJobRegistry(queue=queue(redis_conn, env))
    registry.cleanup(timestamp=time.time() + 3600)  # RQ's cleanup, once the entry has expired

    job.refresh()
    assert job.get_status() == "failed" and job.id in FailedJobRegistry(queue=queue(redis_conn, env))
    assert redis_conn.exists(interrupted_key(job.id)), "claimed: no second report"
    found = store.get(deployment.id)
    assert found.status is DeploymentStatus.INTERRUPTED
    texts = slack_api.thread_texts(found.thread_ts or "")
    reports = [t for t in texts if "Interrupted: verify AWS access" in t]
    assert len(reports) == 1 and "RQ found its worker gone" in reports[0], texts

    on_job_failure(job, redis_conn, RuntimeError, RuntimeError(), None)  # any other failure: nothing
    on_job_failure(job, redis_conn, AbandonedJobError, AbandonedJobError(), None)  # already claimed
    assert len([t for t in slack_api.thread_texts(found.thread_ts or "") if "Interrupted:" in t]) == 1


def test_a_job_that_raised_is_left_to_its_step(
    env: Settings, redis_conn: redis.Redis, slack_api: SlackApiStandIn
) -> None:
    store = DeploymentStore(redis_conn)
    deployment = verifying(store)
    job = enqueue_step(redis_conn, env, Step.VERIFY, deployment.id)
    on_job_failure(job, redis_conn, ValueError, ValueError("boom"), None)
    assert store.get(deployment.id).status is DeploymentStatus.VERIFYING
    assert not redis_conn.exists(interrupted_key(job.id))
    assert slack_api.calls_to("chat.postMessage") == []


def test_a_work_horse_killed_alone_is_reported_through_rqs_handler(
    env: Settings, redis_conn: redis.Redis, slack_api: SlackApiStandIn
) -> None:
    """RQ's monitor calls the public `handle_work_horse_killed`, which calls the handler the worker
    was built with (`work_horse_killed_handler`): the thread hears of it with the signal."""
    store = DeploymentStore(redis_conn)
    deployment = verifying(store)
    job = started_by_a_worker_that_died(redis_conn, env, deployment)
    previous = os.umask(0o022)
    try:
        worker = DeployWorker([queue(redis_conn, env)], connection=redis_conn, settings=env, bounds=Bounds())
    finally:
        os.umask(previous)  # the worker sets the process's umask; this test process keeps its own
    assert "handle_work_horse_killed" not in DeployWorker.__dict__, "RQ's own method, not overridden"
    worker.handle_work_horse_killed(job, 12345, signal.SIGKILL, None)  # waitpid's status: killed by 9
    found = store.get(deployment.id)
    assert found.status is DeploymentStatus.INTERRUPTED
    texts = [
        t for t in slack_api.thread_texts(found.thread_ts or "") if "Interrupted: verify AWS access" in t
    ]
    assert len(texts) == 1 and "its process was killed (signal 9)" in texts[0]
    assert redis_conn.exists(interrupted_key(job.id))
