"""core.plan.reading: the fast way (msgspec, straight into records) gives exactly what the exact way
(the standard library's json, then checks that explain) gives, for the inputs where the two parsers
disagree; and a large plan is summarised without building its whole object tree."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from core.plan.reading import decode_document
from core.plan_summary import PlanParseError, PlanSummary, summarise_plan
from tests.fixtures_plans import FIXTURE_PATHS, big_plan, plan_document, resource_change


def exact(text: str) -> PlanSummary:
    """The summary of the plan handed over already parsed by the standard library."""
    return summarise_plan(json.loads(text))


def update_plan(**extra: Any) -> dict[str, Any]:
    return plan_document(
        resource_change(
            "aws_s3_bucket.logs",
            ["update"],
            before={"name": "logs", "size": 1},
            after={"name": "logs", "size": 2},
        ),
        **extra,
    )


@pytest.mark.parametrize("path", FIXTURE_PATHS, ids=lambda path: path.name)
def test_every_real_plan_is_read_the_fast_way(path: Path) -> None:
    raw = path.read_bytes()
    assert decode_document(raw) is not None
    assert decode_document(raw.decode()) is not None


def test_invalid_utf8_in_a_part_the_summary_skips_is_still_refused() -> None:
    text = json.dumps(update_plan(planned_values={"root_module": {"note": "@@"}}))
    raw = text.encode().replace(b"@@", b"\xff\xfe\x80")
    with pytest.raises(PlanParseError, match="not UTF-8"):
        summarise_plan(raw)


def test_non_ascii_utf8_is_read_the_fast_way_and_shown_the_same() -> None:
    plan = update_plan(planned_values={"root_module": {"note": "café ☕"}})
    plan["resource_changes"][0]["change"]["after"]["name"] = "journaux-été"
    text = json.dumps(plan, ensure_ascii=False)
    assert decode_document(text.encode()) is not None
    assert summarise_plan(text.encode()) == exact(text)
    assert "journaux-été" in summarise_plan(text.encode()).changes[0].attribute_changes[0].after


@pytest.mark.parametrize(
    ("marker", "replacement"),
    [
        ('"@@"', r'"\ud800"'),  # a lone surrogate: json keeps it, msgspec refuses it
        ('"@@"', "NaN"),  # not JSON, but Python's json (and so the bot) has always read it
        ('"@@"', "1e999"),  # json reads inf, msgspec refuses the number
        ('"@@"', "123456789012345678901234567890"),
    ],
)
def test_values_the_parsers_disagree_on_give_the_same_summary(marker: str, replacement: str) -> None:
    plan = update_plan(planned_values={"root_module": {"odd": "@@"}})
    plan["resource_changes"][0]["change"]["after"]["size"] = "@@"
    text = json.dumps(plan).replace(marker, replacement)
    assert summarise_plan(text.encode()) == exact(text)
    assert summarise_plan(text) == exact(text)


def test_two_byte_order_marks_read_as_before() -> None:
    text = json.dumps(update_plan())
    assert summarise_plan(b"\xef\xbb\xbf" + ("\ufeff" + text).encode()) == exact(text)


def test_duplicate_keys_keep_the_last_value_as_json_does() -> None:
    text = json.dumps(update_plan()).replace(
        '"format_version": "1.2"', '"format_version": "9", "format_version": "1.2"'
    )
    assert text.count("format_version") == 2
    assert summarise_plan(text.encode()) == exact(text)


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        # The first problem in document order is reported, even when a later one is of another kind.
        (
            plan_document(resource_change("a.b", ["explode"]), 7),
            r"resource_changes\[0\] \(a.b\).change.actions is \['explode'\]",
        ),
        (
            plan_document({"type": "x"}, resource_change("a.c", ["create"])),
            r"resource_changes\[0\] in the plan has no `address`",
        ),
        (
            plan_document(resource_change("a.b", ["create"]), output_changes=[], resource_drift=[None]),
            r"output_changes in the plan must be an object, got a list",
        ),
        (
            plan_document(resource_change("a.b", ["create"]), resource_drift=[{"address": "a.d"}]),
            r"resource_drift\[0\] \(a.d\).change in the plan must be an object, got null",
        ),
    ],
)
def test_errors_come_in_document_order_whichever_way_the_plan_arrives(
    plan: dict[str, Any], message: str
) -> None:
    text = json.dumps(plan)
    for form in (text.encode(), text, plan):
        with pytest.raises(PlanParseError, match=message):
            summarise_plan(form)


def test_nesting_too_deep_in_a_skipped_part_is_refused_as_before() -> None:
    text = json.dumps(update_plan(planned_values="@@")).replace('"@@"', "[" * 5000 + "]" * 5000)
    with pytest.raises(PlanParseError, match="nested too deeply to read"):
        summarise_plan(text.encode())


def test_a_large_plan_is_summarised_without_building_its_object_tree() -> None:
    """Beyond the summary it returns, summarising a plan's bytes needs far less memory than the object
    tree json.loads would build for the same bytes (the exact way, before the fast way existed)."""
    plan, _ = big_plan(10_000)
    raw = json.dumps(plan).encode()
    expected = summarise_plan(plan)
    del plan
    tracemalloc.start()
    try:
        summary = summarise_plan(raw)
        kept, peak = tracemalloc.get_traced_memory()
        del summary
        tracemalloc.reset_peak()
        before_tree, _ = tracemalloc.get_traced_memory()
        tree = json.loads(raw)
        tree_bytes = tracemalloc.get_traced_memory()[0] - before_tree
        del tree
    finally:
        tracemalloc.stop()
    assert summarise_plan(raw) == expected
    transient = peak - kept
    assert transient < tree_bytes / 2, f"{transient:,} bytes in passing; json.loads builds {tree_bytes:,}"
