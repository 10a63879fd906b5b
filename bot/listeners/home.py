"""App Home: publish the user's deployments (and a lead's pending approvals) and the environments
they may see when the tab opens."""

from __future__ import annotations

from typing import Any

import redis
from slack_bolt import Ack, App
from slack_sdk.errors import SlackApiError

from bot import control, environments
from bot.ids import Action
from bot.services import Services
from bot.views.home import MAX_MINE, home_view
from core.logs import get_logger
from core.visibility import may_see

log = get_logger(__name__)


def register(app: App, services: Services) -> None:
    @app.event("app_home_opened")
    def home_opened(event: dict[str, Any]) -> None:  # Bolt acks events itself
        user_id = str(event.get("user") or "")
        if event.get("tab", "home") != "home" or not user_id:
            return
        publish_home(services, user_id)

    @app.action(Action.OPEN_THREAD.value)
    def open_thread_clicked(ack: Ack) -> None:
        # A link button: Slack opens the thread itself, but still sends the click, which must be acked.
        ack()


def publish_home(services: Services, user_id: str) -> None:
    try:
        user = services.identity(user_id)
        mine = [
            d
            for d in services.store.recent(user_id=user_id, limit=MAX_MINE + 1)
            if may_see(services.policy, user, d)
        ]
        lead = control.is_lead(services.policy, user)
        pending = (
            [d for d in control.pending_approvals(services, user) if may_see(services.policy, user, d)]
            if lead
            else None
        )
        view = home_view(
            mine=mine, pending=pending, environments=environments.visible_environments(services, user_id)
        )
    except redis.RedisError:
        view = home_view(mine=[], pending=None, store_down=True)
    try:
        services.client.views_publish(user_id=user_id, view=view.to_dict())
    except SlackApiError as exc:
        log.warning("home_publish_failed", user=user_id, error=exc.response.get("error"))
