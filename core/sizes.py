"""The setup-size decision matrix of poc-idp, in one place.

Figures come from the poc-idp guides (its setup-size guide).
"""

from __future__ import annotations

from enum import StrEnum

from core.values import Value


class SetupSize(StrEnum):
    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"


class SizeProfile(Value):
    size: SetupSize
    title: str
    monthly_cost: str
    max_services: int
    services_hint: str
    includes: tuple[str, ...]
    nat_gateways: int
    availability_zones: int = 3


SIZE_PROFILES: dict[SetupSize, SizeProfile] = {
    SetupSize.SMALL: SizeProfile(
        size=SetupSize.SMALL,
        title="Small",
        monthly_cost="$50–100/month",
        max_services=5,
        services_hint="up to 5 ECS services",
        includes=("1 Aurora PostgreSQL instance", "EFS", "bastion host", "1 NAT gateway"),
        nat_gateways=1,
    ),
    SetupSize.MEDIUM: SizeProfile(
        size=SetupSize.MEDIUM,
        title="Medium",
        monthly_cost="$200–400/month",
        max_services=13,
        services_hint="5–13 ECS services",
        includes=(
            "Aurora writer + reader",
            "ElastiCache Redis",
            "DocumentDB",
            "EFS",
            "bastion host",
            "1 NAT gateway",
        ),
        nat_gateways=1,
    ),
    SetupSize.LARGE: SizeProfile(
        size=SetupSize.LARGE,
        title="Large",
        monthly_cost="$800–1,500/month",
        max_services=23,
        services_hint="13–23 ECS services",
        includes=(
            "Aurora Multi-AZ",
            "ElastiCache Multi-AZ (3 nodes)",
            "DocumentDB (3 nodes)",
            "Client VPN",
            "flow logs",
            "NAT gateway per AZ",
        ),
        nat_gateways=3,
    ),
}


def size_profile(size: SetupSize | str) -> SizeProfile:
    return SIZE_PROFILES[SetupSize(size)]
