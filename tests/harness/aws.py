"""moto in server mode, reached through boto3's standard endpoint settings (AWS_ENDPOINT_URL)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import requests

from core.models import Deployment
from storage.locks import state_id

DEFAULT_ACCOUNT = "123456789012"
OTHER_ACCOUNT = "222233334444"
ASSUME_ROLE_ARN = f"arn:aws:iam::{OTHER_ACCOUNT}:role/DeployRole"

# Named profiles a bot host would have in ~/.aws/config: a plain key pair (moto's default account),
# and a profile that assumes a role in a second account.
AWS_CONFIG = f"""
[profile deployer]
region = us-east-1

[profile other-account]
region = us-east-1
role_arn = {ASSUME_ROLE_ARN}
source_profile = deployer
role_session_name = ecs-deploy-bot

[profile broken]
region = us-east-1
"""

AWS_CREDENTIALS = """
[deployer]
aws_access_key_id = AKIATESTDEPLOYER0001
aws_secret_access_key = testing-secret-deployer
"""


def write_aws_files(directory: Path) -> dict[str, str]:
    directory.mkdir(parents=True, exist_ok=True)
    config, credentials = directory / "config", directory / "credentials"
    config.write_text(AWS_CONFIG)
    credentials.write_text(AWS_CREDENTIALS)
    return {"AWS_CONFIG_FILE": str(config), "AWS_SHARED_CREDENTIALS_FILE": str(credentials)}


class MotoServer:
    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint = ""

    def start(self) -> MotoServer:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self

    def reset(self) -> None:
        requests.post(self.endpoint + "/moto-api/reset", timeout=10).raise_for_status()

    def stop(self) -> None:
        self._server.stop()


def aws_environment(endpoint: str, aws_dir: Path) -> dict[str, str]:
    """The environment a worker process needs to reach moto as if it were AWS."""
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        # Terraform's assume-role credential provider builds its own STS client, which reads only the
        # service-specific variable.
        "AWS_ENDPOINT_URL_STS": endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "2",
    }
    env.update(write_aws_files(aws_dir))
    return env


@contextmanager
def patched_environ(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def lock_table(deployment: Deployment) -> tuple[Any, str]:
    """`deployment`'s DynamoDB lock table, created empty as Terraform's S3 backend wants it (LockID
    hash key): a DynamoDB client of the `deployer` profile and the table's name."""
    dynamodb = boto3.Session(profile_name="deployer", region_name="us-east-1").client("dynamodb")
    table = deployment.request.lock_table
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return dynamodb, table


def put_terraform_lock(deployment: Deployment, *, lock_id: str, who: str, version: str, created: str) -> str:
    """Terraform's S3-backend lock of `deployment`'s state, as an apply that holds it leaves it in the
    DynamoDB lock table (created here): the lock item (its Info JSON) and the -md5 digest item.
    Returns the Info text."""
    dynamodb, table = lock_table(deployment)
    state = state_id(deployment.request.state_bucket, deployment.request.state_key)
    info = json.dumps(
        {
            "ID": lock_id,
            "Operation": "OperationTypeApply",
            "Info": "",
            "Who": who,
            "Version": version,
            "Created": created,
            "Path": state,
        }
    )
    dynamodb.put_item(TableName=table, Item={"LockID": {"S": state}, "Info": {"S": info}})
    dynamodb.put_item(TableName=table, Item={"LockID": {"S": state + "-md5"}, "Digest": {"S": "d41d8cd9"}})
    return info
