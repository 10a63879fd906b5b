"""aws_edge: the one place that builds sessions (refreshable assumed-role credentials), and the one
reader/deleter of Terraform's DynamoDB lock item — against moto in server mode."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import ProfileNotFound

from aws_edge import configs
from aws_edge.sessions import known_profiles, session_for
from aws_edge.terraform_lock import LOCK_KEY, lock_client, read_lock, release_lock
from core.policy.access import AssumeRole
from core.terraform_locks import TerraformLockInfo
from tests.harness.aws import ASSUME_ROLE_ARN, DEFAULT_ACCOUNT, OTHER_ACCOUNT, MotoServer

REGION = "us-east-1"
ROLE = AssumeRole(role_arn=ASSUME_ROLE_ARN, external_id="ext-1", session_name="edge-test")


def test_a_profile_session_acts_as_the_profile(aws: MotoServer) -> None:
    session = session_for("deployer", REGION)
    assert session.client("sts", config=configs.STANDARD).get_caller_identity()["Account"] == DEFAULT_ACCOUNT


def test_an_unknown_profile_is_refused_where_the_session_is_built(aws: MotoServer) -> None:
    assert "nope" not in known_profiles()
    assert "deployer" in known_profiles()
    with pytest.raises(ProfileNotFound):
        session_for("nope", REGION, ROLE)


def test_assumed_role_credentials_are_refreshable_and_act_as_the_role(aws: MotoServer) -> None:
    session = session_for("deployer", REGION, ROLE)
    credentials = session.get_credentials()
    assert isinstance(credentials, RefreshableCredentials)
    assert credentials.method == "assume-role"
    identity = session.client("sts", config=configs.STANDARD).get_caller_identity()
    assert identity["Account"] == OTHER_ACCOUNT
    assert identity["Arn"].endswith(":assumed-role/DeployRole/edge-test")
    # An hour's credentials are far from expiry: the next client reuses them (no second AssumeRole).
    first = credentials.get_frozen_credentials().access_key
    assert credentials.get_frozen_credentials().access_key == first


def test_credentials_near_expiry_are_refreshed_by_assuming_the_role_again(aws: MotoServer) -> None:
    """A 15-minute session is inside botocore's refresh window from the start: every use assumes the
    role again and gets new keys (moto hands out a new key pair per AssumeRole) — static keys from a
    single AssumeRole, what the sessions used to hold, would stay the same and expire."""
    session = session_for("deployer", REGION, ROLE, duration_seconds=900)
    credentials = session.get_credentials()
    keys = {credentials.get_frozen_credentials().access_key for _ in range(3)}
    assert len(keys) == 3
    identity = session.client("sts", config=configs.STANDARD).get_caller_identity()
    assert identity["Account"] == OTHER_ACCOUNT


def _lock_table(session: boto3.Session, name: str) -> None:
    session.client("dynamodb").create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": LOCK_KEY, "AttributeType": "S"}],
        KeySchema=[{"AttributeName": LOCK_KEY, "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )


def _info(lock_id: str) -> str:
    return json.dumps(
        {
            "ID": lock_id,
            "Operation": "OperationTypeApply",
            "Who": "bot@host",
            "Created": "2026-01-01T00:00:00Z",
        }
    )


def test_terraform_lock_read_and_conditional_release(deployer_session: boto3.Session) -> None:
    _lock_table(deployer_session, "locks")
    state = "bucket/env/terraform.tfstate"
    client = lock_client(deployer_session)
    assert read_lock(client, "locks", state).held is False

    dynamodb = deployer_session.client("dynamodb")
    dynamodb.put_item(TableName="locks", Item={LOCK_KEY: {"S": state}, "Info": {"S": _info("lock-1")}})
    dynamodb.put_item(TableName="locks", Item={LOCK_KEY: {"S": state + "-md5"}, "Digest": {"S": "x"}})
    found = read_lock(client, "locks", state)
    assert found.held and found.lock is not None and found.lock.id == "lock-1" and found.problem is None

    stale = TerraformLockInfo.from_raw(_info("lock-0"))
    assert stale is not None
    assert release_lock(client, "locks", state, stale) is False  # someone else's lock now: untouched
    assert read_lock(client, "locks", state).held is True
    assert release_lock(client, "locks", state, found.lock) is True
    assert read_lock(client, "locks", state).held is False
    assert "Item" in dynamodb.get_item(TableName="locks", Key={LOCK_KEY: {"S": state + "-md5"}})


def test_a_missing_lock_table_is_named_by_its_error_code(deployer_session: boto3.Session) -> None:
    found = read_lock(lock_client(deployer_session), "no-such-table", "b/k")
    assert found.held is False
    assert found.error_code == "ResourceNotFoundException"
    assert found.problem == "AWS answered ResourceNotFoundException"
