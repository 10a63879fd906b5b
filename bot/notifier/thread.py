"""The thread API callers use: the root message, status moves, posts, updates in place, decisions,
uploads and ephemeral replies. Each write of a deployment is queued in its outbox (bot/outbox.py) and
delivered from there (bot/notifier/delivery.py): by a deliverer thread (`background=True`) or in the
caller's thread."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import redis
from redis.client import Pipeline
from slack_sdk import WebClient
from slack_sdk.models.blocks import Block

from bot.notifier.delivery import OutboxDelivery
from bot.notifier.entries import DeliveryOutcome, SendResult
from bot.notifier.sending import EntrySender
from bot.notifier.slack_calls import SlackCalls
from bot.outbox import Deliverer, Outbox, OutboxEntry
from bot.slack import outbox_client
from bot.views.messages import Message
from core import lifecycle
from core.lifecycle import Move
from core.logs import get_logger
from core.models import Deployment, DeploymentStopped
from storage.store import DeploymentNotFound, DeploymentStore

log = get_logger(__name__)
DRAIN_SECONDS = 20.0  # a work horse delivers what it queued for at most this long (> one Slack call)


class Notifier:
    def __init__(self, client: WebClient, store: DeploymentStore, *, background: bool = False) -> None:
        self.client = client  # with the usual retries: ephemeral messages
        self.writer = outbox_client(client)  # no retries inside the client: the outbox decides
        self.store = store
        self.outbox = Outbox(store.redis)
        self.calls = SlackCalls(self.writer)
        self.sender = EntrySender(store, self.outbox, self.calls)
        self.delivery = OutboxDelivery(self.outbox, self.sender, self.calls)
        self._deliverer = (
            Deliverer(self.delivery.deliver_round, self.delivery.deliver_final, name="ecs-deploy outbox")
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
        if result is None or result.outcome is DeliveryOutcome.RETRY:
            return entry.placeholder
        return result.ts if result.outcome is DeliveryOutcome.SENT else None

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
        return (
            result.ts if result is not None and result.outcome is DeliveryOutcome.SENT and result.ts else ts
        )

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
        self.calls.call(
            "chat_postEphemeral",
            client=self.client,
            channel=channel,
            user=user,
            text=text,
            blocks=[b.to_dict() for b in blocks] if blocks else None,
        )

    def channel_message(self, channel: str, message: Message, *, thread_ts: str | None = None) -> str | None:
        """A message that belongs to no deployment's thread (an environment's drift news, posted as a
        new message, and replies to it): sent at once with the client's own retries, not via an
        outbox. Returns its ts, None when Slack refused it."""
        response, _ = self.calls.call(
            "chat_postMessage",
            client=self.client,
            channel=channel,
            thread_ts=thread_ts,
            text=message.text,
            blocks=message.block_dicts(),
        )
        return str(response["ts"]) if response is not None and response.get("ts") else None

    # -- the outbox ---------------------------------------------------------------------------

    def outbox_size(self, deployment_id: str | None = None) -> int:
        return self.outbox.size(deployment_id)

    def next_due(self) -> float | None:
        """When the earliest waiting entry may be tried (unix time), None if the outbox is empty."""
        return self.delivery.next_due()

    def next_round(self) -> float | None:
        """When a maintenance round will find an entry it may take (unix time), None if none waits."""
        return self.delivery.next_round()

    def deliver_outbox(
        self, *, deployment_id: str | None = None, force: bool = False, budget: float | None = None
    ) -> int:
        """Deliver what is due (`force`: everything, ignoring backoff), each deployment in order;
        returns how many entries were delivered. Deployments another deliverer is working on are
        skipped. `budget` bounds the time spent (seconds)."""
        return self.delivery.deliver_outbox(deployment_id=deployment_id, force=force, budget=budget)

    def _queue(self, entry: OutboxEntry, content: str | None = None) -> dict[str, SendResult] | None:
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

    def _flush(self, deployment_id: str) -> dict[str, SendResult]:
        if self._deliverer is not None:
            self._deliverer.kick(deployment_id)
            return {}
        return self.delivery.deliver_deployment(deployment_id, force=False)[1]

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
