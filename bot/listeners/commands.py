"""`/ecs-deploy [new|help|status [id]|list]`."""

from __future__ import annotations

from typing import Any

import redis
from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.payloads import SlashCommand
from bot.services import Services
from bot.views.request_modal import ModalContext, request_modal_dict
from core.logs import get_logger

log = get_logger(__name__)

STORE_DOWN = (
    ":warning: ECS deploy bot cannot reach its store (Redis) right now, so nothing was started."
    " Please try again in a minute."
)
HELP = "\n".join(
    [
        "*`/ecs-deploy`* — request an ECS deployment (opens a form). Also:",
        "• `/ecs-deploy new` — the same",
        "• `/ecs-deploy status [id]` — where a deployment is (default: your latest)",
        "• `/ecs-deploy list` — your recent deployments",
        "• `/ecs-deploy help` — this help",
    ]
)


def register(app: App, services: Services) -> None:
    @app.command("/ecs-deploy")
    def handle(ack: Ack, command: dict[str, Any], client: WebClient) -> None:
        slash = SlashCommand.model_validate(command)
        words = slash.text.split()
        sub = words[0].lower() if words else "new"
        if sub == "new":
            open_request_modal(ack, slash, client, services)
        elif sub in {"status", "list"}:
            ack(report(services, slash, sub, words[1:]))
        else:
            prefix = "" if sub == "help" else f"Unknown subcommand `{sub[:30]}`.\n"
            ack(prefix + HELP)


def open_request_modal(ack: Ack, slash: SlashCommand, client: WebClient, services: Services) -> None:
    if not services.redis_ok():
        ack(STORE_DOWN)
        return
    ack()
    profiles = services.profiles_for(slash.user_id)
    if not profiles:
        services.notifier.ephemeral(
            slash.channel_id,
            slash.user_id,
            "No AWS profile is available to you. Ask the bot's operators for access.",
        )
        return
    view = request_modal_dict(ModalContext(channel_id=slash.channel_id, team_id=slash.team_id), profiles)
    try:
        client.views_open(trigger_id=slash.trigger_id, view=view)
    except SlackApiError as exc:
        log.warning("views_open_failed", error=exc.response.get("error"), user=slash.user_id)


def report(services: Services, slash: SlashCommand, sub: str, args: list[str]) -> str:
    try:
        if sub == "status":
            found = (
                services.store.find(args[0])
                if args
                else next(iter(services.store.recent(user_id=slash.user_id, limit=1)), None)
            )
            if found is None:
                return "No such deployment." if args else "You have no deployments yet."
            return (
                f"`{found.id}` {found.request.headline}: {found.status.label} {found.status_detail}".strip()
            )
        recent = services.store.recent(user_id=slash.user_id, limit=10)
        if not recent:
            return "You have no deployments yet."
        return "\n".join(f"• `{d.id}` {d.request.headline} — {d.status.label}" for d in recent)
    except redis.RedisError:
        return STORE_DOWN
