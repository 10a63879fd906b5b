"""The Slack side of destroying an environment (issue 13): find the environment people named, check
they may destroy it (core/destroy.py), and turn a confirmed modal into a DESTROY deployment stored
with its first job, appended to the environment and announced in the environment's channel.

The listeners (bot/listeners/destroys.py) open the modal and answer; the words are
bot/views/destroy.py's. Nothing here calls Slack.
"""

from __future__ import annotations

from dataclasses import dataclass

from slack_sdk.models.views import View

from bot.environments import environment_guard
from bot.environments import open_deployment as open_one
from bot.services import Services
from bot.views import destroy as views
from bot.views.change_modal import blocked_text
from core.changes import Blocked
from core.destroy import (
    DestroyCheck,
    check_destroy,
    confirmation_matches,
    destroy_deployment,
)
from core.environments import Environment, choose_environment, parse_environment_ref
from core.logs import get_logger
from core.models import Deployment
from core.policy.principals import SlackIdentity
from storage.environments import EnvironmentStore
from storage.queue import Step, enqueue_step

log = get_logger(__name__)


class DestroyRefused(Exception):
    """The destroy cannot be asked for; the message says why (for the person who asked only)."""


@dataclass(frozen=True)
class Requested:
    deployment: Deployment
    created: bool  # False: this submission had created it already (a retry or double submit)


def environments(services: Services) -> EnvironmentStore:
    return EnvironmentStore(services.redis)


def named_environment(services: Services, typed: str) -> Environment:
    """The one environment `typed` (`web/dev` or `web/dev@account/region`) names."""
    ref = parse_environment_ref(typed)
    if ref is None:
        raise DestroyRefused(views.usage())
    found = choose_environment(environments(services).named(ref.application, ref.environment), ref)
    if not found:
        raise DestroyRefused(views.not_found(typed))
    if len(found) > 1:
        raise DestroyRefused(views.ambiguous(typed, [env.key for env in found]))
    return found[0]


def open_deployment(services: Services, environment: Environment) -> str | None:
    """The id of the environment's deployment that is still open (waiting or running), if any
    (bot.environments.open_deployment: found through the environment's index)."""
    found = open_one(services, environment.key, environment)
    return found.id if found is not None else None


def check(services: Services, user: SlackIdentity, environment: Environment) -> DestroyCheck:
    return check_destroy(services.policy, user, environment, open_deployment(services, environment))


def checked(services: Services, user: SlackIdentity, environment: Environment) -> Environment:
    """The environment, or DestroyRefused with the refusal's words."""
    answer = check(services, user, environment)
    if not answer.allowed:
        raise DestroyRefused(views.refusal_text(answer))
    return environment


def modal_for(
    services: Services, user_id: str, environment: Environment, channel_id: str, team_id: str | None
) -> View:
    """The confirmation modal for `environment` (after the checks)."""
    checked(services, services.identity(user_id), environment)
    context = views.DestroyContext(
        environment_key=str(environment.key), channel_id=channel_id, team_id=team_id
    )
    return views.destroy_modal(context, environment)


def request_destroy(
    services: Services,
    *,
    user_id: str,
    team_id: str | None,
    context: views.DestroyContext,
    typed: str | None,
    submission_key: str,
) -> Requested:
    """A submitted confirmation: checked again (the environment and the policy may have changed
    since the modal opened), then the DESTROY deployment stored with its VERIFY job. Raises
    DestroyRefused (shown on the field) for a wrong confirmation or a refusal; nothing is stored.
    The check and the create hold the environment's guard (bot/environments.py), so of several
    requests at the same moment one is stored and the others are refused naming it."""
    found = environments(services).find(context.environment_key)
    if found is None:
        raise DestroyRefused(views.FORM_OUT_OF_DATE)
    if not confirmation_matches(typed, found.key):
        raise DestroyRefused(views.confirmation_mismatch(found.key))
    with environment_guard(services, found.key) as alone:
        earlier = services.store.created_by(submission_key)
        if earlier is not None and (done := services.store.find(earlier)) is not None:
            return Requested(done, created=False)  # Slack retried, or a double submit
        environment = environments(services).find(found.key) or found  # as stored now
        if not alone:
            opened = open_one(services, environment.key, environment)
            raise DestroyRefused(blocked_text(Blocked.OPEN_DEPLOYMENT, environment, opened))
        checked(services, services.identity(user_id), environment)
        deployment = destroy_deployment(
            environment,
            requester_id=user_id,
            team_id=team_id,
            channel_id=context.channel_id,
        )
        deployment, created = services.store.create(
            deployment,
            submission_key=submission_key,
            also=lambda pipe: enqueue_step(
                services.redis, services.settings, Step.VERIFY, deployment.id, pipeline=pipe
            ),
        )
        if created:
            environments(services).add_deployment(environment.key, deployment.id)
    return Requested(deployment, created)


def announce(services: Services, requested: Requested) -> None:
    """After ack(): the audit record and the root message in the environment's channel."""
    deployment = requested.deployment
    if requested.created:
        environment = deployment.request.environment_key
        log.info(
            "destroy_requested",
            deployment_id=deployment.id,
            user=deployment.requester_id,
            environment=environment,
        )
        services.audit.record(
            "destroy_requested",
            deployment.id,
            deployment.requester_id,
            environment=environment,
            request=deployment.request.headline,
            profile=deployment.request.profile,
        )
        services.notifier.ensure_thread(deployment)
