"""The RQ job behind the MCP server's `analyse_account`: verify the profile's access to the account,
check permissions, scan read-only and analyse conflicts — the same functions a deployment's analysis
step runs (workers/steps/analysis.py) — and store the report in the analysis record
(core.analysis.record, kept by storage.account_analysis). It posts nothing to Slack and changes
nothing in the account.
"""

from __future__ import annotations

from bot.views.analysis import analysis_report_text
from bot.views.findings import verdict_label
from core.analysis.analyse import analyse_account
from core.analysis.record import AccountAnalysis, AnalysisState
from core.analysis.scan import FRESH_ACCOUNT_SECTIONS
from core.logs import get_logger
from core.models import AccountSituation, Deployment, utcnow
from storage.account_analysis import AnalysisStore
from workers.aws.identity import verify_access
from workers.aws.permission_check import check_permissions
from workers.aws.scan import scan_account
from workers.runtime import Runtime, runtime
from workers.steps.common import aws_session

log = get_logger(__name__)


def run_account_analysis(analysis_id: str, options: dict[str, str] | None = None) -> str:
    rt = runtime()
    store = AnalysisStore(rt.redis)
    analysis = store.find(analysis_id)
    if analysis is None:
        log.warning("analysis_expired", analysis_id=analysis_id)
        return "expired"
    store.save(analysis.model_copy(update={"state": AnalysisState.RUNNING}))
    try:
        finished = _analyse(rt, analysis)
    except Exception as exc:
        log.exception("analysis_failed", analysis_id=analysis_id, error=type(exc).__name__)
        finished = analysis.model_copy(
            update={
                "state": AnalysisState.FAILED,
                "failure": f"The analysis failed unexpectedly ({type(exc).__name__}).",
                "what_next": "Try again; if it keeps failing, an operator can read the worker's log.",
            }
        )
    store.save(finished.model_copy(update={"finished_at": utcnow()}))
    rt.audit.record(
        "account_analysed",
        analysis.id,
        "worker",
        state=finished.state.value,
        verdict=finished.verdict,
        profile=analysis.request.profile,
        account=analysis.request.account_id,
        region=analysis.request.region,
    )
    return finished.state.value


def _analyse(rt: Runtime, analysis: AccountAnalysis) -> AccountAnalysis:
    request = analysis.request
    verified = verify_access(
        request.profile, request.region, request.account_id, rt.policy.role_for(request.profile)
    )
    if verified.problem is not None or verified.identity is None:
        problem = verified.problem
        return analysis.model_copy(
            update={
                "state": AnalysisState.FAILED,
                "failure": problem.reason if problem else "AWS access could not be verified.",
                "what_next": problem.what_next if problem else None,
            }
        )
    # The session the deployment's own steps would use (the policy's role, if any), for this request.
    session = aws_session(rt, Deployment(request=request, requester_id=analysis.requester_id, channel_id="-"))
    permissions = check_permissions(session, verified.identity.arn, request.size)
    fresh = request.account_situation is AccountSituation.NEW
    scan = scan_account(session, request.region, sections=FRESH_ACCOUNT_SECTIONS if fresh else None)
    report = analyse_account(scan, request, permissions=permissions, permissions_overridden=False)
    text = analysis_report_text(
        report, profile=request.profile, account_id=request.account_id, region=request.region
    )
    return analysis.model_copy(
        update={
            "state": AnalysisState.DONE,
            "verdict": verdict_label(report.verdict),
            "blocking": len(report.blocking),
            "recommended_changes": dict(report.recommended_changes),
            "report_text": text,
        }
    )
