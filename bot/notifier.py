"""The only code that posts to Slack.

Every deployment has one root message in the channel where it was requested; everything else goes
into that message's thread. A Slack fault while reporting never fails the work being reported.

Slack faults:
- rate limits and transient server faults are retried inside the client (bot/slack.py);
- a root message, thread post, update or decision that still fails with a transient fault (an
  outage, `ratelimited` after all retries, a connection error) goes to the **outbox**, and is
  delivered later by `deliver_outbox()` (every worker's background thread calls it), in order per
  deployment, with backoff, at most OUTBOX_MAX_ATTEMPTS times;
- a permanent refusal (`channel_not_found`, `invalid_blocks`, …) is logged and dropped;
- a thread message that is gone (deleted) is posted anew instead of updated.

While a deployment has messages waiting in the outbox, its new messages queue behind them (so the
thread keeps its order), and the notifier tries to flush them right away when their time is due.

Outbox storage model:
- `ecs-deploy:outbox`               list of OutboxEntry JSON, oldest first (RPUSH / LREM)
- `ecs-deploy:outbox:state`         hash entry id -> {"attempts": n, "next_at": unix time}
- `ecs-deploy:outbox:pending`       hash deployment id -> number of its entries in the list
- `ecs-deploy:outbox:lock`          one deliverer at a time, across all processes
- `ecs-deploy:outbox:ts:{entry}`    the real ts of a delivered post, for the placeholder below
Entries keep only what cannot be re-read at delivery: channel and thread ts come from the stored
deployment when the entry is delivered, and the root message is rendered from the current record.
A post that had to be queued returns the placeholder ts `outbox:{entry id}`; `update()` and
`decide()` accept it and resolve it to the real ts once the post was delivered.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

import redis
from pydantic import BaseModel, Field, ValidationError
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block, ContextBlock, MarkdownTextObject

from bot.slack import is_transient
from bot.views.messages import Message, root_message
from core.logs import get_logger
from core.models import STOPPED_STATUSES, Deployment, DeploymentStatus, DeploymentStopped
from core.store import PREFIX, DeploymentNotFound, DeploymentStore

log = get_logger(__name__)
MESSAGE_TTL_SECONDS = 30 * 24 * 3600
GONE_MESSAGE_ERRORS = {"message_not_found", "cant_update_message", "edit_window_closed"}

OUTBOX_KEY = f"{PREFIX}outbox"
OUTBOX_STATE_KEY = f"{PREFIX}outbox:state"
OUTBOX_PENDING_KEY = f"{PREFIX}outbox:pending"
OUTBOX_LOCK_KEY = f"{PREFIX}outbox:lock"
OUTBOX_MAX_ATTEMPTS = 30
OUTBOX_BACKOFF_FIRST = 2.0  # seconds before the first re-delivery; doubles up to OUTBOX_BACKOFF_MAX
OUTBOX_BACKOFF_MAX = 120.0  # so 30 attempts span about 50 minutes of outage
OUTBOX_BATCH = 200
PLACEHOLDER_PREFIX = "outbox:"

EntryKind = Literal["root", "refresh_root", "post", "update", "decide"]


def _message_key(deployment_id: str, ts: str) -> str:
    return f"{PREFIX}message:{deployment_id}:{ts}"


def _placeholder_key(entry_id: str) -> str:
    return f"{PREFIX}outbox:ts:{entry_id}"


def decided_blocks(blocks: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """The message without its buttons, and what was decided in their place."""
    kept = [block for block in blocks if block.get("type") != "actions"]
    decision = ContextBlock(block_id="decision", elements=[MarkdownTextObject(text=text[:2900])]).to_dict()
    return [*kept[:49], decision]


class OutboxEntry(BaseModel):
    """One message Slack could not take yet."""

    id: str = Field(default_factory=lambda: secrets.token_hex(6))
    deployment_id: str
    kind: EntryKind
    ts: str | None = None  # update/decide: the message (may be a placeholder)
    text: str = ""
    blocks: list[dict[str, Any]] = Field(default_factory=list)
    remember: bool = False
    created_at: float = Field(default_factory=time.time)

    @property
    def placeholder(self) -> str:
        return PLACEHOLDER_PREFIX + self.id


class Outcome(StrEnum):
    SENT = "sent"
    RETRY = "retry"  # transient: keep it for later
    DROP = "drop"  # permanent: logged, not retried


@dataclass
class _Result:
    outcome: Outcome
    ts: str | None = None
    error: str = ""


class Notifier:
    def __init__(self, client: WebClient, store: DeploymentStore) -> None:
        self.client = client
        self.store = store

    @property
    def redis(self) -> redis.Redis:
        return self.store.redis

    # -- the thread ---------------------------------------------------------------------------

    def ensure_thread(self, deployment: Deployment) -> Deployment:
        """Post the root message once (a Redis lock keeps two processes from both posting it).
        If Slack cannot take it now, it is queued and the deployment comes back without thread_ts."""
        if deployment.thread_ts:
            return deployment
        if self._pending(deployment.id):
            self._queue(OutboxEntry(deployment_id=deployment.id, kind="root"))
            return self.store.get(deployment.id)
        result = self._send(OutboxEntry(deployment_id=deployment.id, kind="root"))
        if result.outcome is Outcome.RETRY:
            self._queue(OutboxEntry(deployment_id=deployment.id, kind="root"))
        try:
            return self.store.get(deployment.id)
        except redis.RedisError:
            return deployment

    def refresh_root(self, deployment: Deployment) -> None:
        if not deployment.thread_ts and not self._pending(deployment.id):
            return
        self._live(OutboxEntry(deployment_id=deployment.id, kind="refresh_root"))

    def set_status(
        self,
        deployment_id: str,
        status: DeploymentStatus,
        detail: str = "",
        *,
        only_from: frozenset[DeploymentStatus] | None = None,
    ) -> Deployment:
        """Move to `status`, unless the deployment was cancelled, rejected or interrupted meanwhile, or
        (with `only_from`) is not in a status this move may start from: a late or duplicate job stops
        quietly (DeploymentStopped) instead of moving the deployment on."""

        def change(d: Deployment) -> Deployment | None:
            if d.status in STOPPED_STATUSES or (
                d.status is DeploymentStatus.INTERRUPTED and status is not d.status
            ):
                return None
            if only_from is not None and d.status not in only_from and d.status is not status:
                return None
            return d.with_status(status, detail)

        deployment, changed = self.store.transition(deployment_id, change)
        if not changed:
            raise DeploymentStopped(deployment.status.value)
        had_thread = bool(deployment.thread_ts)
        deployment = self.ensure_thread(deployment)
        if had_thread or self._pending(deployment.id):
            self.refresh_root(deployment)
        return deployment

    def post(self, deployment: Deployment, message: Message, *, remember: bool = False) -> str | None:
        """Post into the thread; returns the message ts (or an `outbox:` placeholder when the post had
        to wait for Slack; None when Slack refused it for good). `remember` keeps the blocks so
        `decide()` can later swap its buttons."""
        entry = OutboxEntry(
            deployment_id=deployment.id,
            kind="post",
            text=message.text,
            blocks=message.block_dicts(),
            remember=remember,
        )
        return self._live(entry, deployment)

    def decide(self, deployment: Deployment, ts: str | None, text: str) -> None:
        """Replace a remembered message's buttons by `text` (what was decided, by whom)."""
        if not ts:
            return
        self._live(OutboxEntry(deployment_id=deployment.id, kind="decide", ts=ts, text=text), deployment)

    def update(self, deployment: Deployment, ts: str | None, message: Message) -> str | None:
        """Update a thread message in place; if it is gone (deleted), post a new one."""
        kind: EntryKind = "update" if ts else "post"
        entry = OutboxEntry(
            deployment_id=deployment.id, kind=kind, ts=ts, text=message.text, blocks=message.block_dicts()
        )
        result = self._live(entry, deployment)
        return result if result is not None else ts

    def upload(
        self, deployment: Deployment, *, filename: str, content: str, title: str, comment: str | None = None
    ) -> bool:
        """Attach a file to the thread. Not kept in the outbox (files can be large): a failed upload
        is logged, and the run it belongs to goes on."""
        deployment = self.ensure_thread(deployment)
        if not deployment.thread_ts:
            log.warning("slack_upload_skipped", deployment_id=deployment.id, reason="no thread yet")
            return False
        response, _ = self._call(
            "files_upload_v2",
            deployment.id,
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

    # -- the outbox ---------------------------------------------------------------------------

    def outbox_size(self) -> int:
        return int(self.redis.llen(OUTBOX_KEY))

    def deliver_outbox(self, *, deployment_id: str | None = None, force: bool = False) -> int:
        """Deliver what waits in the outbox, oldest first; returns how many entries were delivered.

        One deliverer at a time (a Redis lock; others return 0). Entries of one deployment go in
        order: a deployment's later entries wait while an earlier one is not delivered. A transient
        failure ends the round (Slack is down: try again later). `force` ignores the backoff."""
        try:
            if not self.redis.llen(OUTBOX_KEY):
                return 0
            lock = self.redis.lock(OUTBOX_LOCK_KEY, timeout=300)
            if not lock.acquire(blocking=False):
                return 0
        except redis.RedisError as exc:
            log.warning("outbox_unavailable", error=type(exc).__name__)
            return 0
        try:
            return self._deliver_round(deployment_id, force)
        except redis.RedisError as exc:
            log.warning("outbox_unavailable", error=type(exc).__name__)
            return 0
        finally:
            with contextlib.suppress(redis.RedisError):
                lock.release()

    def _deliver_round(self, only: str | None, force: bool) -> int:
        raws = self.redis.lrange(OUTBOX_KEY, 0, OUTBOX_BATCH - 1)
        entries: list[tuple[str, OutboxEntry]] = []
        for item in raws:
            raw = item.decode() if isinstance(item, bytes) else str(item)
            try:
                entries.append((raw, OutboxEntry.model_validate_json(raw)))
            except ValidationError:
                log.error("outbox_entry_unreadable", entry=str(raw)[:200])
                self.redis.lrem(OUTBOX_KEY, 1, raw)
        delivered = 0
        blocked: set[str] = set()
        now = time.time()
        for index, (raw, entry) in enumerate(entries):
            if (only and entry.deployment_id != only) or entry.deployment_id in blocked:
                continue
            if _superseded(entry, [later for _, later in entries[index + 1 :]]):
                self._remove(raw, entry)
                continue
            attempts, next_at = self._state(entry.id)
            if not force and next_at > now:
                blocked.add(entry.deployment_id)
                continue
            result = self._send(entry)
            if result.outcome is Outcome.RETRY:
                attempts += 1
                if attempts >= OUTBOX_MAX_ATTEMPTS:
                    log.error(
                        "outbox_gave_up",
                        deployment_id=entry.deployment_id,
                        kind=entry.kind,
                        attempts=attempts,
                        error=result.error,
                    )
                    self._remove(raw, entry)
                    continue
                delay = min(OUTBOX_BACKOFF_MAX, OUTBOX_BACKOFF_FIRST * 2 ** (attempts - 1))
                self.redis.hset(
                    OUTBOX_STATE_KEY, entry.id, json.dumps({"attempts": attempts, "next_at": now + delay})
                )
                log.info(
                    "outbox_retry_later",
                    deployment_id=entry.deployment_id,
                    kind=entry.kind,
                    attempts=attempts,
                    error=result.error,
                )
                break
            self._remove(raw, entry)
            if result.outcome is Outcome.SENT:
                delivered += 1
                log.info("outbox_delivered", deployment_id=entry.deployment_id, kind=entry.kind)
        return delivered

    def _live(self, entry: OutboxEntry, deployment: Deployment | None = None) -> str | None:
        """Send now, or queue behind the deployment's waiting messages. Returns the ts of a post or
        update (a placeholder when queued)."""
        if self._pending(entry.deployment_id):
            self._queue(entry)
            self.deliver_outbox(deployment_id=entry.deployment_id)
            if entry.kind == "post":
                return self._resolve(entry.placeholder) or entry.placeholder
            return entry.ts
        result = self._send(entry, deployment)
        if result.outcome is Outcome.RETRY:
            self._queue(entry)
            return entry.placeholder if entry.kind == "post" else entry.ts
        return result.ts

    def _pending(self, deployment_id: str) -> bool:
        try:
            return int(self.redis.hget(OUTBOX_PENDING_KEY, deployment_id) or 0) > 0
        except redis.RedisError:
            return False

    def _queue(self, entry: OutboxEntry) -> None:
        try:
            with self.redis.pipeline(transaction=True) as pipe:
                pipe.rpush(OUTBOX_KEY, entry.model_dump_json())
                pipe.hincrby(OUTBOX_PENDING_KEY, entry.deployment_id, 1)
                pipe.hset(
                    OUTBOX_STATE_KEY,
                    entry.id,
                    json.dumps({"attempts": 1, "next_at": time.time() + OUTBOX_BACKOFF_FIRST}),
                )
                pipe.execute()
            log.info("outbox_queued", deployment_id=entry.deployment_id, kind=entry.kind)
        except redis.RedisError as exc:
            log.error("outbox_queue_failed", deployment_id=entry.deployment_id, error=type(exc).__name__)

    def _remove(self, raw: str, entry: OutboxEntry) -> None:
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.lrem(OUTBOX_KEY, 1, raw)
            pipe.hdel(OUTBOX_STATE_KEY, entry.id)
            pipe.hincrby(OUTBOX_PENDING_KEY, entry.deployment_id, -1)
            left = pipe.execute()[2]
        if int(left) <= 0:
            self.redis.hdel(OUTBOX_PENDING_KEY, entry.deployment_id)

    def _state(self, entry_id: str) -> tuple[int, float]:
        raw = self.redis.hget(OUTBOX_STATE_KEY, entry_id)
        if not raw:
            return 0, 0.0
        state = json.loads(raw)
        return int(state.get("attempts", 0)), float(state.get("next_at", 0.0))

    def _resolve(self, ts: str | None) -> str | None:
        """A real ts for `ts`: itself, or what its placeholder became (None while undelivered)."""
        if not ts or not ts.startswith(PLACEHOLDER_PREFIX):
            return ts
        raw = self.redis.get(_placeholder_key(ts.removeprefix(PLACEHOLDER_PREFIX)))
        return raw.decode() if isinstance(raw, bytes) else raw

    # -- sending one entry --------------------------------------------------------------------

    def _send(self, entry: OutboxEntry, deployment: Deployment | None = None) -> _Result:
        try:
            if entry.kind == "root":
                return self._send_root(entry.deployment_id)
            if entry.kind == "refresh_root":
                return self._send_refresh_root(entry.deployment_id)
            if entry.kind == "decide":
                return self._send_decide(entry, deployment or self.store.get(entry.deployment_id))
            if entry.kind == "update":
                return self._send_update(entry, deployment or self.store.get(entry.deployment_id))
            return self._send_post(entry, deployment)
        except DeploymentNotFound:
            return _Result(Outcome.DROP, error="deployment_not_found")
        except redis.RedisError as exc:  # includes a root-message lock that could not be taken
            log.warning("slack_send_deferred", deployment_id=entry.deployment_id, error=type(exc).__name__)
            return _Result(Outcome.RETRY, error=type(exc).__name__)

    def _call(self, method: str, deployment_id: str = "", **kwargs: Any) -> tuple[Any, _Result | None]:
        """Call Slack; (response, None) on success, else (None, what to do with the entry). Never
        raises for a Slack or network fault."""
        try:
            response = getattr(self.client, method)(**{k: v for k, v in kwargs.items() if v is not None})
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
            return None, _Result(Outcome.RETRY if transient else Outcome.DROP, error=error)
        except (OSError, redis.RedisError) as exc:
            log.warning(
                "slack_call_failed",
                deployment_id=deployment_id,
                method=method,
                error=type(exc).__name__,
                will_retry=True,
            )
            return None, _Result(Outcome.RETRY, error=type(exc).__name__)

    def _send_root(self, deployment_id: str) -> _Result:
        lock = self.redis.lock(f"{PREFIX}lock:root:{deployment_id}", timeout=60, blocking_timeout=60)
        with lock:
            current = self.store.get(deployment_id)
            if current.thread_ts:
                return _Result(Outcome.SENT, current.thread_ts)
            message = root_message(current)
            response, failed = self._call(
                "chat_postMessage",
                deployment_id,
                channel=current.channel_id,
                text=message.text,
                blocks=message.block_dicts(),
                unfurl_links=False,
            )
            if failed:
                return failed
            ts = str(response["ts"])
            channel = str(response.get("channel") or current.channel_id)
            self.store.update(
                deployment_id, lambda d: d.model_copy(update={"thread_ts": ts, "channel_id": channel})
            )
            return _Result(Outcome.SENT, ts)

    def _send_refresh_root(self, deployment_id: str) -> _Result:
        current = self.store.get(deployment_id)
        if not current.thread_ts:
            return self._send_root(deployment_id)  # renders the current status anyway
        message = root_message(current)
        _, failed = self._call(
            "chat_update",
            deployment_id,
            channel=current.channel_id,
            ts=current.thread_ts,
            text=message.text,
            blocks=message.block_dicts(),
        )
        return failed or _Result(Outcome.SENT, current.thread_ts)

    def _send_post(self, entry: OutboxEntry, deployment: Deployment | None) -> _Result:
        current = deployment if deployment is not None and deployment.thread_ts else None
        if current is None:
            root = self._send_root(entry.deployment_id)
            if root.outcome is not Outcome.SENT:
                return root
            current = self.store.get(entry.deployment_id)
        response, failed = self._call(
            "chat_postMessage",
            entry.deployment_id,
            channel=current.channel_id,
            thread_ts=current.thread_ts,
            text=entry.text,
            blocks=entry.blocks,
            unfurl_links=False,
        )
        if failed:
            return failed
        ts = str(response["ts"])
        with self.redis.pipeline(transaction=False) as pipe:
            if entry.remember:
                pipe.set(
                    _message_key(entry.deployment_id, ts), json.dumps(entry.blocks), ex=MESSAGE_TTL_SECONDS
                )
            pipe.set(_placeholder_key(entry.id), ts, ex=MESSAGE_TTL_SECONDS)
            pipe.execute()
        return _Result(Outcome.SENT, ts)

    def _send_update(self, entry: OutboxEntry, deployment: Deployment) -> _Result:
        ts = self._resolve(entry.ts)
        if ts:
            _, failed = self._call(
                "chat_update",
                deployment.id,
                channel=deployment.channel_id,
                ts=ts,
                text=entry.text,
                blocks=entry.blocks,
            )
            if failed is None:
                return _Result(Outcome.SENT, entry.ts)
            if failed.error not in GONE_MESSAGE_ERRORS:
                return (
                    failed
                    if failed.outcome is Outcome.RETRY
                    else _Result(Outcome.DROP, entry.ts, failed.error)
                )
            log.info("slack_message_gone", deployment_id=deployment.id, error=failed.error)
        # gone, or its post was never delivered: post it anew (and let the placeholder point to it)
        posted = self._send_post(entry.model_copy(update={"kind": "post"}), deployment)
        if posted.outcome is Outcome.SENT and entry.ts and entry.ts.startswith(PLACEHOLDER_PREFIX):
            self.redis.set(
                _placeholder_key(entry.ts.removeprefix(PLACEHOLDER_PREFIX)),
                str(posted.ts),
                ex=MESSAGE_TTL_SECONDS,
            )
        return posted

    def _send_decide(self, entry: OutboxEntry, deployment: Deployment) -> _Result:
        ts = self._resolve(entry.ts)
        if not ts:
            return _Result(Outcome.SENT)  # the message never reached Slack: nothing to decide
        raw = self.redis.get(_message_key(deployment.id, ts))
        blocks = json.loads(raw) if raw else []
        _, failed = self._call(
            "chat_update",
            deployment.id,
            channel=deployment.channel_id,
            ts=ts,
            text=entry.text,
            blocks=decided_blocks(blocks, entry.text),
        )
        if failed and failed.error in GONE_MESSAGE_ERRORS:
            return _Result(Outcome.SENT)
        return failed or _Result(Outcome.SENT, ts)


def _superseded(entry: OutboxEntry, later: list[OutboxEntry]) -> bool:
    """An entry made pointless by a later one: a root message that a later thread message will post
    anyway, a root refresh or an update of the same message."""
    if entry.kind == "root":
        return any(
            e.deployment_id == entry.deployment_id and e.kind in ("root", "refresh_root", "post", "update")
            for e in later
        )
    if entry.kind == "refresh_root":
        return any(e.deployment_id == entry.deployment_id and e.kind == "refresh_root" for e in later)
    if entry.kind == "update":
        return any(
            e.deployment_id == entry.deployment_id and e.kind == "update" and e.ts == entry.ts for e in later
        )
    return False
