"""A new-deployment request for an environment that already exists (or is being created).

`/ecs-deploy` creates environments; changing one is `/ecs-deploy change <app>/<env>`. A request whose
application, environment, account and region name an environment that is LIVE, or one that has an
open (not final) deployment — a CREATE still in flight is not in the registry yet, since an
environment is recorded by its first successful apply — does not start a second deployment: the
outcome says why (`DuplicateWhy`) and which deployment is open, and bot/views/environments.py words
it. A DESTROYED environment, with nothing open for it, may be created again.

Pure: the request's key, the stored environment (if any) and the open deployments in, an outcome out.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from core.environments import Environment, EnvironmentKey, EnvironmentStatus
from core.models import Deployment
from core.values import Value


class DuplicateWhy(StrEnum):
    LIVE = "live"  # the environment exists: change it instead
    IN_FLIGHT = "in_flight"  # a deployment for it is still open (e.g. its CREATE)


class Duplicate(Value):
    """Why a new request for `key` is refused, and the open deployment when there is one."""

    key: EnvironmentKey
    why: DuplicateWhy
    open_deployment: Deployment | None = None

    @property
    def live(self) -> bool:
        return self.why is DuplicateWhy.LIVE


def duplicate_of(
    key: EnvironmentKey, environment: Environment | None, deployments: Iterable[Deployment]
) -> Duplicate | None:
    """None when a new (CREATE) deployment of `key` may start; otherwise why not.

    `deployments` are the candidates for the open deployment (bot/environments.py passes the one the
    environment's index names, found however old it is): only the open ones for `key` count, and the
    first open one found is named."""
    open_one = next(
        (d for d in deployments if d.request.environment_key == str(key) and not d.status.is_final),
        None,
    )
    if environment is not None and environment.status is EnvironmentStatus.LIVE:
        return Duplicate(key=key, why=DuplicateWhy.LIVE, open_deployment=open_one)
    if open_one is not None:
        return Duplicate(key=key, why=DuplicateWhy.IN_FLIGHT, open_deployment=open_one)
    return None
