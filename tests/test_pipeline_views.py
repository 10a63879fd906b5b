"""Thread messages of the middle steps: limits, masking, and cuts that keep the formatting intact."""

from __future__ import annotations

import json

from bot.views.pipeline import (
    CheckLine,
    VerificationLine,
    apply_failed_message,
    apply_result_message,
    backend_message,
    verification_message,
)


def total_text(blocks: list[dict[str, object]]) -> int:
    return len(json.dumps(blocks, ensure_ascii=False))


def test_a_long_error_excerpt_is_cut_without_leaving_a_code_block_open() -> None:
    message = apply_failed_message("exit 1", "Error: " + "x" * 10_000, ["terraform_data.a"] * 100)
    for block in message.block_dicts():
        text = block.get("text", {}).get("text", "") if isinstance(block.get("text"), dict) else ""
        assert len(text) <= 3000
        assert text.count("```") % 2 == 0, text[-40:]
    assert "…and 85 more" in json.dumps(message.block_dicts(), ensure_ascii=False)


def test_sensitive_outputs_are_masked() -> None:
    message = apply_result_message(
        "Apply complete! Resources: 3 added, 0 changed, 0 destroyed.",
        {
            "alb_dns_name": {"value": "web-dev.elb.amazonaws.com", "sensitive": False},
            "database_password": {"sensitive": True},
        },
    )
    text = json.dumps(message.block_dicts())
    assert "web-dev.elb.amazonaws.com" in text and "database_password = (sensitive)" in text


def test_backend_report_with_many_checks_stays_within_slack_limits() -> None:
    checks = [CheckLine(ok=False, name=f"check {i}", detail="d" * 300, fix="f" * 200) for i in range(60)]
    message = backend_message(
        "d-1",
        bucket="b",
        table="t",
        headline="h",
        checks=checks,
        changes=["c" * 500] * 40,
        needs_confirmation=True,
        failure="x" * 4000,
        suggestion="b-1",
    )
    blocks = message.block_dicts()
    assert len(blocks) <= 50 and total_text(blocks) < 12_000


def test_verification_lists_a_hint_only_for_failed_checks() -> None:
    message = verification_message(
        [
            VerificationLine(ok=True, name="ECS cluster", detail="ACTIVE", hint="H-ok"),
            VerificationLine(ok=False, name="service web", detail="0/1 running", hint="H-bad"),
            VerificationLine(ok=None, name="database", detail="not configured", hint="H-none"),
        ],
        ["Push your images"],
    )
    text = json.dumps(message.block_dicts())
    assert "H-bad" in text and "H-ok" not in text and "1 check(s) need attention" in text
