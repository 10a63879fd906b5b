"""The conflict rules: one function per kind of conflict between a request and what the scan found.

CIDR overlap with any VPC block, existing resources named like the ones poc-idp would generate, the
VPC / Elastic IP / NAT gateway quotas, too few availability zones, an account described as brand new
that is not, and IAM actions the permission pre-check found denied. A check whose scan section did
not run finds nothing here (`analyse` reports the gap).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from core.analysis.report import (
    ActionsDenied,
    CidrOverlap,
    Conflict,
    ConflictKind,
    ElasticIpsShort,
    NameClash,
    NatGatewaysShort,
    NotNewAccount,
    Severity,
    TooFewZones,
    VpcQuotaReached,
)
from core.analysis.scan import AccountScan, ExistingResource, ResourceKind, Vpc
from core.permissions import PermissionCheck
from core.sizes import SetupSize, size_profile

AWS_DEFAULT_VPC_CIDR = "172.31.0.0/16"  # what AWS gives every region's default VPC
REQUIRED_AZS = 3  # poc-idp's fixed layout: public/private/database subnets in 3 AZs


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


def cidr_conflicts(scan: AccountScan, cidr: str) -> list[Conflict]:
    conflicts = []
    for vpc, block in overlapping_blocks(scan.vpcs, cidr):
        overlap = CidrOverlap(
            cidr=cidr, vpc_id=vpc.vpc_id, vpc_name=vpc.name, block=block, secondary=block != vpc.primary_cidr
        )
        conflicts.append(
            Conflict(
                kind=ConflictKind.CIDR,
                severity=Severity.WARNING,
                fact=overlap,
                resource=vpc.as_resource(block),
            )
        )
    return conflicts


# Truncation (A, E) of poc-idp's resource names `${substr(app,0,A)}-${substr(env,0,E)}-{descriptor}-{6}`
# per resource kind (the same prefixes as tests/tfrepo/main.tf; core.validation checks the lengths).
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
            if not name.startswith(prefix) and not (app and app in name):
                continue
            clash = NameClash(
                kind=kind,
                name=resource.name or resource.id,
                application=application,
                environment=environment,
                prefix=prefix if name.startswith(prefix) else None,
            )
            conflicts.append(
                Conflict(kind=ConflictKind.NAME, severity=Severity.WARNING, fact=clash, resource=resource)
            )
    return conflicts


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
                    fact=VpcQuotaReached(region=scan.region, existing=len(existing), quota=scan.vpc_quota),
                )
            )
    needed = profile.nat_gateways
    if scan.scanned("elastic_ips"):
        left = scan.eip_quota.value - scan.elastic_ip_count
        if needed > left:
            short = ElasticIpsShort(
                size=profile.size, needed=needed, allocated=scan.elastic_ip_count, left=max(left, 0),
                quota=scan.eip_quota,
            )  # fmt: skip
            conflicts.append(Conflict(kind=ConflictKind.QUOTA, severity=Severity.WARNING, fact=short))
    if scan.scanned("nat_gateways") and scan.scanned("availability_zones") and scan.availability_zones:
        zone_of = scan.azs_of_subnets()
        per_zone = dict.fromkeys(scan.availability_zones, 0)
        for nat in scan.nat_gateways:
            zone = zone_of.get(nat.subnet_id)
            if zone in per_zone:
                per_zone[zone] += 1
        zones_with_room = [zone for zone, used in per_zone.items() if used < scan.nat_quota.value]
        if len(zones_with_room) < needed:
            short_of_nat = NatGatewaysShort(
                size=profile.size, needed=needed, zones_with_room=len(zones_with_room),
                nat_gateways=len(scan.nat_gateways), quota=scan.nat_quota,
            )  # fmt: skip
            conflicts.append(Conflict(kind=ConflictKind.QUOTA, severity=Severity.WARNING, fact=short_of_nat))
    return conflicts


def region_conflicts(scan: AccountScan, size: SetupSize | str) -> list[Conflict]:
    if not scan.scanned("availability_zones"):
        return []
    needed = max(size_profile(size).availability_zones, REQUIRED_AZS)
    zones = scan.availability_zones
    if len(zones) >= needed:
        return []
    return [
        Conflict(
            kind=ConflictKind.REGION,
            severity=Severity.BLOCKING,
            fact=TooFewZones(region=scan.region, zones=tuple(zones), needed=needed),
        )
    ]


def non_default_resources(scan: AccountScan) -> list[ExistingResource]:
    """What makes an account not 'brand new': any VPC but the default 172.31.0.0/16 one, ECS clusters,
    RDS/DocumentDB clusters, ElastiCache groups, load balancers."""
    found = [
        vpc.as_resource()
        for vpc in scan.vpcs
        if not (vpc.is_default and vpc.cidr_blocks == [AWS_DEFAULT_VPC_CIDR])
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
    return [
        Conflict(
            kind=ConflictKind.NOT_NEW_ACCOUNT,
            severity=Severity.WARNING,
            fact=NotNewAccount(found=tuple(found)),
            resource=found[0],
        )
    ]


def permission_conflicts(check: PermissionCheck | None, *, overridden: bool = False) -> list[Conflict]:
    if check is None or not check.checked or not check.denied:
        return []
    return [
        Conflict(
            kind=ConflictKind.PERMISSION,
            severity=Severity.WARNING if overridden else Severity.BLOCKING,
            fact=ActionsDenied(service=service, actions=tuple(actions), overridden=overridden),
        )
        for service, actions in check.denied.items()
    ]
