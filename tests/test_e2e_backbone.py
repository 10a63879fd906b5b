"""The walking skeleton end to end: slash command → modal → validation errors → valid submission →
root message → real RQ worker → thread reply with the verified identity.

Real parts: the bot's web process over HTTP, a real Redis, a real `ecs-deploy-bot worker --burst`,
moto in server mode, and the Slack Web API stand-in.
"""

from __future__ import annotations

import json

import pytest
import redis
from rq import Queue

from storage.queue import JOB_SERIALIZER
from storage.store import DeploymentStore
from tests.harness.processes import run_worker_burst
from tests.harness.slack_api import SlackApiStandIn
from tests.harness.slack_requests import SlackClientSim, request_values

pytestmark = pytest.mark.e2e


def open_modal(slack: SlackClientSim, slack_api: SlackApiStandIn) -> dict:
    response = slack.slash_command("")
    assert response.status_code == 200
    return slack_api.wait_for("views.open").params


def test_slash_command_opens_the_request_modal(slack: SlackClientSim, slack_api: SlackApiStandIn) -> None:
    params = open_modal(slack, slack_api)
    assert params["trigger_id"] == "111.222.valid"
    view = params["view"]
    block_ids = {block.get("block_id") for block in view["blocks"]}
    assert {
        "profile",
        "account_situation",
        "size",
        "account_id",
        "region",
        "application",
        "environment",
        "additional_tags",
    } <= block_ids
    profile_block = next(b for b in view["blocks"] if b.get("block_id") == "profile")
    offered = [o["value"] for o in profile_block["element"]["options"]]
    assert "deployer" in offered and "other-account" in offered
    text = json.dumps(view, ensure_ascii=False)
    assert "$50–100/month" in text and "$800–1,500/month" in text
    assert json.loads(view["private_metadata"])["channel_id"] == "C_DEPLOYS"


def test_invalid_values_come_back_as_inline_errors(
    slack: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis
) -> None:
    metadata = json.dumps({"channel_id": "C_DEPLOYS"})
    hostile = request_values(
        account_id="12345",
        region="mars-north-1",
        application="Web;$(rm -rf /)",
        environment="../etc",
        additional_tags="aws:owner=me\nbad line",
    )
    response = slack.view_submission(hostile, private_metadata=metadata)
    assert response.status_code == 200
    body = response.json()
    assert body["response_action"] == "errors"
    errors = body["errors"]
    assert set(errors) >= {"account_id", "region", "application", "environment", "additional_tags"}
    assert "12 digits" in errors["account_id"]
    assert redis_conn.keys("ecs-deploy:deployment:*") == []
    assert Queue("ecs-deploy", connection=redis_conn, serializer=JOB_SERIALIZER).count == 0


def test_valid_submission_runs_the_slice_to_a_verified_identity(
    slack: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis, bot_env: dict[str, str]
) -> None:
    open_modal(slack, slack_api)
    metadata = json.dumps({"channel_id": "C_DEPLOYS", "team_id": "T111"})
    response = slack.view_submission(request_values(), private_metadata=metadata, view_id="V-VALID")
    assert response.status_code == 200 and response.text in ("", "{}")

    root = slack_api.wait_for("chat.postMessage", lambda c: "thread_ts" not in c.params)
    assert root.params["channel"] == "C_DEPLOYS"
    assert (
        "ECS deployment requested: web/dev · 123456789012 · us-east-1 · small — by <@U0REQUEST1>"
        in root.params["text"]
    )

    store = DeploymentStore(redis_conn)
    [deployment] = store.recent()
    assert deployment.request.additional_tags == {"team": "platform"}
    assert Queue("ecs-deploy", connection=redis_conn, serializer=JOB_SERIALIZER).count == 1

    run_worker_burst(bot_env)

    thread_ts = store.get(deployment.id).thread_ts
    assert thread_ts is not None
    replies = slack_api.thread_texts(thread_ts)
    assert any(
        "AWS access verified" in r and "123456789012" in r and "arn:aws:sts::123456789012:user/" in r
        for r in replies
    ), replies
    updates = [c for c in slack_api.calls_to("chat.update") if c.params["ts"] == thread_ts]
    assert updates, "the root message is kept up to date"
    assert store.get(deployment.id).identity is not None


def test_account_mismatch_is_reported_with_the_real_account(
    slack: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis, bot_env: dict[str, str]
) -> None:
    metadata = json.dumps({"channel_id": "C_DEPLOYS"})
    slack.view_submission(
        request_values(profile="other-account", account_id="123456789012"),
        private_metadata=metadata,
        view_id="V-MISMATCH",
    )
    run_worker_burst(bot_env)
    [deployment] = DeploymentStore(redis_conn).recent()
    assert deployment.status.value == "failed"
    replies = slack_api.thread_texts(deployment.thread_ts or "")
    assert any("reaches account *222233334444*, not 123456789012" in r for r in replies), replies


def test_double_submit_creates_one_deployment_and_one_job(
    slack: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis
) -> None:
    metadata = json.dumps({"channel_id": "C_DEPLOYS"})
    for _ in range(3):
        assert (
            slack.view_submission(request_values(), private_metadata=metadata, view_id="V-TWICE").status_code
            == 200
        )
    retry = slack.view_submission(
        request_values(),
        private_metadata=metadata,
        view_id="V-OTHER",
        headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"},
    )
    assert retry.status_code == 200
    assert len(DeploymentStore(redis_conn).recent()) == 1
    assert Queue("ecs-deploy", connection=redis_conn, serializer=JOB_SERIALIZER).count == 1
