"""The Slack outbox: every Slack write of a deployment waits here, in order, until it is delivered.

Web and workers alike *queue* a deployment's messages, updates, decisions and uploads here and
return at once; a deliverer sends them to Slack in the order they were queued (see bot/notifier/
for the sending). So nothing that holds a Terraform state ever waits on Slack, a message queued by
the web process (an approval) cannot be overtaken by one queued later by a worker (the apply), and a
Slack outage or rate limit only delays messages.

Storage (Redis):
- `ecs-deploy:outbox:d:{deployment}`  list of OutboxEntry JSON, oldest first (RPUSH; the head is
  replaced with LSET while it is being retried, and removed with LPOP once delivered)
- `ecs-deploy:outbox:due`             sorted set: deployment -> when its oldest entry may be tried
  (next); a deployment is in it exactly while its list is not empty
- `ecs-deploy:outbox:lock:{deployment}`  one deliverer per deployment at a time (others skip it)
- `ecs-deploy:outbox:file:{entry}`    an upload's content, kept apart so entries stay small
Removing the head and rescheduling happen in one Lua script, so an entry queued meanwhile is never
left without a due time.

Deliverers: a background thread per process (`Deliverer`, woken when something is queued and when
the earliest entry falls due), and every worker's maintenance thread. Any of them may deliver any
deployment; the per-deployment lock keeps the order.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import redis
from pydantic import BaseModel, Field, ValidationError
from redis.client import Pipeline
from redis.lock import Lock

from core.logs import get_logger
from storage.store import PREFIX

log = get_logger(__name__)

OUTBOX_PREFIX = f"{PREFIX}outbox:"
DUE_KEY = f"{OUTBOX_PREFIX}due"
LEGACY_KEY = f"{PREFIX}outbox"  # the former single list (with two bookkeeping hashes)
LEGACY_HASHES = (f"{PREFIX}outbox:state", f"{PREFIX}outbox:pending")
FILE_TTL_SECONDS = 7 * 24 * 3600
LOCK_SECONDS = 20  # longer than one Slack call (bot.slack.TIMEOUT_SECONDS); renewed before every call
LIST_WINDOW = 2000  # entries read at once to find what a later entry supersedes

PLACEHOLDER_PREFIX = "outbox:"
EntryKind = Literal["root", "post", "update", "decide", "upload"]


def list_key(deployment_id: str) -> str:
    return f"{OUTBOX_PREFIX}d:{deployment_id}"


def lock_key(deployment_id: str) -> str:
    return f"{OUTBOX_PREFIX}lock:{deployment_id}"


def file_key(entry_id: str) -> str:
    return f"{OUTBOX_PREFIX}file:{entry_id}"


class OutboxEntry(BaseModel):
    """One Slack write of a deployment. Only what cannot be re-read at delivery is kept: channel and
    thread come from the stored deployment, and the root message is rendered from the current record.

    kinds: `root` (post the root message, or update it to show the current record), `post` (a thread
    message), `update` (a thread message in place), `decide` (a message's buttons replaced by what
    was decided), `upload` (a file into the thread)."""

    id: str = Field(default_factory=lambda: secrets.token_hex(6))
    deployment_id: str
    kind: EntryKind
    ts: str | None = None  # update/decide: the message (may be a placeholder, see the notifier)
    text: str = ""
    blocks: list[dict[str, Any]] = Field(default_factory=list)
    remember: bool = False
    filename: str = ""
    title: str = ""
    # where the thread was when the entry was queued: used only if the deployment's record is gone
    channel: str | None = None
    thread_ts: str | None = None
    created_at: float = Field(default_factory=time.time)
    # delivery state, kept in the entry while it is the head of its list
    attempts: int = 0  # failed attempts (not counting rate limits)
    rate_limits: int = 0  # 429s answered
    in_flight: bool = False  # a non-idempotent call was made and its outcome is unknown
    file_id: str | None = None  # an upload whose file Slack already has

    @property
    def placeholder(self) -> str:
        """The ts a post has until it is delivered (see bot/notifier/)."""
        return PLACEHOLDER_PREFIX + self.id


def superseded(entries: Sequence[OutboxEntry | None]) -> list[bool]:
    """For each entry of a deployment (oldest first), whether a later one makes it pointless: a root
    message refreshed again later, or a message updated again later."""
    flags = [False] * len(entries)
    later_root = False
    later_updates: set[str | None] = set()
    for index in range(len(entries) - 1, -1, -1):
        entry = entries[index]
        if entry is None:
            continue
        if entry.kind == "root":
            flags[index], later_root = later_root, True
        elif entry.kind == "update":
            flags[index] = entry.ts in later_updates
            later_updates.add(entry.ts)
    return flags


# KEYS: list, due, file; ARGV: expected head, deployment id, next due time ('' keeps the current one)
_POP = """
if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[1] then return 0 end
redis.call('LPOP', KEYS[1])
redis.call('DEL', KEYS[3])
if redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[2])
elseif ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
end
return 1
"""
# KEYS: list, due; ARGV: expected head, new head, deployment id, due time ('' keeps it)
_REPLACE = """
if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[1] then return 0 end
redis.call('LSET', KEYS[1], 0, ARGV[2])
if ARGV[4] ~= '' then redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3]) end
return 1
"""


@dataclass
class Waiting:
    """A deployment's entries as stored, oldest first: (raw, entry — None if unreadable), whether each
    is superseded by a later one, and when the oldest may be tried."""

    items: list[tuple[str, OutboxEntry | None]]
    skip: list[bool]
    due_at: float


class Outbox:
    """The storage (see the module docstring). Sending is the notifier's."""

    def __init__(self, connection: redis.Redis) -> None:
        self.redis = connection
        self._pop = connection.register_script(_POP)
        self._replace = connection.register_script(_REPLACE)

    # -- queueing -----------------------------------------------------------------------------

    def add(
        self, pipe: Pipeline, entry: OutboxEntry, content: str | None = None, *, due: float | None = None
    ) -> None:
        """Queue `entry` as part of the caller's transaction (e.g. with the job it announces); its
        deployment is due at `due` (unix time; default now) unless it was due already."""
        if content is not None:
            pipe.set(file_key(entry.id), content, ex=FILE_TTL_SECONDS)
        pipe.rpush(list_key(entry.deployment_id), entry.model_dump_json())
        pipe.zadd(DUE_KEY, {entry.deployment_id: time.time() if due is None else due}, nx=True)

    def queue(self, entry: OutboxEntry, content: str | None = None, *, due: float | None = None) -> None:
        with self.redis.pipeline(transaction=True) as pipe:
            self.add(pipe, entry, content, due=due)
            pipe.execute()

    # -- reading ------------------------------------------------------------------------------

    def waiting(self, deployment_id: str) -> Waiting | None:
        """A snapshot of the deployment's entries (the first LIST_WINDOW). Only the deliverer holding
        the deployment's lock removes or changes entries, and only at the head; others only append."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.lrange(list_key(deployment_id), 0, LIST_WINDOW - 1)
            pipe.zscore(DUE_KEY, deployment_id)
            raws, due = pipe.execute()
        if not raws:
            return None
        items: list[tuple[str, OutboxEntry | None]] = []
        for item in raws:
            raw = _text(item)
            try:
                items.append((raw, OutboxEntry.model_validate_json(raw)))
            except ValidationError:
                items.append((raw, None))
        return Waiting(items=items, skip=superseded([e for _, e in items]), due_at=float(due or 0.0))

    def due(self, now: float | None = None, limit: int = 500) -> list[str]:
        """Deployments whose oldest entry may be tried now (all of them with now=inf), earliest first."""
        upper: float | str = "+inf" if now is None else now
        return [_text(i) for i in self.redis.zrangebyscore(DUE_KEY, "-inf", upper, start=0, num=limit)]

    def next_due(self) -> float | None:
        first = self.redis.zrange(DUE_KEY, 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    def size(self, deployment_id: str | None = None) -> int:
        ids = [deployment_id] if deployment_id else self.due()
        if not ids:
            return 0
        with self.redis.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.llen(list_key(i))
            return sum(int(n) for n in pipe.execute())

    def content(self, entry_id: str) -> str | None:
        raw = self.redis.get(file_key(entry_id))
        return None if raw is None else _text(raw)

    # -- changing the head (by its deliverer, under the deployment's lock) ---------------------

    def pop(self, deployment_id: str, raw: str, entry_id: str, *, keep_due: bool = False) -> bool:
        """Remove the head (if it is still `raw`); the next entry is due now, or (`keep_due`: the head
        was only superseded, not delivered) when the head would have been."""
        keys = [list_key(deployment_id), DUE_KEY, file_key(entry_id or "-")]
        return bool(self._pop(keys=keys, args=[raw, deployment_id, "" if keep_due else repr(time.time())]))

    def replace(self, deployment_id: str, raw: str, entry: OutboxEntry, due_at: float | None) -> str | None:
        """Store the head's new delivery state (and when to try it next); the new raw, or None if the
        head is no longer `raw`."""
        new = entry.model_dump_json()
        due = "" if due_at is None else repr(due_at)
        done = self._replace(keys=[list_key(deployment_id), DUE_KEY], args=[raw, new, deployment_id, due])
        return new if done else None

    def lock(self, deployment_id: str) -> Lock:
        return self.redis.lock(lock_key(deployment_id), timeout=LOCK_SECONDS)

    # -- the former single list ------------------------------------------------------------------

    def migrate_legacy(self) -> int:
        """Move entries of the former global outbox list (bot versions before per-deployment lists)
        into their deployments' lists, oldest first; returns how many were moved."""
        moved = 0
        while True:
            item = self.redis.lpop(LEGACY_KEY)
            if item is None:
                break
            raw = _text(item)
            try:
                data = json.loads(raw)
                if data.get("kind") == "refresh_root":  # now one kind: show the current record
                    data["kind"] = "root"
                old = OutboxEntry.model_validate(data)
            except (ValueError, AttributeError):  # not JSON, not an object, not an entry
                log.error("outbox_entry_unreadable", entry=raw[:200])
                continue
            self.queue(old, due=0.0)  # nobody is sending it: any deliverer takes it at once
            moved += 1
        if moved:
            self.redis.delete(*LEGACY_HASHES)
            log.info("outbox_migrated", entries=moved)
        return moved


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# -- the background deliverer -----------------------------------------------------------------------

POLL_SECONDS = 2.0  # also look for due entries queued by other processes this often
MIN_WAIT_SECONDS = 0.5  # between rounds when an entry is due but another deliverer holds it


class Deliverer:
    """A daemon thread that delivers due outbox entries: at once when this process queued something
    (`kick`), when the earliest entry falls due, and every POLL_SECONDS (other processes' entries once
    overdue, see bot/notifier/delivery.py). Started on the first kick,
    and again in a forked child (threads do not survive fork)."""

    def __init__(
        self,
        deliver_due: Callable[[Sequence[str]], float | None],
        deliver_now: Callable[[Sequence[str], float], None],
        *,
        name: str = "ecs-deploy outbox",
    ) -> None:
        self._deliver_due = deliver_due  # one round, kicked deployments first; returns when the next
        # entry falls due (or None)
        self._deliver_now = deliver_now  # a final round for these deployments, within a deadline
        self._name = name
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._kicked: set[str] = set()  # since the start: what the final round delivers
        self._fresh: set[str] = set()  # since the last round
        self._deadline = 0.0

    def kick(self, deployment_id: str) -> None:
        with self._guard:
            self._kicked.add(deployment_id)
            self._fresh.add(deployment_id)
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._stopping.clear()
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
                _register(self)
        self._wake.set()

    def stop(self, timeout: float) -> bool:
        """Deliver what this process queued (within `timeout`), then end the thread. True if it ended."""
        with self._guard:
            thread = self._thread if self._pid == os.getpid() else None
            self._deadline = time.monotonic() + timeout
            self._stopping.set()
        self._wake.set()
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        while True:
            self._wake.clear()
            if self._stopping.is_set():
                with self._guard:
                    kicked, self._kicked = sorted(self._kicked), set()
                deadline = self._deadline
                self._safely(lambda: self._deliver_now(kicked, deadline))  # noqa: B023 - runs now
                return
            with self._guard:
                fresh, self._fresh = sorted(self._fresh), set()
            next_due = self._safely(lambda: self._deliver_due(fresh))  # noqa: B023 - runs now
            wait = POLL_SECONDS
            if isinstance(next_due, float):
                wait = max(MIN_WAIT_SECONDS, min(POLL_SECONDS, next_due - time.time()))
            self._wake.wait(wait)

    @staticmethod
    def _safely(work: Callable[[], Any]) -> Any:
        try:
            return work()
        except Exception:  # the thread must outlive any fault; the next round tries again
            log.exception("outbox_delivery_failed")
            return None


_deliverers: list[Deliverer] = []
_registry_lock = threading.Lock()


def _register(deliverer: Deliverer) -> None:
    with _registry_lock:
        if deliverer not in _deliverers:
            _deliverers.append(deliverer)


def drain(timeout: float) -> None:
    """Stop this process's deliverers after they delivered what this process queued (bounded by
    `timeout`): a work horse calls it when its job is done, after the state was given back."""
    deadline = time.monotonic() + timeout
    with _registry_lock:
        running = list(_deliverers)
    for deliverer in running:
        with contextlib.suppress(Exception):
            deliverer.stop(max(0.0, deadline - time.monotonic()))
