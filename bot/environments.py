"""Environments as the Slack side reads them: which ones a user may see (`/ecs-deploy envs`, App Home),
each with its newest deployment; whether a new request names one that exists already; its open
deployment (through the index storage/ keeps); and the guard every new, change and destroy request
holds around its "nothing open" check and its create, so only one of them is ever open.

Visibility is the rule `list` follows (core.visibility): an environment is shown to whoever requested
one of its changes or its newest deployment, and to the approvers of its profile; nobody else learns
it exists. The registry (storage.environments.EnvironmentStore) holds the environments; their status
"changing" is derived from the newest deployment (core.environments.is_changing), never stored.

The wording is bot/views/environments.py's, the duplicate rule core/duplicates.py's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum

import redis
from redis.exceptions import LockError

from bot.services import Services
from bot.views import refusals
from core.duplicates import Duplicate, DuplicateWhy, duplicate_of
from core.environments import (
    Environment,
    EnvironmentKey,
    EnvironmentStatus,
    environment_key,
    is_changing,
    superseded_by,
)
from core.models import Deployment, DeploymentRequest
from core.values import Value
from core.visibility import may_see, may_see_environment
from storage.environments import EnvironmentStore
from storage.store import PREFIX

ENVIRONMENT_SCAN = 200  # how many environments (most recently changed first) a listing looks through
REQUEST_GUARD_SECONDS = 30  # at most this long one submission holds off another for its environment
GUARD_WAIT_SECONDS = 2.0  # how long a submission waits for another one for its environment to be stored


class EnvironmentState(StrEnum):
    LIVE = "live"
    CHANGING = "changing"  # live, and its newest deployment is still open
    DESTROYED = "destroyed"


class EnvironmentEntry(Value):
    """An environment as one user sees it: its newest deployment and whether they may request for it
    (change, upgrade, destroy: the profile is one the request form offers them, and the policy lets
    that profile name this environment)."""

    environment: Environment
    latest: Deployment | None = None
    may_request: bool = False

    @property
    def state(self) -> EnvironmentState:
        if self.environment.status is EnvironmentStatus.DESTROYED:
            return EnvironmentState.DESTROYED
        latest_status = self.latest.status if self.latest else None
        if is_changing(self.environment, latest_status):
            return EnvironmentState.CHANGING
        return EnvironmentState.LIVE


def store_of(services: Services) -> EnvironmentStore:
    return EnvironmentStore(services.redis)


def visible_environments(
    services: Services, user_id: str, *, scan: int = ENVIRONMENT_SCAN
) -> list[EnvironmentEntry]:
    """The environments `user_id` may see: live (and changing) ones first, then destroyed ones; each
    group most recently changed first. Raises redis.RedisError when the store is down."""
    user = services.identity(user_id)
    profiles: list[str] | None = None  # read once, only when someone may see an environment
    entries: list[EnvironmentEntry] = []
    for environment in store_of(services).all(limit=scan):
        latest_id = environment.latest_deployment_id
        latest = services.store.find(latest_id) if latest_id else None
        if not may_see_environment(services.policy, user, environment, latest):
            continue
        if profiles is None:
            profiles = services.profiles_for(user_id)
        entries.append(
            EnvironmentEntry(
                environment=environment,
                latest=latest,
                may_request=_may_request(services, profiles, environment),
            )
        )
    return sorted(entries, key=lambda entry: entry.state is EnvironmentState.DESTROYED)  # stable


def _may_request(services: Services, profiles: list[str], environment: Environment) -> bool:
    request = environment.request
    return (
        request.profile in profiles
        and services.policy.check_environment(request.profile, request.environment).allowed
    )


def guard_key(key: EnvironmentKey | str) -> str:
    return f"{PREFIX}environment-request:{key}"


def request_guard_key(request: DeploymentRequest) -> str:
    return guard_key(request.environment_key)


@contextmanager
def environment_guard(
    services: Services, key: EnvironmentKey | str, *, wait: float = GUARD_WAIT_SECONDS
) -> Iterator[bool]:
    """Held while a deployment for the environment is checked and stored — a new request
    (`existing_for`), a change or upgrade (bot/changes.py `start`), a destroy (bot/destroys.py) —
    so two submissions at the same moment cannot both pass the "nothing open" check: the second
    waits (at most `wait` seconds, well within Slack's 3 s) and then finds the first one's deployment.
    Yields whether it was got: False when another submission held it all that time. It expires by
    itself, so a crashed listener holds it for seconds only."""
    guard = services.redis.lock(guard_key(key), timeout=REQUEST_GUARD_SECONDS)
    got = bool(guard.acquire(blocking=wait > 0, blocking_timeout=wait if wait > 0 else None))
    try:
        yield got
    finally:
        if got:
            with contextlib.suppress(LockError, redis.RedisError):  # expired or unreachable: it expires
                guard.release()


def request_guard(services: Services, request: DeploymentRequest) -> contextlib.AbstractContextManager[bool]:
    """`environment_guard` for the environment a new request names."""
    return environment_guard(services, request.environment_key)


def superseded(services: Services, deployment: Deployment) -> str | None:
    """The words refusing to re-plan or edit `deployment` because a newer deployment of its
    environment exists (core.environments.superseded_by), or None."""
    request = deployment.request
    newer = superseded_by(deployment.id, store_of(services).newest_deployment_id(request.environment_key))
    if newer is None:
        return None
    return refusals.superseded(deployment.id, newer, f"{request.application}/{request.environment}")


def open_deployment(
    services: Services, key: EnvironmentKey | str, environment: Environment | None = None
) -> Deployment | None:
    """The environment's deployment that is still open (not final), if any: the one the store named
    its newest when creating it (storage.environments), else — for a deployment stored before that
    index existed — the environment's newest recorded deployment. Raises redis.RedisError."""
    candidates = [store_of(services).newest_deployment_id(key)]
    if environment is not None:
        candidates.append(environment.latest_deployment_id)
    for deployment_id in dict.fromkeys(c for c in candidates if c):
        found = services.store.find(deployment_id)
        if found is not None and not found.status.is_final:
            return found
    return None


def existing_for(
    services: Services,
    user_id: str,
    request: DeploymentRequest,
    *,
    submission_key: str | None = None,
    alone: bool = True,
) -> Duplicate | None:
    """Why `user_id`'s new deployment of `request` must not start (core.duplicates), or None.

    A submission that already created its deployment (Slack sent it twice) is not a duplicate of
    itself: None, so the store answers it with the deployment it created. Without the guard (`alone`
    False) another submission for the environment is being stored right now: in flight. The open
    deployment is found through the environment's index (`open_deployment`), however old it is, and
    named only to someone who may see it (core.visibility). Raises redis.RedisError when the store
    is down."""
    if submission_key and services.store.created_by(submission_key) is not None:
        return None
    key = environment_key(request)
    environment = store_of(services).find(key)
    opened = open_deployment(services, key, environment)
    if not alone:
        duplicate: Duplicate | None = Duplicate(key=key, why=DuplicateWhy.IN_FLIGHT, open_deployment=opened)
    else:
        duplicate = duplicate_of(key, environment, [opened] if opened else [])
    shown = duplicate.open_deployment if duplicate else None
    if duplicate and shown and not may_see(services.policy, services.identity(user_id), shown):
        return duplicate.model_copy(update={"open_deployment": None})
    return duplicate
