"""Permission pre-check (workers.aws.permission_check) and the action list (core.permissions).

moto does NOT implement iam:SimulatePrincipalPolicy (it answers with an HTML 500, which botocore reports
as ResponseParserError). So the allowed / denied / paginated / AccessDenied paths use botocore's `Stubber`
on a real boto3 IAM client, and only the "simulation not available" path runs against the real moto server.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from bot.views.findings import permission_warning
from core.permissions import (
    ACTION,
    SERVICE_ACTIONS,
    PermissionCheck,
    group_by_service,
    required_actions,
    role_arn_from_session_arn,
    service_of,
)
from core.sizes import SetupSize
from tests.harness.aws import ASSUME_ROLE_ARN, OTHER_ACCOUNT, MotoServer
from workers.aws.permission_check import ACTION_CHUNK, check_permissions

SESSION_ARN = "arn:aws:sts::123456789012:assumed-role/DeployRole/ecs-deploy-bot"
ROLE_ARN = "arn:aws:iam::123456789012:role/DeployRole"


# ---------------------------------------------------------------- the action list


def test_small_has_no_elasticache_documentdb_or_vpn() -> None:
    small = required_actions(SetupSize.SMALL)
    assert not [a for a in small if a.startswith("elasticache:")]
    assert "ec2:CreateClientVpnEndpoint" not in small and "ec2:CreateFlowLogs" not in small
    assert {
        "ec2:CreateVpc",
        "ecs:CreateCluster",
        "rds:CreateDBCluster",
        "elasticfilesystem:CreateFileSystem",
    } <= set(small)


def test_medium_adds_elasticache_and_documentdb() -> None:
    small, medium = set(required_actions(SetupSize.SMALL)), set(required_actions(SetupSize.MEDIUM))
    added = medium - small
    assert "elasticache:CreateReplicationGroup" in added
    assert "rds:DescribeDBClusterParameters" in added  # DocumentDB's extra rds: action
    assert "ec2:CreateClientVpnEndpoint" not in medium


def test_large_adds_client_vpn_and_flow_logs() -> None:
    large = set(required_actions(SetupSize.LARGE))
    assert {
        "ec2:CreateClientVpnEndpoint",
        "ec2:CreateFlowLogs",
        "elasticache:CreateReplicationGroup",
    } <= large
    assert "ec2:RunInstances" not in large  # no bastion in large: the VPN replaces it


@pytest.mark.parametrize("size", list(SetupSize))
def test_actions_are_unique_and_well_formed(size: SetupSize) -> None:
    actions = required_actions(size)
    assert len(actions) == len(set(actions))
    assert all(ACTION.fullmatch(a) for a in actions), [a for a in actions if not ACTION.fullmatch(a)]
    assert all(entry.actions for entry in SERVICE_ACTIONS)


def test_group_by_service() -> None:
    grouped = group_by_service(
        ["rds:CreateDBCluster", "ec2:CreateVpc", "ec2:AllocateAddress", "ec2:CreateVpc"]
    )
    assert grouped == {"ec2": ["ec2:AllocateAddress", "ec2:CreateVpc"], "rds": ["rds:CreateDBCluster"]}
    assert list(group_by_service(["s3:A", "ecs:B", "acm:C"])) == ["acm", "ecs", "s3"]
    assert group_by_service([]) == {}
    assert service_of("garbage") == "unknown"


@pytest.mark.parametrize(
    ("arn", "path", "expected"),
    [
        (SESSION_ARN, "/", ROLE_ARN),
        (SESSION_ARN, "/team/ops/", "arn:aws:iam::123456789012:role/team/ops/DeployRole"),
        ("arn:aws-cn:sts::123456789012:assumed-role/R/s@x", "/", "arn:aws-cn:iam::123456789012:role/R"),
        ("arn:aws:iam::123456789012:user/alice", "/", "arn:aws:iam::123456789012:user/alice"),
    ],
)
def test_role_arn_from_session_arn(arn: str, path: str, expected: str) -> None:
    assert role_arn_from_session_arn(arn, path) == expected


def test_role_arn_rejects_a_bad_path() -> None:
    with pytest.raises(ValueError):
        role_arn_from_session_arn(SESSION_ARN, "team")


# ---------------------------------------------------------------- Stubber on a real IAM client


def _iam() -> tuple[Any, Stubber]:
    client = boto3.Session(aws_access_key_id="x", aws_secret_access_key="y").client(
        "iam", region_name="us-east-1", endpoint_url="http://127.0.0.1:9"
    )
    return client, Stubber(client)


def _results(actions: list[str], denied: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    return {
        "EvaluationResults": [
            {"EvalActionName": a, "EvalDecision": "implicitDeny" if a in denied else "allowed"}
            for a in actions
        ],
        "IsTruncated": False,
    }


def _get_role(stubber: Stubber, arn: str = ROLE_ARN, path: str = "/") -> None:
    stubber.add_response(
        "get_role",
        {
            "Role": {
                "Path": path,
                "RoleName": "DeployRole",
                "RoleId": "AROAEXAMPLE000000000",
                "Arn": arn,
                "CreateDate": "2024-01-01T00:00:00Z",
            }
        },
        {"RoleName": "DeployRole"},
    )


def _check_one_action(client: Any, stubber: Stubber, caller_arn: str, *, simulated: str) -> PermissionCheck:
    """The check of ecs:CreateCluster for `caller_arn`; the Stubber expects it simulated for `simulated`
    (and allowed), after whatever the test queued before."""
    stubber.add_response(
        "simulate_principal_policy",
        _results(["ecs:CreateCluster"]),
        {"PolicySourceArn": simulated, "ActionNames": ANY},
    )
    with stubber:
        return check_permissions(
            boto3.Session(), caller_arn, "small", iam_client=client, actions=["ecs:CreateCluster"]
        )


def test_all_allowed() -> None:
    """Stubber: every action allowed, chunked into SimulatePrincipalPolicy calls of ACTION_CHUNK names."""
    client, stubber = _iam()
    actions = required_actions(SetupSize.SMALL)
    _get_role(stubber)
    for start in range(0, len(actions), ACTION_CHUNK):
        chunk = actions[start : start + ACTION_CHUNK]
        stubber.add_response(
            "simulate_principal_policy", _results(chunk), {"PolicySourceArn": ROLE_ARN, "ActionNames": chunk}
        )
    with stubber:
        check = check_permissions(boto3.Session(), SESSION_ARN, SetupSize.SMALL, iam_client=client)
    stubber.assert_no_pending_responses()
    assert check.checked and check.all_allowed and check.evaluated == len(actions)
    assert check.principal_arn == ROLE_ARN
    assert len(actions) > ACTION_CHUNK  # the chunking was exercised


def test_denied_actions_grouped_by_service_and_role_path_from_get_role() -> None:
    """Stubber: explicit and implicit denies; the role's path comes from iam:GetRole."""
    client, stubber = _iam()
    pathed = "arn:aws:iam::123456789012:role/platform/DeployRole"
    actions = ["ec2:CreateVpc", "ec2:CreateNatGateway", "rds:CreateDBCluster", "ecs:CreateCluster"]
    _get_role(stubber, pathed, "/platform/")
    decisions = ["implicitDeny", "implicitDeny", "explicitDeny", "allowed"]
    response = {
        "EvaluationResults": [
            {"EvalActionName": a, "EvalDecision": d} for a, d in zip(actions, decisions, strict=True)
        ],
        "IsTruncated": False,
    }
    stubber.add_response(
        "simulate_principal_policy", response, {"PolicySourceArn": pathed, "ActionNames": actions}
    )
    with stubber:
        check = check_permissions(boto3.Session(), SESSION_ARN, "medium", iam_client=client, actions=actions)
    assert check.checked and not check.all_allowed
    assert check.principal_arn == pathed
    assert check.denied == {"ec2": ["ec2:CreateNatGateway", "ec2:CreateVpc"], "rds": ["rds:CreateDBCluster"]}
    assert check.denied_count == 3


def test_result_pages_are_all_read() -> None:
    """Stubber: a truncated first page (IsTruncated + Marker) is followed by the second."""
    client, stubber = _iam()
    actions = ["s3:CreateBucket", "kms:CreateKey"]
    _get_role(stubber)
    first = _results(actions[:1])
    first.update(IsTruncated=True, Marker="next")
    stubber.add_response(
        "simulate_principal_policy", first, {"PolicySourceArn": ROLE_ARN, "ActionNames": actions}
    )
    stubber.add_response(
        "simulate_principal_policy",
        _results(actions[1:], {"kms:CreateKey"}),
        {"PolicySourceArn": ROLE_ARN, "ActionNames": actions, "Marker": "next"},
    )
    with stubber:
        check = check_permissions(boto3.Session(), SESSION_ARN, "small", iam_client=client, actions=actions)
    assert check.evaluated == 2 and check.denied == {"kms": ["kms:CreateKey"]}


def test_get_role_denied_falls_back_to_the_plain_role_arn() -> None:
    """Stubber: GetRole is AccessDenied, so the path cannot be found: the plain role ARN is simulated."""
    client, stubber = _iam()
    stubber.add_client_error("get_role", "AccessDenied", "no", 403)
    check = _check_one_action(client, stubber, SESSION_ARN, simulated=ROLE_ARN)
    assert check.checked and check.principal_arn == ROLE_ARN


def test_user_arn_is_simulated_as_is() -> None:
    """Stubber: an IAM user needs no GetRole (an unexpected call would fail the stub)."""
    client, stubber = _iam()
    user = "arn:aws:iam::123456789012:user/alice"
    check = _check_one_action(client, stubber, user, simulated=user)
    assert check.checked and check.principal_arn == user


def test_simulation_access_denied_is_a_warning() -> None:
    """Stubber: the principal may not call iam:SimulatePrincipalPolicy."""
    client, stubber = _iam()
    _get_role(stubber)
    stubber.add_client_error("simulate_principal_policy", "AccessDenied", "not authorized", 403)
    with stubber:
        check = check_permissions(boto3.Session(), SESSION_ARN, "large", iam_client=client)
    assert not check.checked and check.denied == {}
    assert (
        permission_warning(check)
        == "Permissions could not be checked: no permission for iam:SimulatePrincipalPolicy."
    )


def test_other_simulation_errors_are_a_warning() -> None:
    """Stubber: an unexpected service error is reported, not raised."""
    client, stubber = _iam()
    stubber.add_client_error("simulate_principal_policy", "NoSuchEntity", "no such user", 404)
    with stubber:
        check = check_permissions(
            boto3.Session(),
            "arn:aws:iam::123456789012:user/gone",
            "small",
            iam_client=client,
            actions=["s3:A"],
        )
    assert not check.checked and "NoSuchEntity" in permission_warning(check)


def test_root_and_federated_callers() -> None:
    root = check_permissions(boto3.Session(), "arn:aws:iam::123456789012:root", "small")
    assert root.checked and root.denied == {} and "root" in permission_warning(root)
    federated = check_permissions(boto3.Session(), "arn:aws:sts::123456789012:federated-user/bob", "small")
    assert not federated.checked and "could not be checked" in permission_warning(federated)


# ---------------------------------------------------------------- the real moto server


def test_moto_does_not_implement_the_simulation(deployer_session: boto3.Session) -> None:
    """moto answers SimulatePrincipalPolicy with an HTML 500 → ResponseParserError → a warning, not a failure."""
    caller = deployer_session.client("sts").get_caller_identity()["Arn"]
    check = check_permissions(deployer_session, caller, SetupSize.SMALL)
    assert not check.checked
    assert permission_warning(check).startswith(
        "Permissions could not be checked: the simulation is not available"
    )
    assert "ResponseParserError" in permission_warning(check)


def test_assumed_role_in_moto_uses_get_role_for_the_path(aws: MotoServer) -> None:
    """Against moto: the assumed-role session ARN maps to the role; with the role created under a path,
    iam:GetRole supplies it. The simulation itself still falls back to a warning."""
    other = boto3.Session(profile_name="other-account", region_name="us-east-1")
    caller = other.client("sts").get_caller_identity()["Arn"]
    assert caller.startswith(f"arn:aws:sts::{OTHER_ACCOUNT}:assumed-role/DeployRole/")
    check = check_permissions(other, caller, SetupSize.SMALL)
    assert check.principal_arn == ASSUME_ROLE_ARN and not check.checked  # no such role in moto: plain form
    other.client("iam").create_role(
        RoleName="DeployRole",
        Path="/deploy/",
        AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[]}',
    )
    check = check_permissions(other, caller, SetupSize.SMALL)
    assert check.principal_arn == f"arn:aws:iam::{OTHER_ACCOUNT}:role/deploy/DeployRole"
