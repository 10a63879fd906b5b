"""The Slack Web API clients, configured once: base URL from settings, transient faults retried where
that is safe.

`make_web_client` (reads, modals, ephemeral messages, …) retries inside `slack_sdk` (its retry
handlers), before a call returns or raises:
- `ratelimited` (HTTP 429): waited out for as long as `Retry-After` says, up to RATE_LIMIT_RETRIES times;
- transient server faults (any HTTP 5xx, or HTTP 200 with `fatal_error`, `internal_error`,
  `service_unavailable`, `request_timeout`): retried with exponential backoff (0.5 s, 1 s, …);
- connection errors (reset, refused, DNS): retried the same way.
A method that creates something (`chat.postMessage`, `files.completeUploadExternal`, …) is never
retried after a server fault or a broken connection: Slack may have done it already (an *ambiguous*
failure), and a blind retry would post it twice.

`outbox_client` is the client of the notifier's outbox (bot/outbox.py): no retries at all inside the
client. The outbox decides: it waits out `Retry-After` without blocking anybody, backs off after
faults, and looks a post up (by the metadata the bot attaches) before it posts it again.
"""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from core.settings import Settings

TRANSIENT_ERRORS = frozenset({"fatal_error", "internal_error", "service_unavailable", "request_timeout"})
# Methods whose effect must not happen twice: after a 5xx or a broken connection they may have run.
NOT_IDEMPOTENT = frozenset(
    {"chat.postMessage", "chat.postEphemeral", "chat.scheduleMessage", "files.completeUploadExternal"}
)
RATE_LIMIT_RETRIES = 5
FAULT_RETRIES = 2  # server faults and broken connections, counted together
TIMEOUT_SECONDS = 15


def _method(request: HttpRequest) -> str:
    return request.url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


class IdempotentFaultRetryHandler(ConnectionErrorRetryHandler):
    """Retries a fault that may pass: slack_sdk's connection errors (reset, refused, DNS), any 5xx
    status, and the error codes Slack documents as "try again" even when they come with HTTP 200 —
    never for a method that is not idempotent (after a fault it may have run already)."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if _method(request) in NOT_IDEMPOTENT:
            return False
        if super()._can_retry(state=state, request=request, response=response, error=error):
            return True
        if response is None:
            return False
        body = response.body or {}
        return response.status_code >= 500 or (
            response.status_code == 200 and body.get("ok") is False and body.get("error") in TRANSIENT_ERRORS
        )


def is_transient(status_code: int | None, error: str | None) -> bool:
    """Whether a failed call may succeed later (an outage, a rate limit), as opposed to a permanent
    refusal such as `channel_not_found` or `invalid_blocks`."""
    return (status_code is not None and (status_code >= 500 or status_code == 429)) or error in (
        TRANSIENT_ERRORS | {"ratelimited"}
    )


def is_ambiguous(status_code: int | None, error: str | None) -> bool:
    """Whether Slack may have done what a failed call asked for: a server fault (5xx, `fatal_error`,
    `internal_error`, …). A rate limit (429) or a refusal means it did not."""
    if status_code == 429 or error == "ratelimited":
        return False
    return (status_code is not None and status_code >= 500) or error in TRANSIENT_ERRORS


def retry_handlers() -> list[RetryHandler]:
    return [
        IdempotentFaultRetryHandler(max_retry_count=FAULT_RETRIES),
        RateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
    ]


def make_web_client(settings: Settings) -> WebClient:
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    client = WebClient(token=token, base_url=settings.slack_api_url, timeout=TIMEOUT_SECONDS)
    client.retry_handlers = retry_handlers()
    return client


def outbox_client(client: WebClient) -> WebClient:
    """The same token and base URL, without any retry inside the client (see the module docstring)."""
    return WebClient(token=client.token, base_url=client.base_url, timeout=client.timeout, retry_handlers=[])
