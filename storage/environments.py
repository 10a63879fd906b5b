"""Environment records in Redis (core/environments.py says what an environment is).

Storage model:
- `ecs-deploy:environment:{key}`             JSON of core.environments.Environment
- `ecs-deploy:environments`                  sorted set of keys by last update (newest last)
- `ecs-deploy:environment-name:{app}/{env}`  set of the keys with that application/environment name
  (the same `web/dev` may live in several accounts or regions)
- `ecs-deploy:environment-open:{key}`        the id of the newest deployment created for the key
  (written in the MULTI that creates it: storage/store.py); it is the environment's open deployment
  while that deployment is not final, and is simply ignored once it is (never cleared)
Updates are optimistic transactions (redis-py's `Redis.transaction`), as in storage/store.py.
The registry can be rebuilt from the Terraform repository (`ecs-deploy-bot environments import`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import redis

from core.environments import Environment, EnvironmentKey
from storage.records import read_model

PREFIX = "ecs-deploy:"
INDEX = f"{PREFIX}environments"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _key(key: EnvironmentKey | str) -> str:
    return f"{PREFIX}environment:{key}"


def _name_index(application: str, environment: str) -> str:
    return f"{PREFIX}environment-name:{application}/{environment}"


def open_deployment_key(key: EnvironmentKey | str) -> str:
    return f"{PREFIX}environment-open:{key}"


def name_newest_deployment(
    pipe: redis.client.Pipeline, key: EnvironmentKey | str, deployment_id: str
) -> None:
    """Add to `pipe` (the deployment's creating MULTI) that `deployment_id` is the key's newest one."""
    pipe.set(open_deployment_key(key), deployment_id)


class EnvironmentStore:
    def __init__(self, connection: redis.Redis) -> None:
        self.redis = connection

    def find(self, key: EnvironmentKey | str) -> Environment | None:
        return read_model(self.redis, _key(key), Environment)

    def newest_deployment_id(self, key: EnvironmentKey | str) -> str | None:
        """The id of the newest deployment created for `key` (the environment's open one when its
        status is not final; the caller reads it and decides), None when none was recorded."""
        raw = self.redis.get(open_deployment_key(key))
        return None if raw is None else _text(raw)

    def named(self, application: str, environment: str) -> list[Environment]:
        """Every environment called `application/environment` (any account or region)."""
        keys = sorted(_text(k) for k in self.redis.smembers(_name_index(application, environment)))
        return self._load(keys)

    def all(self, limit: int = 200) -> list[Environment]:
        """The environments, most recently changed first."""
        keys = [_text(k) for k in self.redis.zrevrange(INDEX, 0, limit - 1)]
        return self._load(keys)

    def put(self, environment: Environment) -> Environment:
        """Store `environment` as it is (the import and tests); `update` for every other write."""
        with self.redis.pipeline(transaction=True) as pipe:
            self._write(pipe, environment)
            pipe.execute()
        return environment

    def update(
        self, key: EnvironmentKey | str, change: Callable[[Environment | None], Environment | None]
    ) -> Environment | None:
        """Apply `change` to the stored environment (None when there is none yet) atomically; a None
        result writes nothing. `change` may run more than once; only its last result is stored."""
        record = _key(key)

        def attempt(pipe: redis.client.Pipeline) -> Environment | None:
            raw = pipe.get(record)
            current = None if raw is None else Environment.model_validate_json(raw)
            proposed = change(current)
            if proposed is None:
                pipe.unwatch()
                return current
            pipe.multi()
            self._write(pipe, proposed)
            return proposed

        found = self.redis.transaction(attempt, record, value_from_callable=True)  # type: ignore[arg-type]
        return cast(Environment | None, found)

    def add_deployment(self, key: EnvironmentKey | str, deployment_id: str) -> Environment | None:
        """Record that `deployment_id` (a change, upgrade or destroy) belongs to the environment."""

        def add(current: Environment | None) -> Environment | None:
            if current is None or deployment_id in current.deployments:
                return None
            return current.model_copy(update={"deployments": [*current.deployments, deployment_id]})

        return self.update(key, add)

    @staticmethod
    def _write(pipe: redis.client.Pipeline, environment: Environment) -> None:
        key = str(environment.key)
        pipe.set(_key(key), environment.model_dump_json())
        pipe.zadd(INDEX, {key: environment.updated_at.timestamp()})
        pipe.sadd(_name_index(environment.key.application, environment.key.environment), key)

    def _load(self, keys: list[str]) -> list[Environment]:
        if not keys:
            return []
        raws = self.redis.mget([_key(k) for k in keys])
        return [Environment.model_validate_json(raw) for raw in raws if raw is not None]
