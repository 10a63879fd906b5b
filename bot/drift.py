"""Slack side of drift: `/ecs-deploy drift <app>/<env>` (a check now), the Plan to reconcile and
Acknowledge buttons of a drift message, and the acknowledge modal's submission.

The rules are core/drift.py's, the words bot/views/drift.py's. Plan to reconcile starts the change
flow exactly as the change form does (bot/changes.py: a CHANGE deployment with the environment's
current request, values and commit → plan → approval → apply). Every refusal is a `ControlRefused`.
"""

from __future__ import annotations

import secrets

from bot import changes
from bot.control import ControlRefused
from bot.services import Services
from bot.views import drift as views
from core.changes import current_form, plan_change
from core.drift import DriftRecord, acknowledge
from core.environments import Environment, EnvironmentStatus, choose_environment, parse_environment_ref
from core.logs import get_logger
from core.models import Deployment, utcnow
from storage.drift import DriftStore
from storage.environments import EnvironmentStore
from storage.queue import enqueue_drift_check

log = get_logger(__name__)


def _may_act(services: Services, user_id: str, environment: Environment) -> bool:
    """Its profile's requesters and approvers may look at and act on an environment's drift."""
    user = services.identity(user_id)
    profile, name = environment.request.profile, environment.request.environment
    return (
        services.policy.can_request(user, profile).allowed
        or services.policy.can_approve(user, profile, name).allowed
    )


def find_live(services: Services, text: str, user_id: str) -> Environment:
    ref = parse_environment_ref(text)
    if ref is None:
        raise ControlRefused(views.DRIFT_USAGE)
    store = EnvironmentStore(services.redis)
    found = [
        env
        for env in choose_environment(store.named(ref.application, ref.environment), ref)
        if env.status is EnvironmentStatus.LIVE and _may_act(services, user_id, env)
    ]
    if not found:
        raise ControlRefused(views.no_such_environment_text(text.strip()[:100]))
    if len(found) > 1:
        raise ControlRefused(
            views.ambiguous_environment_text(text.strip()[:100], [str(e.key) for e in found])
        )
    return found[0]


def check_now(services: Services, user_id: str, text: str) -> str:
    """Queue a check of the environment now (not a scheduled slot: it never takes a slot's claim)."""
    environment = find_live(services, text, user_id)
    key = str(environment.key)
    job_id = f"drift-{key}-now-{secrets.token_hex(4)}"
    enqueue_drift_check(services.redis, services.settings, key, job_id=job_id)
    services.audit.record("drift_check_requested", f"env:{key}", user_id)
    log.info("drift_check_requested", environment_key=key, user=user_id)
    return views.check_queued_text(environment.key.short)


def reconcile(services: Services, user_id: str, environment_key: str, team_id: str | None) -> Deployment:
    """Plan to reconcile: a CHANGE deployment with the environment's current values (the change flow:
    its plan restores the last applied configuration and needs an approval before it is applied)."""
    environment = changes.environment_by_key(services, environment_key)
    changes.check_may_change(services, user_id, environment)
    planned = plan_change(environment, current_form(environment))
    deployment, _ = changes.start(
        services,
        environment,
        planned,
        requester_id=user_id,
        channel_id=None,
        team_id=team_id,
        submission_key=f"reconcile:{environment_key}:{environment.latest_deployment_id}",
    )
    services.audit.record("drift_reconcile", deployment.id, user_id, environment=environment_key)
    return deployment


def acknowledgeable(services: Services, user_id: str, environment_key: str) -> Environment:
    environment = changes.environment_by_key(services, environment_key)
    if not _may_act(services, user_id, environment):
        raise ControlRefused(views.reconcile_refused_access(environment.key.short))
    return environment


def acknowledged(
    services: Services, user_id: str, context: views.DriftAckContext, reason: str
) -> DriftRecord | None:
    """Silence the drift the message showed; None when the drift changed since (then nothing is
    stored). Audited with who and why."""
    acknowledgeable(services, user_id, context.environment_key)
    record = DriftStore(services.redis).update(
        context.environment_key,
        lambda current: acknowledge(current, context.fingerprint, user_id, reason, utcnow()),
    )
    if record is not None:
        services.audit.record(
            "drift_acknowledged",
            f"env:{context.environment_key}",
            user_id,
            fingerprint=context.fingerprint,
            reason=reason,
        )
    return record
