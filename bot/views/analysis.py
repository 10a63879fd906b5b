"""The account analysis summary (the runbook's "AWS ACCOUNT ANALYSIS SUMMARY") as Block Kit, and its full
plain-text form for a file attachment. Pure: models in, `slack_sdk.models` blocks out.

Slack limits kept here: at most 50 blocks, section text at most 3000 characters, and the whole message
well under Slack's ~12,000 characters: long lists collapse to a count plus the first few names.
"""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.models.blocks import (
    Block,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.ids import Action
from bot.views.blocks import buttons, clip, context, escape_mrkdwn, section
from bot.views.findings import (
    VERDICT_WORDS,
    conflict_text,
    kind_label,
    note_lines,
    permission_warning,
    recommendation_lines,
    section_line,
    service_label,
    verdict_label,
)
from bot.views.messages import Message
from core.analysis.report import AnalysisReport, Conflict, ConflictKind, Severity
from core.analysis.scan import ExistingResource, ResourceKind
from core.validation import DEFAULT_VPC_CIDR

MAX_BLOCKS = 50
MESSAGE_BUDGET = 10_000  # Slack rejects messages around 12-13k characters of block text
LINE_LIMIT = 280
LISTED_PER_KIND = 4  # conflicts shown per kind before collapsing to a count
LISTED_ACTIONS = 6  # denied actions shown per service
LISTED_SERVICES = 10
LISTED_NOTES = 6

SEVERITY_ICONS = {Severity.BLOCKING: ":no_entry:", Severity.WARNING: ":warning:"}
KIND_TITLES = {
    ConflictKind.CIDR: "CIDR overlaps",
    ConflictKind.NAME: "Name conflicts",
    ConflictKind.QUOTA: "Quotas",
    ConflictKind.REGION: "Region",
    ConflictKind.NOT_NEW_ACCOUNT: "Not a brand-new account",
    ConflictKind.PERMISSION: "Permissions",
    ConflictKind.COVERAGE: "Checks that could not run",
}
CANCEL_BUTTON: tuple[str, str, str | None] = ("Cancel", Action.CANCEL, "danger")
FIELD_LABELS = {"vpc_cidr_block": "VPC CIDR", "application": "application", "environment": "environment"}


def _resource_text(resource: ExistingResource | None) -> str:
    return f" — _existing: {escape_mrkdwn(clip(resource.display, 160))}_" if resource else ""


def _count_text(count: int | None) -> str:
    return "not scanned" if count is None else str(count)


def _conflict_line(conflict: Conflict) -> str:
    line = f"{SEVERITY_ICONS[conflict.severity]} {escape_mrkdwn(conflict_text(conflict))}{_resource_text(conflict.resource)}"
    return clip(line, LINE_LIMIT)


def _conflict_blocks(report: AnalysisReport, per_kind: int) -> list[Block]:
    if not report.conflicts:
        return [section("*Conflicts*\nNone found.")]
    blocking, warnings = len(report.blocking), len(report.warnings)
    blocks: list[Block] = [section(f"*Conflicts* ({blocking} blocking, {warnings} warning(s))")]
    by_kind: dict[ConflictKind, list[Conflict]] = {}
    for conflict in report.conflicts:
        if conflict.kind is not ConflictKind.PERMISSION:  # the permissions section lists those by service
            by_kind.setdefault(conflict.kind, []).append(conflict)
    for kind, conflicts in by_kind.items():
        ordered = sorted(conflicts, key=lambda c: not c.blocking)
        lines = [_conflict_line(c) for c in ordered[:per_kind]]
        if len(ordered) > per_kind:
            lines.append(f"…and {len(ordered) - per_kind} more (see the full report).")
        blocks.append(section(f"*{KIND_TITLES[kind]}* ({len(conflicts)})\n" + "\n".join(lines)))
    return blocks


def _counts_text(report: AnalysisReport) -> str:
    lines = [f"• {kind_label(kind)}: {_count_text(report.counts.get(kind))}" for kind in ResourceKind]
    return "*Resources found*\n" + "\n".join(lines)


def _recommendation_text(report: AnalysisReport) -> str:
    lines = [f"• {escape_mrkdwn(clip(message, LINE_LIMIT))}" for message in recommendation_lines(report)[:6]]
    if report.recommended_changes:
        changes = ", ".join(
            f"{FIELD_LABELS.get(field, field)} → `{escape_mrkdwn(value)}`"
            for field, value in report.recommended_changes.items()
        )
        lines.append(f"*Proposed:* {changes}")
    return "*Recommendations*\n" + "\n".join(lines)


def _permission_text(report: AnalysisReport) -> str | None:
    check = report.permissions
    if check is None:
        return None
    if not check.checked:
        return f"*Permissions*\n:warning: {escape_mrkdwn(clip(permission_warning(check), LINE_LIMIT))}"
    if not check.denied:
        return f"*Permissions*\n:white_check_mark: All {check.evaluated} required action(s) are allowed."
    note = " — _overridden by a lead_" if report.permissions_overridden else ""
    lines = [f"*Permissions*: {check.denied_count} denied action(s){note}"]
    services = list(check.denied.items())
    for service, actions in services[:LISTED_SERVICES]:
        shown = ", ".join(f"`{a}`" for a in actions[:LISTED_ACTIONS])
        more = f" and {len(actions) - LISTED_ACTIONS} more" if len(actions) > LISTED_ACTIONS else ""
        lines.append(
            clip(f"• *{escape_mrkdwn(service_label(service))}* ({len(actions)}): {shown}{more}", LINE_LIMIT)
        )
    if len(services) > LISTED_SERVICES:
        lines.append(f"…and {len(services) - LISTED_SERVICES} more service(s) (see the full report).")
    return "\n".join(lines)


def _notes_text(report: AnalysisReport) -> str | None:
    notes = note_lines(report)
    if not notes and not report.skipped_sections:
        return None
    lines = [f"• {escape_mrkdwn(clip(note, LINE_LIMIT))}" for note in notes[:LISTED_NOTES]]
    for skipped in report.skipped_sections[:LISTED_NOTES]:
        lines.append(f"• {escape_mrkdwn(clip(section_line(skipped), LINE_LIMIT))}")
    hidden = max(0, len(notes) - LISTED_NOTES) + max(0, len(report.skipped_sections) - LISTED_NOTES)
    if hidden:
        lines.append(f"…and {hidden} more (see the full report).")
    return "*Notes*\n" + "\n".join(lines)


def block_text_length(blocks: Sequence[Block]) -> int:
    """Characters of text in the blocks (what Slack counts against the message size)."""
    total = 0
    for block in blocks:
        data = block.to_dict()
        stack: list[object] = [data]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                if isinstance(item.get("text"), str):
                    total += len(item["text"])
                stack.extend(v for k, v in item.items() if k != "text" or not isinstance(v, str))
            elif isinstance(item, list):
                stack.extend(item)
    return total


def analysis_blocks(
    report: AnalysisReport,
    *,
    deployment_id: str,
    profile: str,
    account_id: str,
    region: str,
    can_keep_values: bool,
) -> list[Block]:
    """The analysis summary message with its decision buttons. The conflicts listed per kind shrink until
    Slack's limits hold."""
    head = _head_blocks(report, profile=profile, account_id=account_id, region=region)
    tail = _tail_blocks(report, deployment_id=deployment_id, can_keep_values=can_keep_values)
    blocks: list[Block] = []
    for per_kind in (LISTED_PER_KIND, 2, 1, 0):
        blocks = [*head, *_conflict_blocks(report, per_kind), *tail]
        if len(blocks) <= MAX_BLOCKS and block_text_length(blocks) <= MESSAGE_BUDGET:
            break
    return blocks


def _head_blocks(report: AnalysisReport, *, profile: str, account_id: str, region: str) -> list[Block]:
    """Where, what was asked, the verdict and the resource counts."""
    verdict = VERDICT_WORDS[report.verdict]
    return [
        HeaderBlock(text=PlainTextObject(text="AWS account analysis summary")),
        SectionBlock(
            fields=[
                MarkdownTextObject(text=f"*Account*\n{escape_mrkdwn(account_id)}"),
                MarkdownTextObject(text=f"*Profile*\n{escape_mrkdwn(profile)}"),
                MarkdownTextObject(text=f"*Region*\n{escape_mrkdwn(region)}"),
                MarkdownTextObject(
                    text=f"*Request*\n{escape_mrkdwn(report.application)}/{escape_mrkdwn(report.environment)} ·"
                    f" {report.size.value} · `{escape_mrkdwn(report.vpc_cidr_block)}`"
                ),
            ]
        ),
        section(f"{verdict.icon} *Verdict: {verdict.label}*\n{verdict.explained}"),
        DividerBlock(),
        section(_counts_text(report)),
    ]


def _tail_blocks(report: AnalysisReport, *, deployment_id: str, can_keep_values: bool) -> list[Block]:
    """What to change, the permissions, the notes, the scan's time and the decision buttons."""
    blocks: list[Block] = []
    if report.names_unresolved or report.recommended_changes:
        blocks.append(section(_recommendation_text(report)))
    permissions = _permission_text(report)
    if permissions:
        blocks.append(section(permissions))
    notes = _notes_text(report)
    if notes:
        blocks.append(section(notes))
    scanned = f"Scan took {report.scan_elapsed_s:.2f}s."
    if report.skipped_sections:
        scanned += f" {len(report.skipped_sections)} section(s) not scanned (no permission)."
    blocks.append(context(scanned + " The full report is attached."))

    items: list[tuple[str, str, str | None]] = []
    if report.has_recommendations:
        items.append(("Apply recommendations", Action.APPLY_RECOMMENDATIONS, "primary"))
    if can_keep_values and not report.blocking:
        items.append(("Keep my values", Action.KEEP_VALUES, None))
    if report.only_permissions_block and not report.permissions_overridden:
        items.append(("Override (lead)", Action.OVERRIDE_PERMISSIONS, None))
    items.append(CANCEL_BUTTON)
    blocks.append(buttons(deployment_id, items, block_id="actions"))
    return blocks


# --------------------------------------------------------------------------------------------------
# Full report (file attachment)
# --------------------------------------------------------------------------------------------------


def analysis_report_text(report: AnalysisReport, *, profile: str, account_id: str, region: str) -> str:
    """Everything in the report, unabridged, as plain text."""
    out = [
        "AWS ACCOUNT ANALYSIS SUMMARY",
        "=" * 28,
        f"Account:  {account_id}",
        f"Profile:  {profile}",
        f"Region:   {region}",
        f"Request:  {report.application}/{report.environment}, size {report.size.value},"
        f" VPC CIDR {report.vpc_cidr_block}",
        f"Verdict:  {verdict_label(report.verdict).upper()}",
        f"Scan:     {report.scan_elapsed_s:.2f}s",
        "",
        "RESOURCES FOUND",
    ]
    out += [f"  {kind_label(kind)}: {_count_text(report.counts.get(kind))}" for kind in ResourceKind]
    out += ["", f"CONFLICTS ({len(report.blocking)} blocking, {len(report.warnings)} warnings)"]
    if not report.conflicts:
        out.append("  none")
    for conflict in report.conflicts:
        existing = f"  [existing: {conflict.resource.display}]" if conflict.resource else ""
        out.append(
            f"  - {conflict.severity.value.upper()} {conflict.kind.value}: {conflict_text(conflict)}{existing}"
        )
    out += ["", "RECOMMENDATIONS"]
    out += [f"  - {message}" for message in recommendation_lines(report)] or ["  none"]
    for field, value in report.recommended_changes.items():
        out.append(f"  {field} = {value}")
    out += ["", "PERMISSIONS"]
    check = report.permissions
    if check is None:
        out.append("  not checked")
    elif not check.checked:
        out.append(f"  WARNING: {permission_warning(check)}")
    elif not check.denied:
        out.append(f"  all {check.evaluated} required actions allowed for {check.principal_arn}")
    else:
        overridden = " (overridden by a lead)" if report.permissions_overridden else ""
        out.append(f"  {check.denied_count} denied for {check.principal_arn}{overridden}")
        for service, actions in check.denied.items():
            out.append(f"  {service_label(service)}:")
            out += [f"    {action}" for action in actions]
    out += ["", "NOTES"]
    out += [f"  - {note}" for note in note_lines(report)] or ["  none"]
    if report.skipped_sections or report.failed_sections:
        out += ["", "SECTIONS NOT SCANNED"]
        out += [f"  - {section_line(s)}" for s in report.skipped_sections + report.failed_sections]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------------
# Brand-new account path
# --------------------------------------------------------------------------------------------------


def fresh_account_blocks(
    *,
    deployment_id: str,
    profile: str,
    account_id: str,
    region: str,
    application: str,
    environment: str,
    vpc_cidr_block: str = DEFAULT_VPC_CIDR,
    found: Sequence[ExistingResource] = (),
) -> list[Block]:
    """The requester said the account is brand new. With nothing found: the defaults that will be used.
    With non-default resources found: say so and offer the full analysis."""
    where = (
        f"Account {escape_mrkdwn(account_id)} · profile {escape_mrkdwn(profile)} · {escape_mrkdwn(region)}"
    )
    if not found:
        return [
            section(
                f":sparkles: *Fresh AWS account — using defaults:* VPC CIDR `{escape_mrkdwn(vpc_cidr_block)}`,"
                f" application `{escape_mrkdwn(application)}`, environment `{escape_mrkdwn(environment)}`"
            ),
            context(where),
            buttons(deployment_id, [CANCEL_BUTTON], block_id="actions"),
        ]
    shown = "\n".join(
        f"• {escape_mrkdwn(clip(kind_label(r.kind)[:-1] + ': ' + r.display, LINE_LIMIT))}" for r in found[:5]
    )
    more = f"\n…and {len(found) - 5} more." if len(found) > 5 else ""
    return [
        section(
            f":warning: *This account is not brand new:* {len(found)} non-default resource(s) found."
            " Run the full analysis to check for CIDR, name and quota conflicts before deploying."
        ),
        section(shown + more),
        context(where),
        buttons(
            deployment_id,
            [("Run full analysis", Action.RUN_FULL_ANALYSIS, "primary"), CANCEL_BUTTON],
            block_id="actions",
        ),
    ]


def analysis_message(report: AnalysisReport, blocks: list[Block]) -> Message:
    """The analysis summary as a thread message (its notification names the verdict)."""
    return Message(text=f"AWS account analysis: {verdict_label(report.verdict)}", blocks=blocks)


def fresh_account_message(
    blocks: list[Block], *, vpc_cidr_block: str, application: str, environment: str, not_empty: bool
) -> Message:
    """A brand-new account (defaults used), or one that turned out to have resources already."""
    text = (
        "Fresh AWS account — using defaults: VPC CIDR "
        f"{vpc_cidr_block}, application {application}, environment {environment}"
    )
    return Message(
        text=text if not not_empty else "This 'brand new' account already has resources", blocks=blocks
    )
