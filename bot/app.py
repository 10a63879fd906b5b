"""Wiring only: build the Bolt app and register the listeners (then freeze the start-up objects, see build_app)."""

from __future__ import annotations

import gc
from collections.abc import Callable

from slack_bolt import App, BoltRequest, BoltResponse

from bot import listeners
from bot.services import Services
from core import validation


def ignore_slack_retries(
    req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]
) -> BoltResponse:
    """Slack re-sends a request it thinks timed out; the first delivery is already being handled.
    Socket Mode marks a first delivery with retry attempt 0, which Bolt passes on as the header "0"."""
    if any(attempt not in ("", "0") for attempt in req.headers.get("x-slack-retry-num", [])):
        return BoltResponse(status=200, body="")
    return next()


def build_app(services: Services) -> App:
    settings = services.settings
    settings.require_slack_http() if settings.slack_app_token is None else settings.require_slack_socket()
    secret = (
        settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else "socket-mode"
    )
    app = App(
        signing_secret=secret,
        client=services.client,
        token_verification_enabled=False,
        process_before_response=False,
        raise_error_for_unhandled_request=False,
        # Verified once, at the HTTP edge (bot.web.SlackWsgiApp), before the body is parsed; Socket
        # Mode requests carry no signature.
        request_verification_enabled=False,
    )
    app.middleware(ignore_slack_retries)
    listeners.register(app, services)
    # botocore's endpoint data (gzipped JSON), which region checks and the request form's regions
    # read: loaded here, once, not by the first requests, each reading it again at the same moment
    # (8 change forms submitted at once took ~1 s each, and over Slack's 3 s on a loaded machine).
    validation.known_regions()
    # Built once per process, at start: what exists now lives as long as the process. Freezing it
    # keeps the collector's first full passes from stalling the first acks for ~100 ms
    # (bench/ack_latency.py, first round).
    gc.collect()
    gc.freeze()
    return app
