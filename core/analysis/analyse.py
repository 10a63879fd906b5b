"""The account analysis: every rule run over a scan and a request, the recommended changes, notes on
what could not be checked, and the verdict, as one `AnalysisReport`.
"""

from __future__ import annotations

from core.analysis.recommendations import first_free_cidr, propose_names
from core.analysis.report import AnalysisReport, Conflict, ConflictKind, Severity, verdict_of
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
