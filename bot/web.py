"""The HTTP front: Slack's events, interactivity and slash commands all POST to /slack/events.

`GET /metrics` answers Prometheus (bot/metrics.py: counts read from Redis, no ids or names), without
authentication like `GET /healthz`.

The body size limit is enforced by waitress itself (`serve`): a request announcing more than
MAX_BODY gets a 413 from its headers, before its body is read or buffered, and never reaches the
app. Signatures are checked here, once, before anything is parsed (the Bolt app does not check them
again, see bot/app.py), so a forged or replayed request gets a 401 and touches nothing; a malformed
body gets a 400, never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk.signature import SignatureVerifier

from bot.metrics import WebMetrics
from bot.payloads import MalformedRequest, check_body
from core.logs import get_logger

log = get_logger(__name__)
MAX_BODY = 1024 * 1024
# waitress refuses a body whose Content-Length (or chunked size so far) *reaches* its
# max_request_body_size, so one byte more lets a body of exactly MAX_BODY through.
WAITRESS_MAX_REQUEST_BODY = MAX_BODY + 1
StartResponse = Callable[..., Any]


def _reply(start_response: StartResponse, status: str, payload: dict[str, Any]) -> list[bytes]:
    body = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class SlackWsgiApp:
    def __init__(
        self, app: App, signing_secret: str, health: Callable[[], bool], metrics: WebMetrics | None = None
    ) -> None:
        self.handler = SlackRequestHandler(app)
        self.verifier = SignatureVerifier(signing_secret)
        self.health = health
        self.metrics = metrics

    def _signed(self, body: bytes, headers: dict[str, str]) -> bool:
        if not headers["x-slack-request-timestamp"].isdigit() or not headers["x-slack-signature"]:
            return False
        return self.verifier.is_valid_request(body, headers)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path == "/healthz" and method == "GET":
            ok = self.health()
            return _reply(start_response, "200 OK" if ok else "503 Service Unavailable", {"ok": ok})
        if path == "/metrics" and method == "GET" and self.metrics is not None:  # counts only, no auth
            body = self.metrics.render()
            start_response(
                "200 OK", [("Content-Type", self.metrics.content_type), ("Content-Length", str(len(body)))]
            )
            return [body]
        if path != "/slack/events":
            return _reply(start_response, "404 Not Found", {"error": "not found"})
        if method != "POST":
            return _reply(start_response, "405 Method Not Allowed", {"error": "POST only"})
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            return _reply(start_response, "413 Content Too Large", {"error": "body too large"})
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {
            "x-slack-request-timestamp": environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", ""),
            "x-slack-signature": environ.get("HTTP_X_SLACK_SIGNATURE", ""),
        }
        if not self._signed(body, headers):
            return _reply(start_response, "401 Unauthorized", {"error": "invalid request"})
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return _reply(start_response, "400 Bad Request", {"error": "body is not UTF-8"})
        try:
            check_body(text, environ.get("CONTENT_TYPE", ""))
        except MalformedRequest as exc:
            return _reply(start_response, "400 Bad Request", {"error": f"malformed request: {exc}"})
        environ = {**environ, "wsgi.input": _Body(body), "CONTENT_LENGTH": str(len(body))}
        try:
            return self.handler(environ, start_response)
        except Exception as exc:  # a malformed body that Bolt could not parse
            log.warning("bad_slack_request", error=type(exc).__name__, size=len(text))
            return _reply(start_response, "400 Bad Request", {"error": "malformed request"})


def serve(wsgi: SlackWsgiApp, *, host: str, port: int, threads: int) -> None:
    """Serve the app with waitress, which answers 413 itself to an oversized request (waitress's
    own default limit is 1 GiB, buffered to disk before the app would see the request)."""
    import waitress

    waitress.serve(
        wsgi,
        host=host,
        port=port,
        threads=threads,
        ident="ecs-deploy-bot",
        max_request_body_size=WAITRESS_MAX_REQUEST_BODY,
        _quiet=True,
    )


class _Body:  # a re-readable wsgi.input for Bolt after we read the body ourselves
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, size: int = -1) -> bytes:
        data, self.data = (self.data, b"") if size < 0 else (self.data[:size], self.data[size:])
        return data
