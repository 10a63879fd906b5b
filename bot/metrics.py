"""`GET /metrics` of the web process: gauges computed from Redis at scrape time (Prometheus text format).

A custom prometheus_client Collector reads, on each scrape:
- `ecs_deploy_deployments{status}`: every deployment record in the store's index, by status (every
  status is present, 0 when none);
- `ecs_deploy_approvals_waiting` and `ecs_deploy_approval_oldest_wait_seconds`: plans waiting for an
  approval and how long the oldest has waited (since its plan was made), plus
  `ecs_deploy_approvals_waiting_seconds` (their waits summed, for an average);
- `ecs_deploy_queue_jobs{queue, state}`: RQ's queues — queued, started, scheduled, deferred, failed
  (registries are only counted, never cleaned: the workers' sweep handles dead jobs first);
- `ecs_deploy_outbox_entries`, `ecs_deploy_outbox_deployments`, `ecs_deploy_outbox_retrying` (entries
  being retried after a fault), `ecs_deploy_outbox_rate_limited` (waiting out a Slack 429) and
  `ecs_deploy_outbox_failed_attempts` (failed attempts of those entries so far);
- `ecs_deploy_redis_up`: 1 when all of the above could be read, else 0 (and nothing else).

- `ecs_deploy_environments{drift_state}`: live environments by drift state (none, drifted,
  acknowledged, unknown: core.drift.DriftState; every state is present, 0 when none);

Only counts and durations: no deployment id, user, account or name is ever a label.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import redis
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from rq import Queue

from bot.outbox import Outbox, OutboxEntry, list_key
from core.drift import DriftState, drift_state
from core.environments import EnvironmentStatus
from core.logs import get_logger
from core.models import DeploymentStatus
from storage.drift import DriftStore
from storage.environments import EnvironmentStore
from storage.queue import JOB_SERIALIZER
from storage.store import PREFIX

log = get_logger(__name__)

INDEX_KEY = f"{PREFIX}deployments"
BATCH = 500  # records read per MGET


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _age(now: float, stamp: object) -> float | None:
    if not isinstance(stamp, str):
        return None
    try:
        return max(0.0, now - datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


class BotCollector(Collector):
    """The web process's gauges, read from Redis at each scrape (see the module docstring)."""

    def __init__(self, connection: redis.Redis) -> None:
        self.redis = connection

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("ecs_deploy_redis_up", "1 if the bot's Redis could be read for this scrape.")
        try:
            families = [*self._deployments(), *self._queues(), *self._outbox(), *self._drift()]
        except redis.RedisError as exc:
            log.warning("metrics_redis_unreachable", error=type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    # -- deployments and approvals -------------------------------------------------------------

    def _records(self) -> Iterable[dict[str, Any]]:
        start = 0
        while True:
            ids = [_text(i) for i in self.redis.zrange(INDEX_KEY, start, start + BATCH - 1)]
            if not ids:
                return
            for raw in self.redis.mget([f"{PREFIX}deployment:{i}" for i in ids]):
                if raw is None:
                    continue
                try:
                    record = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    yield record
            start += BATCH

    def _deployments(self) -> list[Metric]:
        now = time.time()
        by_status: Counter[str] = Counter()
        waits: list[float] = []
        for record in self._records():
            status = str(record.get("status", ""))
            by_status[status if status in DeploymentStatus._value2member_map_ else "unknown"] += 1
            if status == DeploymentStatus.AWAITING_APPROVAL.value:
                binding = (record.get("approval") or {}).get("binding") or {}
                age = _age(now, binding.get("plan_created_at")) or _age(now, record.get("updated_at"))
                waits.append(age or 0.0)
        deployments = GaugeMetricFamily(
            "ecs_deploy_deployments", "Deployment records by status.", labels=["status"]
        )
        for status in DeploymentStatus:
            deployments.add_metric([status.value], by_status.get(status.value, 0))
        if by_status.get("unknown"):
            deployments.add_metric(["unknown"], by_status["unknown"])
        waiting = GaugeMetricFamily("ecs_deploy_approvals_waiting", "Plans waiting for an approval.")
        waiting.add_metric([], len(waits))
        oldest = GaugeMetricFamily(
            "ecs_deploy_approval_oldest_wait_seconds",
            "How long the oldest plan waiting for an approval has waited (0 when none waits).",
        )
        oldest.add_metric([], max(waits, default=0.0))
        total = GaugeMetricFamily(
            "ecs_deploy_approvals_waiting_seconds", "The waits of all plans waiting for an approval, summed."
        )
        total.add_metric([], sum(waits))
        return [deployments, waiting, oldest, total]

    # -- RQ ------------------------------------------------------------------------------------

    def _queues(self) -> list[Metric]:
        jobs = GaugeMetricFamily(
            "ecs_deploy_queue_jobs", "RQ jobs per queue and state.", labels=["queue", "state"]
        )
        for queue in Queue.all(connection=self.redis, serializer=JOB_SERIALIZER):
            jobs.add_metric([queue.name, "queued"], queue.count)
            registries = {
                "started": queue.started_job_registry,
                "scheduled": queue.scheduled_job_registry,
                "deferred": queue.deferred_job_registry,
                "failed": queue.failed_job_registry,
            }
            for state, registry in registries.items():
                jobs.add_metric([queue.name, state], registry.get_job_count(cleanup=False))
        return [jobs]

    # -- environments by drift state -----------------------------------------------------------

    def _drift(self) -> list[Metric]:
        family = GaugeMetricFamily(
            "ecs_deploy_environments", "Live environments by drift state.", labels=["drift_state"]
        )
        live = [
            e for e in EnvironmentStore(self.redis).all(limit=10_000) if e.status is EnvironmentStatus.LIVE
        ]
        records = DriftStore(self.redis).many([str(e.key) for e in live])
        states = Counter(drift_state(records.get(str(e.key))) for e in live)
        for state in DriftState:
            family.add_metric([state.value], states[state])
        return [family]

    # -- the Slack outbox ----------------------------------------------------------------------

    def _outbox(self) -> list[Metric]:
        outbox = Outbox(self.redis)
        deployments = outbox.due()
        lengths: list[int] = []
        heads: list[Any] = []
        if deployments:
            with self.redis.pipeline(transaction=False) as pipe:
                for deployment_id in deployments:
                    pipe.llen(list_key(deployment_id))
                    pipe.lindex(list_key(deployment_id), 0)
                answers = pipe.execute()
            lengths, heads = [int(n) for n in answers[0::2]], answers[1::2]
        retrying = rate_limited = failed_attempts = 0
        for raw in heads:
            if raw is None:
                continue
            try:
                entry = OutboxEntry.model_validate_json(raw)
            except ValueError:
                continue
            retrying += entry.attempts > 0
            rate_limited += entry.rate_limits > 0
            failed_attempts += entry.attempts
        values = [
            ("ecs_deploy_outbox_entries", "Slack writes waiting in the outbox.", sum(lengths)),
            ("ecs_deploy_outbox_deployments", "Deployments with Slack writes waiting.", len(deployments)),
            ("ecs_deploy_outbox_retrying", "Outbox entries being retried after a failed attempt.", retrying),
            (
                "ecs_deploy_outbox_rate_limited",
                "Outbox entries waiting out a Slack rate limit.",
                rate_limited,
            ),
            (
                "ecs_deploy_outbox_failed_attempts",
                "Failed attempts so far of the outbox entries being retried.",
                failed_attempts,
            ),
        ]
        families: list[Metric] = []
        for name, documentation, value in values:
            family = GaugeMetricFamily(name, documentation)
            family.add_metric([], value)
            families.append(family)
        return families


class WebMetrics:
    """The body and content type of `GET /metrics` (bot/web.py)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, connection: redis.Redis) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(BotCollector(connection))

    def render(self) -> bytes:
        return generate_latest(self.registry)
