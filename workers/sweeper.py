"""Finding the jobs whose worker was killed, and telling their deployment's thread.

A worker killed together with its work horse (a container stop, an OOM kill, a host going away)
leaves its job STARTED in RQ. RQ itself notices only when the job's StartedJobRegistry entry has
expired (≈ 90 s) *and* a cleanup runs (a worker's maintenance, every 10 minutes). The bot does not
wait for that:

- every `ecs-deploy-bot worker` writes a **worker heartbeat** `ecs-deploy:alive:worker:{name}`
  every HEARTBEAT_INTERVAL (5 s) with a TTL of DEAD_AFTER (45 s), from a thread of the main process;
- the work horse writes a **job heartbeat** `ecs-deploy:alive:job:{job id}` the same way while the
  job runs (a horse orphaned by a kill of the main process only still finishes its job: it is alive);
- every live worker **sweeps** every SWEEP_INTERVAL (15 s): a STARTED job of the bot's queue with
  neither heartbeat, started more than DEAD_AFTER ago, is dead. The first sweeper to claim it
  (`SET NX ecs-deploy:interrupted:{job id}`) moves it to the FailedJobRegistry (so RQ's later
  cleanup finds nothing to do), marks the deployment INTERRUPTED through `Notifier.set_status` (a
  cancelled or rejected deployment stays so), releases the bot's state lock if that deployment holds
  it, and posts what was running and what to do. Nothing is re-enqueued: an interrupted apply is
  never retried automatically.

So a killed job is reported at most DEAD_AFTER + SWEEP_INTERVAL (+ one sweep's work) after the kill:
about 60 s with the defaults, well inside two minutes. The three bounds can be changed with
ECS_DEPLOY_HEARTBEAT_INTERVAL, ECS_DEPLOY_DEAD_AFTER and ECS_DEPLOY_SWEEP_INTERVAL (seconds); keep
DEAD_AFTER at several heartbeat intervals, so one slow Redis round trip does not look like a death.

RQ finds such a job on its own only later: when its StartedJobRegistry entry has expired (the
worker's job-monitoring interval + 60 s, ≈ 90 s) and a worker's maintenance (every 10 minutes) runs
its registry cleanup. That is what the heartbeats add: a report within a minute, with the worker
named. RQ's own findings are reported the same way (claimed by the same key), through RQ's public
hooks, so the thread hears about a death whichever process noticed first: every job is enqueued
with an `on_failure` Callback (storage/queue.py) that RQ's cleanup calls with `AbandonedJobError`, and
the worker is built with a `work_horse_killed_handler` for a work horse killed on its own
(workers/worker.py).

A killed Terraform run (plan or apply) is reported from what can be checked, not guessed: the run's
record (workers/steps/tfrun.py) and, when the run was on this host, its log; the state object's
serial before the run and now; whether Terraform's own lock is still held and whether it is provably
the dead run's (core.terraform_locks.own_lock); what the log says was created (its `apply_complete` messages:
the apply runs with -json), and what of that is missing from the state. When the run was on this
host, the report first waits (up to REPORT_WAIT_SECONDS) for Terraform to stop: it got SIGINT when
its work horse died and writes its state and releases its lock before it exits. The apply's progress
message is marked interrupted with the real count. "Stopped after" is measured from the job's start
to its last heartbeat (`ecs-deploy:lastbeat:…`).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import boto3
import redis
from rq.exceptions import NoSuchJobError
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, StartedJobRegistry
from rq.results import Result

from aws_edge.terraform_lock import LockRead
from bot.notifier import Notifier
from bot.views.interruptions import (
    aftermath_lines,
    apply_interrupted_progress,
    interrupted_headline,
    nothing_more_runs,
    state_lock_maybe_held,
    state_lock_released,
)
from bot.views.messages import text_message
from bot.views.pipeline import step_status_message
from core.apply_progress import ApplyProgress, replay
from core.lifecycle import Move
from core.logs import get_logger
from core.models import Deployment, DeploymentStatus, DeploymentStopped, utcnow
from core.settings import Settings
from core.terraform_locks import OwnLock, TerraformRun, own_lock
from core.terraform_ui import interrupt_received
from storage.locks import StateLock, TerraformRuns, state_id
from storage.queue import DESCRIPTIONS, JOB_SERIALIZER, Step, queue
from storage.store import DeploymentStore
from workers.heartbeats import Bounds, claim_key, job_beat_key, last_beat, worker_beat_key
from workers.terraform.state_backend import StateObject

log = get_logger(__name__)

CLAIM_TTL_SECONDS = 7 * 24 * 3600
TERRAFORM_STEPS = frozenset({Step.PLAN, Step.APPLY})
# How long a report waits for a killed run's Terraform (on this host) to stop: the runner's grace
# period (after which the run's launcher kills it) and a margin.
REPORT_WAIT_SECONDS = 40.0


@dataclass
class Interruption:
    job_id: str
    deployment_id: str | None
    step: str | None
    marked: bool = False  # the deployment was moved to INTERRUPTED
    lock_released: bool = False
    notes: list[str] = field(default_factory=list)


class Sweeper:
    def __init__(
        self,
        connection: redis.Redis,
        settings: Settings,
        notifier: Notifier,
        bounds: Bounds | None = None,
    ) -> None:
        self.redis = connection
        self.settings = settings
        self.notifier = notifier
        self.store = DeploymentStore(connection)
        self.bounds = bounds or Bounds.from_settings(settings)
        self.queue = queue(connection, settings)

    # -- finding dead jobs --------------------------------------------------------------------

    def sweep(self) -> list[Interruption]:
        """One pass; safe to run from several workers at once (each job is claimed once)."""
        found: list[Interruption] = []
        started = self._started_jobs()
        live_deployments = {
            d for job, _, alive in started if alive and (d := _meta(job, "deployment_id")) is not None
        }
        for job, executions, alive in started:
            if alive:
                continue
            interruption = self._interrupt_dead(job, executions, live_deployments)
            if interruption is not None:
                found.append(interruption)
        return found

    def rq_found_dead(self, job: Job) -> Interruption | None:
        """RQ's registry cleanup found `job` abandoned (its `on_failure` callback, AbandonedJobError):
        report it unless this sweep or another process already did, or a newer job of the same
        deployment is alive."""
        deployment_id = _meta(job, "deployment_id")
        live = {
            d
            for other, _, alive in self._started_jobs()
            if alive and other.id != job.id and (d := _meta(other, "deployment_id"))
        }
        if deployment_id in live or not self._claim(job.id):
            return None
        return self.report(job, reason="RQ found its worker gone")

    def _started_jobs(self) -> list[tuple[Job, list[Execution], bool]]:
        """STARTED jobs of our queue: (job, its executions in the started registry, alive?)."""
        registry = StartedJobRegistry(queue=self.queue)
        entries: dict[str, list[str]] = {}
        # cleanup=False: RQ's cleanup would fail dead jobs on its own (it runs in the worker's
        # maintenance, where it calls their on_failure callback)
        for job_id, execution_id in registry.get_job_and_execution_ids(cleanup=False):
            entries.setdefault(job_id, []).append(execution_id)
        result = []
        for job_id, execution_ids in entries.items():
            executions = [
                Execution(execution_id, job_id, connection=self.redis) for execution_id in execution_ids
            ]
            try:
                job = Job.fetch(job_id, connection=self.redis, serializer=JOB_SERIALIZER)
            except NoSuchJobError:
                with self.redis.pipeline() as pipe:
                    for execution in executions:
                        registry.remove_execution(execution, pipeline=pipe)
                    pipe.execute()
                continue
            if job.get_status(refresh=False) != JobStatus.STARTED:
                continue
            result.append((job, executions, self._alive(job)))
        return result

    def _alive(self, job: Job) -> bool:
        keys = [job_beat_key(job.id)]
        if job.worker_name:
            keys.append(worker_beat_key(job.worker_name))
        if self.redis.exists(*keys):
            return True
        started = job.started_at or job.enqueued_at
        if started is None:
            return False
        if started.tzinfo is None:
            started = started.replace(tzinfo=UTC)
        return (utcnow() - started).total_seconds() < self.bounds.dead_after

    def _claim(self, job_id: str) -> bool:
        return bool(self.redis.set(claim_key(job_id), "1", nx=True, ex=CLAIM_TTL_SECONDS))

    def _interrupt_dead(self, job: Job, executions: list[Execution], live: set[str]) -> Interruption | None:
        if not self._claim(job.id):
            return None
        worker = job.worker_name or "?"
        exc_string = (
            f"Interrupted: worker {worker} stopped sending heartbeats (no heartbeat for"
            f" {self.bounds.dead_after:g} s); found by the ecs-deploy sweep at {utcnow():%Y-%m-%d %H:%M:%S} UTC"
        )
        # what RQ's own cleanup does for an abandoned job, through its public interfaces: the
        # executions out of the started registry, the job FAILED in the FailedJobRegistry with a result
        with self.redis.pipeline() as pipe:
            for execution in executions:
                execution.delete(job, pipe)
            job.set_status(JobStatus.FAILED, pipeline=pipe)
            FailedJobRegistry(queue=self.queue).add(
                job, ttl=job.failure_ttl, exc_string=exc_string, pipeline=pipe
            )
            Result.create_failure(job, job.failure_ttl, exc_string, pipeline=pipe)
            pipe.execute()
        log.warning(
            "job_worker_dead", job_id=job.id, worker=worker, deployment_id=_meta(job, "deployment_id")
        )
        if _meta(job, "deployment_id") in live:
            return Interruption(
                job.id, _meta(job, "deployment_id"), _meta(job, "step"), notes=["newer job alive"]
            )
        return self.report(job, reason="its worker stopped sending heartbeats")

    # -- telling the deployment ---------------------------------------------------------------

    def report(self, job: Job, *, reason: str) -> Interruption:
        """Mark the job's deployment INTERRUPTED, release its state lock, say so in the thread.
        The caller has claimed the job (claim_key) so this runs once per job. For a Terraform step
        the message says what Terraform did, from what can be checked (see the module docstring)."""
        deployment_id, step_name = _meta(job, "deployment_id"), _meta(job, "step")
        interruption = Interruption(job.id, deployment_id, step_name)
        if deployment_id is None:
            return interruption
        deployment = self.store.find(deployment_id)
        if deployment is None:
            return interruption
        step = _step(step_name)
        if deployment.status.is_final and deployment.status is not DeploymentStatus.CANCELLED:
            interruption.notes.append(f"deployment already {deployment.status.value}")
            log.info("job_interrupted_after_the_fact", deployment_id=deployment_id, job_id=job.id)
            return interruption
        if deployment.status.is_waiting:
            interruption.notes.append(f"deployment moved on to {deployment.status.value}")
            return interruption
        what = DESCRIPTIONS.get(step, "a step") if step else "a step"
        died_at = self._death_time(job)
        run = self._terraform_run(deployment, job) if step in TERRAFORM_STEPS else None
        if run is not None:
            self._wait_for_terraform(run)
        stopped: str | None = None
        if deployment.status is DeploymentStatus.CANCELLED:
            stopped = deployment.status.value
        else:
            try:
                deployment = self.notifier.set_status(
                    deployment_id, Move.INTERRUPT, f"{what}: its worker was killed"
                )
                interruption.marked = True
            except DeploymentStopped as exc:
                stopped = str(exc)
                deployment = self.store.get(deployment_id)
        lock_line = self._release_state_lock(deployment, interruption)
        lines = [_headline(what, job, reason, stopped, died_at)]
        if step in TERRAFORM_STEPS and step is not None:
            try:
                aftermath = self._aftermath(deployment, step, run, died_at)
            except Exception:  # the thread must hear about the interruption whatever could not be read
                log.exception("terraform_aftermath_failed", deployment_id=deployment_id)
                aftermath = Aftermath(
                    step=step, state=state_id(deployment.request.state_bucket, deployment.request.state_key)
                )
            lines.extend(aftermath_lines(aftermath, deployment, self.settings.terraform_lock_timeout_seconds))
            self._mark_progress(deployment, aftermath, job, died_at)
        else:
            lines.append(_what_next(step, deployment, stopped))
        if lock_line:
            lines.append(lock_line)
        self.notifier.post(deployment, text_message("\n".join(lines)))
        log.warning(
            "job_interrupted",
            deployment_id=deployment_id,
            job_id=job.id,
            step=step_name,
            worker=job.worker_name,
            marked=interruption.marked,
            lock_released=interruption.lock_released,
        )
        return interruption

    def _release_state_lock(self, deployment: Deployment, interruption: Interruption) -> str:
        request = deployment.request
        state = state_id(request.state_bucket, request.state_key)
        lock = StateLock(self.redis, state, ttl_seconds=1)
        holder = lock.holder()
        if holder is None or holder.deployment_id != deployment.id:
            return ""
        if lock.release(holder.token):
            interruption.lock_released = True
            return state_lock_released(state, holder.step, holder.since)
        return state_lock_maybe_held(state, deployment.id)

    # -- a killed Terraform run -----------------------------------------------------------------

    def _death_time(self, job: Job) -> datetime:
        """The job's last sign of life: its last heartbeat (or its worker's), else now."""
        beats = [last_beat(self.redis, job_beat_key(job.id))]
        if job.worker_name:
            beats.append(last_beat(self.redis, worker_beat_key(job.worker_name)))
        known = [beat for beat in beats if beat is not None]
        if job.started_at is not None:
            started = job.started_at if job.started_at.tzinfo else job.started_at.replace(tzinfo=UTC)
            known = [beat for beat in known if beat >= started]
        return min(known) if known else utcnow()

    def _terraform_run(self, deployment: Deployment, job: Job) -> TerraformRun | None:
        request = deployment.request
        try:
            run = TerraformRuns(self.redis).get(state_id(request.state_bucket, request.state_key))
        except (redis.RedisError, ValueError):
            return None
        return run if run is not None and run.job_id == job.id else None

    def _wait_for_terraform(self, run: TerraformRun) -> None:
        """On the run's own host: wait until its Terraform (interrupted by its parent's death) and
        anything left in its process group are gone, at most REPORT_WAIT_SECONDS."""
        if run.pid is None or run.host != socket.gethostname():
            return
        from workers.terraform.runner.process_group import group_members, process_running

        deadline = time.monotonic() + REPORT_WAIT_SECONDS
        while time.monotonic() < deadline:
            if not process_running(run.pid, run.pid_start) and not group_members(run.pid):
                return
            time.sleep(0.2)
        log.warning("terraform_still_running_after_report_wait", pid=run.pid)

    def _aftermath(
        self, deployment: Deployment, step: Step, run: TerraformRun | None, died_at: datetime
    ) -> Aftermath:
        from aws_edge.terraform_lock import lock_client, read_lock
        from workers.terraform.state_backend import read_state

        request = deployment.request
        state = state_id(request.state_bucket, request.state_key)
        aftermath = Aftermath(step=step, state=state, run=run)
        if run is not None:
            updated = TerraformRuns(self.redis).update(
                state,
                run.run_id,
                lambda r: r.model_copy(update={"outcome": "interrupted", "ended_at": died_at}),
            )
            run = aftermath.run = updated or run
            if run.pid is not None and run.host == socket.gethostname():
                from workers.terraform.runner.process_group import group_members, process_running

                aftermath.terraform_running = process_running(run.pid, run.pid_start) or bool(
                    group_members(run.pid)
                )
            aftermath.progress, aftermath.progress_source, aftermath.interrupt_seen = _progress_of(run)
        try:
            session = _session(deployment, self.settings)
        except Exception as exc:  # any AWS or configuration fault: said as such
            log.info("terraform_aftermath_no_session", deployment_id=deployment.id, error=type(exc).__name__)
            aftermath.aws_problem = f"the deployment's AWS profile could not be used ({type(exc).__name__})"
            return aftermath
        aftermath.state_after = read_state(session, request.state_bucket, request.state_key)
        aftermath.lock = read_lock(lock_client(session), request.lock_table, state)
        if aftermath.lock.lock is not None and run is not None:
            aftermath.verdict = own_lock(aftermath.lock.lock, run, run_alive=False, now=utcnow())
        return aftermath

    def _mark_progress(
        self, deployment: Deployment, aftermath: Aftermath, job: Job, died_at: datetime
    ) -> None:
        """The apply's progress message ("Applying… 3/11") says it was interrupted, with the count."""
        run = aftermath.run
        if aftermath.step is not Step.APPLY or run is None or not run.progress_ts:
            return
        progress = aftermath.progress or ApplyProgress(total=run.total)
        counted = f"{progress.done}/{progress.total}" if progress.total else str(progress.done)
        text = apply_interrupted_progress(counted, aftermath.progress_source, job.started_at, died_at)
        try:
            self.notifier.update(deployment, run.progress_ts, step_status_message(text))
        except Exception:
            log.exception("progress_mark_failed", deployment_id=deployment.id)


@dataclass
class Aftermath:
    """What a killed Terraform run left, as far as it could be checked."""

    step: Step
    state: str
    run: TerraformRun | None = None
    progress: ApplyProgress | None = None
    progress_source: str = ""  # "its log" or "the progress it recorded"
    interrupt_seen: bool = False  # the log shows Terraform received the interrupt
    terraform_running: bool = False  # still running on this host after the wait
    state_after: StateObject | None = None
    lock: LockRead | None = None
    verdict: OwnLock | None = None
    aws_problem: str | None = None


def _progress_of(run: TerraformRun) -> tuple[ApplyProgress | None, str, bool]:
    """The apply's progress from the run's log when this host has it, else the mirrored record."""
    if run.command != "apply":
        return None, "", False
    if run.log_path and run.host == socket.gethostname():
        try:
            lines = Path(run.log_path).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            lines = []
        if lines:  # Terraform's UI messages (apply -json): apply_complete hooks, its "log" messages
            return replay(lines, total=run.total), "its log", interrupt_received(lines)
    mirrored = ApplyProgress(total=run.total, done=len(run.completed), completed=run.completed)
    return mirrored, "the progress it recorded", False


def _step(name: str | None) -> Step | None:
    try:
        return Step(name) if name else None
    except ValueError:
        return None


def _meta(job: Job, name: str) -> str | None:
    value = (job.meta or {}).get(name)
    return str(value) if value else None


def _headline(what: str, job: Job, reason: str, stopped: str | None, died_at: datetime) -> str:
    return interrupted_headline(
        what, job_id=job.id, reason=reason, started=job.started_at, died_at=died_at, stopped=stopped
    )


def _what_next(step: Step | None, deployment: Deployment, stopped: str | None) -> str:
    """For steps other than Terraform's (those get `aftermath_lines`)."""
    return nothing_more_runs(stopped=bool(stopped))


def _session(deployment: Deployment, current: Settings) -> boto3.Session:
    """The deployment's AWS session (its profile, and the access policy's role when it names one)."""
    from aws_edge.sessions import session_for
    from core.policy.loading import policy_from_settings

    request = deployment.request
    role = policy_from_settings(current.policy_file, current.approver_ids).role_for(request.profile)
    return session_for(request.profile, request.region, role)
