"""Changing and upgrading a live environment: the change modal (pre-filled with the environment's
current values, the locked fields shown as context), the upgrade confirmation, and every answer of the
change flow (pure: models in, views and text out). The rules are core/changes.py's."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel
from slack_sdk.models.blocks import Block, ContextBlock, DividerBlock, MarkdownTextObject, SectionBlock
from slack_sdk.models.views import View

from bot.ids import BlockId, Callback
from bot.views.access import reason_text
from bot.views.blocks import MESSAGE_TEXT_LIMIT, clip, escape_mrkdwn, inline_code
from bot.views.clicks import value_change_line
from bot.views.messages import Message, text_message
from bot.views.request_modal import MAX_TEXT, modal, size_input, text_input
from bot.views.status import thread_ref
from core.changes import Blocked, ChangeForm, ChangeWarning, PlannedChange
from core.environments import ALARM_EMAILS, DNS_NAME, Environment, EnvironmentRef
from core.lifecycle import DeploymentKind
from core.models import Deployment
from core.policy.access import Decision

ALARM_EMAILS_BLOCK = f"var:{ALARM_EMAILS}"
DNS_NAME_BLOCK = f"var:{DNS_NAME}"
REF_BLOCK = "repo_ref"
CHANGE_USAGE = "/ecs-deploy change <app>/<env>[@<account>/<region>]"
UPGRADE_USAGE = "/ecs-deploy upgrade <app>/<env>[@<account>/<region>]"
MAX_LISTED = 15


class ChangeContext(BaseModel):
    """What the change (or upgrade) modal carries in `private_metadata`."""

    environment_key: str
    mode: Literal["change", "upgrade"] = "change"
    channel_id: str | None = None  # where it was asked for (None: App Home)
    team_id: str | None = None


# -- the modals ------------------------------------------------------------------------------------


def _where(environment: Environment) -> str:
    key = environment.key
    return f"*{escape_mrkdwn(key.short)}* · account {key.account_id} · {key.region}"


def locked_text(environment: Environment) -> str:
    """The fields a change keeps, and why."""
    r = environment.request
    facts = [
        f"profile {inline_code(r.profile)}",
        f"application {inline_code(r.application)}",
        f"environment {inline_code(r.environment)}",
        f"account {inline_code(r.account_id)}",
        f"region {inline_code(r.region)}",
        f"VPC CIDR {inline_code(r.vpc_cidr_block)}",
        f"state bucket {inline_code(r.state_bucket)}",
        f"lock table {inline_code(r.lock_table)}",
    ]
    return (
        ":lock: *Locked:* " + ", ".join(facts) + ".\nThese feed resource names, the VPC and the Terraform"
        " state: changing one would make Terraform replace the environment's core infrastructure (or"
        " lose its state). For other values, request a new environment."
    )


def change_modal(context: ChangeContext, environment: Environment, form: ChangeForm) -> View:
    """The change form, pre-filled with `form` (the environment's current values)."""
    tags = "\n".join(f"{key}={value}" for key, value in form.additional_tags.items())
    blocks: list[Block] = [
        SectionBlock(
            text=MarkdownTextObject(
                text=f"Change {_where(environment)}. The bot plans against the live state and waits for"
                " an approval of that plan before anything changes."
            )
        ),
        ContextBlock(elements=[MarkdownTextObject(text=clip(locked_text(environment)))]),
        DividerBlock(),
        size_input(form.size),
        text_input(
            BlockId.TAGS,
            "Additional tags",
            initial=tags or None,
            optional=True,
            multiline=True,
            placeholder="team=platform\ncost-center=1234",
            hint="key=value, one a line",
            max_length=MAX_TEXT,
        ),
        text_input(
            ALARM_EMAILS_BLOCK,
            "Alarm e-mails",
            initial=", ".join(form.alarm_emails) or None,
            placeholder="ops@example.com",
            hint="Who gets the monitoring alarms; separated by commas.",
            max_length=256,
        ),
        text_input(
            DNS_NAME_BLOCK,
            "DNS name",
            initial=form.dns_name or None,
            placeholder="web.example.com",
            max_length=253,
        ),
        text_input(
            REF_BLOCK,
            "Terraform repository ref",
            initial=form.repo_ref or None,
            optional=True,
            hint="The commit of the last apply. Type a branch, tag or commit to plan with other module"
            " versions.",
            max_length=200,
        ),
    ]
    return modal(Callback.CHANGE_MODAL, "Change environment", "Plan the change", context, blocks)


def upgrade_modal(context: ChangeContext, environment: Environment, ref: str, head: str | None) -> View:
    """The upgrade's confirmation: nothing to fill in, the ref and commits it moves between."""
    target = (
        f"{inline_code(ref)} ({head[:12]})" if head else f"{inline_code(ref)} (its head when you confirm)"
    )
    blocks: list[Block] = [
        SectionBlock(
            text=MarkdownTextObject(
                text=clip(
                    f"Upgrade {_where(environment)} from commit {inline_code(environment.repo_commit[:12])}"
                    f" to the current head of {target}, with the same values. The bot plans against the"
                    " live state and waits for an approval of that plan before anything changes."
                )
            )
        ),
        ContextBlock(elements=[MarkdownTextObject(text=clip(locked_text(environment)))]),
    ]
    return modal(Callback.CHANGE_MODAL, "Upgrade environment", "Plan the upgrade", context, blocks)


def notice_modal(text: str) -> View:
    """A refusal shown where a button was clicked (App Home has no channel for a private message)."""
    return View(
        type="modal",
        title="ECS environment",
        close="Close",
        blocks=[SectionBlock(text=MarkdownTextObject(text=clip(text)))],
    )


# -- refusals (private answers) --------------------------------------------------------------------


def usage(mode: str) -> str:
    return f"Usage: `{UPGRADE_USAGE if mode == 'upgrade' else CHANGE_USAGE}`"


def _typed(ref: EnvironmentRef) -> str:
    where = f"@{ref.account_id}/{ref.region}" if ref.account_id and ref.region else ""
    return escape_mrkdwn(f"{ref.application}/{ref.environment}{where}"[:120])


def _entry(environment: Environment) -> str:
    key = environment.key
    return f"`{key.short}@{key.account_id}/{key.region}` ({environment.status.value})"


def not_found(ref: EnvironmentRef, of_application: list[Environment]) -> str:
    text = f"There is no environment {_typed(ref)}."
    if not of_application:
        return text + f" Application `{escape_mrkdwn(ref.application[:40])}` has no environments yet."
    listed = ", ".join(_entry(env) for env in of_application[:MAX_LISTED])
    more = f" and {len(of_application) - MAX_LISTED} more" if len(of_application) > MAX_LISTED else ""
    return text + f" Environments of `{escape_mrkdwn(ref.application[:40])}`: {listed}{more}."


def ambiguous(ref: EnvironmentRef, candidates: list[Environment], mode: str) -> str:
    listed = "\n".join(
        f"• `/ecs-deploy {mode} {env.key.short}@{env.key.account_id}/{env.key.region}`"
        for env in candidates[:MAX_LISTED]
    )
    return f"{_typed(ref)} exists in more than one account or region; say which:\n{listed}"


def not_allowed(decision: Decision) -> str:
    return f":no_entry: {reason_text(decision)}"


def profile_unavailable(profile: str) -> str:
    return (
        f":no_entry: Profile `{escape_mrkdwn(profile[:64])}` is not available to you on this bot, so you"
        " cannot request changes of this environment."
    )


def blocked_text(why: Blocked, environment: Environment, open_deployment: Deployment | None = None) -> str:
    short = escape_mrkdwn(environment.key.short)
    match why:
        case Blocked.DESTROYED:
            return f":no_entry: {short} was destroyed; request a new environment with `/ecs-deploy`."
        case Blocked.OPEN_DEPLOYMENT:
            link = f" ({thread_ref(open_deployment)})" if open_deployment is not None else ""
            which = f"`{open_deployment.id}`" if open_deployment is not None else "one"
            return (
                f":hourglass: {short} has a deployment that is not finished yet: {which}{link}. Finish or"
                " cancel it first."
            )
        case Blocked.NO_CHANGE:
            return "Nothing would change: these are the environment's current values and commit."
        case Blocked.ALREADY_AT_HEAD:
            return (
                f":white_check_mark: {short} is already at the head of the Terraform repository's ref"
                f" ({environment.repo_commit[:12]}); there is nothing to upgrade."
            )
    return ""


ENVIRONMENT_GONE = "This environment is no longer known to the bot; close this form."
CHANGE_FORM_OUT_OF_DATE = "This form is out of date; close it and open a new one."


# -- the new thread --------------------------------------------------------------------------------

WARNINGS = {
    ChangeWarning.SMALLER_SIZE: ":warning: A smaller size removes resources — data stores among them"
    " (caches, document databases, database instances). Read the plan's destroys before approving.",
    ChangeWarning.NEW_REF: ":warning: Other Terraform code: the plan may change or replace any resource"
    " — replacements and destroys are listed first.",
}
FIELD_LABELS = {
    "size": "size",
    "additional_tags": "tags",
    ALARM_EMAILS: "alarm e-mails",
    DNS_NAME: "DNS name",
    "repo_ref": "repository ref",
}


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "none"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return str(value) or "none"


def change_requested_message(deployment: Deployment, planned: PlannedChange) -> Message:
    """The first thread message of a change or upgrade: what changes, and what to look out for."""
    title = (
        ":arrow_up: *Upgrade requested* — the same values at the current head of the repository ref:"
        if deployment.kind is DeploymentKind.UPGRADE
        else ":pencil2: *Change requested:*"
    )
    lines = [title]
    lines += [
        value_change_line(
            FIELD_LABELS.get(name, name), _shown(planned.before[name]), _shown(planned.after[name])
        )
        for name in planned.changed
    ]
    lines += [WARNINGS[w] for w in planned.warnings]
    return text_message(
        clip("\n".join(lines), MESSAGE_TEXT_LIMIT),
        context="The workspace, plan, approval, apply and verification follow in this thread.",
    )
