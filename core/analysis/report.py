"""The findings of an account analysis and its verdict: each `Conflict` (kind, severity, the facts
found — one model per finding — and the resource it concerns) and the `AnalysisReport` that
`bot.views.analysis` renders. Facts only: `bot.views.findings` words them.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from core.analysis.scan import ExistingResource, Quota, ResourceKind, SectionResult
from core.models import AccountSituation
from core.permissions import PermissionCheck
from core.sizes import SetupSize
from core.values import Value


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


class CidrOverlap(Value):
    """The requested CIDR overlaps one of a VPC's blocks (primary or secondary)."""

    finding: Literal["cidr_overlap"] = "cidr_overlap"
    cidr: str
    vpc_id: str
    vpc_name: str = ""
    block: str
    secondary: bool = False


class NoFreeCidr(Value):
    """Every candidate /16 of the runbook's order overlaps an existing VPC."""

    finding: Literal["no_free_cidr"] = "no_free_cidr"


class NameClash(Value):
    """An existing resource named like one poc-idp would generate: it starts with the generated prefix
    (`prefix` set) or contains the application's name (`prefix` None)."""

    finding: Literal["name_clash"] = "name_clash"
    kind: ResourceKind
    name: str
    application: str
    environment: str
    prefix: str | None = None


class VpcQuotaReached(Value):
    finding: Literal["vpc_quota_reached"] = "vpc_quota_reached"
    region: str
    existing: int
    quota: Quota


class ElasticIpsShort(Value):
    finding: Literal["elastic_ips_short"] = "elastic_ips_short"
    size: SetupSize
    needed: int
    allocated: int
    left: int
    quota: Quota


class NatGatewaysShort(Value):
    finding: Literal["nat_gateways_short"] = "nat_gateways_short"
    size: SetupSize
    needed: int
    zones_with_room: int
    nat_gateways: int
    quota: Quota


class TooFewZones(Value):
    finding: Literal["too_few_zones"] = "too_few_zones"
    region: str
    zones: tuple[str, ...]
    needed: int


class NotNewAccount(Value):
    """The account was described as brand new, but these non-default resources exist."""

    finding: Literal["not_new_account"] = "not_new_account"
    found: tuple[ExistingResource, ...]


class ActionsDenied(Value):
    finding: Literal["actions_denied"] = "actions_denied"
    service: str
    actions: tuple[str, ...]
    overridden: bool = False


class NotChecked(Value):
    """A check that could not run because the scan section it needs was not scanned."""

    finding: Literal["not_checked"] = "not_checked"
    section: SectionResult


Finding = Annotated[
    CidrOverlap
    | NoFreeCidr
    | NameClash
    | VpcQuotaReached
    | ElasticIpsShort
    | NatGatewaysShort
    | TooFewZones
    | NotNewAccount
    | ActionsDenied
    | NotChecked,
    Field(discriminator="finding"),
]


class Conflict(BaseModel):
    kind: ConflictKind
    severity: Severity
    fact: Finding
    resource: ExistingResource | None = None

    @property
    def blocking(self) -> bool:
        return self.severity is Severity.BLOCKING


class Verdict(StrEnum):
    SAFE = "safe"
    ADJUSTMENTS_NEEDED = "adjustments_needed"
    BLOCKED = "blocked"


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
    names_unresolved: bool = False  # names conflict, and no free alternative was found
    permissions: PermissionCheck | None = None
    permissions_overridden: bool = False
    verdict: Verdict = Verdict.SAFE
    fallback_quotas: list[Quota] = Field(default_factory=list)  # documented defaults used
    skipped_sections: list[SectionResult] = Field(default_factory=list)  # no permission
    failed_sections: list[SectionResult] = Field(default_factory=list)  # an error
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


def verdict_of(conflicts: Iterable[Conflict]) -> Verdict:
    conflicts = list(conflicts)
    if any(c.blocking for c in conflicts):
        return Verdict.BLOCKED
    if conflicts:
        return Verdict.ADJUSTMENTS_NEEDED
    return Verdict.SAFE
