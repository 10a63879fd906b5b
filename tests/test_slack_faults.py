"""Slack API faults: rate limits waited out, transient errors retried, an outage bridged by the
outbox (delivered later, in order), a post whose answer was lost looked up instead of posted twice,
deleted messages posted anew — and jobs never fail or wait for it (issue 11 §2)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import redis
from slack_sdk.errors import SlackApiError

from bot.notifier import PLACEHOLDER_PREFIX, Notifier
from bot.outbox import DUE_KEY, list_key
from bot.slack import make_web_client
from bot.views.messages import text_message
from core.lifecycle import Move
from core.models import Deployment, DeploymentStatus
from core.settings import Settings
from storage.audit import AuditTrail
from storage.store import DeploymentStore
from tests.harness.flow import LEAD, PipelineRun, click, drive_to_plan_stage, eventually, submit
from tests.harness.processes import ROOT, run_worker_burst
from tests.harness.records import deployment_request
from tests.harness.slack_api import BOT_TOKEN, SlackApiStandIn
from tests.harness.slack_requests import SlackClientSim, request_values
from tests.test_crash_recovery import REQUESTER, wait_until

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
        Deployment(request=deployment_request(), requester_id=REQUESTER, channel_id="C_DEPLOYS")
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


def test_a_rate_limited_post_waits_out_retry_after_in_the_outbox(
    notifier: Notifier, slack_api: SlackApiStandIn
) -> None:
    deployment = notifier.ensure_thread(new_deployment(notifier))
    slack_api.fail("chat.postMessage", "ratelimited", status=429, retry_after=1)
    ts = notifier.post(deployment, text_message("still here"))
    assert ts and ts.startswith(PLACEHOLDER_PREFIX)  # nobody waited for Slack
    answered = slack_api.calls_to("chat.postMessage")[-1].at
    due = notifier.next_due()
    assert due is not None and due >= answered + 1  # not tried again before Retry-After
    assert notifier.deliver_outbox(force=True) == 1
    assert thread_posts(slack_api, deployment.thread_ts or "") == ["still here"]
    assert notifier.outbox_size() == 0 and notifier.sender.resolve(deployment.id, ts) in slack_api.messages


@pytest.mark.parametrize(("error", "status"), [("fatal_error", 200), ("internal_error", 500), ("x", 503)])
def test_transient_server_errors_are_retried_by_the_client_where_that_is_safe(
    settings: Settings, slack_api: SlackApiStandIn, error: str, status: int
) -> None:
    client = make_web_client(settings)
    posted = client.chat_postMessage(channel="C_DEPLOYS", text="hi")
    slack_api.fail("chat.update", error, status=status, times=2)
    assert client.chat_update(channel="C_DEPLOYS", ts=posted["ts"], text="again")["ok"]
    assert len(slack_api.calls_to("chat.update")) == 3
    # a post is never retried blindly: Slack may have posted it (the outbox looks it up first)
    slack_api.fail("chat.postMessage", error, status=status)
    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel="C_DEPLOYS", text="once")
    assert len(slack_api.calls_to("chat.postMessage")) == 2


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
    notifier.store.update(deployment.id, lambda d: d.with_status(DeploymentStatus.VERIFYING_DEPLOYMENT))
    notifier.set_status(deployment.id, Move.DEPLOYMENT_VERIFIED, "done")
    assert notifier.outbox_size() >= 3
    assert thread_posts(slack_api, thread) == []
    attempts = len(slack_api.calls_to("chat.postMessage")) - before
    assert attempts == 1  # one post tried (no blind retry); the rest queued behind it

    assert notifier.deliver_outbox(force=True) == 0  # still down: nothing lost, nothing reordered
    assert notifier.outbox_size() >= 3

    stop_failing(slack_api, "chat.postMessage")
    assert notifier.deliver_outbox(force=True) >= 3
    assert notifier.outbox_size() == 0 and not redis_conn.zcard(DUE_KEY)
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
    queued = [json.loads(raw) for raw in redis_conn.lrange(list_key(deployment.id), 0, -1)]
    assert {e["kind"] for e in queued} >= {"post", "upload"} and all(
        e["deployment_id"] == deployment.id for e in queued
    )

    stop_failing(slack_api, "chat.postMessage")
    notifier = Notifier(make_web_client(settings), DeploymentStore(redis_conn))
    # the web process's deliverer may be at it too: either delivers, in order
    eventually(lambda: notifier.deliver_outbox(force=True) >= 0 and notifier.outbox_size() == 0, timeout=30)
    posts = thread_posts(slack_api, thread)
    assert len(posts) >= 2 and "AWS access verified" in posts[0], posts
    assert any("ANALYSIS" in p.upper() for p in posts[1:]), posts
    assert len(posts) == len(set(posts)), posts  # 500s that may have posted were looked up, not re-sent
    root = slack_api.messages[DeploymentStore(redis_conn).get(deployment.id).thread_ts or ""]
    assert "Waiting for a decision" in json.dumps(root["blocks"])
    # the report file came after its summary
    shown = [("file" if m.get("files") else m["text"]) for m in slack_api.thread(thread)]
    assert shown.index("file") > next(i for i, t in enumerate(shown) if "ANALYSIS" in t.upper())


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
        # the entry leaves the outbox after Slack accepted it (at least once, never lost)
        wait_until(lambda: notifier.outbox_size() == 0, 10, "the delivered entry to leave the outbox")
        assert thread_posts(slack_api, deployment.thread_ts or "") == [":white_check_mark: final status"]
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert BOT_TOKEN not in (tmp_path / "worker.log").read_text()


def test_gives_up_after_bounded_attempts(
    notifier: Notifier, slack_api: SlackApiStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.notifier.delivery as module

    monkeypatch.setattr(module, "OUTBOX_MAX_ATTEMPTS", 3)
    deployment = notifier.ensure_thread(new_deployment(notifier))
    slack_api.fail("chat.postMessage", "fatal_error", times=1000)
    notifier.post(deployment, text_message("lost"))
    for _ in range(3):
        notifier.deliver_outbox(force=True)
    assert notifier.outbox_size() == 0
    assert len(slack_api.calls_to("chat.postMessage")) == 1 + 3  # root, then 3 attempts
    assert len(slack_api.calls_to("conversations.replies")) == 2  # each retry looked first


def test_rate_limits_do_not_use_up_the_attempts(
    notifier: Notifier, slack_api: SlackApiStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.notifier.delivery as module

    monkeypatch.setattr(module, "OUTBOX_MAX_ATTEMPTS", 2)
    deployment = notifier.ensure_thread(new_deployment(notifier))
    slack_api.fail("chat.postMessage", "ratelimited", status=429, retry_after=1, times=4)
    notifier.post(deployment, text_message("patient"))
    for _ in range(4):
        notifier.deliver_outbox(force=True)
    assert thread_posts(slack_api, deployment.thread_ts or "") == ["patient"]
    assert len(slack_api.calls_to("chat.postMessage")) == 1 + 5  # root, four 429s, then it went


# -- ambiguous failures: Slack did it, but answered with a fault ------------------------------------


def test_a_post_slack_made_but_answered_500_is_found_not_posted_again(
    notifier: Notifier, slack_api: SlackApiStandIn
) -> None:
    """Issue 11: Slack processed a chat.postMessage but answered 500; it was retried and
    ':gear: Applying plan #1…' appeared six times."""
    deployment = notifier.ensure_thread(new_deployment(notifier))
    thread = deployment.thread_ts or ""
    slack_api.fail_processed("chat.postMessage", "internal_error", status=500)
    ts = notifier.post(deployment, text_message(":gear: Applying plan #1…"), remember=True)
    assert ts and ts.startswith(PLACEHOLDER_PREFIX)
    assert thread_posts(slack_api, thread) == [":gear: Applying plan #1…"]  # it did land

    notifier.deliver_outbox(force=True)
    assert thread_posts(slack_api, thread) == [":gear: Applying plan #1…"]  # found, not re-posted
    lookup = slack_api.calls_to("conversations.replies")[-1].params
    assert lookup["ts"] == thread and lookup["include_all_metadata"] in ("1", "true")
    assert notifier.outbox_size() == 0
    [landed] = [m for m in slack_api.messages.values() if m.get("thread_ts") == thread]
    assert notifier.sender.resolve(deployment.id, ts) == landed["ts"]  # updates and decisions reach it
    notifier.update(deployment, ts, text_message(":gear: Applied… 3/3"))
    assert thread_posts(slack_api, thread) == [":gear: Applied… 3/3"]


def test_a_root_message_slack_made_but_answered_500_is_found_in_the_channel(
    notifier: Notifier, slack_api: SlackApiStandIn
) -> None:
    slack_api.fail_processed("chat.postMessage", "internal_error", status=500)
    deployment = notifier.ensure_thread(new_deployment(notifier))
    assert deployment.thread_ts is None
    notifier.deliver_outbox(force=True)
    roots = [ts for ts, m in slack_api.messages.items() if "thread_ts" not in m]
    assert len(roots) == 1 and notifier.store.get(deployment.id).thread_ts == roots[0]
    assert slack_api.calls_to("conversations.history"), "looked up before posting again"


def test_an_upload_slack_shared_but_answered_500_is_shared_once(
    notifier: Notifier, slack_api: SlackApiStandIn
) -> None:
    deployment = notifier.ensure_thread(new_deployment(notifier))
    slack_api.fail_processed("files.completeUploadExternal", "internal_error", status=500)
    notifier.upload(deployment, filename="plan.txt", content="the plan", title="terraform plan")
    notifier.deliver_outbox(force=True)
    shares = [m for m in slack_api.thread(deployment.thread_ts or "") if m.get("files")]
    assert len(shares) == 1 and notifier.outbox_size() == 0
    assert len(slack_api.calls_to("files.getUploadURLExternal")) == 1


def test_without_read_access_an_unsure_post_is_delivered_again_and_said(
    notifier: Notifier, slack_api: SlackApiStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    """At least once: when Slack will not let the bot read the thread (no history scope, not a member),
    a post whose answer was lost is posted again rather than lost — and the log says why."""
    deployment = notifier.ensure_thread(new_deployment(notifier))
    slack_api.fail_processed("chat.postMessage", "internal_error", status=500)
    slack_api.fail("conversations.replies", "not_in_channel")
    notifier.post(deployment, text_message("hello"))
    notifier.deliver_outbox(force=True)
    assert thread_posts(slack_api, deployment.thread_ts or "") == ["hello", "hello"]
    assert "outbox_lookup_unavailable" in capsys.readouterr().out


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


# -- the whole flow through a Slack outage (issue 11 §2, black-box) -----------------------------------

WRITES = ("chat.postMessage", "chat.update", "files.getUploadURLExternal", "files.completeUploadExternal")
RATE_LIMIT_WINDOW_SECONDS = 20


@pytest.mark.e2e
def test_a_slack_outage_from_the_approval_leaves_no_lie_and_no_duplicate(
    pipeline: SlackClientSim,
    slack_api: SlackApiStandIn,
    redis_conn: redis.Redis,
    pipeline_env: dict[str, str],
    settings: Settings,
    tmp_path: Path,
) -> None:
    store = DeploymentStore(redis_conn)
    deployment_id = submit(pipeline, store, "V-OUTAGE", account_situation="new")
    drive_to_plan_stage(PipelineRun(pipeline, slack_api, store, pipeline_env), deployment_id)
    thread = store.get(deployment_id).thread_ts or ""
    audit = AuditTrail(redis_conn)

    # 1. Slack hangs: the worker plans and gives the state back without waiting for it
    slack_api.stall(*WRITES)
    env = {
        **os.environ,
        **pipeline_env,
        "ECS_DEPLOY_HEARTBEAT_INTERVAL": "1",
        "ECS_DEPLOY_SWEEP_INTERVAL": "2",
    }
    with (tmp_path / "worker.log").open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "worker"], env=env, cwd=ROOT, stdout=out, stderr=out
        )
    try:
        try:
            eventually(
                lambda: any(
                    e.event == "state_released" and e.detail.get("step") == "plan"
                    for e in audit.for_deployment(deployment_id)
                ),
                timeout=120,
            )
            # the final move comes after the state is given back (workers/steps/terraform.py)
            eventually(lambda: store.get(deployment_id).status is DeploymentStatus.AWAITING_APPROVAL)
            assert slack_api.held >= 1, "Slack was hanging all along"
        finally:
            slack_api.release()
        plan_message, _ = slack_api.wait_for_button(thread, "plan_approve", timeout=90)

        # 2. from the lead's approval: 20 s of 429s, then a post Slack makes but answers with a 500
        window_ends = slack_api.fail_for(
            RATE_LIMIT_WINDOW_SECONDS,
            ("chat.postMessage", "chat.update"),
            "ratelimited",
            status=429,
            retry_after=2,
        )
        slack_api.fail_processed("chat.postMessage", "internal_error", status=500)
        click(pipeline, slack_api, thread, "plan_approve", LEAD)
        eventually(lambda: store.get(deployment_id).status is DeploymentStatus.DEPLOYED, timeout=240)
        notifier = Notifier(make_web_client(settings), store)
        eventually(
            lambda: (
                notifier.outbox_size() == 0
                and "Approved by" in json.dumps(slack_api.messages[plan_message["ts"]])
            ),
            timeout=120,
        )
    finally:
        slack_api.release()
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)

    # the rate limit and the lost answer did happen
    assert any(c.at < window_ends for c in slack_api.calls_to("chat.update")), "the decision met the 429s"
    assert slack_api.calls_to("conversations.replies"), "a post whose answer was lost was looked up"

    # the plan message shows the decision and no buttons
    plan = slack_api.messages[plan_message["ts"]]
    assert "Approved by <@U0LEAD0001>" in json.dumps(plan, ensure_ascii=False)
    assert not [b for b in plan["blocks"] if b.get("type") == "actions"]

    # the approval notice precedes the apply's messages, which keep their order
    shown = [
        m["text"] if not m.get("files") else "file:" + m["files"][0]["title"]
        for m in slack_api.thread(thread)
    ]
    notice = next(i for i, t in enumerate(shown) if "Applying exactly this plan" in t)
    applying = next(i for i, t in enumerate(shown) if t.startswith(":gear:"))
    complete = next(i for i, t in enumerate(shown) if t.startswith("Apply complete"))
    assert notice < applying < complete, "\n".join(shown)

    # no message appears twice (from the approval on; before it, the workspace step ran twice), no
    # queued post reached Slack twice, and there is one root message
    since_plan = shown[next(i for i, t in enumerate(shown) if "Approved by" in t) :]
    twice = {text: n for text, n in Counter(since_plan).items() if n > 1}
    assert not twice, twice
    posted = [m["ts"] for m in slack_api.thread(thread) if not m.get("files")]
    entries = Counter(slack_api.metadata[ts]["event_payload"]["entry_id"] for ts in posted)
    assert len(entries) == len(posted) and max(entries.values()) == 1, entries
    roots = [ts for ts, m in slack_api.messages.items() if "thread_ts" not in m]
    assert roots == [thread]
    assert BOT_TOKEN not in (tmp_path / "worker.log").read_text()
