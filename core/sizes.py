"""The setup-size decision matrix of poc-idp, in one place: the sizes, and what each one is (its
figures are data, in sizes.yaml next to this module).

Figures come from the poc-idp guides (its setup-size guide).
"""

from __future__ import annotations

from enum import StrEnum

from core.values import DataRow, read_data_file


class SetupSize(StrEnum):
    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"


class SizeProfile(DataRow):
    size: SetupSize
    title: str
    monthly_cost: str
    max_services: int
    services_hint: str
    includes: tuple[str, ...]
    nat_gateways: int
    availability_zones: int = 3


def _load_profiles(name: str) -> dict[SetupSize, SizeProfile]:
    """One profile per size, in SetupSize's order; the file must describe every size and no other."""
    table = read_data_file(__file__, name)
    if set(table) != {size.value for size in SetupSize}:
        raise ValueError(f"{name} must describe exactly the sizes {', '.join(SetupSize)}")
    return {size: SizeProfile(size=size, **table[size.value]) for size in SetupSize}


SIZE_PROFILES: dict[SetupSize, SizeProfile] = _load_profiles("sizes.yaml")


def size_profile(size: SetupSize | str) -> SizeProfile:
    return SIZE_PROFILES[SetupSize(size)]
