"""The IAM actions poc-idp's resources need, per service and setup size, and pure helpers over them.

One list, used by the permission pre-check (iam:SimulatePrincipalPolicy) and by the analysis summary.
The setup size decides which services count (its setup-size guide): small has no
ElastiCache, DocumentDB or Client VPN; medium adds ElastiCache and DocumentDB; large adds Client VPN and
VPC flow logs. DocumentDB is managed through the `rds:` IAM prefix, like Aurora.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, Field

from core.sizes import SetupSize
from core.values import Value

ALL_SIZES = frozenset(SetupSize)
MEDIUM_UP = frozenset({SetupSize.MEDIUM, SetupSize.LARGE})
LARGE_ONLY = frozenset({SetupSize.LARGE})

ACTION = re.compile(r"[a-z0-9-]+:[A-Za-z0-9*]+")


class ServiceActions(Value):
    """The actions one poc-idp component needs, and the sizes that create it."""

    component: str
    sizes: frozenset[SetupSize]
    actions: tuple[str, ...]


SERVICE_ACTIONS: tuple[ServiceActions, ...] = (
    ServiceActions(
        component="Terraform state backend",
        sizes=ALL_SIZES,
        actions=(
            "s3:ListBucket",
            "s3:GetObject",
            "s3:PutObject",
            "s3:DeleteObject",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:DeleteItem",
            "sts:GetCallerIdentity",
        ),
    ),
    ServiceActions(
        component="VPC and subnets",
        sizes=ALL_SIZES,
        actions=(
            "ec2:CreateVpc",
            "ec2:DeleteVpc",
            "ec2:DescribeVpcs",
            "ec2:ModifyVpcAttribute",
            "ec2:DescribeVpcAttribute",
            "ec2:CreateSubnet",
            "ec2:DeleteSubnet",
            "ec2:DescribeSubnets",
            "ec2:ModifySubnetAttribute",
            "ec2:DescribeAvailabilityZones",
            "ec2:CreateInternetGateway",
            "ec2:AttachInternetGateway",
            "ec2:DetachInternetGateway",
            "ec2:DeleteInternetGateway",
            "ec2:DescribeInternetGateways",
            "ec2:CreateRouteTable",
            "ec2:DeleteRouteTable",
            "ec2:CreateRoute",
            "ec2:DeleteRoute",
            "ec2:AssociateRouteTable",
            "ec2:DisassociateRouteTable",
            "ec2:DescribeRouteTables",
            "ec2:CreateSecurityGroup",
            "ec2:DeleteSecurityGroup",
            "ec2:DescribeSecurityGroups",
            "ec2:AuthorizeSecurityGroupIngress",
            "ec2:AuthorizeSecurityGroupEgress",
            "ec2:RevokeSecurityGroupIngress",
            "ec2:RevokeSecurityGroupEgress",
            "ec2:CreateTags",
            "ec2:DeleteTags",
            "ec2:CreateVpcEndpoint",
            "ec2:DeleteVpcEndpoints",
            "ec2:DescribeVpcEndpoints",
            "ec2:DescribePrefixLists",
        ),
    ),
    ServiceActions(
        component="NAT gateways and Elastic IPs",
        sizes=ALL_SIZES,
        actions=(
            "ec2:AllocateAddress",
            "ec2:ReleaseAddress",
            "ec2:DescribeAddresses",
            "ec2:CreateNatGateway",
            "ec2:DeleteNatGateway",
            "ec2:DescribeNatGateways",
        ),
    ),
    ServiceActions(
        component="ECS cluster and services",
        sizes=ALL_SIZES,
        actions=(
            "ecs:CreateCluster",
            "ecs:DeleteCluster",
            "ecs:DescribeClusters",
            "ecs:RegisterTaskDefinition",
            "ecs:DeregisterTaskDefinition",
            "ecs:DescribeTaskDefinition",
            "ecs:CreateService",
            "ecs:UpdateService",
            "ecs:DeleteService",
            "ecs:DescribeServices",
            "ecs:TagResource",
            "application-autoscaling:RegisterScalableTarget",
            "application-autoscaling:PutScalingPolicy",
            "application-autoscaling:DescribeScalableTargets",
            "servicediscovery:CreatePrivateDnsNamespace",
            "servicediscovery:GetNamespace",
            "servicediscovery:DeleteNamespace",
        ),
    ),
    ServiceActions(
        component="Application load balancer",
        sizes=ALL_SIZES,
        actions=(
            "elasticloadbalancing:CreateLoadBalancer",
            "elasticloadbalancing:DeleteLoadBalancer",
            "elasticloadbalancing:DescribeLoadBalancers",
            "elasticloadbalancing:ModifyLoadBalancerAttributes",
            "elasticloadbalancing:CreateTargetGroup",
            "elasticloadbalancing:DeleteTargetGroup",
            "elasticloadbalancing:DescribeTargetGroups",
            "elasticloadbalancing:CreateListener",
            "elasticloadbalancing:DeleteListener",
            "elasticloadbalancing:CreateRule",
            "elasticloadbalancing:DeleteRule",
            "elasticloadbalancing:AddTags",
        ),
    ),
    ServiceActions(
        component="ECR repositories",
        sizes=ALL_SIZES,
        actions=(
            "ecr:CreateRepository",
            "ecr:DeleteRepository",
            "ecr:DescribeRepositories",
            "ecr:PutLifecyclePolicy",
            "ecr:TagResource",
        ),
    ),
    ServiceActions(
        component="Aurora PostgreSQL",
        sizes=ALL_SIZES,
        actions=(
            "rds:CreateDBCluster",
            "rds:DeleteDBCluster",
            "rds:ModifyDBCluster",
            "rds:DescribeDBClusters",
            "rds:CreateDBInstance",
            "rds:DeleteDBInstance",
            "rds:DescribeDBInstances",
            "rds:CreateDBSubnetGroup",
            "rds:DeleteDBSubnetGroup",
            "rds:CreateDBClusterParameterGroup",
            "rds:DeleteDBClusterParameterGroup",
            "rds:DescribeDBEngineVersions",
            "rds:AddTagsToResource",
        ),
    ),
    ServiceActions(
        component="EFS",
        sizes=ALL_SIZES,
        actions=(
            "elasticfilesystem:CreateFileSystem",
            "elasticfilesystem:DeleteFileSystem",
            "elasticfilesystem:DescribeFileSystems",
            "elasticfilesystem:CreateMountTarget",
            "elasticfilesystem:DeleteMountTarget",
            "elasticfilesystem:DescribeMountTargets",
        ),
    ),
    ServiceActions(
        component="S3 buckets",
        sizes=ALL_SIZES,
        actions=(
            "s3:CreateBucket",
            "s3:DeleteBucket",
            "s3:PutBucketPolicy",
            "s3:PutBucketPublicAccessBlock",
            "s3:PutEncryptionConfiguration",
            "s3:PutBucketVersioning",
            "s3:PutBucketTagging",
        ),
    ),
    ServiceActions(
        component="KMS, secrets and parameters",
        sizes=ALL_SIZES,
        actions=(
            "kms:CreateKey",
            "kms:CreateAlias",
            "kms:DescribeKey",
            "kms:ScheduleKeyDeletion",
            "kms:PutKeyPolicy",
            "secretsmanager:CreateSecret",
            "secretsmanager:DeleteSecret",
            "secretsmanager:PutSecretValue",
            "secretsmanager:DescribeSecret",
            "ssm:PutParameter",
            "ssm:GetParameter",
            "ssm:DeleteParameter",
        ),
    ),
    ServiceActions(
        component="IAM roles and policies",
        sizes=ALL_SIZES,
        actions=(
            "iam:CreateRole",
            "iam:DeleteRole",
            "iam:GetRole",
            "iam:PassRole",
            "iam:CreatePolicy",
            "iam:DeletePolicy",
            "iam:AttachRolePolicy",
            "iam:DetachRolePolicy",
            "iam:PutRolePolicy",
            "iam:CreateInstanceProfile",
            "iam:AddRoleToInstanceProfile",
            "iam:CreateServiceLinkedRole",
        ),
    ),
    ServiceActions(
        component="Monitoring",
        sizes=ALL_SIZES,
        actions=(
            "logs:CreateLogGroup",
            "logs:DeleteLogGroup",
            "logs:PutRetentionPolicy",
            "logs:DescribeLogGroups",
            "cloudwatch:PutMetricAlarm",
            "cloudwatch:DeleteAlarms",
            "sns:CreateTopic",
            "sns:DeleteTopic",
            "sns:Subscribe",
        ),
    ),
    ServiceActions(
        component="DNS, certificates and CDN",
        sizes=ALL_SIZES,
        actions=(
            "route53:ListHostedZones",
            "route53:ChangeResourceRecordSets",
            "route53:GetChange",
            "acm:RequestCertificate",
            "acm:DescribeCertificate",
            "acm:DeleteCertificate",
            "cloudfront:CreateDistribution",
            "cloudfront:UpdateDistribution",
            "cloudfront:DeleteDistribution",
            "cloudfront:CreateOriginAccessControl",
        ),
    ),
    ServiceActions(
        component="Bastion host",
        sizes=frozenset({SetupSize.SMALL, SetupSize.MEDIUM}),
        actions=(
            "ec2:RunInstances",
            "ec2:TerminateInstances",
            "ec2:DescribeInstances",
            "ec2:CreateKeyPair",
            "ec2:DeleteKeyPair",
            "ec2:AssociateAddress",
        ),
    ),
    ServiceActions(
        component="AWS Backup",
        sizes=MEDIUM_UP,
        actions=(
            "backup:CreateBackupVault",
            "backup:DeleteBackupVault",
            "backup:CreateBackupPlan",
            "backup:DeleteBackupPlan",
            "backup:CreateBackupSelection",
        ),
    ),
    ServiceActions(
        component="ElastiCache Redis",
        sizes=MEDIUM_UP,
        actions=(
            "elasticache:CreateReplicationGroup",
            "elasticache:DeleteReplicationGroup",
            "elasticache:ModifyReplicationGroup",
            "elasticache:DescribeReplicationGroups",
            "elasticache:DescribeCacheClusters",
            "elasticache:CreateCacheSubnetGroup",
            "elasticache:DeleteCacheSubnetGroup",
            "elasticache:AddTagsToResource",
        ),
    ),
    ServiceActions(
        component="DocumentDB",
        sizes=MEDIUM_UP,
        actions=(
            # DocumentDB's control plane is authorised with the rds: prefix.
            "rds:CreateDBCluster",
            "rds:DeleteDBCluster",
            "rds:DescribeDBClusters",
            "rds:CreateDBInstance",
            "rds:DeleteDBInstance",
            "rds:CreateDBSubnetGroup",
            "rds:DeleteDBSubnetGroup",
            "rds:CreateDBClusterParameterGroup",
            "rds:DescribeDBClusterParameters",
        ),
    ),
    ServiceActions(
        component="Client VPN",
        sizes=LARGE_ONLY,
        actions=(
            "ec2:CreateClientVpnEndpoint",
            "ec2:DeleteClientVpnEndpoint",
            "ec2:DescribeClientVpnEndpoints",
            "ec2:AssociateClientVpnTargetNetwork",
            "ec2:AuthorizeClientVpnIngress",
            "acm:ImportCertificate",
        ),
    ),
    ServiceActions(
        component="VPC flow logs",
        sizes=LARGE_ONLY,
        actions=(
            "ec2:CreateFlowLogs",
            "ec2:DeleteFlowLogs",
            "ec2:DescribeFlowLogs",
        ),
    ),
)


def components_for_size(size: SetupSize | str) -> list[ServiceActions]:
    size = SetupSize(size)
    return [entry for entry in SERVICE_ACTIONS if size in entry.sizes]


def required_actions(size: SetupSize | str) -> list[str]:
    """Every action the size's resources need, each once, in list order."""
    seen: dict[str, None] = {}
    for entry in components_for_size(size):
        for action in entry.actions:
            seen.setdefault(action, None)
    return list(seen)


def service_of(action: str) -> str:
    """The IAM service prefix of an action (`ec2:CreateVpc` → `ec2`)."""
    prefix, sep, _ = action.partition(":")
    return prefix.lower() if sep else "unknown"


def group_by_service(actions: Iterable[str]) -> dict[str, list[str]]:
    """Group actions by IAM service prefix: sorted services, sorted unique actions within each."""
    grouped: dict[str, set[str]] = {}
    for action in actions:
        grouped.setdefault(service_of(action), set()).add(action)
    return {service: sorted(grouped[service]) for service in sorted(grouped)}


class PermissionCaveat(StrEnum):
    """Why the pre-check could not run, or (ROOT) why it did not need to."""

    ROOT = "root"  # the root user may call every action (deploying as root is discouraged)
    FEDERATED = "federated"  # a federated-user session cannot be simulated
    NOT_ALLOWED_TO_SIMULATE = "not_allowed_to_simulate"  # no permission for iam:SimulatePrincipalPolicy
    SIMULATION_UNAVAILABLE = "simulation_unavailable"  # the endpoint does not implement it (e.g. moto)
    SIMULATION_FAILED = "simulation_failed"


class PermissionCheck(BaseModel):
    """Outcome of the permission pre-check.

    `checked` is False when the simulation could not run (no permission to simulate, or the endpoint does
    not implement it); `caveat` then says why (with the service's `error`, when there was one). That is a
    warning, never a failure; `bot.views.findings.permission_warning` words it.
    """

    principal_arn: str
    size: SetupSize
    checked: bool
    evaluated: int = 0
    denied: dict[str, list[str]] = Field(default_factory=dict)
    caveat: PermissionCaveat | None = None
    error: str = ""

    @property
    def denied_count(self) -> int:
        return sum(len(actions) for actions in self.denied.values())

    @property
    def all_allowed(self) -> bool:
        return self.checked and not self.denied


def unchecked(
    principal_arn: str, size: SetupSize | str, caveat: PermissionCaveat, error: str = ""
) -> PermissionCheck:
    return PermissionCheck(
        principal_arn=principal_arn, size=SetupSize(size), checked=False, caveat=caveat, error=error
    )


ASSUMED_ROLE = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):sts::(?P<account>\d{12}):assumed-role/(?P<role>[^/]+)/(?P<session>.+)"
)


def role_arn_from_session_arn(arn: str, path: str = "/") -> str:
    """`arn:aws:sts::ACCT:assumed-role/ROLE/SESSION` → `arn:aws:iam::ACCT:role{path}ROLE`.

    Any other ARN is returned unchanged. A role's path is not part of the session ARN; pass it when known.
    """
    match = ASSUMED_ROLE.fullmatch(arn)
    if not match:
        return arn
    if not path.startswith("/") or not path.endswith("/"):
        raise ValueError(f"An IAM path starts and ends with '/' (got '{path}').")
    return f"arn:{match['partition']}:iam::{match['account']}:role{path}{match['role']}"


def role_name_from_session_arn(arn: str) -> str | None:
    match = ASSUMED_ROLE.fullmatch(arn)
    return match["role"] if match else None
