"""The App Home tab (pure: deployments in, a `home` view out; at most 100 blocks)."""

from __future__ import annotations

from collections.abc import Mapping

from slack_sdk.models.blocks import Block, ButtonElement, DividerBlock, HeaderBlock, SectionBlock
from slack_sdk.models.views import View

from bot.environments import EnvironmentEntry
from bot.ids import Action
from bot.views import environments as environment_views
from bot.views.blocks import clip, context, escape_mrkdwn, section
from bot.views.status import deployment_status_text, thread_link, when
from core.models import Deployment

MAX_BLOCKS = 100
MAX_PENDING = 20
MAX_MINE = 15

HOW_TO = "\n".join(
    [
        "*Request a deployment:* type `/ecs-deploy` in the channel where its thread should go, fill in"
        " the form, and follow the thread: analysis, state backend, plan, approval, apply, verification.",
        "*Check on one:* `/ecs-deploy status [id]`, `/ecs-deploy list`.",
        "*Steer one:* `/ecs-deploy cancel <id>`, `/ecs-deploy plan <id>` (re-plan);"
        " leads: `/ecs-deploy unlock <id>`. `/ecs-deploy help` lists everything.",
    ]
)


def home_view(
    *,
    mine: list[Deployment],
    pending: list[Deployment] | None,
    store_down: bool = False,
    environments: list[EnvironmentEntry] | None = None,
    drift: Mapping[str, str] | None = None,
) -> View:
    """`pending` is None for someone who approves nothing (no approvals section at all);
    `environments` None leaves out the Environments section (bot/views/environments.py); `drift`:
    each live environment's drift line by key (bot/views/drift.py `drift_line`)."""
    blocks: list[Block] = [
        HeaderBlock(text="ECS deployments"),
        section(HOW_TO),
        DividerBlock(),
    ]
    if store_down:
        blocks.append(
            section(
                ":warning: The bot cannot reach its store (Redis) right now; reopen this tab in a minute."
            )
        )
        return View(type="home", blocks=blocks)
    if pending is not None:
        blocks.append(HeaderBlock(text=f"Waiting for your approval ({len(pending)})"))
        if not pending:
            blocks.append(section("Nothing is waiting for your approval."))
        blocks += [_entry(d, _pending_detail(d)) for d in pending[:MAX_PENDING]]
        blocks += _more(len(pending) - MAX_PENDING)
        blocks.append(DividerBlock())
    blocks.append(HeaderBlock(text="Your recent deployments"))
    if not mine:
        blocks.append(section("You have no deployments yet — type `/ecs-deploy` to request one."))
    blocks += [
        _entry(d, f"{clip(deployment_status_text(d), 500)} · updated {when(d.updated_at)}")
        for d in mine[:MAX_MINE]
    ]
    if len(mine) > MAX_MINE:
        blocks.append(context("Older ones: `/ecs-deploy list`"))
    if environments is not None:
        blocks += [
            DividerBlock(),
            *environment_views.home_section(environments, MAX_BLOCKS - len(blocks) - 1, drift),
        ]
    return View(type="home", blocks=blocks[:MAX_BLOCKS])


def _pending_detail(deployment: Deployment) -> str:
    approval = deployment.approval
    plan = f" · {escape_mrkdwn(clip(deployment.plan.sentence, 300))}" if deployment.plan else ""
    have = len(approval.current_approvals)
    return (
        f"requested by <@{deployment.requester_id}> with profile `{deployment.request.profile}`{plan}"
        f" · approvals {have}/{approval.required_approvals}"
    )


def _entry(deployment: Deployment, detail: str) -> SectionBlock:
    text = f"*`{deployment.id}`* {deployment.request.headline}\n{detail}"
    link = thread_link(deployment)
    button = (
        ButtonElement(text="Open thread", url=link, action_id=Action.OPEN_THREAD.value, value=deployment.id)
        if link
        else None
    )
    return section(text, accessory=button)


def _more(count: int) -> list[Block]:
    if count <= 0:
        return []
    return [context(f"… and {count} more (`/ecs-deploy list`)")]
