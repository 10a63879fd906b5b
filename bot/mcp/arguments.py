"""What the request tools share: the `channel` argument, per-field errors, the store-down answer."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

ChannelArg = Annotated[
    str,
    Field(
        description="Slack channel id (C…/G…) to post the request in, one you and the bot are both members"
        " of; empty: the server's deployment channel (ECS_DEPLOY_MCP_CHANNEL)"
    ),
]
STORE_DOWN = "The bot cannot reach its store right now; nothing was saved. Try again in a minute."


def field_errors(*results: object) -> dict[str, str]:
    """The per-field errors among checks' results (a result is a value or {field: message})."""
    merged: dict[str, str] = {}
    for result in results:
        if isinstance(result, dict):
            merged.update(result)
    return merged
