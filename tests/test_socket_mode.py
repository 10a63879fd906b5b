"""`ecs-deploy-bot socket` against a real WebSocket: Slack's Socket Mode protocol on loopback.

Real parts: the bot's own `socket` process (Bolt's SocketModeHandler on slack_sdk's built-in client),
the local Socket Mode server (tests/harness/socket_mode.py, on the `websockets` package) handed out by
the Slack Web API stand-in's `apps.connections.open`, a real Redis, a real
`ecs-deploy-bot worker --burst`, and moto. The payloads are the HTTP tests' payloads, in envelopes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import redis
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode import SocketModeClient
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from storage.store import DeploymentStore
from tests.harness.aws import MotoServer
from tests.harness.fixtures import load_fixture
from tests.harness.flow import REQUESTER, eventually
from tests.harness.processes import run_worker_burst
from tests.harness.slack_api import APP_TOKEN, BOT_TOKEN, SlackApiStandIn
from tests.harness.slack_requests import request_values
from tests.harness.socket_mode import (
    INTERACTIVE_ENVELOPE,
    SLASH_COMMAND_ENVELOPE,
    SocketModeServer,
    SocketModeSlack,
    SocketProcess,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def socket_server(slack_api: SlackApiStandIn) -> Iterator[SocketModeServer]:
    server = SocketModeServer().start()
    slack_api.socket_mode = server
    try:
        yield server
    finally:
        slack_api.socket_mode = None
        server.stop()


@pytest.fixture
def socket_bot(
    bot_env: dict[str, str],
    socket_server: SocketModeServer,
    slack_api: SlackApiStandIn,
    redis_conn: redis.Redis,
    aws: MotoServer,
    tmp_path: Path,
) -> Iterator[SocketProcess]:
    """The bot as a Socket Mode operator runs it: the app-level token and no signing secret."""
    bot = SocketProcess(
        {**bot_env, "SLACK_APP_TOKEN": APP_TOKEN}, tmp_path / "socket.log", unset=("SLACK_SIGNING_SECRET",)
    ).start(socket_server)
    try:
        yield bot
    finally:
        bot.stop()


def test_slash_command_modal_submission_and_a_thread_button_over_socket_mode(
    socket_server: SocketModeServer,
    socket_bot: SocketProcess,
    slack_api: SlackApiStandIn,
    redis_conn: redis.Redis,
    bot_env: dict[str, str],
) -> None:
    # The default VPC CIDR is taken, so the analysis recommends another one and waits for a decision.
    boto3.Session(profile_name="deployer", region_name="us-east-1").client("ec2").create_vpc(
        CidrBlock="10.0.0.0/16"
    )
    slack = SocketModeSlack(socket_server)
    store = DeploymentStore(redis_conn)

    # The bot asked for its WebSocket URL with the app-level token, connected, and was greeted.
    [connection_open] = slack_api.calls_to("apps.connections.open")
    assert connection_open.authorized, "apps.connections.open takes the xapp- token in the header"
    first = socket_server.wait_for_connection(1)
    assert first.hello["type"] == "hello" and first.hello["connection_info"] == {"app_id": "A111"}

    # 1. /ecs-deploy: an empty ack, and the request modal opened with the command's trigger id.
    command = slack.slash_command("", user=REQUESTER)
    assert command.payload is None and command.connection == 1
    opened = slack_api.wait_for("views.open").params
    assert opened["trigger_id"] == "111.222.valid"
    assert opened["view"]["callback_id"] == "ecs_deploy_request"
    metadata = opened["view"]["private_metadata"]

    # 2. An invalid submission is answered in the ack itself (the envelope accepts a response payload).
    bad = slack.view_submission(request_values(account_id="12345"), user=REQUESTER, private_metadata=metadata)
    assert bad.payload is not None and bad.payload["response_action"] == "errors"
    assert "12 digits" in bad.payload["errors"]["account_id"]
    assert store.recent() == []

    # 3. A valid one: an empty ack (the modal closes), one deployment, the root message in the channel.
    ok = slack.view_submission(
        request_values(), user=REQUESTER, private_metadata=metadata, view_id="V-SOCKET"
    )
    assert ok.payload is None
    [deployment] = store.recent()
    root = slack_api.wait_for("chat.postMessage", lambda c: "thread_ts" not in c.params)
    assert root.params["channel"] == "C_DEPLOYS"
    assert (
        "ECS deployment requested: web/dev · 123456789012 · us-east-1 · small — by <@U0REQUEST1>"
        in root.params["text"]
    )

    # 4. A real worker verifies and analyses; then a button in the thread, clicked over the socket.
    run_worker_burst(bot_env)
    deployment = store.get(deployment.id)
    assert deployment.status.value == "awaiting_decision", deployment.status_detail
    assert deployment.thread_ts is not None
    message, button = slack_api.find_button(deployment.thread_ts, "analysis_apply_recommendations")
    click = slack.block_action(
        "analysis_apply_recommendations",
        button["value"],
        user=REQUESTER,
        message_ts=message["ts"],
        message=message,
    )
    assert click.payload is None
    eventually(lambda: store.get(deployment.id).request.vpc_cidr_block == "10.1.0.0/16")
    assert store.get(deployment.id).status.value == "preparing_backend"
    slack_api.wait_for(
        "chat.update",
        lambda c: (
            c.params.get("ts") == message["ts"]
            and "Recommendations applied by <@U0REQUEST1>" in json.dumps(c.params)
        ),
    )

    # Every envelope was acknowledged exactly once, all on the one connection.
    envelope_ids = [command.envelope_id, bad.envelope_id, ok.envelope_id, click.envelope_id]
    assert [len(socket_server.acks_for(e)) for e in envelope_ids] == [1] * 4
    assert {ack.connection for ack in socket_server.acks} == {1}


def test_app_home_event_over_socket_mode_publishes_the_home_tab(
    socket_server: SocketModeServer, socket_bot: SocketProcess, slack_api: SlackApiStandIn
) -> None:
    # An Events API body (Slack's own, from Bolt's tests) with the event the App Home listener handles.
    body = load_fixture("slack", "bolt_event_callback_reaction_added.json")
    body.update(
        event={
            "type": "app_home_opened",
            "user": REQUESTER,
            "channel": "D0REQUEST1",
            "tab": "home",
            "event_ts": f"{time.time():.6f}",
        },
        event_id="Ev0HOME0001",
    )
    # First delivery: retry_attempt 0, as Slack sends it.
    ack = socket_server.wait_for_ack(socket_server.send("events_api", body))
    assert ack.payload is None and ack.connection == 1
    published = slack_api.wait_for(
        "views.publish", lambda c: c.params.get("user_id") == REQUESTER, timeout=10
    )
    assert published.params["view"]["type"] == "home"
    assert "Your recent deployments" in json.dumps(published.params["view"])


def test_refresh_requested_makes_the_bot_reconnect_on_a_new_url(
    socket_server: SocketModeServer, socket_bot: SocketProcess, slack_api: SlackApiStandIn
) -> None:
    first = socket_server.wait_for_connection(1)
    socket_server.request_refresh()

    # A second apps.connections.open with the app token, a new ticket, a new hello...
    second = socket_server.wait_for_connection(2)
    assert second.hello["type"] == "hello" and second.url_path != first.url_path
    opens = slack_api.calls_to("apps.connections.open")
    assert len(opens) == 2 and all(call.authorized for call in opens)
    # ...and the bot lets go of the old connection itself.
    socket_server.wait_until_closed(1)
    assert not second.closed

    # Work now arrives on the new connection, and the bot still answers it.
    command = SocketModeSlack(socket_server).slash_command("", user=REQUESTER)
    assert command.connection == 2
    assert slack_api.wait_for("views.open").params["trigger_id"] == "111.222.valid"
    assert socket_server.refused == []

    log = socket_bot.stop()
    assert APP_TOKEN not in log and BOT_TOKEN not in log, "tokens never reach the log"


def test_the_socket_mode_stand_in_speaks_to_slack_sdks_own_client(
    socket_server: SocketModeServer, slack_api: SlackApiStandIn
) -> None:
    """The harness itself, against slack_sdk's built-in client: Slack's own envelopes verbatim (one
    of them ~99 KB), acks with and without a payload, single-use URLs and the app-token rule."""
    received: list[SocketModeRequest] = []

    def listener(client: BaseSocketModeClient, request: SocketModeRequest) -> None:
        received.append(request)
        answer = {"text": "seen"} if request.accepts_response_payload else None
        client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id, payload=answer))

    client = SocketModeClient(
        app_token=APP_TOKEN, web_client=WebClient(base_url=slack_api.base_url), auto_reconnect_enabled=False
    )
    client.socket_mode_request_listeners.append(listener)
    client.connect()
    try:
        connection = socket_server.wait_for_connection(1)
        slash = load_fixture("slack", SLASH_COMMAND_ENVELOPE)
        interactive = load_fixture("slack", INTERACTIVE_ENVELOPE)
        acks = [socket_server.wait_for_ack(socket_server.deliver(e)) for e in (slash, interactive)]
    finally:
        client.close()

    assert [(r.type, r.envelope_id) for r in received] == [
        ("slash_commands", slash["envelope_id"]),
        ("interactive", interactive["envelope_id"]),
    ]
    assert received[0].payload == slash["payload"] and received[1].payload == interactive["payload"]
    assert [a.payload for a in acks] == [{"text": "seen"}, None]
    assert connection.received == [
        {"envelope_id": slash["envelope_id"], "payload": {"text": "seen"}},
        {"envelope_id": interactive["envelope_id"]},
    ]

    # A URL opens one connection: the used one is refused, a fresh one is greeted.
    with pytest.raises(InvalidStatus):
        connect(f"ws://127.0.0.1:{socket_server.port}{connection.url_path}").close()
    with connect(socket_server.issue_url()) as fresh:
        assert json.loads(fresh.recv(timeout=10))["type"] == "hello"

    # apps.connections.open wants the app-level token: the bot token is refused.
    with pytest.raises(SlackApiError) as refused:
        WebClient(base_url=slack_api.base_url).apps_connections_open(app_token=BOT_TOKEN)
    assert refused.value.response["error"] == "invalid_auth"
