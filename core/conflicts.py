"""Account analysis: what a scan found, the conflicts it has with a deployment request, and the verdict.

Pure rules over pydantic models. `workers.aws.scan` fills an `AccountScan`; `analyse_account` turns it
(plus the permission pre-check) into an `AnalysisReport` that `bot.views.analysis` renders.
Rules follow poc-idp's naming conventions and its checklist for existing accounts.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core import validation
from core.models import AccountSituation, DeploymentRequest
from core.permissions import PermissionCheck, service_label
from core.sizes import SetupSize, size_profile

DEFAULT_VPC_CIDR = "172.31.0.0/16"  # what AWS gives every region's default VPC
REQUIRED_AZS = 3  # poc-idp's fixed layout: public/private/database subnets in 3 AZs

# Documented defaults used when Service Quotas cannot be read.
VPC_QUOTA_CODE, VPC_QUOTA_DEFAULT = "L-F678F1CE", 5  # vpc: VPCs per Region
EIP_QUOTA_CODE, EIP_QUOTA_DEFAULT = "L-0263D0A3", 5  # ec2: EC2-VPC Elastic IPs
NAT_QUOTA_CODE, NAT_QUOTA_DEFAULT = "L-FE5A380F", 5  # vpc: NAT gateways per Availability Zone


# --------------------------------------------------------------------------------------------------
# What a scan found
# --------------------------------------------------------------------------------------------------


class ScanGroup(StrEnum):
    NETWORK = "network"
    DATABASES = "databases"
    APPLICATION = "application"
    STORAGE = "storage"


class SectionStatus(StrEnum):
    SCANNED = "scanned"
    NO_PERMISSION = "no_permission"
    ERROR = "error"
    FALLBACK = "fallback"  # a quota that could not be read: the documented default was used


class ResourceKind(StrEnum):
    VPC = "vpc"
    SUBNET = "subnet"
    NAT_GATEWAY = "nat_gateway"
    ELASTIC_IP = "elastic_ip"
    AVAILABILITY_ZONE = "availability_zone"
    RDS_CLUSTER = "rds_cluster"
    RDS_INSTANCE = "rds_instance"
    ELASTICACHE_REPLICATION_GROUP = "elasticache_replication_group"
    ELASTICACHE_CLUSTER = "elasticache_cluster"
    DOCDB_CLUSTER = "docdb_cluster"
    ECS_CLUSTER = "ecs_cluster"
    LOAD_BALANCER = "load_balancer"
    ECR_REPOSITORY = "ecr_repository"
    S3_BUCKET = "s3_bucket"
    EFS_FILE_SYSTEM = "efs_file_system"

    @property
    def label(self) -> str:
        return KIND_LABELS[self]


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


class SectionSpec(BaseModel):
    """One scan section: one API listing, the IAM action it needs, and the kind of resource it lists."""

    model_config = ConfigDict(frozen=True)

    name: str
    title: str
    group: ScanGroup
    iam_action: str
    kind: ResourceKind | None = None


SECTIONS: tuple[SectionSpec, ...] = (
    SectionSpec(name="vpcs", title="VPCs", group=ScanGroup.NETWORK, iam_action="ec2:DescribeVpcs",
                kind=ResourceKind.VPC),
    SectionSpec(name="subnets", title="Subnets", group=ScanGroup.NETWORK, iam_action="ec2:DescribeSubnets",
                kind=ResourceKind.SUBNET),
    SectionSpec(name="nat_gateways", title="NAT gateways", group=ScanGroup.NETWORK,
                iam_action="ec2:DescribeNatGateways", kind=ResourceKind.NAT_GATEWAY),
    SectionSpec(name="availability_zones", title="Availability zones", group=ScanGroup.NETWORK,
                iam_action="ec2:DescribeAvailabilityZones", kind=ResourceKind.AVAILABILITY_ZONE),
    SectionSpec(name="elastic_ips", title="Elastic IPs", group=ScanGroup.NETWORK,
                iam_action="ec2:DescribeAddresses", kind=ResourceKind.ELASTIC_IP),
    SectionSpec(name="vpc_quota", title="VPCs-per-region quota", group=ScanGroup.NETWORK,
                iam_action="servicequotas:GetServiceQuota"),
    SectionSpec(name="eip_quota", title="Elastic IP quota", group=ScanGroup.NETWORK,
                iam_action="servicequotas:GetServiceQuota"),
    SectionSpec(name="nat_quota", title="NAT-gateways-per-AZ quota", group=ScanGroup.NETWORK,
                iam_action="servicequotas:GetServiceQuota"),
    SectionSpec(name="rds_clusters", title="RDS/Aurora clusters", group=ScanGroup.DATABASES,
                iam_action="rds:DescribeDBClusters", kind=ResourceKind.RDS_CLUSTER),
    SectionSpec(name="rds_instances", title="RDS instances", group=ScanGroup.DATABASES,
                iam_action="rds:DescribeDBInstances", kind=ResourceKind.RDS_INSTANCE),
    SectionSpec(name="elasticache_replication_groups", title="ElastiCache replication groups",
                group=ScanGroup.DATABASES, iam_action="elasticache:DescribeReplicationGroups",
                kind=ResourceKind.ELASTICACHE_REPLICATION_GROUP),
    SectionSpec(name="elasticache_cache_clusters", title="ElastiCache cache clusters",
                group=ScanGroup.DATABASES, iam_action="elasticache:DescribeCacheClusters",
                kind=ResourceKind.ELASTICACHE_CLUSTER),
    SectionSpec(name="docdb_clusters", title="DocumentDB clusters", group=ScanGroup.DATABASES,
                iam_action="rds:DescribeDBClusters", kind=ResourceKind.DOCDB_CLUSTER),
    SectionSpec(name="ecs_clusters", title="ECS clusters", group=ScanGroup.APPLICATION,
                iam_action="ecs:ListClusters", kind=ResourceKind.ECS_CLUSTER),
    SectionSpec(name="load_balancers", title="Application load balancers", group=ScanGroup.APPLICATION,
                iam_action="elasticloadbalancing:DescribeLoadBalancers", kind=ResourceKind.LOAD_BALANCER),
    SectionSpec(name="ecr_repositories", title="ECR repositories", group=ScanGroup.APPLICATION,
                iam_action="ecr:DescribeRepositories", kind=ResourceKind.ECR_REPOSITORY),
    SectionSpec(name="s3_buckets", title="S3 buckets", group=ScanGroup.STORAGE,
                iam_action="s3:ListAllMyBuckets", kind=ResourceKind.S3_BUCKET),
    SectionSpec(name="efs_file_systems", title="EFS file systems", group=ScanGroup.STORAGE,
                iam_action="elasticfilesystem:DescribeFileSystems", kind=ResourceKind.EFS_FILE_SYSTEM),
)  # fmt: skip
SECTIONS_BY_NAME: dict[str, SectionSpec] = {spec.name: spec for spec in SECTIONS}
SECTION_OF_KIND: dict[ResourceKind, str] = {spec.kind: spec.name for spec in SECTIONS if spec.kind}
QUOTA_SECTIONS = ("vpc_quota", "eip_quota", "nat_quota")
# What the brand-new-account check needs: enough to see whether anything non-default exists.
FRESH_ACCOUNT_SECTIONS = ("vpcs", "ecs_clusters", "rds_clusters", "load_balancers")


class SectionResult(BaseModel):
    name: str
    title: str
    group: ScanGroup
    iam_action: str
    status: SectionStatus = SectionStatus.SCANNED
    elapsed_s: float = 0.0
    count: int | None = None
    error: str = ""

    @property
    def scanned(self) -> bool:
        return self.status in (SectionStatus.SCANNED, SectionStatus.FALLBACK)

    @property
    def skipped(self) -> bool:
        return self.status is SectionStatus.NO_PERMISSION

    @property
    def summary(self) -> str:
        if self.status is SectionStatus.NO_PERMISSION:
            return f"not scanned: no permission for {self.iam_action}"
        if self.status is SectionStatus.ERROR:
            return f"not scanned: error: {self.error}"
        if self.status is SectionStatus.FALLBACK:
            return f"used the documented default ({self.error})"
        return f"{self.count if self.count is not None else 'ok'} in {self.elapsed_s:.2f}s"


class ExistingResource(BaseModel):
    """A resource already in the account, as it is named in conflicts and counts."""

    model_config = ConfigDict(frozen=True)

    kind: ResourceKind
    id: str
    name: str = ""
    detail: str = ""

    @property
    def display(self) -> str:
        head = f"{self.name} ({self.id})" if self.name and self.name != self.id else self.id
        return f"{head}, {self.detail}" if self.detail else head


class Vpc(BaseModel):
    vpc_id: str
    name: str = ""
    cidr_blocks: list[str]
    is_default: bool = False
    state: str = "available"

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> Vpc:
        """From one DescribeVpcs item: the primary block first, then every *associated* secondary block."""
        blocks = [item["CidrBlock"]] if item.get("CidrBlock") else []
        for assoc in item.get("CidrBlockAssociationSet") or ():
            block = assoc.get("CidrBlock")
            if assoc.get("CidrBlockState", {}).get("State") == "associated" and block and block not in blocks:
                blocks.append(block)
        name = next((t.get("Value", "") for t in item.get("Tags") or () if t.get("Key") == "Name"), "")
        return cls(
            vpc_id=item["VpcId"],
            name=name,
            cidr_blocks=blocks,
            is_default=bool(item.get("IsDefault")),
            state=item.get("State", "available"),
        )

    @property
    def primary_cidr(self) -> str:
        return self.cidr_blocks[0] if self.cidr_blocks else ""

    def as_resource(self, block: str | None = None) -> ExistingResource:
        detail = block or ", ".join(self.cidr_blocks)
        if self.is_default:
            detail += ", default VPC"
        return ExistingResource(kind=ResourceKind.VPC, id=self.vpc_id, name=self.name, detail=detail)


class Subnet(BaseModel):
    subnet_id: str
    vpc_id: str
    availability_zone: str
    cidr_block: str = ""


class NatGateway(BaseModel):
    nat_gateway_id: str
    vpc_id: str = ""
    subnet_id: str = ""
    state: str = "available"


class Quota(BaseModel):
    code: str
    name: str
    value: int
    fell_back: bool = False
    reason: str = ""


class AccountScan(BaseModel):
    """Everything the scan found in one account and region. A section not scanned leaves its list empty
    and says why in `sections`."""

    region: str
    vpcs: list[Vpc] = Field(default_factory=list)
    subnets: list[Subnet] = Field(default_factory=list)
    nat_gateways: list[NatGateway] = Field(default_factory=list)
    availability_zones: list[str] = Field(default_factory=list)
    elastic_ip_count: int = 0
    vpc_quota: Quota = Field(
        default_factory=lambda: Quota(code=VPC_QUOTA_CODE, name="VPCs per Region", value=VPC_QUOTA_DEFAULT,
                                      fell_back=True, reason="not read")
    )  # fmt: skip
    eip_quota: Quota = Field(
        default_factory=lambda: Quota(code=EIP_QUOTA_CODE, name="EC2-VPC Elastic IPs", value=EIP_QUOTA_DEFAULT,
                                      fell_back=True, reason="not read")
    )  # fmt: skip
    nat_quota: Quota = Field(
        default_factory=lambda: Quota(code=NAT_QUOTA_CODE, name="NAT gateways per Availability Zone",
                                      value=NAT_QUOTA_DEFAULT, fell_back=True, reason="not read")
    )  # fmt: skip
    rds_clusters: list[ExistingResource] = Field(default_factory=list)
    rds_instances: list[ExistingResource] = Field(default_factory=list)
    elasticache_replication_groups: list[ExistingResource] = Field(default_factory=list)
    elasticache_cache_clusters: list[ExistingResource] = Field(default_factory=list)
    docdb_clusters: list[ExistingResource] = Field(default_factory=list)
    ecs_clusters: list[ExistingResource] = Field(default_factory=list)
    load_balancers: list[ExistingResource] = Field(default_factory=list)
    ecr_repositories: list[ExistingResource] = Field(default_factory=list)
    s3_buckets: list[ExistingResource] = Field(default_factory=list)
    efs_file_systems: list[ExistingResource] = Field(default_factory=list)
    sections: dict[str, SectionResult] = Field(default_factory=dict)
    elapsed_s: float = 0.0

    def scanned(self, section: str) -> bool:
        """True when the section ran and its data can be trusted. A scan built without section records
        (e.g. from fixtures) counts every section as scanned."""
        result = self.sections.get(section)
        if result is None:
            return not self.sections
        return result.scanned

    def section_kind_scanned(self, kind: ResourceKind) -> bool:
        return self.scanned(SECTION_OF_KIND[kind])

    @property
    def skipped_sections(self) -> list[SectionResult]:
        return [s for s in self.sections.values() if s.status is SectionStatus.NO_PERMISSION]

    @property
    def failed_sections(self) -> list[SectionResult]:
        return [s for s in self.sections.values() if s.status is SectionStatus.ERROR]

    def resources(self, kind: ResourceKind) -> list[ExistingResource]:
        if kind is ResourceKind.VPC:
            return [vpc.as_resource() for vpc in self.vpcs]
        if kind is ResourceKind.SUBNET:
            return [
                ExistingResource(kind=kind, id=s.subnet_id, detail=f"{s.cidr_block} in {s.availability_zone}")
                for s in self.subnets
            ]
        if kind is ResourceKind.NAT_GATEWAY:
            return [
                ExistingResource(kind=kind, id=n.nat_gateway_id, detail=n.state) for n in self.nat_gateways
            ]
        if kind is ResourceKind.AVAILABILITY_ZONE:
            return [ExistingResource(kind=kind, id=zone) for zone in self.availability_zones]
        if kind is ResourceKind.ELASTIC_IP:
            return []
        field = SECTION_OF_KIND[kind]
        value: list[ExistingResource] = getattr(self, field)
        return value

    def count(self, kind: ResourceKind) -> int | None:
        if not self.section_kind_scanned(kind):
            return None
        if kind is ResourceKind.ELASTIC_IP:
            return self.elastic_ip_count
        return len(self.resources(kind))

    def counts(self) -> dict[ResourceKind, int | None]:
        return {kind: self.count(kind) for kind in ResourceKind}

    def azs_of_subnets(self) -> dict[str, str]:
        return {subnet.subnet_id: subnet.availability_zone for subnet in self.subnets}


# --------------------------------------------------------------------------------------------------
# Findings and the report
# --------------------------------------------------------------------------------------------------


class Severity(StrEnum):
    BLOCKING = "blocking"
    WARNING = "warning"


class ConflictKind(StrEnum):
    CIDR = "cidr"
    NAME = "name"
    QUOTA = "quota"
    REGION = "region"
    NOT_NEW_ACCOUNT = "not_new_account"
    PERMISSION = "permission"
    COVERAGE = "coverage"  # a check that could not run because its section was not scanned


class Conflict(BaseModel):
    kind: ConflictKind
    severity: Severity
    message: str
    resource: ExistingResource | None = None

    @property
    def blocking(self) -> bool:
        return self.severity is Severity.BLOCKING


class Verdict(StrEnum):
    SAFE = "safe"
    ADJUSTMENTS_NEEDED = "adjustments_needed"
    BLOCKED = "blocked"

    @property
    def label(self) -> str:
        return VERDICT_LABELS[self]


VERDICT_LABELS: dict[Verdict, str] = {
    Verdict.SAFE: "safe to deploy",
    Verdict.ADJUSTMENTS_NEEDED: "adjustments needed",
    Verdict.BLOCKED: "blocked",
}


class AnalysisReport(BaseModel):
    region: str
    application: str
    environment: str
    vpc_cidr_block: str
    size: SetupSize
    account_situation: AccountSituation = AccountSituation.EXISTING
    counts: dict[ResourceKind, int | None] = Field(default_factory=dict)
    conflicts: list[Conflict] = Field(default_factory=list)
    recommended_changes: dict[str, str] = Field(default_factory=dict)
    recommendations: list[str] = Field(default_factory=list)
    permissions: PermissionCheck | None = None
    permissions_overridden: bool = False
    verdict: Verdict = Verdict.SAFE
    notes: list[str] = Field(default_factory=list)
    skipped_sections: list[str] = Field(default_factory=list)
    failed_sections: list[str] = Field(default_factory=list)
    scan_elapsed_s: float = 0.0

    @property
    def blocking(self) -> list[Conflict]:
        return [c for c in self.conflicts if c.blocking]

    @property
    def warnings(self) -> list[Conflict]:
        return [c for c in self.conflicts if not c.blocking]

    @property
    def has_recommendations(self) -> bool:
        return bool(self.recommended_changes)

    @property
    def denied_by_service(self) -> dict[str, list[str]]:
        return dict(self.permissions.denied) if self.permissions else {}

    @property
    def only_permissions_block(self) -> bool:
        """True when every blocking finding is a permission finding (a lead may override those)."""
        blocking = self.blocking
        return bool(blocking) and all(c.kind is ConflictKind.PERMISSION for c in blocking)


# --------------------------------------------------------------------------------------------------
# CIDR
# --------------------------------------------------------------------------------------------------


def cidr_candidates() -> Iterator[ipaddress.IPv4Network]:
    """The runbook's fallback order: 10.1-10.255, then 172.16-172.31, then 192.168.0.0/16 (all /16)."""
    for second in range(1, 256):
        yield ipaddress.IPv4Network(f"10.{second}.0.0/16")
    for second in range(16, 32):
        yield ipaddress.IPv4Network(f"172.{second}.0.0/16")
    yield ipaddress.IPv4Network("192.168.0.0/16")


def _network(block: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(block, strict=False)
    except ValueError:
        return None


def overlapping_blocks(vpcs: Iterable[Vpc], cidr: str) -> list[tuple[Vpc, str]]:
    """Each (VPC, block) whose CIDR block (primary or secondary) overlaps `cidr`."""
    wanted = ipaddress.ip_network(cidr, strict=False)
    hits: list[tuple[Vpc, str]] = []
    for vpc in vpcs:
        for block in vpc.cidr_blocks:
            existing = _network(block)
            if existing is not None and existing.version == wanted.version and existing.overlaps(wanted):
                hits.append((vpc, block))
    return hits


def first_free_cidr(vpcs: Iterable[Vpc], *, exclude: Iterable[str] = ()) -> str | None:
    vpcs = list(vpcs)
    excluded = [ipaddress.ip_network(block, strict=False) for block in exclude]
    for candidate in cidr_candidates():
        if any(candidate.overlaps(other) for other in excluded):
            continue
        if not overlapping_blocks(vpcs, str(candidate)):
            return str(candidate)
    return None


def cidr_conflicts(scan: AccountScan, cidr: str) -> list[Conflict]:
    conflicts = []
    for vpc, block in overlapping_blocks(scan.vpcs, cidr):
        which = "primary" if block == vpc.primary_cidr else "secondary"
        label = f"{vpc.vpc_id} ({vpc.name})" if vpc.name else vpc.vpc_id
        conflicts.append(
            Conflict(
                kind=ConflictKind.CIDR,
                severity=Severity.WARNING,
                message=f"VPC CIDR {cidr} overlaps {label}'s {which} CIDR block {block}.",
                resource=vpc.as_resource(block),
            )
        )
    return conflicts


# --------------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------------

# Truncation (A, E) of `${substr(app,0,A)}-${substr(env,0,E)}-{descriptor}-{6}` per resource kind (§6).
NAME_TRUNCATION: dict[ResourceKind, tuple[int, int]] = {
    ResourceKind.ECS_CLUSTER: (21, 4),
    ResourceKind.LOAD_BALANCER: (21, 4),
    ResourceKind.RDS_CLUSTER: (38, 5),
    ResourceKind.DOCDB_CLUSTER: (38, 5),
    ResourceKind.S3_BUCKET: (38, 5),
    ResourceKind.ELASTICACHE_REPLICATION_GROUP: (21, 5),
}


def poc_idp_prefix(application: str, environment: str, kind: ResourceKind) -> str:
    app_len, env_len = NAME_TRUNCATION[kind]
    return f"{application[:app_len]}-{environment[:env_len]}-"


def name_conflicts(scan: AccountScan, application: str, environment: str) -> list[Conflict]:
    conflicts = []
    app = application.lower()
    for kind in NAME_TRUNCATION:
        prefix = poc_idp_prefix(app, environment.lower(), kind)
        for resource in scan.resources(kind):
            name = (resource.name or resource.id).lower()
            if name.startswith(prefix):
                why = f"starts with '{prefix}', the prefix poc-idp generates for {application}/{environment}"
            elif app and app in name:
                why = f"contains the application name '{application}'"
            else:
                continue
            conflicts.append(
                Conflict(
                    kind=ConflictKind.NAME,
                    severity=Severity.WARNING,
                    message=f"{kind.label[:-1]} '{resource.name or resource.id}' {why}.",
                    resource=resource,
                )
            )
    return conflicts


def _valid_names(application: str, environment: str) -> bool:
    try:
        validation.check_application(application)
        validation.check_environment(environment)
        validation.check_name_lengths(application, environment)
    except ValueError:
        return False
    return True


APP_SUFFIXES = ("-v{n}", "-{n}", "v{n}", "{n}")
ENV_SUFFIXES = ("{n}", "-{n}")


def _variants(base: str, max_len: int, suffixes: tuple[str, ...]) -> Iterator[str]:
    """base-v2, base-2, … (n = 2..9); when too long, a shorter form of base makes room for the suffix."""
    for number in range(2, 10):
        for template in suffixes:
            suffix = template.format(n=number)
            if len(base) + len(suffix) <= max_len:
                yield base + suffix
            else:
                cut = base[: max(1, max_len - len(suffix))].rstrip("-")
                if cut:
                    yield cut + suffix


def propose_names(scan: AccountScan, application: str, environment: str) -> tuple[str, str] | None:
    """An (application, environment) pair that passes the request's validation and conflicts with nothing
    the scan found. The application changes first (web → web-v2); the environment only if that fails."""
    app_budget = validation.ALB_NAME_BUDGET - len(environment[: validation.ENV_TRUNCATION])
    max_app = min(app_budget, validation.APP_TRUNCATION)
    for candidate in _variants(application, max_app, APP_SUFFIXES):
        if (
            candidate != application
            and _valid_names(candidate, environment)
            and not name_conflicts(scan, candidate, environment)
        ):
            return candidate, environment
    for candidate in _variants(environment, validation.ENV_TRUNCATION, ENV_SUFFIXES):
        if (
            candidate != environment
            and _valid_names(application, candidate)
            and not name_conflicts(scan, application, candidate)
        ):
            return application, candidate
    return None


# --------------------------------------------------------------------------------------------------
# Quotas, region, brand-new account, permissions
# --------------------------------------------------------------------------------------------------


def _quota_text(quota: Quota) -> str:
    if quota.fell_back:
        return f"the documented default quota of {quota.value} (the actual quota could not be read)"
    return f"the quota of {quota.value}"


def quota_conflicts(scan: AccountScan, size: SetupSize | str) -> list[Conflict]:
    conflicts: list[Conflict] = []
    profile = size_profile(size)
    if scan.scanned("vpcs"):
        existing = [vpc for vpc in scan.vpcs if vpc.state != "deleted"]
        if len(existing) >= scan.vpc_quota.value:
            conflicts.append(
                Conflict(
                    kind=ConflictKind.QUOTA,
                    severity=Severity.WARNING if scan.vpc_quota.fell_back else Severity.BLOCKING,
                    message=(
                        f"{len(existing)} VPCs already exist in {scan.region}, at {_quota_text(scan.vpc_quota)}"
                        " VPCs per region: poc-idp needs 1 more. Request a quota increase or use another region."
                    ),
                )
            )
    needed = profile.nat_gateways
    if scan.scanned("elastic_ips"):
        left = scan.eip_quota.value - scan.elastic_ip_count
        if needed > left:
            conflicts.append(
                Conflict(
                    kind=ConflictKind.QUOTA,
                    severity=Severity.WARNING,
                    message=(
                        f"The {profile.title.lower()} setup needs {needed} Elastic IP(s) for its NAT gateway(s);"
                        f" {scan.elastic_ip_count} are allocated of {_quota_text(scan.eip_quota)}, leaving"
                        f" {max(left, 0)}."
                    ),
                )
            )
    if scan.scanned("nat_gateways") and scan.scanned("availability_zones") and scan.availability_zones:
        zone_of = scan.azs_of_subnets()
        per_zone = dict.fromkeys(scan.availability_zones, 0)
        for nat in scan.nat_gateways:
            zone = zone_of.get(nat.subnet_id)
            if zone in per_zone:
                per_zone[zone] += 1
        zones_with_room = [zone for zone, used in per_zone.items() if used < scan.nat_quota.value]
        if len(zones_with_room) < needed:
            conflicts.append(
                Conflict(
                    kind=ConflictKind.QUOTA,
                    severity=Severity.WARNING,
                    message=(
                        f"The {profile.title.lower()} setup needs {needed} NAT gateway(s), one per AZ, but only"
                        f" {len(zones_with_room)} AZ(s) are below {_quota_text(scan.nat_quota)} NAT gateways"
                        f" per AZ ({len(scan.nat_gateways)} NAT gateways exist)."
                    ),
                )
            )
    return conflicts


def region_conflicts(scan: AccountScan, size: SetupSize | str) -> list[Conflict]:
    if not scan.scanned("availability_zones"):
        return []
    needed = max(size_profile(size).availability_zones, REQUIRED_AZS)
    zones = scan.availability_zones
    if len(zones) >= needed:
        return []
    listed = ", ".join(zones) or "none"
    return [
        Conflict(
            kind=ConflictKind.REGION,
            severity=Severity.BLOCKING,
            message=(
                f"{scan.region} has {len(zones)} available AZ(s) ({listed}); poc-idp's templates need {needed}."
                " Choose another region."
            ),
        )
    ]


def non_default_resources(scan: AccountScan) -> list[ExistingResource]:
    """What makes an account not 'brand new': any VPC but the default 172.31.0.0/16 one, ECS clusters,
    RDS/DocumentDB clusters, ElastiCache groups, load balancers."""
    found = [
        vpc.as_resource()
        for vpc in scan.vpcs
        if not (vpc.is_default and vpc.cidr_blocks == [DEFAULT_VPC_CIDR])
    ]
    for kind in (
        ResourceKind.ECS_CLUSTER,
        ResourceKind.RDS_CLUSTER,
        ResourceKind.DOCDB_CLUSTER,
        ResourceKind.ELASTICACHE_REPLICATION_GROUP,
        ResourceKind.LOAD_BALANCER,
    ):
        found.extend(scan.resources(kind))
    return found


def brand_new_conflicts(scan: AccountScan) -> list[Conflict]:
    found = non_default_resources(scan)
    if not found:
        return []
    names = ", ".join(r.display for r in found[:3]) + (
        f" and {len(found) - 3} more" if len(found) > 3 else ""
    )
    return [
        Conflict(
            kind=ConflictKind.NOT_NEW_ACCOUNT,
            severity=Severity.WARNING,
            message=(
                f"The account was described as brand new, but it has {len(found)} non-default resource(s):"
                f" {names}. Run the full analysis before deploying."
            ),
            resource=found[0],
        )
    ]


def permission_conflicts(check: PermissionCheck | None, *, overridden: bool = False) -> list[Conflict]:
    if check is None or not check.checked or not check.denied:
        return []
    conflicts = []
    for service, actions in check.denied.items():
        shown = ", ".join(actions[:5]) + (f" and {len(actions) - 5} more" if len(actions) > 5 else "")
        suffix = " (overridden by a lead)" if overridden else ""
        conflicts.append(
            Conflict(
                kind=ConflictKind.PERMISSION,
                severity=Severity.WARNING if overridden else Severity.BLOCKING,
                message=f"{service_label(service)}: {len(actions)} action(s) denied: {shown}{suffix}.",
            )
        )
    return conflicts


# --------------------------------------------------------------------------------------------------
# The analysis
# --------------------------------------------------------------------------------------------------


def verdict_of(conflicts: Iterable[Conflict]) -> Verdict:
    conflicts = list(conflicts)
    if any(c.blocking for c in conflicts):
        return Verdict.BLOCKED
    if conflicts:
        return Verdict.ADJUSTMENTS_NEEDED
    return Verdict.SAFE


def _coverage(scan: AccountScan, section: str, what: str) -> Conflict | None:
    result = scan.sections.get(section)
    if result is None or result.scanned:
        return None
    return Conflict(
        kind=ConflictKind.COVERAGE,
        severity=Severity.WARNING,
        message=f"{what} not checked: {result.title} {result.summary}.",
    )


def analyse_account(
    scan: AccountScan,
    request: DeploymentRequest,
    *,
    permissions: PermissionCheck | None = None,
    permissions_overridden: bool = False,
) -> AnalysisReport:
    """Every conflict between the request and the account, what to change, and the verdict."""
    conflicts: list[Conflict] = []
    changes: dict[str, str] = {}
    messages: list[str] = []
    notes: list[str] = []

    if request.account_situation is AccountSituation.NEW:
        conflicts += brand_new_conflicts(scan)

    cidr = cidr_conflicts(scan, request.vpc_cidr_block)
    conflicts += cidr
    if cidr:
        free = first_free_cidr(scan.vpcs, exclude=[request.vpc_cidr_block])
        if free:
            changes["vpc_cidr_block"] = free
            messages.append(
                f"Use VPC CIDR {free} instead of {request.vpc_cidr_block}: it is the first /16 in the runbook's"
                " order that overlaps no existing VPC."
            )
        else:
            conflicts.append(
                Conflict(
                    kind=ConflictKind.CIDR,
                    severity=Severity.BLOCKING,
                    message="Every candidate /16 (10.x, 172.16-31.x, 192.168.x) overlaps an existing VPC.",
                )
            )

    names = name_conflicts(scan, request.application, request.environment)
    conflicts += names
    if names:
        proposal = propose_names(scan, request.application, request.environment)
        if proposal is None:
            messages.append("No alternative application/environment name was found; choose one yourself.")
        else:
            application, environment = proposal
            if application != request.application:
                changes["application"] = application
                messages.append(
                    f"Rename the application '{request.application}' → '{application}': no existing resource"
                    " uses that name or its poc-idp prefix."
                )
            if environment != request.environment:
                changes["environment"] = environment
                messages.append(f"Rename the environment '{request.environment}' → '{environment}'.")

    conflicts += quota_conflicts(scan, request.size)
    conflicts += region_conflicts(scan, request.size)
    conflicts += permission_conflicts(permissions, overridden=permissions_overridden)

    for section, what in (
        ("vpcs", "CIDR overlap and the VPC quota"),
        ("availability_zones", "The number of availability zones"),
    ):
        gap = _coverage(scan, section, what)
        if gap:
            conflicts.append(gap)

    skipped = [f"{s.title}: {s.summary}" for s in scan.skipped_sections]
    failed = [f"{s.title}: {s.summary}" for s in scan.failed_sections]
    if skipped:
        notes.append(f"{len(skipped)} section(s) not scanned for lack of permission.")
    if failed:
        notes.append(f"{len(failed)} section(s) failed to scan.")
    for quota in (scan.vpc_quota, scan.eip_quota, scan.nat_quota):
        if quota.fell_back:
            notes.append(f"{quota.name}: used the documented default of {quota.value} ({quota.reason}).")
    if permissions is not None and not permissions.checked:
        notes.append(permissions.warning or "Permissions could not be checked.")

    return AnalysisReport(
        region=scan.region,
        application=request.application,
        environment=request.environment,
        vpc_cidr_block=request.vpc_cidr_block,
        size=request.size,
        account_situation=request.account_situation,
        counts=scan.counts(),
        conflicts=conflicts,
        recommended_changes=changes,
        recommendations=messages,
        permissions=permissions,
        permissions_overridden=permissions_overridden,
        verdict=verdict_of(conflicts),
        notes=notes,
        skipped_sections=skipped,
        failed_sections=failed,
        scan_elapsed_s=scan.elapsed_s,
    )


RECOMMENDABLE_FIELDS = frozenset({"vpc_cidr_block", "application", "environment"})


def apply_recommendations(
    request: DeploymentRequest, changes: AnalysisReport | Mapping[str, str]
) -> tuple[DeploymentRequest, list[str]]:
    """The request with the recommended values, re-validated, and a line per changed field."""
    updates = dict(changes.recommended_changes if isinstance(changes, AnalysisReport) else changes)
    unknown = set(updates) - RECOMMENDABLE_FIELDS
    if unknown:
        raise ValueError(f"Not a recommendable field: {', '.join(sorted(unknown))}.")
    data: dict[str, Any] = request.model_dump()
    changed = [
        f"{field}: {data[field]} → {value}"
        for field, value in sorted(updates.items())
        if data[field] != value
    ]
    data.update(updates)
    return DeploymentRequest.model_validate(data), changed
