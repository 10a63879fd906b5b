"""A move that starts a job tells the thread first: its notes enter the outbox in the same Redis
transaction (MULTI/EXEC) as the job, so a busy worker's messages can never overtake them; a cancel's
notes go with the flag that interrupts the running step (which still posts "Stopped: …").

Found by a review of the test races: "edited the values", "gave the values", "Values changed by the
analysis" and the Re-plan notes were queued by the web process after the transaction that enqueued the
job, so under load the job's first messages could reach the thread before the note that explains them.
Each test drives the real Bolt app over HTTP and watches the real Redis with MONITOR, which shows a
transaction's commands together, between MULTI and EXEC, in the order they ran.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from slack_sdk import WebClient

from bot.control import cancel_key
from bot.outbox import list_key
from core.models import Deployment, DeploymentStatus
from storage.store import DeploymentStore
from tests.harness.flow import USER_VALUES, eventually, submit_modal
from tests.harness.records import deployment_record, plan_record, post_root, workspace_record
from tests.harness.slack_api import BOT_TOKEN, SlackApiStandIn
from tests.harness.slack_requests import SlackClientSim, text_value

pytestmark = pytest.mark.e2e

REQUESTER = "U0REQUEST1"
QUEUE = "rq:queue:ecs-deploy"


class Transactions:
    """Every MULTI…EXEC Redis ran while watching: each a list of commands, as [name, key, args…]."""

    def __init__(self) -> None:
        self.done: list[list[list[str]]] = []
        self._lock = threading.Lock()

    def add(self, commands: list[list[str]]) -> None:
        with self._lock:
            self.done.append(commands)

    def containing(self, key: str) -> list[list[list[str]]]:
        with self._lock:
            return [t for t in self.done if any(len(c) > 1 and c[1] == key for c in t)]


@contextmanager
def watched(connection: redis.Redis) -> Iterator[Transactions]:
    """MONITOR on its own connection, for the length of the block."""
    seen = Transactions()
    stop = threading.Event()
    ready = threading.Event()

    failures: list[Exception] = []

    def listen() -> None:
        try:
            with connection.monitor() as monitor:  # a connection of its own, from the pool
                ready.set()
                open_by_client: dict[str, list[list[str]]] = {}
                while not stop.is_set():
                    event = monitor.next_command()
                    client = event["client_address"] + str(event["client_port"])
                    words = _words(event["command"])
                    if words[:1] == ["MULTI"]:
                        open_by_client[client] = []
                    elif words[:1] == ["EXEC"] and client in open_by_client:
                        seen.add(open_by_client.pop(client))
                    elif client in open_by_client:
                        open_by_client[client].append(words)
        except Exception as exc:  # said by the test, not lost with the thread
            failures.append(exc)
            ready.set()

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert ready.wait(5), "MONITOR did not start"
    try:
        yield seen
    finally:
        stop.set()
        connection.ping()  # one more command, so the listener wakes up and sees `stop`
        thread.join(5)
        assert not failures, f"MONITOR stopped early: {failures[0]!r}"


def _words(command: str) -> list[str]:
    """redis-py gives a monitored command as its arguments joined by spaces (the values unescaped):
    the name and the key are the first two words; the rest is kept as one string."""
    return command.split(" ", 2)


def said_with(seen: Transactions, deployment_id: str, key: str, *expected: tuple[str, str]) -> None:
    """The transaction that wrote `key` (the job's queue, the cancel flag) also pushed onto the
    deployment's outbox entries of the `expected` (kind, text fragment), in that order: nobody sees
    the job or the flag before the notes are queued, so whatever the job posts comes after them."""
    outbox = list_key(deployment_id)

    def matches(command: list[str], kind: str, fragment: str) -> bool:
        return (
            command[:2] == ["RPUSH", outbox] and f'"kind":"{kind}"' in command[2] and fragment in command[2]
        )

    def in_order(commands: list[list[str]]) -> bool:
        at = 0
        for kind, fragment in expected:
            at = next((i + 1 for i in range(at, len(commands)) if matches(commands[i], kind, fragment)), -1)
            if at < 0:
                return False
        return True

    eventually(lambda: any(in_order(t) for t in seen.containing(key)), timeout=10)


def in_thread(api: SlackApiStandIn, thread_ts: str, action: str, value: str = "") -> dict[str, Any]:
    """A bot message in the thread with the button `action`, as Slack sends it back with a click."""
    button = {"type": "button", "action_id": action, "text": {"type": "plain_text", "text": action}}
    buttons = {"type": "actions", "elements": [{**button, "value": value} if value else button]}
    client = WebClient(token=BOT_TOKEN, base_url=api.base_url)
    posted = client.chat_postMessage(channel="C_DEPLOYS", thread_ts=thread_ts, text=action, blocks=[buttons])
    return {"ts": posted["ts"], "text": action, "blocks": [buttons]}


def stored(
    store: DeploymentStore,
    api: SlackApiStandIn,
    status: DeploymentStatus,
    *,
    planned: bool = True,
    **fields: Any,
) -> Deployment:
    """A deployment in `status` with its thread root posted; `planned`: past planning, its plan
    (attempt 1) posted in the thread with an Approve button."""
    root = post_root(api)
    if planned:
        plan_message = in_thread(api, root, "plan_approve")
        fields |= {
            "workspace": workspace_record(),
            "plan": plan_record("Plan: 3 to add.", message_ts=plan_message["ts"]),
        }
    created, _ = store.create(
        deployment_record(REQUESTER, thread_ts=root, team_id="T111", status=status, **fields)
    )
    return created


def clicked(
    slack: SlackClientSim, api: SlackApiStandIn, deployment: Deployment, action: str
) -> tuple[str, Callable[[], dict[str, Any]]]:
    """Click `action` on a message of the thread; returns that message's ts and how to read the
    modal the click opened (the next views.open)."""
    message = in_thread(api, deployment.thread_ts or "", action, f"{deployment.id}:1")
    opened = len(api.calls_to("views.open"))
    response = slack.block_action(
        action, f"{deployment.id}:1", user=REQUESTER, message_ts=message["ts"], message=message
    )
    assert response.status_code == 200

    def view() -> dict[str, Any]:
        eventually(lambda: len(api.calls_to("views.open")) > opened)
        found: dict[str, Any] = api.calls_to("views.open")[-1].params["view"]
        return found

    return message["ts"], view


def plan_ts(deployment: Deployment) -> str:
    assert deployment.plan and deployment.plan.message_ts
    return f'"ts":"{deployment.plan.message_ts}"'


def submitted(
    slack: SlackClientSim, view: dict[str, Any], values: dict[str, dict[str, Any]], deployment: Deployment
) -> None:
    response = submit_modal(slack, view, values, user=REQUESTER, view_id=f"V-ORDER-{deployment.id}")
    assert response.text in ("", "{}"), response.text


# -- re-plan and cancel ------------------------------------------------------------------------------


def test_the_re_plan_button_decides_its_message_and_says_who_asked_before_the_new_plan(
    slack: SlackClientSim, slack_api: SlackApiStandIn, store: DeploymentStore, redis_conn: redis.Redis
) -> None:
    deployment = stored(store, slack_api, DeploymentStatus.AWAITING_APPROVAL)
    said = "Re-plan requested by <@U0REQUEST1>; approvals of this plan no longer count."
    with watched(redis_conn) as seen:
        clicked_ts, _ = clicked(slack, slack_api, deployment, "plan_replan")
        said_with(
            seen,
            deployment.id,
            QUEUE,
            ("decide", f'"ts":"{clicked_ts}"'),  # the clicked message's buttons
            ("root", ""),
            ("decide", plan_ts(deployment)),  # the plan waiting for approval is approved no more
            ("post", said),
        )
    assert store.get(deployment.id).status is DeploymentStatus.PLANNING


def test_a_cancel_is_said_with_the_flag_that_interrupts_the_running_step(
    slack: SlackClientSim, slack_api: SlackApiStandIn, store: DeploymentStore, redis_conn: redis.Redis
) -> None:
    """The interrupted step still posts ("Stopped: …"): the cancel must be said before it."""
    deployment = stored(store, slack_api, DeploymentStatus.AWAITING_APPROVAL)
    with watched(redis_conn) as seen:
        clicked_ts, _ = clicked(slack, slack_api, deployment, "deployment_cancel")
        said_with(
            seen,
            deployment.id,
            cancel_key(deployment.id),
            ("decide", f'"ts":"{clicked_ts}"'),
            ("root", ""),
            ("decide", plan_ts(deployment)),
            ("post", "Cancelled by <@U0REQUEST1>."),
        )
    assert store.get(deployment.id).status is DeploymentStatus.CANCELLED


@pytest.mark.parametrize(
    ("status", "command", "reply", "key", "said"),
    [
        (
            DeploymentStatus.FAILED,
            "plan",
            "A new plan",
            lambda _: QUEUE,
            "Re-plan requested by <@U0REQUEST1> with `/ecs-deploy plan`",
        ),
        (
            DeploymentStatus.PLANNING,
            "cancel",
            "is cancelled",
            cancel_key,
            "Deployment cancelled by <@U0REQUEST1> (it was",
        ),
    ],
    ids=["plan", "cancel"],
)
def test_a_command_tells_the_thread_in_its_own_transaction(
    slack: SlackClientSim,
    slack_api: SlackApiStandIn,
    store: DeploymentStore,
    redis_conn: redis.Redis,
    status: DeploymentStatus,
    command: str,
    reply: str,
    key: Callable[[str], str],
    said: str,
) -> None:
    """/ecs-deploy plan and cancel reply to the caller, and the thread hears it with the job or flag."""
    deployment = stored(store, slack_api, status)
    with watched(redis_conn) as seen:
        response = slack.slash_command(f"{command} {deployment.id}", user=REQUESTER)
        assert response.status_code == 200 and reply in response.text, response.text
        said_with(seen, deployment.id, key(deployment.id), ("root", ""), ("post", said))


# -- values --------------------------------------------------------------------------------------------


def test_edited_values_are_said_before_the_new_plan(
    slack: SlackClientSim, slack_api: SlackApiStandIn, store: DeploymentStore, redis_conn: redis.Redis
) -> None:
    deployment = stored(store, slack_api, DeploymentStatus.AWAITING_APPROVAL)
    _, opened = clicked(slack, slack_api, deployment, "plan_edit_values")
    view = opened()
    assert view["callback_id"] == "ecs_deploy_edit_values"
    values = {
        "size": {"value": {"type": "radio_buttons", "selected_option": {"value": "medium"}}},
        "vpc_cidr_block": text_value("10.20.0.0/16"),
        "additional_tags": text_value("team=platform"),
    }
    with watched(redis_conn) as seen:
        submitted(slack, view, values, deployment)
        said_with(
            seen,
            deployment.id,
            QUEUE,
            ("root", ""),
            ("decide", plan_ts(deployment)),  # this plan is discarded
            ("post", "<@U0REQUEST1> edited the values:"),
        )


def test_given_values_are_said_before_the_plan(
    slack: SlackClientSim, slack_api: SlackApiStandIn, store: DeploymentStore, redis_conn: redis.Redis
) -> None:
    names = [name.removeprefix("var:") for name in USER_VALUES]
    deployment = stored(
        store, slack_api, DeploymentStatus.AWAITING_INPUT, planned=False, missing_values=names
    )
    _, opened = clicked(slack, slack_api, deployment, "workspace_provide_values")
    view = opened()
    assert view["callback_id"] == "ecs_deploy_missing_values"
    with watched(redis_conn) as seen:
        submitted(slack, view, USER_VALUES, deployment)
        said = "<@U0REQUEST1> gave " + ", ".join(f"`{n}`" for n in names)
        said_with(seen, deployment.id, QUEUE, ("root", ""), ("post", said))


def test_applied_recommendations_are_said_before_the_next_step(
    slack: SlackClientSim, slack_api: SlackApiStandIn, store: DeploymentStore, redis_conn: redis.Redis
) -> None:
    deployment = stored(
        store,
        slack_api,
        DeploymentStatus.AWAITING_DECISION,
        planned=False,
        recommendations={"vpc_cidr_block": "10.42.0.0/16"},
    )
    with watched(redis_conn) as seen:
        clicked_ts, _ = clicked(slack, slack_api, deployment, "analysis_apply_recommendations")
        said_with(
            seen,
            deployment.id,
            QUEUE,
            ("root", ""),
            ("decide", f'"ts":"{clicked_ts}"'),
            ("post", "*Values changed by the analysis:*"),
        )
    assert store.get(deployment.id).request.vpc_cidr_block == "10.42.0.0/16"
