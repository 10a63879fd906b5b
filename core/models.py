"""Records that cross a boundary: the deployment request, the stored deployment, job payloads."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core import validation
from core.approval import ApprovalState, ClickContext, PlanBinding
from core.backend_fix import BackendFixPlan
from core.lifecycle import DeploymentKind as DeploymentKind
from core.lifecycle import DeploymentStatus as DeploymentStatus
from core.policy.principals import SlackIdentity
from core.sizes import SetupSize
from core.values import Value


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_deployment_id() -> str:
    return "d-" + secrets.token_hex(4)


class AccountSituation(StrEnum):
    NEW = "new"
    EXISTING = "existing"


class DeploymentStopped(Exception):
    """The deployment was cancelled or rejected while a step was running: stop quietly."""


class DeploymentRequest(Value):
    """What the requester asked for, validated field by field (messages name the field's rule)."""

    model_config = ConfigDict(extra="forbid")

    profile: str
    account_situation: AccountSituation
    size: SetupSize
    account_id: str
    region: str
    application: str
    environment: str
    additional_tags: dict[str, str] = Field(default_factory=dict)
    vpc_cidr_block: str = validation.DEFAULT_VPC_CIDR
    state_bucket: str = ""
    lock_table: str = validation.DEFAULT_LOCK_TABLE

    _account_id = field_validator("account_id")(validation.check_account_id)
    _region = field_validator("region")(validation.check_region)
    _profile = field_validator("profile")(validation.check_profile_name)
    _application = field_validator("application")(validation.check_application)
    _environment = field_validator("environment")(validation.check_environment)
    _tags = field_validator("additional_tags")(validation.check_tags)
    _cidr = field_validator("vpc_cidr_block")(validation.check_vpc_cidr)
    _lock_table = field_validator("lock_table")(validation.check_lock_table)

    @field_validator("state_bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        return validation.check_bucket_name(value) if value else value

    @model_validator(mode="after")
    def _names_fit_together(self) -> DeploymentRequest:
        validation.check_name_lengths(self.application, self.environment)
        if not self.state_bucket:
            object.__setattr__(
                self, "state_bucket", validation.default_state_bucket(self.account_id, self.region)
            )
        return self

    @property
    def state_key(self) -> str:
        return f"terraform/{self.application}/{self.environment}/terraform.tfstate"

    @property
    def file_stem(self) -> str:
        """poc-idp's name for the tfvars/tfbackend pair: {application}-{account_id}-{region}."""
        return f"{self.application}-{self.account_id}-{self.region}"

    @property
    def environment_key(self) -> str:
        """core.environments.EnvironmentKey's string: {application}-{environment}-{account_id}-{region}."""
        return f"{self.application}-{self.environment}-{self.account_id}-{self.region}"

    @property
    def headline(self) -> str:
        return (
            f"{self.application}/{self.environment} · {self.account_id} · {self.region} · {self.size.value}"
        )


class CallerIdentity(BaseModel):
    account: str
    arn: str
    user_id: str


class WorkspaceRecord(BaseModel):
    """The files a plan is made from, pinned so any worker can rebuild them exactly."""

    commit: str
    tfvars_path: str
    tfbackend_path: str
    tfvars_sha256: str
    tfbackend_sha256: str


class PlanRecord(BaseModel):
    attempt: int
    sha256: str
    created_at: datetime
    sentence: str
    has_changes: bool
    applyable: bool
    resource_changes: int = 0
    message_ts: str | None = None


class Deployment(BaseModel):
    """One deployment request and everything decided about it, stored as JSON in Redis."""

    id: str = Field(default_factory=new_deployment_id)
    request: DeploymentRequest
    requester_id: str
    team_id: str | None = None
    channel_id: str
    requested_via: str | None = None  # the MCP client that made the request for the requester
    kind: DeploymentKind = DeploymentKind.CREATE  # what it does to its environment (core/environments.py)
    repo_ref: str | None = None  # the Terraform repository ref to check out (None: the configured one)
    previous_threads: list[str] = Field(
        default_factory=list
    )  # permalinks of the environment's earlier threads
    thread_ts: str | None = None
    status: DeploymentStatus = DeploymentStatus.REQUESTED
    status_detail: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    identity: CallerIdentity | None = None
    repo_commit: str | None = None
    permissions_denied: list[str] = Field(default_factory=list)
    permission_override_by: str | None = None
    analysis_blocking: bool = False
    analysis_message_ts: str | None = None
    recommendations: dict[str, Any] = Field(default_factory=dict)
    backend_ready: bool = False
    backend_fix: BackendFixPlan | None = None  # changes to an existing bucket awaiting/given confirmation
    workspace: WorkspaceRecord | None = None
    extra_values: dict[str, Any] = Field(default_factory=dict)
    value_authors: list[str] = Field(default_factory=list)  # who gave or edited values after the request
    missing_values: list[str] = Field(default_factory=list)
    plan: PlanRecord | None = None
    approval: ApprovalState = Field(default_factory=ApprovalState)
    progress_message_ts: str | None = None
    outputs: dict[str, Any] = Field(default_factory=dict)

    def plan_seen(self, attempt: int | None) -> PlanBinding | None:
        """The plan a button rendered for plan `attempt` refers to, if it is still the one under review."""
        current = self.approval.binding
        waiting = self.status is DeploymentStatus.AWAITING_APPROVAL
        return current if current is not None and current.attempt == attempt and waiting else None

    def click(self, user: SlackIdentity, attempt: int | None, now: datetime) -> ClickContext:
        """An Approve or Reject click by `user` on a button rendered for plan `attempt`."""
        request = self.request
        return ClickContext(
            user=user,
            profile=request.profile,
            environment=request.environment,
            requester_id=self.requester_id,
            binding_seen=self.plan_seen(attempt),
            now=now,
        )

    def with_status(self, status: DeploymentStatus, detail: str = "") -> Deployment:
        return self.model_copy(update={"status": status, "status_detail": detail, "updated_at": utcnow()})
