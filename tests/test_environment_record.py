"""The environment registry's writes after an apply (workers/environments.record_apply), on a real
Redis, with deployments whose workspace was really generated from the test Terraform repository.

The helpers here (`config_runtime`, `applied_deployment`) are shared by test_config_repo.py and
test_environments_import.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis

from core.approval import Approval, ApprovalState, PlanBinding
from core.environments import EnvironmentStatus
from core.lifecycle import DeploymentKind, DeploymentStatus
from core.models import Deployment, DeploymentRequest, utcnow
from core.policy.loading import policy_from_settings
from core.settings import Settings
from storage.artifacts import ArtifactStore
from storage.environments import EnvironmentStore
from storage.queue import COMMIT_CONFIG, queue
from tests.harness.flow import LEAD, OTHER, REQUESTER
from tests.harness.records import deployment_request, post_root, worker_runtime
from tests.harness.secrets import ARTIFACT_KEY
from tests.harness.slack_api import BOT_TOKEN, SlackApiStandIn
from tests.harness.tfrepo import git, make_git_repo
from workers.environments import record_apply
from workers.runtime import Runtime
from workers.steps.common import TFBACKEND, TFVARS, manager

ALARM_EMAILS = {
    "sns_monitoring_recepients_email_list": ["ops@example.com"],
    "route53_dns_name": "example.com",
}


def config_runtime(
    bot_env: dict[str, str], redis_conn: redis.Redis, tmp_path: Path, **settings: str
) -> Runtime:
    """A worker's Runtime on the test Redis and Slack stand-in, with the test Terraform repository
    (a git repository under tmp_path) and `settings` (aliases, e.g. ECS_DEPLOY_CONFIG_PUSH_URL)."""
    if not (tmp_path / "poc-idp").exists():
        make_git_repo(tmp_path)
    values = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_API_URL": bot_env["SLACK_API_URL"],
        "REDIS_URL": bot_env["REDIS_URL"],
        "ECS_DEPLOY_DATA_DIR": str(tmp_path / "data"),
        "ECS_DEPLOY_REPO_URL": str(tmp_path / "poc-idp"),
        "ECS_DEPLOY_ARTIFACT_KEY": ARTIFACT_KEY,
        **settings,
    }
    current = Settings(**values)  # type: ignore[arg-type]
    return worker_runtime(current, redis_conn, policy_from_settings(None, frozenset({LEAD})))


def bare_repo(tmp_path: Path, name: str = "config.git") -> Path:
    path = tmp_path / name
    path.mkdir()
    git(path, "init", "--quiet", "--bare", "--initial-branch=main")
    return path


def applied_deployment(
    rt: Runtime,
    api: SlackApiStandIn,
    *,
    request: DeploymentRequest | None = None,
    kind: DeploymentKind = DeploymentKind.CREATE,
    extra_values: dict[str, Any] | None = None,
    approvers: tuple[str, ...] = (LEAD,),
) -> Deployment:
    """A stored deployment just past a successful apply: its workspace generated from the test
    repository's current commit, the files in the artifact store, an approval bound to its plan,
    and a real thread root in the Slack stand-in."""
    draft = Deployment(
        request=request or deployment_request(),
        requester_id=REQUESTER,
        channel_id="C_DEPLOYS",
        kind=kind,
        thread_ts=post_root(api),
        extra_values=dict(ALARM_EMAILS if extra_values is None else extra_values),
    )
    workspaces = manager(rt)
    workspace = workspaces.prepare(draft.id)
    files = workspaces.generate_files(workspace, draft.request, draft.extra_values)
    artifacts = ArtifactStore.for_settings(rt.redis, rt.settings)
    artifacts.put(draft.id, TFVARS, files.tfvars_path.read_bytes())
    artifacts.put(draft.id, TFBACKEND, files.tfbackend_path.read_bytes())
    binding = PlanBinding(
        plan_sha256=f"{len(draft.id):02d}" + "e" * 62,
        repo_commit=workspace.commit,
        tfvars_sha256=files.tfvars_sha256,
        plan_created_at=utcnow(),
        attempt=1,
    )
    approval = ApprovalState(
        binding=binding,
        approvals=tuple(Approval(approver_id=a, at=utcnow(), binding=binding) for a in approvers),
        required_approvals=len(approvers),
    )
    record = files.record(workspace.commit)
    deployment = draft.model_copy(
        update={
            "workspace": record,
            "repo_commit": workspace.commit,
            "approval": approval,
            "status": DeploymentStatus.APPLYING,
        }
    )
    created, _ = rt.store.create(deployment)
    return created


def commit_jobs(rt: Runtime) -> list[tuple[str, ...]]:
    return [tuple(j.args) for j in queue(rt.redis, rt.settings).jobs if j.func_name == COMMIT_CONFIG]


@pytest.fixture
def rt(
    bot_env: dict[str, str], redis_conn: redis.Redis, slack_api: SlackApiStandIn, tmp_path: Path
) -> Runtime:
    return config_runtime(bot_env, redis_conn, tmp_path)


def test_a_create_apply_makes_the_environment_and_queues_the_config_commit(
    rt: Runtime, slack_api: SlackApiStandIn
) -> None:
    deployment = applied_deployment(rt, slack_api, approvers=(LEAD, OTHER))
    outputs = {"alb_dns": {"value": "web.example", "sensitive": False}, "db_password": {"sensitive": True}}

    record_apply(rt, deployment, outputs, "Apply complete! Resources: 3 added")

    env = EnvironmentStore(rt.redis).find(deployment.request.environment_key)
    assert env is not None and env.status is EnvironmentStatus.LIVE
    assert env.request == deployment.request and env.extra_values == ALARM_EMAILS
    assert env.repo_commit == deployment.workspace.commit  # type: ignore[union-attr]
    assert env.outputs == outputs and env.deployments == [deployment.id]
    [change] = env.changes
    assert change.deployment_id == deployment.id and change.kind is DeploymentKind.CREATE
    assert change.requester_id == REQUESTER and change.approver_ids == [LEAD, OTHER]
    assert change.plan_sha256 == deployment.approval.binding.plan_sha256  # type: ignore[union-attr]
    assert (change.channel_id, change.thread_ts) == ("C_DEPLOYS", deployment.thread_ts)
    assert commit_jobs(rt) == [(deployment.request.environment_key, deployment.id)]
    events = [e.event for e in rt.audit.export(None) if e.deployment_id == deployment.id]
    assert "environment_recorded" in events


def test_a_retried_apply_job_adds_no_second_change(rt: Runtime, slack_api: SlackApiStandIn) -> None:
    deployment = applied_deployment(rt, slack_api)
    record_apply(rt, deployment, {})
    record_apply(rt, deployment, {})
    env = EnvironmentStore(rt.redis).find(deployment.request.environment_key)
    assert env is not None
    assert [c.deployment_id for c in env.changes] == [deployment.id]
    assert env.deployments == [deployment.id]


def test_a_change_then_a_destroy_update_the_same_environment(rt: Runtime, slack_api: SlackApiStandIn) -> None:
    created = applied_deployment(rt, slack_api)
    record_apply(rt, created, {"alb_dns": {"value": "a", "sensitive": False}})
    medium = deployment_request(size="medium")
    changed = applied_deployment(rt, slack_api, request=medium, kind=DeploymentKind.CHANGE)
    record_apply(rt, changed, {"alb_dns": {"value": "b", "sensitive": False}})
    destroyed = applied_deployment(rt, slack_api, request=medium, kind=DeploymentKind.DESTROY)
    record_apply(rt, destroyed, {})

    env = EnvironmentStore(rt.redis).find(created.request.environment_key)
    assert env is not None
    assert [c.kind for c in env.changes] == [
        DeploymentKind.CREATE,
        DeploymentKind.CHANGE,
        DeploymentKind.DESTROY,
    ]
    assert env.status is EnvironmentStatus.DESTROYED and env.outputs == {}
    assert env.request.size.value == "medium"
    assert env.deployments == [created.id, changed.id, destroyed.id]
    assert len(commit_jobs(rt)) == 3
