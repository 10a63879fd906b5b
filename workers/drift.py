"""The drift check of a live environment (core/drift.py decides; this runs Terraform and schedules).

One check, on any worker:
1. claim its slot (storage/drift.py: SET NX on the job id, which names environment and time slot), so
   a duplicate job of the same slot — two workers seeding, a slot enqueued twice — does nothing;
2. the bot's state lock, taken without waiting: a state a plan or apply holds is skipped (BUSY) and
   tried again soon — a check never queues behind an apply;
3. the workspace of the environment's committed configuration, built from the registry alone
   (workers/environments.py `environment_workspace`: the repository at `Environment.repo_commit`, the
   tfvars/tfbackend generated from its request and values, the tfvars' SHA-256 checked against the
   registry's) — nothing that expires, so any worker can check any environment at any time;
4. `terraform init`, `plan -refresh-only` and a normal plan, both with `-lock=true` and a short
   `-lock-timeout` (Terraform's own DynamoDB lock held by someone else: BUSY as well). Both are
   read-only: nothing is applied, and the plans are neither stored nor approvable;
5. the report, compared with what the channel last heard of: a message only when drift changed;
6. the next check scheduled with RQ's scheduler (`enqueue_at`), at the next slot of the interval.

`seed_schedules` (run by every worker's maintenance round) schedules the first check of each live
environment that has none, and checks whose schedule was lost.
"""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import redis
from rq import get_current_job

from aws_edge.sessions import session_for
from aws_edge.terraform_lock import lock_client, read_lock, release_lock
from bot.views import drift as views
from core.drift import (
    CheckOutcome,
    DriftChange,
    DriftCheck,
    DriftRecord,
    DriftReport,
    after_check,
    drift_report,
    effective_interval,
    next_slot,
    retry_at,
    slot_job_id,
)
from core.environments import Environment, EnvironmentStatus
from core.logs import get_logger
from core.models import utcnow
from core.plan_summary import PlanParseError
from core.policy.access import AccessPolicy
from core.settings import Settings
from core.terraform_locks import OPERATIONS, TerraformRun, own_lock, release_facts
from storage.drift import DriftStore
from storage.environments import EnvironmentStore
from storage.locks import StateLock, state_id
from storage.queue import enqueue_drift_check
from workers.environments import ConfigurationMismatch, environment_workspace
from workers.runtime import Runtime, StepFailure
from workers.steps.common import request_terraform_env
from workers.steps.tfrun import terraform_who
from workers.terraform import runner
from workers.terraform.runner import PlanIntegrityError, PlanMode, RunOptions, TerraformError
from workers.workspace import WorkspaceError

log = get_logger(__name__)

DRIFT_LOCK_TIMEOUT_SECONDS = 5  # Terraform's own lock: a check does not wait for a busy state
LOCK_TTL_SECONDS = 300
LOCK_REFRESH_SECONDS = 60
LOST_SCHEDULE_GRACE = timedelta(hours=1)  # a next run this far in the past was lost: schedule again


class _Busy(Exception):
    pass


def interval_for(rt: Runtime, environment: Environment) -> int:
    """The environment's drift interval: its policy override (`drift_interval`), else the setting."""
    return effective_interval(rt.settings.drift_interval_seconds, _override(rt.policy, environment))


def _override(policy: AccessPolicy, environment: Environment) -> int | None:
    """The policy's `drift_interval` for the environment (None: it sets none)."""
    return policy.drift_interval(environment.request.profile, environment.request.environment)


def run_check(rt: Runtime, environment_key: str) -> str:
    """The job (workers.jobs.check_drift): one check of one environment."""
    job = get_current_job()
    job_id = job.id if job is not None else ""
    drift = DriftStore(rt.redis)
    if job_id and not drift.claim(job_id):
        log.info("drift_check_duplicate", environment_key=environment_key, job_id=job_id)
        return "duplicate"
    environment = EnvironmentStore(rt.redis).find(environment_key)
    if environment is None or environment.status is not EnvironmentStatus.LIVE:
        log.info("drift_check_not_live", environment_key=environment_key)
        return "not live"
    scheduled = job_id.startswith(f"drift-{environment_key}-") and "-now-" not in job_id
    interval = interval_for(rt, environment)
    if scheduled and interval == 0:
        return "off"
    drift.ran(environment_key, job_id)
    check = _check(rt, environment)
    log.info("drift_checked", environment_key=environment_key, outcome=check.outcome.value)
    verdicts = []

    def record_check(record: DriftRecord) -> DriftRecord:
        verdict = after_check(record, check)
        verdicts.append(verdict)
        return verdict.record

    drift.update(environment_key, record_check)
    verdict = verdicts[-1]
    if verdict.notify and check.report is not None:
        _post(rt, environment, verdict.change, check)
    rt.audit.record(
        "drift_checked",
        f"env:{environment_key}",
        "worker",
        outcome=check.outcome.value,
        change=verdict.change.value,
        notified=verdict.notify,
        fingerprint=check.report.fingerprint if check.report else "",
    )
    if interval > 0:
        if check.outcome is CheckOutcome.BUSY:
            at = retry_at(utcnow(), interval)
            schedule(rt, environment_key, at, slot_job_id(environment_key, at, retry=True))
        elif scheduled or _not_scheduled(drift.get(environment_key)):
            at = next_slot(utcnow(), interval)
            schedule(rt, environment_key, at, slot_job_id(environment_key, at))
    return check.outcome.value


def _next_run(at: datetime) -> Callable[[DriftRecord], DriftRecord]:
    return lambda record: record.model_copy(update={"next_run_at": at})


def _not_scheduled(record: DriftRecord | None) -> bool:
    return record is None or record.next_run_at is None or record.next_run_at < utcnow()


def schedule(rt: Runtime, environment_key: str, at: datetime, job_id: str) -> None:
    enqueue_drift_check(rt.redis, rt.settings, environment_key, job_id=job_id, at=at)
    DriftStore(rt.redis).update(
        environment_key,
        lambda record: (
            record
            if record.next_run_at is not None and utcnow() < record.next_run_at <= at
            else record.model_copy(update={"next_run_at": at})
        ),
    )


def seed_schedules(rt_redis: redis.Redis, settings: Settings, policy: AccessPolicy) -> int:
    """Schedule the first check of every live environment that has none (or whose schedule was lost).
    Deterministic job ids and slot claims make it safe for every worker to do this."""
    environments = [
        e for e in EnvironmentStore(rt_redis).all(limit=1000) if e.status is EnvironmentStatus.LIVE
    ]
    if not environments:
        return 0
    drift = DriftStore(rt_redis)
    records = drift.many([str(e.key) for e in environments])
    now = utcnow()
    seeded = 0
    for environment in environments:
        key = str(environment.key)
        interval = effective_interval(settings.drift_interval_seconds, _override(policy, environment))
        record = records.get(key)
        if interval == 0:
            continue
        if (
            record is not None
            and record.next_run_at is not None
            and record.next_run_at > now - LOST_SCHEDULE_GRACE
        ):
            continue
        at = next_slot(now, interval)
        enqueue_drift_check(rt_redis, settings, key, job_id=slot_job_id(key, at), at=at)
        drift.update(key, _next_run(at))
        seeded += 1
    if seeded:
        log.info("drift_schedules_seeded", environments=seeded)
    return seeded


# -- one check ------------------------------------------------------------------------------------------


def _check(rt: Runtime, environment: Environment) -> DriftCheck:
    try:
        report = _plans(rt, environment)
    except _Busy as busy:
        return DriftCheck(at=utcnow(), outcome=CheckOutcome.BUSY, detail=str(busy))
    except (StepFailure, ConfigurationMismatch) as failure:
        detail = failure.reason if isinstance(failure, StepFailure) else str(failure)
        return DriftCheck(at=utcnow(), outcome=CheckOutcome.FAILED, detail=detail[:500])
    except WorkspaceError as exc:
        return DriftCheck(
            at=utcnow(), outcome=CheckOutcome.FAILED, detail=views.workspace_failed(str(exc))[:500]
        )
    except (TerraformError, PlanParseError, PlanIntegrityError, OSError) as exc:
        return DriftCheck(
            at=utcnow(), outcome=CheckOutcome.FAILED, detail=f"{type(exc).__name__}: {exc}"[:500]
        )
    return DriftCheck(at=utcnow(), outcome=CheckOutcome.CHECKED, report=report)


def workspace_id(environment_key: str) -> str:
    """The check's own workspace on a worker (one per environment, reused while its commit holds)."""
    return f"drift-{environment_key}"


def _plans(rt: Runtime, environment: Environment) -> DriftReport:
    request = environment.request
    lock = StateLock(
        rt.redis, state_id(request.state_bucket, request.state_key), ttl_seconds=LOCK_TTL_SECONDS
    )
    holder = lock.try_acquire(f"drift:{request.environment_key}", "drift-check", "drift check")
    if holder is None:
        ahead = lock.holder()
        raise _Busy(views.state_in_use(ahead.deployment_id if ahead else None, ahead.step if ahead else None))
    stop = threading.Event()
    keeper = threading.Thread(target=_keep, args=(lock, holder.token, stop), daemon=True)
    keeper.start()
    try:
        # An apply that finished while this check waited to start changed the environment: plan
        # what it is now, not what it was when the check read it (that would report false drift).
        current = EnvironmentStore(rt.redis).find(str(environment.key))
        if current is None or current.status is not EnvironmentStatus.LIVE:
            raise _Busy(views.state_in_use(None, None))
        return _run_plans(rt, current)
    finally:
        stop.set()
        keeper.join(timeout=5)
        lock.release(holder.token)


def _keep(lock: StateLock, token: str, stop: threading.Event) -> None:
    while not stop.wait(LOCK_REFRESH_SECONDS):
        try:
            if not lock.refresh(token):
                return
        except Exception as exc:  # Redis away for a moment: the next beat tries again
            log.warning("drift_lock_refresh_failed", error=type(exc).__name__)


def _run_plans(rt: Runtime, environment: Environment) -> DriftReport:
    built = environment_workspace(rt, environment, workspace_id(str(environment.key)))
    workspace = built.path
    options = RunOptions(
        env=request_terraform_env(rt, environment.request, workspace),
        lock_timeout_seconds=min(DRIFT_LOCK_TIMEOUT_SECONDS, rt.settings.terraform_lock_timeout_seconds),
        timeouts={
            "plan": float(rt.settings.plan_timeout_seconds),
            "init": float(rt.settings.plan_timeout_seconds),
        },
    )
    init = runner.init(workspace, built.tfbackend, options=options)
    if not init.ok:
        if init.lock_error:
            raise _Busy(views.TERRAFORM_LOCK_HELD)
        raise StepFailure(views.terraform_failed("init", init.error_excerpt or init.output_tail))
    private = runner.private_directory(workspace, prefix="drift-")
    try:
        refresh = _plan_json(
            rt,
            environment,
            workspace,
            built.tfvars,
            private / "refresh.tfplan",
            options,
            PlanMode.REFRESH_ONLY,
        )
        normal = _plan_json(
            rt, environment, workspace, built.tfvars, private / "plan.tfplan", options, PlanMode.NORMAL
        )
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return drift_report(refresh, normal)


def _plan_json(
    rt: Runtime,
    environment: Environment,
    workspace: Path,
    tfvars: Path,
    plan_file: Path,
    options: RunOptions,
    mode: PlanMode,
) -> bytes:
    started = utcnow()
    result = runner.plan(workspace, tfvars, plan_file, options=options, mode=mode)
    if result.lock_error and _released_own_lock(rt, environment, started):
        result = runner.plan(workspace, tfvars, plan_file, options=options, mode=mode)
    if not result.ok:
        if result.lock_error:
            raise _Busy(views.TERRAFORM_LOCK_HELD)
        what = " ".join(["plan", *mode.flags])
        raise StepFailure(views.terraform_failed(what, result.error_excerpt or result.output_tail))
    return runner.show_json(workspace, plan_file, options=options)


def _released_own_lock(rt: Runtime, environment: Environment, started: datetime) -> bool:
    """The plan failed on Terraform's state lock: release it when it is provably this check's own
    (the S3 backend's first PutItem landed but its answer was lost, so Terraform waited behind
    itself) — the rule and proof of the pipeline's runs (core.terraform_locks.own_lock; this check
    holds the bot's state lock, so no other run of the bot can be using the state)."""
    request = environment.request
    state = state_id(request.state_bucket, request.state_key)
    try:
        client = lock_client(
            session_for(request.profile, request.region, rt.policy.role_for(request.profile))
        )
        found = read_lock(client, request.lock_table, state)
        if not found.held or found.lock is None:
            return False
        check = TerraformRun(
            state=state,
            deployment_id=f"drift:{environment.key}",
            step="drift",
            host=socket.gethostname(),
            who=terraform_who(),
            command="plan",
            operation=OPERATIONS["plan"],
            command_started_at=started,
        )
        verdict = own_lock(found.lock, check, run_alive=False, now=utcnow())
        if not verdict.own or not release_lock(client, request.lock_table, state, found.lock):
            return False
    except Exception as exc:  # any AWS fault: the check reports the state busy, as before
        log.warning("drift_own_lock_release_failed", error=type(exc).__name__)
        return False
    rt.audit.record(
        "terraform_lock_released",
        f"env:{environment.key}",
        "worker",
        **release_facts(
            state, found.lock, check, proof=verdict.proof or "", reason=verdict.reason, retried=True
        ),
    )
    log.warning("drift_own_lock_released", lock_id=found.lock.id, state=state)
    return True


def _post(rt: Runtime, environment: Environment, change: DriftChange, check: DriftCheck) -> None:
    assert check.report is not None
    last = environment.last_change
    if last is None:
        return
    message = views.drift_message(
        change,
        check.report,
        environment_key=str(environment.key),
        short_name=environment.key.short,
        last_thread=None,
    )
    ts = rt.notifier.channel_message(last.channel_id, message)
    log.info(
        "drift_reported", environment_key=str(environment.key), change=change.value, posted=ts is not None
    )
