"""The drift buttons (Plan to reconcile, Acknowledge), the acknowledge modal, and the `drift`
subcommand (an entry of bot/listeners/commands.py's SUBCOMMANDS). Thin: bot/drift.py decides,
bot/views/drift.py words."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
from pydantic import ValidationError
from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot import drift
from bot.control import ControlRefused
from bot.ids import INPUT_ACTION, Action, BlockId, Callback
from bot.listeners.modals import open_modal
from bot.payloads import BlockActions, SlashCommand, ViewSubmission, input_value
from bot.services import Services
from bot.views import drift as views
from bot.views import form_errors
from bot.views import status as status_views
from bot.views.messages import text_message

FollowUp = Callable[[], None]


def drift_sub(
    services: Services, slash: SlashCommand, args: list[str], flags: set[str]
) -> tuple[str, FollowUp | None]:
    if len(args) != 1 or flags:
        raise ControlRefused(views.DRIFT_USAGE)
    return drift.check_now(services, slash.user_id, args[0]), None


def register(app: App, services: Services) -> None:
    @app.action(Action.PLAN_TO_RECONCILE.value)
    def reconcile_clicked(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        click = BlockActions.model_validate(body)
        channel = _channel(click)
        try:
            deployment = drift.reconcile(
                services, click.user.id, click.action.value[:300], click.team.id if click.team else None
            )
            request = deployment.request
            answer = views.reconcile_started_text(
                deployment.id, f"{request.application}/{request.environment}"
            )
        except ControlRefused as refusal:
            answer = str(refusal)
        except redis.RedisError:
            answer = status_views.STORE_DOWN
        if channel:
            services.notifier.ephemeral(channel, click.user.id, answer)

    @app.action(Action.ACKNOWLEDGE_DRIFT.value)
    def acknowledge_clicked(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        click = BlockActions.model_validate(body)
        channel = _channel(click)
        key, _, fingerprint = click.action.value[:400].rpartition(":")
        try:
            environment = drift.acknowledgeable(services, click.user.id, key)
        except ControlRefused as refusal:
            if channel:
                services.notifier.ephemeral(channel, click.user.id, str(refusal))
            return
        except redis.RedisError:
            return
        context = views.DriftAckContext(
            environment_key=key,
            fingerprint=fingerprint,
            channel_id=channel or "",
            message_ts=click.container.message_ts if click.container else None,
        )
        open_modal(
            client, click.trigger_id, views.acknowledge_modal(context, environment.key.short), click.user.id
        )

    @app.view(Callback.DRIFT_ACKNOWLEDGE_MODAL.value)
    def acknowledge_submitted(ack: Ack, body: dict[str, Any]) -> None:
        submission = ViewSubmission.model_validate(body)
        reason = (input_value(submission.view.state.values, BlockId.REASON.value, INPUT_ACTION) or "").strip()
        if not reason:
            ack(response_action="errors", errors={BlockId.REASON.value: views.ACKNOWLEDGE_REASON_NEEDED})
            return
        try:
            context = views.DriftAckContext.model_validate_json(submission.view.private_metadata)
            record = drift.acknowledged(services, submission.user.id, context, reason)
        except ValidationError:
            ack(response_action="errors", errors={BlockId.REASON.value: form_errors.THREAD_FORM_OUT_OF_DATE})
            return
        except ControlRefused as refusal:
            ack(response_action="errors", errors={BlockId.REASON.value: str(refusal)[:150]})
            return
        except redis.RedisError:
            ack(response_action="errors", errors={BlockId.REASON.value: form_errors.THREAD_FORM_STORE_DOWN})
            return
        if record is None:
            ack(response_action="errors", errors={BlockId.REASON.value: views.ACKNOWLEDGE_OUTDATED})
            return
        ack()
        if context.channel_id:
            services.notifier.channel_message(
                context.channel_id,
                text_message(views.acknowledged_decision(submission.user.id, reason)),
                thread_ts=context.message_ts,
            )


def _channel(click: BlockActions) -> str | None:
    return click.channel.id if click.channel else (click.container.channel_id if click.container else None)
