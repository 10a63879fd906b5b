"""Structured logging: JSON lines when not on a terminal, readable lines on one.

Secrets never reach a log line: values under sensitive-looking keys are masked, and Slack or AWS
token shapes are masked wherever they appear.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

SENSITIVE_KEYS = re.compile(r"token|secret|password|credential|authorization|signature|session_key", re.I)
# Slack tokens, AWS access key ids, and 40-character AWS secret keys (mixed case, so that lowercase
# hex such as commit SHAs, which operators need to see, is left alone).
SECRET_SHAPES = re.compile(
    r"xox[abposr]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+|(?:AKIA|ASIA)[A-Z0-9]{16}"
    r"|(?<![A-Za-z0-9/+])(?=[A-Za-z0-9/+]{0,39}[A-Z])(?=[A-Za-z0-9/+]{0,39}[a-z])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])"
)


def redact_text(text: str) -> str:
    return SECRET_SHAPES.sub("[redacted]", text)


def redact_event(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask sensitive keys and secret-shaped values."""
    for key, value in list(event.items()):
        if SENSITIVE_KEYS.search(key):
            event[key] = "[redacted]"
        elif isinstance(value, str):
            event[key] = redact_text(value)
    return event


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a line is written, not when logging was configured (the
    test runner replaces it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


_process_context: dict[str, str] = {}


def bind_process_context(**values: str) -> None:
    """Stamp every line this process writes from now on — structlog's and the standard library's
    (RQ, the Terraform runner), from any thread — with these values (the work horse's job ids)."""
    _process_context.update(values)


def clear_process_context() -> None:
    _process_context.clear()


def _add_process_context(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in _process_context.items():
        event.setdefault(key, value)
    return event


def configure_logging(level: str = "INFO", *, json: bool | None = None) -> None:
    """Logging for every process, configured once: structlog renders its own lines and, through the
    root handler's ProcessorFormatter, the standard library's (RQ, waitress, botocore) the same way —
    JSON lines when not on a terminal, readable lines on one — each with the same redaction."""
    as_json = (not sys.stderr.isatty()) if json is None else json
    renderer: Any = structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _add_process_context,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact_event,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "urllib3", "waitress.queue"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
