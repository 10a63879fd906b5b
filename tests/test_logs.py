"""Logs never carry tokens or AWS credentials, and stay readable for what operators need."""

from __future__ import annotations

import json
import logging

import pytest
import requests
import structlog

from core.logs import bind_process_context, clear_process_context, configure_logging, get_logger, redact_text
from tests.harness.processes import WebProcess

SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize(
    "secret",
    [
        "xoxb-1234-5678-abcdefABCDEF",
        "xapp-1-A111-222-abc",
        "AKIAIOSFODNN7EXAMPLE",
        "ASIAIOSFODNN7EXAMPLE",
        SECRET_KEY,
    ],
)
def test_secret_shapes_are_masked(secret: str) -> None:
    assert secret not in redact_text(f"before {secret} after")
    assert "[redacted]" in redact_text(f"before {secret} after")


def test_commit_shas_and_ids_stay_visible() -> None:
    text = "commit 3f2a9c1b7d0e3f2a9c1b7d0e3f2a9c1b7d0e1234 deployment d-1a2b3c4d account 123456789012"
    assert redact_text(text) == text


@pytest.fixture(autouse=True)
def _restore_logging() -> object:
    yield None
    structlog.reset_defaults()


def test_json_log_lines_mask_sensitive_keys_and_values(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json=True)
    get_logger("test").info(
        "calling", token="xoxb-secret-value", detail=f"key {SECRET_KEY}", deployment_id="d-1"
    )
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["token"] == "[redacted]" and SECRET_KEY not in line["detail"]
    assert line["deployment_id"] == "d-1" and line["event"] == "calling"


def test_standard_library_records_are_rendered_like_the_bots_own(capsys: pytest.CaptureFixture[str]) -> None:
    """RQ, waitress and the Terraform runner log through the standard library: their lines are JSON
    too, redacted the same way, and stamped with the running job's ids like every other line."""
    configure_logging("INFO", json=True)
    bind_process_context(deployment_id="d-42", job_id="job-1")
    try:
        logging.getLogger("rq.worker").warning("working on %s with xoxb-1234-secret", "queue")
        get_logger("bot").info("structured")
    finally:
        clear_process_context()
    get_logger("bot").info("after the job")
    lines = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    foreign, own, after = lines[-3:]
    assert foreign["event"] == "working on queue with [redacted]" and foreign["logger"] == "rq.worker"
    assert (
        foreign["level"] == "warning" and foreign["deployment_id"] == "d-42" and foreign["job_id"] == "job-1"
    )
    assert own["event"] == "structured" and own["deployment_id"] == "d-42"
    assert "deployment_id" not in after


def test_the_web_process_writes_only_json_lines(bot_env: dict[str, str]) -> None:
    web = WebProcess(bot_env).start()
    requests.get(f"http://127.0.0.1:{web.port}/healthz", timeout=5)
    output = web.stop()
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines, "the web process said nothing"
    for line in lines:
        assert isinstance(json.loads(line), dict), line
