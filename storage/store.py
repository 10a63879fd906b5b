"""Deployment records in Redis.

Storage model:
- `ecs-deploy:deployment:{id}`   JSON of core.models.Deployment (the single source of truth)
- `ecs-deploy:deployments`       sorted set of ids by creation time (newest last)
- `ecs-deploy:user:{user}`       sorted set of the ids a user requested
- `ecs-deploy:submission:{key}`  the deployment id a Slack submission created (deduplication)
- `ecs-deploy:environment-open:{environment key}`  the newest deployment of the environment, written
  in the creating MULTI (storage/environments.py reads it: the environment's open deployment)
Updates go through `update()` / `transition()`, an optimistic transaction (redis-py's
`Redis.transaction`: WATCH, read, MULTI/EXEC, again from the read when another writer won), so two
processes never overwrite each other's changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import cast

import redis

from core.models import Deployment, utcnow
from storage.environments import name_newest_deployment

PREFIX = "ecs-deploy:"
SUBMISSION_TTL_SECONDS = 24 * 3600


class StoreError(Exception):
    """Root of the store's errors."""


class DeploymentNotFound(StoreError):
    def __init__(self, deployment_id: str) -> None:
        super().__init__(f"No deployment {deployment_id!r} is known.")
        self.deployment_id = deployment_id


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _key(deployment_id: str) -> str:
    return f"{PREFIX}deployment:{deployment_id}"


class DeploymentStore:
    def __init__(self, connection: redis.Redis) -> None:
        self.redis = connection

    def create(
        self,
        deployment: Deployment,
        *,
        submission_key: str | None = None,
        also: Callable[[redis.client.Pipeline], object] | None = None,
    ) -> tuple[Deployment, bool]:
        """Store a new deployment once per submission. Returns (deployment, created).

        `also` adds commands (e.g. enqueueing the first job) to the same MULTI, so a record never
        exists without its job, nor a job without its record. The same MULTI names it as its
        environment's newest deployment, so the open one is found without scanning.
        """
        if submission_key:
            claim = f"{PREFIX}submission:{submission_key}"
            if not self.redis.set(claim, deployment.id, nx=True, ex=SUBMISSION_TTL_SECONDS):
                existing = self.redis.get(claim)
                if existing is None:  # the claim expired between SET NX and GET
                    return self.create(deployment, submission_key=submission_key, also=also)
                return self.get(_text(existing)), False
        score = deployment.created_at.timestamp()
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.multi()  # explicit, so RQ's enqueue(pipeline=...) joins this transaction
            pipe.set(_key(deployment.id), deployment.model_dump_json())
            pipe.zadd(f"{PREFIX}deployments", {deployment.id: score})
            pipe.zadd(f"{PREFIX}user:{deployment.requester_id}", {deployment.id: score})
            name_newest_deployment(pipe, deployment.request.environment_key, deployment.id)
            if also is not None:
                also(pipe)
            pipe.execute()
        return deployment, True

    def created_by(self, submission_key: str) -> str | None:
        """The id of the deployment `submission_key` created (None: not seen, or its claim expired)."""
        raw = self.redis.get(f"{PREFIX}submission:{submission_key}")
        return None if raw is None else _text(raw)

    def get(self, deployment_id: str) -> Deployment:
        raw = self.redis.get(_key(deployment_id))
        if raw is None:
            raise DeploymentNotFound(deployment_id)
        return Deployment.model_validate_json(raw)

    def find(self, deployment_id: str) -> Deployment | None:
        try:
            return self.get(deployment_id)
        except DeploymentNotFound:
            return None

    def update(self, deployment_id: str, change: Callable[[Deployment], Deployment]) -> Deployment:
        """Apply `change` atomically (optimistic locking; retried when another writer wins)."""
        deployment, _ = self.transition(deployment_id, change)
        return deployment

    def transition(
        self,
        deployment_id: str,
        change: Callable[[Deployment], Deployment | None],
        *,
        also: Callable[[redis.client.Pipeline, Deployment], object] | None = None,
    ) -> tuple[Deployment, bool]:
        """Like `update`, but `change` may return None to leave the record as it is (for example a
        button clicked twice). `change` may run more than once; only its last result is stored.

        `also` adds commands (typically enqueueing the next step) to the same MULTI as the new record,
        so a status that promises a job never exists without that job."""
        key = _key(deployment_id)

        def attempt(pipe: redis.client.Pipeline) -> tuple[Deployment, bool]:
            # redis-py runs this again, from the read, when another writer changed the record
            raw = pipe.get(key)
            if raw is None:
                raise DeploymentNotFound(deployment_id)
            current = Deployment.model_validate_json(raw)
            proposed = change(current)
            if proposed is None:
                pipe.unwatch()  # nothing to write: EXEC is skipped
                return current, False
            changed = proposed.model_copy(update={"updated_at": utcnow()})
            pipe.multi()
            pipe.set(key, changed.model_dump_json())
            if also is not None:
                also(pipe, changed)
            return changed, True

        # redis-py annotates `func` as returning None, though value_from_callable returns its value
        found = self.redis.transaction(attempt, key, value_from_callable=True)  # type: ignore[arg-type]
        return cast(tuple[Deployment, bool], found)

    def recent(self, *, user_id: str | None = None, limit: int = 10) -> list[Deployment]:
        index = f"{PREFIX}user:{user_id}" if user_id else f"{PREFIX}deployments"
        ids = [_text(raw) for raw in self.redis.zrevrange(index, 0, limit - 1)]
        return list(self._load_many(ids))

    def _load_many(self, ids: Iterable[str]) -> Iterable[Deployment]:
        ids = list(ids)
        if not ids:
            return []
        raws = self.redis.mget([_key(i) for i in ids])
        return [Deployment.model_validate_json(raw) for raw in raws if raw is not None]
