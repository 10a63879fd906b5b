"""Logs never carry tokens or AWS credentials, and stay readable for what operators need."""

from __future__ import annotations

import json

import pytest
import structlog

from core.logs import configure_logging, get_logger, redact_text

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
