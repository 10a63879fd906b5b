"""Slack API faults: rate limits waited out, transient errors retried, an outage bridged by the
outbox (delivered later, in order), deleted messages posted anew — and jobs never fail for it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from bot.notifier import OUTBOX_KEY, PLACEHOLDER_PREFIX, Notifier
from bot.slack import make_web_client
from bot.views.messages import text_message
from core.models import Deployment, DeploymentStatus
from core.settings import Settings
from core.store import DeploymentStore
from tests.harness.flow import eventually
from tests.harness.processes import ROOT, run_worker_burst
from tests.harness.slack_api import BOT_TOKEN, SlackApiStandIn
from tests.harness.slack_requests import SlackClientSim, request_values
from tests.test_crash_recovery import REQUESTER, request, wait_until

METADATA = json.dumps({"channel_id": "C_DEPLOYS"})


@pytest.fixture
def settings(bot_env: dict[str, str]) -> Settings:
    return Settings(
        SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=bot_env["SLACK_API_URL"], REDIS_URL=bot_env["REDIS_URL"]
    )


@pytest.fixture
def notifier(settings: Settings, redis_conn: redis.Redis, slack_api: SlackApiStandIn) -> Notifier:
    return Notifier(make_web_client(settings), DeploymentStore(redis_conn))


def new_deployment(notifier: Notifier) -> Deployment:
    deployment, _ = notifier.store.create(
        Deployment(request=request(), requester_id=REQUESTER, channel_id="C_DEPLOYS")
    )
    return deployment


def thread_posts(api: SlackApiStandIn, thread: str) -> list[str]:
    """Texts of the messages that reached the thread (successful posts only), in order."""
    return [
        m["text"]
        for m in sorted(api.messages.values(), key=lambda m: m["ts"])
        if m.get("thread_ts") == thread
    ]


def stop_failing(api: SlackApiStandIn, method: str) -> None:
    api.failures.pop(method, None)


# -- retries inside the client -------------------------------------------------------------------


def test_rate_limits_are_waited_out_and_retried(settings: Settings, slack_api: SlackApiStandIn) -> None:
    slack_api.fail("chat.postMessage", "ratelimited", status=429, retry_after=1, times=2)
    started = time.monotonic()
    response = make_web_client(settings).chat_postMessage(channel="C_DEPLOYS", text="hello")
    elapsed = time.monotonic() - started
    assert response["ok"] and elapsed >= 2.0, elapsed  # Retry-After: 1, twice
    calls = slack_api.calls_to("chat.postMessage")
    assert len(calls) == 3 and calls[2].at - calls[0].at >= 2.0


def test_rate_limited_status_post_arrives_through_the_notifier(
    notifier: Notifier, slack_api: SlackApiStandIn
) -> None:
    deployment = notifier.ensure_thread(new_deployment(notifier))
    slack_api.fail("chat.postMessage", "ratelimited", status=429, retry_after=1)
    ts = notifier.post(deployment, text_message("still here"))
    assert ts and not ts.startswith(PLACEHOLDER_PREFIX)
    assert thread_posts(slack_api, deployment.thread_ts or "") == ["still here"]
    assert notifier.outbox_size() == 0


@pytest.mark.parametrize(("error", "status"), [("fatal_error", 200), ("internal_error", 500), ("x", 503)])
def test_transient_server_errors_are_retried(
    settings: Settings, slack_api: SlackApiStandIn, error: str, status: int
) -> None:
    slack_api.fail("chat.postMessage", error, status=status, times=2)
    assert make_web_client(settings).chat_postMessage(channel="C_DEPLOYS", text="hi")["ok"]
    assert len(slack_api.calls_to("chat.postMessage")) == 3


def test_a_permanent_refusal_is_logged_not_queued(notifier: Notifier, slack_api: SlackApiStandIn) -> None:
    deployment = notifier.ensure_thread(new_deployment(notifier))
    slack_api.fail("chat.postMessage", "invalid_blocks")
    assert notifier.post(deployment, text_message("bad")) is None
    assert len(slack_api.calls_to("chat.postMessage")) == 2  # the root, and one try
    assert notifier.outbox_size() == 0


# -- the outbox ----------------------------------------------------------------------------------


def test_outage_messages_wait_in_the_outbox_and_arrive_in_order(
    notifier: Notifier, slack_api: SlackApiStandIn, redis_conn: redis.Redis
) -> None:
    deployment = notifier.ensure_thread(new_deployment(notifier))
    thread = deployment.thread_ts or ""
    before = len(slack_api.calls_to("chat.postMessage"))  # the root message
    slack_api.fail("chat.postMessage", "internal_error", status=500, times=1000)
    first = notifier.post(deployment, text_message("one"), remember=True)
    assert first and first.startswith(PLACEHOLDER_PREFIX)
    assert notifier.update(deployment, first, text_message("one, updated")) == first
    second = notifier.post(deployment, text_message("two"))
    notifier.set_status(deployment.id, DeploymentStatus.DEPLOYED, "done")
    assert notifier.outbox_size() >= 3
    assert thread_posts(slack_api, thread) == []
    attempts = len(slack_api.calls_to("chat.postMessage")) - before
    assert attempts == 3  # one post tried (and retried twice); the rest queued behind it

    assert notifier.deliver_outbox(force=True) == 0  # still down: nothing lost, nothing reordered
    assert notifier.outbox_size() >= 3

    stop_failing(slack_api, "chat.postMessage")
    assert notifier.deliver_outbox(force=True) >= 3
    assert notifier.outbox_size() == 0 and not redis_conn.hlen("ecs-deploy:outbox:pending")
    assert thread_posts(slack_api, thread) == ["one, updated", "two"]
    assert "Deployed" in json.dumps(slack_api.messages[thread]["blocks"])
    # placeholders now resolve: a later update and a decision reach the delivered message
    assert second is not None
    notifier.update(deployment, second, text_message("two, later"))
    notifier.decide(deployment, first, "decided")
    assert thread_posts(slack_api, thread) == ["decided", "two, later"]


def test_a_job_completes_during_an_outage_and_its_messages_arrive_afterwards(
    slack: SlackClientSim,
    slack_api: SlackApiStandIn,
    redis_conn: redis.Redis,
    bot_env: dict[str, str],
    settings: Settings,
) -> None:
    slack.view_submission(request_values(), private_metadata=METADATA)
    [deployment] = DeploymentStore(redis_conn).recent()
    # the web process posts the root message after it answered Slack: wait until its ts is stored
    eventually(lambda: DeploymentStore(redis_conn).get(deployment.id).thread_ts is not None)
    thread = DeploymentStore(redis_conn).get(deployment.id).thread_ts
    assert thread, "the web process posted the root message"
    slack_api.fail("chat.postMessage", "fatal_error", status=500, times=10_000)

    log = run_worker_burst(bot_env, timeout=120)  # verify, then analyse the account
    current = DeploymentStore(redis_conn).get(deployment.id)
    assert current.status is DeploymentStatus.AWAITING_DECISION, current.status_detail
    assert "Traceback" not in log and "step_crashed" not in log
    assert thread_posts(slack_api, thread) == []
    queued = [json.loads(raw) for raw in redis_conn.lrange(OUTBOX_KEY, 0, -1)]
    assert {e["kind"] for e in queued} >= {"post"} and all(
        e["deployment_id"] == deployment.id for e in queued
    )

    stop_failing(slack_api, "chat.postMessage")
    Notifier(make_web_client(settings), DeploymentStore(redis_conn)).deliver_outbox(force=True)
    posts = thread_posts(slack_api, thread)
    assert len(posts) >= 2 and "AWS access verified" in posts[0], posts
    assert any("ANALYSIS" in p.upper() for p in posts[1:]), posts
    root = slack_api.messages[DeploymentStore(redis_conn).get(deployment.id).thread_ts or ""]
    assert "Waiting for a decision" in json.dumps(root["blocks"])
    assert redis_conn.llen(OUTBOX_KEY) == 0


def test_a_live_worker_delivers_the_outbox_when_slack_is_back(
    notifier: Notifier, slack_api: SlackApiStandIn, bot_env: dict[str, str], tmp_path: Path
) -> None:
    deployment = notifier.ensure_thread(new_deployment(notifier))
    slack_api.fail("chat.postMessage", "service_unavailable", status=503, times=1000)
    notifier.post(deployment, text_message(":white_check_mark: final status"))
    assert notifier.outbox_size() == 1
    stop_failing(slack_api, "chat.postMessage")

    env = {**os.environ, **bot_env, "ECS_DEPLOY_HEARTBEAT_INTERVAL": "1", "ECS_DEPLOY_SWEEP_INTERVAL": "2"}
    with (tmp_path / "worker.log").open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "worker"], env=env, cwd=ROOT, stdout=out, stderr=out
        )
    try:
        wait_until(
            lambda: (
                thread_posts(slack_api, deployment.thread_ts or "") == [":white_check_mark: final status"]
            ),
            20,
            "the worker to deliver the outbox",
        )
        assert notifier.outbox_size() == 0
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=15)
    assert BOT_TOKEN not in (tmp_path / "worker.log").read_text()


def test_gives_up_after_bounded_attempts(
    notifier: Notifier, slack_api: SlackApiStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.notifier as module

    monkeypatch.setattr(module, "OUTBOX_MAX_ATTEMPTS", 3)
    deployment = notifier.ensure_thread(new_deployment(notifier))
    slack_api.fail("chat.postMessage", "fatal_error", times=1000)
    notifier.post(deployment, text_message("lost"))
    for _ in range(3):
        notifier.deliver_outbox(force=True)
    assert notifier.outbox_size() == 0
    assert len(slack_api.calls_to("chat.postMessage")) == 1 + 3 * 3  # root, then 3 attempts x 3 tries


# -- messages deleted in Slack -------------------------------------------------------------------


def test_an_update_of_a_deleted_message_posts_a_new_one(
    notifier: Notifier, slack_api: SlackApiStandIn
) -> None:
    deployment = notifier.ensure_thread(new_deployment(notifier))
    thread = deployment.thread_ts or ""
    ts = notifier.post(deployment, text_message(":gear: Applying… 1/3"), remember=True)
    assert ts
    assert notifier.update(deployment, ts, text_message(":gear: Applying… 2/3")) == ts
    slack_api.delete_message(ts)

    new_ts = notifier.update(deployment, ts, text_message(":gear: Applying… 3/3"))
    assert new_ts and new_ts != ts
    assert slack_api.messages[new_ts]["text"] == ":gear: Applying… 3/3"
    assert slack_api.messages[new_ts]["thread_ts"] == thread
    notifier.decide(deployment, ts, "decided")  # gone: nothing to decide, and no error
    assert notifier.outbox_size() == 0
