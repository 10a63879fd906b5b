"""The Slack outbox (bot/outbox.py with the notifier's sending): one ordered list per deployment and a
due-time sorted set, on a real Redis and the Slack stand-in.

Each test reproduces one failure of issue 11 §2 on the code before the outbox, or pins a property
the outbox promises (order across processes, deployments independent, nothing waits on Slack)."""

from __future__ import annotations

import json
import time

import pytest
import redis
from slack_sdk.models.blocks import ActionsBlock, ButtonElement, MarkdownTextObject, SectionBlock

from bot.notifier import PLACEHOLDER_PREFIX, Notifier
from bot.notifier.delivery import TAKEOVER_SECONDS
from bot.outbox import DUE_KEY, LEGACY_KEY, Outbox, OutboxEntry, drain, list_key, superseded
from bot.slack import make_web_client
from bot.views.messages import Message, text_message
from core.lifecycle import Move
from core.models import Deployment, DeploymentStatus
from core.settings import Settings
from storage.store import DeploymentStore
from tests.harness.flow import eventually
from tests.harness.records import deployment_request
from tests.harness.slack_api import BOT_TOKEN, SlackApiStandIn
from tests.test_crash_recovery import REQUESTER

CHANNEL = "C_DEPLOYS"


def make_notifier(bot_env: dict[str, str], connection: redis.Redis, *, background: bool = False) -> Notifier:
    settings = Settings(
        SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=bot_env["SLACK_API_URL"], REDIS_URL=bot_env["REDIS_URL"]
    )
    return Notifier(make_web_client(settings), DeploymentStore(connection), background=background)


def new_deployment(notifier: Notifier) -> Deployment:
    deployment, _ = notifier.store.create(
        Deployment(request=deployment_request(), requester_id=REQUESTER, channel_id=CHANNEL)
    )
    return deployment


def texts(api: SlackApiStandIn, thread: str) -> list[str]:
    """What the thread shows, oldest first: message texts, and `file:<title>` for shared files."""
    return [f"file:{m['files'][0]['title']}" if m.get("files") else m["text"] for m in api.thread(thread)]


@pytest.fixture
def notifier(bot_env: dict[str, str], redis_conn: redis.Redis, slack_api: SlackApiStandIn) -> Notifier:
    return make_notifier(bot_env, redis_conn)


# -- storage: one list per deployment, a due-time sorted set ----------------------------------------


def test_each_deployment_has_its_own_list_and_a_due_time(notifier: Notifier, redis_conn: redis.Redis) -> None:
    outbox = Outbox(redis_conn)
    first, second = OutboxEntry(deployment_id="d1", kind="post"), OutboxEntry(deployment_id="d1", kind="post")
    outbox.queue(first)
    outbox.queue(OutboxEntry(deployment_id="d2", kind="post"))
    outbox.queue(second)
    assert [json.loads(r)["id"] for r in redis_conn.lrange(list_key("d1"), 0, -1)] == [first.id, second.id]
    assert outbox.size("d1") == 2 and outbox.size("d2") == 1 and outbox.size() == 3
    assert sorted(outbox.due()) == ["d1", "d2"]

    waiting = outbox.waiting("d1")
    assert waiting is not None and [e.id for _, e in waiting.items if e] == [first.id, second.id]
    head_raw, head = waiting.items[0]
    assert head is not None
    # a retry pushes the deployment's due time back; its list keeps its order
    assert outbox.replace("d1", head_raw, head.model_copy(update={"attempts": 1}), 4_000_000_000.0)
    assert outbox.due(now=3_999_999_999.0) == ["d2"]
    refreshed = outbox.waiting("d1")
    assert refreshed is not None and refreshed.items[0][1] == head.model_copy(update={"attempts": 1})
    # removing the head only works on the head it was read as, and leaves the next one due now
    assert not outbox.pop("d1", head_raw, first.id)
    assert outbox.pop("d1", refreshed.items[0][0], first.id)
    assert sorted(outbox.due(now=3_999_999_999.0)) == ["d1", "d2"]
    assert outbox.pop("d1", refreshed.items[1][0], second.id)
    assert redis_conn.zscore(DUE_KEY, "d1") is None and not redis_conn.exists(list_key("d1"))


def test_a_later_root_refresh_or_update_of_the_same_message_supersedes_an_earlier_one() -> None:
    def entry(kind: str, ts: str | None = None) -> OutboxEntry:
        return OutboxEntry(deployment_id="d", kind=kind, ts=ts)  # type: ignore[arg-type]

    entries = [
        entry("root"),
        entry("update", "1.1"),
        entry("post"),
        entry("update", "1.2"),
        entry("update", "1.1"),
        entry("decide", "1.1"),
        entry("root"),
    ]
    assert superseded(entries) == [True, True, False, False, False, False, False]


def test_entries_queued_in_a_transaction_exist_only_if_it_commits(
    notifier: Notifier, redis_conn: redis.Redis, slack_api: SlackApiStandIn
) -> None:
    deployment = new_deployment(notifier)
    store = notifier.store

    def refuse(d: Deployment) -> Deployment | None:
        return None

    entry = notifier.post_entry(deployment, text_message("approved"))
    store.transition(deployment.id, refuse, also=lambda pipe, d: notifier.queue_in(pipe, entry))
    assert notifier.outbox_size(deployment.id) == 0

    def move(d: Deployment) -> Deployment:
        return d.with_status(DeploymentStatus.APPROVED, "approved")

    store.transition(deployment.id, move, also=lambda pipe, d: notifier.queue_in(pipe, entry))
    assert notifier.outbox_size(deployment.id) == 1
    notifier.flush(deployment.id)
    thread = store.get(deployment.id).thread_ts
    assert thread and texts(slack_api, thread) == ["approved"]


def test_a_round_leaves_another_processs_fresh_entry_to_it_and_takes_over_when_overdue(
    notifier: Notifier, redis_conn: redis.Redis, slack_api: SlackApiStandIn
) -> None:
    """A worker's post is sent by the worker as it returns; the web's or another worker's round
    racing it for the deployment's lock made the post wait for that round instead."""
    deployment = notifier.ensure_thread(new_deployment(notifier))
    thread = deployment.thread_ts or ""
    notifier.delivery.takeover = 3600.0  # "fresh" however slow this machine is
    Outbox(redis_conn).queue(notifier.post_entry(deployment, text_message("queued by another process")))
    notifier.delivery.deliver_round(own=())
    assert texts(slack_api, thread) == [] and notifier.outbox_size(deployment.id) == 1

    notifier.delivery.deliver_round(own=[deployment.id])  # this process's own: at once
    assert texts(slack_api, thread) == ["queued by another process"]

    Outbox(redis_conn).queue(notifier.post_entry(deployment, text_message("its process died")))
    notifier.delivery.takeover = TAKEOVER_SECONDS
    redis_conn.zadd(DUE_KEY, {deployment.id: time.time() - TAKEOVER_SECONDS - 0.5})
    next_due = notifier.delivery.deliver_round(own=())
    assert texts(slack_api, thread) == ["queued by another process", "its process died"]
    assert next_due is None and notifier.outbox_size() == 0


# -- order ---------------------------------------------------------------------------------------------


def test_web_and_worker_messages_of_a_deployment_arrive_in_the_order_they_were_queued(
    bot_env: dict[str, str], redis_conn: redis.Redis, slack_api: SlackApiStandIn
) -> None:
    """Issue 11: the approval notice arrived after "Applying…" and even after "Apply complete!" (the web
    blocked on Slack while the worker's messages went first)."""
    web = make_notifier(bot_env, redis_conn)
    worker = make_notifier(bot_env, redis_conn)
    deployment = web.ensure_thread(new_deployment(web))
    thread = deployment.thread_ts or ""
    slack_api.fail_for(30, ("chat.postMessage", "chat.update"), "ratelimited", status=429, retry_after=2)
    web.post(deployment, text_message("Approved by the lead. Applying exactly this plan."))
    worker.post(deployment, text_message(":gear: Applying plan #1…"))
    worker.post(deployment, text_message("Apply complete!"))
    assert texts(slack_api, thread) == []
    slack_api.failures.clear()
    # whoever delivers (here the worker's side first), the order is the order of queueing
    worker.deliver_outbox(force=True)
    assert texts(slack_api, thread) == [
        "Approved by the lead. Applying exactly this plan.",
        ":gear: Applying plan #1…",
        "Apply complete!",
    ]


def test_a_report_file_follows_its_summary_and_waits_for_the_thread(
    notifier: Notifier, slack_api: SlackApiStandIn
) -> None:
    """Issue 11: the analysis report (a file) arrived before its summary, and with `internal_error` at
    submit it was never delivered (uploads skipped the outbox when there was no thread yet)."""
    slack_api.fail("chat.postMessage", "internal_error", times=1000)
    deployment = notifier.ensure_thread(new_deployment(notifier))
    assert deployment.thread_ts is None
    notifier.post(deployment, text_message("AWS account analysis: adjustments needed"))
    assert notifier.upload(
        deployment, filename=f"{deployment.id}-account-analysis.txt", content="full report", title="report"
    )
    assert slack_api.calls_to("files.getUploadURLExternal") == []  # it waits behind the thread's messages

    slack_api.failures.clear()
    notifier.deliver_outbox(force=True)
    thread = notifier.store.get(deployment.id).thread_ts
    assert thread
    assert texts(slack_api, thread) == ["AWS account analysis: adjustments needed", "file:report"]
    assert list(slack_api.uploads.values()) == [b"full report"]
    roots = [
        m
        for ts, m in slack_api.messages.items()
        if "thread_ts" not in m and slack_api.channels[ts] == CHANNEL
    ]
    assert len(roots) == 1 and notifier.outbox_size() == 0


def test_one_deployments_outage_does_not_hold_up_another(
    notifier: Notifier, slack_api: SlackApiStandIn
) -> None:
    stuck = notifier.ensure_thread(new_deployment(notifier))
    other = notifier.ensure_thread(new_deployment(notifier))
    slack_api.fail("chat.postMessage", "ratelimited", status=429, retry_after=60)
    notifier.post(stuck, text_message("waits a minute"))
    notifier.post(other, text_message("goes now"))
    assert texts(slack_api, other.thread_ts or "") == ["goes now"]
    assert texts(slack_api, stuck.thread_ts or "") == [] and notifier.outbox_size(stuck.id) == 1


def test_repeated_updates_of_one_message_collapse_to_the_last(
    notifier: Notifier, slack_api: SlackApiStandIn
) -> None:
    deployment = notifier.ensure_thread(new_deployment(notifier))
    ts = notifier.post(deployment, text_message("Applying… 0/3"))
    slack_api.fail("chat.update", "service_unavailable", status=503, times=1)
    for done in (1, 2, 3):
        notifier.update(deployment, ts, text_message(f"Applying… {done}/3"))
    before = len(slack_api.calls_to("chat.update"))
    notifier.deliver_outbox(force=True)
    assert len(slack_api.calls_to("chat.update")) == before + 1  # only the newest state is sent
    assert texts(slack_api, deployment.thread_ts or "") == ["Applying… 3/3"]


# -- decisions -----------------------------------------------------------------------------------------


def test_a_decision_keeps_the_clicked_message_and_replaces_its_buttons_after_a_rate_limit(
    notifier: Notifier, slack_api: SlackApiStandIn
) -> None:
    """Issue 11: the "Approved by…" update was sent directly and only logged on failure, so the
    Approve / Reject buttons stayed on the plan."""
    deployment = notifier.ensure_thread(new_deployment(notifier))
    plan = Message(
        text="plan",
        blocks=[
            SectionBlock(text=MarkdownTextObject(text="Plan: 3 to add")),
            ActionsBlock(elements=[ButtonElement(text="Approve", action_id="plan_approve", value="x")]),
        ],
    )
    ts = notifier.post(deployment, plan)
    assert ts and not ts.startswith(PLACEHOLDER_PREFIX)
    clicked = slack_api.messages[ts]  # Slack sends the clicked message with the click
    slack_api.fail("chat.update", "ratelimited", status=429, retry_after=2, times=3)
    notifier.decide(deployment, ts, "Approved by <@U0LEAD0001>", blocks=clicked["blocks"])
    assert "plan_approve" in json.dumps(slack_api.messages[ts])  # rate limited: not yet
    due = notifier.next_due()
    assert due is not None and due >= slack_api.calls_to("chat.update")[-1].at + 2  # Retry-After honoured
    for _ in range(3):
        notifier.deliver_outbox(force=True)
    shown = json.dumps(slack_api.messages[ts])
    assert "Approved by <@U0LEAD0001>" in shown and "Plan: 3 to add" in shown
    assert "plan_approve" not in shown and notifier.outbox_size() == 0


# -- nothing waits on Slack ----------------------------------------------------------------------------


def test_a_background_notifier_returns_while_slack_hangs(
    bot_env: dict[str, str], redis_conn: redis.Redis, slack_api: SlackApiStandIn
) -> None:
    """Issue 11: workers stalled on Slack while they held the state lock. A job's notifier only queues;
    its deliverer thread is the one that waits for Slack."""
    notifier = make_notifier(bot_env, redis_conn, background=True)
    deployment = new_deployment(notifier)
    slack_api.stall("chat.postMessage")
    try:
        ts = notifier.post(deployment, text_message(":gear: Applying plan #1…"))
        notifier.store.update(deployment.id, lambda d: d.with_status(DeploymentStatus.APPROVED))
        status = notifier.set_status(deployment.id, Move.START_APPLY)
        assert ts is not None and ts.startswith(PLACEHOLDER_PREFIX)
        assert status.status is DeploymentStatus.APPLYING
        eventually(lambda: slack_api.held == 1)  # the deliverer thread is the one waiting for Slack
    finally:
        slack_api.release()
    drain(timeout=20)
    thread = notifier.store.get(deployment.id).thread_ts
    assert thread and texts(slack_api, thread) == [":gear: Applying plan #1…"]
    assert notifier.outbox_size() == 0


# -- the former single outbox list -----------------------------------------------------------------------


def test_entries_of_the_former_global_outbox_are_moved_and_delivered(
    notifier: Notifier, redis_conn: redis.Redis, slack_api: SlackApiStandIn
) -> None:
    deployment = notifier.ensure_thread(new_deployment(notifier))
    for text in ("queued before the upgrade", "and this one"):
        old = {"id": text[:6], "deployment_id": deployment.id, "kind": "post", "text": text, "blocks": []}
        redis_conn.rpush(LEGACY_KEY, json.dumps(old))
    redis_conn.rpush(
        LEGACY_KEY, json.dumps({"id": "r", "deployment_id": deployment.id, "kind": "refresh_root"})
    )
    redis_conn.hset("ecs-deploy:outbox:pending", deployment.id, 3)
    assert notifier.deliver_outbox() == 3
    assert texts(slack_api, deployment.thread_ts or "") == ["queued before the upgrade", "and this one"]
    assert not redis_conn.exists(LEGACY_KEY) and not redis_conn.exists("ecs-deploy:outbox:pending")
