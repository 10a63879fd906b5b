"""The RQ worker `ecs-deploy-bot worker` runs: RQ's forking Worker plus the bot's crash handling.

On top of `rq.Worker` it
- keeps a worker heartbeat (main process) and a job heartbeat (work horse) in Redis, so a worker
  killed together with its horse is recognised within seconds instead of RQ's minutes;
- sweeps for such dead jobs and delivers the Slack outbox from a background thread (every
  SWEEP_INTERVAL and HEARTBEAT_INTERVAL respectively, see workers/sweeper.py; the outbox also as soon
  as an entry falls due), and once before it takes its first job, before RQ's own registry cleanup
  (which finds them later, and reports them through the jobs' on_failure callback);
- in the work horse, lets jobs queue their Slack messages without waiting (a deliverer thread sends
  them, bot/outbox.py), and delivers what is left when the job is done (DRAIN_SECONDS at most);
- reports a work horse killed on its own (OOM) at once, in the job's thread (RQ's
  `work_horse_killed_handler`), and a job RQ's registry cleanup found abandoned (the jobs'
  `on_failure` callback, `on_job_failure`);
- tries the outbox one last time when it stops (also after `--burst`; STOP_DELIVERY_SECONDS at most);
- reads jobs with the JSON serializer only (storage.queue.JOB_SERIALIZER: never pickle from Redis), and
  runs with umask 077 in a private data directory, so checkouts, tfvars, plan files and Terraform
  logs (which hold secrets) are 0700/0600 — the work horse, git and Terraform inherit the umask;
- says at start whether Redis keeps its data and, every sweep, checks that Redis has not lost it
  (bot/store_watch.py: `redis_data_lost` in the log and a notice in the threads it knew);
- in the work horse, stamps every log line (structlog's and the standard library's: RQ's, the
  Terraform runner's) with the deployment_id, job_id and step of the job it runs.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Any

import redis
from rq import Worker
from rq.exceptions import AbandonedJobError
from rq.executions import Execution
from rq.job import Job
from rq.queue import Queue

from bot.notifier import DRAIN_SECONDS, Notifier
from bot.outbox import drain as drain_outbox
from bot.slack import make_web_client
from bot.store_watch import StoreWatch
from core.logs import bind_process_context, clear_process_context, get_logger
from core.policy.access import AccessPolicy
from core.policy.loading import policy_from_settings
from core.settings import Settings, load_settings
from storage.connection import redis_connection
from storage.queue import JOB_SERIALIZER
from storage.store import DeploymentStore
from workers.aws.scan import preload_service_models
from workers.drift import seed_schedules as seed_drift_schedules
from workers.heartbeats import Bounds, Heartbeat, claim_key, job_beat_key, worker_beat_key
from workers.sweeper import Sweeper
from workers.workspace import PRIVATE_UMASK, private_data_dir

log = get_logger(__name__)


STOP_DELIVERY_SECONDS = 20.0  # a stopping worker tries the outbox for at most this long
MIN_ROUND_SECONDS = 0.5


def _connect(settings: Settings) -> redis.Redis:
    return redis_connection(settings, "worker")


def _notifier(settings: Settings, connection: redis.Redis) -> Notifier:
    return Notifier(make_web_client(settings), DeploymentStore(connection))


class Maintenance:
    """The worker's background duties: its heartbeat (own thread, so a slow sweep never delays it),
    the periodic sweep for dead jobs, and outbox delivery."""

    def __init__(self, settings: Settings, worker_name: str, bounds: Bounds) -> None:
        self.redis = _connect(settings)
        self.bounds = bounds
        self.notifier = _notifier(settings, self.redis)
        self.sweeper = Sweeper(self.redis, settings, self.notifier, bounds)
        self.heartbeat = Heartbeat(self.redis, worker_beat_key(worker_name), bounds)
        self.store_watch = StoreWatch(self.redis, self.notifier, role="worker")
        self.settings = settings
        self.policy: AccessPolicy | None = None  # loaded at the first drift seeding
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ecs-deploy maintenance", daemon=True)

    def start(self) -> Maintenance:
        self.store_watch.start()
        self.heartbeat.start()
        self.sweep()
        self.deliver()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self.deliver(force=True, budget=STOP_DELIVERY_SECONDS)
        self.heartbeat.stop()
        with contextlib.suppress(redis.RedisError):
            self.redis.close()

    def sweep(self) -> None:
        try:
            self.store_watch.check()
        except Exception:
            log.exception("store_check_failed")
        try:
            self.sweeper.sweep()
        except Exception:  # the thread must outlive any fault; the next round tries again
            log.exception("sweep_failed")
        try:  # the first drift check of a new live environment, or a lost schedule (workers/drift.py)
            if self.policy is None:
                self.policy = policy_from_settings(self.settings.policy_file, self.settings.approver_ids)
            seed_drift_schedules(self.redis, self.settings, self.policy)
        except Exception:
            log.exception("drift_seed_failed")

    def deliver(self, *, force: bool = False, budget: float | None = None) -> None:
        """Deliver the Slack outbox entries that are due, any deployment's (bot/outbox.py)."""
        try:
            self.notifier.deliver_outbox(force=force, budget=budget)
        except Exception:
            log.exception("outbox_delivery_failed")

    def _run(self) -> None:
        last_sweep = time.monotonic()
        tick = min(self.bounds.heartbeat_interval, self.bounds.sweep_interval)
        while not self._stop.wait(self._until_next_round(tick)):
            if time.monotonic() - last_sweep >= self.bounds.sweep_interval:
                self.sweep()
                last_sweep = time.monotonic()
            self.deliver()

    def _until_next_round(self, tick: float) -> float:
        """The next round comes after `tick`, or sooner when an outbox entry may be taken (a Slack
        Retry-After, a backoff, another process's entry overdue) before that."""
        due = self.notifier.next_round()
        if due is None:
            return tick
        return max(MIN_ROUND_SECONDS, min(tick, due - time.time()))


class DeployWorker(Worker):
    """rq.Worker with heartbeats, the dead-job sweep and the Slack outbox (see the module docstring)."""

    def __init__(
        self, queues: Any, *args: Any, settings: Settings, bounds: Bounds | None = None, **kwargs: Any
    ):
        os.umask(PRIVATE_UMASK)  # before anything is written; inherited by the horse, git and Terraform
        private_data_dir(settings.data_dir)
        kwargs["serializer"] = JOB_SERIALIZER  # the queues named here are built with it as well
        kwargs["work_horse_killed_handler"] = self._work_horse_killed
        super().__init__(queues, *args, **kwargs)
        self.settings = settings
        self.bounds = bounds or Bounds.from_settings(settings)

    def work(self, burst: bool = False, *args: Any, **kwargs: Any) -> bool:
        maintenance = Maintenance(self.settings, self.name, self.bounds).start()
        log.info(
            "worker_started",
            worker=self.name,
            queue=self.settings.queue_name,
            heartbeat_seconds=self.bounds.heartbeat_interval,
            dead_after_seconds=self.bounds.dead_after,
            sweep_seconds=self.bounds.sweep_interval,
        )
        try:
            preload_service_models(freeze=True)  # job processes forked from here inherit botocore's models
            return bool(super().work(burst, *args, **kwargs))
        finally:
            maintenance.stop()

    def clean_registries(self) -> None:
        """Our sweep first (its report names the worker that stopped beating); RQ's cleanup then
        reports what it finds abandoned through the jobs' on_failure callback."""
        self._sweeper().sweep()
        super().clean_registries()

    def perform_job(self, job: Job, queue: Queue, execution: Execution) -> bool:
        """Runs in the work horse: keep the job's heartbeat for as long as the job runs."""
        meta = job.meta or {}
        bind_process_context(
            deployment_id=str(meta.get("deployment_id", "")), job_id=job.id, step=str(meta.get("step", ""))
        )
        connection = _connect(self.settings)
        beat = Heartbeat(connection, job_beat_key(job.id), self.bounds, value=f"{os.getpid()}").start()
        log.info("job_started", pid=os.getpid(), worker=self.name)
        try:
            return bool(super().perform_job(job, queue, execution))
        finally:
            # the job is done and gave its state back: deliver what it queued for Slack (bounded;
            # the rest stays in the outbox for the maintenance rounds)
            drain_outbox(DRAIN_SECONDS)
            beat.stop()
            clear_process_context()
            with contextlib.suppress(redis.RedisError):
                connection.close()

    def _work_horse_killed(self, job: Job, retpid: int, ret_val: int, rusage: Any) -> None:
        """RQ's work_horse_killed_handler: only the horse died (e.g. the OOM killer). Report it now;
        RQ then fails the job."""
        signal_text = (
            f"signal {os.WTERMSIG(ret_val)}" if ret_val and os.WIFSIGNALED(ret_val) else f"exit {ret_val}"
        )
        try:
            if self.connection.set(claim_key(job.id), "1", nx=True, ex=7 * 24 * 3600):
                self._sweeper().report(job, reason=f"its process was killed ({signal_text})")
        except Exception:
            log.exception("interrupted_report_failed", job_id=job.id)

    def _sweeper(self) -> Sweeper:
        return Sweeper(self.connection, self.settings, _notifier(self.settings, self.connection), self.bounds)


def on_job_failure(
    job: Job, connection: redis.Redis, exc_type: type[BaseException] | None, value: Any, tb: Any
) -> None:
    """Every job's `on_failure` callback (storage.queue.ON_FAILURE). RQ calls it when a job raised (in
    the work horse: the step has reported its own failure, nothing to do) and when its registry
    cleanup finds a job abandoned — AbandonedJobError: its worker died unnoticed by the bot's sweep.
    Then the deployment's thread hears about it, once (the same claim as the sweep's)."""
    if exc_type is None or not issubclass(exc_type, AbandonedJobError):
        return
    current = load_settings()  # this process's (the one running RQ's cleanup)
    try:
        Sweeper(connection, current, _notifier(current, connection)).rq_found_dead(job)
    except Exception:
        log.exception("interrupted_report_failed", job_id=job.id)
