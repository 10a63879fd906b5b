"""What the S3 backend holds for one state: the state object (its serial and resources), read with
the deployment's AWS session. Terraform's lock item in DynamoDB is read (and a dead run's own
released) by aws_edge.terraform_lock.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from aws_edge import configs
from aws_edge.errors import aws_problem
from core.apply_progress import state_addresses
from core.values import Value


class StateObject(Value):
    """The state object in S3 as far as it could be read."""

    exists: bool = False
    serial: int | None = None
    lineage: str | None = None
    addresses: frozenset[str] = frozenset()
    problem: str | None = None  # it could not be read: why

    @property
    def known(self) -> bool:
        return self.problem is None


def read_state(session: boto3.Session, bucket: str, key: str) -> StateObject:
    try:
        reply = session.client("s3", config=configs.STATE_BACKEND).get_object(Bucket=bucket, Key=key)
        body: bytes = reply["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404", "NotFound"}:
            return StateObject(exists=False)
        return StateObject(problem=aws_problem(exc))
    except BotoCoreError as exc:
        return StateObject(problem=aws_problem(exc))
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
