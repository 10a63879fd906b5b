"""Crashes and restarts, on real processes: a worker killed mid-apply (with its work horse and its
Terraform, as a container or OOM kill does), a web process restarted while a plan awaits approval,
and Redis restarted with its data.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
from rq import Queue
from rq.executions import Execution
from rq.job import Job
from rq.registry import FailedJobRegistry, StartedJobRegistry
from rq.utils import utcformat

from core.approval import Approval, ApprovalState, PlanBinding, new_plan
from core.locks import StateLock, state_id
from core.models import (
    AccountSituation,
    Deployment,
    DeploymentRequest,
    DeploymentStatus,
    PlanRecord,
    WorkspaceRecord,
    utcnow,
)
from core.queue import JOB_SERIALIZER, Step, enqueue_step
from core.redis_server import EmbeddedRedis
from core.settings import ConfigurationError, Settings, load_settings
from core.sizes import SetupSize
from core.store import DeploymentStore
from tests.harness.processes import ROOT, WebProcess
from tests.harness.secrets import artifact_store
from tests.harness.slack_api import BOT_TOKEN, SlackApiStandIn
from tests.harness.slack_requests import SlackClientSim
from tests.harness.tfrepo import make_git_repo
from workers.sweeper import Bounds

REQUESTER, LEAD = "U0REQUEST1", "U0LEAD0001"
FAST = {"ECS_DEPLOY_HEARTBEAT_INTERVAL": "1", "ECS_DEPLOY_DEAD_AFTER": "5", "ECS_DEPLOY_SWEEP_INTERVAL": "2"}
TF_LOCK_ID = "5b6c1a2e-0d43-4b8f-a1c3-9e2f00c0ffee"

HANGING_TERRAFORM = textwrap.dedent(
    """\
    #!{python}
    import json, os, sys, time
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    with open({pids!r}, "a") as pids:
        pids.write(f"{{command}} {{os.getpid()}}\\n")
    if command == "version":
        print(json.dumps({{"terraform_version": "1.15.5"}}))
    elif command == "apply":
        print("terraform_data.deploy: Creating...", flush=True)
        print("terraform_data.deploy: Creation complete after 0s [id=1]", flush=True)
        print("terraform_data.config: Creating...", flush=True)
        time.sleep(600)
    sys.exit(0)
    """
)


# -- helpers -------------------------------------------------------------------------------------


def request() -> DeploymentRequest:
    return DeploymentRequest(
        profile="deployer",
        account_situation=AccountSituation.EXISTING,
        size=SetupSize.SMALL,
        account_id="123456789012",
        region="us-east-1",
        application="web",
        environment="dev",
    )


def approved_deployment(
    connection: redis.Redis, commit: str, *, status: DeploymentStatus = DeploymentStatus.APPROVED_QUEUED
) -> Deployment:
    """A deployment whose plan #1 was approved by LEAD: its files and plan are in the artifact store."""
    deployment = Deployment(request=request(), requester_id=REQUESTER, channel_id="C_DEPLOYS")
    artifacts = artifact_store(connection)
    stem = deployment.request.file_stem
    tfvars = b'region = "us-east-1"\napplication = "web"\n'
    tfbackend = (
        f'bucket = "{deployment.request.state_bucket}"\nkey = "{deployment.request.state_key}"\n'.encode()
    )
    tfvars_sha = artifacts.put(deployment.id, "tfvars", tfvars)
    backend_sha = artifacts.put(deployment.id, "tfbackend", tfbackend)
    plan_sha = artifacts.put(deployment.id, "plan-1", b"a saved terraform plan")
    binding = PlanBinding(
        plan_sha256=plan_sha,
        repo_commit=commit,
        tfvars_sha256=tfvars_sha,
        plan_created_at=utcnow(),
        attempt=1,
    )
    approval = new_plan(ApprovalState(), binding, required_approvals=1)
    if status is not DeploymentStatus.AWAITING_APPROVAL:
        approval = approval.model_copy(
            update={"approvals": (Approval(approver_id=LEAD, at=utcnow(), binding=binding),)}
        )
    deployment = deployment.model_copy(
        update={
            "status": status,
            "workspace": WorkspaceRecord(
                commit=commit,
                tfvars_path=f"tfvars/{stem}.tfvars",
                tfbackend_path=f"tfbackends/{stem}.tfbackend",
                tfvars_sha256=tfvars_sha,
                tfbackend_sha256=backend_sha,
            ),
            "plan": PlanRecord(
                attempt=1,
                sha256=plan_sha,
                created_at=binding.plan_created_at,
                sentence="2 to add, 0 to change, 0 to destroy",
                has_changes=True,
                applyable=True,
                resource_changes=2,
            ),
            "approval": approval,
            "backend_ready": True,
            "repo_commit": commit,
        }
    )
    DeploymentStore(connection).create(deployment)
    return deployment


class WorkerProcess:
    """`ecs-deploy-bot worker` in its own session, its log in a file."""

    def __init__(self, env: dict[str, str], log_path: Path, name: str) -> None:
        self.log_path = log_path
        self.name = name
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "worker", "--name", name],
            env={**os.environ, **env},
            cwd=ROOT,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill_everything(self) -> list[int]:
        """SIGKILL the worker and every process under it (work horse, Terraform, scheduler), whatever
        their process group: what a container stop or the OOM killer's cgroup kill does."""
        pids = [self.process.pid, *descendants(self.process.pid)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        return pids

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # warm shutdown
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill_everything()


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def apply_jobs(connection: redis.Redis) -> list[Job]:
    jobs = [
        Job.fetch(key.decode().split(":", 2)[2], connection=connection, serializer=JOB_SERIALIZER)
        for key in connection.keys("rq:job:*")
    ]
    return [job for job in jobs if job.meta.get("step") == Step.APPLY.value]


# -- a worker killed mid-apply ---------------------------------------------------------------------


@pytest.fixture
def crash_env(bot_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    repo, _ = make_git_repo(tmp_path)
    script = tmp_path / "terraform"
    pids = tmp_path / "terraform.pids"
    script.write_text(HANGING_TERRAFORM.format(python=sys.executable, pids=str(pids)))
    script.chmod(0o755)
    yield {
        **bot_env,
        **FAST,
        "ECS_DEPLOY_REPO_URL": str(repo),
        "ECS_DEPLOY_APPROVERS": LEAD,
        "ECS_DEPLOY_DATA_DIR": str(tmp_path / "data"),
        "TERRAFORM_BIN": str(script),
        "LOG_LEVEL": "INFO",
    }


def test_default_bounds_report_a_dead_worker_within_two_minutes() -> None:
    bounds = Bounds()
    assert bounds.dead_after >= 6 * bounds.heartbeat_interval  # one slow beat is not a death
    assert bounds.detection_bound <= 75 < 120
    assert Bounds.from_settings(Settings()) == bounds  # the settings' defaults are these bounds


def test_bounds_that_would_report_live_jobs_are_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECS_DEPLOY_HEARTBEAT_INTERVAL", "10")
    monkeypatch.setenv("ECS_DEPLOY_DEAD_AFTER", "15")
    with pytest.raises(ConfigurationError, match="ECS_DEPLOY_DEAD_AFTER must be more than twice"):
        load_settings()


def test_worker_killed_mid_apply_is_reported_and_never_retried(
    crash_env: dict[str, str],
    redis_conn: redis.Redis,
    slack_api: SlackApiStandIn,
    aws: object,
    tmp_path: Path,
) -> None:
    bounds = Bounds(heartbeat_interval=1, dead_after=5, sweep_interval=2)
    repo = Path(crash_env["ECS_DEPLOY_REPO_URL"])
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    deployment = approved_deployment(redis_conn, commit)
    store = DeploymentStore(redis_conn)
    # Terraform's own lock item, as a killed `terraform apply` leaves it in DynamoDB
    dynamodb = boto3.Session(profile_name="deployer", region_name="us-east-1").client("dynamodb")
    table = deployment.request.lock_table
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    info = {"ID": TF_LOCK_ID, "Operation": "OperationTypeApply", "Who": "worker@host", "Created": "now"}
    dynamodb.put_item(
        TableName=table,
        Item={
            "LockID": {"S": f"{deployment.request.state_bucket}/{deployment.request.state_key}"},
            "Info": {"S": json.dumps(info)},
        },
    )
    settings = Settings(REDIS_URL=crash_env["REDIS_URL"])
    job = enqueue_step(redis_conn, settings, Step.APPLY, deployment.id)

    doomed = WorkerProcess(crash_env, tmp_path / "worker-a.log", "worker-a")
    sweepers: list[WorkerProcess] = []
    try:
        pids_file = tmp_path / "terraform.pids"
        wait_until(
            lambda: pids_file.exists() and "\napply " in f"\n{pids_file.read_text()}",
            40,
            "terraform apply to start",
        )
        lock = StateLock(
            redis_conn, state_id(deployment.request.state_bucket, deployment.request.state_key), ttl_seconds=1
        )
        holder = lock.holder()
        assert holder is not None and holder.deployment_id == deployment.id and holder.step == "apply"
        assert store.get(deployment.id).status is DeploymentStatus.APPLYING
        # two more workers: both sweep, only one may report
        sweepers = [WorkerProcess(crash_env, tmp_path / f"worker-{n}.log", f"worker-{n}") for n in ("b", "c")]
        wait_until(
            lambda: all(redis_conn.exists(f"ecs-deploy:alive:worker:worker-{n}") for n in ("b", "c")),
            20,
            "the other workers' heartbeats",
        )

        killed_at = time.monotonic()
        killed = doomed.kill_everything()
        assert len(killed) >= 3, "worker, work horse and terraform"  # (and RQ's scheduler)
        wait_until(lambda: not any(alive(pid) for pid in killed), 10, "the killed processes to be gone")

        wait_until(
            lambda: store.get(deployment.id).status is DeploymentStatus.INTERRUPTED,
            bounds.detection_bound + 15,
            "the deployment to be marked interrupted",
        )
        elapsed = time.monotonic() - killed_at
        assert elapsed <= bounds.detection_bound + 5, elapsed
        current = store.get(deployment.id)
        thread = current.thread_ts
        assert thread
        wait_until(
            lambda: any("Interrupted: terraform apply" in t for t in slack_api.thread_texts(thread)),
            10,
            "the interrupted message",
        )
        time.sleep(3 * bounds.sweep_interval)  # more sweeps by both workers change nothing

        # the thread: what was running, what to do, which locks
        interrupted = [t for t in slack_api.thread_texts(thread) if "Interrupted: terraform apply" in t]
        assert len(interrupted) == 1, interrupted
        text = interrupted[0]
        assert "state may be partially applied — re-plan to see" in text
        assert "has been released" in text and deployment.request.state_bucket in text
        assert f"terraform force-unlock {TF_LOCK_ID}" in text
        assert job.id in text
        root = slack_api.messages[thread]
        assert "Interrupted" in json.dumps(root["blocks"])

        # the bot's lock is free; RQ's job is failed, out of the started registry; no second apply
        assert lock.holder() is None
        job.refresh()
        assert job.get_status() == "failed"
        failure = job.latest_result()
        assert failure is not None and str(failure.exc_string).startswith("Interrupted: worker worker-a")
        started = StartedJobRegistry(settings.queue_name, connection=redis_conn, serializer=JOB_SERIALIZER)
        assert redis_conn.zcard(started.key) == 0
        failed = FailedJobRegistry(settings.queue_name, connection=redis_conn, serializer=JOB_SERIALIZER)
        assert job.id in failed.get_job_ids()
        assert [j.id for j in apply_jobs(redis_conn)] == [job.id]
        assert redis_conn.llen(f"rq:queue:{settings.queue_name}") == 0
        assert store.get(deployment.id).status is DeploymentStatus.INTERRUPTED

        # structured logs: the report names the deployment and the job; no token anywhere
        for worker in sweepers:
            worker.stop()
        logs = doomed.log + "".join(w.log for w in sweepers)
        reports = [
            json.loads(line)
            for line in logs.splitlines()
            if line.startswith("{") and '"job_interrupted"' in line
        ]
        assert len(reports) == 1
        assert reports[0]["deployment_id"] == deployment.id and reports[0]["job_id"] == job.id
        lines = [line for line in doomed.log.splitlines() if line.strip()]
        assert all(line.startswith("{") for line in lines), [x for x in lines if not x.startswith("{")][:3]
        in_job = [r for r in map(json.loads, lines) if r.get("job_id") == job.id]
        assert in_job and all(r["deployment_id"] == deployment.id for r in in_job)
        assert BOT_TOKEN not in logs
    finally:
        if doomed.process.poll() is None:
            doomed.kill_everything()
        for worker in sweepers:
            worker.stop()


def test_worker_restarted_after_a_kill_reports_a_plan_it_finds_dead(
    crash_env: dict[str, str],
    redis_conn: redis.Redis,
    slack_api: SlackApiStandIn,
    aws: object,
    tmp_path: Path,
) -> None:
    """No worker was left alive: the replacement worker's first sweep (at start, before RQ's own
    cleanup) finds the dead job, even though RQ's registry entry has not expired yet."""
    deployment = Deployment(request=request(), requester_id=REQUESTER, channel_id="C_DEPLOYS")
    deployment = deployment.with_status(DeploymentStatus.PLANNING)
    store = DeploymentStore(redis_conn)
    store.create(deployment)
    settings = Settings(REDIS_URL=crash_env["REDIS_URL"])
    job = enqueue_step(redis_conn, settings, Step.PLAN, deployment.id)
    lock = StateLock(
        redis_conn, state_id(deployment.request.state_bucket, deployment.request.state_key), ttl_seconds=600
    )
    assert lock.try_acquire(deployment.id, REQUESTER, "plan") is not None
    # a job STARTED by a worker that no longer exists (its heartbeat long gone)
    Queue(settings.queue_name, connection=redis_conn, serializer=JOB_SERIALIZER).pop_job_id()
    with redis_conn.pipeline() as pipe:  # what RQ records when a worker takes a job
        job.prepare_for_execution("ghost", pipe)
        Execution.create(job, ttl=600, pipeline=pipe, worker_name="ghost")
        pipe.execute()
    redis_conn.hset(job.key, "started_at", utcformat(utcnow() - timedelta(seconds=30)))
    assert job.get_status() == "started"

    worker = WorkerProcess(crash_env, tmp_path / "worker.log", "worker-new")
    try:
        wait_until(
            lambda: store.get(deployment.id).status is DeploymentStatus.INTERRUPTED,
            20,
            "the plan to be interrupted",
        )
        thread = store.get(deployment.id).thread_ts or ""
        wait_until(
            lambda: any("Interrupted: terraform plan" in t for t in slack_api.thread_texts(thread)),
            10,
            "the message",
        )
        text = next(t for t in slack_api.thread_texts(thread) if "Interrupted: terraform plan" in t)
        assert "Re-plan" in text and "has been released" in text
        assert "terraform force-unlock <LOCK_ID>" in text  # no lock item found: the general advice
        assert lock.holder() is None
        assert Job.fetch(job.id, connection=redis_conn, serializer=JOB_SERIALIZER).get_status() == "failed"
        assert redis_conn.llen(f"rq:queue:{settings.queue_name}") == 0
    finally:
        worker.stop()


def test_a_cancelled_deployment_stays_cancelled_and_a_foreign_lock_stays(
    crash_env: dict[str, str], redis_conn: redis.Redis, slack_api: SlackApiStandIn, aws: object
) -> None:
    from bot.notifier import Notifier
    from bot.slack import make_web_client
    from workers.sweeper import Sweeper

    settings = Settings(
        REDIS_URL=crash_env["REDIS_URL"], SLACK_API_URL=crash_env["SLACK_API_URL"], SLACK_BOT_TOKEN=BOT_TOKEN
    )
    store = DeploymentStore(redis_conn)
    deployment = Deployment(request=request(), requester_id=REQUESTER, channel_id="C_DEPLOYS")
    store.create(deployment.with_status(DeploymentStatus.CANCELLED))
    other = Deployment(request=request(), requester_id=REQUESTER, channel_id="C_DEPLOYS")
    lock = StateLock(
        redis_conn, state_id(deployment.request.state_bucket, deployment.request.state_key), ttl_seconds=600
    )
    assert lock.try_acquire(other.id, REQUESTER, "plan") is not None
    job = enqueue_step(redis_conn, settings, Step.APPLY, deployment.id)
    sweeper = Sweeper(redis_conn, settings, Notifier(make_web_client(settings), store), Bounds())
    result = sweeper.report(job, reason="test")
    assert not result.marked and not result.lock_released
    assert store.get(deployment.id).status is DeploymentStatus.CANCELLED
    holder = lock.holder()
    assert holder is not None and holder.deployment_id == other.id
    text = "\n".join(slack_api.thread_texts(store.get(deployment.id).thread_ts or ""))
    assert "already cancelled; it stays cancelled" in text and "partially applied" in text


# -- the web process restarts while a plan awaits approval ---------------------------------------


def test_pending_approval_survives_a_web_restart(
    bot_env: dict[str, str], redis_conn: redis.Redis, slack_api: SlackApiStandIn, tmp_path: Path
) -> None:
    env = {**bot_env, "ECS_DEPLOY_APPROVERS": LEAD}
    deployment = approved_deployment(redis_conn, "0" * 40, status=DeploymentStatus.AWAITING_APPROVAL)
    store = DeploymentStore(redis_conn)
    store.update(deployment.id, lambda d: d.model_copy(update={"thread_ts": "1700000000.000001"}))
    button = f"{deployment.id}:1"

    first = WebProcess(env).start()
    SlackClientSim(first.events_url).slash_command("help", user=LEAD)
    first.stop()
    assert store.get(deployment.id).status is DeploymentStatus.AWAITING_APPROVAL

    second = WebProcess(env).start()
    try:
        response = SlackClientSim(second.events_url).block_action(
            "plan_approve", button, user=LEAD, message_ts="1700000000.000002"
        )
        assert response.status_code == 200
        wait_until(
            lambda: store.get(deployment.id).status is DeploymentStatus.APPROVED_QUEUED, 10, "the approval"
        )
    finally:
        second.stop()
    current = store.get(deployment.id)
    assert current.approval.approver_ids == [LEAD] and current.approval.is_ready
    assert [c.user_id for c in current.approval.clicks if c.allowed] == [LEAD]
    jobs = apply_jobs(redis_conn)
    assert len(jobs) == 1 and jobs[0].meta["deployment_id"] == deployment.id
    assert redis_conn.llen("rq:queue:ecs-deploy") == 1


# -- Redis restarts --------------------------------------------------------------------------------


def test_deployments_and_approvals_survive_a_redis_restart(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis", persistent=True).start()
    try:
        connection = redis.Redis.from_url(server.url)
        deployment = approved_deployment(connection, "1" * 40)
        store = DeploymentStore(connection)
        before = store.get(deployment.id)
        assert before.approval.is_ready
        settings = Settings(REDIS_URL=server.url)
        job = enqueue_step(connection, settings, Step.APPLY, deployment.id)
        connection.close()

        server.stop()
        assert not redis_alive(server.url)
        server.start()

        connection = redis.Redis.from_url(server.url)
        after = DeploymentStore(connection).get(deployment.id)
        assert after == before
        assert after.approval.is_ready and after.approval.approver_ids == [LEAD]
        assert [d.id for d in DeploymentStore(connection).recent(user_id=REQUESTER)] == [deployment.id]
        assert artifact_store(connection).get(
            deployment.id, "plan-1", before.plan.sha256 if before.plan else ""
        )
        assert Job.fetch(job.id, connection=connection, serializer=JOB_SERIALIZER).meta == {
            "deployment_id": deployment.id,
            "step": "apply",
        }
        connection.close()
    finally:
        server.stop()


def redis_alive(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.2).ping())
    except redis.ConnectionError:
        return False
