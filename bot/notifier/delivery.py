"""Delivering a deployment's outbox entries, in the order they were queued, one deployment at a time
per deliverer (the deployment's lock in bot/outbox.py): what is due is sent (bot/notifier/sending.py);
a transient fault keeps the entry for later (backoff, or Slack's Retry-After), within bounds."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence

import redis
from redis.exceptions import LockError

from bot.notifier.entries import Delivery, DeliveryOutcome, SendResult
from bot.notifier.sending import EntrySender
from bot.notifier.slack_calls import SlackCalls
from bot.outbox import Outbox
from core.logs import get_logger

log = get_logger(__name__)
OUTBOX_MAX_ATTEMPTS = 30
OUTBOX_BACKOFF_FIRST = 2.0  # seconds before the first re-delivery; doubles up to OUTBOX_BACKOFF_MAX
OUTBOX_BACKOFF_MAX = 120.0  # so 30 attempts span about 50 minutes of outage
OUTBOX_MAX_RATE_LIMITS = 300  # 429s of one entry before it is given up (each waits its Retry-After)
ROUND_SECONDS = 30.0  # a deliverer moves on to other deployments after this long on one
# Another process's entry is taken over once it is overdue by this long: the process that queued it is
# delivering it at that moment (a worker's post is sent before the post returns), so rounds leave it be.
TAKEOVER_SECONDS = 1.0


class OutboxDelivery:
    def __init__(
        self, outbox: Outbox, sender: EntrySender, calls: SlackCalls, *, takeover: float = TAKEOVER_SECONDS
    ) -> None:
        self.outbox = outbox
        self.sender = sender
        self.calls = calls
        self.takeover = takeover

    def next_due(self) -> float | None:
        """When the earliest waiting entry may be tried (unix time), None if the outbox is empty."""
        try:
            return self.outbox.next_due()
        except redis.RedisError:
            return None

    def next_round(self) -> float | None:
        """When a round will find an entry it may take (unix time; the earliest due entry, once it is
        overdue for another process), None if the outbox is empty."""
        next_due = self.next_due()
        return None if next_due is None else next_due + self.takeover

    def deliver_outbox(
        self,
        *,
        deployment_id: str | None = None,
        force: bool = False,
        budget: float | None = None,
        own: Sequence[str] = (),
    ) -> int:
        """Deliver what is due (`force`: everything, ignoring backoff), each deployment in order;
        returns how many entries were delivered. Deployments another deliverer is working on are
        skipped. `own`: deployments this process just queued for, delivered first; the others once
        overdue by `takeover` seconds (TAKEOVER_SECONDS). `budget` bounds the time spent (seconds)."""
        try:
            self.outbox.migrate_legacy()
            ids = [deployment_id] if deployment_id else self._due(force, own)
        except redis.RedisError as exc:
            log.warning("outbox_unavailable", error=type(exc).__name__)
            return 0
        deadline = None if budget is None else time.monotonic() + budget
        delivered = 0
        for one in ids:
            if deadline is not None and time.monotonic() > deadline:
                break
            delivered += self.deliver_deployment(one, force=force, deadline=deadline)[0]
        return delivered

    def _due(self, force: bool, own: Sequence[str]) -> list[str]:
        if force:
            return self.outbox.due(None)
        others = self.outbox.due(time.time() - self.takeover)
        return [*own, *(one for one in others if one not in own)]

    def deliver_round(self, own: Sequence[str]) -> float | None:
        """One round of a background deliverer: `own` deployments now, others when overdue; returns
        when the next entry may be taken (unix time), None if the outbox is empty."""
        self.deliver_outbox(own=own)
        return self.next_round()

    def deliver_final(self, deployment_ids: Sequence[str], deadline: float) -> None:
        for one in deployment_ids:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.deliver_deployment(one, force=False, wait_lock=left, deadline=deadline)

    def deliver_deployment(
        self,
        deployment_id: str,
        *,
        force: bool,
        wait_lock: float = 0.0,
        deadline: float | None = None,
    ) -> tuple[int, dict[str, SendResult]]:
        """Deliver one deployment's entries in order until one has to wait; (delivered, results)."""
        results: dict[str, SendResult] = {}
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
        self.calls.hold(lock)
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
                    results[entry.id] = SendResult(DeliveryOutcome.SENT, entry.ts)
                    continue
                if not force and due_at > time.time():
                    break
                delivery = Delivery(self.outbox, raw, entry)
                result = self.sender.send(delivery)
                results[entry.id] = result
                if result.outcome is DeliveryOutcome.RETRY:
                    if self._retry_later(delivery, result):
                        break
                    due_at = 0.0  # it was given up: the next one is due now
                    continue
                if not self.outbox.pop(deployment_id, delivery.raw, entry.id):
                    break  # someone else changed the head (our lock had expired): read again later
                due_at = 0.0
                if result.outcome is DeliveryOutcome.SENT:
                    delivered += 1
                    log.debug("outbox_delivered", deployment_id=deployment_id, kind=entry.kind)
        except redis.RedisError as exc:
            log.warning("outbox_unavailable", deployment_id=deployment_id, error=type(exc).__name__)
        finally:
            self.calls.hold(None)
            with contextlib.suppress(LockError, redis.RedisError):
                lock.release()
        return delivered, results

    def _retry_later(self, delivery: Delivery, result: SendResult) -> bool:
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
