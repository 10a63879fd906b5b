"""What a scan of one account and region found: its sections (one API listing each, with the IAM
action it needs), the resources it lists, the quotas it read, and whether each section could be scanned.
`workers.aws.scan` fills an `AccountScan`; the rules read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Literal

from pydantic import AliasGenerator, BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.alias_generators import to_pascal

from core.values import DataRow, Value, read_data_file

# Documented defaults used when Service Quotas cannot be read.
VPC_QUOTA_CODE, VPC_QUOTA_DEFAULT = "L-F678F1CE", 5  # vpc: VPCs per Region
EIP_QUOTA_CODE, EIP_QUOTA_DEFAULT = "L-0263D0A3", 5  # ec2: EC2-VPC Elastic IPs
NAT_QUOTA_CODE, NAT_QUOTA_DEFAULT = "L-FE5A380F", 5  # vpc: NAT gateways per Availability Zone


# A section's group: a label of the report, nothing branches on it.
ScanGroup = Literal["network", "databases", "application", "storage"]


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


class SectionSpec(DataRow):
    """One scan section: one API listing, the IAM action it needs, and the kind of resource it lists."""

    name: str
    title: str
    group: ScanGroup
    iam_action: str
    kind: ResourceKind | None = None


# The sections in the order they are scanned and reported: data, kept in scan_sections.yaml.
SECTIONS: tuple[SectionSpec, ...] = TypeAdapter(tuple[SectionSpec, ...]).validate_python(
    read_data_file(__file__, "scan_sections.yaml")
)
SECTIONS_BY_NAME: dict[str, SectionSpec] = {spec.name: spec for spec in SECTIONS}
SECTION_OF_KIND: dict[ResourceKind, str] = {spec.kind: spec.name for spec in SECTIONS if spec.kind}
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

    @classmethod
    def of(cls, name: str, **fields: Any) -> SectionResult:
        """A result of the section `name`: its title, group and IAM action are those of its spec."""
        spec = SECTIONS_BY_NAME[name]
        return cls(name=name, title=spec.title, group=spec.group, iam_action=spec.iam_action, **fields)

    @property
    def scanned(self) -> bool:
        return self.status in (SectionStatus.SCANNED, SectionStatus.FALLBACK)

    @property
    def skipped(self) -> bool:
        return self.status is SectionStatus.NO_PERMISSION


class ExistingResource(Value):
    """A resource already in the account, as it is named in conflicts and counts."""

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


class Ec2Item(BaseModel):
    """A model that `model_validate` reads straight from one EC2 Describe* item: each field from the
    item's key of the same name in PascalCase (`subnet_id` from `SubnetId`); by field name otherwise."""

    model_config = ConfigDict(
        alias_generator=AliasGenerator(validation_alias=to_pascal), validate_by_name=True
    )


class Subnet(Ec2Item):
    subnet_id: str
    vpc_id: str = ""
    availability_zone: str = ""
    cidr_block: str = ""


class NatGateway(Ec2Item):
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
