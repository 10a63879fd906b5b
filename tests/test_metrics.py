"""Prometheus metrics: `GET /metrics` of the web process (gauges read from Redis at scrape time) and
`ecs-deploy-bot worker --metrics-port` (histograms of the jobs its work horses ran), both scraped
over HTTP and parsed with prometheus_client's own parser."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from rq.job import Job

from bot.embedded_redis import free_port
from bot.outbox import DUE_KEY, Outbox, OutboxEntry
from core.approval import ApprovalState, PlanBinding
from core.models import Deployment, DeploymentStatus, utcnow
from core.settings import Settings
from storage.queue import JOB_FUNCTIONS, Step, enqueue_step, queue
from storage.store import DeploymentStore
from tests.harness.flow import REQUESTER, click, eventually, give_values, submit
from tests.harness.processes import ROOT, WebProcess
from tests.harness.records import deployment_record
from tests.harness.slack_api import SlackApiStandIn
from tests.harness.slack_requests import SlackClientSim

FLOW_TIMEOUT = 240.0  # steps on a busy 2-core machine, not a measurement


def scrape(url: str) -> dict[str, list[Sample]]:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    return {family.name: family.samples for family in text_string_to_metric_families(response.text)}


def value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [
        s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, (name, labels, samples)
    return found[0]


def metrics_url(web: WebProcess) -> str:
    return f"http://127.0.0.1:{web.port}/metrics"


def deployment(status: DeploymentStatus, *, plan_age: timedelta | None = None) -> Deployment:
    approval = ApprovalState()
    if plan_age is not None:
        approval = ApprovalState(
            binding=PlanBinding(
                plan_sha256="a" * 64,
                repo_commit="3f2a9c1b7d0e" + "0" * 28,
                tfvars_sha256="b" * 64,
                plan_created_at=utcnow() - plan_age,
                attempt=1,
            )
        )
    return deployment_record(REQUESTER, status=status, approval=approval)


def test_web_metrics_count_what_redis_holds(web_process: WebProcess, redis_conn: redis.Redis) -> None:
    store = DeploymentStore(redis_conn)
    waiting = [
        deployment(DeploymentStatus.AWAITING_APPROVAL, plan_age=timedelta(minutes=30)),
        deployment(DeploymentStatus.AWAITING_APPROVAL, plan_age=timedelta(minutes=5)),
    ]
    for record in [*waiting, deployment(DeploymentStatus.DEPLOYED), deployment(DeploymentStatus.FAILED)]:
        store.create(record)
    settings = Settings(REDIS_URL="redis://unused:6379/0")
    enqueue_step(redis_conn, settings, Step.PLAN, waiting[0].id)  # one job waiting in the bot's queue
    failed = Job.create(JOB_FUNCTIONS[Step.APPLY], args=[waiting[1].id, {}], connection=redis_conn)
    failed.save()
    queue(redis_conn, settings).failed_job_registry.add(failed, ttl=3600, exc_string="boom")
    outbox = Outbox(redis_conn)
    with redis_conn.pipeline(transaction=True) as pipe:  # due in an hour: no deliverer takes them now
        outbox.add(pipe, OutboxEntry(deployment_id=waiting[0].id, kind="post", text="a", attempts=3))
        outbox.add(pipe, OutboxEntry(deployment_id=waiting[0].id, kind="post", text="b"))
        outbox.add(pipe, OutboxEntry(deployment_id=waiting[1].id, kind="post", text="c", rate_limits=1))
        pipe.zadd(DUE_KEY, {waiting[0].id: time.time() + 3600, waiting[1].id: time.time() + 3600})
        pipe.execute()

    families = scrape(metrics_url(web_process))

    assert value(families["ecs_deploy_redis_up"], "ecs_deploy_redis_up") == 1
    deployments = families["ecs_deploy_deployments"]
    assert value(deployments, "ecs_deploy_deployments", status="awaiting_approval") == 2
    assert value(deployments, "ecs_deploy_deployments", status="deployed") == 1
    assert value(deployments, "ecs_deploy_deployments", status="failed") == 1
    assert value(deployments, "ecs_deploy_deployments", status="applying") == 0
    assert value(families["ecs_deploy_approvals_waiting"], "ecs_deploy_approvals_waiting") == 2
    oldest = value(
        families["ecs_deploy_approval_oldest_wait_seconds"], "ecs_deploy_approval_oldest_wait_seconds"
    )
    assert 30 * 60 <= oldest < 60 * 60
    jobs = families["ecs_deploy_queue_jobs"]
    assert value(jobs, "ecs_deploy_queue_jobs", queue="ecs-deploy", state="queued") == 1
    assert value(jobs, "ecs_deploy_queue_jobs", queue="ecs-deploy", state="failed") == 1
    assert value(families["ecs_deploy_outbox_entries"], "ecs_deploy_outbox_entries") == 3
    assert value(families["ecs_deploy_outbox_deployments"], "ecs_deploy_outbox_deployments") == 2
    assert value(families["ecs_deploy_outbox_retrying"], "ecs_deploy_outbox_retrying") == 1
    assert value(families["ecs_deploy_outbox_rate_limited"], "ecs_deploy_outbox_rate_limited") == 1
    assert value(families["ecs_deploy_outbox_failed_attempts"], "ecs_deploy_outbox_failed_attempts") == 3
    labels = {v for samples in families.values() for s in samples for v in s.labels.values()}
    assert not any(record.id in label for record in waiting for label in labels)  # counts, never ids


def _answers(url: str, worker: subprocess.Popen[bytes]) -> bool:
    assert worker.poll() is None, f"the worker exited with {worker.returncode}"
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


@pytest.fixture
def metrics_worker(pipeline_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """A long-running `ecs-deploy-bot worker --metrics-port P`; yields its metrics URL."""
    port = free_port()
    worker = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "worker", "--metrics-port", str(port)],
        cwd=ROOT,
        start_new_session=True,
        env={**os.environ, **pipeline_env, "ECS_DEPLOY_DATA_DIR": str(tmp_path / "metrics-worker")},
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "metrics-worker.log").open("wb"),
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        eventually(lambda: _answers(url, worker), timeout=60)
        yield url
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    metric_files = list((tmp_path / "metrics-worker" / "metrics").glob("*/*.db"))
    assert not metric_files, metric_files  # the worker removed its metrics directory when it stopped


def test_worker_histograms_and_web_gauges_after_a_deployment_to_approval(
    pipeline: SlackClientSim,
    metrics_worker: str,
    slack_api: SlackApiStandIn,
    redis_conn: redis.Redis,
) -> None:
    slack, store = pipeline, DeploymentStore(redis_conn)
    deployment_id = submit(slack, store, "V-METRICS")
    eventually(
        lambda: store.get(deployment_id).status.value in ("awaiting_decision", "awaiting_input"),
        timeout=FLOW_TIMEOUT,
    )
    # the root message's ts is stored once an outbox delivered it; the clicks below are in its thread
    eventually(lambda: store.get(deployment_id).thread_ts is not None)
    current = store.get(deployment_id)
    if current.status.value == "awaiting_decision":
        action = "analysis_apply_recommendations" if current.recommendations else "analysis_keep_values"
        click(slack, slack_api, current.thread_ts or "", action, REQUESTER)
        eventually(lambda: store.get(deployment_id).status.value == "awaiting_input", timeout=FLOW_TIMEOUT)
    eventually(lambda: slack_api.find_button(current.thread_ts or "", "workspace_provide_values"))
    give_values(slack, slack_api, store.get(deployment_id))
    eventually(lambda: store.get(deployment_id).status.value == "awaiting_approval", timeout=FLOW_TIMEOUT)

    # the work horse times a job when it returns: after the plan's last move (awaiting_approval)
    worker: dict[str, list[Sample]] = {}

    def plan_timed() -> bool:
        worker.clear()
        worker.update(scrape(metrics_worker))
        steps = worker.get("ecs_deploy_step_duration_seconds", [])
        return value(steps, "ecs_deploy_step_duration_seconds_count", step="plan", outcome="ok") >= 1

    eventually(plan_timed, timeout=60)
    steps = worker["ecs_deploy_step_duration_seconds"]
    for step in ("verify", "analyse", "backend", "workspace", "plan"):
        assert value(steps, "ecs_deploy_step_duration_seconds_count", step=step, outcome="ok") >= 1, step
    terraform = worker["ecs_deploy_terraform_run_duration_seconds"]
    for command in ("init", "plan", "show"):
        assert (
            value(terraform, "ecs_deploy_terraform_run_duration_seconds_count", command=command, outcome="ok")
            >= 1
        )
    scans = worker["ecs_deploy_account_scan_duration_seconds"]
    assert value(scans, "ecs_deploy_account_scan_duration_seconds_count", outcome="ok") >= 1
    assert value(scans, "ecs_deploy_account_scan_duration_seconds_sum", outcome="ok") > 0

    web_url = pipeline.url.replace("/slack/events", "/metrics")
    web = scrape(web_url)
    assert value(web["ecs_deploy_deployments"], "ecs_deploy_deployments", status="awaiting_approval") == 1
    assert value(web["ecs_deploy_approvals_waiting"], "ecs_deploy_approvals_waiting") == 1

    labels = {
        v
        for families in (worker, web)
        for samples in families.values()
        for s in samples
        for v in s.labels.values()
    }
    assert not any(deployment_id in label for label in labels)
