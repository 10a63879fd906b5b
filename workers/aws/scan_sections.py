"""The account scan's sections (poc-idp runbook §8, steps 2-5): one AWS listing each, turned into the
AccountScan fields it fills and the number of items found. workers/aws/scan.py runs them concurrently
and records each one's outcome.

Listings use boto3 paginators wherever the API has one. A quota that cannot be read falls back to its
documented default and says why; an error that means "no permission" is told apart from any other and
named by the IAM action it needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from botocore.exceptions import ClientError

from core.analysis.scan import (
    EIP_QUOTA_CODE,
    EIP_QUOTA_DEFAULT,
    NAT_QUOTA_CODE,
    NAT_QUOTA_DEFAULT,
    VPC_QUOTA_CODE,
    VPC_QUOTA_DEFAULT,
    ExistingResource,
    NatGateway,
    Quota,
    ResourceKind,
    Subnet,
    Vpc,
)

PERMISSION_ERROR_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "AuthorizationError",
        "UnauthorizedAccess",
        "403",
    }
)
# API operations whose IAM action has a different name.
IAM_ACTION_NAMES = {("s3", "ListBuckets"): "s3:ListAllMyBuckets"}

ECS_DESCRIBE_BATCH = 100


def is_permission_error(error: Exception) -> bool:
    if not isinstance(error, ClientError):
        return False
    code = str(error.response.get("Error", {}).get("Code", ""))
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in PERMISSION_ERROR_CODES or status == 403


def iam_action(client: Any, operation_name: str) -> str:
    """The IAM action a client operation needs: the signing name is the IAM prefix (docdb → rds)."""
    service = client.meta.service_model.service_name
    prefix = client.meta.service_model.signing_name or service
    return IAM_ACTION_NAMES.get((service, operation_name), f"{prefix}:{operation_name}")


def pages(client: Any, operation: str, result_key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every item of a listing, through the paginator when the API has one."""
    if client.can_paginate(operation):
        for page in client.get_paginator(operation).paginate(**kwargs):
            yield from page.get(result_key, [])
    else:
        yield from getattr(client, operation)(**kwargs).get(result_key, [])


# --------------------------------------------------------------------------------------------------
# Sections: each returns the AccountScan fields it fills and the number of items found.
# --------------------------------------------------------------------------------------------------

Fields = dict[str, Any]


def _vpcs(ec2: Any) -> tuple[Fields, int]:
    vpcs = [Vpc.from_api(item) for item in pages(ec2, "describe_vpcs", "Vpcs")]
    return {"vpcs": vpcs}, len(vpcs)


def _subnets(ec2: Any) -> tuple[Fields, int]:
    subnets = [
        Subnet(
            subnet_id=item["SubnetId"],
            vpc_id=item.get("VpcId", ""),
            availability_zone=item.get("AvailabilityZone", ""),
            cidr_block=item.get("CidrBlock", ""),
        )
        for item in pages(ec2, "describe_subnets", "Subnets")
    ]
    return {"subnets": subnets}, len(subnets)


def _nat_gateways(ec2: Any) -> tuple[Fields, int]:
    wanted = ("available", "pending")
    nats = [
        NatGateway(
            nat_gateway_id=item["NatGatewayId"],
            vpc_id=item.get("VpcId", ""),
            subnet_id=item.get("SubnetId", ""),
            state=item.get("State", ""),
        )
        for item in pages(
            ec2, "describe_nat_gateways", "NatGateways", Filter=[{"Name": "state", "Values": list(wanted)}]
        )
        if item.get("State") in wanted
    ]
    return {"nat_gateways": nats}, len(nats)


def _availability_zones(ec2: Any) -> tuple[Fields, int]:
    zones = [
        item["ZoneName"]
        for item in pages(
            ec2,
            "describe_availability_zones",
            "AvailabilityZones",
            Filters=[{"Name": "state", "Values": ["available"]}],
        )
        if item.get("State", "available") == "available"
        and item.get("ZoneType", "availability-zone") == "availability-zone"
    ]
    return {"availability_zones": sorted(zones)}, len(zones)


def _elastic_ips(ec2: Any) -> tuple[Fields, int]:
    count = sum(1 for _ in pages(ec2, "describe_addresses", "Addresses"))
    return {"elastic_ip_count": count}, count


def _quota(service_code: str, code: str, name: str, default: int, field: str) -> Callable[[Any], Fields]:
    """A quota read that falls back to the documented default; the fallback and its reason are kept."""

    def read(quotas: Any) -> Fields:
        try:
            value = quotas.get_service_quota(ServiceCode=service_code, QuotaCode=code)["Quota"]["Value"]
            return {field: Quota(code=code, name=name, value=int(value))}
        except Exception as error:  # any failure to read a quota means: use the documented default
            if is_permission_error(error):
                reason = f"no permission for {iam_action(quotas, 'GetServiceQuota')}"
            else:
                reason = f"Service Quotas unavailable: {describe_error(error)}"
            return {field: Quota(code=code, name=name, value=default, fell_back=True, reason=reason)}

    return read


def _rds_clusters(rds: Any) -> tuple[Fields, int]:
    clusters = [
        ExistingResource(
            kind=ResourceKind.RDS_CLUSTER,
            id=item["DBClusterIdentifier"],
            name=item["DBClusterIdentifier"],
            detail=f"{item.get('Engine', '')} {item.get('Status', '')}".strip(),
        )
        for item in pages(rds, "describe_db_clusters", "DBClusters")
        if item.get("Engine") != "docdb"
    ]
    return {"rds_clusters": clusters}, len(clusters)


def _rds_instances(rds: Any) -> tuple[Fields, int]:
    instances = [
        ExistingResource(
            kind=ResourceKind.RDS_INSTANCE,
            id=item["DBInstanceIdentifier"],
            name=item["DBInstanceIdentifier"],
            detail=f"{item.get('Engine', '')} {item.get('DBInstanceClass', '')}".strip(),
        )
        for item in pages(rds, "describe_db_instances", "DBInstances")
        if not item.get("DBClusterIdentifier") and item.get("Engine") != "docdb"
    ]
    return {"rds_instances": instances}, len(instances)


def _replication_groups(elasticache: Any) -> tuple[Fields, int]:
    groups = [
        ExistingResource(
            kind=ResourceKind.ELASTICACHE_REPLICATION_GROUP,
            id=item["ReplicationGroupId"],
            name=item["ReplicationGroupId"],
            detail=item.get("Status", ""),
        )
        for item in pages(elasticache, "describe_replication_groups", "ReplicationGroups")
    ]
    return {"elasticache_replication_groups": groups}, len(groups)


def _cache_clusters(elasticache: Any) -> tuple[Fields, int]:
    clusters = [
        ExistingResource(
            kind=ResourceKind.ELASTICACHE_CLUSTER,
            id=item["CacheClusterId"],
            name=item["CacheClusterId"],
            detail=f"{item.get('Engine', '')} {item.get('CacheClusterStatus', '')}".strip(),
        )
        for item in pages(elasticache, "describe_cache_clusters", "CacheClusters")
    ]
    return {"elasticache_cache_clusters": clusters}, len(clusters)


def _docdb_clusters(docdb: Any) -> tuple[Fields, int]:
    # DescribeDBClusters on the docdb endpoint also returns Aurora clusters unless filtered.
    clusters = [
        ExistingResource(
            kind=ResourceKind.DOCDB_CLUSTER,
            id=item["DBClusterIdentifier"],
            name=item["DBClusterIdentifier"],
            detail=item.get("Status", ""),
        )
        for item in pages(
            docdb, "describe_db_clusters", "DBClusters", Filters=[{"Name": "engine", "Values": ["docdb"]}]
        )
        if item.get("Engine", "docdb") == "docdb"
    ]
    return {"docdb_clusters": clusters}, len(clusters)


def _ecs_clusters(ecs: Any) -> tuple[Fields, int]:
    arns = list(pages(ecs, "list_clusters", "clusterArns"))
    clusters = []
    for start in range(0, len(arns), ECS_DESCRIBE_BATCH):
        batch = arns[start : start + ECS_DESCRIBE_BATCH]
        described = ecs.describe_clusters(clusters=batch).get("clusters", [])
        for item in described:
            services = int(item.get("activeServicesCount", 0))
            clusters.append(
                ExistingResource(
                    kind=ResourceKind.ECS_CLUSTER,
                    id=item.get("clusterArn", ""),
                    name=item.get("clusterName", ""),
                    detail=f"{item.get('status', '')}, {services} active service(s)",
                )
            )
    return {"ecs_clusters": clusters}, len(clusters)


def _load_balancers(elbv2: Any) -> tuple[Fields, int]:
    balancers = [
        ExistingResource(
            kind=ResourceKind.LOAD_BALANCER,
            id=item["LoadBalancerArn"],
            name=item.get("LoadBalancerName", ""),
            detail=item.get("Scheme", ""),
        )
        for item in pages(elbv2, "describe_load_balancers", "LoadBalancers")
        if item.get("Type") == "application"
    ]
    return {"load_balancers": balancers}, len(balancers)


def _ecr_repositories(ecr: Any) -> tuple[Fields, int]:
    repos = [
        ExistingResource(
            kind=ResourceKind.ECR_REPOSITORY, id=item.get("repositoryArn", ""), name=item["repositoryName"]
        )
        for item in pages(ecr, "describe_repositories", "repositories")
    ]
    return {"ecr_repositories": repos}, len(repos)


def _s3_buckets(s3: Any) -> tuple[Fields, int]:
    buckets = [
        ExistingResource(kind=ResourceKind.S3_BUCKET, id=item["Name"], name=item["Name"])
        for item in pages(s3, "list_buckets", "Buckets")
    ]
    return {"s3_buckets": buckets}, len(buckets)


def _efs_file_systems(efs: Any) -> tuple[Fields, int]:
    systems = [
        ExistingResource(
            kind=ResourceKind.EFS_FILE_SYSTEM,
            id=item["FileSystemId"],
            name=item.get("Name", ""),
            detail=item.get("LifeCycleState", ""),
        )
        for item in pages(efs, "describe_file_systems", "FileSystems")
    ]
    return {"efs_file_systems": systems}, len(systems)


SECTION_FUNCTIONS: dict[str, Callable[[Any], tuple[Fields, int]]] = {
    "vpcs": _vpcs,
    "subnets": _subnets,
    "nat_gateways": _nat_gateways,
    "availability_zones": _availability_zones,
    "elastic_ips": _elastic_ips,
    "rds_clusters": _rds_clusters,
    "rds_instances": _rds_instances,
    "elasticache_replication_groups": _replication_groups,
    "elasticache_cache_clusters": _cache_clusters,
    "docdb_clusters": _docdb_clusters,
    "ecs_clusters": _ecs_clusters,
    "load_balancers": _load_balancers,
    "ecr_repositories": _ecr_repositories,
    "s3_buckets": _s3_buckets,
    "efs_file_systems": _efs_file_systems,
}
QUOTA_FUNCTIONS: dict[str, Callable[[Any], Fields]] = {
    "vpc_quota": _quota("vpc", VPC_QUOTA_CODE, "VPCs per Region", VPC_QUOTA_DEFAULT, "vpc_quota"),
    "eip_quota": _quota("ec2", EIP_QUOTA_CODE, "EC2-VPC Elastic IPs", EIP_QUOTA_DEFAULT, "eip_quota"),
    "nat_quota": _quota(
        "vpc", NAT_QUOTA_CODE, "NAT gateways per Availability Zone", NAT_QUOTA_DEFAULT, "nat_quota"
    ),
}


def describe_error(error: Exception) -> str:
    if isinstance(error, ClientError):
        err = error.response.get("Error", {})
        code, message = err.get("Code", "Error"), err.get("Message", "")
        return f"{code}: {message}".strip().rstrip(":")
    return f"{type(error).__name__}: {error}"
