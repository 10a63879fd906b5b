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

from bot.embedded_redis import EmbeddedRedis
from core.approval import Approval, ApprovalState, PlanBinding, new_plan
from core.models import (
    Deployment,
    DeploymentStatus,
    PlanRecord,
    WorkspaceRecord,
    utcnow,
)
from core.settings import ConfigurationError, Settings, load_settings
from core.terraform_locks import TerraformRun
from storage.audit import AuditTrail
from storage.locks import StateLock, TerraformRuns, state_id
from storage.queue import JOB_SERIALIZER, Step, enqueue_step
from storage.store import DeploymentStore
from tests.harness.aws import MotoServer, lock_table
from tests.harness.dev import process_tree
from tests.harness.flow import PipelineRun, click, drive_to_plan_stage, submit
from tests.harness.processes import ROOT, WebProcess, run_worker_burst
from tests.harness.records import deployment_record
from tests.harness.secrets import artifact_store
from tests.harness.slack_api import BOT_TOKEN, SlackApiStandIn
from tests.harness.slack_requests import SlackClientSim
from tests.harness.tfrepo import commit_file, make_git_repo
from workers.heartbeats import Bounds
from workers.terraform.runner.process_group import group_members

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
    elif command == "apply":  # Terraform's -json UI messages
        for kind, name in (("apply_start", "deploy"), ("apply_complete", "deploy"), ("apply_start", "config")):
            hook = {{"resource": {{"addr": f"terraform_data.{{name}}"}}, "action": "create"}}
            print(json.dumps({{"type": kind, "@message": name, "hook": hook}}), flush=True)
        time.sleep(600)
    sys.exit(0)
    """
)


# -- helpers -------------------------------------------------------------------------------------


def approved_deployment(
    connection: redis.Redis, commit: str, *, status: DeploymentStatus = DeploymentStatus.APPROVED
) -> Deployment:
    """A deployment whose plan #1 was approved by LEAD: its files and plan are in the artifact store."""
    deployment = deployment_record(REQUESTER)
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
    return list(process_tree(pid))


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# How long to wait for something that will happen (a message, a status, a process starting or gone)
# but that a loaded machine delays: a fresh worker process's start and first boto3 session take
# seconds on a busy 2-core machine. Not a bound the product promises; those (detection_bound) are
# asserted as they are.
SLOW = 60


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def thread_texts(api: SlackApiStandIn, store: DeploymentStore, deployment_id: str) -> list[str]:
    """What the deployment's thread says so far. A record made without a root message gets one with
    its first status change, delivered after the status is stored: until then it has no thread (read
    the thread's ts again each time, never once right after the status changed)."""
    thread = store.get(deployment_id).thread_ts
    return api.thread_texts(thread) if thread else []


def wait_for_new_plan(store: DeploymentStore, deployment_id: str, attempt: int) -> None:
    """Until plan `attempt` of the deployment is awaiting approval."""
    wait_until(
        lambda: (
            store.get(deployment_id).status is DeploymentStatus.AWAITING_APPROVAL
            and (store.get(deployment_id).plan or PlanRecord.model_construct(attempt=0)).attempt == attempt
        ),
        180,
        "the new plan",
    )


def apply_jobs(connection: redis.Redis) -> list[Job]:
    jobs = [
        Job.fetch(key.decode().split(":", 2)[2], connection=connection, serializer=JOB_SERIALIZER)
        for key in connection.keys("rq:job:*")
    ]
    return [job for job in jobs if job.meta.get("step") == Step.APPLY.value]


# -- a worker killed mid-apply ---------------------------------------------------------------------


@pytest.fixture
def crash_env(bot_env: dict[str, str], tmp_path: Path, aws: MotoServer) -> Iterator[dict[str, str]]:
    """The bot's environment with a Terraform that hangs in `apply`, fast heartbeats and sweeps, and a
    clean moto (the workers' AWS)."""
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
    dynamodb, table = lock_table(deployment)
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
            2 * SLOW,  # a fresh worker starts, rebuilds the workspace, then runs the job
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
            SLOW,
            "the other workers' heartbeats",
        )

        killed_at = time.monotonic()
        killed = doomed.kill_everything()
        assert len(killed) >= 3, "worker, work horse and terraform"  # (and RQ's scheduler)
        wait_until(lambda: not any(alive(pid) for pid in killed), SLOW, "the killed processes to be gone")

        wait_until(
            lambda: store.get(deployment.id).status is DeploymentStatus.INTERRUPTED,
            bounds.detection_bound + 15,
            "the deployment to be marked interrupted",
        )
        elapsed = time.monotonic() - killed_at
        assert elapsed <= bounds.detection_bound + 5, elapsed
        wait_until(
            lambda: any(
                "Interrupted: terraform apply" in t for t in thread_texts(slack_api, store, deployment.id)
            ),
            SLOW,
            "the interrupted message",
        )
        thread = store.get(deployment.id).thread_ts
        assert thread
        time.sleep(3 * bounds.sweep_interval)  # more sweeps by both workers change nothing

        # the thread: what was running, what to do, which locks
        interrupted = [t for t in slack_api.thread_texts(thread) if "Interrupted: terraform apply" in t]
        assert len(interrupted) == 1, interrupted
        text = interrupted[0]
        # what the run's log says, what could (not) be checked, whose lock it is, what to do
        assert "According to its log, 1 of 2 resource changes completed" in text
        assert "created: `terraform_data.deploy`" in text
        assert "Still in progress when it stopped: `terraform_data.config`" in text
        assert "The state object could not be read" in text  # no state bucket in this test
        assert f"is held (lock ID `{TF_LOCK_ID}`" in text and "not provably this run's" in text
        assert "the bot will not touch it" in text  # a lock it cannot prove is its own
        assert f"terraform force-unlock {TF_LOCK_ID}" in text and "*Next:* *Re-plan*" in text
        assert "has been released" in text and deployment.request.state_bucket in text
        assert "after the job started (last heartbeat " in text
        assert job.id in text
        # the progress message says it was interrupted, with the count from the log
        updates = [c.params.get("text", "") for c in slack_api.calls_to("chat.update")]
        assert any("Apply interrupted — 1/2 resources done (from its log)" in u for u in updates), updates
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
    tmp_path: Path,
) -> None:
    """No worker was left alive: the replacement worker's first sweep (at start, before RQ's own
    cleanup) finds the dead job, even though RQ's registry entry has not expired yet."""
    deployment = deployment_record(REQUESTER)
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
            SLOW,
            "the plan to be interrupted",
        )
        wait_until(
            lambda: any(
                "Interrupted: terraform plan" in t for t in thread_texts(slack_api, store, deployment.id)
            ),
            SLOW,  # after INTERRUPTED, the sweeper reads the state and the lock in moto, then posts
            "the message",
        )
        thread = store.get(deployment.id).thread_ts or ""
        text = next(t for t in slack_api.thread_texts(thread) if "Interrupted: terraform plan" in t)
        assert "Re-plan" in text and "has been released" in text
        assert "A plan changes nothing in AWS" in text
        assert "no record of this run's Terraform command" in text  # it never ran here
        # the lock table does not exist in this test: said so, with where to look next
        assert "could not be checked" in text and f"`/ecs-deploy unlock {deployment.id}`" in text
        assert lock.holder() is None
        assert Job.fetch(job.id, connection=redis_conn, serializer=JOB_SERIALIZER).get_status() == "failed"
        assert redis_conn.llen(f"rq:queue:{settings.queue_name}") == 0
    finally:
        worker.stop()


def test_a_cancelled_deployment_stays_cancelled_and_a_foreign_lock_stays(
    crash_env: dict[str, str], redis_conn: redis.Redis, slack_api: SlackApiStandIn
) -> None:
    from bot.notifier import Notifier
    from bot.slack import make_web_client
    from workers.sweeper import Sweeper

    settings = Settings(
        REDIS_URL=crash_env["REDIS_URL"], SLACK_API_URL=crash_env["SLACK_API_URL"], SLACK_BOT_TOKEN=BOT_TOKEN
    )
    store = DeploymentStore(redis_conn)
    deployment = deployment_record(REQUESTER)
    store.create(deployment.with_status(DeploymentStatus.CANCELLED))
    other = deployment_record(REQUESTER)
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
    assert "already cancelled; it stays cancelled" in text and "*Next:* *Re-plan*" in text


# -- a real, slow apply: the horse killed alone, then the whole worker (a container kill) ----------

SLOW_TF = """
resource "terraform_data" "slow" {
  input = "slow"

  provisioner "local-exec" {
    command = "echo slow-started; sleep 417"
  }
}
"""


@pytest.fixture
def slow_env(bot_env: dict[str, str], tmp_path: Path, aws: MotoServer) -> dict[str, str]:
    """The test Terraform repository plus one resource whose creation takes minutes (`sleep 417`),
    and a clean moto (the workers' AWS)."""
    repo, _ = make_git_repo(tmp_path)
    commit_file(repo, "slow.tf", SLOW_TF, "a slow resource")
    return {
        **bot_env,
        **FAST,
        "ECS_DEPLOY_REPO_URL": str(repo),
        "ECS_DEPLOY_APPROVERS": LEAD,
        "ECS_DEPLOY_DATA_DIR": str(tmp_path / "data"),
        "ECS_DEPLOY_VERIFY_TIMEOUT": "0",
        "LOG_LEVEL": "INFO",
    }


def slow_sleeps(data_dir: Path) -> list[int]:
    """The slow provisioner's `sleep 417` processes of this test: those running in a checkout under its
    workers' `data_dir` (Terraform's working directory, which the provisioner inherits and keeps when
    orphaned), not those of another test run on the same machine."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (
                    (entry / "cmdline").read_bytes() == b"sleep\x00417\x00"
                    and Path(os.readlink(entry / "cwd")).is_relative_to(data_dir)
                    and alive(int(entry.name))
                ):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def planned(
    slack: SlackClientSim, api: SlackApiStandIn, store: DeploymentStore, env: dict[str, str]
) -> Deployment:
    """A new deployment driven through Slack to a real plan waiting for approval."""
    deployment_id = submit(slack, store, f"V-{time.monotonic_ns()}", account_situation="new")
    drive_to_plan_stage(PipelineRun(slack, api, store, env), deployment_id)
    worker_log = run_worker_burst(env)
    deployment = store.get(deployment_id)
    assert deployment.status is DeploymentStatus.AWAITING_APPROVAL, (
        deployment.status_detail,
        worker_log[-3000:],
    )
    return deployment


def approve_and_start_applying(
    slack: SlackClientSim,
    api: SlackApiStandIn,
    redis_conn: redis.Redis,
    deployment: Deployment,
    data_dir: Path,
) -> TerraformRun:
    """The lead approves; once the apply runs the slow provisioner (in a checkout under `data_dir`),
    its run record (with the lock ID the bot read back from DynamoDB)."""
    click(slack, api, deployment.thread_ts or "", "plan_approve", LEAD)
    wait_until(lambda: bool(slow_sleeps(data_dir)), 180, "the apply to reach the slow resource")
    runs = TerraformRuns(redis_conn)
    state = state_id(deployment.request.state_bucket, deployment.request.state_key)
    wait_until(
        lambda: (r := runs.get(state)) is not None and r.lock is not None, SLOW, "the lock ID recorded"
    )
    run = runs.get(state)
    assert run is not None and run.step == "apply" and run.pid is not None and run.lock is not None
    return run


def lock_items(deployment: Deployment) -> dict[str, str]:
    dynamodb = boto3.Session(profile_name="deployer", region_name="us-east-1").client("dynamodb")
    items = dynamodb.scan(TableName=deployment.request.lock_table)["Items"]
    return {item["LockID"]["S"]: item.get("Info", {}).get("S", "") for item in items}


def state_object(deployment: Deployment) -> dict[str, Any] | None:
    s3 = boto3.Session(profile_name="deployer", region_name="us-east-1").client("s3")
    request = deployment.request
    try:
        body = s3.get_object(Bucket=request.state_bucket, Key=request.state_key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    document: dict[str, Any] = json.loads(body)
    return document


def interrupted_text(api: SlackApiStandIn, thread: str) -> str:
    found = [t for t in api.thread_texts(thread) if "Interrupted: terraform apply" in t]
    assert len(found) == 1, found
    return found[0]


def test_work_horse_killed_during_a_real_apply(
    slow_env: dict[str, str],
    redis_conn: redis.Redis,
    slack_api: SlackApiStandIn,
    tmp_path: Path,
) -> None:
    """SIGKILL of the work horse alone (the OOM killer's choice) while `terraform apply` waits on a slow
    provisioner: Terraform gets one SIGINT, writes its state and releases its lock; nothing of the run
    is left; the thread says what happened from what it checked; `/ecs-deploy plan` plans again."""
    data_dir = Path(slow_env["ECS_DEPLOY_DATA_DIR"]).resolve()
    web = WebProcess(slow_env).start()
    worker = None
    try:
        slack, store = SlackClientSim(web.events_url), DeploymentStore(redis_conn)
        deployment = planned(slack, slack_api, store, slow_env)
        thread = deployment.thread_ts or ""
        worker = WorkerProcess(slow_env, tmp_path / "worker-a.log", "worker-a")
        run = approve_and_start_applying(slack, slack_api, redis_conn, deployment, data_dir)
        assert run.job_id
        horse = int(redis_conn.get(f"ecs-deploy:alive:job:{run.job_id}") or 0)
        assert horse in descendants(worker.process.pid) and run.pid in descendants(horse)

        os.kill(horse, signal.SIGKILL)

        wait_until(
            lambda: store.get(deployment.id).status is DeploymentStatus.INTERRUPTED, SLOW, "interrupted"
        )
        wait_until(
            lambda: not group_members(run.pid or 0) and not slow_sleeps(data_dir),
            SLOW,
            "no process of the run left",
        )
        assert worker.process.poll() is None, "only the horse was killed; the worker lives on"
        wait_until(
            lambda: any("Interrupted: terraform apply" in t for t in slack_api.thread_texts(thread)),
            SLOW,
            "the interrupted message",
        )
        text = interrupted_text(slack_api, thread)
        log_text = Path(run.log_path or "").read_text()
        assert "Interrupt received" in log_text and "Two interrupts received" not in log_text
        assert "Terraform got the interrupt when its worker died and stopped on its own" in text
        # what the thread says is what AWS holds now
        state = state_object(deployment)
        assert state is not None, "Terraform wrote its state when interrupted"
        assert f"*Terraform wrote the state* (there was none before; serial {state['serial']} now)" in text
        assert all(key.endswith("-md5") for key in lock_items(deployment)), "Terraform released its lock"
        assert ":white_check_mark: Terraform's own lock on" in text and "is free" in text
        assert "According to its log," in text and "resource changes completed" in text
        assert "Still in progress when it stopped: `terraform_data.slow`" in text
        assert "its process was killed (signal 9)" in text
        updates = [c.params.get("text", "") for c in slack_api.calls_to("chat.update")]
        assert any("Apply interrupted —" in u and "(from its log)" in u for u in updates), updates

        # a new plan, without anyone unlocking anything
        slack.slash_command(f"plan {deployment.id}", user=REQUESTER)
        wait_for_new_plan(store, deployment.id, 2)
    finally:
        if worker is not None:
            worker.stop()
        web.stop()


def test_a_cancelled_deployment_replans_and_a_killed_runs_own_lock_is_released_by_the_replan(
    slow_env: dict[str, str],
    redis_conn: redis.Redis,
    slack_api: SlackApiStandIn,
    tmp_path: Path,
) -> None:
    """1. Cancel, then re-plan at once: the new plan is not interrupted by the old cancel (it used to be,
    for the cancel flag's 24 hours). 2. The approved apply's whole worker is killed with Terraform (a
    container kill): Terraform's lock stays in DynamoDB; the thread says it is provably the dead run's
    (the bot recorded its ID), and whether the state changed. 3. `/ecs-deploy plan` releases that lock
    (audited) and plans, without a `terraform force-unlock`."""
    data_dir = Path(slow_env["ECS_DEPLOY_DATA_DIR"]).resolve()
    web = WebProcess(slow_env).start()
    workers: list[WorkerProcess] = []
    try:
        slack, store = SlackClientSim(web.events_url), DeploymentStore(redis_conn)
        deployment = planned(slack, slack_api, store, slow_env)
        thread = deployment.thread_ts or ""

        # 1. cancelled, then re-planned: plans
        slack.slash_command(f"cancel {deployment.id}", user=REQUESTER)
        wait_until(lambda: store.get(deployment.id).status is DeploymentStatus.CANCELLED, SLOW, "cancelled")
        assert redis_conn.exists(f"ecs-deploy:cancel:{deployment.id}")
        slack.slash_command(f"plan {deployment.id}", user=REQUESTER)
        wait_until(lambda: store.get(deployment.id).status is DeploymentStatus.PLANNING, SLOW, "re-planning")
        assert not redis_conn.exists(f"ecs-deploy:cancel:{deployment.id}")
        run_worker_burst(slow_env)
        deployment = store.get(deployment.id)
        assert deployment.status is DeploymentStatus.AWAITING_APPROVAL, deployment.status_detail
        assert deployment.plan is not None and deployment.plan.attempt == 2

        # 2. the approved apply's worker is killed with everything under it
        doomed = WorkerProcess(slow_env, tmp_path / "worker-a.log", "worker-a")
        workers.append(doomed)
        run = approve_and_start_applying(slack, slack_api, redis_conn, deployment, data_dir)
        assert run.lock is not None
        workers.append(WorkerProcess(slow_env, tmp_path / "worker-b.log", "worker-b"))
        wait_until(lambda: redis_conn.exists("ecs-deploy:alive:worker:worker-b"), SLOW, "worker-b")
        killed = doomed.kill_everything()
        wait_until(lambda: not any(alive(pid) for pid in killed), SLOW, "the killed processes to be gone")
        assert not slow_sleeps(data_dir)

        wait_until(
            lambda: store.get(deployment.id).status is DeploymentStatus.INTERRUPTED, SLOW, "interrupted"
        )
        wait_until(
            lambda: any("Interrupted: terraform apply" in t for t in slack_api.thread_texts(thread)),
            SLOW,
            "the interrupted message",
        )
        text = interrupted_text(slack_api, thread)
        state = state_object(deployment)
        locks = lock_items(deployment)
        left = locks.get(state_id(deployment.request.state_bucket, deployment.request.state_key))
        assert left is not None and json.loads(left)["ID"] == run.lock.id, "SIGKILLed: the lock stays"
        assert f"is *still held by this run* (lock ID `{run.lock.id}`) — provably its own" in text
        assert f"the bot recorded lock ID `{run.lock.id}` when the run took it" in text
        assert "The re-plan first releases Terraform's lock left by this run" in text
        if state is None:  # the state was never written: what the log says was created is not in it
            assert "*No state was written* (there was none before the run and there is none now)" in text
            assert "*Created but not in the state:*" in text
        else:
            assert (
                f"*Terraform wrote the state* (there was none before; serial {state['serial']} now)" in text
            )

        # 3. a re-plan releases the dead run's lock itself, and plans
        slack.slash_command(f"plan {deployment.id}", user=REQUESTER)
        wait_for_new_plan(store, deployment.id, 3)
        release_said = f"(lock ID `{run.lock.id}`) was left by the interrupted run of `{deployment.id}`"
        wait_until(  # the plan's messages reach Slack from its work horse's outbox, maybe after its status
            lambda: release_said in "\n".join(slack_api.thread_texts(thread)), SLOW, "the lock release said"
        )
        replies = "\n".join(slack_api.thread_texts(thread))
        assert "No `terraform force-unlock` is needed" in replies
        assert all(key.endswith("-md5") for key in lock_items(deployment))
        released = [
            e
            for e in AuditTrail(redis_conn).for_deployment(deployment.id)
            if e.event == "terraform_lock_released"
        ]
        assert len(released) == 1 and released[0].actor == "worker"
        assert (
            released[0].detail["lock_id"] == run.lock.id and released[0].detail["proof"] == "recorded lock id"
        )
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.stop()
        web.stop()


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
        wait_until(lambda: store.get(deployment.id).status is DeploymentStatus.APPROVED, SLOW, "the approval")
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
