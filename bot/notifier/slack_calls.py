"""Calling Slack once, and looking a post up: the calls the outbox's delivery makes.

A call never raises for a Slack or network fault: it says what to do with the entry (SendResult).
While a deployment's outbox lock is held (`hold`), each call first extends it, so the deployment
stays with this deliverer for the length of the call.
"""

from __future__ import annotations

import contextlib
import threading
import urllib.request
from collections.abc import Callable
from typing import Any, Literal

import redis
from redis.exceptions import LockError
from redis.lock import Lock
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.notifier.entries import DeliveryOutcome, Lookup, SendResult, Target
from bot.outbox import OutboxEntry
from bot.slack import TIMEOUT_SECONDS, is_ambiguous, is_transient
from core.logs import get_logger

log = get_logger(__name__)
LOOKUP_PAGES = 10  # conversations.replies / .history pages read to find a post (200 messages each)
LOOKUP_SKEW_SECONDS = 600  # look back this far before an entry was queued (clocks differ)


class SlackCalls:
    def __init__(self, writer: WebClient) -> None:
        self.writer = writer  # no retries inside the client: the outbox decides
        self._local = threading.local()

    def hold(self, lock: Lock | None) -> None:
        """The deployment lock this thread holds while it delivers (None: none)."""
        self._local.lock = lock

    def call(
        self, method: str, deployment_id: str = "", *, client: WebClient | None = None, **kwargs: Any
    ) -> tuple[Any, SendResult | None]:
        """Call Slack once; (response, None) on success, else (None, what to do with the entry). Never
        raises for a Slack or network fault."""
        lock: Lock | None = getattr(self._local, "lock", None)
        if lock is not None:  # the deployment stays ours for the length of this call
            with contextlib.suppress(LockError, redis.RedisError):
                lock.reacquire()
        try:
            response = getattr(client or self.writer, method)(
                **{k: v for k, v in kwargs.items() if v is not None}
            )
            return response, None
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "")
            status = getattr(exc.response, "status_code", None)
            transient = is_transient(status, error)
            log.warning(
                "slack_call_failed",
                deployment_id=deployment_id,
                method=method,
                error=error,
                status=status,
                will_retry=transient,
            )
            return None, SendResult(
                DeliveryOutcome.RETRY if transient else DeliveryOutcome.DROP,
                error=error,
                ambiguous=is_ambiguous(status, error),
                retry_after=retry_after(exc.response.headers) if status == 429 else None,
            )
        except (OSError, ValueError, SlackClientError) as exc:  # a timeout, a reset, not JSON
            log.warning(
                "slack_call_failed",
                deployment_id=deployment_id,
                method=method,
                error=type(exc).__name__,
                will_retry=True,
            )
            return None, SendResult(DeliveryOutcome.RETRY, error=type(exc).__name__, ambiguous=True)

    # root message

    def lookup_in_thread(
        self, target: Target, entry: OutboxEntry, match: Callable[[dict[str, Any]], bool]
    ) -> Lookup:
        return self.lookup(
            "conversations_replies",
            target.deployment_id,
            match,
            channel=target.channel,
            ts=target.thread_ts,
            oldest=f"{entry.created_at - LOOKUP_SKEW_SECONDS:.6f}",
        )

    def lookup(
        self,
        method: Literal["conversations_replies", "conversations_history"],
        deployment_id: str,
        match: Callable[[dict[str, Any]], bool],
        **kwargs: Any,
    ) -> Lookup:
        cursor: str | None = None
        for _ in range(LOOKUP_PAGES):
            response, failed = self.call(
                method, deployment_id, include_all_metadata=True, limit=200, cursor=cursor, **kwargs
            )
            if failed is not None:
                if failed.outcome is DeliveryOutcome.RETRY:
                    return Lookup(
                        retry=SendResult(
                            DeliveryOutcome.RETRY, error=failed.error, retry_after=failed.retry_after
                        )
                    )
                log.warning(
                    "outbox_lookup_unavailable",
                    deployment_id=deployment_id,
                    method=method,
                    error=failed.error,
                    consequence="posting again; it may appear twice (the bot needs channels:history /"
                    " groups:history and to be a member of the channel to check)",
                )
                return Lookup()
            for message in response.get("messages") or []:
                if isinstance(message, dict) and match(message):
                    return Lookup(ts=str(message.get("ts")))
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return Lookup()


def retry_after(headers: Any) -> float | None:
    try:
        value = (headers or {}).get("Retry-After") or (headers or {}).get("retry-after")
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def put(url: str, data: bytes) -> None:
    """The file's bytes to the URL files.getUploadURLExternal gave (Slack's documented step 2)."""
    if not url.startswith(("https://", "http://")):
        raise ValueError("not an upload URL")
    request = urllib.request.Request(url, data=data, method="POST")
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
        if response.status != 200:
            raise ValueError(f"upload answered {response.status}")
