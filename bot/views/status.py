"""Answers to the `/ecs-deploy` control subcommands (pure: models in, text and blocks out)."""

from __future__ import annotations

from datetime import datetime

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.control import Cancelled, LockView, TerraformLock
from bot.views.blocks import MESSAGE_TEXT_LIMIT, clip, clip_code, escape_mrkdwn
from bot.views.messages import Message
from bot.views.statuses import status_label, status_words
from core.models import Deployment, DeploymentStatus
from storage.locks import LockHolder

# The unlock button's action id (value "{deployment_id}:{lock token}"), handled in
# bot/listeners/commands.py. Kept here, next to the button, rather than in bot/ids.py.
UNLOCK_CONFIRM = "control_unlock_confirm"
STORE_DOWN = (
    ":warning: ECS deploy bot cannot reach its store (Redis) right now, so nothing was started."
    " Please try again in a minute."
)
STORE_DOWN_NOTHING_RELEASED = (
    ":warning: ECS deploy bot cannot reach its store (Redis) right now, so nothing was released."
    " Please try again in a minute."
)
NO_DEPLOYMENTS_YET = "You have no deployments yet. Type `/ecs-deploy` to request one."
NO_PROFILE = "No AWS profile is available to you. Ask the bot's operators for access."
MAX_LIST = 15
MAX_TEXT = MESSAGE_TEXT_LIMIT

HELP = "\n".join(
    [
        "*`/ecs-deploy`* — request an ECS deployment (opens a form). Also:",
        "• `/ecs-deploy new` — the same",
        "• `/ecs-deploy status [id]` — a deployment's current step, who requested and approved it,"
        " and its thread (default: your latest)",
        "• `/ecs-deploy list` — your recent deployments (leads: also those of the profiles they approve)",
        "• `/ecs-deploy cancel <id>` — stop a queued or running step (requester or lead);"
        " a running apply needs `cancel <id> --force`",
        "• `/ecs-deploy plan <id>` — re-plan with the deployment's current values (requester or lead)",
        "• `/ecs-deploy unlock <id>` — release the bot's lock on the deployment's Terraform state"
        " (leads only; asks to confirm)",
        "• `/ecs-deploy envs` — the environments you can see: live ones first, with their status,"
        " size, account and region, last change and thread",
        "• `/ecs-deploy destroy <app>/<env>` — destroy an environment: type its name to confirm, then"
        " `terraform plan -destroy` and two approvers other than you (protected ones: never from Slack)",
        "• `/ecs-deploy change <app>/<env>` — change a live environment (size, tags, alarm e-mails,"
        " DNS name, repository ref) in a form pre-filled with its current values; planned, approved"
        " and applied like a new deployment",
        "• `/ecs-deploy upgrade <app>/<env>` — the same values at the current head of the Terraform"
        " repository's ref",
        "• `/ecs-deploy drift <app>/<env>` — check a live environment for drift now; the channel"
        " hears of it only if its drift changed",
        "• `/ecs-deploy help` — this help",
        "The App Home tab shows your deployments and, for leads, the plans waiting for approval.",
    ]
)


def unknown_subcommand(sub: str) -> str:
    return f"Unknown subcommand `{sub[:30]}`.\n" + HELP


def usage_text(usage: str, unknown_flags: list[str]) -> str:
    """A subcommand typed wrongly: the options it does not know (if any), and how to type it."""
    what = f"Unknown option {', '.join(f'`{f[:20]}`' for f in unknown_flags)}. " if unknown_flags else ""
    return f"{what}Usage: `{usage}`"


def thread_link(deployment: Deployment) -> str | None:
    """A link to the deployment's thread (Slack redirects slack.com/archives to the workspace)."""
    if not deployment.thread_ts:
        return None
    return f"https://slack.com/archives/{deployment.channel_id}/p{deployment.thread_ts.replace('.', '')}"


def thread_ref(deployment: Deployment) -> str:
    link = thread_link(deployment)
    return f"<{link}|thread>" if link else "no thread yet"


def when(at: datetime) -> str:
    """A time each reader sees in their own time zone (UTC as the fallback text)."""
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{at:%Y-%m-%d %H:%M} UTC>"


def deployment_status_text(deployment: Deployment) -> str:
    """The deployment's status label and its detail, as one line of mrkdwn."""
    detail = f" — {escape_mrkdwn(deployment.status_detail)}" if deployment.status_detail else ""
    return f"{status_label(deployment.status)}{detail}"


def approval_text(deployment: Deployment) -> str:
    """Who approved (the current plan) or rejected, and what is still missing."""
    approval = deployment.approval
    parts: list[str] = []
    if approval.current_approvals:
        parts.append(
            "approved by "
            + ", ".join(f"<@{a.approver_id}> ({when(a.at)})" for a in approval.current_approvals)
        )
    if approval.rejection is not None:
        rejection = approval.rejection
        verb = "withdrawn by the requester" if rejection.by_requester else f"rejected by <@{rejection.by}>"
        reason = f": “{escape_mrkdwn(clip(rejection.reason, 300))}”" if rejection.reason else ""
        parts.append(f"{verb} ({when(rejection.at)}){reason}")
    missing = approval.missing_approvals if approval.binding is not None else 0
    if deployment.status is DeploymentStatus.AWAITING_APPROVAL and missing and approval.rejection is None:
        parts.append(f"waiting for {missing} more approval{'s' if missing != 1 else ''}")
    return "; ".join(parts) if parts else "not approved yet"


def status_text(deployment: Deployment) -> str:
    request = deployment.request
    lines = [
        f"*`{deployment.id}`* {request.headline}",
        f"*Step:* {clip(deployment_status_text(deployment), 1000)}",
        f"*Requested by* <@{deployment.requester_id}> ({when(deployment.created_at)}) with profile"
        f" `{request.profile}`",
        f"*Approval:* {approval_text(deployment)}",
        f"*Thread:* {thread_ref(deployment)}",
    ]
    return clip("\n".join(lines), MAX_TEXT)


def list_text(deployments: list[Deployment], *, everyone: bool) -> str:
    if not deployments:
        return "There are no deployments yet." if everyone else "You have no deployments yet."
    title = (
        "*Recent deployments — yours and everyone's on the profiles you approve*"
        if everyone
        else "*Your recent deployments*"
    )
    lines = [title]
    for d in deployments[:MAX_LIST]:
        who = f" · <@{d.requester_id}>" if everyone else ""
        lines.append(f"• `{d.id}` {d.request.headline} — {status_label(d.status)}{who} · {thread_ref(d)}")
    if len(deployments) > MAX_LIST:
        lines.append(f"… and {len(deployments) - MAX_LIST} more")
    return clip("\n".join(lines), MAX_TEXT)


# -- cancel ----------------------------------------------------------------------------------------


def cancelled_thread_text(result: Cancelled) -> str:
    if result.interrupted_apply:
        return (
            f":no_entry_sign: Deployment cancelled by <@{result.by}> while `terraform apply` was running."
            " Terraform is being interrupted; :warning: the state may be *partially applied* — review it"
            " before the next deployment of this state."
        )
    return f":no_entry_sign: Deployment cancelled by <@{result.by}> (it was {status_words(result.previous)})."


def cancelled_reply(result: Cancelled) -> str:
    d = result.deployment
    text = f":no_entry_sign: `{d.id}` is cancelled: a running Terraform step is interrupted, queued steps will not run."
    if result.interrupted_apply:
        text += " :warning: The apply was running: the state may be partially applied."
    return f"{text} {thread_ref(d)}"


# -- re-plan ---------------------------------------------------------------------------------------


def replan_thread_text(user_id: str) -> str:
    return (
        f":arrows_counterclockwise: Re-plan requested by <@{user_id}> with `/ecs-deploy plan`;"
        " approvals of the previous plan no longer count."
    )


def replan_reply(deployment: Deployment) -> str:
    return f":arrows_counterclockwise: A new plan for `{deployment.id}` is queued. {thread_ref(deployment)}"


# -- unlock ----------------------------------------------------------------------------------------


def _holder_text(view: LockView) -> str:
    holder = view.holder
    if holder is None:
        return "nobody"
    return _holder_of(view, holder)


def _holder_of(view: LockView, holder: LockHolder) -> str:
    status = f", now {status_words(view.holder_status)}" if view.holder_status else ""
    return f"`{holder.deployment_id}` ({holder.step}, for <@{holder.user_id}>, since {when(holder.since)}{status})"


def unlock_prompt(view: LockView, holder: LockHolder) -> Message:
    """What releasing `holder`'s lock would do, and a button that asks once more before it does it."""
    running = view.holder_status is not None and not view.holder_status.is_final
    warning = (
        "\n:warning: That deployment has not finished. Release only if its worker is gone (crashed or"
        " killed): otherwise two Terraform runs could write the same state."
        if running
        else ""
    )
    text = f"The bot's lock on state `{view.state}` is held by {_holder_of(view, holder)}.{warning}"
    button = ButtonElement(
        text="Release the lock",
        action_id=UNLOCK_CONFIRM,
        value=f"{view.deployment.id}:{holder.token}",
        style="danger",
        confirm=ConfirmObject(
            title="Release the state lock?",
            text=MarkdownTextObject(
                text=f"Other runs on `{view.state}`"[:200] + " may start at once. Release it only if"
                " no Terraform run is still using the state."
            ),
            confirm="Release",
            deny="Keep it",
            style="danger",
        ),
    )
    return Message(
        text=clip(text, MESSAGE_TEXT_LIMIT),
        blocks=[
            SectionBlock(text=MarkdownTextObject(text=clip(text))),
            ActionsBlock(elements=[button]),
            ContextBlock(
                elements=[
                    PlainTextObject(text="After releasing, the bot checks Terraform's own lock in DynamoDB.")
                ]
            ),
        ],
    )


def no_lock_text(view: LockView) -> str:
    return (
        f"The bot holds no lock on state `{view.state}`. Checking Terraform's own lock in DynamoDB"
        " table `" + view.deployment.request.lock_table + "`…"
    )


def released_reply(view: LockView) -> str:
    return f":unlock: Released the bot's lock on `{view.state}` (held by {_holder_text(view)})."


def released_thread_text(view: LockView, user_id: str) -> str:
    return (
        f":unlock: <@{user_id}> released the bot's lock on the Terraform state `{view.state}`"
        f" (held by {_holder_text(view)})."
    )


def terraform_lock_text(lock: TerraformLock) -> str:
    """Whether Terraform's own lock is held, and if so how to clear it with `terraform force-unlock`."""
    if lock.problem:
        return (
            f":grey_question: Terraform's own lock on `{lock.state}` could not be checked: {lock.problem}."
            f" Look for the item `{lock.state}` in DynamoDB table `{lock.table}`."
        )
    if lock.released_by:
        return clip(
            f":unlock: Terraform's own lock on `{lock.state}` (lock ID `{lock.lock_id}`) was left by the bot's"
            f" dead run {lock.released_run}: provably its own ({lock.own_reason}). Released for <@{lock.released_by}>"
            " (audited) — no `terraform force-unlock` needed.",
            MAX_TEXT,
        )
    if not lock.held:
        return f":white_check_mark: Terraform's own lock on `{lock.state}` (table `{lock.table}`) is free."
    lock_id = lock.lock_id or "<LOCK_ID>"
    facts = ", ".join(
        part
        for part in (
            f"operation {lock.operation}" if lock.operation else "",
            f"by {lock.who}" if lock.who else "",
            f"since {lock.created}" if lock.created else "",
        )
        if part
    )
    return clip_code(
        f":lock: Terraform's own lock on `{lock.state}` is still held in DynamoDB table `{lock.table}`"
        f" — lock ID `{lock_id}`{' (' + facts + ')' if facts else ''}.\n"
        + (f"The bot does not release it itself: {lock.own_reason}.\n" if lock.own_reason else "")
        + "If no Terraform run is still using this state, clear it from a checkout of the deployment's"
        f" Terraform configuration, initialised with its backend (`terraform init -backend-config={lock.backend_config}`):\n"
        f"```terraform force-unlock {lock_id}```\n"
        "Never force-unlock while a run is active: two writers would corrupt the state.",
        MAX_TEXT,
    )
