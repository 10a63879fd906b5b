"""The only code that posts to Slack.

Every deployment has one root message in the channel where it was requested; everything else goes
into that message's thread. A Slack fault while reporting never fails the work being reported: it
is logged and the call returns None.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import redis
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block, ContextBlock, MarkdownTextObject

from bot.views.messages import Message, root_message
from core.logs import get_logger
from core.models import STOPPED_STATUSES, Deployment, DeploymentStatus, DeploymentStopped
from core.store import PREFIX, DeploymentStore

log = get_logger(__name__)
MESSAGE_TTL_SECONDS = 30 * 24 * 3600
GONE_MESSAGE_ERRORS = {"message_not_found", "cant_update_message", "edit_window_closed"}


def _message_key(deployment_id: str, ts: str) -> str:
    return f"{PREFIX}message:{deployment_id}:{ts}"


def decided_blocks(blocks: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """The message without its buttons, and what was decided in their place."""
    kept = [block for block in blocks if block.get("type") != "actions"]
    decision = ContextBlock(block_id="decision", elements=[MarkdownTextObject(text=text[:2900])]).to_dict()
    return [*kept[:49], decision]


class Notifier:
    def __init__(self, client: WebClient, store: DeploymentStore) -> None:
        self.client = client
        self.store = store

    # -- the thread ---------------------------------------------------------------------------

    def ensure_thread(self, deployment: Deployment) -> Deployment:
        """Post the root message once (a Redis lock keeps two processes from both posting it)."""
        if deployment.thread_ts:
            return deployment
        lock = self.store.redis.lock(f"{PREFIX}lock:root:{deployment.id}", timeout=30, blocking_timeout=30)
        with lock:
            current = self.store.get(deployment.id)
            if current.thread_ts:
                return current
            message = root_message(current)
            response = self._call(
                "chat_postMessage",
                channel=current.channel_id,
                text=message.text,
                blocks=message.block_dicts(),
                unfurl_links=False,
            )
            if response is None:
                return current
            ts = str(response["ts"])
            channel = str(response.get("channel") or current.channel_id)
            return self.store.update(
                current.id, lambda d: d.model_copy(update={"thread_ts": ts, "channel_id": channel})
            )

    def refresh_root(self, deployment: Deployment) -> None:
        if not deployment.thread_ts:
            return
        message = root_message(deployment)
        try:
            self.client.chat_update(
                channel=deployment.channel_id,
                ts=deployment.thread_ts,
                text=message.text,
                blocks=message.block_dicts(),
            )
        except SlackApiError as exc:
            log.warning("slack_update_failed", deployment_id=deployment.id, error=exc.response.get("error"))

    def set_status(self, deployment_id: str, status: DeploymentStatus, detail: str = "") -> Deployment:
        """Move to `status`, unless someone cancelled or rejected the deployment meanwhile."""

        def change(d: Deployment) -> Deployment | None:
            return None if d.status in STOPPED_STATUSES else d.with_status(status, detail)

        deployment, changed = self.store.transition(deployment_id, change)
        if not changed:
            raise DeploymentStopped(deployment.status.value)
        deployment = self.ensure_thread(deployment)
        self.refresh_root(deployment)
        return deployment

    def post(self, deployment: Deployment, message: Message, *, remember: bool = False) -> str | None:
        """Post into the thread. `remember` keeps the blocks so `decide()` can later swap its buttons."""
        deployment = self.ensure_thread(deployment)
        response = self._call(
            "chat_postMessage",
            channel=deployment.channel_id,
            thread_ts=deployment.thread_ts,
            text=message.text,
            blocks=message.block_dicts(),
            unfurl_links=False,
        )
        if not response:
            return None
        ts = str(response["ts"])
        if remember:
            self.store.redis.set(
                _message_key(deployment.id, ts), json.dumps(message.block_dicts()), ex=MESSAGE_TTL_SECONDS
            )
        return ts

    def decide(self, deployment: Deployment, ts: str | None, text: str) -> None:
        """Replace a remembered message's buttons by `text` (what was decided, by whom)."""
        if not ts:
            return
        raw = self.store.redis.get(_message_key(deployment.id, ts))
        blocks = json.loads(raw) if raw else []
        try:
            self.client.chat_update(
                channel=deployment.channel_id, ts=ts, text=text, blocks=decided_blocks(blocks, text)
            )
        except SlackApiError as exc:
            log.warning("slack_update_failed", deployment_id=deployment.id, error=exc.response.get("error"))

    def update(self, deployment: Deployment, ts: str | None, message: Message) -> str | None:
        """Update a thread message in place; if it is gone (deleted), post a new one."""
        if ts:
            try:
                self.client.chat_update(
                    channel=deployment.channel_id, ts=ts, text=message.text, blocks=message.block_dicts()
                )
                return ts
            except SlackApiError as exc:
                if exc.response.get("error") not in GONE_MESSAGE_ERRORS:
                    log.warning(
                        "slack_update_failed", deployment_id=deployment.id, error=exc.response.get("error")
                    )
                    return ts
        return self.post(deployment, message)

    def upload(
        self, deployment: Deployment, *, filename: str, content: str, title: str, comment: str | None = None
    ) -> bool:
        deployment = self.ensure_thread(deployment)
        response = self._call(
            "files_upload_v2",
            channel=deployment.channel_id,
            thread_ts=deployment.thread_ts,
            filename=filename,
            content=content,
            title=title,
            initial_comment=comment,
        )
        return response is not None

    # -- outside a thread ---------------------------------------------------------------------

    def ephemeral(self, channel: str, user: str, text: str, blocks: Sequence[Block] | None = None) -> None:
        self._call(
            "chat_postEphemeral",
            channel=channel,
            user=user,
            text=text,
            blocks=[b.to_dict() for b in blocks] if blocks else None,
        )

    def _call(self, method: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, method)(**{k: v for k, v in kwargs.items() if v is not None})
        except SlackApiError as exc:
            log.warning("slack_call_failed", method=method, error=exc.response.get("error"))
        except (OSError, redis.RedisError) as exc:
            log.warning("slack_call_failed", method=method, error=type(exc).__name__)
        return None
