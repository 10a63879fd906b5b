"""What the MCP tools return: typed pydantic models built from the records (pure).

Nothing here carries a plan value: a deployment's plan is its summary sentence and counts (the record
never holds values), as in Slack.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from bot.views.access import describe
from bot.views.status import thread_link
from bot.views.statuses import status_label
from core.models import Deployment
from core.policy.access import AccessPolicy
from storage.account_analysis import AccountAnalysis
from storage.audit import AuditEvent


class EnvironmentRule(BaseModel):
    environment: str = Field(description="An environment name, or '(any)' for the profile's own settings")
    approvers: str = Field(description="Who may approve plans (Slack mentions, or 'everyone')")
    required_approvals: int
    allow_self_approval: bool


class ProfileView(BaseModel):
    profile: str
    environments: list[str] | None = Field(
        description="Environment names and quoted patterns a request may use; null: any name"
    )
    rules: list[EnvironmentRule]
    assumes_role: bool = Field(description="Whether the bot assumes an IAM role for this profile")


class ProfileList(BaseModel):
    user_id: str = Field(description="The Slack user this MCP client acts as")
    open_policy: bool = Field(description="True when no access policy file is configured (development)")
    profiles: list[ProfileView]


class TimelineEvent(BaseModel):
    at: datetime
    event: str
    actor: str = Field(description="A Slack user id, or worker/system")
    plan_sha256: str | None = None


class PlanView(BaseModel):
    attempt: int
    summary: str = Field(description="Terraform's counts, as in the thread (no values)")
    has_changes: bool
    applyable: bool
    resource_changes: int
    sha256: str = Field(description="SHA-256 of the plan file; approvals are bound to it")
    created_at: datetime


class ApprovalView(BaseModel):
    approver_id: str
    at: datetime
    plan_sha256: str


class DeploymentView(BaseModel):
    id: str
    status: str
    status_label: str
    status_detail: str
    requester_id: str
    requested_via: str | None
    profile: str
    account_id: str
    region: str
    application: str
    environment: str
    size: str
    account_situation: str
    vpc_cidr_block: str
    state_bucket: str
    lock_table: str
    created_at: datetime
    updated_at: datetime
    thread_link: str | None = Field(description="Link to the deployment's Slack thread (null until posted)")
    plan: PlanView | None
    approvals: list[ApprovalView]
    required_approvals: int
    rejected_by: str | None
    timeline: list[TimelineEvent] = Field(description="The deployment's audit trail, oldest first")


class RequestOutcome(BaseModel):
    created: bool
    deployment_id: str | None = None
    status: str | None = None
    channel_id: str | None = None
    errors: dict[str, str] = Field(
        default_factory=dict, description="Per field, the request form's own message (nothing was stored)"
    )
    message: str


class AnalysisView(BaseModel):
    analysis_id: str
    state: str = Field(description="queued, running, done or failed; poll get_analysis until done/failed")
    profile: str
    account_id: str
    region: str
    verdict: str | None = None
    blocking_conflicts: int = 0
    recommended_changes: dict[str, str] = Field(default_factory=dict)
    report: str = Field(default="", description="The full analysis report (the file Slack attaches)")
    failure: str | None = None
    what_next: str | None = None
    errors: dict[str, str] = Field(default_factory=dict, description="Per field, the request form's message")


def profile_views(policy: AccessPolicy, profiles: list[str]) -> list[ProfileView]:
    views = []
    for name in profiles:
        entry = policy.entry_for(name)
        if entry is None:
            continue
        rules = [
            EnvironmentRule(
                environment=rule.environment,
                approvers=describe(rule.approvers),
                required_approvals=rule.required_approvals,
                allow_self_approval=rule.allow_self_approval,
            )
            for rule in entry.rules()
        ]
        declared = None if entry.allowed_environments is None else list(entry.allowed_environments)
        views.append(
            ProfileView(
                profile=name, environments=declared, rules=rules, assumes_role=entry.assume_role is not None
            )
        )
    return views


def deployment_view(deployment: Deployment, events: list[AuditEvent]) -> DeploymentView:
    request = deployment.request
    plan = deployment.plan
    approval = deployment.approval
    return DeploymentView(
        id=deployment.id,
        status=deployment.status.value,
        status_label=status_label(deployment.status),
        status_detail=deployment.status_detail,
        requester_id=deployment.requester_id,
        requested_via=deployment.requested_via,
        profile=request.profile,
        account_id=request.account_id,
        region=request.region,
        application=request.application,
        environment=request.environment,
        size=request.size.value,
        account_situation=request.account_situation.value,
        vpc_cidr_block=request.vpc_cidr_block,
        state_bucket=request.state_bucket,
        lock_table=request.lock_table,
        created_at=deployment.created_at,
        updated_at=deployment.updated_at,
        thread_link=thread_link(deployment),
        plan=None
        if plan is None
        else PlanView(
            attempt=plan.attempt,
            summary=plan.sentence,
            has_changes=plan.has_changes,
            applyable=plan.applyable,
            resource_changes=plan.resource_changes,
            sha256=plan.sha256,
            created_at=plan.created_at,
        ),
        approvals=[
            ApprovalView(approver_id=a.approver_id, at=a.at, plan_sha256=a.binding.plan_sha256)
            for a in approval.approvals
        ],
        required_approvals=approval.required_approvals,
        rejected_by=approval.rejection.by if approval.rejection else None,
        timeline=[
            TimelineEvent(at=e.at, event=e.event, actor=e.actor, plan_sha256=e.plan_sha256) for e in events
        ],
    )


def analysis_view(analysis: AccountAnalysis) -> AnalysisView:
    request = analysis.request
    return AnalysisView(
        analysis_id=analysis.id,
        state=analysis.state.value,
        profile=request.profile,
        account_id=request.account_id,
        region=request.region,
        verdict=analysis.verdict,
        blocking_conflicts=analysis.blocking,
        recommended_changes=analysis.recommended_changes,
        report=analysis.report_text,
        failure=analysis.failure,
        what_next=analysis.what_next,
    )
