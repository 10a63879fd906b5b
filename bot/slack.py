"""The Slack Web API client, configured once: base URL from settings, transient faults retried.

Retries happen inside `slack_sdk` (its retry handlers), before a call returns or raises:
- `ratelimited` (HTTP 429): waited out for as long as `Retry-After` says, up to RATE_LIMIT_RETRIES times;
- transient server faults (any HTTP 5xx, or HTTP 200 with `fatal_error`, `internal_error`,
  `service_unavailable`, `request_timeout`): retried with exponential backoff (0.5 s, 1 s, …);
- connection errors (reset, refused, DNS): retried the same way.
What still fails after that is the caller's to handle: the notifier keeps thread messages in its
outbox and delivers them when Slack answers again.
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
RATE_LIMIT_RETRIES = 5
TRANSIENT_RETRIES = 2
CONNECTION_RETRIES = 2
TIMEOUT_SECONDS = 15


class TransientErrorRetryHandler(RetryHandler):
    """Retries Slack's transient server faults: any 5xx status, and the error codes Slack documents as
    "try again" even when they come with HTTP 200."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None:
            return False
        if response.status_code >= 500:
            return True
        body = response.body or {}
        return (
            response.status_code == 200 and body.get("ok") is False and body.get("error") in TRANSIENT_ERRORS
        )


def is_transient(status_code: int | None, error: str | None) -> bool:
    """Whether a failed call may succeed later (an outage, a rate limit), as opposed to a permanent
    refusal such as `channel_not_found` or `invalid_blocks`."""
    return (status_code is not None and (status_code >= 500 or status_code == 429)) or error in (
        TRANSIENT_ERRORS | {"ratelimited"}
    )


def retry_handlers() -> list[RetryHandler]:
    return [
        ConnectionErrorRetryHandler(max_retry_count=CONNECTION_RETRIES),
        RateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
        TransientErrorRetryHandler(max_retry_count=TRANSIENT_RETRIES),
    ]


def make_web_client(settings: Settings) -> WebClient:
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    client = WebClient(token=token, base_url=settings.slack_api_url, timeout=TIMEOUT_SECONDS)
    client.retry_handlers = retry_handlers()
    return client
