"""Which Slack channel an MCP request may be posted in (the `channel` argument of request_deployment
and request_change).

Without the argument a request goes to ECS_DEPLOY_MCP_CHANNEL, the operator's choice. A channel the
assistant names instead is one the user "may use" when all of this holds, read from Slack through the
notifier's client (conversations.info and conversations.members; scopes channels:read, groups:read):
- it is a channel id (C… or G…), the channel exists and is not archived;
- the bot is a member of it (someone invited it: `/invite @ecs-deploy-bot`), so the operator's
  workspace decides where the bot speaks and a private channel is never reached by a guess;
- the calling user is a member of it, so nobody posts in a channel they could not post in themselves.
The access policy has no notion of channels; this is the whole rule. Anything Slack does not answer
(rate limits past the client's retries, an outage) refuses too: fail closed, say why.
"""

from __future__ import annotations

from dataclasses import dataclass

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.mcp import views
from bot.mcp.settings import CHANNEL_ID
from core.logs import get_logger

log = get_logger(__name__)
MEMBER_PAGES = 20  # conversations.members pages read (1,000 members each) before giving up
MEMBER_PAGE_SIZE = 1000


@dataclass(frozen=True)
class ChannelCheck:
    allowed: bool
    why: str = ""  # the refusal, for the `channel` field's error


def _refused(why: views.ChannelRefusal, channel_id: str, error: str = "") -> ChannelCheck:
    return ChannelCheck(False, views.channel_refusal(why, channel_id, error))


def check_channel(client: WebClient, channel_id: str, user_id: str) -> ChannelCheck:
    """Whether `user_id` may have the bot post a request in `channel_id` (see the module docstring)."""
    if not CHANNEL_ID.fullmatch(channel_id):
        return _refused("not_a_channel_id", channel_id)
    try:
        info = client.conversations_info(channel=channel_id)
        channel = info.get("channel") or {}
        if channel.get("is_archived"):
            return _refused("archived", channel_id)
        if not channel.get("is_member"):
            return _refused("bot_not_member", channel_id)
        if not _is_member(client, channel_id, user_id):
            return _refused("user_not_member", channel_id)
    except SlackApiError as exc:
        error = str(exc.response.get("error") or "")
        log.warning("mcp_channel_check_failed", channel=channel_id, error=error)
        if error == "channel_not_found":
            return _refused("not_found", channel_id)
        return _refused("unanswered", channel_id, error)
    except (OSError, SlackClientError) as exc:
        log.warning("mcp_channel_check_failed", channel=channel_id, error=type(exc).__name__)
        return _refused("unreachable", channel_id)
    return ChannelCheck(True)


def _is_member(client: WebClient, channel_id: str, user_id: str) -> bool:
    cursor: str | None = None
    for _ in range(MEMBER_PAGES):
        page = client.conversations_members(channel=channel_id, limit=MEMBER_PAGE_SIZE, cursor=cursor)
        if user_id in (page.get("members") or []):
            return True
        cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
        if not cursor:
            return False
    log.warning("mcp_channel_members_truncated", channel=channel_id, pages=MEMBER_PAGES)
    return False
