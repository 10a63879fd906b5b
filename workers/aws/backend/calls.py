"""Calling AWS for the backend: the S3, DynamoDB and STS clients of one region, one call that turns
an access-denied answer into `BackendAccessDenied`, and reading a `ClientError`'s code and status."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from aws_edge import configs
from workers.aws.backend.models import ACCESS_DENIED_CODES, BackendAccessDenied, ClientFactory


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def http_status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def call(client: Any, method: str, **kwargs: Any) -> Any:
    """Call one boto3 operation; an access-denied answer becomes BackendAccessDenied."""
    try:
        return getattr(client, method)(**kwargs)
    except ClientError as exc:
        if error_code(exc) in ACCESS_DENIED_CODES or http_status(exc) == 403:
            raise BackendAccessDenied(exc.operation_name, error_code(exc)) from exc
        raise


class Clients:
    def __init__(self, session: ClientFactory, region: str) -> None:
        self.s3 = session.client("s3", region_name=region, config=configs.DEFAULT)
        self.dynamodb = session.client("dynamodb", region_name=region, config=configs.DEFAULT)
        self.sts = session.client("sts", region_name=region, config=configs.DEFAULT)
