"""A move that starts a job tells the thread first: its notes enter the outbox in the same Redis
transaction (MULTI/EXEC) as the job, ahead of it, so a busy worker's messages can never overtake them.

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

from bot.outbox import list_key
from core.models import Deployment, DeploymentStatus
from storage.store import DeploymentStore
from tests.harness.flow import USER_VALUES, eventually, submit_modal
from tests.harness.records import deployment_record, planned_deployment, post_root
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

    def listen() -> None:
        with connection.monitor() as monitor:  # a connection of its own, from the pool
            ready.set()
            open_by_client: dict[str, list[list[str]]] = {}
            while not stop.is_set():
                event = monitor.next_command()
                client, words = event["client_address"] + str(event["client_port"]), _words(event["command"])
                if words[:1] == ["MULTI"]:
                    open_by_client[client] = []
                elif words[:1] == ["EXEC"] and client in open_by_client:
                    seen.add(open_by_client.pop(client))
                elif client in open_by_client:
                    open_by_client[client].append(words)

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert ready.wait(5), "MONITOR did not start"
    try:
        yield seen
    finally:
        stop.set()
        connection.ping()  # one more command, so the listener wakes up and sees `stop`
        thread.join(5)


def _words(command: str) -> list[str]:
    """redis-py gives a monitored command as its arguments joined by spaces (the values unescaped):
    the name and the key are the first two words; the rest is kept as one string."""
    return command.split(" ", 2)


def note_then_job(seen: Transactions, deployment_id: str, note: str) -> None:
    """One transaction pushed `note` onto the deployment's outbox and, after it, a job onto the queue."""

    def found() -> bool:
        for commands in seen.containing(QUEUE):
            pushes = [i for i, c in enumerate(commands) if c[:2] == ["RPUSH", list_key(deployment_id)]]
            notes = [i for i in pushes if '"text":"' in commands[i][2] and note in commands[i][2]]
            job = next(i for i, c in enumerate(commands) if len(c) > 1 and c[1] == QUEUE)
            if notes and notes[0] < job:
                return True
        return False

    eventually(found, timeout=10)


def in_thread(api: SlackApiStandIn, deployment: Deployment, action: str) -> dict[str, Any]:
    """A bot message in the deployment's thread with the button `action` (value `{id}:1`), as Slack
    sends it back with a click."""
    buttons = {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "action_id": action,
                "text": {"type": "plain_text", "text": action},
                "value": f"{deployment.id}:1",
            }
        ],
    }
    client = WebClient(token=BOT_TOKEN, base_url=api.base_url)
    posted = client.chat_postMessage(
        channel="C_DEPLOYS", thread_ts=deployment.thread_ts, text=action, blocks=[buttons]
    )
    return {"ts": posted["ts"], "text": action, "blocks": [buttons]}


def stored(
    store: DeploymentStore,
    api: SlackApiStandIn,
    status: DeploymentStatus,
    *,
    planned: bool = True,
    **fields: Any,
) -> Deployment:
    """A deployment in `status` with its thread root posted; `planned`: past planning (plan attempt 1)."""
    if planned:
        record = planned_deployment(
            api, REQUESTER, "Plan: 3 to add.", team_id="T111", status=status, **fields
        )
    else:
        record = deployment_record(
            REQUESTER, thread_ts=post_root(api), team_id="T111", status=status, **fields
        )
    created, _ = store.create(record)
    return created


def clicked(
    slack: SlackClientSim, api: SlackApiStandIn, deployment: Deployment, action: str
) -> Callable[[], dict[str, Any]]:
    """Click `action`; returns how to read the modal it opened (the next views.open)."""
    message = in_thread(api, deployment, action)
    opened = len(api.calls_to("views.open"))
    response = slack.block_action(
        action, f"{deployment.id}:1", user=REQUESTER, message_ts=message["ts"], message=message
    )
    assert response.status_code == 200

    def view() -> dict[str, Any]:
        eventually(lambda: len(api.calls_to("views.open")) > opened)
        found: dict[str, Any] = api.calls_to("views.open")[-1].params["view"]
        return found

    return view


def submitted_then_said(
    slack: SlackClientSim,
    connection: redis.Redis,
    deployment: Deployment,
    view: dict[str, Any],
    values: dict[str, dict[str, Any]],
    note: str,
) -> None:
    """Submit the modal; its transaction queues `note` ahead of the job it starts."""
    with watched(connection) as seen:
        response = submit_modal(slack, view, values, user=REQUESTER, view_id=f"V-ORDER-{deployment.id}")
        assert response.text in ("", "{}"), response.text
        note_then_job(seen, deployment.id, note)


def test_the_re_plan_button_says_who_asked_before_the_new_plan(
    slack: SlackClientSim, slack_api: SlackApiStandIn, store: DeploymentStore, redis_conn: redis.Redis
) -> None:
    deployment = stored(store, slack_api, DeploymentStatus.AWAITING_APPROVAL)
    with watched(redis_conn) as seen:
        clicked(slack, slack_api, deployment, "plan_replan")
        note_then_job(seen, deployment.id, "Re-plan")
    assert store.get(deployment.id).status is DeploymentStatus.PLANNING


def test_the_re_plan_command_says_who_asked_before_the_new_plan(
    slack: SlackClientSim, slack_api: SlackApiStandIn, store: DeploymentStore, redis_conn: redis.Redis
) -> None:
    deployment = stored(store, slack_api, DeploymentStatus.FAILED)
    with watched(redis_conn) as seen:
        response = slack.slash_command(f"plan {deployment.id}", user=REQUESTER)
        assert response.status_code == 200 and "A new plan" in response.text, response.text
        note_then_job(seen, deployment.id, "Re-plan requested by <@U0REQUEST1> with `/ecs-deploy plan`")


def test_edited_values_are_said_before_the_new_plan(
    slack: SlackClientSim, slack_api: SlackApiStandIn, store: DeploymentStore, redis_conn: redis.Redis
) -> None:
    deployment = stored(store, slack_api, DeploymentStatus.AWAITING_APPROVAL)
    view = clicked(slack, slack_api, deployment, "plan_edit_values")()
    assert view["callback_id"] == "ecs_deploy_edit_values"
    values = {
        "size": {"value": {"type": "radio_buttons", "selected_option": {"value": "medium"}}},
        "vpc_cidr_block": text_value("10.20.0.0/16"),
        "additional_tags": text_value("team=platform"),
    }
    submitted_then_said(slack, redis_conn, deployment, view, values, "edited the values")


def test_given_values_are_said_before_the_plan(
    slack: SlackClientSim, slack_api: SlackApiStandIn, store: DeploymentStore, redis_conn: redis.Redis
) -> None:
    deployment = stored(
        store,
        slack_api,
        DeploymentStatus.AWAITING_INPUT,
        planned=False,
        missing_values=[name.removeprefix("var:") for name in USER_VALUES],
    )
    view = clicked(slack, slack_api, deployment, "workspace_provide_values")()
    assert view["callback_id"] == "ecs_deploy_missing_values"
    submitted_then_said(slack, redis_conn, deployment, view, USER_VALUES, "gave")


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
        clicked(slack, slack_api, deployment, "analysis_apply_recommendations")
        note_then_job(seen, deployment.id, "Values changed by the analysis")
    assert store.get(deployment.id).request.vpc_cidr_block == "10.42.0.0/16"
