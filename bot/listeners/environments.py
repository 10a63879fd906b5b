"""`/ecs-deploy change|upgrade <app>/<env>`, the Change / Upgrade buttons (App Home, the duplicate
request's reply) and the change modal's submission. Thin: bot/changes.py decides, bot/views/change_modal.py
words; only the views are opened here (Slack's interactions arrive in the listeners)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
from pydantic import ValidationError
from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot import changes
from bot.control import ControlRefused
from bot.ids import Action, BlockId, Callback
from bot.listeners.modals import open_modal
from bot.payloads import BlockActions, SlashCommand, ViewSubmission
from bot.services import Services
from bot.views import form_errors
from bot.views import status as status_views
from bot.views.change_modal import CHANGE_FORM_OUT_OF_DATE, ChangeContext, notice_modal, usage
from core.logs import get_logger

log = get_logger(__name__)

FollowUp = Callable[[], None]


def register(app: App, services: Services) -> None:
    @app.view(Callback.CHANGE_MODAL.value)
    def change_submitted(ack: Ack, body: dict[str, Any]) -> None:
        submit(ack, ViewSubmission.model_validate(body), services)

    def clicked(mode: str) -> Callable[..., None]:
        def listener(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
            ack()
            button_clicked(services, client, BlockActions.model_validate(body), mode)

        return listener

    app.action(Action.CHANGE_ENVIRONMENT.value)(clicked("change"))
    app.action(Action.UPGRADE_ENVIRONMENT.value)(clicked("upgrade"))


# -- the subcommands (entries of bot/listeners/commands.py's SUBCOMMANDS) ------------------------


def _subcommand(
    mode: str,
) -> Callable[[Services, SlashCommand, list[str], set[str]], tuple[str, FollowUp | None]]:
    def sub(
        services: Services, slash: SlashCommand, args: list[str], flags: set[str]
    ) -> tuple[str, FollowUp | None]:
        if len(args) != 1 or flags:
            raise ControlRefused(usage(mode))
        environment = changes.find_environment(services, args[0], mode)
        changes.check_may_change(services, slash.user_id, environment)  # refused in the command's answer
        context = ChangeContext(
            environment_key=str(environment.key),
            mode=mode,
            channel_id=slash.channel_id,
            team_id=slash.team_id,
        )

        def open_form() -> None:
            try:
                view = changes.change_view(services, slash.user_id, environment, context)
            except ControlRefused as refusal:  # e.g. already at the head
                services.notifier.ephemeral(slash.channel_id, slash.user_id, str(refusal))
                return
            open_modal(services.client, slash.trigger_id, view, slash.user_id)

        return "", open_form

    return sub


change_sub = _subcommand("change")
upgrade_sub = _subcommand("upgrade")


# -- the buttons ----------------------------------------------------------------------------------


def button_clicked(services: Services, client: WebClient, click: BlockActions, mode: str) -> None:
    """Open the change (or upgrade) modal of the environment whose key the button carries; a refusal
    opens a notice in its place (a click in App Home has no channel for a private message)."""
    user = click.user.id
    channel = click.channel.id if click.channel else (click.container.channel_id if click.container else None)
    context = ChangeContext(
        environment_key=click.action.value[:300],
        mode="upgrade" if mode == "upgrade" else "change",
        channel_id=channel,
        team_id=click.team.id if click.team else None,
    )
    try:
        environment = changes.environment_by_key(services, context.environment_key)
        view = changes.change_view(services, user, environment, context)
    except ControlRefused as refusal:
        view = notice_modal(str(refusal))
    except redis.RedisError:
        view = notice_modal(status_views.STORE_DOWN)
    open_modal(client, click.trigger_id, view, user)


# -- the modal's submission -----------------------------------------------------------------------


def submit(ack: Ack, submission: ViewSubmission, services: Services) -> None:
    """Field errors stay in the form; other refusals replace the form by a notice; on success the form
    closes and the new thread appears in the environment's channel."""
    try:
        context = ChangeContext.model_validate_json(submission.view.private_metadata)
    except ValidationError:
        ack(response_action="update", view=notice_modal(CHANGE_FORM_OUT_OF_DATE))
        return
    try:
        changes.submitted(services, submission, context)
    except changes.FieldErrors as refused:
        ack(response_action="errors", errors=refused.errors)
        return
    except ControlRefused as refusal:
        ack(response_action="update", view=notice_modal(str(refusal)))
        return
    except redis.RedisError:
        log.warning("store_unavailable", user=submission.user.id)
        if context.mode == "change":
            ack(response_action="errors", errors={BlockId.SIZE.value: form_errors.REQUEST_STORE_DOWN})
        else:
            ack(response_action="update", view=notice_modal(form_errors.REQUEST_STORE_DOWN))
        return
    ack()
