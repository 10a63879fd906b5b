"""Faults at request time and in jobs: the user always hears what happened, nothing half-written."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bot.embedded_redis import EmbeddedRedis, free_port
from storage.store import DeploymentStore
from tests.harness.processes import WebProcess, run_worker_burst
from tests.harness.slack_api import SlackApiStandIn
from tests.harness.slack_requests import SlackClientSim, request_values

METADATA = json.dumps({"channel_id": "C_DEPLOYS"})


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis", persistent=True).start()
    yield server
    server.stop()


def test_redis_down_gives_try_again_and_the_web_process_recovers(
    own_redis: EmbeddedRedis, bot_env: dict[str, str], slack_api: SlackApiStandIn, tmp_path: Path
) -> None:
    web = WebProcess({**bot_env, "REDIS_URL": own_redis.url}).start()
    try:
        slack = SlackClientSim(web.events_url)
        own_redis.stop()

        down = slack.slash_command("")
        assert down.status_code == 200 and down.text in ("", "{}")  # acked at once; the notice is a modal
        notice = json.dumps(slack_api.wait_for("views.open").params["view"])
        assert "cannot reach its store" in notice and "try again" in notice
        assert "ecs_deploy_request" not in notice  # not the request form

        submitted = slack.view_submission(request_values(), private_metadata=METADATA)
        assert submitted.status_code == 200
        assert "submit again" in json.dumps(submitted.json()["errors"])

        status = slack.slash_command("status")
        assert "cannot reach its store" in status.text

        own_redis.start()
        assert slack.slash_command("").status_code == 200
        slack_api.wait_for(
            "views.open", lambda call: call.params["view"].get("callback_id") == "ecs_deploy_request"
        )
        assert slack.view_submission(request_values(), private_metadata=METADATA).text in ("", "{}")
        assert len(DeploymentStore(redis.Redis.from_url(own_redis.url)).recent()) == 1
    finally:
        web.stop()


def test_unreachable_aws_fails_the_step_with_a_message_a_user_can_act_on(
    slack: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis, bot_env: dict[str, str]
) -> None:
    slack.view_submission(request_values(), private_metadata=METADATA)
    closed = f"http://127.0.0.1:{free_port()}"
    run_worker_burst(
        {**bot_env, "AWS_ENDPOINT_URL": closed, "AWS_ENDPOINT_URL_STS": closed, "AWS_MAX_ATTEMPTS": "1"}
    )
    [deployment] = DeploymentStore(redis_conn).recent()
    assert deployment.status.value == "failed"
    replies = slack_api.thread_texts(deployment.thread_ts or "")
    assert any("AWS could not be reached with profile `deployer`" in r for r in replies), replies


def test_profile_without_credentials_is_named(
    slack: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis, bot_env: dict[str, str]
) -> None:
    slack.view_submission(request_values(profile="broken"), private_metadata=METADATA)
    run_worker_burst(bot_env)
    [deployment] = DeploymentStore(redis_conn).recent()
    replies = slack_api.thread_texts(deployment.thread_ts or "")
    assert any("`broken` has no usable credentials" in r for r in replies), replies
    assert deployment.status.value == "failed"
