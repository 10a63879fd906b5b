"""Destroying an environment: `/ecs-deploy destroy <app>/<env>` and the Destroy button open the
typed-confirmation modal (after the checks of core/destroy.py); its submission stores the DESTROY
deployment with its first job (bot/destroys.py). Refusals are private: the command's answer, an
ephemeral reply to a click, or the modal's field error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
from pydantic import ValidationError
from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot import destroys
from bot.control import ControlRefused
from bot.ids import INPUT_ACTION, Action, Callback
from bot.listeners.modals import open_modal
from bot.payloads import BlockActions, SlashCommand, ViewSubmission, input_value
from bot.services import Services
from bot.views import destroy as views
from core.logs import get_logger

log = get_logger(__name__)


def destroy_sub(
    services: Services, slash: SlashCommand, args: list[str], flags: set[str]
) -> tuple[str, Callable[[], None] | None]:
    """`/ecs-deploy destroy <app>/<env>`: the refusal as the command's answer, or the modal opened
    right after ack()."""
    if len(args) != 1 or flags:
        raise ControlRefused(views.usage())
    try:
        environment = destroys.named_environment(services, args[0])
        view = destroys.modal_for(services, slash.user_id, environment, slash.channel_id, slash.team_id)
    except destroys.DestroyRefused as refused:
        return str(refused), None
    return "", lambda: open_modal(services.client, slash.trigger_id, view, slash.user_id)


def register(app: App, services: Services) -> None:
    @app.view(Callback.DESTROY_MODAL.value)
    def confirmed(ack: Ack, body: dict[str, Any]) -> None:
        submission = ViewSubmission.model_validate(body)
        try:
            context = views.DestroyContext.model_validate_json(submission.view.private_metadata)
        except ValidationError:
            ack(response_action="errors", errors={views.CONFIRM_BLOCK: views.FORM_OUT_OF_DATE})
            return
        typed = input_value(submission.view.state.values, views.CONFIRM_BLOCK, INPUT_ACTION)
        try:
            requested = destroys.request_destroy(
                services,
                user_id=submission.user.id,
                team_id=submission.team.id if submission.team else context.team_id,
                context=context,
                typed=typed,
                submission_key=f"view:{submission.view.id}",
            )
        except destroys.DestroyRefused as refused:
            ack(response_action="errors", errors={views.CONFIRM_BLOCK: str(refused)[:2000]})
            return
        except redis.RedisError:
            log.warning("store_unavailable", user=submission.user.id)
            ack(response_action="errors", errors={views.CONFIRM_BLOCK: views.STORE_DOWN})
            return
        ack()
        destroys.announce(services, requested)

    @app.action(Action.DESTROY_ENVIRONMENT.value)
    def destroy_clicked(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        click = BlockActions.model_validate(body)
        user_id = click.user.id
        channel = (
            click.channel.id if click.channel else (click.container.channel_id if click.container else None)
        )
        try:
            environment = destroys.environments(services).find(click.action.value)
            if environment is None:
                raise destroys.DestroyRefused(views.not_found(click.action.value))
            team = click.team.id if click.team else None
            view = destroys.modal_for(services, user_id, environment, channel or "", team)
        except destroys.DestroyRefused as refused:
            if channel:
                services.notifier.ephemeral(channel, user_id, str(refused))
            return
        except redis.RedisError:
            if channel:
                services.notifier.ephemeral(channel, user_id, views.STORE_DOWN)
            return
        open_modal(client, click.trigger_id, view, user_id)
