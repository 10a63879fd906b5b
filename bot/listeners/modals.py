"""Opening a modal from a listener, after ack(): one place that calls `views.open` and logs Slack's
refusal (an expired trigger id, a view Slack rejects); the user then simply sees no modal."""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.models.views import View

from core.logs import get_logger

log = get_logger(__name__)


def open_modal(client: WebClient, trigger_id: str | None, view: View | dict[str, Any], user_id: str) -> None:
    """Open `view` for the interaction `trigger_id` (nothing to open without one)."""
    if not trigger_id:
        return
    try:
        client.views_open(trigger_id=trigger_id, view=view)
    except SlackApiError as exc:
        log.warning("views_open_failed", error=exc.response.get("error"), user=user_id)
