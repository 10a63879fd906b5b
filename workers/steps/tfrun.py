"""The bot's side of one Terraform run (a plan or an apply step) on a state.

- **The record.** When the step starts it records the run (core.terraform_locks.TerraformRun, one record per
  state: the bot's state lock keeps runs on one state apart): which deployment and job, the worker's
  host and Terraform's `Who`, the state object's serial before the run, then per command its pid,
  log and start time, and the apply's progress. Whoever reports the run later — the same worker, or
  another one when this one was killed — reads the truth from it.
- **Its lock.** While a command that locks the state runs (plan, apply), a watcher reads Terraform's
  lock item back from DynamoDB and records its ID once it is there: from then on the lock is
  provably this run's.
- **A dead run's lock.** Before its first command, the run looks for a Terraform lock left on the
  state. If it is provably the previous run's own and that run is dead (core.terraform_locks.own_lock), it is
  released (a conditional delete on the exact item), audited, and the thread is told; a lock that
  belongs to anyone else is never touched.
- **Its own lock, once.** Under load, the AWS SDK inside Terraform can retry a PutItem whose first
  attempt succeeded: Terraform then fails on "Error acquiring the state lock … ConditionalCheck
  FailedException" (its `diagnostic` message), blocked by the lock it took itself a moment earlier,
  and leaves it behind. Such a
  lock is recognised (same Who and Operation, taken after the command started), released by its ID,
  audited (`terraform_lock_released`, `retried=true`) and the command is run once more.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pwd
import socket
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from rq import get_current_job

from aws_edge.terraform_lock import LockRead, lock_client, read_lock, release_lock
from bot.views.terraform_runs import dead_run_lock_released, lock_left_alone, own_lock_released
from core.logs import get_logger
from core.models import Deployment, utcnow
from core.terraform_locks import (
    OPERATIONS,
    TerraformLockInfo,
    TerraformRun,
    lock_error_info,
    own_lock,
    release_facts,
    taken_by,
)
from storage.locks import TerraformRuns, state_id
from workers.runtime import Runtime
from workers.steps.common import aws_session
from workers.terraform.runner import RunOptions, RunResult, StartedRun
from workers.terraform.state_backend import read_state

log = get_logger(__name__)

R = TypeVar("R", bound=RunResult)
WATCH_INTERVAL = 0.5
WATCH_SLOW_INTERVAL = 2.0
WATCH_FAST_SECONDS = 15.0


def terraform_who() -> str:
    """What Terraform writes as a lock's Who on this worker: `<user>@<hostname>`."""
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = os.environ.get("USER", "")
    return f"{user}@{socket.gethostname()}"


def is_lock_error(result: RunResult) -> bool:
    """The command failed acquiring the state lock (its "Error acquiring the state lock" diagnostic)."""
    return result.lock_error


class TerraformRunContext:
    """One step's Terraform run: its record, its lock, and the release rules above."""

    def __init__(self, rt: Runtime, deployment: Deployment, record: TerraformRun, client: Any | None) -> None:
        self.rt = rt
        self.deployment = deployment
        self.record = record
        self.client = client  # DynamoDB, None when the deployment's AWS session could not be made
        self.runs = TerraformRuns(rt.redis)
        self._progress_lock = threading.Lock()

    @property
    def state(self) -> str:
        return self.record.state

    @property
    def table(self) -> str:
        return self.deployment.request.lock_table

    # -- start and end ------------------------------------------------------------------------

    @classmethod
    def begin(cls, rt: Runtime, deployment: Deployment, step: str) -> TerraformRunContext:
        request = deployment.request
        state = state_id(request.state_bucket, request.state_key)
        runs = TerraformRuns(rt.redis)
        previous = runs.get(state)
        session = None
        try:
            session = aws_session(rt, deployment)
            client = lock_client(session)
        except Exception as exc:  # the run goes on; only the lock bookkeeping is missing
            log.warning("terraform_run_no_aws_session", error=type(exc).__name__)
            client = None
        before = read_state(session, request.state_bucket, request.state_key) if session else None
        job = get_current_job()
        record = TerraformRun(
            state=state,
            deployment_id=deployment.id,
            job_id=job.id if job else None,
            step=step,
            host=socket.gethostname(),
            who=terraform_who(),
            state_serial_before=before.serial if before and before.known else None,
            state_existed_before=before.exists if before and before.known else None,
        )
        runs.begin(record)
        context = cls(rt, deployment, record, client)
        if previous is not None:
            context.release_dead_runs_lock(previous)
        return context

    def finish(self) -> None:
        """The step ended (however): the run no longer uses the state."""
        self._update(lambda r: r.model_copy(update={"outcome": "finished", "ended_at": utcnow()}))

    def _update(self, change: Callable[[TerraformRun], TerraformRun]) -> None:
        try:
            updated = self.runs.update(self.state, self.record.run_id, change)
        except Exception as exc:  # bookkeeping must never stop a Terraform run
            log.warning("terraform_run_record_failed", error=type(exc).__name__)
            return
        if updated is not None:
            self.record = updated

    # -- commands -----------------------------------------------------------------------------

    def options(self, base: RunOptions) -> RunOptions:
        return dataclasses.replace(base, on_start=self._started)

    def _started(self, started: StartedRun) -> None:
        self._update(
            lambda r: r.model_copy(
                update={"pid": started.pid, "pid_start": started.pid_start, "log_path": str(started.log_path)}
            )
        )

    def command(self, command: str, run: Callable[[RunOptions], R], options: RunOptions) -> R:
        """Run one command that takes the state lock (plan, apply) through `run`; retry it once when
        it failed on a lock it had taken itself."""
        result = self._once(command, run, options)
        if is_lock_error(result) and self._release_own_lock_after(command, result):
            result = self._once(command, run, options)
        return result

    def _once(self, command: str, run: Callable[[RunOptions], R], options: RunOptions) -> R:
        self._update(
            lambda r: r.model_copy(
                update={
                    "command": command,
                    "operation": OPERATIONS.get(command),
                    "command_started_at": utcnow(),
                    "lock": None,
                    "pid": None,
                    "pid_start": None,
                }
            )
        )
        watcher = _LockWatcher(self) if self.client is not None else None
        if watcher is not None:
            watcher.start()
        try:
            return run(self.options(options))
        finally:
            if watcher is not None:
                watcher.stop()

    def record_lock(self, lock: TerraformLockInfo) -> None:
        self._update(lambda r: r.model_copy(update={"lock": lock}))
        log.info("terraform_lock_recorded", lock_id=lock.id, operation=lock.operation)

    # -- apply progress -----------------------------------------------------------------------

    def progress(
        self, *, ts: str | None = None, total: int | None = None, completed: tuple[str, ...] = ()
    ) -> None:
        with self._progress_lock:
            self._update(
                lambda r: r.model_copy(
                    update={
                        "progress_ts": ts if ts is not None else r.progress_ts,
                        "total": total if total is not None else r.total,
                        "completed": completed or r.completed,
                    }
                )
            )

    # -- locks left behind --------------------------------------------------------------------

    def read_lock(self) -> LockRead:
        if self.client is None:
            return LockRead(problem="no AWS session for the deployment")
        return read_lock(self.client, self.table, self.state)

    def release_dead_runs_lock(self, previous: TerraformRun) -> None:
        """A lock the previous run on this state left behind: released if provably its own and that
        run is dead; otherwise left alone (Terraform then waits for it, -lock-timeout)."""
        found = self.read_lock()
        if not found.held:
            return
        if found.lock is None:
            log.warning("terraform_lock_unreadable", state=self.state)
            return
        alive = self.runs.alive(previous)
        verdict = own_lock(found.lock, previous, run_alive=alive, now=utcnow())
        if not verdict.own:
            log.info("terraform_lock_left_alone", lock_id=found.lock.id, reason=verdict.reason)
            self.rt.notifier.post(
                self.deployment,
                lock_left_alone(
                    self.state,
                    found.lock.id,
                    found.lock.facts,
                    verdict.reason,
                    self.rt.settings.terraform_lock_timeout_seconds,
                ),
            )
            return
        if not self._release(found.lock, verdict.reason, verdict.proof or "", previous, retried=False):
            return
        self.rt.notifier.post(
            self.deployment,
            dead_run_lock_released(
                self.state,
                found.lock.id,
                deployment_id=previous.deployment_id,
                step=previous.step,
                job_id=previous.job_id,
                reason=verdict.reason,
            ),
        )

    def _release_own_lock_after(self, command: str, result: RunResult) -> bool:
        """The command failed acquiring the state lock: was the lock in the way its own?"""
        found = self.read_lock()
        if not found.held or found.lock is None:
            return False
        reported = lock_error_info(result.error_excerpt or result.output_tail) or {}
        if reported.get("ID") and reported["ID"] != found.lock.id:
            return False  # another lock than the one Terraform complained about: not ours to judge
        verdict = own_lock(found.lock, self.record, run_alive=False, now=utcnow())
        if not verdict.own:
            log.info("terraform_lock_not_own", lock_id=found.lock.id, reason=verdict.reason)
            return False
        if not self._release(found.lock, verdict.reason, verdict.proof or "", self.record, retried=True):
            return False
        self.rt.notifier.post(
            self.deployment,
            own_lock_released(command, found.lock.id),
        )
        return True

    def _release(
        self, lock: TerraformLockInfo, reason: str, proof: str, holder: TerraformRun, *, retried: bool
    ) -> bool:
        assert self.client is not None
        try:
            released = release_lock(self.client, self.table, self.state, lock)
        except Exception as exc:
            log.warning("terraform_lock_release_failed", lock_id=lock.id, error=type(exc).__name__)
            return False
        if not released:
            log.info("terraform_lock_changed_before_release", lock_id=lock.id)
            return False
        self.rt.audit.record(
            "terraform_lock_released",
            self.deployment.id,
            "worker",
            **release_facts(self.state, lock, holder, proof=proof, reason=reason, retried=retried),
        )
        log.warning(
            "terraform_lock_released", lock_id=lock.id, state=self.state, retried=retried, proof=proof
        )
        return True


class _LockWatcher(threading.Thread):
    """Reads Terraform's lock item back while a command runs, until it finds the one this command
    took (same Who and Operation, taken after the command started) and records its ID."""

    def __init__(self, context: TerraformRunContext) -> None:
        super().__init__(name="terraform lock watcher", daemon=True)
        self.context = context
        self._halt = threading.Event()

    def run(self) -> None:
        started = utcnow()
        interval = WATCH_INTERVAL
        while not self._halt.wait(interval):
            with contextlib.suppress(Exception):  # a missed read is retried at the next tick
                found = self.context.read_lock()
                record = self.context.record
                if found.lock is not None and taken_by(found.lock, record, now=utcnow()):
                    self.context.record_lock(found.lock)
                    return
            if (utcnow() - started).total_seconds() > WATCH_FAST_SECONDS:
                interval = WATCH_SLOW_INTERVAL

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)
