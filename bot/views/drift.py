"""Every word about drift: the channel messages (new, grew, changed, resolved), the acknowledge
modal, the answers of `/ecs-deploy drift` and of the two buttons, and App Home's line per environment.

Values come from core.drift's report, already masked by the plan summary's code: a sensitive value is
never in a report, so it can never reach these texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.ids import Action, BlockId, Callback
from bot.views.blocks import buttons, clip, context, escape_mrkdwn, inline_code, section
from bot.views.messages import Message
from bot.views.request_modal import modal, text_input
from core.drift import (
    CheckOutcome,
    DriftChange,
    DriftedResource,
    DriftRecord,
    DriftReport,
    DriftState,
    drift_state,
    listed,
)
from core.plan.model import PlanAction

MAX_RESOURCES_SHOWN = 15
ACKNOWLEDGE_REASON_MAX = 500

HEADLINES = {
    DriftChange.NEW: "🌊 Drift detected in {env}",
    DriftChange.GREW: "🌊 Drift in {env} grew",
    DriftChange.CHANGED: "🌊 Drift in {env} changed",
    DriftChange.RESOLVED: "✅ Drift in {env} resolved: it matches its last applied configuration again",
}
ACTION_WORDS = {
    PlanAction.UPDATE: "changed",
    PlanAction.DELETE: "deleted",
    PlanAction.CREATE: "to be created",
    PlanAction.DELETE_THEN_CREATE: "to be replaced",
    PlanAction.CREATE_THEN_DELETE: "to be replaced",
    PlanAction.CREATE_THEN_FORGET: "to be replaced",
    PlanAction.FORGET: "to be forgotten",
}
PENDING_WORDS = {
    PlanAction.UPDATE: "would be updated",
    PlanAction.DELETE: "would be destroyed",
    PlanAction.CREATE: "would be created",
    PlanAction.DELETE_THEN_CREATE: "would be replaced",
    PlanAction.CREATE_THEN_DELETE: "would be replaced",
    PlanAction.CREATE_THEN_FORGET: "would be replaced",
    PlanAction.FORGET: "would be forgotten",
}


def _code(text: str) -> str:
    return inline_code(text)


def _resource_line(resource: DriftedResource, words: dict[PlanAction, str]) -> str:
    line = f"• {_code(resource.address)} {words.get(resource.action, resource.action.value)}"
    attributes = [f"{_code(a.name)}: {_code(a.before)} → {_code(a.after)}" for a in resource.attributes]
    if resource.more_attributes:
        attributes.append(f"+{resource.more_attributes} more")
    if attributes:
        line += "\n      " + "; ".join(attributes)
    return line


def _resource_section(title: str, resources: Sequence[DriftedResource], words: dict[PlanAction, str]) -> str:
    shown, more = listed(resources, MAX_RESOURCES_SHOWN)
    lines = [title, *(_resource_line(r, words) for r in shown)]
    if more:
        lines.append(f"… and {more} more")
    return "\n".join(lines)


def report_sections(report: DriftReport) -> list[str]:
    sections: list[str] = []
    if report.outside:
        sections.append(
            _resource_section(
                "*Changed outside Terraform* (`plan -refresh-only`):", report.outside, ACTION_WORDS
            )
        )
    if report.pending:
        sections.append(
            _resource_section(
                "*Terraform would change* to match the last applied configuration:",
                report.pending,
                PENDING_WORDS,
            )
        )
    if report.more_resources:
        sections.append(f"… and {report.more_resources} more resources not listed")
    return sections


def drift_message(
    change: DriftChange,
    report: DriftReport,
    *,
    environment_key: str,
    short_name: str,
    last_thread: str | None,
) -> Message:
    """The channel's message when drift changed; `RESOLVED` carries no buttons."""
    headline = HEADLINES[change].format(env=_code(short_name))
    blocks: list[Block] = [section(f"*{headline}*")]
    if change is not DriftChange.RESOLVED:
        blocks += [section(text) for text in report_sections(report)]
        blocks.append(
            buttons(
                environment_key,
                [("Plan to reconcile", Action.PLAN_TO_RECONCILE.value, "primary")],
            )
        )
        blocks.append(
            buttons(
                f"{environment_key}:{report.fingerprint}",
                [("Acknowledge", Action.ACKNOWLEDGE_DRIFT.value, None)],
            )
        )
    note = f"environment `{environment_key}`"
    if last_thread:
        note += f" · <{last_thread}|its last change>"
    note += (
        " · Plan to reconcile starts a change with the environment's current values (approval as usual);"
        " Acknowledge silences exactly this drift until it changes"
        if change is not DriftChange.RESOLVED
        else ""
    )
    blocks.append(context(note))
    names = ", ".join(r.address for r in report.resources[:5])
    text = headline.replace("`", "") + (f": {names}" if names and change is not DriftChange.RESOLVED else "")
    return Message(text=text[:2900], blocks=blocks)


# -- /ecs-deploy drift ---------------------------------------------------------------------------------

DRIFT_USAGE = "Usage: `/ecs-deploy drift <app>/<env>` (or `<app>/<env>@<account>/<region>`)"


def check_queued_text(short_name: str) -> str:
    return (
        f"🔎 Drift check of {_code(short_name)} is running now. The result is posted in the environment's"
        " channel only if its drift changed (new, grew, changed or resolved); no news means no change."
    )


def no_such_environment_text(ref: str) -> str:
    return f"No live environment {_code(ref)} is known. {DRIFT_USAGE}"


def ambiguous_environment_text(ref: str, keys: Sequence[str]) -> str:
    where = ", ".join(_code(k) for k in keys[:10])
    return f"{_code(ref)} lives in several accounts or regions ({where}): name it as `<app>/<env>@<account>/<region>`."


# -- the buttons -------------------------------------------------------------------------------------


class DriftAckContext(BaseModel):
    """`private_metadata` of the acknowledge modal."""

    environment_key: str
    fingerprint: str
    channel_id: str
    message_ts: str | None = None


def acknowledge_modal(context_: DriftAckContext, short_name: str) -> View:
    return modal(
        Callback.DRIFT_ACKNOWLEDGE_MODAL,
        "Acknowledge drift",
        "Acknowledge",
        context_,
        [
            section(
                f"The drift of {_code(short_name)} shown in the message is silenced until it changes."
                " Who and why are recorded in the audit trail."
            ),
            text_input(
                BlockId.REASON.value,
                "Why is this drift acceptable?",
                multiline=True,
                max_length=ACKNOWLEDGE_REASON_MAX,
            ),
        ],
        close="Back",
    )


ACKNOWLEDGE_REASON_NEEDED = "Say why (the audit trail keeps it)."
ACKNOWLEDGE_OUTDATED = "This drift changed since the message was posted: acknowledge the newer message."


def acknowledged_decision(user_id: str, reason: str) -> str:
    return f"🔕 Acknowledged by <@{user_id}>: {escape_mrkdwn(reason)} — silenced until the drift changes."


def reconcile_started_text(deployment_id: str, short_name: str) -> str:
    return (
        f"🔧 Reconcile of {_code(short_name)} started as change `{deployment_id}`: its thread shows the plan,"
        " which needs an approval before anything is applied."
    )


def reconcile_refused_access(short_name: str) -> str:
    return f"You may not request changes of {_code(short_name)} (its profile's requesters may)."


# -- App Home ------------------------------------------------------------------------------------------

STATE_WORDS = {
    DriftState.NONE: "no drift",
    DriftState.DRIFTED: "drifted",
    DriftState.ACKNOWLEDGED: "drift acknowledged",
    DriftState.UNKNOWN: "not checked yet",
}


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


FAILED_DETAIL_SHOWN = 300  # characters of why the last check failed


def drift_line(record: DriftRecord | None, next_run: datetime | None, *, scheduled: bool = True) -> str:
    """App Home's line for one environment (mrkdwn): the last check, its result, the next run
    (`scheduled` False: its drift interval is 0), and why the last check failed when it did."""
    state = drift_state(record)
    parts = [f"Drift: {STATE_WORDS[state]}"]
    last = record.last_check if record else None
    if last is not None:
        outcome = {
            CheckOutcome.CHECKED: "checked",
            CheckOutcome.BUSY: "skipped (state in use)",
            CheckOutcome.FAILED: "check failed",
        }[last.outcome]
        parts.append(f"last {outcome} {_when(last.at)}")
        report = record.last_result.report if record and record.last_result else None
        if report is not None and report.has_drift:
            parts.append(f"{len(report.resources) + report.more_resources} resource(s)")
    if not scheduled:
        parts.append("no scheduled checks (drift_interval 0)")
    else:
        parts.append(f"next check {_when(next_run)}" if next_run else "no check scheduled yet")
    line = " · ".join(parts)
    if last is not None and last.outcome is CheckOutcome.FAILED and last.detail:
        line += f"\n:warning: {escape_mrkdwn(clip(last.detail, FAILED_DETAIL_SHOWN))}"
    return line


# -- why a check was skipped or failed (kept in the record, shown on App Home) ----------------------

TERRAFORM_LOCK_HELD = "Terraform's state lock is held by another run"


def configuration_mismatch(tfvars_path: str, recorded: str, generated: str, commit: str) -> str:
    """The registry's request and values do not regenerate the committed tfvars."""
    return (
        f"the committed configuration and the registry disagree: {tfvars_path} generated at"
        f" {commit[:12]} from the registry's values has SHA-256 {generated[:12]}, the registry recorded"
        f" {recorded[:12] or 'none'}; run `ecs-deploy-bot environments import` to rebuild the registry"
        " from the configuration branches"
    )


def configuration_unrecorded() -> str:
    return (
        "the registry records no SHA-256 of the environment's committed tfvars; run"
        " `ecs-deploy-bot environments import` to rebuild the registry from the configuration branches"
    )


def workspace_failed(reason: str) -> str:
    return f"the workspace of the committed configuration could not be built: {reason}"


def state_in_use(holder_id: str | None, step: str | None) -> str:
    return f"state in use by {holder_id} ({step})" if holder_id else "state in use"


def terraform_failed(what: str, excerpt: str) -> str:
    return f"terraform {what} failed: {excerpt[-300:]}"
