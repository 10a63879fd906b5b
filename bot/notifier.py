"""The only code that writes to Slack.

Every deployment has one root message in the channel where it was requested; everything else goes
into that message's thread. A Slack fault while reporting never fails the work being reported, and
never makes it wait.

Every Slack write of a deployment — the root message and its refreshes, thread messages, updates in
place, decisions (buttons replaced), file uploads — is queued in the deployment's **outbox**
(bot/outbox.py) and delivered from there, in the order it was queued:
- `Notifier(..., background=True)` (the web process and the work horses) queues and returns at once;
  a deliverer thread of the process sends. Nothing that holds a Terraform state waits on Slack.
- `Notifier(...)` (the workers' maintenance, tests) queues, then delivers that deployment's outbox
  in the caller's thread (best effort: entries not yet due, or another deliverer at work, are left to
  the deliverers).
- A click's decision and announcement are queued in the same Redis transaction as the job the click
  starts (`queue_in`), so the worker's messages can never overtake them.

Slack faults, per entry (no retries inside the Slack client, see bot/slack.py):
- a rate limit (429) is waited out for as long as `Retry-After` says, by trying the entry again then
  (without blocking anybody; it does not count as a failed attempt, OUTBOX_MAX_RATE_LIMITS at most);
- a server fault, a timeout or a broken connection is retried with backoff (OUTBOX_BACKOFF_FIRST,
  doubling up to OUTBOX_BACKOFF_MAX), at most OUTBOX_MAX_ATTEMPTS times in all;
- a post or upload whose outcome is unknown (a 5xx or a dropped connection after Slack may have
  acted, or a process that died mid-call: the entry is marked *in flight* before the call) is first
  looked up in the thread (`conversations.replies`) or the channel (`conversations.history`) by the
  message metadata the bot attaches (`event_type` ecs_deploy_message, the deployment and entry ids)
  or the uploaded file's id, and only posted again if it is not there. If Slack will not let the bot
  read the conversation (a scope is missing, the bot is not a member), it is posted again and a
  warning logged;
- a permanent refusal (`channel_not_found`, `invalid_blocks`, …) is logged and dropped;
- a thread message that is gone (deleted) is posted anew instead of updated.

A post returns the placeholder ts `outbox:{entry id}` until it is delivered; `update()` and
`decide()` accept it and resolve it to the real ts at delivery. Message keys:
- `ecs-deploy:message:{deployment}:{ts}`    blocks of a remembered message (`decide` swaps its buttons)
- `ecs-deploy:outbox:ts:{entry}`            the real ts of a delivered post (the placeholder's target)
- `ecs-deploy:outbox:moved:{deployment}:{ts}` the message that replaced a deleted one
- `ecs-deploy:outbox:root:{deployment}`     when the root message was first tried (then: look it up)
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis
from redis.client import Pipeline
from redis.exceptions import LockError
from redis.lock import Lock
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.models.blocks import Block

from bot.outbox import PLACEHOLDER_PREFIX, Deliverer, Outbox, OutboxEntry
from bot.slack import TIMEOUT_SECONDS, is_ambiguous, is_transient, outbox_client
from bot.views.messages import Message, decided_blocks, root_message
from core import lifecycle
from core.lifecycle import Move
from core.logs import get_logger
from core.models import Deployment, DeploymentStopped
from storage.store import PREFIX, DeploymentNotFound, DeploymentStore

log = get_logger(__name__)
MESSAGE_TTL_SECONDS = 30 * 24 * 3600
GONE_MESSAGE_ERRORS = {"message_not_found", "cant_update_message", "edit_window_closed"}

OUTBOX_MAX_ATTEMPTS = 30
OUTBOX_BACKOFF_FIRST = 2.0  # seconds before the first re-delivery; doubles up to OUTBOX_BACKOFF_MAX
OUTBOX_BACKOFF_MAX = 120.0  # so 30 attempts span about 50 minutes of outage
OUTBOX_MAX_RATE_LIMITS = 300  # 429s of one entry before it is given up (each waits its Retry-After)
ROUND_SECONDS = 30.0  # a deliverer moves on to other deployments after this long on one
LOOKUP_PAGES = 10  # conversations.replies / .history pages read to find a post (200 messages each)
LOOKUP_SKEW_SECONDS = 600  # look back this far before an entry was queued (clocks differ)
DRAIN_SECONDS = 20.0  # a work horse delivers what it queued for at most this long (> one Slack call)
METADATA_EVENT = "ecs_deploy_message"


def _message_key(deployment_id: str, ts: str) -> str:
    return f"{PREFIX}message:{deployment_id}:{ts}"


def _placeholder_key(entry_id: str) -> str:
    return f"{PREFIX}outbox:ts:{entry_id}"


def _moved_key(deployment_id: str, ts: str) -> str:
    return f"{PREFIX}outbox:moved:{deployment_id}:{ts}"


def _root_attempt_key(deployment_id: str) -> str:
    return f"{PREFIX}outbox:root:{deployment_id}"


def _metadata(deployment_id: str, kind: str, entry_id: str = "") -> dict[str, Any]:
    """What the bot attaches to each post, to find it again after an ambiguous failure."""
    payload = {"deployment_id": deployment_id, "kind": kind}
    if entry_id:
        payload["entry_id"] = entry_id
    return {"event_type": METADATA_EVENT, "event_payload": payload}


def _payload(message: dict[str, Any]) -> dict[str, Any]:
    metadata = message.get("metadata") or {}
    if metadata.get("event_type") != METADATA_EVENT:
        return {}
    payload = metadata.get("event_payload")
    return payload if isinstance(payload, dict) else {}


class Outcome(StrEnum):
    SENT = "sent"
    RETRY = "retry"  # transient: keep it for later
    DROP = "drop"  # permanent: logged, not retried


@dataclass
class _Result:
    outcome: Outcome
    ts: str | None = None
    error: str = ""
    ambiguous: bool = False  # Slack may have done it
    retry_after: float | None = None  # Slack said when to try again


@dataclass
class _Lookup:
    ts: str | None = None  # found
    retry: _Result | None = None  # could not look now: try the entry later


@dataclass
class _Target:
    """Where an entry goes: the stored deployment, or what the entry remembers if the record is gone."""

    deployment_id: str
    channel: str
    thread_ts: str | None
    deployment: Deployment | None


class _Delivery:
    """The head entry being delivered; `save` stores its delivery state before a risky call."""

    def __init__(self, outbox: Outbox, raw: str, entry: OutboxEntry) -> None:
        self.outbox = outbox
        self.raw = raw
        self.entry = entry

    def save(self, **updates: Any) -> None:
        self.entry = self.entry.model_copy(update=updates)
        new = self.outbox.replace(self.entry.deployment_id, self.raw, self.entry, None)
        if new is not None:
            self.raw = new

    def note(self, **updates: Any) -> None:
        """Change the entry without storing it now (stored with its next due time, if it is retried)."""
        self.entry = self.entry.model_copy(update=updates)


class Notifier:
    def __init__(self, client: WebClient, store: DeploymentStore, *, background: bool = False) -> None:
        self.client = client  # with the usual retries: ephemeral messages
        self.writer = outbox_client(client)  # no retries inside the client: the outbox decides
        self.store = store
        self.outbox = Outbox(store.redis)
        self._local = threading.local()
        self._deliverer = (
            Deliverer(self._deliver_round, self._deliver_final, name="ecs-deploy outbox")
            if background
            else None
        )

    @property
    def redis(self) -> redis.Redis:
        return self.store.redis

    # -- the thread ---------------------------------------------------------------------------

    def ensure_thread(self, deployment: Deployment) -> Deployment:
        """Queue the root message (posted once; later ones update it). Returns the deployment as
        stored now: with its thread_ts once the root message is delivered."""
        if deployment.thread_ts:
            return deployment
        self._queue(self.root_entry(deployment.id))
        return self._fresh(deployment)

    def refresh_root(self, deployment: Deployment) -> None:
        """Make the root message show the deployment's current record."""
        if not deployment.thread_ts and not self._has_thread(deployment.id):
            return
        self._queue(self.root_entry(deployment.id))

    def set_status(
        self,
        deployment_id: str,
        move: Move,
        detail: str = "",
        *,
        also: Callable[[Pipeline, Deployment], object] | None = None,
    ) -> Deployment:
        """Make `move` (core.lifecycle), unless the table refuses it from the deployment's current
        status — cancelled, rejected or interrupted meanwhile, or moved on: a late or duplicate job
        stops quietly (DeploymentStopped) instead of moving the deployment on. `also` joins the move's
        transaction (the job the move starts)."""
        deployment, changed = self.store.transition(
            deployment_id, lambda d: lifecycle.attempt(d, move, detail), also=also
        )
        if not changed:
            raise DeploymentStopped(deployment.status.value)
        self._queue(self.root_entry(deployment.id))
        return self._fresh(deployment)

    def post(self, deployment: Deployment, message: Message, *, remember: bool = False) -> str | None:
        """Post into the thread; returns the message ts (an `outbox:` placeholder until it is
        delivered; None when Slack refused it for good). `remember` keeps the blocks so `decide()` can
        later swap its buttons."""
        entry = self.post_entry(deployment, message, remember=remember)
        result = (self._queue(entry) or {}).get(entry.id)
        if result is None or result.outcome is Outcome.RETRY:
            return entry.placeholder
        return result.ts if result.outcome is Outcome.SENT else None

    def decide(
        self,
        deployment: Deployment,
        ts: str | None,
        text: str,
        *,
        blocks: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        """Replace a message's buttons by `text` (what was decided, by whom). `blocks`: the message as
        it is (e.g. sent with a click); else the remembered blocks of a message the bot posted."""
        entry = self.decide_entry(deployment, ts, text, blocks=blocks)
        if entry is not None:
            self._queue(entry)

    def update(self, deployment: Deployment, ts: str | None, message: Message) -> str | None:
        """Update a thread message in place; if it is gone (deleted), post a new one. Returns the
        message's ts as far as known now."""
        if not ts:
            return self.post(deployment, message)
        entry = OutboxEntry(
            deployment_id=deployment.id,
            kind="update",
            ts=ts,
            text=message.text,
            blocks=message.block_dicts(),
            channel=deployment.channel_id,
            thread_ts=deployment.thread_ts,
        )
        result = (self._queue(entry) or {}).get(entry.id)
        return result.ts if result is not None and result.outcome is Outcome.SENT and result.ts else ts

    def upload(
        self, deployment: Deployment, *, filename: str, content: str, title: str, comment: str | None = None
    ) -> bool:
        """Attach a file to the thread, in its place among the thread's messages. False if it could
        not even be queued."""
        entry = OutboxEntry(
            deployment_id=deployment.id,
            kind="upload",
            filename=filename,
            title=title,
            text=comment or "",
            channel=deployment.channel_id,
            thread_ts=deployment.thread_ts,
        )
        return self._queue(entry, content) is not None

    # -- entries for a caller's transaction ---------------------------------------------------

    def root_entry(self, deployment_id: str) -> OutboxEntry:
        return OutboxEntry(deployment_id=deployment_id, kind="root")

    def post_entry(self, deployment: Deployment, message: Message, *, remember: bool = False) -> OutboxEntry:
        return OutboxEntry(
            deployment_id=deployment.id,
            kind="post",
            text=message.text,
            blocks=message.block_dicts(),
            remember=remember,
            channel=deployment.channel_id,
            thread_ts=deployment.thread_ts,
        )

    def decide_entry(
        self,
        deployment: Deployment,
        ts: str | None,
        text: str,
        *,
        blocks: Sequence[dict[str, Any]] | None = None,
    ) -> OutboxEntry | None:
        if not ts:
            return None
        return OutboxEntry(
            deployment_id=deployment.id,
            kind="decide",
            ts=ts,
            text=text,
            blocks=list(blocks or []),
            channel=deployment.channel_id,
            thread_ts=deployment.thread_ts,
        )

    def queue_in(self, pipe: Pipeline, *entries: OutboxEntry | None) -> None:
        """Queue entries as part of the caller's MULTI (e.g. DeploymentStore.transition(also=...)), so
        they are in the outbox before the job that transaction enqueues can post anything. Call
        `flush()` after the transaction."""
        for entry in entries:
            if entry is not None:
                self.outbox.add(pipe, entry)

    def flush(self, deployment_id: str) -> None:
        """Start delivering what was queued for the deployment (never waits, in background mode)."""
        self._flush(deployment_id)

    # -- outside a thread ---------------------------------------------------------------------

    def ephemeral(self, channel: str, user: str, text: str, blocks: Sequence[Block] | None = None) -> None:
        """A reply only the user sees (not part of a deployment's thread, so not via the outbox)."""
        self._call(
            "chat_postEphemeral",
            client=self.client,
            channel=channel,
            user=user,
            text=text,
            blocks=[b.to_dict() for b in blocks] if blocks else None,
        )

    # -- the outbox ---------------------------------------------------------------------------

    def outbox_size(self, deployment_id: str | None = None) -> int:
        return self.outbox.size(deployment_id)

    def next_due(self) -> float | None:
        """When the earliest waiting entry may be tried (unix time), None if the outbox is empty."""
        try:
            return self.outbox.next_due()
        except redis.RedisError:
            return None

    def deliver_outbox(
        self, *, deployment_id: str | None = None, force: bool = False, budget: float | None = None
    ) -> int:
        """Deliver what is due (`force`: everything, ignoring backoff), each deployment in order;
        returns how many entries were delivered. Deployments another deliverer is working on are
        skipped. `budget` bounds the time spent (seconds)."""
        try:
            self.outbox.migrate_legacy()
            ids = [deployment_id] if deployment_id else self.outbox.due(None if force else time.time())
        except redis.RedisError as exc:
            log.warning("outbox_unavailable", error=type(exc).__name__)
            return 0
        deadline = None if budget is None else time.monotonic() + budget
        delivered = 0
        for one in ids:
            if deadline is not None and time.monotonic() > deadline:
                break
            delivered += self._deliver_deployment(one, force=force, deadline=deadline)[0]
        return delivered

    def _deliver_round(self) -> float | None:
        self.deliver_outbox()
        return self.next_due()

    def _deliver_final(self, deployment_ids: Sequence[str], deadline: float) -> None:
        for one in deployment_ids:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._deliver_deployment(one, force=False, wait_lock=left, deadline=deadline)

    def _queue(self, entry: OutboxEntry, content: str | None = None) -> dict[str, _Result] | None:
        try:
            self.outbox.queue(entry, content)
        except redis.RedisError as exc:
            log.error(
                "outbox_queue_failed",
                deployment_id=entry.deployment_id,
                kind=entry.kind,
                error=type(exc).__name__,
            )
            return None
        return self._flush(entry.deployment_id)

    def _flush(self, deployment_id: str) -> dict[str, _Result]:
        if self._deliverer is not None:
            self._deliverer.kick(deployment_id)
            return {}
        return self._deliver_deployment(deployment_id, force=False)[1]

    def _deliver_deployment(
        self,
        deployment_id: str,
        *,
        force: bool,
        wait_lock: float = 0.0,
        deadline: float | None = None,
    ) -> tuple[int, dict[str, _Result]]:
        """Deliver one deployment's entries in order until one has to wait; (delivered, results)."""
        results: dict[str, _Result] = {}
        lock = self.outbox.lock(deployment_id)
        try:
            if not lock.acquire(blocking=wait_lock > 0, blocking_timeout=wait_lock or None):
                return 0, results
        except redis.RedisError as exc:
            log.warning("outbox_unavailable", error=type(exc).__name__)
            return 0, results
        delivered = 0
        end = time.monotonic() + ROUND_SECONDS
        if deadline is not None:
            end = min(end, deadline)
        self._local.lock = lock
        try:
            waiting, index, due_at = None, 0, 0.0
            while time.monotonic() < end:
                if waiting is None or index >= len(waiting.items):  # (re)read what is queued
                    waiting, index = self.outbox.waiting(deployment_id), 0
                    if waiting is None:
                        break
                    due_at = waiting.due_at
                raw, entry = waiting.items[index]
                index += 1
                if entry is None:  # unreadable: it would block the deployment for good
                    log.error("outbox_entry_unreadable", deployment_id=deployment_id, entry=raw[:200])
                    if not self.outbox.pop(deployment_id, raw, "", keep_due=True):
                        break
                    continue
                if waiting.skip[index - 1]:  # superseded; a Retry-After or backoff still holds
                    if not self.outbox.pop(deployment_id, raw, entry.id, keep_due=True):
                        break
                    results[entry.id] = _Result(Outcome.SENT, entry.ts)
                    continue
                if not force and due_at > time.time():
                    break
                delivery = _Delivery(self.outbox, raw, entry)
                result = self._send(delivery)
                results[entry.id] = result
                if result.outcome is Outcome.RETRY:
                    if self._retry_later(delivery, result):
                        break
                    due_at = 0.0  # it was given up: the next one is due now
                    continue
                if not self.outbox.pop(deployment_id, delivery.raw, entry.id):
                    break  # someone else changed the head (our lock had expired): read again later
                due_at = 0.0
                if result.outcome is Outcome.SENT:
                    delivered += 1
                    log.debug("outbox_delivered", deployment_id=deployment_id, kind=entry.kind)
        except redis.RedisError as exc:
            log.warning("outbox_unavailable", deployment_id=deployment_id, error=type(exc).__name__)
        finally:
            self._local.lock = None
            with contextlib.suppress(LockError, redis.RedisError):
                lock.release()
        return delivered, results

    def _retry_later(self, delivery: _Delivery, result: _Result) -> bool:
        """Keep the entry for a later attempt; False if it has had its attempts (then it is dropped).
        A rate limit is not a failed attempt (Slack said when to come back), but has its own bound."""
        entry = delivery.entry
        limited = result.retry_after is not None
        attempts = entry.attempts + (0 if limited else 1)
        rate_limits = entry.rate_limits + (1 if limited else 0)
        if attempts >= OUTBOX_MAX_ATTEMPTS or rate_limits >= OUTBOX_MAX_RATE_LIMITS:
            log.error(
                "outbox_gave_up",
                deployment_id=entry.deployment_id,
                kind=entry.kind,
                attempts=attempts,
                rate_limits=rate_limits,
                error=result.error,
            )
            self.outbox.pop(entry.deployment_id, delivery.raw, entry.id)
            return False
        delay = (
            result.retry_after
            if result.retry_after is not None
            else min(OUTBOX_BACKOFF_MAX, OUTBOX_BACKOFF_FIRST * 2 ** (attempts - 1))
        )
        self.outbox.replace(
            entry.deployment_id,
            delivery.raw,
            entry.model_copy(update={"attempts": attempts, "rate_limits": rate_limits}),
            time.time() + delay,  # counted from Slack's answer
        )
        log.info(
            "outbox_retry_later",
            deployment_id=entry.deployment_id,
            kind=entry.kind,
            attempts=attempts,
            error=result.error,
            in_seconds=round(delay, 1),
        )
        return True

    def _fresh(self, deployment: Deployment) -> Deployment:
        if deployment.thread_ts:
            return deployment
        try:
            return self.store.get(deployment.id)
        except (redis.RedisError, DeploymentNotFound):
            return deployment

    def _has_thread(self, deployment_id: str) -> bool:
        """A root message exists or is on its way."""
        try:
            return bool(self.outbox.size(deployment_id)) or bool(self.store.get(deployment_id).thread_ts)
        except (redis.RedisError, DeploymentNotFound):
            return False

    def _resolve(self, deployment_id: str, ts: str | None) -> str | None:
        """The real ts of the message `ts` names now: through its placeholder (None while its post is
        undelivered) and through any replacement of a deleted message."""
        for _ in range(8):
            if not ts:
                return None
            if ts.startswith(PLACEHOLDER_PREFIX):
                raw = self.redis.get(_placeholder_key(ts.removeprefix(PLACEHOLDER_PREFIX)))
                if raw is None:
                    return None
            else:
                raw = self.redis.get(_moved_key(deployment_id, ts))
                if raw is None:
                    return ts
            ts = raw.decode() if isinstance(raw, bytes) else str(raw)
        return ts

    # -- sending one entry --------------------------------------------------------------------

    def _send(self, delivery: _Delivery) -> _Result:
        entry = delivery.entry
        try:
            if entry.kind == "root":
                return self._send_root(self.store.get(entry.deployment_id))
            target = self._target(entry)
            if target is None:
                return _Result(Outcome.DROP, error="deployment_not_found")
            if entry.kind == "decide":
                return self._send_decide(delivery, target)
            if entry.kind == "update":
                return self._send_update(delivery, target)
            if entry.kind == "upload":
                return self._send_upload(delivery, target)
            return self._send_post(delivery, target)
        except DeploymentNotFound:
            return _Result(Outcome.DROP, error="deployment_not_found")

    def _target(self, entry: OutboxEntry) -> _Target | None:
        try:
            current = self.store.get(entry.deployment_id)
        except DeploymentNotFound:
            if not (entry.channel and entry.thread_ts):
                return None
            return _Target(entry.deployment_id, entry.channel, entry.thread_ts, None)
        return _Target(current.id, current.channel_id, current.thread_ts, current)

    def _call(
        self, method: str, deployment_id: str = "", *, client: WebClient | None = None, **kwargs: Any
    ) -> tuple[Any, _Result | None]:
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
            return None, _Result(
                Outcome.RETRY if transient else Outcome.DROP,
                error=error,
                ambiguous=is_ambiguous(status, error),
                retry_after=_retry_after(exc.response.headers) if status == 429 else None,
            )
        except (OSError, ValueError, SlackClientError) as exc:  # a timeout, a reset, not JSON
            log.warning(
                "slack_call_failed",
                deployment_id=deployment_id,
                method=method,
                error=type(exc).__name__,
                will_retry=True,
            )
            return None, _Result(Outcome.RETRY, error=type(exc).__name__, ambiguous=True)

    # root message

    def _send_root(self, deployment: Deployment) -> _Result:
        if not deployment.thread_ts:
            return self._post_root(deployment)[0]
        message = root_message(deployment)
        _, failed = self._call(
            "chat_update",
            deployment.id,
            channel=deployment.channel_id,
            ts=deployment.thread_ts,
            text=message.text,
            blocks=message.block_dicts(),
        )
        return failed or _Result(Outcome.SENT, deployment.thread_ts)

    def _ensure_root(self, target: _Target) -> tuple[_Result, _Target]:
        if target.thread_ts or target.deployment is None:
            return _Result(Outcome.SENT, target.thread_ts), target
        result, deployment = self._post_root(target.deployment)
        return result, _Target(deployment.id, deployment.channel_id, deployment.thread_ts, deployment)

    def _post_root(self, deployment: Deployment) -> tuple[_Result, Deployment]:
        """Post the root message once: if an earlier attempt may have landed, look for it first."""
        attempted = _root_attempt_key(deployment.id)
        if not self.redis.set(attempted, repr(time.time()), nx=True, ex=MESSAGE_TTL_SECONDS):
            since = float(_text(self.redis.get(attempted) or "0") or 0)
            found = self._lookup(
                "conversations_history",
                deployment.id,
                lambda m: (
                    _payload(m).get("deployment_id") == deployment.id and _payload(m).get("kind") == "root"
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
        response, failed = self._call(
            "chat_postMessage",
            deployment.id,
            channel=deployment.channel_id,
            text=message.text,
            blocks=message.block_dicts(),
            unfurl_links=False,
            metadata=_metadata(deployment.id, "root"),
        )
        if failed:
            if not failed.ambiguous:  # it did not land: the next attempt need not look for it
                self.redis.delete(attempted)
            return failed, deployment
        return self._root_posted(
            deployment, str(response["ts"]), str(response.get("channel") or deployment.channel_id)
        )

    def _root_posted(self, deployment: Deployment, ts: str, channel: str) -> tuple[_Result, Deployment]:
        updated = self.store.update(
            deployment.id, lambda d: d.model_copy(update={"thread_ts": ts, "channel_id": channel})
        )
        self.redis.delete(_root_attempt_key(deployment.id))
        return _Result(Outcome.SENT, ts), updated

    # thread messages

    def _send_post(self, delivery: _Delivery, target: _Target) -> _Result:
        root, target = self._ensure_root(target)
        if root.outcome is not Outcome.SENT:
            return root
        entry = delivery.entry
        if entry.in_flight:  # an earlier attempt may have landed
            found = self._lookup_in_thread(target, entry, lambda m: _payload(m).get("entry_id") == entry.id)
            if found.retry is not None:
                return found.retry
            if found.ts:
                log.info("slack_post_found", deployment_id=target.deployment_id, kind=entry.kind)
                self._posted(entry, found.ts)
                return _Result(Outcome.SENT, found.ts)
        delivery.save(in_flight=True)
        response, failed = self._call(
            "chat_postMessage",
            target.deployment_id,
            channel=target.channel,
            thread_ts=target.thread_ts,
            text=entry.text,
            blocks=entry.blocks,
            unfurl_links=False,
            metadata=_metadata(target.deployment_id, "post", entry.id),
        )
        if failed:
            if not failed.ambiguous:
                delivery.note(in_flight=False)
            return failed
        ts = str(response["ts"])
        self._posted(entry, ts)
        return _Result(Outcome.SENT, ts)

    def _posted(self, entry: OutboxEntry, ts: str) -> None:
        with self.redis.pipeline(transaction=False) as pipe:
            if entry.remember:
                pipe.set(
                    _message_key(entry.deployment_id, ts), json.dumps(entry.blocks), ex=MESSAGE_TTL_SECONDS
                )
            pipe.set(_placeholder_key(entry.id), ts, ex=MESSAGE_TTL_SECONDS)
            if entry.kind == "update" and entry.ts:  # a new message in place of one that is gone
                if entry.ts.startswith(PLACEHOLDER_PREFIX):
                    key = _placeholder_key(entry.ts.removeprefix(PLACEHOLDER_PREFIX))
                else:
                    key = _moved_key(entry.deployment_id, entry.ts)
                pipe.set(key, ts, ex=MESSAGE_TTL_SECONDS)
            pipe.execute()

    def _send_update(self, delivery: _Delivery, target: _Target) -> _Result:
        entry = delivery.entry
        ts = self._resolve(target.deployment_id, entry.ts)
        if ts and not entry.in_flight:
            _, failed = self._call(
                "chat_update",
                target.deployment_id,
                channel=target.channel,
                ts=ts,
                text=entry.text,
                blocks=entry.blocks,
            )
            if failed is None:
                return _Result(Outcome.SENT, ts)
            if failed.error not in GONE_MESSAGE_ERRORS:
                return failed if failed.outcome is Outcome.RETRY else _Result(Outcome.DROP, ts, failed.error)
            log.info("slack_message_gone", deployment_id=target.deployment_id, error=failed.error)
        # gone, or its post never reached Slack: post it anew (and let the old ts point to it)
        return self._send_post(delivery, target)

    def _send_decide(self, delivery: _Delivery, target: _Target) -> _Result:
        entry = delivery.entry
        ts = self._resolve(target.deployment_id, entry.ts)
        if not ts:
            return _Result(Outcome.SENT)  # the message never reached Slack: nothing to decide
        blocks = entry.blocks
        if not blocks:
            raw = self.redis.get(_message_key(target.deployment_id, ts))
            blocks = json.loads(raw) if raw else []
        _, failed = self._call(
            "chat_update",
            target.deployment_id,
            channel=target.channel,
            ts=ts,
            text=entry.text,
            blocks=decided_blocks(blocks, entry.text),
        )
        if failed and failed.error in GONE_MESSAGE_ERRORS:
            return _Result(Outcome.SENT)
        return failed or _Result(Outcome.SENT, ts)

    # files

    def _send_upload(self, delivery: _Delivery, target: _Target) -> _Result:
        """files.getUploadURLExternal, the bytes to the upload URL, files.completeUploadExternal into
        the thread. Only the last step shares the file; if its outcome is unknown, the thread is
        searched for the file before it is shared again."""
        root, target = self._ensure_root(target)
        if root.outcome is not Outcome.SENT:
            return root
        file_id = delivery.entry.file_id
        if file_id and delivery.entry.in_flight:
            found = self._lookup_in_thread(
                target,
                delivery.entry,
                lambda m: any(f.get("id") == file_id for f in m.get("files") or [] if isinstance(f, dict)),
            )
            if found.retry is not None:
                return found.retry
            if found.ts:
                log.info("slack_post_found", deployment_id=target.deployment_id, kind="upload")
                return _Result(Outcome.SENT, found.ts)
        if file_id:
            completed = self._complete_upload(delivery, target)
            if completed.outcome is not Outcome.DROP:
                return completed
            delivery.save(file_id=None, in_flight=False)  # Slack no longer has that file: upload again
        content = self.outbox.content(delivery.entry.id)
        if content is None:
            log.error("outbox_upload_content_missing", deployment_id=target.deployment_id)
            return _Result(Outcome.DROP, error="content_missing")
        data = content.encode("utf-8")
        response, failed = self._call(
            "files_getUploadURLExternal",
            target.deployment_id,
            filename=delivery.entry.filename,
            length=len(data),
        )
        if failed:
            return failed
        try:
            _put(str(response["upload_url"]), data)
        except (OSError, ValueError) as exc:
            log.warning(
                "slack_call_failed",
                deployment_id=target.deployment_id,
                method="file upload",
                error=type(exc).__name__,
                will_retry=True,
            )
            return _Result(Outcome.RETRY, error=type(exc).__name__)
        delivery.save(file_id=str(response["file_id"]))
        return self._complete_upload(delivery, target)

    def _complete_upload(self, delivery: _Delivery, target: _Target) -> _Result:
        entry = delivery.entry
        delivery.save(in_flight=True)
        _, failed = self._call(
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
        return _Result(Outcome.SENT, target.thread_ts)

    # looking a post up

    def _lookup_in_thread(
        self, target: _Target, entry: OutboxEntry, match: Callable[[dict[str, Any]], bool]
    ) -> _Lookup:
        return self._lookup(
            "conversations_replies",
            target.deployment_id,
            match,
            channel=target.channel,
            ts=target.thread_ts,
            oldest=f"{entry.created_at - LOOKUP_SKEW_SECONDS:.6f}",
        )

    def _lookup(
        self, method: str, deployment_id: str, match: Callable[[dict[str, Any]], bool], **kwargs: Any
    ) -> _Lookup:
        cursor: str | None = None
        for _ in range(LOOKUP_PAGES):
            if method == "conversations_replies":
                response, failed = self._call(
                    "conversations_replies",
                    deployment_id,
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                    **kwargs,
                )
            else:
                response, failed = self._call(
                    "conversations_history",
                    deployment_id,
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                    **kwargs,
                )
            if failed is not None:
                if failed.outcome is Outcome.RETRY:
                    return _Lookup(
                        retry=_Result(Outcome.RETRY, error=failed.error, retry_after=failed.retry_after)
                    )
                log.warning(
                    "outbox_lookup_unavailable",
                    deployment_id=deployment_id,
                    method=method,
                    error=failed.error,
                    consequence="posting again; it may appear twice (the bot needs channels:history /"
                    " groups:history and to be a member of the channel to check)",
                )
                return _Lookup()
            for message in response.get("messages") or []:
                if isinstance(message, dict) and match(message):
                    return _Lookup(ts=str(message.get("ts")))
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return _Lookup()


def _retry_after(headers: Any) -> float | None:
    try:
        value = (headers or {}).get("Retry-After") or (headers or {}).get("retry-after")
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _put(url: str, data: bytes) -> None:
    """The file's bytes to the URL files.getUploadURLExternal gave (Slack's documented step 2)."""
    if not url.startswith(("https://", "http://")):
        raise ValueError("not an upload URL")
    request = urllib.request.Request(url, data=data, method="POST")
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
        if response.status != 200:
            raise ValueError(f"upload answered {response.status}")
