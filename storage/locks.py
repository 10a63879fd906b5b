"""One Terraform run at a time per state (bucket + key), held in Redis with who holds it; and the
record of the latest Terraform run on each state, with the rule that says when a Terraform lock left
in DynamoDB is provably that run's own (`own_lock`, pure).

Storage model: `ecs-deploy:statelock:{bucket}/{key}` holds JSON {token, deployment_id, user_id,
step, since}; it expires after `ttl` so a crashed worker cannot hold a state forever. The key is a
redis-py `Lock` whose token is that JSON (one random `token` per run): redis-py takes it with SET NX
PX and extends and releases it with its Lua scripts, which compare the whole value, so a lock is
only ever extended or released by the run that took it — and whoever waits can read who holds it.
`ecs-deploy:tfrun:{bucket}/{key}` holds the latest TerraformRun (see below).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import cast

import redis
from pydantic import BaseModel
from redis.exceptions import LockError
from redis.lock import Lock

from core.models import utcnow
from core.terraform_locks import TerraformRun
from storage.store import PREFIX


class LockHolder(BaseModel):
    token: str = ""
    deployment_id: str
    user_id: str
    step: str
    since: datetime


class StateLockTimeout(Exception):
    def __init__(self, holder: LockHolder | None) -> None:
        who = f"{holder.deployment_id} ({holder.step})" if holder else "another run"
        super().__init__(f"The Terraform state is still in use by {who}.")
        self.holder = holder


def state_id(bucket: str, key: str) -> str:
    return f"{bucket}/{key}"


class StateLock:
    def __init__(self, connection: redis.Redis, state: str, *, ttl_seconds: int) -> None:
        self.redis = connection
        self.key = f"{PREFIX}statelock:{state}"
        self.ttl = ttl_seconds

    def _lock(self) -> Lock:
        # not thread-local: the run's keeper thread extends the hold its job thread took
        return Lock(self.redis, self.key, timeout=self.ttl, thread_local=False)

    def _owned_by(self, token: str) -> Lock | None:
        """A redis-py Lock on the current hold when that hold is the run with `token`'s, else None.
        Its token is the stored value as read: if the hold changes hands after this read, redis-py's
        compare-and-set scripts refuse to touch the new one."""
        raw = self.redis.get(self.key)
        if not raw or LockHolder.model_validate_json(raw).token != token:
            return None
        lock = self._lock()
        lock.local.token = raw  # the token storage redis-py's own acquire() fills
        return lock

    def holder(self) -> LockHolder | None:
        raw = self.redis.get(self.key)
        return LockHolder.model_validate_json(raw) if raw else None

    def _acquire(self, deployment_id: str, user_id: str, step: str) -> tuple[LockHolder, Lock] | None:
        mine = LockHolder(
            token=secrets.token_hex(8),
            deployment_id=deployment_id,
            user_id=user_id,
            step=step,
            since=utcnow(),
        )
        lock = self._lock()
        if lock.acquire(blocking=False, token=mine.model_dump_json()):
            return mine, lock
        return None

    def try_acquire(self, deployment_id: str, user_id: str, step: str) -> LockHolder | None:
        """Take the lock; None while anyone holds it — the same deployment's other job included (each
        run has its own token, so one run's release can never free another run's state)."""
        taken = self._acquire(deployment_id, user_id, step)
        return taken[0] if taken else None

    def refresh(self, token: str) -> bool:
        """Extend the lock's life while its run goes on; False when the lock is no longer ours."""
        lock = self._owned_by(token)
        if lock is None:
            return False
        try:
            return lock.extend(self.ttl, replace_ttl=True)
        except LockError:
            return False

    def release(self, token: str) -> bool:
        lock = self._owned_by(token)
        return lock is not None and _release(lock)

    def force_release(self) -> LockHolder | None:
        holder = self.holder()
        self.redis.delete(self.key)
        return holder

    @contextmanager
    def held(
        self,
        deployment_id: str,
        user_id: str,
        step: str,
        *,
        wait_seconds: float,
        on_wait: Callable[[LockHolder], object] | None = None,
        poll_seconds: float = 0.25,
    ) -> Iterator[LockHolder]:
        """Wait in line for the lock (telling `on_wait` who is ahead, again whenever that changes), hold
        it, release it."""
        deadline = time.monotonic() + wait_seconds
        told: str | None = None
        while True:
            taken = self._acquire(deployment_id, user_id, step)
            if taken is not None:
                break
            ahead = self.holder()
            if ahead is not None and ahead.token != told and on_wait is not None:
                on_wait(ahead)
                told = ahead.token
            if time.monotonic() > deadline:
                raise StateLockTimeout(ahead)
            time.sleep(poll_seconds)
        mine, lock = taken
        try:
            yield mine
        finally:
            _release(lock)


def _release(lock: Lock) -> bool:
    """Release a hold through redis-py; False when it had expired or changed hands."""
    try:
        lock.release()
    except LockError:
        return False
    return True


# -- Terraform's own lock and the run that may have left it ---------------------------------------
#
# Terraform's S3 backend locks a state with a DynamoDB item under LockID `<bucket>/<key>` whose
# `Info` attribute is JSON: {ID, Operation, Info, Who, Version, Created, Path}. A run killed before
# it unlocks leaves that item behind. The bot records every Terraform run on a state (one record per
# state: runs on one state never overlap, the StateLock above sees to that), including the lock
# item its command took, so that a lock left behind can be proven to be that run's own and released
# without anyone running `terraform force-unlock` by hand — and a lock that belongs to anyone else is
# never touched.

RUN_RECORD_TTL_SECONDS = 30 * 24 * 3600


def job_heartbeat_key(job_id: str) -> str:
    """Kept alive by the work horse while a job runs (workers/sweeper.py writes it)."""
    return f"{PREFIX}alive:job:{job_id}"


def interrupted_key(job_id: str) -> str:
    """Set once a job was found dead and reported (workers/sweeper.py claims it)."""
    return f"{PREFIX}interrupted:{job_id}"


class TerraformRuns:
    """Storage model: `ecs-deploy:tfrun:{bucket}/{key}` holds the JSON of the latest TerraformRun on
    that state (30 days). A run only ever updates its own record (same run_id): a late write of an
    older run never overwrites a newer run's record."""

    def __init__(self, connection: redis.Redis) -> None:
        self.redis = connection

    @staticmethod
    def key(state: str) -> str:
        return f"{PREFIX}tfrun:{state}"

    def begin(self, run: TerraformRun) -> TerraformRun:
        self.redis.set(self.key(run.state), run.model_dump_json(), ex=RUN_RECORD_TTL_SECONDS)
        return run

    def get(self, state: str) -> TerraformRun | None:
        raw = self.redis.get(self.key(state))
        return TerraformRun.model_validate_json(raw) if raw else None

    def update(
        self, state: str, run_id: str, change: Callable[[TerraformRun], TerraformRun]
    ) -> TerraformRun | None:
        """Apply `change` to the run's record; None when the record is no longer that run's."""
        key = self.key(state)

        def attempt(pipe: redis.client.Pipeline) -> TerraformRun | None:
            # runs again, from the read, when another writer changed the record before EXEC
            raw = pipe.get(key)
            current = TerraformRun.model_validate_json(raw) if raw else None
            if current is None or current.run_id != run_id:
                pipe.unwatch()
                return None
            changed = change(current)
            pipe.multi()
            pipe.set(key, changed.model_dump_json(), ex=RUN_RECORD_TTL_SECONDS)
            return changed

        # redis-py annotates `func` as returning None, though value_from_callable returns its value
        found = self.redis.transaction(attempt, key, value_from_callable=True)  # type: ignore[arg-type]
        return cast(TerraformRun | None, found)

    def alive(self, run: TerraformRun) -> bool:
        """Could the run still be using the state? Not once it ended or was reported dead; otherwise
        while its job's heartbeat is alive."""
        if run.outcome != "running":
            return False
        if not run.job_id:
            return False
        if self.redis.exists(interrupted_key(run.job_id)):
            return False
        return bool(self.redis.exists(job_heartbeat_key(run.job_id)))
