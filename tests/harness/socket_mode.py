"""Slack's side of Socket Mode on loopback: the WebSocket server behind `apps.connections.open`.

What it speaks (Slack's "Using Socket Mode" guide; envelope shapes from python-slack-sdk's own Socket
Mode test server, copied into tests/fixtures/slack):

- `apps.connections.open`, called with the app-level `xapp-` token in the Authorization header, answers
  `{"ok": true, "url": "ws://127.0.0.1:<port>/link/?ticket=<t>&app_id=<app>"}`. A ticket opens one
  connection; a used or unknown one is refused at the handshake (HTTP 401).
- On connect the server sends `{"type": "hello", "num_connections", "debug_info", "connection_info"}`.
- Work arrives as envelopes `{"envelope_id", "type": "slash_commands" | "interactive" | "events_api",
  "payload", "accepts_response_payload"}` (events also carry `retry_attempt` and `retry_reason`).
- The app acknowledges on the same socket with `{"envelope_id"}` or `{"envelope_id", "payload"}`; the
  server records every ack by envelope id and by connection.
- `{"type": "disconnect", "reason": "refresh_requested", "debug_info"}` asks the app to call
  `apps.connections.open` again and move to the new connection (it then drops the old one itself).

`SocketModeSlack` plays Slack's side of a conversation over this server with the same payload builders
as the HTTP simulator (`SlackClientSim`): a slash command, a modal submission or a click becomes an
envelope on the bot's connection, and what comes back is the bot's ack instead of an HTTP response.
`SocketProcess` runs `ecs-deploy-bot socket` as an operator does.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import parse_qs, parse_qsl, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import ServerConnection, serve

from tests.harness.fixtures import load_fixture
from tests.harness.processes import ROOT, stop_process
from tests.harness.slack_requests import SlackClientSim

APP_ID = "A111"
EnvelopeType = Literal["slash_commands", "interactive", "events_api"]
SLASH_COMMAND_ENVELOPE = "pyslacksdk_socketmode_slash_command_envelope.json"
INTERACTIVE_ENVELOPE = "pyslacksdk_socketmode_block_actions_static_select_modal.json"
WAIT_SECONDS = 20.0


@functools.cache
def _envelope_fields(kind: EnvelopeType) -> dict[str, Any]:
    """An envelope's fields other than its id and payload, as Slack sends them for `kind`."""
    if kind == "events_api":
        return {
            "type": "events_api",
            "accepts_response_payload": False,
            "retry_attempt": 0,
            "retry_reason": "",
        }
    source = load_fixture(
        "slack", SLASH_COMMAND_ENVELOPE if kind == "slash_commands" else INTERACTIVE_ENVELOPE
    )
    return {key: value for key, value in source.items() if key not in ("envelope_id", "payload")}


def envelope(kind: EnvelopeType, payload: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A new envelope (fresh id) around `payload`; `fields` override Slack's defaults for the type."""
    return {
        "envelope_id": str(uuid.uuid4()),
        **copy.deepcopy(_envelope_fields(kind)),
        "payload": payload,
        **fields,
    }


@dataclass(frozen=True)
class Ack:
    """The app's acknowledgement of one envelope. Reads like the HTTP response to the same request
    (status 200; the ack's payload is the body), so HTTP and Socket Mode scenarios compare directly."""

    envelope_id: str
    payload: dict[str, Any] | None
    connection: int  # the number of the connection that carried it (1 = the first)

    @property
    def status_code(self) -> int:
        return 200

    @property
    def text(self) -> str:
        return "" if self.payload is None else json.dumps(self.payload)

    def json(self) -> Any:
        return self.payload


@dataclass
class SocketConnection:
    number: int
    url_path: str
    websocket: ServerConnection
    hello: dict[str, Any]
    received: list[Any] = field(default_factory=list)  # every message the app sent, parsed
    disconnect_sent: dict[str, Any] | None = None
    closed: bool = False


class SocketModeServer:
    """The WebSocket side of Socket Mode. Attach it to the Web API stand-in (`stand_in.socket_mode =
    server`) so that `apps.connections.open` hands out its URLs."""

    def __init__(self, app_id: str = APP_ID) -> None:
        self.app_id = app_id
        self.connections: list[SocketConnection] = []
        self.acks: list[Ack] = []
        self.refused: list[str] = []  # request paths refused at the handshake
        self._tickets: set[str] = set()
        self._numbers = itertools.count(1)
        self._changed = threading.Condition()
        self._server = serve(self._handle, "127.0.0.1", 0, process_request=self._admit)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.socket.getsockname()[1])

    def start(self) -> SocketModeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)

    # -- what apps.connections.open hands out ----------------------------------------------------

    def issue_url(self) -> str:
        ticket = uuid.uuid4().hex
        with self._changed:
            self._tickets.add(ticket)
        return f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id={self.app_id}"

    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        ticket = (parse_qs(parts.query).get("ticket") or [""])[0]
        with self._changed:
            if parts.path == "/link/" and ticket in self._tickets:
                self._tickets.discard(ticket)
                return None
            self.refused.append(request.path)
            self._changed.notify_all()
        return connection.respond(HTTPStatus.UNAUTHORIZED, "invalid or used ticket\n")

    def _handle(self, websocket: ServerConnection) -> None:
        with self._changed:
            number = next(self._numbers)
            hello = {
                "type": "hello",
                "num_connections": sum(not c.closed for c in self.connections) + 1,
                "debug_info": {
                    "host": f"applink-test-{number}",
                    "build_number": 1,
                    "approximate_connection_time": 18060,
                },
                "connection_info": {"app_id": self.app_id},
            }
            websocket.send(json.dumps(hello))  # before anything else can be sent on it
            path = websocket.request.path if websocket.request else ""
            connection = SocketConnection(number, path, websocket, hello)
            self.connections.append(connection)
            self._changed.notify_all()
        try:
            for raw in websocket:
                message = json.loads(raw)
                with self._changed:
                    connection.received.append(message)
                    if isinstance(message, dict) and message.get("envelope_id"):
                        self.acks.append(Ack(str(message["envelope_id"]), message.get("payload"), number))
                    self._changed.notify_all()
        except ConnectionClosed:
            pass  # the app dropped the socket without a closing handshake (it does after a refresh)
        finally:
            with self._changed:
                connection.closed = True
                self._changed.notify_all()

    # -- Slack's side: envelopes and disconnects -------------------------------------------------

    def current(self) -> SocketConnection:
        """The newest open connection: where Slack delivers."""
        with self._changed:
            open_ = [c for c in self.connections if not c.closed]
            if not open_:
                raise AssertionError("the app has no open Socket Mode connection")
            return open_[-1]

    def deliver(self, message: dict[str, Any], on: SocketConnection | None = None) -> str:
        """Send an envelope (as is) on the current connection; returns its envelope id."""
        target = on or self.current()
        target.websocket.send(json.dumps(message))
        return str(message.get("envelope_id", ""))

    def send(self, kind: EnvelopeType, payload: dict[str, Any], **fields: Any) -> str:
        return self.deliver(envelope(kind, payload, **fields))

    def request_refresh(self, reason: str = "refresh_requested") -> SocketConnection:
        """Tell the app on the current connection to move to a new one."""
        connection = self.current()
        message = {
            "type": "disconnect",
            "reason": reason,
            "debug_info": {"host": connection.hello["debug_info"]["host"]},
        }
        connection.disconnect_sent = message
        connection.websocket.send(json.dumps(message))
        return connection

    # -- waiting for the app ---------------------------------------------------------------------

    def wait(self, condition: Callable[[], bool], timeout: float = WAIT_SECONDS) -> bool:
        with self._changed:
            return self._changed.wait_for(condition, timeout=timeout)

    def wait_for_connection(self, number: int, timeout: float = WAIT_SECONDS) -> SocketConnection:
        if not self.wait(lambda: len(self.connections) >= number, timeout):
            raise AssertionError(f"the app did not open connection {number} within {timeout}s")
        return self.connections[number - 1]

    def wait_until_closed(self, number: int, timeout: float = WAIT_SECONDS) -> None:
        connection = self.wait_for_connection(number, timeout)
        if not self.wait(lambda: connection.closed, timeout):
            raise AssertionError(f"the app kept connection {number} open for {timeout}s")

    def acks_for(self, envelope_id: str) -> list[Ack]:
        with self._changed:
            return [ack for ack in self.acks if ack.envelope_id == envelope_id]

    def wait_for_ack(self, envelope_id: str, timeout: float = WAIT_SECONDS) -> Ack:
        if not self.wait(lambda: any(a.envelope_id == envelope_id for a in self.acks), timeout):
            with self._changed:
                seen = [a.envelope_id for a in self.acks]
            raise AssertionError(f"no ack of envelope {envelope_id} within {timeout}s; acked: {seen}")
        return self.acks_for(envelope_id)[0]


# SlackClientSim.post's arguments that only an HTTP request has.
HTTP_ONLY = {"content_type", "timestamp", "signed"}


class SocketModeSlack(SlackClientSim):
    """Slack's side of the conversation over Socket Mode. The payloads come from the HTTP simulator's
    builders (`slash_command`, `view_submission`, `block_action`); `post` puts each on the bot's
    connection as an envelope — a form body becomes a `slash_commands` payload, `payload=<json>` an
    `interactive` one — and returns the bot's `Ack` where HTTP returns the response."""

    def __init__(self, server: SocketModeServer) -> None:
        super().__init__(url="socket-mode")
        self.server = server

    # The HTTP builders, typed for what they return here.
    def slash_command(self, text: str = "", **kw: Any) -> Ack:  # type: ignore[override]
        return cast(Ack, super().slash_command(text, **kw))

    def view_submission(self, values: dict[str, dict[str, Any]], **kw: Any) -> Ack:  # type: ignore[override]
        return cast(Ack, super().view_submission(values, **kw))

    def block_action(self, action_id: str, value: str, **kw: Any) -> Ack:  # type: ignore[override]
        return cast(Ack, super().block_action(action_id, value, **kw))

    def post(  # type: ignore[override]  # an Ack where HTTP has a requests.Response
        self, body: str, *, headers: dict[str, str] | None = None, **http_only: Any
    ) -> Ack:
        """`body` as an envelope; of the headers only Slack's retry ones mean something here (a
        connection has no content type, request timestamp or signature: those HTTP-only arguments
        are accepted and ignored; any other name is a mistake in the test)."""
        if unknown := set(http_only) - HTTP_ONLY:
            raise TypeError(f"post() got unexpected keyword argument(s) {sorted(unknown)}")
        form = dict(parse_qsl(body, keep_blank_values=True))
        retry = {key.lower(): value for key, value in (headers or {}).items()}
        fields: dict[str, Any] = {}
        if "x-slack-retry-num" in retry:  # Slack's redelivery, as Socket Mode says it
            fields = {
                "retry_attempt": int(retry["x-slack-retry-num"]),
                "retry_reason": retry.get("x-slack-retry-reason", ""),
            }
        if "payload" in form:
            payload = json.loads(form["payload"])
            # A modal submission can be answered in the ack (response_action); a click cannot.
            fields.setdefault("accepts_response_payload", payload.get("type") == "view_submission")
            envelope_id = self.server.send("interactive", payload, **fields)
        else:
            envelope_id = self.server.send("slash_commands", form, **fields)
        return self.server.wait_for_ack(envelope_id)


class SocketProcess:
    """`ecs-deploy-bot socket`, started the way an operator starts it, with its log in a file."""

    def __init__(self, env: Mapping[str, str], log_path: Path, *, unset: tuple[str, ...] = ()) -> None:
        merged = {**os.environ, **env}
        self.env = {key: value for key, value in merged.items() if key not in unset}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, server: SocketModeServer, timeout: float = 30.0) -> SocketProcess:
        """Start the bot and return once it holds a Socket Mode connection (it said hello)."""
        already = len(server.connections)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "socket"],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"socket process exited with {self.process.returncode}:\n{self.log()}")
            if server.wait(lambda: len(server.connections) > already, timeout=0.2):
                return self
        self.stop()
        raise RuntimeError(f"socket process did not connect within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> str:
        stop_process(self.process)
        return self.log()
