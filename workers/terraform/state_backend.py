"""What the S3 backend holds for one state: the state object (its serial and resources) and
Terraform's own lock item in DynamoDB, read with the deployment's AWS session; and the one write:
releasing a lock item that was proven to be a dead run's own (core.locks.own_lock).

The release is a conditional delete on the exact `Info` that was read (what `terraform force-unlock`
does): if the lock was released and taken again by anyone since, nothing is deleted.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict

from core.apply_progress import state_addresses
from core.locks import TerraformLockInfo

AWS_QUICK = Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 2, "mode": "standard"})


class StateObject(BaseModel):
    """The state object in S3 as far as it could be read."""

    model_config = ConfigDict(frozen=True)

    exists: bool = False
    serial: int | None = None
    lineage: str | None = None
    addresses: frozenset[str] = frozenset()
    problem: str | None = None  # it could not be read: why

    @property
    def known(self) -> bool:
        return self.problem is None


class LockRead(BaseModel):
    """Terraform's lock item for the state, as far as it could be read."""

    model_config = ConfigDict(frozen=True)

    held: bool = False
    lock: TerraformLockInfo | None = None  # None while held: the item is not Terraform's lock JSON
    problem: str | None = None


def _aws_problem(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return f"AWS answered {exc.response.get('Error', {}).get('Code', 'an error')}"
    return f"AWS could not be reached ({type(exc).__name__})"


def read_state(session: boto3.Session, bucket: str, key: str) -> StateObject:
    try:
        reply = session.client("s3", config=AWS_QUICK).get_object(Bucket=bucket, Key=key)
        body: bytes = reply["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404", "NotFound"}:
            return StateObject(exists=False)
        return StateObject(problem=_aws_problem(exc))
    except BotoCoreError as exc:
        return StateObject(problem=_aws_problem(exc))
    try:
        document: Any = json.loads(body)
    except ValueError:
        return StateObject(exists=True, problem="the state object is not JSON")
    if not isinstance(document, dict):
        return StateObject(exists=True, problem="the state object is not a Terraform state")
    serial = document.get("serial")
    return StateObject(
        exists=True,
        serial=serial if isinstance(serial, int) else None,
        lineage=str(document.get("lineage") or "") or None,
        addresses=frozenset(state_addresses(document)),
    )


def lock_client(session: boto3.Session) -> Any:
    """A DynamoDB client for the lock table (clients are thread-safe; sessions are not: make the
    client in one thread, use it from any)."""
    return session.client("dynamodb", config=AWS_QUICK)


def read_lock(client: Any, table: str, state: str) -> LockRead:
    """The item under LockID `<bucket>/<key>` (not the `-md5` digest item), read consistently."""
    try:
        reply = client.get_item(TableName=table, Key={"LockID": {"S": state}}, ConsistentRead=True)
    except (ClientError, BotoCoreError) as exc:
        return LockRead(problem=_aws_problem(exc))
    item = reply.get("Item")
    if not item:
        return LockRead(held=False)
    raw = (item.get("Info") or {}).get("S") or ""
    return LockRead(held=True, lock=TerraformLockInfo.from_raw(raw) if raw else None)


def release_lock(client: Any, table: str, state: str, lock: TerraformLockInfo) -> bool:
    """Delete the lock item only if its Info is still exactly `lock.raw`. False when it changed (or
    is gone) since it was read."""
    try:
        client.delete_item(
            TableName=table,
            Key={"LockID": {"S": state}},
            ConditionExpression="Info = :info",
            ExpressionAttributeValues={":info": {"S": lock.raw}},
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise
    return True
