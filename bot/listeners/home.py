"""App Home: publish the user's deployments (and a lead's pending approvals) and the environments
they may see, each live one with its drift line (last check, result, next run), when the tab opens."""

from __future__ import annotations

from typing import Any

import redis
from slack_bolt import Ack, App
from slack_sdk.errors import SlackApiError

from bot import control, environments
from bot.ids import Action
from bot.services import Services
from bot.views import drift as drift_views
from bot.views.environments import MAX_HOME
from bot.views.home import MAX_MINE, home_view
from core.drift import effective_interval
from core.environments import EnvironmentStatus
from core.logs import get_logger
from core.visibility import may_see
from storage.drift import DriftStore

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
        visible = environments.visible_environments(services, user_id)
        view = home_view(
            mine=mine, pending=pending, environments=visible, drift=drift_lines(services, visible)
        )
    except redis.RedisError:
        view = home_view(mine=[], pending=None, store_down=True)
    try:
        services.client.views_publish(user_id=user_id, view=view.to_dict())
    except SlackApiError as exc:
        log.warning("home_publish_failed", user=user_id, error=exc.response.get("error"))


def drift_lines(services: Services, entries: list[environments.EnvironmentEntry]) -> dict[str, str]:
    """The drift line of each live environment App Home shows: its last check and result
    (storage/drift.py) and when the next one runs — none when its drift interval (the policy's
    `drift_interval`, else ECS_DEPLOY_DRIFT_INTERVAL) is 0. Raises redis.RedisError."""
    live = [e.environment for e in entries[:MAX_HOME] if e.environment.status is EnvironmentStatus.LIVE]
    records = DriftStore(services.redis).many([str(e.key) for e in live])
    lines: dict[str, str] = {}
    for environment in live:
        key = str(environment.key)
        request = environment.request
        interval = effective_interval(
            services.settings.drift_interval_seconds,
            services.policy.drift_interval(request.profile, request.environment),
        )
        record = records.get(key)
        next_run = record.next_run_at if record is not None and interval > 0 else None
        lines[key] = drift_views.drift_line(record, next_run, scheduled=interval > 0)
    return lines
