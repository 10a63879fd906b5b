"""Drift records in Redis (core/drift.py says what they hold and decides every change).

Storage model:
- `ecs-deploy:drift:{environment_key}`        JSON of core.drift.DriftRecord: the last check, the last
  result, what the channel last heard of, the acknowledgement (who, why), the next run
- `ecs-deploy:drift-claim:{job_id}`           SET NX per scheduled check (its job id names environment
  and time slot): whichever worker claims it runs it; a duplicate job with the same slot finds the
  claim taken and does nothing. Expires after a week.
- `ecs-deploy:drift-runs:{environment_key}`   list of the job ids of the checks that ran (newest last,
  the latest 100): what the operator (and the no-duplicate test) reads.
Updates are optimistic transactions, as in storage/environments.py. Acknowledgements are also
recorded in the audit trail by the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import redis

from core.drift import DriftRecord
from storage.records import read_model
from storage.store import PREFIX

CLAIM_TTL_SECONDS = 7 * 24 * 3600
RUNS_KEPT = 100


def _key(environment_key: str) -> str:
    return f"{PREFIX}drift:{environment_key}"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class DriftStore:
    def __init__(self, connection: redis.Redis) -> None:
        self.redis = connection

    def get(self, environment_key: str) -> DriftRecord | None:
        return read_model(self.redis, _key(environment_key), DriftRecord)

    def many(self, environment_keys: list[str]) -> dict[str, DriftRecord]:
        if not environment_keys:
            return {}
        raws = self.redis.mget([_key(k) for k in environment_keys])
        return {
            key: DriftRecord.model_validate_json(raw)
            for key, raw in zip(environment_keys, raws, strict=True)
            if raw is not None
        }

    def update(
        self, environment_key: str, change: Callable[[DriftRecord], DriftRecord | None]
    ) -> DriftRecord | None:
        """Apply `change` to the record (a fresh one when there is none) atomically; a None result
        writes nothing and returns None. `change` may run more than once."""
        record_key = _key(environment_key)

        def attempt(pipe: redis.client.Pipeline) -> DriftRecord | None:
            raw = pipe.get(record_key)
            current = (
                DriftRecord(environment_key=environment_key)
                if raw is None
                else DriftRecord.model_validate_json(raw)
            )
            proposed = change(current)
            if proposed is None:
                pipe.unwatch()
                return None
            pipe.multi()
            pipe.set(record_key, proposed.model_dump_json())
            return proposed

        found = self.redis.transaction(attempt, record_key, value_from_callable=True)  # type: ignore[arg-type]
        return cast(DriftRecord | None, found)

    def claim(self, job_id: str) -> bool:
        """True for the first caller only: that one runs the check of this slot."""
        return bool(self.redis.set(f"{PREFIX}drift-claim:{job_id}", "1", nx=True, ex=CLAIM_TTL_SECONDS))

    def ran(self, environment_key: str, job_id: str) -> None:
        key = f"{PREFIX}drift-runs:{environment_key}"
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, job_id)
            pipe.ltrim(key, -RUNS_KEPT, -1)
            pipe.execute()

    def runs(self, environment_key: str) -> list[str]:
        return [_text(v) for v in self.redis.lrange(f"{PREFIX}drift-runs:{environment_key}", 0, -1)]
