"""Does the Redis store keep its data, and has it lost it?

Everything the bot knows lives in Redis, so a Redis without persistence loses every deployment,
approval and audit event when it restarts. Two questions, each a pure rule with a small adapter:

- **Is persistence on?** `assess_persistence()` judges what Redis reports (`CONFIG GET appendonly` /
  `save`, or only `INFO persistence` when a managed Redis refuses CONFIG); `read_persistence()` asks.
  `rdb_last_save_time` proves nothing: Redis sets it at start even with `save ""`.
- **Was the data lost?** A marker key is written once per store; every process remembers the value
  it found at start. Finding it missing or replaced later (after Redis came back) means the store
  lost its data while the process ran: `marker_state()` decides, `StoreMarker` reads and writes it
  (after a loss only the workers write the new one).
  `threads_to_warn()` picks the deployments whose Slack threads should hear about it.

Storage model:
- `ecs-deploy:store-marker`  "<UTC time written>/<random>", written with SET NX by the first process
  that starts on an empty store, or by the first worker that finds it gone; never expires, never
  overwritten while present.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel

from core.models import Deployment, utcnow

RECENTLY_FINISHED = timedelta(hours=24)


# -- is persistence on? ------------------------------------------------------------------------


class PersistenceFacts(BaseModel):
    """What a Redis says about its persistence; None where it could not be read."""

    appendonly: bool | None = None
    save: str | None = None  # the `save` parameter: "" (off) or "<seconds> <changes> …"
    config_refused: str | None = None  # the error when CONFIG GET is refused (managed Redis, ACL)


class PersistenceVerdict(BaseModel):
    level: Literal["ok", "warn"]
    detail: str


def save_points(save: str) -> list[tuple[int, int]]:
    """The snapshot rules of a `save` value: "3600 1 300 100" → [(3600, 1), (300, 100)]."""
    parts = save.split()
    points = []
    for seconds, changes in zip(parts[::2], parts[1::2], strict=False):
        if seconds.isdigit() and changes.isdigit() and int(seconds) > 0 and int(changes) > 0:
            points.append((int(seconds), int(changes)))
    return points


def assess_persistence(facts: PersistenceFacts) -> PersistenceVerdict:
    """Append-only file on: ok. Only RDB snapshots: a warning (changes since the last snapshot are
    lost on a crash). Neither, or unknown: a warning that says what to do."""
    points = save_points(facts.save or "")
    snapshots = "RDB snapshots (save " + " ".join(f"{s} {c}" for s, c in points) + ")" if points else ""
    if facts.appendonly:
        source = " (CONFIG GET refused; INFO persistence says aof_enabled:1)" if facts.config_refused else ""
        return PersistenceVerdict(
            level="ok",
            detail="persistence on: append-only file" + (f" and {snapshots}" if snapshots else "") + source,
        )
    if facts.config_refused:
        aof = "" if facts.appendonly is None else " INFO persistence says the append-only file is off, and"
        return PersistenceVerdict(
            level="warn",
            detail=(
                f"this Redis refuses CONFIG GET ({facts.config_refused}), as managed services such as"
                f" ElastiCache or Memorystore do, or its ACL does:{aof} its snapshot settings cannot be"
                " read. Make sure persistence (append-only file, or snapshots with backups) is on in the"
                " provider's settings: deployments, approvals and the audit trail live there."
            ),
        )
    if points:
        return PersistenceVerdict(
            level="warn",
            detail=(
                f"persistence partly on: only {snapshots}, appendonly no. Changes made since the last"
                " snapshot are lost if Redis stops unexpectedly; set `appendonly yes`."
            ),
        )
    return PersistenceVerdict(
        level="warn",
        detail=(
            'persistence is off (appendonly no, save ""): every deployment, approval and audit event is'
            " lost when this Redis restarts. Set `appendonly yes` (CONFIG SET appendonly yes, and in its"
            " configuration file)."
        ),
    )


# -- was the data lost? ------------------------------------------------------------------------


class MarkerState(StrEnum):
    INTACT = "intact"
    MISSING = "missing"  # the store is empty: Redis restarted without its data, or was flushed
    REPLACED = "replaced"  # another process already found it missing and wrote a new one


def marker_state(remembered: str, current: str | None) -> MarkerState:
    if current is None:
        return MarkerState.MISSING
    return MarkerState.INTACT if current == remembered else MarkerState.REPLACED


def new_marker(now: datetime | None = None) -> str:
    return f"{(now or utcnow()).strftime('%Y-%m-%dT%H:%M:%SZ')}/{secrets.token_hex(8)}"


def marker_written_at(marker: str) -> str:
    return marker.split("/", 1)[0]


class MarkerCheck(BaseModel):
    state: MarkerState
    previous: str  # the marker this process had seen
    current: str | None  # the marker now in the store (after a loss: a new one, or none yet)

    @property
    def lost(self) -> bool:
        return self.state is not MarkerState.INTACT


def threads_to_warn(
    deployments: Iterable[Deployment], now: datetime, *, recent: timedelta = RECENTLY_FINISHED
) -> list[Deployment]:
    """The deployments whose thread should hear that the store lost its data: those with a thread
    that were still in flight (waiting for a click, a step queued or running), or finished within
    `recent` (their buttons, e.g. re-plan, now lead nowhere)."""
    return [d for d in deployments if d.thread_ts and (not d.status.is_final or now - d.updated_at <= recent)]
