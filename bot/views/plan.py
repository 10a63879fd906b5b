"""The plan review message: a `PlanSummary` in, `slack_sdk.models` blocks out (pure, no I/O).

Slack rejects a message with more than 50 blocks, a section over 3,000 characters, or roughly
12,000 characters of text overall, and slack_sdk checks none of the last two for us. A plan can
list thousands of resources, so every section here is filled against a character budget and the
rest is folded into "…and N more". Budgets are counted in JSON-escaped characters, the most
pessimistic measure of the text Slack receives.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ConfirmObject,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
)

from bot.ids import Action, BlockId
from bot.views.blocks import button, context, escape_mrkdwn, section
from bot.views.destroy import DESTROY_HEADER, destroy_summary_text
from bot.views.messages import Message
from core.plan_summary import (
    ChangeGroup,
    GroupedChanges,
    OutputChange,
    PlanAction,
    PlanSummary,
    ResourceChange,
)

HEADER = ":memo: Terraform plan"
ALWAYS_BUTTONS: tuple[tuple[str, str, str | None], ...] = (
    ("Reject", Action.REJECT, "danger"),
    ("Edit values", Action.EDIT_VALUES, None),
    ("Re-plan", Action.REPLAN, None),
)
HASH_PREFIX_CHARS = 12
MAX_ADDRESS_CHARS = 150
MAX_TYPES_IN_FOLD = 3
ADDRESSES_PER_TYPE = 3
NEWLINE_COST = 2  # "\n" once JSON-escaped
# A group this small is listed resource by resource, a larger one type by type.
DETAIL_LIMIT = 10
FLAGGED_DETAIL_LIMIT = 15

# Character budgets (JSON-escaped) per part of the message; together well under Slack's 12,000.
SUMMARY_BUDGET = 700
FLAGGED_BUDGET = 2600
GROUPS_BUDGET = 3200
SECTION_BUDGET = 2500
DRIFT_BUDGET = 500
OUTPUTS_BUDGET = 700
COST_BUDGET = 500
DECISION_BUDGET = 1500

GROUP_TITLES: dict[ChangeGroup, str] = {
    ChangeGroup.DESTROY: ":rotating_light: *To destroy*",
    ChangeGroup.REPLACE: ":rotating_light: *To replace*",
    ChangeGroup.FORGET: ":wave: *To forget* (removed from state, not destroyed)",
    ChangeGroup.UPDATE: ":pencil2: *To change in place*",
    ChangeGroup.CREATE: ":heavy_plus_sign: *To add*",
    ChangeGroup.IMPORT: ":inbox_tray: *To import*",
    ChangeGroup.MOVE: ":truck: *Moved* (new address, no change)",
}

ACTION_WORDS: dict[PlanAction, str] = {
    PlanAction.DELETE: "will be *destroyed*",
    PlanAction.DELETE_THEN_CREATE: "will be *replaced* (destroyed, then created)",
    PlanAction.CREATE_THEN_DELETE: "will be *replaced* (created, then the old one destroyed)",
    PlanAction.CREATE_THEN_FORGET: "will be *replaced*; the old object is left in place, unmanaged",
    PlanAction.FORGET: "will be removed from state, not destroyed",
    PlanAction.UPDATE: "will be updated in place",
    PlanAction.CREATE: "will be created",
    PlanAction.READ: "will be read during apply",
}

OUTPUT_ACTION_WORDS: dict[PlanAction, str] = {
    PlanAction.CREATE: "new",
    PlanAction.UPDATE: "changed",
    PlanAction.DELETE: "removed",
}


def plan_blocks(
    summary: PlanSummary,
    *,
    deployment_id: str,
    plan_sha256: str,
    can_act: bool = True,
    button_value: str | None = None,
) -> list[Block]:
    """The plan message: summary, destroys/replacements first, other changes by type, buttons.

    `button_value` (default: the deployment id) names what a click is for; the pipeline passes
    "<deployment id>:<plan attempt>" so a click on an old plan's button can be told apart.
    """
    blocks = _body_blocks(summary, deployment_id=deployment_id, plan_sha256=plan_sha256)
    if can_act:
        blocks.append(_action_buttons(summary, button_value or deployment_id))
    else:
        blocks.append(context("Waiting for an approver to decide."))
    return blocks


def plan_message(
    summary: PlanSummary,
    *,
    deployment_id: str,
    plan_sha256: str,
    button_value: str,
    destroy_stores: tuple[ResourceChange, ...] | None = None,
) -> Message:
    """The plan's thread message, with its buttons (`plan_blocks`) and its one-line notification.
    With `destroy_stores` (the data stores it deletes, core.destroy.data_stores) it is a destroy's
    plan: "This destroys the environment", the counts and the data stores first."""
    blocks = plan_blocks(
        summary, deployment_id=deployment_id, plan_sha256=plan_sha256, button_value=button_value
    )
    if destroy_stores is None:
        return Message(text=plan_text(summary), blocks=blocks)
    top: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=DESTROY_HEADER, emoji=True)),
        section(_clip(destroy_summary_text(summary, destroy_stores), FLAGGED_BUDGET)),
    ]
    kept = [
        block
        for block in blocks[1:]  # the usual header gives way to the destroy's
        if not isinstance(block, ActionsBlock)
    ]
    actions = [block for block in blocks if isinstance(block, ActionsBlock)]
    for block in actions:  # a destroy's values are the environment's: nothing to edit
        block.elements = [
            e for e in block.elements if getattr(e, "action_id", "") != Action.EDIT_VALUES.value
        ]
    text = _clip(f"{DESTROY_HEADER}: {plan_text(summary)}", 1000)
    return Message(text=text, blocks=top + kept + actions)


def plan_decided_blocks(
    summary: PlanSummary, *, deployment_id: str, plan_sha256: str, decision_text: str
) -> list[Block]:
    """The same message after approve/reject: the buttons give way to the decision.

    `decision_text` is the caller's mrkdwn (it may mention users, `<@U…>`), so it is not escaped.
    """
    blocks = _body_blocks(summary, deployment_id=deployment_id, plan_sha256=plan_sha256)
    blocks.append(section(_clip(decision_text, DECISION_BUDGET)))
    return blocks


def plan_text(summary: PlanSummary) -> str:
    """The notification/fallback `text`: one line, no values."""
    parts = [f"Terraform plan: {summary.sentence}"]
    if summary.flagged:
        parts.append(f"{_plural(len(summary.flagged), 'resource')} destroyed or replaced.")
    if not summary.applyable and summary.not_applyable_reason and (summary.has_changes or summary.errored):
        parts.append(f"Not applyable: {summary.not_applyable_reason}")
    return _clip(" ".join(parts), 1000)


def _body_blocks(summary: PlanSummary, *, deployment_id: str, plan_sha256: str) -> list[Block]:
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=HEADER, emoji=True)),
        section(_summary_text(summary)),
    ]
    blocks += [section(text) for text in _change_sections(summary)]
    blocks += [section(text) for text in _extra_sections(summary)]
    blocks.append(DividerBlock())
    blocks.append(context(_identity_text(summary, deployment_id, plan_sha256)))
    return blocks


def _summary_text(summary: PlanSummary) -> str:
    lines = [f"*{escape_mrkdwn(summary.sentence)}*"]
    if not summary.has_changes and not summary.errored:
        lines.append("Your infrastructure matches the configuration: there is nothing to apply.")
    elif not summary.applyable and summary.not_applyable_reason:
        lines.append(f":no_entry_sign: *Not applyable:* {escape_mrkdwn(summary.not_applyable_reason)}")
    if summary.complete is False and not summary.errored:
        lines.append(
            ":warning: This plan is *incomplete*: some changes are deferred, so another plan will be"
            " needed after this one is applied."
        )
    if summary.flagged:
        lines.append(
            f":warning: *{_plural(len(summary.flagged), 'resource')} destroyed or replaced* — see below."
        )
    notes = _count_notes(summary)
    if notes:
        lines.append(escape_mrkdwn(notes))
    return _clip("\n".join(lines), SUMMARY_BUDGET)


def _count_notes(summary: PlanSummary) -> str:
    counts = summary.counts
    notes = []
    if counts.to_move:
        notes.append(f"{_plural(counts.to_move, 'resource')} moved to a new address")
    if counts.to_read:
        notes.append(f"{_plural(counts.to_read, 'data source')} read during apply")
    return "; ".join(notes) + "." if notes else ""


def _change_sections(summary: PlanSummary) -> list[str]:
    """Destroys and replacements first, from their own budget, then every other group."""
    groups = summary.grouped()
    flagged = [group for group in groups if group.group.is_flagged]
    others = [group for group in groups if not group.group.is_flagged]
    return _shared_sections(flagged, FLAGGED_BUDGET, FLAGGED_DETAIL_LIMIT) + _shared_sections(
        others, GROUPS_BUDGET, DETAIL_LIMIT
    )


def _shared_sections(groups: Sequence[GroupedChanges], budget: int, detail_limit: int) -> list[str]:
    """One section per group, each given a fair share of what the groups before it left over."""
    sections = []
    remaining = budget
    for position, group in enumerate(groups):
        share = min(SECTION_BUDGET, remaining // (len(groups) - position))
        text = _group_section(group, share, detail_limit)
        remaining -= _cost(text)
        sections.append(text)
    return sections


def _group_section(group: GroupedChanges, budget: int, detail_limit: int) -> str:
    """Resource by resource when the group is small, otherwise type by type (`aws_x ×3: …`)."""
    title = f"{GROUP_TITLES[group.group]} ({group.total})"
    if group.total <= detail_limit:
        lines = [
            _Line(_detail_line(change), (change,))
            for type_count in group.by_type
            for change in type_count.changes
        ]
    else:
        lines = [
            _Line(_type_line(type_count.type, type_count.changes), type_count.changes)
            for type_count in group.by_type
        ]
    return _fit(title, lines, budget)


@dataclass(frozen=True)
class _Line:
    """One line of a section and the resources it stands for (to count what gets folded)."""

    text: str
    changes: tuple[ResourceChange, ...]


def _fit(title: str, lines: Sequence[_Line], budget: int) -> str:
    """The title and as many lines as fit the budget, then "…and N more" for the rest."""
    title = _clip(title, budget // 2)
    shown: list[str] = [title]
    used = _cost(title)
    for position, line in enumerate(lines):
        rest = lines[position:]
        line_cost = _cost(line.text) + NEWLINE_COST
        fold_cost = _cost(_fold_text(rest[1:])) + NEWLINE_COST if len(rest) > 1 else 0
        if used + line_cost + fold_cost > budget:
            shown.append(_fold_text(rest))
            break
        shown.append(line.text)
        used += line_cost
    return "\n".join(shown)


def _fold_text(rest: Sequence[_Line]) -> str:
    hidden = [change for line in rest for change in line.changes]
    by_type = Counter(change.type for change in hidden).most_common(MAX_TYPES_IN_FOLD + 1)
    types = ", ".join(f"{_code(name)} ×{count}" for name, count in by_type[:MAX_TYPES_IN_FOLD])
    if len(by_type) > MAX_TYPES_IN_FOLD:
        types += ", …"
    return f"…and {len(hidden)} more ({types})"


def _detail_line(change: ResourceChange) -> str:
    if change.group is ChangeGroup.MOVE and change.previous_address:
        return f"• {_code(change.previous_address)} has moved to {_code(change.address)}"
    line = f"• {_code(change.address)} {_action_words(change)}"
    if change.reason:
        line += f" — {escape_mrkdwn(change.reason)}"
    if change.previous_address:
        line += f" (moved from {_code(change.previous_address)})"
    if change.importing and change.action is not PlanAction.NO_OP:
        line += " (imported first)"
    attributes = [
        f"{_code(attribute.name)}: {_code(attribute.before)} → {_code(attribute.after)}"
        + (" _forces replacement_" if attribute.forces_replacement else "")
        for attribute in change.attribute_changes
    ]
    if change.more_attribute_changes:
        attributes.append(f"+{change.more_attribute_changes} more")
    if attributes:
        line += "\n      " + "; ".join(attributes)
    return line


def _action_words(change: ResourceChange) -> str:
    if change.action is PlanAction.NO_OP:
        return "will be imported" if change.group is ChangeGroup.IMPORT else "has moved"
    return ACTION_WORDS[change.action]


def _output_line(output: OutputChange) -> str:
    words = OUTPUT_ACTION_WORDS.get(output.action, output.action.value)
    return f"• {_code(output.name)} ({words}) = {_code(output.value)}"


def _type_line(type_name: str, changes: Sequence[ResourceChange]) -> str:
    examples = ", ".join(_code(change.address) for change in changes[:ADDRESSES_PER_TYPE])
    more = f" and {len(changes) - ADDRESSES_PER_TYPE} more" if len(changes) > ADDRESSES_PER_TYPE else ""
    return f"• {_code(type_name)} ×{len(changes)}: {examples}{more}"


def _extra_sections(summary: PlanSummary) -> list[str]:
    sections = []
    if summary.drift:
        lines = [_Line(f"• {_code(drift.address)} — {drift.description}", ()) for drift in summary.drift]
        sections.append(_fit(f":eyes: *Changed outside Terraform ({len(lines)})*", lines, DRIFT_BUDGET))
    if summary.outputs:
        lines = [_Line(_output_line(output), ()) for output in summary.outputs]
        sections.append(_fit(f":outbox_tray: *Output changes ({len(lines)})*", lines, OUTPUTS_BUDGET))
    if summary.costly or summary.monthly_cost:
        sections.append(_cost_section(summary))
    return sections


def _cost_section(summary: PlanSummary) -> str:
    title = ":moneybag: *Cost*"
    if summary.monthly_cost:
        title += f": the chosen size runs about *{escape_mrkdwn(_clip(summary.monthly_cost, 100))}*"
    lines = []
    for costly in summary.costly:
        effects = [
            f"{costly.added} to add" if costly.added else "",
            f"{costly.replaced} to replace" if costly.replaced else "",
            f"{costly.changed} to change" if costly.changed else "",
            f"{costly.destroyed} to destroy" if costly.destroyed else "",
        ]
        effect_text = ", ".join(effect for effect in effects if effect)
        lines.append(_Line(f"• {escape_mrkdwn(costly.label)} ({_code(costly.type)}): {effect_text}", ()))
    return _fit(title, lines, COST_BUDGET)


def _identity_text(summary: PlanSummary, deployment_id: str, plan_sha256: str) -> str:
    parts = [f"Deployment {_code(deployment_id)}", f"plan {_code(plan_sha256[:HASH_PREFIX_CHARS])}"]
    if summary.terraform_version:
        parts.append(f"Terraform {escape_mrkdwn(summary.terraform_version)}")
    parts.append(f"format {escape_mrkdwn(summary.format_version)}")
    return _clip(" · ".join(parts), 500)


def _action_buttons(summary: PlanSummary, deployment_id: str) -> ActionsBlock:
    """Approve only when there is something applyable; the rest always, so the flow can move on."""
    elements = [button(label, action, deployment_id, style) for label, action, style in ALWAYS_BUTTONS]
    if summary.applyable and summary.has_changes:
        confirm = _approve_confirmation(summary)
        elements.insert(
            0, button("Approve & apply", Action.APPROVE, deployment_id, "primary", confirm=confirm)
        )
    return ActionsBlock(block_id=BlockId.ACTIONS.value, elements=elements)


def _approve_confirmation(summary: PlanSummary) -> ConfirmObject | None:
    """A second click when the apply destroys something: the costly mistake deserves a pause."""
    if not summary.flagged:
        return None
    return ConfirmObject(
        title=PlainTextObject(text="Apply destructive plan?"),
        text=MarkdownTextObject(
            text=f"{escape_mrkdwn(summary.sentence)} {_plural(len(summary.flagged), 'resource')} will be destroyed or replaced."
        ),
        confirm=PlainTextObject(text="Apply"),
        deny=PlainTextObject(text="Cancel"),
        style="danger",
    )


def _code(text: str) -> str:
    """Inline code for an address or value: escaped, without backticks, and not too long."""
    text = text.replace("`", "'")
    if len(text) > MAX_ADDRESS_CHARS:
        text = text[: MAX_ADDRESS_CHARS - 1] + "…"
    return f"`{escape_mrkdwn(text)}`"


def _clip(text: str, budget: int) -> str:
    """Cut text so its JSON-escaped length fits the budget."""
    if _cost(text) <= budget:
        return text
    ellipsis_cost = _cost("…")
    while text and _cost(text) + ellipsis_cost > budget:
        # every character costs at least one, so cutting the overshoot converges in a step or two
        text = text[: len(text) - (_cost(text) + ellipsis_cost - budget)]
    return text + "…"


def _cost(text: str) -> int:
    """Characters the text takes in the JSON Slack receives (escapes included, quotes not)."""
    return len(json.dumps(text)) - 2


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
