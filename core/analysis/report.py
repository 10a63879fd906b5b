"""The findings of an account analysis and its verdict: each `Conflict` (kind, severity, message,
the resource it concerns) and the `AnalysisReport` that `bot.views.analysis` renders.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, Field

from core.analysis.scan import ExistingResource, ResourceKind
from core.models import AccountSituation
from core.permissions import PermissionCheck
from core.sizes import SetupSize


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


def verdict_of(conflicts: Iterable[Conflict]) -> Verdict:
    conflicts = list(conflicts)
    if any(c.blocking for c in conflicts):
        return Verdict.BLOCKED
    if conflicts:
        return Verdict.ADJUSTMENTS_NEEDED
    return Verdict.SAFE
