"""Button clicks in deployment threads."""

from __future__ import annotations

from slack_bolt import App

from bot.services import Services


def register(app: App, services: Services) -> None:
    """Buttons are registered by the pipeline steps that render them."""
