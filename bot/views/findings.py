"""The words of an account analysis: what each finding says, the recommendations, the notes on what
could not be checked, the labels of verdicts and resource kinds, a scan section's one-line summary
and the permission pre-check's caveat. `core.analysis` returns the facts; `bot.views.analysis` lays
these lines out (Block Kit and the full-text report).
"""

from __future__ import annotations

from typing import NamedTuple

from core.analysis.report import (
    ActionsDenied,
    AnalysisReport,
    CidrOverlap,
    Conflict,
    ElasticIpsShort,
    NameClash,
    NatGatewaysShort,
    NoFreeCidr,
    NotChecked,
    NotNewAccount,
    TooFewZones,
    Verdict,
    VpcQuotaReached,
)
from core.analysis.scan import Quota, ResourceKind, SectionResult, SectionStatus
from core.permissions import PermissionCaveat, PermissionCheck
from core.sizes import SetupSize, size_profile


class VerdictWords(NamedTuple):
    icon: str
    label: str  # "safe to deploy"
    explained: str  # under the summary's verdict


VERDICT_WORDS: dict[Verdict, VerdictWords] = {
    Verdict.SAFE: VerdictWords(
        ":white_check_mark:", "safe to deploy", "Nothing in the account conflicts with this deployment."
    ),
    Verdict.ADJUSTMENTS_NEEDED: VerdictWords(
        ":warning:",
        "adjustments needed",
        "Nothing blocks the deployment, but some values should change. Review the warnings below.",
    ),
    Verdict.BLOCKED: VerdictWords(
        ":no_entry:", "blocked", "The deployment cannot go ahead until the blocking findings are resolved."
    ),
}
KIND_LABELS: dict[ResourceKind, str] = {
    ResourceKind.VPC: "VPCs",
    ResourceKind.SUBNET: "Subnets",
    ResourceKind.NAT_GATEWAY: "NAT gateways",
    ResourceKind.ELASTIC_IP: "Elastic IPs",
    ResourceKind.AVAILABILITY_ZONE: "Availability zones",
    ResourceKind.RDS_CLUSTER: "RDS/Aurora clusters",
    ResourceKind.RDS_INSTANCE: "RDS instances (not in a cluster)",
    ResourceKind.ELASTICACHE_REPLICATION_GROUP: "ElastiCache replication groups",
    ResourceKind.ELASTICACHE_CLUSTER: "ElastiCache cache clusters",
    ResourceKind.DOCDB_CLUSTER: "DocumentDB clusters",
    ResourceKind.ECS_CLUSTER: "ECS clusters",
    ResourceKind.LOAD_BALANCER: "Application load balancers",
    ResourceKind.ECR_REPOSITORY: "ECR repositories",
    ResourceKind.S3_BUCKET: "S3 buckets",
    ResourceKind.EFS_FILE_SYSTEM: "EFS file systems",
}
# IAM service prefixes (the grouping key of denied actions) as people know them.
SERVICE_LABELS: dict[str, str] = {
    "acm": "ACM (certificates)",
    "application-autoscaling": "Application Auto Scaling",
    "backup": "AWS Backup",
    "cloudfront": "CloudFront",
    "cloudwatch": "CloudWatch alarms",
    "ec2": "EC2 / VPC",
    "ecr": "ECR",
    "ecs": "ECS",
    "elasticache": "ElastiCache",
    "elasticfilesystem": "EFS",
    "elasticloadbalancing": "Elastic Load Balancing",
    "iam": "IAM",
    "kms": "KMS",
    "logs": "CloudWatch Logs",
    "rds": "RDS / Aurora / DocumentDB",
    "route53": "Route 53",
    "s3": "S3",
    "secretsmanager": "Secrets Manager",
    "servicediscovery": "Cloud Map",
    "sns": "SNS",
    "ssm": "SSM Parameter Store",
    "sts": "STS",
    "dynamodb": "DynamoDB (state lock)",
}
# What a section not scanned leaves unchecked (core.analysis.analyse.COVERED_BY).
UNCHECKED_BY_SECTION = {
    "vpcs": "CIDR overlap and the VPC quota",
    "availability_zones": "The number of availability zones",
}
NOT_CHECKED = "Permissions could not be checked"
CAVEATS: dict[PermissionCaveat, str] = {
    PermissionCaveat.ROOT: "The root user may call every action (deploying as root is discouraged).",
    PermissionCaveat.FEDERATED: f"{NOT_CHECKED}: a federated-user session cannot be simulated.",
    PermissionCaveat.NOT_ALLOWED_TO_SIMULATE: f"{NOT_CHECKED}: no permission for iam:SimulatePrincipalPolicy.",
    PermissionCaveat.SIMULATION_UNAVAILABLE: f"{NOT_CHECKED}: the simulation is not available ({{error}}).",
    PermissionCaveat.SIMULATION_FAILED: f"{NOT_CHECKED}: the simulation failed ({{error}}).",
}


def verdict_label(verdict: Verdict) -> str:
    return VERDICT_WORDS[verdict].label


def kind_label(kind: ResourceKind) -> str:
    return KIND_LABELS[kind]


def service_label(prefix: str) -> str:
    return SERVICE_LABELS.get(prefix, prefix)


def section_summary(section: SectionResult) -> str:
    """One scan section's outcome: its count and time, or why it was not scanned."""
    if section.status is SectionStatus.NO_PERMISSION:
        return f"not scanned: no permission for {section.iam_action}"
    if section.status is SectionStatus.ERROR:
        return f"not scanned: error: {section.error}"
    if section.status is SectionStatus.FALLBACK:
        return f"used the documented default ({section.error})"
    return f"{section.count if section.count is not None else 'ok'} in {section.elapsed_s:.2f}s"


def section_line(section: SectionResult) -> str:
    return f"{section.title}: {section_summary(section)}"


def permission_warning(check: PermissionCheck) -> str:
    """The pre-check's caveat (why it could not run, or that root needs none); empty when it has none."""
    if check.caveat is None:
        return "" if check.checked else f"{NOT_CHECKED}."
    return CAVEATS[check.caveat].format(error=check.error)


def _quota_text(quota: Quota) -> str:
    if quota.fell_back:
        return f"the documented default quota of {quota.value} (the actual quota could not be read)"
    return f"the quota of {quota.value}"


def _setup(size: SetupSize) -> str:
    return f"The {size_profile(size).title.lower()} setup"


def _more(items: tuple[str, ...], shown: int) -> str:
    return ", ".join(items[:shown]) + (f" and {len(items) - shown} more" if len(items) > shown else "")


def conflict_text(conflict: Conflict) -> str:
    """What one finding says, in a sentence."""
    match conflict.fact:
        case CidrOverlap() as f:
            label = f"{f.vpc_id} ({f.vpc_name})" if f.vpc_name else f.vpc_id
            which = "secondary" if f.secondary else "primary"
            return f"VPC CIDR {f.cidr} overlaps {label}'s {which} CIDR block {f.block}."
        case NoFreeCidr():
            return "Every candidate /16 (10.x, 172.16-31.x, 192.168.x) overlaps an existing VPC."
        case NameClash() as f:
            why = (
                f"starts with '{f.prefix}', the prefix poc-idp generates for {f.application}/{f.environment}"
                if f.prefix is not None
                else f"contains the application name '{f.application}'"
            )
            return f"{kind_label(f.kind)[:-1]} '{f.name}' {why}."
        case VpcQuotaReached() as f:
            return (
                f"{f.existing} VPCs already exist in {f.region}, at {_quota_text(f.quota)} VPCs per region:"
                " poc-idp needs 1 more. Request a quota increase or use another region."
            )
        case ElasticIpsShort() as f:
            return (
                f"{_setup(f.size)} needs {f.needed} Elastic IP(s) for its NAT gateway(s); {f.allocated} are"
                f" allocated of {_quota_text(f.quota)}, leaving {f.left}."
            )
        case NatGatewaysShort() as f:
            return (
                f"{_setup(f.size)} needs {f.needed} NAT gateway(s), one per AZ, but only {f.zones_with_room}"
                f" AZ(s) are below {_quota_text(f.quota)} NAT gateways per AZ ({f.nat_gateways} NAT gateways"
                " exist)."
            )
        case TooFewZones() as f:
            listed = ", ".join(f.zones) or "none"
            return (
                f"{f.region} has {len(f.zones)} available AZ(s) ({listed}); poc-idp's templates need"
                f" {f.needed}. Choose another region."
            )
        case NotNewAccount() as f:
            names = _more(tuple(r.display for r in f.found), 3)
            return (
                f"The account was described as brand new, but it has {len(f.found)} non-default resource(s):"
                f" {names}. Run the full analysis before deploying."
            )
        case ActionsDenied() as f:
            suffix = " (overridden by a lead)" if f.overridden else ""
            return f"{service_label(f.service)}: {len(f.actions)} action(s) denied: {_more(f.actions, 5)}{suffix}."
        case NotChecked() as f:
            what = UNCHECKED_BY_SECTION.get(f.section.name, f.section.title)
            return f"{what} not checked: {f.section.title} {section_summary(f.section)}."


def recommendation_lines(report: AnalysisReport) -> list[str]:
    """What the analysis recommends changing, and why, a line each (the changes themselves are in
    `report.recommended_changes`)."""
    changes = report.recommended_changes
    lines = []
    if "vpc_cidr_block" in changes:
        lines.append(
            f"Use VPC CIDR {changes['vpc_cidr_block']} instead of {report.vpc_cidr_block}: it is the first /16"
            " in the runbook's order that overlaps no existing VPC."
        )
    if report.names_unresolved:
        lines.append("No alternative application/environment name was found; choose one yourself.")
    if "application" in changes:
        lines.append(
            f"Rename the application '{report.application}' → '{changes['application']}': no existing"
            " resource uses that name or its poc-idp prefix."
        )
    if "environment" in changes:
        lines.append(f"Rename the environment '{report.environment}' → '{changes['environment']}'.")
    return lines


def note_lines(report: AnalysisReport) -> list[str]:
    """What could not be checked, or was checked against a documented default."""
    notes = []
    if report.skipped_sections:
        notes.append(f"{len(report.skipped_sections)} section(s) not scanned for lack of permission.")
    if report.failed_sections:
        notes.append(f"{len(report.failed_sections)} section(s) failed to scan.")
    for quota in report.fallback_quotas:
        notes.append(f"{quota.name}: used the documented default of {quota.value} ({quota.reason}).")
    if report.permissions is not None and not report.permissions.checked:
        notes.append(permission_warning(report.permissions))
    return notes
