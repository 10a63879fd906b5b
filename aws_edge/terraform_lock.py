"""Terraform's own lock of an S3-backend state: the DynamoDB item under LockID `<bucket>/<key>`
(not the `<bucket>/<key>-md5` digest item). The one reader of that item, and its one deleter.

The release is a conditional delete on the exact `Info` that was read (what `terraform
force-unlock` does): if the lock was released and taken again by anyone since, nothing is deleted.
Whether a lock may be released at all is core.terraform_locks.own_lock's decision, not this module's.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from aws_edge import configs
from aws_edge.errors import aws_problem, error_code
from core.terraform_locks import TerraformLockInfo
from core.values import Value

LOCK_KEY = "LockID"


class LockRead(Value):
    """Terraform's lock item for the state, as far as it could be read."""

    held: bool = False
    lock: TerraformLockInfo | None = None  # None while held: the item is not Terraform's lock JSON
    problem: str | None = None  # it could not be read: why
    error_code: str | None = None  # AWS answered with this error code (e.g. ResourceNotFoundException)


def lock_client(session: boto3.Session, config: Config = configs.STATE_BACKEND) -> Any:
    """A DynamoDB client for the lock table (clients are thread-safe; sessions are not: make the
    client in one thread, use it from any)."""
    return session.client("dynamodb", config=config)


def read_lock(client: Any, table: str, state: str) -> LockRead:
    """The item under LockID `<bucket>/<key>`, read consistently."""
    try:
        reply = client.get_item(TableName=table, Key={LOCK_KEY: {"S": state}}, ConsistentRead=True)
    except ClientError as exc:
        return LockRead(problem=aws_problem(exc), error_code=error_code(exc) or "error")
    except BotoCoreError as exc:
        return LockRead(problem=aws_problem(exc))
    item = reply.get("Item")
    if not item:
        return LockRead(held=False)
    raw = (item.get("Info") or {}).get("S") or ""
    return LockRead(held=True, lock=TerraformLockInfo.from_raw(raw) if raw else None)


def release_lock(client: Any, table: str, state: str, lock: TerraformLockInfo) -> bool:
    """Delete the lock item only if its Info is still exactly `lock.raw`. False when it changed (or
    is gone) since it was read; any other AWS error is raised."""
    try:
        client.delete_item(
            TableName=table,
            Key={LOCK_KEY: {"S": state}},
            ConditionExpression="Info = :info",
            ExpressionAttributeValues={":info": {"S": lock.raw}},
        )
    except ClientError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return False
        raise
    return True
