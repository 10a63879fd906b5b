"""Issue 10, finding 1: a requester names another team's existing bucket as the state bucket and
clicks "Fix the bucket". The bot must not change a bucket it did not create on the requester's word:
only an approver of the profile (self-approval rules apply) may confirm, and the confirmation lists
exactly what will change. Buckets and tables the bot creates are tagged `ecs-deploy-bot:managed=true`
and may be fixed on the requester's word alone.

End to end on real parts (the signed HTTP Bolt app, the Slack stand-in, Redis, RQ burst workers, moto),
plus the pure change list, the confirmation rule and the confirmation's text.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from bot.views.access import reason_text, who_may_confirm
from bot.views.pipeline import CheckLine, backend_message
from core.backend_confirm import may_confirm_fix
from core.backend_fix import BackendFixPlan, BucketFacts, Setting, bucket_changes, plan_fix
from core.models import AccountSituation, Deployment, DeploymentStatus
from core.policy.access import AccessPolicy
from core.policy.loading import parse_policy
from core.policy.principals import SlackIdentity
from storage.store import DeploymentStore
from tests.harness.flow import BYSTANDER, LEAD, REQUESTER, PipelineRun, click, ephemeral_to, eventually
from tests.harness.processes import run_worker_burst
from tests.harness.records import deployment_request
from tests.harness.slack_api import SlackApiStandIn

FOREIGN = "other-team-terraform-state"
TABLE = "terraform-state-lock"
MANAGED = {"ecs-deploy-bot:managed": "true"}
ALL_FOUR = "all four on (BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy, RestrictPublicBuckets)"


def _s3() -> Any:
    return boto3.Session(profile_name="deployer", region_name="us-east-1").client("s3")


def _bucket_settings(bucket: str) -> dict[str, Any]:
    """What S3 says about the bucket's three settings and tags (None where nothing is configured)."""
    s3 = _s3()

    def read(call: Any, key: str, missing: str) -> Any:
        try:
            return call(Bucket=bucket)[key]
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == missing, exc.response["Error"]
            return None

    return {
        "versioning": s3.get_bucket_versioning(Bucket=bucket).get("Status"),
        "encryption": read(
            s3.get_bucket_encryption,
            "ServerSideEncryptionConfiguration",
            "ServerSideEncryptionConfigurationNotFoundError",
        ),
        "pab": read(
            s3.get_public_access_block,
            "PublicAccessBlockConfiguration",
            "NoSuchPublicAccessBlockConfiguration",
        ),
        "tags": {t["Key"]: t["Value"] for t in read(s3.get_bucket_tagging, "TagSet", "NoSuchTagSet") or []},
    }


UNTOUCHED = {"versioning": None, "encryption": None, "pab": None, "tags": {}}


def _thread(api: SlackApiStandIn, store: DeploymentStore, deployment_id: str) -> str:
    return "\n".join(api.thread_texts(store.get(deployment_id).thread_ts or ""))


def _to_backend_fix(run: PipelineRun, view_id: str, **request: str) -> Deployment:
    deployment_id = run.submit_new_account(view_id, **request)
    run_worker_burst(run.env)  # verify, (no scan: a new account), state backend
    deployment = run.store.get(deployment_id)
    assert deployment.status is DeploymentStatus.AWAITING_BACKEND_FIX, deployment.status_detail
    assert deployment.thread_ts
    return deployment


@pytest.mark.e2e
def test_a_requester_cannot_change_a_foreign_bucket_alone_an_approver_can(pipeline_run: PipelineRun) -> None:
    pipeline, slack_api, store, pipeline_env = pipeline_run
    _s3().create_bucket(Bucket=FOREIGN)  # another team's bucket: untagged, unversioned
    deployment = _to_backend_fix(pipeline_run, "V-FOREIGN", state_bucket=FOREIGN)
    thread = deployment.thread_ts or ""

    # the confirmation names every change, says versioning cannot be undone, and who may confirm
    asked = _thread(slack_api, store, deployment.id)
    assert "The bot did not create this bucket" in asked
    assert (
        "*versioning*: never enabled → *Enabled* — :warning: *cannot be turned off again, only suspended*"
        in asked
    )
    assert "*default encryption*: none → *SSE-S3 (AES256)*" in asked
    assert f"*public access block*: not configured → *{ALL_FOUR}*" in asked
    assert "only an approver of profile deployer, other than the requester, can confirm" in asked
    assert _bucket_settings(FOREIGN) == UNTOUCHED

    # the requester clicks Fix: refused, told why, nothing queued, nothing changed
    click(pipeline, slack_api, thread, "backend_fix", REQUESTER)
    refusal = ephemeral_to(slack_api, REQUESTER, "was not created by the bot")
    assert "needs an approver of the profile other than the requester" in refusal
    assert "does not allow self-approval" in refusal
    # a bystander (neither requester nor approver) is refused as well
    click(pipeline, slack_api, thread, "backend_fix", BYSTANDER)
    ephemeral_to(slack_api, BYSTANDER, "You are not an approver for profile deployer")
    run_worker_burst(pipeline_env)  # would run a fix had any click queued one
    assert store.get(deployment.id).status is DeploymentStatus.AWAITING_BACKEND_FIX
    assert _bucket_settings(FOREIGN) == UNTOUCHED
    assert TABLE not in boto3.Session(profile_name="deployer").client("dynamodb").list_tables()["TableNames"]

    # an approver who is not the requester confirms: the fix runs and the thread says what changed
    click(pipeline, slack_api, thread, "backend_fix", LEAD)
    eventually(lambda: store.get(deployment.id).status is DeploymentStatus.PREPARING_BACKEND)
    run_worker_burst(pipeline_env)
    assert store.get(deployment.id).status is DeploymentStatus.AWAITING_INPUT
    after = _bucket_settings(FOREIGN)
    assert after["versioning"] == "Enabled"
    assert after["encryption"]["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert after["pab"] == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    assert after["tags"] == {}  # fixing someone's bucket does not make it the bot's
    done = _thread(slack_api, store, deployment.id)
    assert f"Changes to `{FOREIGN}` confirmed by <@{LEAD}> (an approver" in json.dumps(
        [c.params for c in slack_api.calls_to("chat.update")], ensure_ascii=False
    )
    assert "enabled versioning" in done and "turned on default encryption AES256" in done
    assert "blocked all public access" in done and f"Confirmed by <@{LEAD}>." in done
    assert store.get(deployment.id).backend_fix is None  # a confirmation is used once


@pytest.mark.e2e
def test_what_the_bot_creates_is_tagged_and_the_requester_alone_may_fix_it(pipeline_run: PipelineRun) -> None:
    pipeline, slack_api, store, pipeline_env = pipeline_run
    first = pipeline_run.submit_new_account("V-OURS-1")
    run_worker_burst(pipeline_env)
    bucket = store.get(first).request.state_bucket
    assert store.get(first).status is DeploymentStatus.AWAITING_INPUT
    assert _bucket_settings(bucket)["tags"] == MANAGED
    dynamodb = boto3.Session(profile_name="deployer", region_name="us-east-1").client("dynamodb")
    arn = dynamodb.describe_table(TableName=TABLE)["Table"]["TableArn"]
    assert {t["Key"]: t["Value"] for t in dynamodb.list_tags_of_resource(ResourceArn=arn)["Tags"]} == MANAGED

    _s3().delete_public_access_block(Bucket=bucket)  # drift on the bot's own bucket
    deployment = _to_backend_fix(
        pipeline_run, "V-OURS-2", application="api"
    )  # another environment, same bucket
    assert deployment.request.state_bucket == bucket
    assert deployment.backend_fix is not None and deployment.backend_fix.managed
    assert [c.setting for c in deployment.backend_fix.changes] == [Setting.PUBLIC_ACCESS]
    assert "The bot created this bucket" in _thread(slack_api, store, deployment.id)

    click(pipeline, slack_api, deployment.thread_ts or "", "backend_fix", REQUESTER)
    eventually(lambda: store.get(deployment.id).status is DeploymentStatus.PREPARING_BACKEND)
    run_worker_burst(pipeline_env)
    assert store.get(deployment.id).status is DeploymentStatus.AWAITING_INPUT
    assert all(_bucket_settings(bucket)["pab"].values())


# -- the change list, the confirmation rule and its text (pure) ----------------------------------


def test_the_change_list_names_each_setting_before_and_after() -> None:
    bare = BucketFacts(bucket="b", managed=False)
    assert [(c.setting, c.before, c.after, c.reversible) for c in bucket_changes(bare, "alias/state")] == [
        (Setting.VERSIONING, "never enabled", "Enabled", False),
        (Setting.ENCRYPTION, "none", "SSE-KMS (aws:kms, key alias/state, S3 Bucket Key on)", True),
        (Setting.PUBLIC_ACCESS, "not configured", ALL_FOUR, True),
    ]
    partial = BucketFacts(
        bucket="b",
        managed=True,
        versioning="Suspended",
        encryption=("AES256",),
        public_access=("BlockPublicAcls", "IgnorePublicAcls"),
    )
    [versioning, public] = bucket_changes(partial)
    assert versioning.text == "versioning: Suspended → Enabled (cannot be turned off again, only suspended)"
    assert public.before == "BlockPublicPolicy, RestrictPublicBuckets off"
    done = BucketFacts(
        bucket="b",
        managed=False,
        versioning="Enabled",
        encryption=("aws:kms",),
        public_access=("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"),
    )
    assert bucket_changes(done) == ()


POLICY = """
version: 1
defaults:
  environments:
    dev:
profiles:
  deployer:
    requesters: ["*"]
    approvers: [U0LEAD0001, U0REQUEST1]
  self-service:
    requesters: ["*"]
    approvers: [U0LEAD0001, U0REQUEST1]
    allow_self_approval: true
"""


def _deployment(profile: str = "deployer", value_authors: tuple[str, ...] = ()) -> Deployment:
    request = deployment_request(
        profile=profile, account_situation=AccountSituation.NEW, state_bucket=FOREIGN
    )
    return Deployment(
        request=request, requester_id=REQUESTER, channel_id="C1", value_authors=list(value_authors)
    )


def _may(policy: AccessPolicy, user: str, plan: BackendFixPlan, deployment: Deployment) -> bool:
    return may_confirm_fix(policy, SlackIdentity(user_id=user), deployment, plan).allowed


@pytest.mark.parametrize(
    ("profile", "managed", "user", "allowed"),
    [
        ("deployer", False, REQUESTER, False),  # the requester is an approver, but not for their own
        ("deployer", False, LEAD, True),
        ("deployer", False, BYSTANDER, False),
        ("deployer", True, REQUESTER, True),  # the bot's own bucket: the requester alone
        ("deployer", True, LEAD, True),
        ("deployer", True, BYSTANDER, False),
        ("self-service", False, REQUESTER, True),  # the policy allows self-approval here
    ],
)
def test_who_may_confirm_a_fix(profile: str, managed: bool, user: str, allowed: bool) -> None:
    policy = parse_policy(POLICY)
    plan = plan_fix(BucketFacts(bucket=FOREIGN, managed=managed))
    assert _may(policy, user, plan, _deployment(profile)) is allowed


def test_whoever_set_values_confirms_a_foreign_fix_only_where_self_approval_is_allowed() -> None:
    policy = parse_policy(POLICY)
    plan = plan_fix(BucketFacts(bucket=FOREIGN, managed=False))
    assert not _may(policy, LEAD, plan, _deployment(value_authors=(LEAD,)))
    assert _may(policy, LEAD, plan, _deployment("self-service", value_authors=(LEAD,)))


def test_the_open_default_policy_needs_a_configured_approver() -> None:
    plan = plan_fix(BucketFacts(bucket=FOREIGN, managed=False))
    nobody = AccessPolicy.open(frozenset())
    decision = may_confirm_fix(nobody, SlackIdentity(user_id=LEAD), _deployment(), plan)
    assert not decision.allowed and "ECS_DEPLOY_APPROVERS" in reason_text(decision)
    assert "Approvers: nobody" in who_may_confirm(nobody, _deployment(), plan)


def test_the_confirmation_message_lists_every_change_and_who_may_confirm() -> None:
    plan = plan_fix(BucketFacts(bucket=FOREIGN, managed=False), "alias/state")
    policy = parse_policy(POLICY)
    message = backend_message(
        "d-1",
        bucket=FOREIGN,
        table=TABLE,
        headline="needs changes",
        checks=[CheckLine(ok=False, name="versioning", detail="versioning is not enabled")],
        needs_confirmation=True,
        fix_plan=plan,
        who_may_confirm=who_may_confirm(policy, _deployment(), plan),
    )
    text = json.dumps(message.block_dicts(), ensure_ascii=False)
    assert "The bot did not create this bucket" in text
    for change in plan.changes:
        assert f"*{change.setting.value}*: {change.before} → *{change.after}*" in text
    assert "can never be turned off again on this bucket, only suspended" in text
    assert (
        f"other than the requester, can confirm these changes. Approvers: <@{LEAD}>, <@{REQUESTER}>" in text
    )
    assert [
        e["action_id"] for b in message.block_dicts() if b["type"] == "actions" for e in b["elements"]
    ] == [
        "backend_fix",
        "deployment_cancel",
    ]
