"""The audit trail: who did what to which deployment, when, for which plan.

Storage model: one Redis stream `ecs-deploy:audit` (XADD, entry ids are millisecond timestamps, so
`--since` is a range read); each entry holds one JSON-encoded AuditEvent. Redis persistence keeps it
across restarts. Events carry ids, names and decisions — never credentials, tokens or plan values —
and every string passes the same redaction as the logs.

Retention: the trail is never cut at a length. Entries older than the retention period
(ECS_DEPLOY_AUDIT_RETENTION_DAYS, default 400) are removed — at most once an hour, by whichever
process records an event then — and the removal is recorded in the trail itself as an
`audit_trimmed` event (how many, older than when), in the same atomic step (a Lua script).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import redis
from pydantic import BaseModel, Field

from core.logs import get_logger, redact_text
from core.models import utcnow
from storage.store import PREFIX

STREAM = f"{PREFIX}audit"
MAX_TEXT = 500
DEFAULT_RETENTION_DAYS = 400
TRIM_GATE = f"{PREFIX}audit:trim-checked"  # set while a recent retention check covers every process
TRIM_EVERY_SECONDS = 3600
REMOVED_PLACEHOLDER = "__REMOVED__"
# Remove entries older than ARGV[1] (an entry id) and, if any went, append ARGV[2] (the
# audit_trimmed event) with the number removed put in place of the placeholder: both or neither.
TRIM_SCRIPT = f"""
local removed = redis.call('XTRIM', KEYS[1], 'MINID', ARGV[1])
if removed > 0 then
  local event = string.gsub(ARGV[2], '"{REMOVED_PLACEHOLDER}"', tostring(removed), 1)
  redis.call('XADD', KEYS[1], '*', 'event', event)
end
return removed
"""
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
    def __init__(self, connection: redis.Redis, *, retention_days: int = DEFAULT_RETENTION_DAYS) -> None:
        if retention_days < 1:
            raise ValueError("the audit retention is at least one day")
        self.redis = connection
        self.retention = timedelta(days=retention_days)
        self._next_check = 0.0  # monotonic time of this process's next look at the trim gate

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
            self.redis.xadd(STREAM, {"event": entry.model_dump_json()})
        except redis.RedisError as exc:
            log.error(
                "audit_write_failed", audit_event=event, deployment_id=deployment_id, error=type(exc).__name__
            )
            return
        self._trim_now_and_then()

    def _trim_now_and_then(self) -> None:
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + TRIM_EVERY_SECONDS
        try:
            if self.redis.set(TRIM_GATE, "1", nx=True, ex=TRIM_EVERY_SECONDS):
                self.trim()
        except redis.RedisError as exc:
            log.error("audit_trim_failed", error=type(exc).__name__)

    def trim(self, now: datetime | None = None) -> int:
        """Remove the entries older than the retention period; if any were removed, record that in
        the trail (atomically). Returns how many were removed."""
        cutoff = (now or utcnow()) - self.retention
        trimmed = AuditEvent(
            event="audit_trimmed",
            deployment_id="-",
            actor="system",
            detail={
                "removed": REMOVED_PLACEHOLDER,
                "older_than": cutoff.isoformat(),
                "retention_days": self.retention.days,
            },
        )
        cutoff_id = f"{max(0, int(cutoff.timestamp() * 1000))}-0"
        removed = int(self.redis.eval(TRIM_SCRIPT, 1, STREAM, cutoff_id, trimmed.model_dump_json()))
        if removed:
            log.info("audit_trimmed", removed=removed, older_than=cutoff.isoformat())
        return removed

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
