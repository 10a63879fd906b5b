"""Steps: verify AWS access, then analyse the account (permissions, scan, conflicts, recommendations)."""

from __future__ import annotations

from bot.views import failures
from bot.views.analysis import (
    analysis_blocks,
    analysis_message,
    analysis_report_text,
    fresh_account_blocks,
    fresh_account_message,
)
from bot.views.findings import verdict_label
from bot.views.messages import Message, verified_message
from core.analysis.analyse import analyse_account
from core.analysis.report import AnalysisReport
from core.analysis.rules import non_default_resources
from core.analysis.scan import FRESH_ACCOUNT_SECTIONS, ExistingResource
from core.lifecycle import Move
from core.models import AccountSituation, Deployment
from workers.aws.identity import verify_access
from workers.aws.permission_check import check_permissions
from workers.aws.scan import scan_account
from workers.runtime import Runtime, StepFailure, move
from workers.steps.common import aws_session, store_fields


def run_verify(rt: Runtime, deployment: Deployment, options: dict[str, str]) -> None:
    deployment = move(rt, deployment.id, Move.START_VERIFY)
    request = deployment.request
    result = verify_access(
        request.profile, request.region, request.account_id, rt.policy.role_for(request.profile)
    )
    if result.problem is not None:
        raise StepFailure(result.problem.reason, result.problem.what_next)
    identity = result.identity
    assert identity is not None
    deployment = store_fields(rt, deployment.id, identity=identity)
    rt.notifier.post(deployment, verified_message(identity, request.profile))
    rt.audit.record("access_verified", deployment.id, "worker", account=identity.account, arn=identity.arn)
    # a live environment's account was analysed and its backend made before its first apply
    move(
        rt, deployment.id, Move.VERIFIED_ENVIRONMENT if deployment.kind.on_live_environment else Move.VERIFIED
    )


def run_analyse(rt: Runtime, deployment: Deployment, options: dict[str, str]) -> None:
    deployment = move(rt, deployment.id, Move.START_ANALYSE)
    request = deployment.request
    if deployment.identity is None:
        raise StepFailure(*failures.access_not_verified())
    session = aws_session(rt, deployment)
    permissions = check_permissions(session, deployment.identity.arn, request.size)
    overridden = deployment.permission_override_by is not None
    fresh = request.account_situation is AccountSituation.NEW and options.get("full") != "1"
    scan = scan_account(session, request.region, sections=FRESH_ACCOUNT_SECTIONS if fresh else None)
    report = analyse_account(scan, request, permissions=permissions, permissions_overridden=overridden)
    rt.audit.record(
        "analysed",
        deployment.id,
        "worker",
        verdict=report.verdict.value,
        blocking=len(report.blocking),
        recommended=",".join(report.recommended_changes),
        permissions_checked=permissions.checked,
    )
    deployment = store_fields(
        rt,
        deployment.id,
        analysis_blocking=bool(report.blocking),
        recommendations=dict(report.recommended_changes),
        permissions_denied=[a for actions in report.denied_by_service.values() for a in actions],
    )
    if fresh:
        found = non_default_resources(scan)
        if not found and not report.blocking:
            rt.notifier.post(deployment, _fresh(deployment))
            move(rt, deployment.id, Move.FRESH_ACCOUNT)
            return
        if found:
            _post_decision(rt, deployment, _fresh(deployment, found), "the account is not empty")
            return
    _post_analysis(rt, deployment, report)


def _fresh(deployment: Deployment, found: list[ExistingResource] | None = None) -> Message:
    names = deployment.request.model_dump(include={"vpc_cidr_block", "application", "environment"})
    where = deployment.request.model_dump(include={"profile", "account_id", "region"})
    blocks = fresh_account_blocks(deployment_id=deployment.id, found=found or (), **names, **where)
    return fresh_account_message(blocks, not_empty=bool(found), **names)


def _post_analysis(rt: Runtime, deployment: Deployment, report: AnalysisReport) -> None:
    request = deployment.request
    blocks = analysis_blocks(
        report,
        deployment_id=deployment.id,
        profile=request.profile,
        account_id=request.account_id,
        region=request.region,
        can_keep_values=True,
    )
    message = analysis_message(report, blocks)
    _post_decision(rt, deployment, message, verdict_label(report.verdict))
    full = analysis_report_text(
        report, profile=request.profile, account_id=request.account_id, region=request.region
    )
    rt.notifier.upload(
        deployment,
        filename=f"{deployment.id}-account-analysis.txt",
        content=full,
        title="AWS account analysis (full report)",
    )


def _post_decision(rt: Runtime, deployment: Deployment, message: Message, detail: str) -> None:
    ts = rt.notifier.post(deployment, message)
    store_fields(rt, deployment.id, analysis_message_ts=ts)
    move(rt, deployment.id, Move.ANALYSED, detail)
