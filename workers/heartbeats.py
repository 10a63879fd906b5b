"""The heartbeats the sweeper (workers/sweeper.py) judges by: their bounds (HEARTBEAT_INTERVAL,
DEAD_AFTER, SWEEP_INTERVAL), their keys — a worker's `ecs-deploy:alive:worker:{name}`, a job's
`ecs-deploy:alive:job:{job id}`, when each last beat `ecs-deploy:lastbeat:…`, the claim of a dead
job — and the thread that keeps one alive."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from datetime import datetime

import redis

from core.logs import get_logger
from core.models import utcnow
from core.settings import Settings
from storage.locks import interrupted_key, job_heartbeat_key
from storage.store import PREFIX

log = get_logger(__name__)

LAST_BEAT_TTL_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class Bounds:
    heartbeat_interval: float = 5.0
    dead_after: float = 45.0
    sweep_interval: float = 15.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Bounds:
        return cls(
            heartbeat_interval=settings.heartbeat_interval_seconds,
            dead_after=settings.dead_after_seconds,
            sweep_interval=settings.sweep_interval_seconds,
        )

    @property
    def detection_bound(self) -> float:
        """The longest a killed job stays unreported (while at least one worker is alive)."""
        return self.dead_after + self.sweep_interval + self.heartbeat_interval


def worker_beat_key(worker_name: str) -> str:
    return f"{PREFIX}alive:worker:{worker_name}"


def job_beat_key(job_id: str) -> str:
    return job_heartbeat_key(job_id)


def claim_key(job_id: str) -> str:
    return interrupted_key(job_id)


def last_beat_key(key: str) -> str:
    """When the heartbeat `key` last beat (ISO time; kept a week, after the beat itself expired)."""
    return key.replace(f"{PREFIX}alive:", f"{PREFIX}lastbeat:", 1)


def last_beat(connection: redis.Redis, key: str) -> datetime | None:
    try:
        raw = connection.get(last_beat_key(key))
    except redis.RedisError:
        return None
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw.decode() if isinstance(raw, bytes) else str(raw))
    except ValueError:
        return None


class Heartbeat:
    """Keeps one key alive (TTL `dead_after`) from a daemon thread until stopped; deletes it then."""

    def __init__(self, connection: redis.Redis, key: str, bounds: Bounds, value: str = "1") -> None:
        self.redis = connection
        self.key = key
        self.bounds = bounds
        self.value = value
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat {key}", daemon=True)

    def beat(self) -> None:
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(self.key, self.value, px=int(self.bounds.dead_after * 1000))
                pipe.set(last_beat_key(self.key), utcnow().isoformat(), ex=LAST_BEAT_TTL_SECONDS)
                pipe.execute()
        except redis.RedisError as exc:
            log.warning("heartbeat_failed", key=self.key, error=type(exc).__name__)

    def start(self) -> Heartbeat:
        self.beat()
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.bounds.heartbeat_interval):
            self.beat()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        with contextlib.suppress(redis.RedisError):
            self.redis.delete(self.key)
