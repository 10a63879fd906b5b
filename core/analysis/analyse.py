"""The account analysis: every rule run over a scan and a request, the recommended changes, what
could not be checked, and the verdict, as one `AnalysisReport` (facts; `bot.views.findings` words them).
"""

from __future__ import annotations

from core.analysis.recommendations import first_free_cidr, propose_names
from core.analysis.report import (
    AnalysisReport,
    Conflict,
    ConflictKind,
    NoFreeCidr,
    NotChecked,
    Severity,
    verdict_of,
)
from core.analysis.rules import (
    brand_new_conflicts,
    cidr_conflicts,
    name_conflicts,
    permission_conflicts,
    quota_conflicts,
    region_conflicts,
)
from core.analysis.scan import AccountScan
from core.models import AccountSituation, DeploymentRequest
from core.permissions import PermissionCheck

# The sections whose absence leaves a check undone (CIDR overlap and the VPC quota; the AZ count).
COVERED_BY = ("vpcs", "availability_zones")


def _coverage(scan: AccountScan) -> list[Conflict]:
    return [
        Conflict(kind=ConflictKind.COVERAGE, severity=Severity.WARNING, fact=NotChecked(section=result))
        for section in COVERED_BY
        if (result := scan.sections.get(section)) is not None and not result.scanned
    ]


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

    if request.account_situation is AccountSituation.NEW:
        conflicts += brand_new_conflicts(scan)

    cidr = cidr_conflicts(scan, request.vpc_cidr_block)
    conflicts += cidr
    if cidr:
        free = first_free_cidr(scan.vpcs, exclude=[request.vpc_cidr_block])
        if free:
            changes["vpc_cidr_block"] = free
        else:
            conflicts.append(Conflict(kind=ConflictKind.CIDR, severity=Severity.BLOCKING, fact=NoFreeCidr()))

    names = name_conflicts(scan, request.application, request.environment)
    conflicts += names
    proposal = propose_names(scan, request.application, request.environment) if names else None
    if proposal is not None:
        application, environment = proposal
        if application != request.application:
            changes["application"] = application
        if environment != request.environment:
            changes["environment"] = environment

    conflicts += quota_conflicts(scan, request.size)
    conflicts += region_conflicts(scan, request.size)
    conflicts += permission_conflicts(permissions, overridden=permissions_overridden)
    conflicts += _coverage(scan)

    return AnalysisReport(
        region=scan.region,
        **request.model_dump(
            include={"application", "environment", "vpc_cidr_block", "size", "account_situation"}
        ),
        counts=scan.counts(),
        conflicts=conflicts,
        recommended_changes=changes,
        names_unresolved=bool(names) and proposal is None,
        permissions=permissions,
        permissions_overridden=permissions_overridden,
        verdict=verdict_of(conflicts),
        fallback_quotas=[q for q in (scan.vpc_quota, scan.eip_quota, scan.nat_quota) if q.fell_back],
        skipped_sections=scan.skipped_sections,
        failed_sections=scan.failed_sections,
        scan_elapsed_s=scan.elapsed_s,
    )
