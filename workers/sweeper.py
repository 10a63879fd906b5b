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

Jobs that RQ itself failed as abandoned (`AbandonedJobError`), or whose work horse alone was killed
("Work-horse terminated unexpectedly"), are reported the same way (claimed by the same key), so the
thread hears about them whichever process noticed first.
"""

from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, timedelta

import boto3
import redis
from botocore.config import Config
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.job_lifecycle import record_job_failure
from rq.registry import FailedJobRegistry, StartedJobRegistry
from rq.utils import parse_composite_key

from bot.notifier import Notifier
from bot.views.messages import text_message
from core.locks import StateLock, state_id
from core.logs import get_logger
from core.models import Deployment, DeploymentStatus, DeploymentStopped, utcnow
from core.queue import DESCRIPTIONS, JOB_SERIALIZER, Step, queue
from core.settings import Settings
from core.store import PREFIX, DeploymentStore

log = get_logger(__name__)

CLAIM_TTL_SECONDS = 7 * 24 * 3600
FAILED_SCAN = 50  # newest failed jobs checked for RQ's own "abandoned"/"horse killed" failures
FAILED_SCAN_AGE = timedelta(hours=24)
RQ_DEATHS = ("AbandonedJobError", "Work-horse terminated unexpectedly")
AWAITING = frozenset(
    {
        DeploymentStatus.AWAITING_DECISION,
        DeploymentStatus.AWAITING_BACKEND_FIX,
        DeploymentStatus.AWAITING_INPUT,
        DeploymentStatus.AWAITING_APPROVAL,
    }
)
TERRAFORM_STEPS = frozenset({Step.PLAN, Step.APPLY})
AWS_LOOKUP = Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 1})


@dataclass(frozen=True)
class Bounds:
    heartbeat_interval: float = 5.0
    dead_after: float = 45.0
    sweep_interval: float = 15.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Bounds:
        return cls(
            heartbeat_interval=settings.heartbeat_interval_seconds,
            dead_after=settings.dead_after_seconds,
            sweep_interval=settings.sweep_interval_seconds,
        )

    @property
    def detection_bound(self) -> float:
        """The longest a killed job stays unreported (while at least one worker is alive)."""
        return self.dead_after + self.sweep_interval + self.heartbeat_interval


def worker_beat_key(worker_name: str) -> str:
    return f"{PREFIX}alive:worker:{worker_name}"


def job_beat_key(job_id: str) -> str:
    return f"{PREFIX}alive:job:{job_id}"


def claim_key(job_id: str) -> str:
    return f"{PREFIX}interrupted:{job_id}"


class Heartbeat:
    """Keeps one key alive (TTL `dead_after`) from a daemon thread until stopped; deletes it then."""

    def __init__(self, connection: redis.Redis, key: str, bounds: Bounds, value: str = "1") -> None:
        self.redis = connection
        self.key = key
        self.bounds = bounds
        self.value = value
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat {key}", daemon=True)

    def beat(self) -> None:
        try:
            self.redis.set(self.key, self.value, px=int(self.bounds.dead_after * 1000))
        except redis.RedisError as exc:
            log.warning("heartbeat_failed", key=self.key, error=type(exc).__name__)

    def start(self) -> Heartbeat:
        self.beat()
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.bounds.heartbeat_interval):
            self.beat()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        with contextlib.suppress(redis.RedisError):
            self.redis.delete(self.key)


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
        for job in self._failed_by_rq():
            deployment_id = _meta(job, "deployment_id")
            if deployment_id in live_deployments or not self._claim(job.id):
                continue
            reason = (
                "RQ found its worker gone"
                if "Abandoned" in (job.exc_info or "")
                else "its process was killed"
            )
            found.append(self.report(job, reason=reason))
        return found

    def _started_jobs(self) -> list[tuple[Job, list[str], bool]]:
        """STARTED jobs of our queue: (job, its started-registry entries, alive?)."""
        registry = StartedJobRegistry(queue=self.queue)
        entries: dict[str, list[str]] = {}
        for raw in self.redis.zrange(registry.key, 0, -1):  # never get_job_ids(): it runs RQ's cleanup
            entry = raw.decode() if isinstance(raw, bytes) else str(raw)
            job_id, _ = parse_composite_key(entry)
            entries.setdefault(job_id, []).append(entry)
        result = []
        for job_id, keys in entries.items():
            try:
                job = Job.fetch(job_id, connection=self.redis, serializer=JOB_SERIALIZER)
            except NoSuchJobError:
                self.redis.zrem(registry.key, *keys)
                continue
            if job.get_status(refresh=False) != JobStatus.STARTED:
                continue
            result.append((job, keys, self._alive(job)))
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

    def _failed_by_rq(self) -> list[Job]:
        registry = FailedJobRegistry(queue=self.queue)
        ids = [
            raw.decode() if isinstance(raw, bytes) else str(raw)
            for raw in self.redis.zrange(registry.key, -FAILED_SCAN, -1)
        ]
        jobs = []
        cutoff = utcnow() - FAILED_SCAN_AGE
        for job in Job.fetch_many(ids, connection=self.redis, serializer=JOB_SERIALIZER):
            if job is None or not _meta(job, "deployment_id"):
                continue
            ended = job.ended_at or job.started_at
            if ended is not None and ended.tzinfo is None:
                ended = ended.replace(tzinfo=UTC)
            if ended is None or ended < cutoff:
                continue
            if any(mark in _failure_text(job) for mark in RQ_DEATHS) and not self.redis.exists(
                claim_key(job.id)
            ):
                jobs.append(job)
        return jobs

    def _claim(self, job_id: str) -> bool:
        return bool(self.redis.set(claim_key(job_id), "1", nx=True, ex=CLAIM_TTL_SECONDS))

    def _interrupt_dead(self, job: Job, executions: list[str], live: set[str]) -> Interruption | None:
        if not self._claim(job.id):
            return None
        worker = job.worker_name or "?"
        exc_string = (
            f"Interrupted: worker {worker} stopped sending heartbeats (no heartbeat for"
            f" {self.bounds.dead_after:g} s); found by the ecs-deploy sweep at {utcnow():%Y-%m-%d %H:%M:%S} UTC"
        )
        registry = StartedJobRegistry(queue=self.queue)
        with self.redis.pipeline() as pipe:
            pipe.zrem(registry.key, *executions)
            for entry in executions:
                pipe.delete(f"rq:execution:{entry}")
            record_job_failure(job, exc_string, pipe)
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
        The caller has claimed the job (claim_key) so this runs once per job."""
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
        if deployment.status in AWAITING:
            interruption.notes.append(f"deployment moved on to {deployment.status.value}")
            return interruption
        what = DESCRIPTIONS.get(step, "a step") if step else "a step"
        stopped: str | None = None
        if deployment.status is DeploymentStatus.CANCELLED:
            stopped = deployment.status.value
        else:
            try:
                deployment = self.notifier.set_status(
                    deployment_id, DeploymentStatus.INTERRUPTED, f"{what}: its worker was killed"
                )
                interruption.marked = True
            except DeploymentStopped as exc:
                stopped = str(exc)
                deployment = self.store.get(deployment_id)
        lock_line = self._release_state_lock(deployment, interruption)
        lines = [_headline(what, job, reason, stopped), _what_next(step, deployment, stopped)]
        if lock_line:
            lines.append(lock_line)
        if step in TERRAFORM_STEPS:
            lines.append(self._terraform_lock_line(deployment))
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
            return (
                f":unlock: The bot's lock on the Terraform state `{state}` (taken for {holder.step} at"
                f" {holder.since:%H:%M} UTC) was held by this deployment and has been released, so other"
                " runs on this state are no longer kept waiting."
            )
        return (
            f":lock: The bot's lock on the Terraform state `{state}` may still be held by this deployment;"
            f" release it with `/ecs-deploy unlock {deployment.id}`."
        )

    def _terraform_lock_line(self, deployment: Deployment) -> str:
        request = deployment.request
        lock_id, who = _dynamodb_lock(deployment, self.settings)
        if lock_id:
            return (
                f":lock: Terraform's own state lock in DynamoDB table `{request.lock_table}` is still held by"
                f" the killed run (lock ID `{lock_id}`{', ' + who if who else ''}). When no other run is using"
                f" this state, release it from the deployment's workspace with `terraform force-unlock {lock_id}`."
            )
        return (
            f":lock: If the next plan stops with _Error acquiring the state lock_, the killed run left"
            f" Terraform's lock in DynamoDB table `{request.lock_table}`: release it with"
            " `terraform force-unlock <LOCK_ID>` (the lock ID is in that error message)."
        )


def _failure_text(job: Job) -> str:
    result = job.latest_result()
    return str(result.exc_string or "") if result is not None else ""


def _step(name: str | None) -> Step | None:
    try:
        return Step(name) if name else None
    except ValueError:
        return None


def _meta(job: Job, name: str) -> str | None:
    value = (job.meta or {}).get(name)
    return str(value) if value else None


def _headline(what: str, job: Job, reason: str, stopped: str | None) -> str:
    started = job.started_at
    ran = ""
    if started is not None:
        if started.tzinfo is None:
            started = started.replace(tzinfo=UTC)
        seconds = int((utcnow() - started).total_seconds())
        ran = f" after {seconds // 60}m{seconds % 60:02d}s"
    text = (
        f":warning: *Interrupted: {what}.* The worker running it stopped unexpectedly{ran} ({reason} —"
        f" a container stop, a deploy or running out of memory can do this). Job `{job.id}`."
    )
    if stopped:
        text += f" The deployment was already {stopped}; it stays {stopped}."
    return text


def _what_next(step: Step | None, deployment: Deployment, stopped: str | None) -> str:
    if step is Step.APPLY:
        return (
            "*The state may be partially applied — re-plan to see* what is already in place and what is"
            " left. Nothing is applied again automatically: use *Re-plan* (or a new request) and have the"
            " new plan approved."
        )
    if step is Step.PLAN:
        return "A plan changes nothing in AWS. Use *Re-plan* to plan again."
    if stopped:
        return "Nothing more runs for this deployment."
    return "Nothing more runs for this deployment on its own: start a new request with `/ecs-deploy`."


def _dynamodb_lock(deployment: Deployment, current: Settings) -> tuple[str | None, str]:
    """Terraform's lock item (LockID `{bucket}/{key}`) for the deployment's state: (lock ID, who)."""
    request = deployment.request
    try:
        from core.policy import policy_from_settings
        from workers.aws.identity import session_for

        role = policy_from_settings(current.policy_file, current.approver_ids).role_for(request.profile)
        session: boto3.Session = session_for(request.profile, request.region, role)
        item = session.client("dynamodb", config=AWS_LOOKUP).get_item(
            TableName=request.lock_table,
            Key={"LockID": {"S": f"{request.state_bucket}/{request.state_key}"}},
            ConsistentRead=True,
        )
    except Exception as exc:  # any AWS or configuration fault: fall back to the general advice
        log.info("terraform_lock_lookup_failed", deployment_id=deployment.id, error=type(exc).__name__)
        return None, ""
    raw = ((item.get("Item") or {}).get("Info") or {}).get("S")
    if not raw:
        return None, ""
    try:
        info = json.loads(raw)
    except json.JSONDecodeError:
        return None, ""
    who = " ".join(
        part for part in (info.get("Who", ""), info.get("Operation", ""), info.get("Created", "")) if part
    )
    return (str(info["ID"]) if info.get("ID") else None), who
