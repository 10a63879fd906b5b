"""Terraform's own state lock (the DynamoDB item its S3 backend writes) and the run that may have left
it: the lock's Info, the bot's record of a Terraform run, and the pure rule that says when a lock left
behind is provably that run's own (`own_lock`), so it can be released without `terraform
force-unlock` — and a lock that belongs to anyone else is never touched.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field

from core.models import utcnow
from core.values import Value

RunOutcome = Literal["running", "finished", "interrupted"]

OWN_LOCK_CLOCK_SKEW = timedelta(seconds=5)


OPERATIONS = {"plan": "OperationTypePlan", "apply": "OperationTypeApply"}


class TerraformLockInfo(Value):
    """Terraform's lock Info, as stored in DynamoDB; `raw` is the exact attribute value (the condition
    a release deletes on, so that a lock re-taken since is never deleted)."""

    id: str
    operation: str = ""
    who: str = ""
    version: str = ""
    created: datetime | None = None
    path: str = ""
    raw: str = ""

    @classmethod
    def from_raw(cls, raw: str) -> TerraformLockInfo | None:
        """None when the attribute is not Terraform's lock JSON."""
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(data, dict) or not data.get("ID"):
            return None
        created: datetime | None = None
        with contextlib.suppress(TypeError, ValueError):
            created = datetime.fromisoformat(str(data.get("Created", "")))
        if created is not None and created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        return cls(
            id=str(data["ID"])[:200],
            operation=str(data.get("Operation") or "")[:200],
            who=str(data.get("Who") or "")[:200],
            version=str(data.get("Version") or "")[:50],
            created=created,
            path=str(data.get("Path") or "")[:1200],
            raw=raw,
        )

    @property
    def facts(self) -> str:
        """E.g. "OperationTypeApply by root@worker-1 at 2026-01-01 10:39:19 UTC" (messages, logs)."""
        parts = [self.operation, f"by {self.who}" if self.who else ""]
        if self.created is not None:
            parts.append(f"at {self.created:%Y-%m-%d %H:%M:%S} UTC")
        return " ".join(part for part in parts if part)


class TerraformRun(BaseModel):
    """The bot's record of the latest Terraform run (a plan or an apply step) on one state."""

    run_id: str = Field(default_factory=lambda: secrets.token_hex(8))
    state: str
    deployment_id: str
    job_id: str | None = None
    step: str  # "plan" | "apply"
    host: str = ""
    who: str = ""  # "<user>@<host>": what Terraform writes as the lock's Who on this worker
    started_at: datetime = Field(default_factory=utcnow)
    state_serial_before: int | None = None
    state_existed_before: bool | None = None  # None: the state object could not be read
    # the Terraform command running now (or last), as far as the state lock is concerned
    command: str | None = None
    operation: str | None = None  # Terraform's lock Operation for that command
    command_started_at: datetime | None = None
    pid: int | None = None  # also the process group of the command
    pid_start: int | None = None  # the process's start time (clock ticks since boot): guards pid reuse
    log_path: str | None = None
    lock: TerraformLockInfo | None = None  # the lock item the command took, read back from DynamoDB
    # apply progress, mirrored while it runs
    progress_ts: str | None = None
    total: int | None = None
    completed: tuple[str, ...] = ()
    outcome: RunOutcome = "running"
    ended_at: datetime | None = None


def release_facts(
    state: str, lock: TerraformLockInfo, holder: TerraformRun, *, proof: str, reason: str, retried: bool
) -> dict[str, Any]:
    """What the audit trail records when the bot releases a Terraform lock (`terraform_lock_released`),
    whether a worker releases its own run's lock or a lead confirms an unlock."""
    return {
        "state": state,
        "lock_id": lock.id,
        "lock_who": lock.who,
        "lock_operation": lock.operation,
        "holder_deployment": holder.deployment_id,
        "holder_job": holder.job_id or "",
        "proof": proof,
        "reason": reason,
        "retried": retried,
    }


class OwnLock(Value):
    """Whether a Terraform lock is provably a given run's own, and why (said to people as is)."""

    own: bool
    reason: str
    proof: Literal["recorded lock id", "run identity"] | None = None


def own_lock(
    lock: TerraformLockInfo,
    run: TerraformRun,
    *,
    run_alive: bool,
    now: datetime,
    skew: timedelta = OWN_LOCK_CLOCK_SKEW,
) -> OwnLock:
    """Is `lock` provably `run`'s own, and so safe to release for it? Pure.

    Never while the run may still be alive. Proof is either the lock ID the bot recorded when the
    run's command took the lock, or — when no ID was recorded (the run died, or Terraform failed to
    take its own lock, before the bot read it back) — the run's identity: the same Who (user@host of
    the worker) and Operation, created after the command started and not after the run ended. The
    caller holds the bot's lock on the state, so no other run of the bot can be using it."""
    if lock.path and lock.path != run.state:
        return OwnLock(own=False, reason=f"the lock is on `{lock.path}`, not on `{run.state}`")
    if run_alive:
        return OwnLock(own=False, reason="the run that took it may still be running")
    if run.lock is not None:
        if lock.id == run.lock.id:
            return OwnLock(
                own=True,
                reason=f"the bot recorded lock ID `{lock.id}` when the run took it",
                proof="recorded lock id",
            )
        return OwnLock(
            own=False,
            reason=f"the run took lock ID `{run.lock.id}`; this lock (`{lock.id}`) was taken by someone else",
        )
    return _by_identity(lock, run, now=now, skew=skew)


def taken_by(lock: TerraformLockInfo, run: TerraformRun, *, now: datetime) -> bool:
    """Does `lock` look like the one the run's current command took: same Who and Operation, taken
    after the command started (what the bot checks before recording a lock ID as the run's)?"""
    return _by_identity(lock, run, now=now, skew=OWN_LOCK_CLOCK_SKEW).own


def _by_identity(lock: TerraformLockInfo, run: TerraformRun, *, now: datetime, skew: timedelta) -> OwnLock:
    if run.command_started_at is None or run.operation is None:
        return OwnLock(own=False, reason="the run never started a Terraform command that takes the lock")
    if not run.who or lock.who != run.who:
        return OwnLock(own=False, reason=f"it was taken by `{lock.who or '?'}`, not by the run's worker")
    if lock.operation != run.operation:
        return OwnLock(
            own=False, reason=f"it was taken for {lock.operation or '?'}, the run was doing {run.operation}"
        )
    if lock.created is None:
        return OwnLock(own=False, reason="the lock does not say when it was taken")
    if lock.created < run.command_started_at - skew:
        return OwnLock(own=False, reason="it was taken before the run's command started")
    if lock.created > (run.ended_at or now) + skew:
        return OwnLock(own=False, reason="it was taken after the run ended")
    return OwnLock(
        own=True,
        reason=(
            f"it was taken by the run's worker ({lock.who}) for {lock.operation} after the run's command"
            " started, and no other run was using the state"
        ),
        proof="run identity",
    )


_LOCK_INFO_LINE = re.compile(r"^\s*(ID|Path|Operation|Who|Version|Created|Info):\s*(.*?)\s*$")


def lock_error_info(output: str) -> dict[str, str] | None:
    """The "Lock Info:" of Terraform's "Error acquiring the state lock" diagnostic, or None."""
    if "Error acquiring the state lock" not in output:
        return None
    found: dict[str, str] = {}
    for line in output.splitlines():
        match = _LOCK_INFO_LINE.match(line.removeprefix("│"))
        if match and match[1] not in found:
            found[match[1]] = match[2]
    return found
