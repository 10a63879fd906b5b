"""The account scan's sections (poc-idp runbook §8, steps 2-5): one AWS listing each, turned into the
AccountScan fields it fills and the number of items found. workers/aws/scan.py runs them concurrently
and records each one's outcome.

The sections that list existing resources of one kind are data (scan_listings.yaml: operation, result
key, the item keys of id, name and detail), read by one function. Listings use boto3 paginators
wherever the API has one. A quota that cannot be read falls back to its documented default and says
why; an error that means "no permission" is told apart from any other and named by the IAM action it
needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from botocore.exceptions import ClientError
from pydantic import Field, TypeAdapter, model_validator

from core.analysis.scan import (
    EIP_QUOTA_CODE,
    EIP_QUOTA_DEFAULT,
    NAT_QUOTA_CODE,
    NAT_QUOTA_DEFAULT,
    SECTIONS_BY_NAME,
    VPC_QUOTA_CODE,
    VPC_QUOTA_DEFAULT,
    ExistingResource,
    NatGateway,
    Quota,
    ResourceKind,
    Subnet,
    Vpc,
)
from core.values import DataRow, read_data_file

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
    subnets = [Subnet.model_validate(item) for item in pages(ec2, "describe_subnets", "Subnets")]
    return {"subnets": subnets}, len(subnets)


def _nat_gateways(ec2: Any) -> tuple[Fields, int]:
    wanted = ("available", "pending")
    nats = [
        NatGateway.model_validate(item)
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


Item = dict[str, Any]
Keep = Callable[[Item], bool]  # which listed items count


class Listing(DataRow):
    """How a section lists the resources of its kind that already exist (data: scan_listings.yaml)."""

    operation: str
    result_key: str
    id: str  # the item key of the resource's id
    name: str = ""  # ... of its name (default: the id)
    detail: tuple[str, ...] = ()  # ... of its detail, their values joined by spaces
    optional: frozenset[str] = frozenset()  # the id or name keys an item may lack (read as "")
    params: dict[str, Any] = Field(default_factory=dict)

    def resources(self, client: Any, kind: ResourceKind, keep: Keep) -> list[ExistingResource]:
        return [
            ExistingResource(
                kind=kind,
                id=self._read(item, self.id),
                name=self._read(item, self.name or self.id),
                detail=" ".join(str(item.get(key, "")) for key in self.detail).strip(),
            )
            for item in pages(client, self.operation, self.result_key, **self.params)
            if keep(item)
        ]

    @model_validator(mode="after")
    def _optional_names_id_or_name(self) -> Listing:
        if stray := self.optional - {self.id, self.name}:
            raise ValueError(f"optional names keys that are neither the id nor the name: {sorted(stray)}")
        return self

    def _read(self, item: Item, key: str) -> str:
        """An item without a required key fails its section (a KeyError, reported as the section's
        error) rather than listing a resource without its id."""
        return str(item.get(key, "")) if key in self.optional else str(item[key])


LISTINGS: dict[str, Listing] = TypeAdapter(dict[str, Listing]).validate_python(
    read_data_file(__file__, "scan_listings.yaml")
)
# Which listed items count, where not all of them do. RDS's listings include DocumentDB (and an Aurora
# cluster's instances, counted with their cluster); the docdb endpoint's, Aurora clusters.
KEEP: dict[str, Keep] = {
    "rds_clusters": lambda item: item.get("Engine") != "docdb",
    "rds_instances": lambda item: not item.get("DBClusterIdentifier") and item.get("Engine") != "docdb",
    "docdb_clusters": lambda item: item.get("Engine", "docdb") == "docdb",
    "load_balancers": lambda item: item.get("Type") == "application",
}


def _every(item: Item) -> bool:
    return True


def _listed(name: str, listing: Listing) -> Callable[[Any], tuple[Fields, int]]:
    """The section `name` (an AccountScan field of the same name) from its listing."""
    kind = SECTIONS_BY_NAME[name].kind
    if kind is None:
        raise ValueError(f"scan section {name} lists no kind of resource")
    keep = KEEP.get(name, _every)

    def section(client: Any) -> tuple[Fields, int]:
        found = listing.resources(client, kind, keep)
        return {name: found}, len(found)

    return section


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


SECTION_FUNCTIONS: dict[str, Callable[[Any], tuple[Fields, int]]] = {
    "vpcs": _vpcs,
    "subnets": _subnets,
    "nat_gateways": _nat_gateways,
    "availability_zones": _availability_zones,
    "elastic_ips": _elastic_ips,
    "ecs_clusters": _ecs_clusters,
    **{name: _listed(name, listing) for name, listing in LISTINGS.items()},
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
