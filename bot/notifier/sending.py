"""Sending one outbox entry to Slack: the root message (posted once, then updated), thread messages,
updates in place (a deleted message is posted anew), decisions (buttons replaced) and file uploads.
A post or upload whose outcome is unknown is looked up before it is sent again (SlackCalls.lookup);
placeholders (`outbox:{entry id}`) resolve to the real ts of the delivered post."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from bot.notifier.entries import (
    GONE_MESSAGE_ERRORS,
    MESSAGE_TTL_SECONDS,
    Delivery,
    DeliveryOutcome,
    SendResult,
    Target,
    message_key,
    message_payload,
    metadata,
    moved_key,
    placeholder_key,
    root_attempt_key,
)
from bot.notifier.slack_calls import LOOKUP_SKEW_SECONDS, SlackCalls, put
from bot.outbox import PLACEHOLDER_PREFIX, Outbox, OutboxEntry
from bot.views.messages import decided_blocks, root_message
from core.logs import get_logger
from core.models import Deployment
from storage.store import DeploymentNotFound, DeploymentStore

log = get_logger(__name__)


class EntrySender:
    def __init__(self, store: DeploymentStore, outbox: Outbox, calls: SlackCalls) -> None:
        self.store = store
        self.outbox = outbox
        self.calls = calls

    @property
    def redis(self) -> redis.Redis:
        return self.store.redis

    def send(self, delivery: Delivery) -> SendResult:
        entry = delivery.entry
        try:
            if entry.kind == "root":
                return self._send_root(self.store.get(entry.deployment_id))
            target = self._target(entry)
            if target is None:
                return SendResult(DeliveryOutcome.DROP, error="deployment_not_found")
            if entry.kind == "decide":
                return self._send_decide(delivery, target)
            if entry.kind == "update":
                return self._send_update(delivery, target)
            if entry.kind == "upload":
                return self._send_upload(delivery, target)
            return self._send_post(delivery, target)
        except DeploymentNotFound:
            return SendResult(DeliveryOutcome.DROP, error="deployment_not_found")

    def _target(self, entry: OutboxEntry) -> Target | None:
        try:
            current = self.store.get(entry.deployment_id)
        except DeploymentNotFound:
            if not (entry.channel and entry.thread_ts):
                return None
            return Target(entry.deployment_id, entry.channel, entry.thread_ts, None)
        return Target(current.id, current.channel_id, current.thread_ts, current)

    def resolve(self, deployment_id: str, ts: str | None) -> str | None:
        """The real ts of the message `ts` names now: through its placeholder (None while its post is
        undelivered) and through any replacement of a deleted message."""
        for _ in range(8):
            if not ts:
                return None
            if ts.startswith(PLACEHOLDER_PREFIX):
                raw = self.redis.get(placeholder_key(ts.removeprefix(PLACEHOLDER_PREFIX)))
                if raw is None:
                    return None
            else:
                raw = self.redis.get(moved_key(deployment_id, ts))
                if raw is None:
                    return ts
            ts = raw.decode() if isinstance(raw, bytes) else str(raw)
        return ts

    def _send_root(self, deployment: Deployment) -> SendResult:
        if not deployment.thread_ts:
            return self._post_root(deployment)[0]
        message = root_message(deployment)
        failed = self._chat_update(
            deployment.id, deployment.channel_id, deployment.thread_ts, message.text, message.block_dicts()
        )
        return failed or SendResult(DeliveryOutcome.SENT, deployment.thread_ts)

    def _chat_update(
        self, deployment_id: str, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]
    ) -> SendResult | None:
        """chat.update of one message: None when Slack took it, else what to do with the entry."""
        _, failed = self.calls.call(
            "chat_update", deployment_id, channel=channel, ts=ts, text=text, blocks=blocks
        )
        return failed

    def _ensure_root(self, target: Target) -> tuple[SendResult, Target]:
        if target.thread_ts or target.deployment is None:
            return SendResult(DeliveryOutcome.SENT, target.thread_ts), target
        result, deployment = self._post_root(target.deployment)
        return result, Target(deployment.id, deployment.channel_id, deployment.thread_ts, deployment)

    def _post_root(self, deployment: Deployment) -> tuple[SendResult, Deployment]:
        """Post the root message once: if an earlier attempt may have landed, look for it first."""
        attempted = root_attempt_key(deployment.id)
        if not self.redis.set(attempted, repr(time.time()), nx=True, ex=MESSAGE_TTL_SECONDS):
            since = float(_text(self.redis.get(attempted) or "0") or 0)
            found = self.calls.lookup(
                "conversations_history",
                deployment.id,
                lambda m: (
                    message_payload(m).get("deployment_id") == deployment.id
                    and message_payload(m).get("kind") == "root"
                ),
                channel=deployment.channel_id,
                oldest=f"{since - LOOKUP_SKEW_SECONDS:.6f}",
            )
            if found.retry is not None:
                return found.retry, deployment
            if found.ts:
                log.info("slack_post_found", deployment_id=deployment.id, kind="root")
                return self._root_posted(deployment, found.ts, deployment.channel_id)
        message = root_message(deployment)
        response, failed = self.calls.call(
            "chat_postMessage",
            deployment.id,
            channel=deployment.channel_id,
            text=message.text,
            blocks=message.block_dicts(),
            unfurl_links=False,
            metadata=metadata(deployment.id, "root"),
        )
        if failed:
            if not failed.ambiguous:  # it did not land: the next attempt need not look for it
                self.redis.delete(attempted)
            return failed, deployment
        return self._root_posted(
            deployment, str(response["ts"]), str(response.get("channel") or deployment.channel_id)
        )

    def _root_posted(self, deployment: Deployment, ts: str, channel: str) -> tuple[SendResult, Deployment]:
        updated = self.store.update(
            deployment.id, lambda d: d.model_copy(update={"thread_ts": ts, "channel_id": channel})
        )
        self.redis.delete(root_attempt_key(deployment.id))
        return SendResult(DeliveryOutcome.SENT, ts), updated

    # thread messages

    def _send_post(self, delivery: Delivery, target: Target) -> SendResult:
        root, target = self._ensure_root(target)
        if root.outcome is not DeliveryOutcome.SENT:
            return root
        entry = delivery.entry
        if entry.in_flight:  # an earlier attempt may have landed
            found = self.calls.lookup_in_thread(
                target, entry, lambda m: message_payload(m).get("entry_id") == entry.id
            )
            if found.retry is not None:
                return found.retry
            if found.ts:
                log.info("slack_post_found", deployment_id=target.deployment_id, kind=entry.kind)
                self._posted(entry, found.ts)
                return SendResult(DeliveryOutcome.SENT, found.ts)
        delivery.save(in_flight=True)
        response, failed = self.calls.call(
            "chat_postMessage",
            target.deployment_id,
            channel=target.channel,
            thread_ts=target.thread_ts,
            text=entry.text,
            blocks=entry.blocks,
            unfurl_links=False,
            metadata=metadata(target.deployment_id, "post", entry.id),
        )
        if failed:
            if not failed.ambiguous:
                delivery.note(in_flight=False)
            return failed
        ts = str(response["ts"])
        self._posted(entry, ts)
        return SendResult(DeliveryOutcome.SENT, ts)

    def _posted(self, entry: OutboxEntry, ts: str) -> None:
        with self.redis.pipeline(transaction=False) as pipe:
            if entry.remember:
                pipe.set(
                    message_key(entry.deployment_id, ts), json.dumps(entry.blocks), ex=MESSAGE_TTL_SECONDS
                )
            pipe.set(placeholder_key(entry.id), ts, ex=MESSAGE_TTL_SECONDS)
            if entry.kind == "update" and entry.ts:  # a new message in place of one that is gone
                if entry.ts.startswith(PLACEHOLDER_PREFIX):
                    key = placeholder_key(entry.ts.removeprefix(PLACEHOLDER_PREFIX))
                else:
                    key = moved_key(entry.deployment_id, entry.ts)
                pipe.set(key, ts, ex=MESSAGE_TTL_SECONDS)
            pipe.execute()

    def _send_update(self, delivery: Delivery, target: Target) -> SendResult:
        entry = delivery.entry
        ts = self.resolve(target.deployment_id, entry.ts)
        if ts and not entry.in_flight:
            failed = self._chat_update(target.deployment_id, target.channel, ts, entry.text, entry.blocks)
            if failed is None:
                return SendResult(DeliveryOutcome.SENT, ts)
            if failed.error not in GONE_MESSAGE_ERRORS:
                return (
                    failed
                    if failed.outcome is DeliveryOutcome.RETRY
                    else SendResult(DeliveryOutcome.DROP, ts, failed.error)
                )
            log.info("slack_message_gone", deployment_id=target.deployment_id, error=failed.error)
        # gone, or its post never reached Slack: post it anew (and let the old ts point to it)
        return self._send_post(delivery, target)

    def _send_decide(self, delivery: Delivery, target: Target) -> SendResult:
        entry = delivery.entry
        ts = self.resolve(target.deployment_id, entry.ts)
        if not ts:
            return SendResult(DeliveryOutcome.SENT)  # the message never reached Slack: nothing to decide
        blocks = entry.blocks
        if not blocks:
            raw = self.redis.get(message_key(target.deployment_id, ts))
            blocks = json.loads(raw) if raw else []
        failed = self._chat_update(
            target.deployment_id, target.channel, ts, entry.text, decided_blocks(blocks, entry.text)
        )
        if failed and failed.error in GONE_MESSAGE_ERRORS:
            return SendResult(DeliveryOutcome.SENT)
        return failed or SendResult(DeliveryOutcome.SENT, ts)

    # files

    def _send_upload(self, delivery: Delivery, target: Target) -> SendResult:
        """files.getUploadURLExternal, the bytes to the upload URL, files.completeUploadExternal into
        the thread. Only the last step shares the file; if its outcome is unknown, the thread is
        searched for the file before it is shared again."""
        root, target = self._ensure_root(target)
        if root.outcome is not DeliveryOutcome.SENT:
            return root
        file_id = delivery.entry.file_id
        if file_id and delivery.entry.in_flight:
            found = self.calls.lookup_in_thread(
                target,
                delivery.entry,
                lambda m: any(f.get("id") == file_id for f in m.get("files") or [] if isinstance(f, dict)),
            )
            if found.retry is not None:
                return found.retry
            if found.ts:
                log.info("slack_post_found", deployment_id=target.deployment_id, kind="upload")
                return SendResult(DeliveryOutcome.SENT, found.ts)
        if file_id:
            completed = self._complete_upload(delivery, target)
            if completed.outcome is not DeliveryOutcome.DROP:
                return completed
            delivery.save(file_id=None, in_flight=False)  # Slack no longer has that file: upload again
        content = self.outbox.content(delivery.entry.id)
        if content is None:
            log.error("outbox_upload_content_missing", deployment_id=target.deployment_id)
            return SendResult(DeliveryOutcome.DROP, error="content_missing")
        data = content.encode("utf-8")
        response, failed = self.calls.call(
            "files_getUploadURLExternal",
            target.deployment_id,
            filename=delivery.entry.filename,
            length=len(data),
        )
        if failed:
            return failed
        try:
            put(str(response["upload_url"]), data)
        except (OSError, ValueError) as exc:
            log.warning(
                "slack_call_failed",
                deployment_id=target.deployment_id,
                method="file upload",
                error=type(exc).__name__,
                will_retry=True,
            )
            return SendResult(DeliveryOutcome.RETRY, error=type(exc).__name__)
        delivery.save(file_id=str(response["file_id"]))
        return self._complete_upload(delivery, target)

    def _complete_upload(self, delivery: Delivery, target: Target) -> SendResult:
        entry = delivery.entry
        delivery.save(in_flight=True)
        _, failed = self.calls.call(
            "files_completeUploadExternal",
            target.deployment_id,
            files=[{"id": entry.file_id, "title": entry.title}],
            channel_id=target.channel,
            thread_ts=target.thread_ts,
            initial_comment=entry.text or None,
        )
        if failed:
            if not failed.ambiguous:
                delivery.note(in_flight=False)
            return failed
        return SendResult(DeliveryOutcome.SENT, target.thread_ts)

    # looking a post up


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
