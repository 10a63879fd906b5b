"""Replace a clicked message's buttons with what was decided (nothing stale stays clickable).

The decision goes through the deployment's outbox like every other Slack write (bot/notifier/): it
reaches Slack after a rate limit or an outage instead of being lost, and never before or after the
thread's other messages out of order. With `decision_entries` it is queued in the same transaction as
the job the click starts, ahead of anything that job posts.
"""

from __future__ import annotations

from typing import Any

from bot.notifier import Notifier
from bot.outbox import OutboxEntry
from core.models import Deployment


def decision_entries(
    notifier: Notifier, deployment: Deployment, ts: str | None, message: dict[str, Any], text: str
) -> list[OutboxEntry]:
    """The outbox entry that replaces the buttons of the message `ts` by `text` (none without a ts).
    Slack sends the clicked message's blocks with the click; those are what is kept."""
    entry = notifier.decide_entry(deployment, ts, text, blocks=message.get("blocks") or [])
    return [entry] if entry is not None else []


def replace_actions(
    notifier: Notifier, deployment: Deployment, ts: str | None, message: dict[str, Any], text: str
) -> None:
    notifier.decide(deployment, ts, text, blocks=message.get("blocks") or [])
