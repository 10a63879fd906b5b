"""Replace a clicked message's buttons with what was decided (nothing stale stays clickable)."""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.notifier import decided_blocks
from core.logs import get_logger

log = get_logger(__name__)


def replace_actions(client: WebClient, channel: str, ts: str, message: dict[str, Any], text: str) -> None:
    try:
        client.chat_update(
            channel=channel, ts=ts, text=text, blocks=decided_blocks(message.get("blocks") or [], text)
        )
    except SlackApiError as exc:
        log.warning("decision_update_failed", error=exc.response.get("error"))
