"""Recommendations: free values to propose when the request conflicts with the account — the first
/16 in the fallback order that overlaps no VPC, an application or environment name that passes the
request's validation and conflicts with nothing — and the request with them applied.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from core import validation
from core.analysis.report import AnalysisReport
from core.analysis.rules import name_conflicts, overlapping_blocks
from core.analysis.scan import AccountScan, Vpc
from core.models import DeploymentRequest
from core.values import Value


def cidr_candidates() -> Iterator[ipaddress.IPv4Network]:
    """The runbook's fallback order: 10.1-10.255, then 172.16-172.31, then 192.168.0.0/16 (all /16)."""
    for second in range(1, 256):
        yield ipaddress.IPv4Network(f"10.{second}.0.0/16")
    for second in range(16, 32):
        yield ipaddress.IPv4Network(f"172.{second}.0.0/16")
    yield ipaddress.IPv4Network("192.168.0.0/16")


def first_free_cidr(vpcs: Iterable[Vpc], *, exclude: Iterable[str] = ()) -> str | None:
    vpcs = list(vpcs)
    excluded = [ipaddress.ip_network(block, strict=False) for block in exclude]
    for candidate in cidr_candidates():
        if any(candidate.overlaps(other) for other in excluded):
            continue
        if not overlapping_blocks(vpcs, str(candidate)):
            return str(candidate)
    return None


def _valid_names(application: str, environment: str) -> bool:
    try:
        validation.check_application(application)
        validation.check_environment(environment)
        validation.check_name_lengths(application, environment)
    except ValueError:
        return False
    return True


APP_SUFFIXES = ("-v{n}", "-{n}", "v{n}", "{n}")
ENV_SUFFIXES = ("{n}", "-{n}")


def _variants(base: str, max_len: int, suffixes: tuple[str, ...]) -> Iterator[str]:
    """base-v2, base-2, … (n = 2..9); when too long, a shorter form of base makes room for the suffix."""
    for number in range(2, 10):
        for template in suffixes:
            suffix = template.format(n=number)
            if len(base) + len(suffix) <= max_len:
                yield base + suffix
            else:
                cut = base[: max(1, max_len - len(suffix))].rstrip("-")
                if cut:
                    yield cut + suffix


def propose_names(scan: AccountScan, application: str, environment: str) -> tuple[str, str] | None:
    """An (application, environment) pair that passes the request's validation and conflicts with nothing
    the scan found. The application changes first (web → web-v2); the environment only if that fails."""
    app_budget = validation.ALB_NAME_BUDGET - len(environment[: validation.ENV_TRUNCATION])
    max_app = min(app_budget, validation.APP_TRUNCATION)
    for candidate in _variants(application, max_app, APP_SUFFIXES):
        if (
            candidate != application
            and _valid_names(candidate, environment)
            and not name_conflicts(scan, candidate, environment)
        ):
            return candidate, environment
    for candidate in _variants(environment, validation.ENV_TRUNCATION, ENV_SUFFIXES):
        if (
            candidate != environment
            and _valid_names(application, candidate)
            and not name_conflicts(scan, application, candidate)
        ):
            return application, candidate
    return None


RECOMMENDABLE_FIELDS = frozenset({"vpc_cidr_block", "application", "environment"})


class FieldChange(Value):
    """One value of the request that applying the recommendations changed."""

    field: str
    old: str
    new: str


def apply_recommendations(
    request: DeploymentRequest, changes: AnalysisReport | Mapping[str, str]
) -> tuple[DeploymentRequest, list[FieldChange]]:
    """The request with the recommended values, re-validated, and each field it changed."""
    updates = dict(changes.recommended_changes if isinstance(changes, AnalysisReport) else changes)
    unknown = set(updates) - RECOMMENDABLE_FIELDS
    if unknown:
        raise ValueError(f"Not a recommendable field: {', '.join(sorted(unknown))}.")
    data: dict[str, Any] = request.model_dump()
    changed = [
        FieldChange(field=field, old=str(data[field]), new=value)
        for field, value in sorted(updates.items())
        if data[field] != value
    ]
    data.update(updates)
    return DeploymentRequest.model_validate(data), changed
