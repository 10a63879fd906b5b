"""What the delivery of an outbox entry works with: the Redis keys of delivered messages, the message
metadata a post carries (to find it again), and the state of one delivery (DeliveryOutcome,
SendResult, Lookup, Target, Delivery)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bot.outbox import Outbox, OutboxEntry
from core.models import Deployment
from storage.store import PREFIX

MESSAGE_TTL_SECONDS = 30 * 24 * 3600
GONE_MESSAGE_ERRORS = {"message_not_found", "cant_update_message", "edit_window_closed"}
METADATA_EVENT = "ecs_deploy_message"


def message_key(deployment_id: str, ts: str) -> str:
    return f"{PREFIX}message:{deployment_id}:{ts}"


def placeholder_key(entry_id: str) -> str:
    return f"{PREFIX}outbox:ts:{entry_id}"


def moved_key(deployment_id: str, ts: str) -> str:
    return f"{PREFIX}outbox:moved:{deployment_id}:{ts}"


def root_attempt_key(deployment_id: str) -> str:
    return f"{PREFIX}outbox:root:{deployment_id}"


def metadata(deployment_id: str, kind: str, entry_id: str = "") -> dict[str, Any]:
    """What the bot attaches to each post, to find it again after an ambiguous failure."""
    payload = {"deployment_id": deployment_id, "kind": kind}
    if entry_id:
        payload["entry_id"] = entry_id
    return {"event_type": METADATA_EVENT, "event_payload": payload}


def message_payload(message: dict[str, Any]) -> dict[str, Any]:
    metadata = message.get("metadata") or {}
    if metadata.get("event_type") != METADATA_EVENT:
        return {}
    payload = metadata.get("event_payload")
    return payload if isinstance(payload, dict) else {}


class DeliveryOutcome(StrEnum):
    """What became of one attempt to send an outbox entry to Slack."""

    SENT = "sent"
    RETRY = "retry"  # transient: keep it for later
    DROP = "drop"  # permanent: logged, not retried


@dataclass
class SendResult:
    outcome: DeliveryOutcome
    ts: str | None = None
    error: str = ""
    ambiguous: bool = False  # Slack may have done it
    retry_after: float | None = None  # Slack said when to try again


@dataclass
class Lookup:
    ts: str | None = None  # found
    retry: SendResult | None = None  # could not look now: try the entry later


@dataclass
class Target:
    """Where an entry goes: the stored deployment, or what the entry remembers if the record is gone."""

    deployment_id: str
    channel: str
    thread_ts: str | None
    deployment: Deployment | None


class Delivery:
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
