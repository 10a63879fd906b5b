"""The policy file as the operator writes it: every field optional (None means "inherit" from
`defaults`), unknown keys refused, and each Slack id, role ARN, session name, external id, profile and
environment name checked where it is written.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from core import validation
from core.policy.mcp_clients import McpClientList
from core.policy.principals import EVERYONE, USER_ID, USERGROUP_ID
from core.values import Value

# Partitions: aws, aws-cn, aws-us-gov, aws-iso, aws-iso-b, aws-iso-e, aws-iso-f, aws-eusc.
ROLE_ARN = re.compile(r"arn:aws(-[a-z]+)*:iam::\d{12}:role/([\w+=,.@-]+/)*[\w+=,.@-]{1,64}")
SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}")
EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}")
ENVIRONMENT_PATTERN = re.compile(r"[a-z0-9*?-]{1,64}")
MAX_REQUIRED_APPROVALS = 10
MIN_DRIFT_INTERVAL = 60  # seconds: a drift check runs two Terraform plans
MAX_DRIFT_INTERVAL = 30 * 24 * 3600


def _check_principal(value: str) -> str:
    if value == EVERYONE or USER_ID.fullmatch(value) or USERGROUP_ID.fullmatch(value):
        return value
    raise ValueError(
        f"'{value}' is not a Slack id: use a member id like U012AB3CD (or W… on Enterprise Grid), a user"
        ' group id like S012AB3CD, or "*" for everyone (quoted).'
    )


def _matching(pattern: re.Pattern[str], problem: str) -> AfterValidator:
    """A check that the whole value matches `pattern`; `problem` says why not (`{value}`: the value)."""

    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(problem.format(value=value))
        return value

    return AfterValidator(check)


def is_pattern(key: str) -> bool:
    return "*" in key or "?" in key


def _check_env(value: str) -> str:
    if is_pattern(value):
        if not ENVIRONMENT_PATTERN.fullmatch(value):
            raise ValueError(
                f"'{value}' is not a valid environment pattern: use a-z, 0-9, '-' and the wildcards * and ?"
                ' (quoted, e.g. "feature-*").'
            )
        return value
    try:
        return validation.check_environment(value)
    except ValueError as exc:
        raise ValueError(f"'{value}' is not a valid environment name: {exc}") from None


def _check_drift_interval(value: int) -> int:
    if value != 0 and not MIN_DRIFT_INTERVAL <= value <= MAX_DRIFT_INTERVAL:
        raise ValueError(
            f"{value} is not a drift interval: seconds between drift checks, 0 (no scheduled checks) or"
            f" {MIN_DRIFT_INTERVAL}-{MAX_DRIFT_INTERVAL} (a minute to 30 days; 21600 is 6 h)"
        )
    return value


SlackPrincipal = Annotated[str, AfterValidator(_check_principal)]
ProfileName = Annotated[
    str,
    _matching(
        validation.PROFILE, "'{value}' is not an AWS profile name (letters, digits and _.+@-, at most 64)."
    ),
]
RoleArn = Annotated[
    str,
    _matching(ROLE_ARN, "'{value}' is not an IAM role ARN (expected arn:aws:iam::123456789012:role/NAME)."),
]
ExternalId = Annotated[
    str, _matching(EXTERNAL_ID, "an external id is 2-1224 characters of letters, digits and _+=,.@:/-")
]
SessionName = Annotated[
    str, _matching(SESSION_NAME, "a role session name is 2-64 characters of letters, digits and _+=,.@-")
]
EnvironmentName = Annotated[str, AfterValidator(_check_env)]
Approvals = Annotated[int, Field(ge=1, le=MAX_REQUIRED_APPROVALS)]
DriftInterval = Annotated[int, AfterValidator(_check_drift_interval)]


class _FileModel(Value):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Rules(_FileModel):
    """The rules a profile sets for its environments, which an environment's own entry may set again."""

    required_approvals: Approvals | None = None
    approvers: list[SlackPrincipal] | None = None
    allow_self_approval: bool | None = None
    # Destroys (issue 13): never from Slack when protected; else destroy_approvals distinct approvers
    # (default 2), the requester not among them unless allow_self_destroy_approval.
    protected: bool | None = None
    destroy_approvals: Approvals | None = None
    allow_self_destroy_approval: bool | None = None
    # Drift (issue 14): seconds between scheduled drift checks, 0 = none; None: the profile's, else
    # ECS_DEPLOY_DRIFT_INTERVAL. A pattern may set it too (like protected).
    drift_interval: DriftInterval | None = None


class EnvironmentFile(_Rules):
    """An entry of a profile's `environments`: its own rules (None: the profile's)."""


class ProfileFile(_Rules):
    requesters: list[SlackPrincipal] | None = None
    allow_everyone: bool | None = None
    environments: dict[EnvironmentName, EnvironmentFile | None] | None = None
    assume_role_arn: RoleArn | None = None
    external_id: ExternalId | None = None
    session_name: SessionName | None = None


class PolicyFile(_FileModel):
    version: Literal[1] = 1
    defaults: ProfileFile | None = None
    profiles: dict[ProfileName, ProfileFile | None]
    mcp_clients: McpClientList | None = None  # core.policy.mcp_clients


ALLOWED_KEYS: dict[type[BaseModel], str] = {
    model: ", ".join(model.model_fields) for model in (EnvironmentFile, ProfileFile, PolicyFile)
}
