"""Environments in words and blocks (pure: entries in, text and slack_sdk blocks out).

`/ecs-deploy envs` (a private answer, at most 50 blocks), App Home's "Environments" section (within
the blocks the Home view has left of its 100), and the answer to a request for an environment that
exists already (the form's field error and an ephemeral message with a **Change it** button).
"""

from __future__ import annotations

from collections.abc import Mapping

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, HeaderBlock

from bot.environments import EnvironmentEntry, EnvironmentState
from bot.ids import Action
from bot.views.blocks import MESSAGE_TEXT_LIMIT, button, clip, context, escape_mrkdwn, inline_code, section
from bot.views.messages import Message
from bot.views.status import thread_link, when
from bot.views.statuses import KIND_WORDS, status_label
from core.duplicates import Duplicate
from core.environments import Environment, EnvironmentChange, EnvironmentKey

MESSAGE_BLOCKS = 50  # Slack's limit for a message (slack_sdk does not check it)
MAX_LISTED = 40  # environments in `/ecs-deploy envs` (one block each, a title and a "more" line)
MAX_HOME = 15  # environments in App Home (a section and a row of buttons each)

STATE_LABELS: dict[EnvironmentState, str] = {
    EnvironmentState.LIVE: ":large_green_circle: Live",
    EnvironmentState.CHANGING: ":arrows_counterclockwise: Changing",
    EnvironmentState.DESTROYED: ":wastebasket: Destroyed",
}

NO_ENVIRONMENTS = (
    "You see no environments yet. An environment appears here when a deployment you requested (or one"
    " on a profile you approve) is applied: type `/ecs-deploy` to request one."
)
HOME_NO_ENVIRONMENTS = (
    "No environments yet — one appears when a deployment you requested, or one you may approve, is applied."
)


def state_label(state: EnvironmentState) -> str:
    return STATE_LABELS[state]


def change_command(key: EnvironmentKey) -> str:
    """What to type to change it (`/ecs-deploy change web/dev`)."""
    return f"/ecs-deploy change {key.short}"


# -- one environment --------------------------------------------------------------------------------


def headline(environment: Environment) -> str:
    key = environment.key
    return (
        f"*{escape_mrkdwn(key.short)}* · {key.account_id} · {key.region} · {environment.request.size.value}"
    )


def _change_link(change: EnvironmentChange) -> str | None:
    if not change.thread_ts:
        return None
    return f"https://slack.com/archives/{change.channel_id}/p{change.thread_ts.replace('.', '')}"


def last_change_text(change: EnvironmentChange | None) -> str:
    if change is None:
        return "no applied change recorded"
    link = _change_link(change)
    thread = f" · <{link}|thread>" if link else ""
    return (
        f"last change: {KIND_WORDS[change.kind].done} by <@{change.requester_id}>"
        f" {when(change.applied_at)}{thread}"
    )


def _config_text(environment: Environment) -> str:
    config = environment.config
    if config is None:
        return ""
    pull = f" · <{config.pull_request_url}|pull request>" if config.pull_request_url else ""
    pending = "" if config.pushed else " (not pushed yet)"
    return f"config {inline_code(config.branch)}{pending}{pull}"


def _open_text(entry: EnvironmentEntry) -> str:
    """For a changing environment: what its open deployment is doing, and where."""
    latest = entry.latest
    if latest is None:
        return ""
    link = thread_link(latest)
    thread = f", <{link}|thread>" if link else ""
    return f"{status_label(latest.status)} (`{latest.id}`{thread})"


def entry_text(entry: EnvironmentEntry, drift: str | None = None) -> str:
    """Two lines of mrkdwn: what and where, its status; the last change and the configuration; then
    App Home's drift line (bot/views/drift.py `drift_line`) when given."""
    environment = entry.environment
    status = state_label(entry.state)
    if entry.state is EnvironmentState.CHANGING:
        status += f" — {_open_text(entry)}"
    details = [last_change_text(environment.last_change)]
    config = _config_text(environment)
    if config:
        details.append(config)
    drift_text = f"\n{drift}" if drift else ""
    return clip(f"{headline(environment)} — {status}\n" + " · ".join(details) + drift_text)


def entry_buttons(entry: EnvironmentEntry) -> ActionsBlock | None:
    """Change / Upgrade / Destroy on a live environment the user may request for; none on a destroyed
    one, nor while a deployment of it is open (its status links to that one instead)."""
    if entry.state is not EnvironmentState.LIVE or not entry.may_request:
        return None
    key = str(entry.environment.key)
    elements: list[ButtonElement] = [
        button("Change", Action.CHANGE_ENVIRONMENT.value, key),
        button("Upgrade", Action.UPGRADE_ENVIRONMENT.value, key),
        button("Destroy", Action.DESTROY_ENVIRONMENT.value, key, style="danger"),
    ]
    return ActionsBlock(block_id=f"environment:{key}"[:255], elements=elements)


# -- /ecs-deploy envs -------------------------------------------------------------------------------


def envs_answer(entries: list[EnvironmentEntry]) -> Message:
    """The private answer to `/ecs-deploy envs`: live ones first, then destroyed ones."""
    if not entries:
        return Message(text=NO_ENVIRONMENTS, blocks=[section(NO_ENVIRONMENTS)])
    shown = entries[:MAX_LISTED]
    title = f"*Environments you can see ({len(entries)})*"
    blocks: list[Block] = [section(title)]
    blocks += [section(entry_text(entry)) for entry in shown]
    hidden = len(entries) - len(shown)
    footer = f"… and {hidden} more. " if hidden > 0 else ""
    blocks.append(context(f"{footer}Change one: `/ecs-deploy change <app>/<env>`."))
    lines = [title] + [f"• {entry.environment.key.short} — {entry.state.value}" for entry in shown]
    return Message(text=clip("\n".join(lines), MESSAGE_TEXT_LIMIT), blocks=blocks[:MESSAGE_BLOCKS])


# -- App Home ---------------------------------------------------------------------------------------


def home_section(
    entries: list[EnvironmentEntry], budget: int, drift: Mapping[str, str] | None = None
) -> list[Block]:
    """App Home's "Environments" section in at most `budget` blocks (empty when not even its header
    and one line fit); `drift`: environment key → its drift line."""
    if budget < 2:
        return []
    blocks: list[Block] = [HeaderBlock(text=f"Environments ({len(entries)})")]
    if not entries:
        return [*blocks, section(HOME_NO_ENVIRONMENTS)]
    room = budget - 2  # the header, and a last line when some do not fit
    shown = 0
    for entry in entries[:MAX_HOME]:
        actions = entry_buttons(entry)
        needed = 1 if actions is None else 2
        if needed > room:
            break
        blocks.append(section(entry_text(entry, (drift or {}).get(str(entry.environment.key)))))
        if actions is not None:
            blocks.append(actions)
        room -= needed
        shown += 1
    if shown < len(entries):
        blocks.append(context(f"… and {len(entries) - shown} more (`/ecs-deploy envs`)"))
    return blocks


# -- a request for an environment that exists --------------------------------------------------------


def duplicate_field_error(duplicate: Duplicate) -> str:
    """The request form's error on the application field."""
    key = duplicate.key
    if duplicate.live:
        return clip(
            f"{key.short} already exists in {key.account_id}/{key.region}. To change it, type"
            f" `{change_command(key)}` (or use the Change it button the bot just sent you).",
            2000,
        )
    opened = duplicate.open_deployment
    follow = f" ({opened.id}); follow it with `/ecs-deploy status {opened.id}`" if opened else ""
    return clip(
        f"{key.short} in {key.account_id}/{key.region} is being deployed already{follow}."
        f" Once it is live, change it with `{change_command(key)}`.",
        2000,
    )


def duplicate_message(duplicate: Duplicate) -> Message:
    """The ephemeral message beside the form's error: it exists — change it? (a button), or the
    deployment that is creating it."""
    key = duplicate.key
    where = f"*{escape_mrkdwn(key.short)}* in {key.account_id} · {key.region}"
    opened = duplicate.open_deployment
    open_line = ""
    if opened is not None:
        link = thread_link(opened)
        thread = f" · <{link}|thread>" if link else ""
        open_line = f"\nOpen now: `{opened.id}` — {status_label(opened.status)}{thread}"
    if duplicate.live:
        text = (
            f":information_source: {where} already exists, so a new deployment was not started."
            f" Change it instead (size, tags, alarm e-mails, DNS name, repository ref): `{change_command(key)}`."
            f"{open_line}"
        )
        blocks: list[Block] = [
            section(text),
            ActionsBlock(
                elements=[button("Change it", Action.CHANGE_ENVIRONMENT.value, str(key), "primary")]
            ),
        ]
        return Message(text=clip(text, MESSAGE_TEXT_LIMIT), blocks=blocks)
    text = (
        f":information_source: {where} is being deployed already, so a second deployment was not"
        f" started.{open_line}\nOnce it is live, change it with `{change_command(key)}`."
    )
    return Message(text=clip(text, MESSAGE_TEXT_LIMIT), blocks=[section(text)])
