"""What the thread says when a worker died in the middle of a step (workers/sweeper.py decides,
this module words it)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from typing import Protocol

from aws_edge.terraform_lock import LockRead
from core.apply_progress import ApplyProgress
from core.models import Deployment
from core.terraform_locks import OwnLock, TerraformRun
from storage.queue import Step

NAMES_SHOWN = 15


class StateSeen(Protocol):
    """The state object in S3 after the run, as far as it could be read."""

    @property
    def exists(self) -> bool: ...
    @property
    def serial(self) -> int | None: ...
    @property
    def addresses(self) -> Collection[str]: ...
    @property
    def problem(self) -> str | None: ...
    @property
    def known(self) -> bool: ...


class AftermathFacts(Protocol):
    """What a killed Terraform run left (workers/sweeper.py's Aftermath), as this view reads it."""

    @property
    def step(self) -> Step: ...
    @property
    def state(self) -> str: ...
    @property
    def run(self) -> TerraformRun | None: ...
    @property
    def progress(self) -> ApplyProgress | None: ...
    @property
    def progress_source(self) -> str: ...
    @property
    def interrupt_seen(self) -> bool: ...
    @property
    def terraform_running(self) -> bool: ...
    @property
    def state_after(self) -> StateSeen | None: ...
    @property
    def lock(self) -> LockRead | None: ...
    @property
    def verdict(self) -> OwnLock | None: ...
    @property
    def aws_problem(self) -> str | None: ...


def elapsed_text(started: datetime | None, until: datetime) -> str:
    """ "1m05s" from a job's start (naive times are UTC, as RQ writes them) until `until`."""
    if started is None:
        return "?"
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    seconds = max(0, int((until - started).total_seconds()))
    return f"{seconds // 60}m{seconds % 60:02d}s"


def interrupted_headline(
    what: str, *, job_id: str, reason: str, started: datetime | None, died_at: datetime, stopped: str | None
) -> str:
    ran = ""
    if started is not None:
        ran = (
            f" {elapsed_text(started, died_at)} after the job started (last heartbeat {died_at:%H:%M:%S} UTC)"
        )
    text = (
        f":warning: *Interrupted: {what}.* The worker running it stopped unexpectedly{ran}: {reason}"
        f" (a container stop, a deploy or running out of memory can do this). Job `{job_id}`."
    )
    if stopped:
        text += f" The deployment was already {stopped}; it stays {stopped}."
    return text


def nothing_more_runs(*, stopped: bool) -> str:
    """For steps other than Terraform's (those get the aftermath)."""
    if stopped:
        return "Nothing more runs for this deployment."
    return "Nothing more runs for this deployment on its own: start a new request with `/ecs-deploy`."


def state_lock_released(state: str, step: str, since: datetime) -> str:
    return (
        f":unlock: The bot's lock on the Terraform state `{state}` (taken for {step} at"
        f" {since:%H:%M} UTC) was held by this deployment and has been released, so other"
        " runs on this state are no longer kept waiting."
    )


def state_lock_maybe_held(state: str, deployment_id: str) -> str:
    return (
        f":lock: The bot's lock on the Terraform state `{state}` may still be held by this deployment;"
        f" release it with `/ecs-deploy unlock {deployment_id}`."
    )


def apply_interrupted_progress(counted: str, source: str, started: datetime | None, died_at: datetime) -> str:
    """Replaces the apply's progress line ("Applying… 3/11")."""
    return (
        f":warning: Apply interrupted — {counted} resources done (from {source or 'its record'})"
        f" · its worker stopped {elapsed_text(started, died_at)} after the job started"
    )


def _names(addresses: list[str] | tuple[str, ...]) -> str:
    shown = ", ".join(f"`{a}`" for a in addresses[:NAMES_SHOWN])
    more = len(addresses) - NAMES_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def aftermath_lines(aftermath: AftermathFacts, deployment: Deployment, lock_timeout: int) -> list[str]:
    """What happened and the exact next step, for the thread (pure)."""
    run, step = aftermath.run, aftermath.step
    lines: list[str] = []
    if run is None:
        lines.append("The bot has no record of this run's Terraform command, so it cannot say what it did.")
    elif run.command is None or run.pid is None:
        lines.append("Terraform had not started yet: nothing ran against the state.")
    elif aftermath.terraform_running:
        lines.append(
            f":warning: Terraform (pid {run.pid}) was still running on {run.host} when this was written."
        )
    elif aftermath.interrupt_seen:
        lines.append("Terraform got the interrupt when its worker died and stopped on its own (see its log).")
    missing: list[str] = []
    if step is Step.APPLY and aftermath.progress is not None:
        progress = aftermath.progress
        counted = f"{progress.done} of {progress.total}" if progress.total else str(progress.done)
        if progress.done:
            lines.append(
                f"*According to {aftermath.progress_source}, {counted} resource changes completed* before"
                f" it stopped" + (f"; created: {_names(progress.created)}" if progress.created else "") + "."
            )
        else:
            lines.append(f"According to {aftermath.progress_source}, no resource change had completed.")
        if progress.in_progress:
            lines.append(f"Still in progress when it stopped: {_names(progress.in_progress)}.")
        after = aftermath.state_after
        if after is not None and after.known:
            missing = [a for a in progress.created if a not in after.addresses]
    elif step is Step.PLAN:
        lines.append("A plan changes nothing in AWS.")
    lines.append(_state_text(aftermath))
    if missing:
        lines.append(
            f":warning: *Created but not in the state:* {_names(missing)}. They exist, but Terraform does"
            " not know them: a plan would try to create them again."
        )
    lines.append(_lock_text(aftermath))
    lines.append(_next_text(aftermath, deployment, missing, lock_timeout))
    return lines


def _state_text(aftermath: AftermathFacts) -> str:
    run, after = aftermath.run, aftermath.state_after
    if aftermath.aws_problem:
        return f"The state object could not be checked: {aftermath.aws_problem}."
    if after is None or not after.known:
        return f"The state object could not be read ({after.problem if after else 'no answer'})."
    before_known = run is not None and run.state_existed_before is not None
    if not before_known:
        now = f"serial {after.serial}" if after.exists else "no state object"
        return f"The state object now has {now}; what it was before the run is not known."
    assert run is not None
    if not run.state_existed_before:
        if after.exists:
            return f"*Terraform wrote the state* (there was none before; serial {after.serial} now)."
        return "*No state was written* (there was none before the run and there is none now)."
    if not after.exists:
        return f"*The state object is gone* (it had serial {run.state_serial_before} before the run)."
    if after.serial == run.state_serial_before:
        return f"*The state object did not change* (serial {after.serial} before and after): Terraform did not write the state."
    return f"*The state object changed* (serial {run.state_serial_before} → {after.serial}): Terraform wrote the state."


def _lock_text(aftermath: AftermathFacts) -> str:
    where = f"Terraform's own lock on `{aftermath.state}`"
    found = aftermath.lock
    if aftermath.aws_problem or found is None:
        return f":grey_question: {where} could not be checked."
    if found.problem:
        return f":grey_question: {where} could not be checked ({found.problem})."
    if not found.held:
        return f":white_check_mark: {where} is free."
    if found.lock is None:
        return f":lock: {where} is held, but its details cannot be read: the bot will not touch it."
    verdict = aftermath.verdict
    if verdict is not None and verdict.own:
        return (
            f":lock: {where} is *still held by this run* (lock ID `{found.lock.id}`) — provably its own:"
            f" {verdict.reason}."
        )
    why = f" ({verdict.reason})" if verdict is not None else ""
    return (
        f":lock: {where} is held (lock ID `{found.lock.id}`, {found.lock.facts}) and is not provably this"
        f" run's{why}: the bot will not touch it."
    )


def _next_text(
    aftermath: AftermathFacts, deployment: Deployment, missing: list[str], lock_timeout: int
) -> str:
    replan = f"*Re-plan* (the button, or `/ecs-deploy plan {deployment.id}`)"
    if aftermath.step is Step.APPLY:
        if missing:
            text = (
                "*Next:* an operator imports the resources above into the state (`terraform import`) or"
                f" deletes them; then {replan} and have the new plan approved."
            )
        else:
            text = (
                f"*Next:* {replan}: the new plan shows what is in place and what is left, and needs a new"
                " approval. Nothing is applied again automatically."
            )
    else:
        text = f"*Next:* {replan} to plan again."
    found, verdict = aftermath.lock, aftermath.verdict
    if found is not None and found.held and found.lock is not None:
        if verdict is not None and verdict.own:
            text += (
                " The re-plan first releases Terraform's lock left by this run — no `terraform force-unlock`"
                f" needed; a lead can also release it now with `/ecs-deploy unlock {deployment.id}`."
            )
        else:
            text += (
                f" A re-plan waits up to {lock_timeout} s for Terraform's lock and stops if it is still held."
                f" If no run is using this state, a lead checks with `/ecs-deploy unlock {deployment.id}` and"
                f" releases it from the deployment's workspace with `terraform force-unlock {found.lock.id}`."
            )
    elif found is None or found.problem or aftermath.aws_problem:
        text += (
            " If the re-plan stops with _Error acquiring the state lock_, a lead sees who holds it with"
            f" `/ecs-deploy unlock {deployment.id}`."
        )
    return text
