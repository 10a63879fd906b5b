"""Redis's side of the persistence checks: reading CONFIG/INFO into PersistenceFacts, and the marker
key that shows whether the store lost its data (rules in core/persistence.py).

Storage model: `ecs-deploy:store-marker` holds the marker written when a process first found the
store without one.
"""

from __future__ import annotations

import redis

from core.persistence import MarkerCheck, MarkerState, PersistenceFacts, marker_state, new_marker
from storage.store import PREFIX

MARKER_KEY = f"{PREFIX}store-marker"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_persistence(connection: redis.Redis) -> PersistenceFacts:
    """Ask Redis. A refused CONFIG (renamed away, or denied by an ACL) falls back to INFO's
    `aof_enabled`; connection errors propagate."""
    try:
        appendonly = connection.config_get("appendonly")
        save = connection.config_get("save")
    except redis.ResponseError as exc:
        refused = str(exc).strip()[:200] or type(exc).__name__
        try:
            enabled = connection.info("persistence").get("aof_enabled")
        except redis.ResponseError:
            enabled = None
        return PersistenceFacts(
            appendonly=None if enabled is None else bool(int(enabled)), config_refused=refused
        )
    raw_aof = appendonly.get("appendonly")
    raw_save = save.get("save")
    return PersistenceFacts(
        appendonly=None if raw_aof is None else _text(raw_aof).lower() == "yes",
        save=None if raw_save is None else _text(raw_save),
    )


class StoreMarker:
    """The data-loss marker, as one process sees it (see the module docstring).

    Every process writes it at start if the store has none. After a loss only a `writer` writes the
    new one (the workers: the notices to the threads are keyed by it); the others adopt it when it
    appears, and until then stay quiet, so a loss is reported once per process."""

    def __init__(self, connection: redis.Redis, *, writer: bool = True) -> None:
        self.redis = connection
        self.writer = writer
        self.seen: str | None = None

    def ensure(self) -> str:
        """Write the marker if the store has none; remember the store's marker. Call at start."""
        self.seen = self._current_or_new()
        return self.seen

    def check(self) -> MarkerCheck | None:
        """Compare the store's marker with the remembered one. None when there was nothing to
        compare with (at start it could not be read, or a loss was reported and no new marker is
        there yet): the store's marker, if any, is remembered from now on."""
        raw = self.redis.get(MARKER_KEY)
        current = None if raw is None else _text(raw)
        if self.seen is None:
            self.seen = self._current_or_new() if current is None and self.writer else current
            return None
        state = marker_state(self.seen, current)
        previous = self.seen
        if state is not MarkerState.INTACT:
            self.seen = self._current_or_new() if current is None and self.writer else current
        return MarkerCheck(state=state, previous=previous, current=self.seen)

    def _current_or_new(self) -> str:
        while True:
            self.redis.set(MARKER_KEY, new_marker(), nx=True)
            raw = self.redis.get(MARKER_KEY)
            if raw is not None:  # else deleted between SET NX and GET: write it again
                return _text(raw)
