"""Watching the Redis store from the web and the workers (the rules are in core/persistence.py).

At start a process says in its log whether the store keeps its data (`CONFIG GET appendonly` /
`save`), and writes or adopts the data-loss marker. Then, at every `check()` (the worker's
maintenance round; a small thread in the web process), it compares the marker:

- intact: it remembers the recent deployments and their threads (in process memory, since after a
  loss the store can no longer say which threads there were);
- missing or replaced: the store lost its data. It logs `redis_data_lost` and, when it has a notifier
  (the workers, which also write the new marker), tells every remembered thread that can still be
  reached: a notice in the thread and the root message's status replaced. One notice per thread and
  loss across all processes (a SET NX claim keyed by the new marker). The web only logs, and adopts
  the new marker once a worker wrote it.
"""

from __future__ import annotations

import threading
from typing import Literal

import redis

from bot.notifier import Notifier
from bot.views.data_loss import data_lost_notice, data_lost_root
from core.logs import get_logger
from core.models import Deployment, utcnow
from core.persistence import MarkerCheck, assess_persistence, marker_written_at, threads_to_warn
from storage.persistence import MARKER_KEY, StoreMarker, read_persistence
from storage.store import PREFIX, DeploymentStore

log = get_logger(__name__)
REMEMBERED_DEPLOYMENTS = 50
NOTICE_CLAIM_TTL_SECONDS = 7 * 24 * 3600
LOST_DETAIL = (
    "The Redis store lost its data (it restarted without persistence, or was emptied): deployments,"
    " approvals, queued steps and the audit trail written before now are gone."
)


class StoreWatch:
    def __init__(
        self, connection: redis.Redis, notifier: Notifier | None, *, role: Literal["web", "worker"]
    ) -> None:
        self.redis = connection
        self.notifier = notifier
        self.role = role
        self.store = DeploymentStore(connection)
        self.marker = StoreMarker(connection, writer=notifier is not None)
        self.remembered: list[Deployment] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> StoreWatch:
        """Log whether the store keeps its data; write or adopt the marker. Never fails the start."""
        try:
            facts = read_persistence(self.redis)
            verdict = assess_persistence(facts)
            if verdict.level == "ok":
                log.info("redis_persistence", role=self.role, detail=verdict.detail)
            elif facts.config_refused:
                log.warning("redis_persistence_unknown", role=self.role, detail=verdict.detail)
            else:
                log.warning("redis_persistence_off", role=self.role, detail=verdict.detail)
        except redis.RedisError as exc:
            log.warning("redis_persistence_unchecked", role=self.role, error=type(exc).__name__)
        try:
            self.marker.ensure()
            self._remember()
        except Exception as exc:  # Redis down, an unreadable record: the next check() tries again
            log.warning("store_watch_not_ready", role=self.role, error=type(exc).__name__)
        return self

    def check(self) -> MarkerCheck | None:
        """One round: None when Redis cannot be reached (the next round tries again), or there was no
        marker to compare with yet (after a loss, until a worker writes the new one)."""
        try:
            result = self.marker.check()
            if result is not None and result.lost:
                self._report(result)
            elif result is not None:
                self._remember()
            return result
        except redis.RedisError as exc:
            log.debug("store_check_skipped", role=self.role, error=type(exc).__name__)
            return None

    def watch_in_background(self, interval: float) -> StoreWatch:
        """`check()` every `interval` seconds from a daemon thread (for processes without their own
        maintenance loop, such as the web process)."""

        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    self.check()
                except Exception:  # the thread must outlive any fault; the next round tries again
                    log.exception("store_check_failed", role=self.role)

        self._thread = threading.Thread(target=run, name="ecs-deploy store watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=5)

    def _remember(self) -> None:
        recent = self.store.recent(limit=REMEMBERED_DEPLOYMENTS)
        raw = self.redis.get(MARKER_KEY)
        seen = raw.decode() if isinstance(raw, bytes) else raw
        if seen == self.marker.seen:  # read before a loss, not half-way through one
            self.remembered = recent

    def _report(self, result: MarkerCheck) -> None:
        threads = threads_to_warn(self.remembered, utcnow()) if self.notifier is not None else []
        log.error(
            "redis_data_lost",
            role=self.role,
            detail=LOST_DETAIL,
            marker=result.state.value,
            store_since=marker_written_at(result.previous),
            new_store_since=marker_written_at(result.current) if result.current else None,
            threads_to_tell=len(threads),
        )
        for deployment in threads:
            self._tell(deployment, result.current or result.previous)
        self.remembered = []

    def _tell(self, deployment: Deployment, marker: str) -> None:
        assert self.notifier is not None
        claim = f"{PREFIX}data-lost-notice:{marker}:{deployment.id}"
        if not self.redis.set(claim, self.role, nx=True, ex=NOTICE_CLAIM_TTL_SECONDS):
            return  # another process tells this thread
        try:
            self.notifier.post(deployment, data_lost_notice(deployment))
            self.notifier.update(deployment, deployment.thread_ts, data_lost_root(deployment))
            log.info("data_loss_told", deployment_id=deployment.id, channel=deployment.channel_id)
        except Exception:
            log.exception("data_loss_notice_failed", deployment_id=deployment.id)
