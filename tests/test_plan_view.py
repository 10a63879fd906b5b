"""bot.views.plan: Slack's limits for any plan size, no sensitive value ever, the right buttons."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.models.blocks import ActionsBlock, Block, HeaderBlock, SectionBlock

from bot.ids import Action
from bot.views.plan import plan_blocks, plan_decided_blocks, plan_text
from core.plan_summary import PlanSummary, summarise_plan
from tests.fixtures_plans import (
    FIXTURE_PATHS,
    SYNTHETIC_TYPES,
    big_plan,
    load_fixture,
    plan_document,
    resource_change,
    sensitive_leaves,
    with_canaries,
)

DEPLOYMENT_ID = "d-0badcafe"
PLAN_SHA256 = "3f1a9c0e7b2d4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f"
MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3000
MAX_MESSAGE_CHARS = 12_000


def render(summary: PlanSummary, **options: Any) -> list[dict[str, Any]]:
    blocks = plan_blocks(summary, deployment_id=DEPLOYMENT_ID, plan_sha256=PLAN_SHA256, **options)
    assert all(isinstance(block, Block) for block in blocks)
    return [block.to_dict() for block in blocks]  # to_dict() runs slack_sdk's own validation


def assert_within_slack_limits(blocks: list[dict[str, Any]]) -> None:
    assert len(blocks) <= MAX_BLOCKS
    assert len(blocks) <= 20  # what we aim for, well inside the limit
    for block in blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= MAX_SECTION_CHARS
    assert len(json.dumps(blocks)) < MAX_MESSAGE_CHARS  # escaped JSON: the pessimistic measure


def section_texts(blocks: list[dict[str, Any]]) -> list[str]:
    return [block["text"]["text"] for block in blocks if block["type"] == "section"]


def buttons(blocks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    actions = [block for block in blocks if block["type"] == "actions"]
    assert len(actions) <= 1
    return {element["action_id"]: element for block in actions for element in block["elements"]}


def everything_posted(summary: PlanSummary, blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False) + plan_text(summary)


# ---------------------------------------------------------------- every fixture


@pytest.mark.parametrize("path", FIXTURE_PATHS, ids=lambda path: path.name)
def test_every_fixture_renders_within_slack_limits(path: Path) -> None:
    summary = summarise_plan(path.read_bytes(), monthly_cost="$200–400/month")
    blocks = render(summary)
    assert_within_slack_limits(blocks)
    assert blocks[0]["type"] == "header"
    assert summary.sentence in section_texts(blocks)[0]
    assert summary.sentence in plan_text(summary)


@pytest.mark.parametrize("path", FIXTURE_PATHS, ids=lambda path: path.name)
def test_no_sensitive_value_of_any_fixture_is_posted(path: Path) -> None:
    plan = json.loads(path.read_bytes())
    summary = summarise_plan(plan)
    posted = everything_posted(summary, render(summary))
    shown_names = {entry["address"] for entry in plan.get("resource_changes") or []} | set(
        plan.get("output_changes") or {}
    )
    for value in sensitive_leaves(plan):
        text = value if isinstance(value, str) else json.dumps(value)
        if value is None or any(text in name for name in shown_names):
            continue  # e.g. the sensitive output "bar" of tfjson_110 next to `null_resource.bar`
        assert text not in posted, f"sensitive value {text!r} was posted"


@pytest.mark.parametrize("path", FIXTURE_PATHS, ids=lambda path: path.name)
def test_planted_sensitive_canaries_are_never_posted(path: Path) -> None:
    planted, canaries = with_canaries(json.loads(path.read_bytes()))
    summary = summarise_plan(planted)
    for blocks in (render(summary), [block.to_dict() for block in decided(summary)]):
        posted = everything_posted(summary, blocks)
        assert not [canary for canary in canaries if canary in posted]


@pytest.mark.parametrize("path", FIXTURE_PATHS, ids=lambda path: path.name)
def test_approve_is_offered_only_for_an_applyable_plan_with_changes(path: Path) -> None:
    plan = json.loads(path.read_bytes())
    offered = buttons(render(summarise_plan(plan)))
    has_resource_changes = any(
        entry["change"]["actions"] != ["no-op"]
        or entry.get("previous_address")
        or entry["change"].get("importing")
        for entry in plan.get("resource_changes") or []
    )
    has_output_changes = any(o["actions"] != ["no-op"] for o in (plan.get("output_changes") or {}).values())
    should_offer = (
        not plan.get("errored")
        and plan.get("applyable", True)
        and (has_resource_changes or has_output_changes)
    )
    assert (Action.APPROVE.value in offered) == should_offer
    assert {Action.REJECT.value, Action.EDIT_VALUES.value, Action.REPLAN.value} <= set(offered)


# ---------------------------------------------------------------- content


def test_destroys_and_replacements_come_first_and_flagged_with_reasons() -> None:
    blocks = render(summarise_plan(load_fixture("snyk_pe_s3_create_update_delete_noop.json")))
    texts = section_texts(blocks)
    flagged = next(text for text in texts if "*To destroy* (1)" in text)
    assert "`aws_s3_bucket.delete_bucket` will be *destroyed* — removed from configuration" in flagged
    position = {
        name: next(i for i, t in enumerate(texts) if name in t)
        for name in ("delete_bucket", "update_bucket", "create_bucket")
    }
    assert position["delete_bucket"] < position["update_bucket"] < position["create_bucket"]
    assert any("Changed outside Terraform (1)" in text and "noop_bucket" in text for text in texts)


def test_replacement_shows_reason_and_forcing_attribute() -> None:
    texts = section_texts(render(summarise_plan(load_fixture("terraform_golden_requires_replace.json"))))
    flagged = next(text for text in texts if "*To replace* (1)" in text)
    assert "`test_instance.test` will be *replaced*" in flagged
    assert "a change forces replacement" in flagged
    assert "`ami`" in flagged and "forces replacement_" in flagged
    assert "(known after apply)" in flagged


def test_errored_plan_says_why_and_offers_no_approve() -> None:
    summary = summarise_plan(load_fixture("terraform_golden_plan_errored.json"))
    blocks = render(summary)
    assert "Not applyable" in section_texts(blocks)[0]
    assert Action.APPROVE.value not in buttons(blocks)
    assert "Not applyable" in plan_text(summary)


def test_no_changes_offers_no_approve() -> None:
    blocks = render(summarise_plan(load_fixture("tfplanformat_no_resources_tf1.7.json")))
    assert "*No changes.*" in section_texts(blocks)[0]
    assert Action.APPROVE.value not in buttons(blocks)


def test_sensitive_output_is_shown_masked() -> None:
    texts = section_texts(render(summarise_plan(load_fixture("terraform_golden_sensitive_values.json"))))
    assert any("`test` (new) = `(sensitive)`" in text for text in texts)


def test_moved_resource_reads_like_terraform() -> None:
    texts = section_texts(render(summarise_plan(load_fixture("tfjson_moved_block_plan.json"))))
    assert any("`random_id.test` has moved to `random_id.test2`" in text for text in texts)


def test_cost_band_and_costly_resources() -> None:
    plan = plan_document(
        *[resource_change(f"aws_nat_gateway.az[{i}]", ["create"], after={}) for i in range(3)],
        resource_change("aws_rds_cluster_instance.reader", ["delete"], before={}),
    )
    texts = section_texts(render(summarise_plan(plan, monthly_cost="$800–1,500/month")))
    cost = next(text for text in texts if ":moneybag:" in text)
    assert "$800–1,500/month" in cost
    assert "`aws_nat_gateway`): 3 to add" in cost
    assert "`aws_rds_cluster_instance`): 1 to destroy" in cost


def test_buttons_carry_the_deployment_id_and_the_hash_prefix_is_shown() -> None:
    blocks = render(summarise_plan(load_fixture("terraform_golden_basic_delete.json")))
    offered = buttons(blocks)
    assert set(offered) == {
        Action.APPROVE.value,
        Action.REJECT.value,
        Action.EDIT_VALUES.value,
        Action.REPLAN.value,
    }
    assert {button["value"] for button in offered.values()} == {DEPLOYMENT_ID}
    assert offered[Action.APPROVE.value]["style"] == "primary"
    assert offered[Action.REJECT.value]["style"] == "danger"
    assert offered[Action.APPROVE.value]["text"]["text"] == "Approve & apply"
    assert "confirm" in offered[Action.APPROVE.value]  # it destroys something: a second click
    context = json.dumps([block for block in blocks if block["type"] == "context"])
    assert PLAN_SHA256[:12] in context and PLAN_SHA256[:13] not in context
    assert DEPLOYMENT_ID in context


def test_without_permission_to_act_there_are_no_buttons() -> None:
    blocks = render(summarise_plan(load_fixture("terraform_golden_basic_delete.json")), can_act=False)
    assert buttons(blocks) == {}


def decided(summary: PlanSummary) -> list[Block]:
    return plan_decided_blocks(
        summary,
        deployment_id=DEPLOYMENT_ID,
        plan_sha256=PLAN_SHA256,
        decision_text=":white_check_mark: Approved by <@U0LEAD> — applying.",
    )


def test_decided_message_replaces_the_buttons_with_the_decision() -> None:
    summary = summarise_plan(load_fixture("terraform_golden_basic_delete.json"))
    after = [block.to_dict() for block in decided(summary)]
    before = render(summary)
    assert buttons(after) == {}
    assert after[: len(before) - 1] == before[:-1]
    assert "Approved by <@U0LEAD>" in after[-1]["text"]["text"]
    assert_within_slack_limits(after)


def test_mrkdwn_in_addresses_cannot_ping_or_break_formatting() -> None:
    plan = plan_document(resource_change('aws_ssm_parameter.p["<!channel> & `x`"]', ["create"], after={}))
    posted = json.dumps(render(summarise_plan(plan)))
    assert "<!channel>" not in posted
    assert "&lt;!channel&gt; &amp;" in posted


def test_block_objects_are_slack_sdk_models() -> None:
    blocks = plan_blocks(
        summarise_plan(load_fixture("terraform_golden_basic_delete.json")),
        deployment_id=DEPLOYMENT_ID,
        plan_sha256=PLAN_SHA256,
    )
    assert isinstance(blocks[0], HeaderBlock)
    assert any(isinstance(block, SectionBlock) for block in blocks)
    assert isinstance(blocks[-1], ActionsBlock)


# ---------------------------------------------------------------- any plan size


FOLD = re.compile(r"…and (\d+) more")
SECTION_TOTAL = re.compile(r"\((\d+)\)\*?")


def shown_plus_folded(section: str) -> int:
    """Resources a section accounts for: listed lines (or `type ×N` lines) plus its "…and N more"."""
    accounted = 0
    for line in section.splitlines()[1:]:
        if line.startswith("• "):
            by_type = re.match(r"• `[^`]+` ×(\d+):", line)
            accounted += int(by_type.group(1)) if by_type else 1
        elif match := FOLD.match(line):
            accounted += int(match.group(1))
    return accounted


def test_ten_thousand_changes_render_within_limits_and_fold_the_rest() -> None:
    plan, built = big_plan(10_000)
    summary = summarise_plan(json.dumps(plan))
    blocks = render(summary, can_act=True)
    assert_within_slack_limits(blocks)
    texts = section_texts(blocks)
    assert f"*{built['delete'] + built['replace']} resources destroyed or replaced*" in texts[0]
    titles = (
        ("To destroy", built["delete"]),
        ("To replace", built["replace"]),
        ("To change in place", built["update"]),
        ("To add", built["create"]),
    )
    positions = [next(i for i, text in enumerate(texts) if title in text) for title, _ in titles]
    assert positions == sorted(positions)  # destroys, then replacements, then the rest
    for title, expected in titles:
        section = next(text for text in texts if title in text)
        assert f"({expected})" in section
        assert shown_plus_folded(section) == expected
    assert re.search(r"and \d+ more", texts[positions[0]])  # 1,000 destroys cannot all be listed
    posted = everything_posted(summary, blocks)
    assert "SECRETPW" not in posted and "OLDSECRET" not in posted
    assert len(plan_text(summary)) < 3000


def test_pathological_addresses_and_types_still_fit() -> None:
    """Huge for_each keys, thousands of distinct types, escaping-heavy text: all still fit."""
    key = '"<&>' * 400
    changes = [
        resource_change(
            f'module.m["{key}{i}"].aws_t{i}.r', ["delete"], type_=f"aws_t{i}_" + "x" * 300, before={}
        )
        for i in range(3_000)
    ]
    changes += [
        resource_change(f"aws_ecs_service.s{i}", ["update"], before={"a": "<" * 80}, after={"a": ">" * 80})
        for i in range(3_000)
    ]
    outputs = {
        f"out_{i}_" + "&" * 200: {
            "actions": ["create"],
            "before": None,
            "after": "<" * 100,
            "after_sensitive": False,
        }
        for i in range(500)
    }
    summary = summarise_plan(plan_document(*changes, output_changes=outputs), monthly_cost="$" + "9" * 5000)
    for blocks in (render(summary), [block.to_dict() for block in decided(summary)]):
        assert_within_slack_limits(blocks)


def test_every_group_gets_a_section_even_when_all_are_large() -> None:
    plan = plan_document(
        *[
            resource_change(f"{SYNTHETIC_TYPES[i % 8]}.{kind}{i}", actions, before={"a": 1}, after={"a": 2})
            for kind, actions in (
                ("d", ["delete"]),
                ("r", ["delete", "create"]),
                ("f", ["forget"]),
                ("u", ["update"]),
                ("c", ["create"]),
            )
            for i in range(400)
        ],
        *[
            resource_change(
                f"aws_s3_bucket.m{i}", ["no-op"], before={}, after={}, previous_address=f"aws_s3_bucket.o{i}"
            )
            for i in range(400)
        ],
        *[
            resource_change(f"aws_s3_bucket.i{i}", ["no-op"], before={}, after={}, importing={"id": str(i)})
            for i in range(400)
        ],
    )
    summary = summarise_plan(plan)
    assert (
        summary.sentence == "Plan: 400 to import, 800 to add, 400 to change, 800 to destroy, 400 to forget."
    )
    blocks = render(summary)
    assert_within_slack_limits(blocks)
    texts = section_texts(blocks)
    for title in (
        "To destroy",
        "To replace",
        "To forget",
        "To change in place",
        "To add",
        "To import",
        "Moved",
    ):
        section = next(text for text in texts if title in text)
        assert shown_plus_folded(section) == 400


def test_a_costly_destroy_is_never_folded_away_among_many_cheap_ones() -> None:
    plan = plan_document(
        *[
            resource_change(f"aws_{kind}_thing.t{i}", ["delete"], before={})
            for kind in (
                "alpha",
                "beta",
                "gamma",
                "delta",
                "epsilon",
                "zeta",
                "eta",
                "theta",
                "iota",
                "kappa",
            )
            for i in range(200)
        ],
        resource_change("aws_db_instance.main", ["delete"], before={}),
    )
    texts = section_texts(render(summarise_plan(plan)))
    destroys = next(text for text in texts if "*To destroy* (2001)" in text)
    assert destroys.splitlines()[1].startswith("• `aws_db_instance` ×1")
    assert shown_plus_folded(destroys) == 2001
