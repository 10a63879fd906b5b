"""Destroying an environment (issue 13): the pure rules.

- `confirmation_matches`: the requester types the environment as `app/env` to confirm.
- `check_destroy`: may this person ask for a destroy of this environment now? Refused (as data, worded
  by bot/views/destroy.py) when they may not request with its profile or the profile no longer
  declares the environment, when it is destroyed already, when the policy protects it, or while
  one of its deployments is still open.
- `destroy_deployment`: the DESTROY deployment for an environment — its request, extra values and
  commit, so the workspace regenerates exactly the files of its last apply.
- `is_protected`: checked again when the plan is approved (core.approval, destroy rule) and before
  the apply (workers/steps/terraform.py): the policy may change in between.
- `data_stores`: what a destroy plan deletes that holds data (named first in its summary).
"""

from __future__ import annotations

from enum import StrEnum

from core.changes import environment_channel, previous_threads
from core.environments import Environment, EnvironmentKey, EnvironmentStatus
from core.lifecycle import DeploymentKind
from core.models import Deployment
from core.plan_summary import PlanAction, PlanSummary, ResourceChange
from core.policy.access import AccessPolicy, Decision
from core.policy.principals import SlackIdentity
from core.values import Value

# Resource types that hold data: RDS/Aurora, ElastiCache, DocumentDB, S3, EFS, DynamoDB.
DATA_STORE_TYPES: frozenset[str] = frozenset(
    {
        "aws_db_instance",
        "aws_rds_cluster",
        "aws_rds_cluster_instance",
        "aws_elasticache_cluster",
        "aws_elasticache_replication_group",
        "aws_elasticache_serverless_cache",
        "aws_docdb_cluster",
        "aws_docdb_cluster_instance",
        "aws_docdbelastic_cluster",
        "aws_s3_bucket",
        "aws_efs_file_system",
        "aws_dynamodb_table",
    }
)
_DELETING = frozenset({PlanAction.DELETE, PlanAction.DELETE_THEN_CREATE, PlanAction.CREATE_THEN_DELETE})


class DestroyRefusal(StrEnum):
    NOT_ALLOWED = "not_allowed"  # not a requester of the profile (`decision`)
    UNDECLARED = "undeclared"  # the profile no longer declares the environment (`decision`)
    ALREADY_DESTROYED = "already_destroyed"
    PROTECTED = "protected"  # `protected: true` in the access policy
    OPEN_DEPLOYMENT = "open_deployment"  # `open_deployment`: still running or waiting


class DestroyCheck(Value):
    """The answer of `check_destroy`, with the facts a refusal is worded from."""

    key: EnvironmentKey
    profile: str
    refusal: DestroyRefusal | None = None
    decision: Decision | None = None
    open_deployment: str | None = None

    @property
    def allowed(self) -> bool:
        return self.refusal is None


def confirmation_matches(typed: str | None, key: EnvironmentKey) -> bool:
    """The typed confirmation is the environment as `app/env` (surrounding spaces ignored, nothing
    else: no other case, no prefix)."""
    return (typed or "").strip() == key.short


def is_protected(policy: AccessPolicy, profile: str, environment: str) -> bool:
    """Whether the policy forbids destroying the environment from Slack. A profile the policy no
    longer names counts as protected: nothing could approve it anyway."""
    rule = policy.approval_rule(profile, environment, destroy=True)
    return rule is None or rule.protected


def check_destroy(
    policy: AccessPolicy,
    user: SlackIdentity,
    environment: Environment,
    open_deployment: str | None,
) -> DestroyCheck:
    """May `user` ask for a destroy of `environment` now (`open_deployment`: the id of its newest
    deployment when that one is not final)?"""
    profile, name = environment.request.profile, environment.key.environment
    base = DestroyCheck(key=environment.key, profile=profile)

    def refuse(refusal: DestroyRefusal, **facts: object) -> DestroyCheck:
        return base.model_copy(update={"refusal": refusal, **facts})

    may_request = policy.can_request(user, profile)
    if not may_request.allowed:
        return refuse(DestroyRefusal.NOT_ALLOWED, decision=may_request)
    declared = policy.check_environment(profile, name)
    if not declared.allowed:
        return refuse(DestroyRefusal.UNDECLARED, decision=declared)
    if environment.status is EnvironmentStatus.DESTROYED:
        return refuse(DestroyRefusal.ALREADY_DESTROYED)
    if is_protected(policy, profile, name):
        return refuse(DestroyRefusal.PROTECTED)
    if open_deployment is not None:
        return refuse(DestroyRefusal.OPEN_DEPLOYMENT, open_deployment=open_deployment)
    return base


def destroy_deployment(
    environment: Environment,
    *,
    requester_id: str,
    team_id: str | None,
    channel_id: str,
) -> Deployment:
    """The DESTROY deployment: the environment's request, values and commit (the files of its last
    apply), so `terraform plan -destroy` runs against exactly that configuration; posted in the
    channel of the environment's last change (else `channel_id`), linking its earlier threads."""
    return Deployment(
        kind=DeploymentKind.DESTROY,
        request=environment.request,
        extra_values=dict(environment.extra_values),
        repo_commit=environment.repo_commit,
        requester_id=requester_id,
        team_id=team_id,
        channel_id=environment_channel(environment, channel_id) or channel_id,
        previous_threads=previous_threads(environment),
    )


def data_stores(summary: PlanSummary) -> tuple[ResourceChange, ...]:
    """The resources holding data that the plan deletes (destroys or replaces)."""
    return tuple(
        change for change in summary.changes if change.type in DATA_STORE_TYPES and change.action in _DELETING
    )
