"""Thread messages about Terraform runs: waiting in line for a state, superseded plans, apply
progress, and Terraform's own DynamoDB lock found in the way."""

from __future__ import annotations

from bot.views.messages import Message, text_message
from storage.locks import LockHolder


def waiting_text(holder: LockHolder) -> str:
    return (
        f":hourglass: Waiting in line: the Terraform state is in use by `{holder.deployment_id}`"
        f" ({holder.step}, requested by <@{holder.user_id}>, since {holder.since:%H:%M} UTC)."
    )


def superseded_text(previous_attempt: int, attempt: int) -> str:
    return (
        f":arrows_counterclockwise: Plan #{previous_attempt} was superseded by plan #{attempt};"
        " its approvals no longer count."
    )


def applying_text(attempt: int) -> str:
    return f":gear: Applying plan #{attempt}…"


def apply_progress_text(progress: str, elapsed_seconds: int, *, final: bool) -> str:
    minutes, seconds = divmod(elapsed_seconds, 60)
    return f":gear: {'Applied' if final else 'Applying'}… {progress} · {minutes}m{seconds:02d}s"


def lock_left_alone(state: str, lock_id: str, facts: str, reason: str, timeout_seconds: int) -> Message:
    """Terraform's lock is held by someone the bot cannot prove is its own dead run."""
    return text_message(
        f":lock: Terraform's own lock on `{state}` is held (lock ID `{lock_id}`, {facts}). The bot leaves it"
        f" alone: {reason}. Terraform waits up to {timeout_seconds} s for it."
    )


def dead_run_lock_released(
    state: str, lock_id: str, *, deployment_id: str, step: str, job_id: str | None, reason: str
) -> Message:
    return text_message(
        f":unlock: Terraform's lock on `{state}` (lock ID `{lock_id}`) was left by the interrupted run of"
        f" `{deployment_id}` ({step}, job `{job_id}`); it was provably that run's own ({reason}), so the"
        " bot released it. No `terraform force-unlock` is needed."
    )


def own_lock_released(command: str, lock_id: str) -> Message:
    return text_message(
        f":unlock: `terraform {command}` stopped on a state lock it had taken itself a moment earlier"
        f" (lock ID `{lock_id}`; Terraform's request was retried by the AWS SDK after its first attempt"
        f" had succeeded). The bot released that lock and runs `terraform {command}` once more."
    )


def confirmed_headline(headline: str, user_id: str | None) -> str:
    """The backend report's headline, with who confirmed the bucket's changes."""
    return f"{headline} Confirmed by <@{user_id}>." if user_id else headline
