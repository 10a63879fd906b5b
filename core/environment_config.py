"""An environment's configuration as committed to the Terraform repository, as data.

Each successful apply becomes one commit on the environment's branch (`config_branch`): its two
generated files, and a message whose trailers (`git interpret-trailers` format, `Key: value` lines in
the last paragraph) say what the files alone do not: who asked and approved, the plan and commit that
were applied, and the request fields that are not in the tfvars/tfbackend (profile, size, account
situation). `environments import` reads them back (`ConfigTrailers.parse`) and rebuilds the
environment: the request from the files and trailers (`request_from_files`), and the values people
gave beyond the request as the difference between the committed tfvars and what generation gives for
that request at the applied commit (`extra_values_from`).

All functions here are pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from core.environments import EnvironmentChange
from core.lifecycle import DeploymentKind
from core.models import AccountSituation, Deployment, DeploymentRequest
from core.sizes import SetupSize
from core.tfvars.edit import apply_values
from core.tfvars.poc_idp import values_for_request

REQUESTED_BY = "Requested-by"
APPROVED_BY = "Approved-by"
PLAN_SHA256 = "Plan-SHA256"
APPLIED_COMMIT = "Applied-commit"
DEPLOYMENT = "Ecs-Deploy-Deployment"
KIND = "Ecs-Deploy-Kind"
PROFILE = "Ecs-Deploy-Profile"
SIZE = "Ecs-Deploy-Size"
ENVIRONMENT = "Ecs-Deploy-Environment"  # application/environment, as people type it (web/dev)
ACCOUNT_SITUATION = "Ecs-Deploy-Account-Situation"
REF = "Ecs-Deploy-Ref"
TFVARS_FILE = "Ecs-Deploy-Tfvars"
TFBACKEND_FILE = "Ecs-Deploy-Tfbackend"
CHANNEL = "Ecs-Deploy-Channel"
THREAD = "Ecs-Deploy-Thread"


class TrailerError(ValueError):
    """A commit's trailers do not describe an apply of the bot (missing or malformed)."""


class ConfigTrailers(BaseModel):
    """The trailers of one configuration commit."""

    deployment_id: str
    kind: DeploymentKind
    requester_id: str
    approver_ids: list[str] = Field(default_factory=list)
    plan_sha256: str
    applied_commit: str
    profile: str
    size: SetupSize
    environment: str  # application/environment
    account_situation: AccountSituation = AccountSituation.EXISTING
    repo_ref: str | None = None
    tfvars_path: str
    tfbackend_path: str
    channel_id: str
    thread_ts: str | None = None

    @classmethod
    def of(cls, deployment: Deployment) -> ConfigTrailers:
        """The trailers of `deployment`'s apply (it has an approved plan and a workspace)."""
        binding, workspace = deployment.approval.binding, deployment.workspace
        if binding is None or workspace is None:
            raise TrailerError(f"deployment {deployment.id} has no approved plan or workspace")
        request = deployment.request
        return cls(
            **deployment.model_dump(include={"kind", "requester_id", "repo_ref", "channel_id", "thread_ts"}),
            **request.model_dump(include={"profile", "size", "account_situation"}),
            **workspace.model_dump(include={"tfvars_path", "tfbackend_path"}),
            deployment_id=deployment.id,
            approver_ids=list(deployment.approval.approver_ids),
            plan_sha256=binding.plan_sha256,
            applied_commit=workspace.commit,
            environment=f"{request.application}/{request.environment}",
        )

    def lines(self) -> list[str]:
        """`Key: value` lines, in a fixed order (Approved-by once per approver)."""
        pairs: list[tuple[str, str | None]] = [
            (REQUESTED_BY, self.requester_id),
            *((APPROVED_BY, approver) for approver in self.approver_ids),
            (PLAN_SHA256, self.plan_sha256),
            (APPLIED_COMMIT, self.applied_commit),
            (DEPLOYMENT, self.deployment_id),
            (KIND, self.kind.value),
            (PROFILE, self.profile),
            (SIZE, self.size.value),
            (ENVIRONMENT, self.environment),
            (ACCOUNT_SITUATION, self.account_situation.value),
            (REF, self.repo_ref),
            (TFVARS_FILE, self.tfvars_path),
            (TFBACKEND_FILE, self.tfbackend_path),
            (CHANNEL, self.channel_id),
            (THREAD, self.thread_ts),
        ]
        return [f"{key}: {_one_line(value)}" for key, value in pairs if value]

    @classmethod
    def parse(cls, pairs: list[tuple[str, str]]) -> ConfigTrailers:
        """From (key, value) pairs as `git log --format=%(trailers:...)` gives them; TrailerError
        when one the import needs is missing or malformed."""
        found: dict[str, list[str]] = {}
        for key, value in pairs:
            found.setdefault(key.strip().lower(), []).append(value.strip())

        def one(key: str, *, required: bool = True) -> str | None:
            values = found.get(key.lower())
            if not values:
                if required:
                    raise TrailerError(f"the trailer {key} is missing")
                return None
            return values[-1]

        try:
            return cls(
                deployment_id=one(DEPLOYMENT),
                kind=one(KIND),
                requester_id=one(REQUESTED_BY),
                approver_ids=found.get(APPROVED_BY.lower(), []),
                plan_sha256=one(PLAN_SHA256),
                applied_commit=one(APPLIED_COMMIT),
                profile=one(PROFILE),
                size=one(SIZE),
                environment=one(ENVIRONMENT),
                account_situation=one(ACCOUNT_SITUATION, required=False) or AccountSituation.EXISTING,
                repo_ref=one(REF, required=False),
                tfvars_path=one(TFVARS_FILE),
                tfbackend_path=one(TFBACKEND_FILE),
                channel_id=one(CHANNEL),
                thread_ts=one(THREAD, required=False),
            )
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            if isinstance(exc, TrailerError):
                raise
            raise TrailerError(f"malformed trailers: {str(exc).splitlines()[0]}") from None

    def change(self, applied_at: datetime) -> EnvironmentChange:
        return EnvironmentChange(
            deployment_id=self.deployment_id,
            kind=self.kind,
            requester_id=self.requester_id,
            approver_ids=list(self.approver_ids),
            plan_sha256=self.plan_sha256,
            repo_commit=self.applied_commit,
            applied_at=applied_at,
            channel_id=self.channel_id,
            thread_ts=self.thread_ts,
        )


def _one_line(value: str | None) -> str:
    return " ".join(str(value).split())


def request_from_files(
    tfvars: Mapping[str, Any], backend: Mapping[str, Any], trailers: ConfigTrailers
) -> DeploymentRequest:
    """The request whose generation gave these files (read with core.tfvars.reading.read_tfvars).
    Raises ValueError (pydantic's ValidationError) when the values are not a valid request."""
    application, _, environment = trailers.environment.partition("/")
    return DeploymentRequest(
        profile=trailers.profile,
        account_situation=trailers.account_situation,
        size=trailers.size,
        account_id=str(tfvars.get("account_id", "")),
        region=str(tfvars.get("region", "")),
        application=str(tfvars.get("application", application)),
        environment=str(tfvars.get("environment", environment)),
        additional_tags={str(k): str(v) for k, v in dict(tfvars.get("additional_tags") or {}).items()},
        vpc_cidr_block=str(tfvars.get("vpc_cidr_block", "")),
        state_bucket=str(backend.get("bucket", "")),
        lock_table=str(backend.get("dynamodb_table", "")),
    )


def generated_tfvars(
    template_text: str, request: DeploymentRequest, extra_values: Mapping[str, object] | None = None
) -> str:
    """What workspace generation writes for `request` (+ `extra_values`) from the size's sample."""
    return apply_values(template_text, values_for_request(request, extra_values))


_ABSENT = object()


def extra_values_from(committed: Mapping[str, Any], generated: Mapping[str, Any]) -> dict[str, Any]:
    """The committed tfvars values that differ from (or are absent in) what generation gives for
    the request alone: the values people gave beyond the request."""
    return {name: value for name, value in committed.items() if generated.get(name, _ABSENT) != value}


def backend_matches(request: DeploymentRequest, backend: Mapping[str, Any]) -> list[str]:
    """The tfbackend settings that are not what the request's backend would be (an empty list when
    the file is the bot's)."""
    expected = {"key": request.state_key, "region": request.region}
    return [name for name, value in expected.items() if backend.get(name) != value]
