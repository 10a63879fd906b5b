"""What a thread button click says: the line that replaces the clicked buttons, the thread notices,
and the (ephemeral) answers when a click changes nothing."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bot.views.access import mention
from bot.views.blocks import escape_mrkdwn
from bot.views.messages import Message, text_message
from bot.views.statuses import status_words
from core.analysis.recommendations import FieldChange
from core.lifecycle import Move
from core.models import Deployment

STORE_DOWN = "The bot cannot reach its store right now; nothing changed. Try again in a minute."
DEPLOYMENT_GONE = "That deployment is no longer known to the bot."
NO_TRIGGER = "Slack did not send what is needed to open a form; try again."
FORM_FAILED = "The form could not be opened; try again."
NO_RECOMMENDATIONS = "There are no recommendations to apply."
BLOCKING_ANALYSIS = "The analysis found a blocking problem; the values cannot be kept as they are."
NO_BACKEND_FIX = "There are no bucket changes waiting for a confirmation."
NO_VALUES_NEEDED = "No values are needed right now."
NOT_WAITING_FOR_DECISION = "This plan is no longer waiting for a decision."
NOT_EDITABLE = "Values can only be edited while the plan is waiting for review, or after it failed."


# The line that replaces the clicked buttons: what the click did, and who clicked ({who}).
DECIDED_BY: dict[Move, str] = {
    Move.APPLY_RECOMMENDATIONS: ":white_check_mark: Recommendations applied by {who}.",
    Move.KEEP_VALUES: ":white_check_mark: {who} kept the requested values.",
    Move.OVERRIDE_PERMISSIONS: ":warning: Permission findings overridden by {who}.",
    Move.FULL_ANALYSIS: ":mag: Full analysis requested by {who}.",
    Move.CANCEL: ":no_entry_sign: Cancelled by {who}.",
    Move.REPLAN: ":arrows_counterclockwise: Re-plan requested by {who}; approvals of this plan no longer count.",
    Move.EDIT_VALUES: ":pencil: Values edited by {who}; this plan is discarded and a new one is coming.",
}


def decided_by(move: Move, user_id: str) -> str:
    return DECIDED_BY[move].format(who=mention(user_id))


def nothing_to_do(deployment: Deployment) -> str:
    """A click that came too late: the deployment moved on."""
    return f"Nothing to do: the deployment is now {status_words(deployment.status)}."


def recommendations_unusable(error: object) -> str:
    return f"The recommendations cannot be applied: {error}"


def change_line(change: FieldChange) -> str:
    return f"{change.field}: {change.old} → {change.new}"


def values_changed_message(changed: Sequence[FieldChange]) -> Message:
    lines = "\n".join(f"• {change_line(change)}" for change in changed)
    return text_message(
        f"*Values changed by the analysis:*\n{lines}" if changed else "No value needed changing."
    )


def backend_fix_confirmed(bucket: str, user_id: str, *, managed: bool) -> str:
    whose = "" if managed else " (an approver: the bot did not create this bucket)"
    return f":wrench: Changes to `{bucket}` confirmed by {mention(user_id)}{whose}."


# -- values given or edited in the thread's forms

VALUES_MOVED_ON = "The deployment moved on; values can no longer be edited."


def values_given_message(user_id: str, names: Iterable[str]) -> Message:
    return text_message(f":pencil: {mention(user_id)} gave " + ", ".join(f"`{n}`" for n in names) + ".")


def value_change_line(key: str, before: object, after: object) -> str:
    """One edited value, before → after (each shortened to 80 characters, escaped)."""
    return f"• `{key}`: {escape_mrkdwn(f'{before!s:.80}')} → {escape_mrkdwn(f'{after!s:.80}')}"


def values_edited_message(user_id: str, changes: Sequence[str]) -> Message:
    return text_message(
        f":pencil: {mention(user_id)} edited the values:\n"
        + ("\n".join(changes) or "nothing changed")
        + "\nEarlier approvals are discarded."
    )
