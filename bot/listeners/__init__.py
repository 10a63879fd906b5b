"""Bolt listeners: they ack, validate and enqueue. Nothing slow runs before `ack()`."""

from __future__ import annotations

from slack_bolt import App

from bot.listeners import actions, commands, destroys, drift, environments, home, submissions, thread_modals
from bot.services import Services


def register(app: App, services: Services) -> None:
    commands.register(app, services)
    submissions.register(app, services)
    actions.register(app, services)
    thread_modals.register(app, services)
    home.register(app, services)
    environments.register(app, services)
    destroys.register(app, services)
    drift.register(app, services)
