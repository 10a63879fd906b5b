"""A drift check whose plan failed on Terraform's state lock releases that lock only when it is
provably the check's own (Terraform's first PutItem landed but its answer was lost, so Terraform waited
behind itself) — the pipeline's rule (core.terraform_locks.own_lock) — and never anyone else's.
Real DynamoDB (moto in server mode) and Redis."""

from __future__ import annotations

import json
from datetime import timedelta

import redis

from core.models import utcnow
from core.policy.loading import policy_from_settings
from core.settings import Settings
from storage.locks import state_id
from tests.harness.aws import lock_table
from tests.harness.records import deployment_record, stored_environment, worker_runtime
from workers.drift import _released_own_lock
from workers.steps.tfrun import terraform_who

LEAD = "U0LEAD0001"


def _plan_lock(redis_conn: redis.Redis, who: str, created_seconds_ago: float) -> tuple[object, str, str]:
    deployment = deployment_record("U0REQUEST1")
    dynamodb, table = lock_table(deployment)
    state = state_id(deployment.request.state_bucket, deployment.request.state_key)
    created = utcnow() - timedelta(seconds=created_seconds_ago)
    info = {
        "ID": "0f6a3c2e-lock",
        "Operation": "OperationTypePlan",
        "Info": "",
        "Who": who,
        "Version": "1.15.0",
        "Created": created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "Path": state,
    }
    dynamodb.put_item(TableName=table, Item={"LockID": {"S": state}, "Info": {"S": json.dumps(info)}})
    return dynamodb, table, state


def _held(dynamodb: object, table: str, state: str) -> bool:
    return "Item" in dynamodb.get_item(TableName=table, Key={"LockID": {"S": state}})  # type: ignore[attr-defined]


def test_the_checks_own_lock_is_released_and_audited(redis_conn: redis.Redis, aws: object) -> None:
    rt = worker_runtime(
        Settings(REDIS_URL="redis://unused"), redis_conn, policy_from_settings(None, frozenset({LEAD}))
    )
    environment = stored_environment(redis_conn)
    started = utcnow() - timedelta(seconds=5)
    dynamodb, table, state = _plan_lock(redis_conn, terraform_who(), created_seconds_ago=2)
    assert _released_own_lock(rt, environment, started) is True
    assert not _held(dynamodb, table, state)
    [event] = [
        e for e in rt.audit.for_deployment(f"env:{environment.key}") if e.event == "terraform_lock_released"
    ]
    assert event.detail["lock_id"] == "0f6a3c2e-lock" and event.detail["retried"] is True


def test_someone_elses_lock_or_an_older_one_is_left_alone(redis_conn: redis.Redis, aws: object) -> None:
    rt = worker_runtime(
        Settings(REDIS_URL="redis://unused"), redis_conn, policy_from_settings(None, frozenset({LEAD}))
    )
    environment = stored_environment(redis_conn)
    started = utcnow() - timedelta(seconds=5)
    dynamodb, table, state = _plan_lock(redis_conn, "alice@laptop", created_seconds_ago=2)
    assert _released_own_lock(rt, environment, started) is False  # another Who
    assert _held(dynamodb, table, state)
    dynamodb.delete_item(TableName=table, Key={"LockID": {"S": state}})  # type: ignore[attr-defined]
    info = {
        "ID": "older",
        "Operation": "OperationTypePlan",
        "Who": terraform_who(),
        "Created": (started - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "Path": state,
    }
    dynamodb.put_item(TableName=table, Item={"LockID": {"S": state}, "Info": {"S": json.dumps(info)}})  # type: ignore[attr-defined]
    assert _released_own_lock(rt, environment, started) is False  # taken before this check's plan started
    assert _held(dynamodb, table, state)
    assert not [
        e for e in rt.audit.for_deployment(f"env:{environment.key}") if e.event == "terraform_lock_released"
    ]
