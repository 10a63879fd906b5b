"""Plans written by other Terraform versions, saved in other encodings, or wrapped by other tools:
a correct summary, or a message that names the cause."""

from __future__ import annotations

import codecs
import json

import pytest

from core.plan_summary import UNRECORDED_ADDRESS, PlanAction, PlanParseError, drift_address, summarise_plan
from tests.harness.fixtures import fixture_path

REAL_PLAN = fixture_path("plans", "terraform_golden_sensitive_values.json").read_text()


def test_terraform_1_0_drift_without_addresses_is_summarised() -> None:
    raw = fixture_path("plan_inputs", "tf1.0.0_resource_drift_without_address.json").read_bytes()
    assert all("address" not in entry for entry in json.loads(raw)["resource_drift"])
    summary = summarise_plan(raw)
    drift = {item.address: item for item in summary.drift}
    assert set(drift) == {
        "module.network.aws_security_group.app[0]",
        'aws_instance.bastion["blue"]',
        "aws_s3_bucket.logs",
    }  # the no-op entry is refresh noise
    assert drift['aws_instance.bastion["blue"]'].action is PlanAction.DELETE
    assert drift["module.network.aws_security_group.app[0]"].type == "aws_security_group"
    assert summary.counts.to_change == 1


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"mode": "data", "type": "aws_ami", "name": "base"}, "data.aws_ami.base"),
        (
            {
                "module_address": 'module.svc["api"]',
                "mode": "managed",
                "type": "aws_ecs_service",
                "name": "this",
            },
            'module.svc["api"].aws_ecs_service.this',
        ),
        ({"mode": "managed", "type": "aws_subnet", "name": "private", "index": 2}, "aws_subnet.private[2]"),
        ({"mode": "managed", "name": "typeless"}, UNRECORDED_ADDRESS),
        ({}, UNRECORDED_ADDRESS),
    ],
)
def test_drift_address_is_rebuilt_from_its_parts(entry: dict[str, object], expected: str) -> None:
    assert drift_address(entry) == expected


def test_a_drift_entry_with_nothing_to_name_it_is_shown_not_refused() -> None:
    plan = json.loads(REAL_PLAN)
    plan["resource_drift"] = [{"change": {"actions": ["update"], "before": {}, "after": {}}}]
    [drift] = summarise_plan(plan).drift
    assert drift.address == UNRECORDED_ADDRESS


@pytest.mark.parametrize(
    ("bom", "codec"),
    [
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ],
    ids=["utf-8-bom", "utf-16-le", "utf-16-be"],
)
def test_plans_saved_with_a_byte_order_mark_are_decoded(bom: bytes, codec: str) -> None:
    expected = summarise_plan(REAL_PLAN.encode())
    assert summarise_plan(bom + REAL_PLAN.encode(codec)) == expected


def test_a_bom_in_decoded_text_is_ignored() -> None:
    assert summarise_plan("\ufeff" + REAL_PLAN) == summarise_plan(REAL_PLAN)


def test_utf16_without_a_bom_is_recognised_as_json_allows() -> None:
    assert summarise_plan(REAL_PLAN.encode("utf-16-le")) == summarise_plan(REAL_PLAN)


def test_bytes_in_no_unicode_encoding_are_refused_clearly() -> None:
    with pytest.raises(PlanParseError, match="not UTF-8 or UTF-16 text"):
        summarise_plan(REAL_PLAN.encode("latin-1") + "é".encode("latin-1"))


def test_a_bom_that_lies_is_refused_clearly() -> None:
    with pytest.raises(PlanParseError, match="looks like UTF-16 text but does not decode"):
        summarise_plan(codecs.BOM_UTF16_LE + b"{\x00\x00\xd8")  # an unpaired surrogate


def test_text_before_the_json_names_the_wrapper() -> None:
    raw = fixture_path("plan_inputs", "setup_terraform_wrapper_output.txt").read_bytes()
    with pytest.raises(PlanParseError) as refused:
        summarise_plan(raw)
    message = str(refused.value)
    assert message.startswith("3 lines of non-JSON text precede the plan JSON")
    assert "is TERRAFORM_BIN a wrapper?" in message and "[command]" in message
    assert "Expecting value" not in message


def test_invalid_json_without_a_prefix_keeps_the_syntax_message() -> None:
    with pytest.raises(PlanParseError, match=r"not valid JSON \(Expecting"):
        summarise_plan(b'{"format_version": "1.0", oops}')
