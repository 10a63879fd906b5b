"""What the MCP tools return: typed pydantic models built from the records (pure).

Nothing here carries a plan value: a deployment's plan is its summary sentence and counts (the record
never holds values), as in Slack. A view copies the record fields it shows under the same names by
naming them (`model_dump(include={...})`: a field added to a record later is not copied by surprise),
or reads them with `from_attributes`; the rest are built here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from bot.views.access import describe
from bot.views.status import thread_link
from bot.views.statuses import status_label
from core.analysis.record import AccountAnalysis
from core.changes import thread_permalink
from core.drift import DriftRecord, drift_state, is_acknowledged
from core.environments import Environment, EnvironmentChange, config_branch
from core.models import Deployment, DeploymentRequest
from core.policy.access import AccessPolicy
from storage.audit import AuditEvent

UNKNOWN_ENVIRONMENT = "No environment {name} is known to the bot."
SEVERAL = (
    "{name} names several environments: {keys}. Name one by its key, or as"
    " application/environment@account/region."
)


def change_requested(deployment_id: str, short_name: str, changed: list[str], channel_id: str) -> str:
    return (
        f"Change {deployment_id} of {short_name} requested ({', '.join(changed)}); its thread is in Slack"
        f" channel {channel_id}. Leads approve the plan there."
    )


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


class TargetView(BaseModel):
    """Where a deployment or an environment is: its request's profile, account, region, names and size."""

    profile: str
    account_id: str
    region: str
    application: str
    environment: str
    size: str

    @staticmethod
    def of(request: DeploymentRequest, *more: str) -> dict[str, Any]:
        """The fields above, and the request's fields `more`, from `request`: to pass to a view's
        constructor."""
        return request.model_dump(include={*TargetView.model_fields, *more})


class DeploymentView(TargetView):
    id: str
    status: str
    status_label: str
    status_detail: str
    requester_id: str
    requested_via: str | None
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


DEPLOYMENT_FIELDS = {
    "id",
    "status",
    "status_detail",
    "requester_id",
    "requested_via",
    "created_at",
    "updated_at",
}
ANALYSIS_FIELDS = {"state", "verdict", "recommended_changes", "failure", "what_next"}
PLAN_FIELDS = {"attempt", "has_changes", "applyable", "resource_changes", "sha256", "created_at"}
CHANGE_FIELDS = {"deployment_id", "kind", "requester_id", "approver_ids", "summary", "applied_at"}


def deployment_view(deployment: Deployment, events: list[AuditEvent]) -> DeploymentView:
    plan = deployment.plan
    approval = deployment.approval
    return DeploymentView(
        **deployment.model_dump(include=DEPLOYMENT_FIELDS),
        **TargetView.of(
            deployment.request, "account_situation", "vpc_cidr_block", "state_bucket", "lock_table"
        ),
        status_label=status_label(deployment.status),
        thread_link=thread_link(deployment),
        plan=None
        if plan is None
        else PlanView(summary=plan.sentence, **plan.model_dump(include=PLAN_FIELDS)),
        approvals=[
            ApprovalView(approver_id=a.approver_id, at=a.at, plan_sha256=a.binding.plan_sha256)
            for a in approval.approvals
        ],
        required_approvals=approval.required_approvals,
        rejected_by=approval.rejection.by if approval.rejection else None,
        timeline=[TimelineEvent.model_validate(e, from_attributes=True) for e in events],
    )


def analysis_view(analysis: AccountAnalysis) -> AnalysisView:
    return AnalysisView(
        **analysis.model_dump(include=ANALYSIS_FIELDS),
        **analysis.request.model_dump(include={"profile", "account_id", "region"}),
        analysis_id=analysis.id,
        blocking_conflicts=analysis.blocking,
        report=analysis.report_text,
    )


# -- environments ------------------------------------------------------------------------------------


class ChangeView(BaseModel):
    deployment_id: str
    kind: str = Field(description="create, change, upgrade or destroy")
    requester_id: str
    approver_ids: list[str]
    applied_at: datetime
    summary: str = Field(description="What the apply did, as in the thread (counts, no values)")
    thread_link: str | None = Field(description="Link to the Slack thread of that deployment")


class ConfigView(BaseModel):
    branch: str = Field(description="The branch of the Terraform repository holding the committed tfvars")
    commit: str | None = None
    pushed: bool = False
    error: str = Field(default="", description="Why the last push failed (empty when it did not)")
    pull_request_url: str | None = None


class DriftResourceView(BaseModel):
    kind: str = Field(description="outside: changed outside Terraform; pending: Terraform would change it")
    address: str
    action: str
    attributes: list[AttributeView] = Field(description="Changed attributes, masked as in a plan review")
    more_attributes: int = 0


class AttributeView(BaseModel):
    name: str
    before: str
    after: str


class DriftView(BaseModel):
    state: str = Field(description="none, drifted, acknowledged, or unknown (never checked successfully)")
    checked_at: datetime | None = Field(default=None, description="When the last check ran")
    check_outcome: str | None = Field(default=None, description="checked, busy (skipped) or failed")
    check_detail: str = ""
    result_at: datetime | None = Field(default=None, description="When the report below was made")
    resources: list[DriftResourceView] = Field(default_factory=list)
    more_resources: int = 0
    acknowledged_by: str | None = None
    acknowledged_reason: str | None = None
    next_run_at: datetime | None = None
    message: str = ""


class EnvironmentView(TargetView):
    key: str = Field(description="{application}-{environment}-{account_id}-{region}")
    name: str = Field(description="application/environment, as people type it in Slack")
    status: str = Field(description="live, changing (a deployment for it is open) or destroyed")
    request: dict[str, Any] = Field(description="The request values of the last apply")
    extra_values: dict[str, Any] = Field(description="Values given beyond the request (alarm e-mails, DNS)")
    repo_commit: str = Field(description="The Terraform repository commit of the last apply")
    repo_ref: str | None = None
    last_change: ChangeView | None
    latest_deployment_id: str | None = None
    latest_deployment_status: str | None = None
    config: ConfigView = Field(description="The environment's configuration branch (and pull request)")
    drift: DriftView
    deployments: list[str] = Field(description="Every deployment for it, oldest first")


class EnvironmentList(BaseModel):
    user_id: str
    environments: list[EnvironmentView]


def change_thread_link(change: EnvironmentChange) -> str | None:
    """The thread of the deployment that made `change`."""
    return thread_permalink(change.channel_id, change.thread_ts) if change.thread_ts else None


def drift_view(record: DriftRecord | None) -> DriftView:
    if record is None:
        return DriftView(state=drift_state(None).value, message="No drift check has run yet.")
    last, result = record.last_check, record.last_result
    report = result.report if result is not None else None
    acknowledgement = record.acknowledgement
    acknowledged = report is not None and is_acknowledged(acknowledgement, report)
    return DriftView(
        state=record.state.value,
        checked_at=last.at if last else None,
        check_outcome=last.outcome.value if last else None,
        check_detail=last.detail if last else "",
        result_at=result.at if result else None,
        resources=[
            DriftResourceView.model_validate(r, from_attributes=True)
            for r in (report.resources if report else ())
        ],
        more_resources=report.more_resources if report else 0,
        acknowledged_by=acknowledgement.user_id if acknowledged and acknowledgement else None,
        acknowledged_reason=acknowledgement.reason if acknowledged and acknowledgement else None,
        next_run_at=record.next_run_at,
        message="" if report is not None else "No drift check has completed yet.",
    )


def environment_view(
    environment: Environment,
    *,
    state: str,
    latest: Deployment | None,
    branch_prefix: str,
    drift: DriftRecord | None,
) -> EnvironmentView:
    request = environment.request
    change = environment.last_change
    config = environment.config
    return EnvironmentView(
        key=str(environment.key),
        name=environment.key.short,
        status=state,
        **TargetView.of(request),
        request=request.model_dump(mode="json"),
        extra_values=dict(environment.extra_values),
        repo_commit=environment.repo_commit,
        repo_ref=environment.repo_ref,
        last_change=None
        if change is None
        else ChangeView(**change.model_dump(include=CHANGE_FIELDS), thread_link=change_thread_link(change)),
        latest_deployment_id=environment.latest_deployment_id,
        latest_deployment_status=latest.status.value if latest else None,
        config=ConfigView(branch=config_branch(environment.key, branch_prefix))
        if config is None
        else ConfigView.model_validate(config, from_attributes=True),
        drift=drift_view(drift),
        deployments=list(environment.deployments),
    )


# -- the `channel` argument (bot/mcp/channels.py) ---------------------------------------------------


# Why a channel may not be used, as bot/mcp/channels.py finds it -> the `channel` field's error
# ({channel}: the id given; {error}: Slack's error code).
ChannelRefusal = Literal[
    "not_a_channel_id",
    "archived",
    "bot_not_member",
    "user_not_member",
    "not_found",
    "unanswered",
    "unreachable",
]
CHANNEL_REFUSALS: dict[ChannelRefusal, str] = {
    "not_a_channel_id": "'{channel:.40}' is not a Slack channel id (C… or G…, not a #name).",
    "archived": "Channel {channel} is archived.",
    "bot_not_member": "The bot is not a member of channel {channel}: invite it there (/invite @ecs-deploy-bot)"
    " or leave `channel` empty for the default deployment channel.",
    "user_not_member": "You are not a member of channel {channel}: join it, or leave `channel` empty for the"
    " default deployment channel.",
    "not_found": "Channel {channel} does not exist or the bot cannot see it (invite the bot).",
    "unanswered": "Slack did not say whether channel {channel} may be used ({error}); try again.",
    "unreachable": "Slack could not be reached to check channel {channel}; try again.",
}


def channel_refusal(why: ChannelRefusal, channel_id: str, error: str = "") -> str:
    return CHANNEL_REFUSALS[why].format(channel=channel_id, error=error)
