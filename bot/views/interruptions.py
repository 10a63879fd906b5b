"""What the thread says when a worker died in the middle of a step (workers/sweeper.py decides,
this module words it)."""

from __future__ import annotations

from datetime import UTC, datetime


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
