"""State backend bootstrap against moto in server mode (boto3 reaches it through AWS_ENDPOINT_URL).

Two paths are not reproducible with moto and use botocore's Stubber on real clients instead (said in
each test's docstring): moto answers HeadBucket with 200 for another account's bucket (it never
returns 403 and ignores ExpectedBucketOwner), and moto does not enforce IAM permissions.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from core.backend_fix import BackendFixPlan, Setting
from core.validation import bucket_name_problem
from tests.harness.aws import DEFAULT_ACCOUNT, OTHER_ACCOUNT
from workers.aws.backend import (
    IAM_ACTIONS,
    BackendReport,
    CheckName,
    bootstrap_backend,
    inspect_backend,
)

TABLE = "terraform-state-lock"


def _bucket(region: str) -> str:
    return f"tfstate-{DEFAULT_ACCOUNT}-{region}"


MANAGED = {"ecs-deploy-bot:managed": "true"}


def _bucket_tags(session: boto3.Session, bucket: str) -> dict[str, str]:
    try:
        tag_set = session.client("s3").get_bucket_tagging(Bucket=bucket)["TagSet"]
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchTagSet"
        return {}
    return {tag["Key"]: tag["Value"] for tag in tag_set}


def _table_tags(session: boto3.Session, region: str) -> dict[str, str]:
    dynamodb = session.client("dynamodb", region_name=region)
    arn = dynamodb.describe_table(TableName=TABLE)["Table"]["TableArn"]
    return {tag["Key"]: tag["Value"] for tag in dynamodb.list_tags_of_resource(ResourceArn=arn)["Tags"]}


def _read_back(session: boto3.Session, bucket: str, region: str) -> dict[str, Any]:
    s3 = session.client("s3", region_name=region)
    dynamodb = session.client("dynamodb", region_name=region)
    table = dynamodb.describe_table(TableName=TABLE)["Table"]
    return {
        "location": s3.get_bucket_location(Bucket=bucket).get("LocationConstraint"),
        "versioning": s3.get_bucket_versioning(Bucket=bucket).get("Status"),
        "encryption": s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"],
        "pab": s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"],
        "keys": table["KeySchema"],
        "attributes": table["AttributeDefinitions"],
        "billing": table.get("BillingModeSummary", {}).get("BillingMode"),
        "status": table["TableStatus"],
    }


@pytest.mark.parametrize(("region", "location"), [("us-east-1", None), ("eu-west-1", "eu-west-1")])
def test_new_backend_is_created_with_every_setting(
    deployer_session: boto3.Session, region: str, location: str | None
) -> None:
    bucket = _bucket(region)
    before = inspect_backend(deployer_session, bucket, region, TABLE)
    assert not before.bucket_exists and not before.table_exists and before.failure is None

    result = bootstrap_backend(deployer_session, bucket, region, TABLE, fix_existing=False)

    assert result.ok, result.message
    assert result.created_bucket and result.created_table and not result.needs_confirmation
    assert f"created bucket {bucket} in {region}" in result.changes
    assert f"tagged bucket {bucket} ecs-deploy-bot:managed=true" in result.changes
    assert len(result.changes) == 6
    found = _read_back(deployer_session, bucket, region)
    assert found["location"] == location
    assert found["versioning"] == "Enabled"
    assert found["encryption"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert found["pab"] == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    assert found["keys"] == [{"AttributeName": "LockID", "KeyType": "HASH"}]
    assert found["attributes"] == [{"AttributeName": "LockID", "AttributeType": "S"}]
    assert found["billing"] == "PAY_PER_REQUEST"
    assert found["status"] == "ACTIVE"
    assert result.report.ok and all(check.ok for check in result.report.checks)
    # what the bot creates is marked as the bot's: it may later be fixed without a second person
    assert _bucket_tags(deployer_session, bucket) == MANAGED
    assert _table_tags(deployer_session, region) == MANAGED
    assert result.report.facts is not None and result.report.facts.managed


def test_second_run_changes_nothing(deployer_session: boto3.Session) -> None:
    bucket = _bucket("us-east-1")
    first = bootstrap_backend(deployer_session, bucket, "us-east-1", TABLE, fix_existing=False)
    assert first.changes

    second = bootstrap_backend(deployer_session, bucket, "us-east-1", TABLE, fix_existing=False)

    assert second.ok and second.changes == []
    assert not second.created_bucket and not second.created_table
    assert second.message == "State backend already in place: nothing to change."


def test_kms_encryption_uses_the_key_and_bucket_key(deployer_session: boto3.Session) -> None:
    bucket, key = _bucket("eu-west-1"), "arn:aws:kms:eu-west-1:123456789012:key/abcd"
    result = bootstrap_backend(
        deployer_session, bucket, "eu-west-1", TABLE, kms_key_id=key, fix_existing=False
    )
    assert result.ok
    rule = _read_back(deployer_session, bucket, "eu-west-1")["encryption"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}
    assert rule["BucketKeyEnabled"] is True


def existing_bucket(session: boto3.Session, bucket: str) -> Any:
    """A bucket someone else made, with S3's defaults; returns the S3 client."""
    s3 = session.client("s3")
    s3.create_bucket(Bucket=bucket)
    return s3


def test_existing_bucket_missing_settings_needs_confirmation_then_is_fixed(
    deployer_session: boto3.Session,
) -> None:
    bucket = "team-existing-state"
    s3 = existing_bucket(deployer_session, bucket)  # no versioning, no encryption, no public access block

    report = inspect_backend(deployer_session, bucket, "us-east-1", TABLE)
    missing = {check.name for check in report.needs_fix}
    assert missing == {CheckName.VERSIONING, CheckName.ENCRYPTION, CheckName.PUBLIC_ACCESS}
    assert report.bucket_exists and not report.blocking

    asked = bootstrap_backend(deployer_session, bucket, "us-east-1", TABLE, fix_existing=False)
    assert asked.needs_confirmation and not asked.ok and asked.changes == []
    for name in ("versioning", "default encryption", "public access block"):
        assert name in asked.message
    assert "cannot be turned off again, only suspended" in asked.message
    plan = asked.fix_plan
    assert plan is not None and plan.bucket == bucket and not plan.managed  # not tagged: not the bot's
    assert [(c.setting, c.before, c.after, c.reversible) for c in plan.changes] == [
        (Setting.VERSIONING, "never enabled", "Enabled", False),
        (Setting.ENCRYPTION, "none", "SSE-S3 (AES256)", True),
        (
            Setting.PUBLIC_ACCESS,
            "not configured",
            "all four on (BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy, RestrictPublicBuckets)",
            True,
        ),
    ]
    # nothing changed: still unversioned, and the lock table was not created either
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    assert TABLE not in deployer_session.client("dynamodb").list_tables()["TableNames"]

    confirmed = plan.confirm("U0LEAD0001", datetime.now(UTC))
    fixed = bootstrap_backend(deployer_session, bucket, "us-east-1", TABLE, confirmed=confirmed)
    assert fixed.ok, fixed.message
    assert not fixed.created_bucket and fixed.created_table
    assert fixed.changes[:3] == [
        "enabled versioning",
        "turned on default encryption AES256",
        "blocked all public access",
    ]
    found = _read_back(deployer_session, bucket, "us-east-1")
    assert found["versioning"] == "Enabled" and all(found["pab"].values())

    again = bootstrap_backend(deployer_session, bucket, "us-east-1", TABLE, confirmed=confirmed)
    assert again.ok and again.changes == []
    # fixing is not tagging: the bucket is still not the bot's
    assert _bucket_tags(deployer_session, bucket) == {}


def _confirmed_plan(session: boto3.Session, bucket: str, **kwargs: Any) -> BackendFixPlan:
    asked = bootstrap_backend(session, bucket, "us-east-1", TABLE, **kwargs)
    assert asked.needs_confirmation and asked.fix_plan is not None
    return asked.fix_plan.confirm("U0LEAD0001", datetime.now(UTC))


def test_a_confirmation_counts_only_for_the_changes_that_were_confirmed(
    deployer_session: boto3.Session,
) -> None:
    bucket = "team-changing-state"
    s3 = existing_bucket(deployer_session, bucket)
    confirmed = _confirmed_plan(deployer_session, bucket)

    # the bucket changed after the confirmation: the plan differs, so nothing is changed and it asks again
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    stale = bootstrap_backend(deployer_session, bucket, "us-east-1", TABLE, confirmed=confirmed)
    assert stale.needs_confirmation and stale.changes == []
    assert "not as it was when the fix was confirmed" in stale.message
    assert stale.fix_plan is not None and stale.fix_plan.changes[0].before == "Suspended"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    with pytest.raises(ClientError):
        s3.get_public_access_block(Bucket=bucket)

    # a different encryption than the one confirmed is a different fix too
    other_key = bootstrap_backend(
        deployer_session, bucket, "us-east-1", TABLE, kms_key_id="alias/state", confirmed=confirmed
    )
    assert other_key.needs_confirmation and other_key.changes == []


def test_a_confirmation_given_for_a_managed_bucket_does_not_cover_an_untagged_one(
    deployer_session: boto3.Session,
) -> None:
    bucket = "team-untagged-state"
    s3 = existing_bucket(deployer_session, bucket)
    s3.put_bucket_tagging(
        Bucket=bucket, Tagging={"TagSet": [{"Key": "ecs-deploy-bot:managed", "Value": "true"}]}
    )
    confirmed = _confirmed_plan(deployer_session, bucket)
    assert confirmed.managed  # the requester alone may confirm this one

    s3.delete_bucket_tagging(Bucket=bucket)
    result = bootstrap_backend(deployer_session, bucket, "us-east-1", TABLE, confirmed=confirmed)

    assert result.needs_confirmation and result.changes == []
    assert result.fix_plan is not None and not result.fix_plan.managed
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)


def test_partially_configured_bucket_only_fixes_what_is_missing(deployer_session: boto3.Session) -> None:
    bucket = "team-partial-state"
    s3 = existing_bucket(deployer_session, bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": False,
            "RestrictPublicBuckets": True,
        },
    )
    report = inspect_backend(deployer_session, bucket, "us-east-1", TABLE)
    pab = report.check(CheckName.PUBLIC_ACCESS)
    assert pab is not None and not pab.ok and pab.detail == "BlockPublicPolicy not set"
    assert {check.name for check in report.needs_fix} == {CheckName.ENCRYPTION, CheckName.PUBLIC_ACCESS}

    fixed = bootstrap_backend(deployer_session, bucket, "us-east-1", TABLE, fix_existing=True)
    assert fixed.ok
    assert "enabled versioning" not in fixed.changes
    assert "blocked all public access" in fixed.changes


def test_bucket_in_another_region_is_reported(deployer_session: boto3.Session) -> None:
    bucket = "team-state-in-ireland"
    deployer_session.client("s3", region_name="eu-west-1").create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    result = bootstrap_backend(deployer_session, bucket, "us-east-1", TABLE, fix_existing=True)

    assert not result.ok and result.changes == []
    assert result.failure == f"bucket {bucket} is in eu-west-1, not in us-east-1"
    region_check = result.report.check(CheckName.REGION)
    assert region_check is not None and region_check.blocking
    assert result.suggestion == _bucket("us-east-1")


def test_invalid_name_gets_a_message_and_a_valid_suggestion(deployer_session: boto3.Session) -> None:
    result = bootstrap_backend(deployer_session, "My_State_Bucket", "eu-west-1", TABLE, fix_existing=False)

    assert not result.ok and result.changes == []
    assert result.failure is not None
    assert "'My_State_Bucket' is not a valid S3 bucket name" in result.failure
    assert result.suggestion is not None
    assert re.fullmatch(rf"tfstate-{DEFAULT_ACCOUNT}-eu-west-1-[0-9a-f]{{4}}", result.suggestion)
    assert bucket_name_problem(result.suggestion) is None
    assert deployer_session.client("s3").list_buckets()["Buckets"] == []


def test_bucket_of_another_account_is_blocking_in_moto(deployer_session: boto3.Session) -> None:
    """moto answers HeadBucket 200 for another account's bucket (no 403, ExpectedBucketOwner ignored);
    the engine then sees the bucket is missing from the caller's own ListBuckets and blocks."""
    bucket = "shared-looking-state"
    other = boto3.Session(profile_name="other-account", region_name="us-east-1")
    assert other.client("sts").get_caller_identity()["Account"] == OTHER_ACCOUNT
    other.client("s3").create_bucket(Bucket=bucket)

    result = bootstrap_backend(deployer_session, bucket, "us-east-1", TABLE, fix_existing=True)

    assert not result.ok and result.changes == []
    assert result.failure == f"bucket {bucket} exists but belongs to another account — choose another name"
    assert result.suggestion and bucket_name_problem(result.suggestion) is None
    # the other account's bucket was not touched
    assert "Status" not in other.client("s3").get_bucket_versioning(Bucket=bucket)


class _StubbedSession:
    """A ClientFactory handing out real botocore clients wrapped in Stubbers (no unittest.mock)."""

    def __init__(self) -> None:
        session = boto3.Session(
            aws_access_key_id="AKIASTUB", aws_secret_access_key="stub", region_name="us-east-1"
        )
        self.clients = {name: session.client(name) for name in ("s3", "dynamodb", "sts")}
        self.stubs = {name: Stubber(client) for name, client in self.clients.items()}
        self.stubs["sts"].add_response(
            "get_caller_identity",
            {"Account": DEFAULT_ACCOUNT, "Arn": f"arn:aws:iam::{DEFAULT_ACCOUNT}:user/d", "UserId": "AIDA"},
        )

    def client(self, service_name: str, region_name: str | None = None, config: Config | None = None) -> Any:
        return self.clients[service_name]

    def __enter__(self) -> _StubbedSession:
        for stub in self.stubs.values():
            stub.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        for stub in self.stubs.values():
            stub.deactivate()

    def assert_done(self) -> None:
        for stub in self.stubs.values():
            stub.assert_no_pending_responses()


def test_head_bucket_403_means_another_account() -> None:
    """Stubber: real S3 answers HeadBucket with 403 for a bucket of another account; moto does not."""
    fake = _StubbedSession()
    bucket = "taken-by-someone-else"
    fake.stubs["s3"].add_client_error(
        "head_bucket",
        service_error_code="403",
        service_message="Forbidden",
        http_status_code=403,
        expected_params={"Bucket": bucket, "ExpectedBucketOwner": DEFAULT_ACCOUNT},
    )
    fake.stubs["s3"].add_response("list_buckets", {"Buckets": []}, {"Prefix": bucket})
    fake.stubs["dynamodb"].add_client_error(
        "describe_table", service_error_code="ResourceNotFoundException", http_status_code=400
    )
    with fake:
        result = bootstrap_backend(fake, bucket, "us-east-1", TABLE, fix_existing=True)
    fake.assert_done()
    assert not result.ok and result.changes == []
    assert result.failure == f"bucket {bucket} exists but belongs to another account — choose another name"
    assert result.suggestion and result.suggestion.startswith(f"tfstate-{DEFAULT_ACCOUNT}-us-east-1-")


def test_name_taken_at_create_time_suggests_another() -> None:
    """Stubber: the name was free at HeadBucket but CreateBucket says BucketAlreadyExists (a race);
    the moto path of BucketAlreadyExists is covered by test_bucket_of_another_account_is_blocking_in_moto."""
    fake = _StubbedSession()
    bucket = "racy-state-bucket"
    fake.stubs["s3"].add_client_error("head_bucket", service_error_code="404", http_status_code=404)
    fake.stubs["dynamodb"].add_client_error(
        "describe_table", service_error_code="ResourceNotFoundException", http_status_code=400
    )
    fake.stubs["s3"].add_client_error(
        "create_bucket", service_error_code="BucketAlreadyExists", http_status_code=409
    )
    with fake:
        result = bootstrap_backend(fake, bucket, "us-east-1", TABLE, fix_existing=False)
    fake.assert_done()
    assert not result.ok and result.failure is not None
    assert "taken by another AWS account" in result.failure
    assert result.suggestion and bucket_name_problem(result.suggestion) is None


def test_permission_error_names_the_iam_action() -> None:
    """Stubber: moto does not enforce IAM, so AccessDenied on PutBucketVersioning is stubbed."""
    fake = _StubbedSession()
    bucket = "tfstate-denied-example"
    s3 = fake.stubs["s3"]
    s3.add_client_error("head_bucket", service_error_code="404", http_status_code=404)
    fake.stubs["dynamodb"].add_client_error(
        "describe_table", service_error_code="ResourceNotFoundException", http_status_code=400
    )
    s3.add_response("create_bucket", {"Location": f"/{bucket}"}, {"Bucket": bucket})
    s3.add_response(
        "put_bucket_tagging",
        {},
        {"Bucket": bucket, "Tagging": {"TagSet": [{"Key": "ecs-deploy-bot:managed", "Value": "true"}]}},
    )
    s3.add_client_error(
        "put_bucket_versioning",
        service_error_code="AccessDenied",
        service_message="denied",
        http_status_code=403,
    )
    with fake:
        result = bootstrap_backend(fake, bucket, "us-east-1", TABLE, fix_existing=False)
    fake.assert_done()
    assert not result.ok
    assert result.failure == "no permission for s3:PutBucketVersioning (AccessDenied)"
    assert result.changes == [
        f"created bucket {bucket} in us-east-1",
        f"tagged bucket {bucket} ecs-deploy-bot:managed=true",
    ]


def stubbed_own_bucket(fake: _StubbedSession, bucket: str) -> Stubber:
    """The S3 stubs of an inspection up to the bucket's location: it exists, is the caller's own, and
    is in us-east-1. The S3 stubber is returned for the answers that follow."""
    s3 = fake.stubs["s3"]
    s3.add_response("head_bucket", {})
    s3.add_response("list_buckets", {"Buckets": [{"Name": bucket}]})
    s3.add_response("get_bucket_location", {})
    return s3


def test_permission_error_while_inspecting_is_a_failure_not_a_crash() -> None:
    """Stubber: AccessDenied on GetBucketEncryption while reading an existing bucket."""
    fake = _StubbedSession()
    bucket = "tfstate-readonly-example"
    s3 = stubbed_own_bucket(fake, bucket)
    s3.add_response("get_bucket_versioning", {"Status": "Enabled"})
    s3.add_client_error("get_bucket_encryption", service_error_code="AccessDenied", http_status_code=403)
    with fake:
        report = inspect_backend(fake, bucket, "us-east-1", TABLE)
    fake.assert_done()
    assert isinstance(report, BackendReport) and not report.ok
    assert report.failure == "no permission for s3:GetEncryptionConfiguration (AccessDenied)"


def test_unreadable_tags_count_as_not_the_bots_bucket() -> None:
    """Stubber: AccessDenied on GetBucketTagging (moto does not enforce IAM). The bucket is then
    treated as someone else's — the stricter path, where a change needs an approver."""
    fake = _StubbedSession()
    bucket = "tfstate-untaggable-example"
    s3 = stubbed_own_bucket(fake, bucket)
    s3.add_response("get_bucket_versioning", {})
    s3.add_response(
        "get_bucket_encryption",
        {
            "ServerSideEncryptionConfiguration": {
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            }
        },
    )
    s3.add_client_error("get_public_access_block", service_error_code="NoSuchPublicAccessBlockConfiguration")
    s3.add_client_error("get_bucket_tagging", service_error_code="AccessDenied", http_status_code=403)
    fake.stubs["dynamodb"].add_client_error(
        "describe_table", service_error_code="ResourceNotFoundException", http_status_code=400
    )
    with fake:
        result = bootstrap_backend(fake, bucket, "us-east-1", TABLE)
    fake.assert_done()
    assert result.needs_confirmation and result.changes == []
    assert result.fix_plan is not None and not result.fix_plan.managed
    assert result.fix_plan.settings == {Setting.VERSIONING, Setting.PUBLIC_ACCESS}


def test_every_called_operation_has_an_iam_action() -> None:
    assert all(re.fullmatch(r"(s3|dynamodb|sts):[A-Za-z]+", action) for action in IAM_ACTIONS.values())
    assert IAM_ACTIONS["PutBucketVersioning"] == "s3:PutBucketVersioning"
    assert IAM_ACTIONS["GetBucketEncryption"] == "s3:GetEncryptionConfiguration"


def test_lock_table_with_wrong_key_is_blocking(deployer_session: boto3.Session) -> None:
    deployer_session.client("dynamodb").create_table(
        TableName=TABLE,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    result = bootstrap_backend(deployer_session, _bucket("us-east-1"), "us-east-1", TABLE, fix_existing=True)
    assert not result.ok and result.changes == []
    assert result.failure is not None and "Terraform needs hash key LockID (S)" in result.failure
