"""One Terraform run at a time per state (bucket + key), held in Redis with who holds it.

Storage model: `ecs-deploy:statelock:{bucket}/{key}` holds JSON {token, deployment_id, user_id,
step, since}; it expires after `ttl` so a crashed worker cannot hold a state forever. Release and
refresh compare the token inside a WATCH/MULTI transaction, so a lock is only ever released by the
run that took it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

import redis
from pydantic import BaseModel

from core.models import utcnow
from core.store import PREFIX


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

    def holder(self) -> LockHolder | None:
        raw = self.redis.get(self.key)
        return LockHolder.model_validate_json(raw) if raw else None

    def try_acquire(self, deployment_id: str, user_id: str, step: str) -> LockHolder | None:
        """Take the lock; None while anyone holds it — the same deployment's other job included (each
        run has its own token, so one run's release can never free another run's state)."""
        mine = LockHolder(
            token=secrets.token_hex(8),
            deployment_id=deployment_id,
            user_id=user_id,
            step=step,
            since=utcnow(),
        )
        if self.redis.set(self.key, mine.model_dump_json(), nx=True, ex=self.ttl):
            return mine
        return None

    def refresh(self, token: str) -> bool:
        """Extend the lock's life while its run goes on; False when the lock is no longer ours."""
        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(self.key)
                raw = pipe.get(self.key)
                if not raw or LockHolder.model_validate_json(raw).token != token:
                    return False
                pipe.multi()
                pipe.expire(self.key, self.ttl)
                pipe.execute()
                return True
            except redis.WatchError:
                return False

    def release(self, token: str) -> bool:
        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(self.key)
                raw = pipe.get(self.key)
                if not raw or LockHolder.model_validate_json(raw).token != token:
                    return False
                pipe.multi()
                pipe.delete(self.key)
                pipe.execute()
                return True
            except redis.WatchError:
                return False

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
            mine = self.try_acquire(deployment_id, user_id, step)
            if mine is not None:
                break
            ahead = self.holder()
            if ahead is not None and ahead.token != told and on_wait is not None:
                on_wait(ahead)
                told = ahead.token
            if time.monotonic() > deadline:
                raise StateLockTimeout(ahead)
            time.sleep(poll_seconds)
        try:
            yield mine
        finally:
            self.release(mine.token)
