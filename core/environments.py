"""Environments: what a deployment created, and how it lives on (changes, upgrades, a destroy).

An environment is identified by application, environment name, account and region (`EnvironmentKey`,
written `{application}-{environment}-{account_id}-{region}`: the same string names its branch in the
Terraform repository, `ecs-deploy/{key}`). It is created by the first successful apply of a CREATE
deployment and updated by every later successful apply of a deployment that belongs to it; a DESTROY
apply marks it destroyed. Every deployment names its environment (`Deployment.environment_key`) and
its kind (`DeploymentKind`).

Storage model (storage/environments.py): one JSON record per environment; its `deployments` list is
the environment's history (newest last), so "changing" is derived (its newest deployment is open),
never stored and never left stale.

What a change may touch: the size, the tags, the alarm e-mails, the DNS name and the repository ref.
The names that feed resource names (application, environment, account, region), the VPC CIDR and the
state backend would make Terraform replace core infrastructure or lose the state: a change keeps them
(`LOCKED_FIELDS`).

All functions here are pure: they take and return models.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from core.lifecycle import DeploymentKind, DeploymentStatus
from core.models import Deployment, DeploymentRequest
from core.values import Value

CONFIG_BRANCH_PREFIX = "ecs-deploy/"
ALARM_EMAILS = "sns_monitoring_recepients_email_list"  # (sic) poc-idp's variable name
DNS_NAME = "route53_dns_name"
CHANGEABLE_VALUES = (ALARM_EMAILS, DNS_NAME)  # tfvars values a change form offers besides size and tags
LOCKED_FIELDS = (
    "profile",
    "application",
    "environment",
    "account_id",
    "region",
    "vpc_cidr_block",
    "state_bucket",
    "lock_table",
)


class EnvironmentStatus(StrEnum):
    LIVE = "live"
    DESTROYED = "destroyed"


class EnvironmentKey(Value):
    application: str
    environment: str
    account_id: str
    region: str

    def __str__(self) -> str:
        return f"{self.application}-{self.environment}-{self.account_id}-{self.region}"

    @property
    def short(self) -> str:
        """`web/dev`, as people type it."""
        return f"{self.application}/{self.environment}"


def environment_key(request: DeploymentRequest) -> EnvironmentKey:
    """The environment a request is for (its string is `request.environment_key`)."""
    return EnvironmentKey(
        application=request.application,
        environment=request.environment,
        account_id=request.account_id,
        region=request.region,
    )


def config_branch(key: EnvironmentKey | str, prefix: str = CONFIG_BRANCH_PREFIX) -> str:
    return f"{prefix}{key}"


class EnvironmentChange(BaseModel):
    """One successful apply on the environment: who asked, who approved, what was applied."""

    deployment_id: str
    kind: DeploymentKind
    requester_id: str
    approver_ids: list[str] = Field(default_factory=list)
    plan_sha256: str
    repo_commit: str
    applied_at: datetime
    channel_id: str
    thread_ts: str | None = None
    summary: str = ""


class ConfigCommit(BaseModel):
    """The environment's configuration as last committed to the Terraform repository."""

    branch: str
    commit: str | None = None  # None while the push has not succeeded
    deployment_id: str
    pushed: bool = False
    error: str = ""  # why the last push failed (for the thread and App Home)
    pull_request_url: str | None = None


class Environment(BaseModel):
    """A live (or destroyed) environment: the values and commit of its last apply and its history."""

    key: EnvironmentKey
    request: DeploymentRequest  # the request of the last apply
    extra_values: dict[str, Any] = Field(default_factory=dict)  # values people gave beyond the request
    repo_commit: str
    repo_ref: str | None = None
    tfvars_sha256: str = ""
    outputs: dict[str, Any] = Field(default_factory=dict)  # sensitive ones as {"sensitive": True} only
    status: EnvironmentStatus = EnvironmentStatus.LIVE
    changes: list[EnvironmentChange] = Field(default_factory=list)  # successful applies, oldest first
    deployments: list[str] = Field(default_factory=list)  # every deployment for it, oldest first
    config: ConfigCommit | None = None
    created_at: datetime
    updated_at: datetime

    @property
    def last_change(self) -> EnvironmentChange | None:
        return self.changes[-1] if self.changes else None

    @property
    def latest_deployment_id(self) -> str | None:
        return self.deployments[-1] if self.deployments else None


def is_changing(environment: Environment, latest_status: DeploymentStatus | None) -> bool:
    """An environment is changing while its newest deployment is still open (not final)."""
    return (
        environment.status is EnvironmentStatus.LIVE
        and latest_status is not None
        and not latest_status.is_final
    )


def superseded_by(deployment_id: str, newest_id: str | None) -> str | None:
    """The environment's newer deployment when `deployment_id` is no longer its newest one (None
    while it is, or when none was recorded): an older deployment must not be re-planned or edited —
    its values are older than what the environment has since become."""
    return newest_id if newest_id is not None and newest_id != deployment_id else None


def locked_changes(before: DeploymentRequest, after: DeploymentRequest) -> list[str]:
    """The locked fields (LOCKED_FIELDS) whose value differs between two requests."""
    return [name for name in LOCKED_FIELDS if getattr(before, name) != getattr(after, name)]


def after_apply(
    environment: Environment | None,
    *,
    deployment: Deployment,
    change: EnvironmentChange,
    tfvars_sha256: str,
    outputs: dict[str, Any],
) -> Environment:
    """The environment after `deployment` applied successfully."""
    destroyed = change.kind is DeploymentKind.DESTROY
    base = environment or Environment(
        key=environment_key(deployment.request),
        request=deployment.request,
        repo_commit=change.repo_commit,
        created_at=change.applied_at,
        updated_at=change.applied_at,
    )
    deployments = (
        base.deployments if deployment.id in base.deployments else [*base.deployments, deployment.id]
    )
    return base.model_copy(
        update={
            "request": deployment.request,
            "extra_values": dict(deployment.extra_values),
            "repo_commit": change.repo_commit,
            "repo_ref": deployment.repo_ref,
            "tfvars_sha256": tfvars_sha256,
            "outputs": {} if destroyed else outputs,
            "status": EnvironmentStatus.DESTROYED if destroyed else EnvironmentStatus.LIVE,
            "changes": [*base.changes, change],
            "deployments": deployments,
            "updated_at": change.applied_at,
        }
    )


class EnvironmentRef(Value):
    """How people name an environment: `web/dev`, or `web/dev@123456789012/eu-west-1` when `web/dev`
    lives in more than one account or region."""

    application: str
    environment: str
    account_id: str | None = None
    region: str | None = None

    def matches(self, key: EnvironmentKey) -> bool:
        return (
            key.application == self.application
            and key.environment == self.environment
            and self.account_id in (None, key.account_id)
            and self.region in (None, key.region)
        )


def parse_environment_ref(text: str) -> EnvironmentRef | None:
    """`web/dev` or `web/dev@account/region` (None when it is neither)."""
    name, _, where = text.strip().partition("@")
    application, slash, environment = name.partition("/")
    if not slash or not application or not environment or "/" in environment:
        return None
    if not where:
        return EnvironmentRef(application=application, environment=environment)
    account_id, slash, region = where.partition("/")
    if not slash or not account_id or not region:
        return None
    return EnvironmentRef(
        application=application, environment=environment, account_id=account_id, region=region
    )


def choose_environment(candidates: list[Environment], ref: EnvironmentRef) -> list[Environment]:
    """The candidates `ref` names, live ones first: exactly one is an answer; none or several need
    the caller to say so (several: ask for `@account/region`)."""
    found = [env for env in candidates if ref.matches(env.key)]
    return sorted(found, key=lambda env: (env.status is not EnvironmentStatus.LIVE, str(env.key)))
