"""Records the tests store or send directly, instead of driving the modal flow to make them.

One standard request — web/dev in account 123456789012, us-east-1, small, existing account, profile
`deployer` — in the shapes the tests need: the modal's fields, a `DeploymentRequest`, a `Deployment`,
and the workspace, plan binding and thread root that a deployment past planning has.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import redis
from slack_sdk import WebClient

from bot.notifier import Notifier
from bot.slack import make_web_client
from core.approval import PlanBinding
from core.drift import CheckOutcome, DriftCheck, drift_report
from core.environments import (
    ALARM_EMAILS,
    DNS_NAME,
    Environment,
    EnvironmentChange,
    EnvironmentStatus,
    environment_key,
)
from core.lifecycle import DeploymentKind
from core.models import Deployment, DeploymentRequest, DeploymentStatus, PlanRecord, WorkspaceRecord, utcnow
from core.policy.access import AccessPolicy
from core.settings import Settings
from storage.audit import AuditTrail
from storage.environments import EnvironmentStore
from storage.store import DeploymentStore
from tests.harness.slack_api import BOT_TOKEN, SlackApiStandIn
from workers.runtime import Runtime

# The request's own fields, as the modal, the MCP tool and the stored JSON spell them.
REQUEST_FIELDS: dict[str, str] = {
    "profile": "deployer",
    "account_situation": "existing",
    "size": "small",
    "account_id": "123456789012",
    "region": "us-east-1",
    "application": "web",
    "environment": "dev",
}


def deployment_request(**overrides: Any) -> DeploymentRequest:
    """The standard request, with `overrides` in place of its fields."""
    return DeploymentRequest.model_validate({**REQUEST_FIELDS, **overrides})


def deployment_record(
    requester_id: str, *, request: DeploymentRequest | None = None, **fields: Any
) -> Deployment:
    """A deployment of `request` (the standard one by default) asked for in #deploys (C_DEPLOYS)."""
    return Deployment(
        request=request or deployment_request(),
        requester_id=requester_id,
        channel_id="C_DEPLOYS",
        **fields,
    )


def plan_binding(attempt: int = 1) -> PlanBinding:
    """What an approval of plan `attempt`, made just now, is bound to."""
    return PlanBinding(
        plan_sha256="a" * 64,
        repo_commit="3f2a9c1",
        tfvars_sha256="b" * 64,
        plan_created_at=utcnow(),
        attempt=attempt,
    )


def plan_record(sentence: str, **fields: Any) -> PlanRecord:
    """Plan attempt 1 of the standard deployment (the plan `plan_binding` binds to): it has changes
    and may be applied; `fields` override the rest."""
    return PlanRecord.model_validate(
        {
            "attempt": 1,
            "sha256": "a" * 64,
            "created_at": utcnow(),
            "sentence": sentence,
            "has_changes": True,
            "applyable": True,
            **fields,
        }
    )


def workspace_record() -> WorkspaceRecord:
    """The workspace of a deployment whose tfvars were written (matches `plan_binding`)."""
    return WorkspaceRecord(
        commit="3f2a9c1",
        tfvars_path="tfvars/web.tfvars",
        tfbackend_path="tfvars/web.tfbackend",
        tfvars_sha256="b" * 64,
        tfbackend_sha256="c" * 64,
    )


def post_root(api: SlackApiStandIn, text: str = "ECS deployment requested") -> str:
    """A real root message in the stand-in, so thread posts and root refreshes find it."""
    reply = WebClient(token=BOT_TOKEN, base_url=api.base_url).chat_postMessage(channel="C_DEPLOYS", text=text)
    return str(reply["ts"])


def planned_deployment(
    api: SlackApiStandIn,
    requester_id: str,
    sentence: str,
    *,
    plan_fields: dict[str, Any] | None = None,
    **fields: Any,
) -> Deployment:
    """A deployment past planning: its thread root posted in #deploys, its workspace written and plan
    attempt 1 saying `sentence` (`plan_fields` override the plan's other fields); `fields` as for
    `deployment_record`."""
    return deployment_record(
        requester_id,
        thread_ts=post_root(api),
        workspace=workspace_record(),
        plan=plan_record(sentence, **(plan_fields or {})),
        **fields,
    )


def worker_runtime(settings: Settings, connection: redis.Redis, policy: AccessPolicy) -> Runtime:
    """A worker's Runtime on the test Redis: its deployment store, a notifier posting to the Slack API
    `settings` name, and the audit trail."""
    store = DeploymentStore(connection)
    return Runtime(
        settings=settings,
        redis=connection,
        store=store,
        notifier=Notifier(make_web_client(settings), store),
        policy=policy,
        audit=AuditTrail(connection),
    )


def create_change(deployment_id: str, requester_id: str = "U0REQUEST1", **fields: Any) -> EnvironmentChange:
    """The change an applied create leaves in its environment's history (plan "a"×64 on commit "0"×40,
    applied now, thread in #deploys); `fields` override these."""
    return EnvironmentChange.model_validate(
        {
            "deployment_id": deployment_id,
            "kind": DeploymentKind.CREATE,
            "requester_id": requester_id,
            "plan_sha256": "a" * 64,
            "repo_commit": "0" * 40,
            "applied_at": utcnow(),
            "channel_id": "C_DEPLOYS",
            **fields,
        }
    )


def stored_environment(
    connection: redis.Redis, request: DeploymentRequest | None = None, **fields: Any
) -> Environment:
    """A live environment of `request` (the standard one by default) on commit "0"×40, made now and
    stored; `fields` override the record's."""
    request = request or deployment_request()
    now = utcnow()
    record = Environment.model_validate(
        {
            "key": environment_key(request),
            "request": request,
            "repo_commit": "0" * 40,
            "created_at": now,
            "updated_at": now,
            **fields,
        }
    )
    return EnvironmentStore(connection).put(record)


def applied_environment(
    connection: redis.Redis,
    request: DeploymentRequest,
    requester_id: str,
    *,
    approver_id: str,
    commit: str,
    thread_ts: str,
    status: EnvironmentStatus = EnvironmentStatus.LIVE,
    open_deployment: Deployment | None = None,
    summary: str = "",
) -> Environment:
    """`request`'s environment as `record_apply` leaves it after its first apply, an hour ago: the
    applied deployment (by `requester_id`, approved by `approver_id`, on `commit`, its thread
    `thread_ts` in #deploys) stored, the alarm e-mails and DNS name given; `open_deployment` (stored
    too) its newest deployment."""
    store = DeploymentStore(connection)
    created, _ = store.create(
        deployment_record(
            requester_id, request=request, status=DeploymentStatus.DEPLOYED, thread_ts=thread_ts
        )
    )
    deployments = [created.id]
    if open_deployment is not None:
        opened, _ = store.create(open_deployment)
        deployments.append(opened.id)
    applied = utcnow() - timedelta(hours=1)
    change = create_change(
        created.id,
        requester_id,
        approver_ids=[approver_id],
        repo_commit=commit,
        applied_at=applied,
        thread_ts=thread_ts,
        summary=summary,
    )
    return stored_environment(
        connection,
        request,
        extra_values={ALARM_EMAILS: ["ops@example.com"], DNS_NAME: f"{request.application}.example.com"},
        repo_commit=commit,
        status=status,
        changes=[change],
        deployments=deployments,
        created_at=applied,
        updated_at=applied,
    )


def drift_check(at: datetime, *updated: str) -> DriftCheck:
    """A drift check completed at `at` whose plan would update the terraform_data resources `updated`
    back to the configuration (none: no drift)."""
    changes = [
        {
            "address": address,
            "type": "terraform_data",
            "change": {"actions": ["update"], "before": {"input": 1}, "after": {"input": 2}},
        }
        for address in updated
    ]
    report = drift_report(
        {"format_version": "1.2", "resource_drift": [], "planned_values": {}},
        {"format_version": "1.2", "planned_values": {}, "resource_changes": changes},
    )
    return DriftCheck(at=at, outcome=CheckOutcome.CHECKED, report=report)
