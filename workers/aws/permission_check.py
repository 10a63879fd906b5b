"""Permission pre-check: does the deploying principal hold every IAM action poc-idp's resources need?

Runs iam:SimulatePrincipalPolicy against `core.permissions.required_actions(size)`. When the simulation
itself cannot run (no permission to simulate, or an endpoint that does not implement it, like moto) the
result says "permissions could not be checked" as a warning; it never fails the analysis.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from aws_edge import configs
from core.permissions import (
    PermissionCaveat,
    PermissionCheck,
    group_by_service,
    required_actions,
    role_arn_from_session_arn,
    role_name_from_session_arn,
    unchecked,
)
from core.sizes import SetupSize
from workers.aws.scan import is_permission_error

ACTION_CHUNK = 50
ALLOWED = "allowed"


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _error_text(error: Exception) -> str:
    if isinstance(error, ClientError):
        err = error.response.get("Error", {})
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".rstrip(": ")
    return f"{type(error).__name__}: {error}"


def principal_arn_for(iam: Any, caller_arn: str) -> str:
    """The ARN to simulate for a caller: for an assumed-role session, its role's ARN.

    The role's path is not in the session ARN: iam:GetRole finds it when allowed, else the plain form
    `arn:aws:iam::ACCT:role/ROLE` is used.
    """
    role_name = role_name_from_session_arn(caller_arn)
    if role_name is None:
        return caller_arn
    try:
        role_arn: str = iam.get_role(RoleName=role_name)["Role"]["Arn"]
        return role_arn
    except Exception:  # no permission for iam:GetRole, no such role, …: the plain form
        return role_arn_from_session_arn(caller_arn)


def check_permissions(
    session: boto3.Session,
    caller_arn: str,
    size: SetupSize | str,
    *,
    iam_client: Any | None = None,
    actions: Sequence[str] | None = None,
) -> PermissionCheck:
    """Simulate the size's required actions for the caller; denied actions grouped by IAM service."""
    size = SetupSize(size)
    if caller_arn.endswith(":root"):
        return PermissionCheck(
            principal_arn=caller_arn,
            size=size,
            checked=True,
            caveat=PermissionCaveat.ROOT,
        )
    if ":federated-user/" in caller_arn:
        return unchecked(caller_arn, size, PermissionCaveat.FEDERATED)
    # A failing simulation is reported, not retried for long: moto answers it with an HTML 500.
    iam = iam_client or session.client("iam", config=configs.IAM_SIMULATION)
    principal = principal_arn_for(iam, caller_arn)
    wanted = list(actions) if actions is not None else required_actions(size)
    denied: list[str] = []
    evaluated = 0
    try:
        paginator = iam.get_paginator("simulate_principal_policy")
        for chunk in _chunks(wanted, ACTION_CHUNK):
            for page in paginator.paginate(PolicySourceArn=principal, ActionNames=chunk):
                for result in page.get("EvaluationResults", []):
                    evaluated += 1
                    if result.get("EvalDecision") != ALLOWED:
                        denied.append(result["EvalActionName"])
    except ClientError as error:
        if is_permission_error(error):
            return unchecked(principal, size, PermissionCaveat.NOT_ALLOWED_TO_SIMULATE)
        return unchecked(principal, size, PermissionCaveat.SIMULATION_FAILED, _error_text(error))
    except (BotoCoreError, ResponseParserError) as error:
        # e.g. an endpoint that does not implement the simulation (moto: an HTML 500, unparseable).
        return unchecked(principal, size, PermissionCaveat.SIMULATION_UNAVAILABLE, _error_text(error))
    except Exception as error:  # never fail the analysis over the pre-check
        return unchecked(principal, size, PermissionCaveat.SIMULATION_FAILED, _error_text(error))
    return PermissionCheck(
        principal_arn=principal,
        size=size,
        checked=True,
        evaluated=evaluated,
        denied=group_by_service(denied),
    )
