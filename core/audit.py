"""The audit trail: who did what to which deployment, when, for which plan.

Storage model: one Redis stream `ecs-deploy:audit` (XADD, entry ids are millisecond timestamps, so
`--since` is a range read); each entry holds one JSON-encoded AuditEvent. Redis persistence keeps it
across restarts. Events carry ids, names and decisions — never credentials, tokens or plan values —
and every string passes the same redaction as the logs.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import redis
from pydantic import BaseModel, Field

from core.logs import get_logger, redact_text
from core.models import utcnow
from core.store import PREFIX

STREAM = f"{PREFIX}audit"
MAX_ENTRIES = 1_000_000
MAX_TEXT = 500
log = get_logger(__name__)

Scalar = str | int | float | bool | None


class AuditEvent(BaseModel):
    at: datetime = Field(default_factory=utcnow)
    event: str
    deployment_id: str
    actor: str  # a Slack user id, or "worker" / "system"
    plan_sha256: str | None = None
    detail: dict[str, Scalar] = Field(default_factory=dict)


def _clean(value: Any) -> Scalar:
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact_text(str(value))[:MAX_TEXT]


def _field(fields: Any, name: str) -> Any:
    return fields.get(name.encode()) or fields.get(name)


class AuditTrail:
    def __init__(self, connection: redis.Redis) -> None:
        self.redis = connection

    def record(
        self, event: str, deployment_id: str, actor: str, *, plan_sha256: str | None = None, **detail: Any
    ) -> None:
        """Append one event. An audit write never breaks the action it records: failures are logged."""
        entry = AuditEvent(
            event=event,
            deployment_id=deployment_id,
            actor=actor,
            plan_sha256=plan_sha256,
            detail={key: _clean(value) for key, value in detail.items()},
        )
        try:
            self.redis.xadd(STREAM, {"event": entry.model_dump_json()}, maxlen=MAX_ENTRIES, approximate=True)
        except redis.RedisError as exc:
            log.error(
                "audit_write_failed", audit_event=event, deployment_id=deployment_id, error=type(exc).__name__
            )

    def export(self, since: datetime | None = None) -> Iterator[AuditEvent]:
        start = f"{int(since.timestamp() * 1000)}-0" if since else "-"
        while True:
            entries = self.redis.xrange(STREAM, min=start, max="+", count=1000)
            if not entries:
                return
            for _entry_id, fields in entries:
                raw = _field(fields, "event")
                if raw is not None:
                    yield AuditEvent.model_validate_json(raw)
            last = entries[-1][0]
            last_id = last.decode() if isinstance(last, bytes) else str(last)
            millis, _, seq = last_id.partition("-")
            start = f"{millis}-{int(seq) + 1}"

    def for_deployment(self, deployment_id: str) -> list[AuditEvent]:
        return [event for event in self.export() if event.deployment_id == deployment_id]
