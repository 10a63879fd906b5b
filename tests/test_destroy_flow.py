"""Destroying an environment through Slack, on real parts (issue 13): the bot over HTTP with an access
policy file, the Slack stand-in, Redis, RQ burst workers, moto and real Terraform on tests/tfrepo.

A small environment is created first (request → plan → a lead's approval → apply); then
`/ecs-deploy destroy web/dev` opens the typed-confirmation modal, a wrong name is a field error, the
confirmed destroy runs `terraform plan -destroy`, the requester's approval is refused, one approval
leaves it waiting ("1 of 2"), a second approver applies it, and the state ends empty.
"""

from __future__ import annotations

import json

import boto3
import pytest
import redis

from core.environments import EnvironmentStatus
from core.lifecycle import DeploymentKind
from storage.environments import EnvironmentStore
from tests.harness.flow import (
    DESTROY_POLICY,
    LEAD,
    REQUESTER,
    SECOND_LEAD,
    PipelineRun,
    click,
    command_opens,
    created_environment,
    ephemeral_to,
    eventually,
    submit_modal,
)
from tests.harness.processes import run_worker_burst
from tests.harness.slack_requests import text_value

pytestmark = pytest.mark.e2e

CONFIRM = "destroy_confirm"


@pytest.fixture
def policy_yaml() -> str:
    """`pipeline_run`'s policy (conftest): destroys need two approvers other than the requester."""
    return DESTROY_POLICY


def _slash(run: PipelineRun, text: str, user: str = REQUESTER) -> str:
    response = run.slack.slash_command(text, user=user)
    assert response.status_code == 200
    return response.text


def test_destroy_needs_the_typed_name_and_two_approvers_other_than_the_requester(
    pipeline_run: PipelineRun, redis_conn: redis.Redis
) -> None:
    run = pipeline_run
    created = created_environment(run)  # web/dev, one lead approves
    environments = EnvironmentStore(redis_conn)
    [environment] = environments.named("web", "dev")  # written by the apply (workers/environments.py)
    assert environment.status is EnvironmentStatus.LIVE and created in environment.deployments
    s3 = boto3.Session(profile_name="deployer", region_name="us-east-1").client("s3")
    bucket, key = environment.request.state_bucket, environment.request.state_key
    assert json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())["resources"]

    # 1. the typed confirmation: a mismatch is an error on its field, and nothing is stored
    view = command_opens(run.slack, run.api, "destroy web/dev")
    assert view["callback_id"] == "ecs_deploy_destroy"
    before = {d.id for d in run.store.recent(limit=50)}
    wrong = submit_modal(run.slack, view, {CONFIRM: text_value("web/prod")}, user=REQUESTER, view_id="V-D1")
    assert "Type exactly web/dev" in wrong.json()["errors"][CONFIRM]
    assert {d.id for d in run.store.recent(limit=50)} == before

    ok = submit_modal(run.slack, view, {CONFIRM: text_value("web/dev")}, user=REQUESTER, view_id="V-D2")
    assert ok.text in ("", "{}"), ok.text
    [destroy_id] = [d.id for d in run.store.recent(limit=50) if d.id not in before]
    destroy = run.store.get(destroy_id)
    assert destroy.kind is DeploymentKind.DESTROY and destroy.repo_commit == environment.repo_commit
    assert destroy.request == environment.request and destroy.extra_values == environment.extra_values
    eventually(lambda: destroy_id in (environments.find(environment.key) or environment).deployments)

    # a second destroy while this one is open is refused, privately
    assert f"still open: `{destroy_id}`" in _slash(run, "destroy web/dev")

    # 2. verify → workspace (the last apply's files) → terraform plan -destroy → its summary
    run_worker_burst(run.env)
    destroy = run.store.get(destroy_id)
    assert destroy.status.value == "awaiting_approval", destroy.status_detail
    assert destroy.approval.required_approvals == 2
    thread = destroy.thread_ts or ""
    root = json.dumps(run.api.messages[thread], ensure_ascii=False)
    assert "Destroy" in root and "web/dev" in root
    texts = "\n".join(run.api.thread_texts(thread))
    assert "This destroys the environment" in texts and "0 to add, 0 to change" in texts
    assert "resources will be destroyed" in texts and "No data stores" in texts

    # 3. the requester cannot approve; one approver leaves it waiting; a second one applies it
    click(run.slack, run.api, thread, "plan_approve", REQUESTER)
    ephemeral_to(run.api, REQUESTER, "cannot approve it yourself")
    click(run.slack, run.api, thread, "plan_approve", LEAD)
    eventually(lambda: "Destroy approval 1 of 2" in "\n".join(run.api.thread_texts(thread)))
    assert run.store.get(destroy_id).status.value == "awaiting_approval"
    click(run.slack, run.api, thread, "plan_approve", LEAD)
    ephemeral_to(run.api, LEAD, "one person counts once")
    assert run.store.get(destroy_id).status.value == "awaiting_approval"
    click(run.slack, run.api, thread, "plan_approve", SECOND_LEAD)
    eventually(lambda: run.store.get(destroy_id).status.value == "approved")
    assert run.store.get(destroy_id).approval.approver_ids == [LEAD, SECOND_LEAD]

    # 4. apply, then the state holds nothing; deployment and environment are destroyed
    run_worker_burst(run.env)
    destroy = run.store.get(destroy_id)
    assert destroy.status.value == "destroyed", destroy.status_detail
    state = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert state["resources"] == []
    assert "is destroyed" in "\n".join(run.api.thread_texts(thread))
    after = environments.find(environment.key)
    assert after is not None and after.status is EnvironmentStatus.DESTROYED
    assert after.last_change is not None and after.last_change.approver_ids == [LEAD, SECOND_LEAD]
    # the state bucket is kept
    assert s3.head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200

    # 5. and it cannot be destroyed again
    assert "already destroyed" in _slash(run, "destroy web/dev")


def test_a_protected_environment_is_refused_and_nothing_is_stored(
    pipeline_run: PipelineRun, redis_conn: redis.Redis
) -> None:
    """No Terraform needed: the environment record is put as an apply would have written it."""
    from datetime import UTC, datetime

    from core.environments import Environment, environment_key
    from core.models import DeploymentRequest

    run = pipeline_run
    request = DeploymentRequest.model_validate(
        {
            "profile": "deployer",
            "account_situation": "new",
            "size": "small",
            "account_id": "123456789012",
            "region": "us-east-1",
            "application": "web",
            "environment": "prod",
        }
    )
    at = datetime.now(UTC)
    prod = Environment(
        key=environment_key(request), request=request, repo_commit="a" * 40, created_at=at, updated_at=at
    )
    environments = EnvironmentStore(redis_conn)
    environments.put(prod)
    opened = len(run.api.calls_to("views.open"))

    answer = _slash(run, "destroy web/prod")
    assert "is protected by the access policy" in answer
    assert "`protected: false` under `profiles.deployer.environments.prod`" in answer
    assert "ecs-deploy-bot doctor" in answer
    assert len(run.api.calls_to("views.open")) == opened  # no modal

    # a forged confirmation (a modal from before the policy changed) is refused on its field too
    metadata = json.dumps({"environment_key": str(prod.key), "channel_id": "C_DEPLOYS", "team_id": "T111"})
    forged = run.slack.view_submission(
        {CONFIRM: text_value("web/prod")},
        user=REQUESTER,
        private_metadata=metadata,
        callback_id="ecs_deploy_destroy",
        view_id="V-FORGED",
    )
    assert "is protected by the access policy" in forged.json()["errors"][CONFIRM]
    assert run.store.recent(limit=10) == []
    stored = environments.find(prod.key)
    assert stored is not None and stored.deployments == []

    # unknown and malformed names
    assert "No environment `web/qa`" in _slash(run, "destroy web/qa")
    assert "Usage: `/ecs-deploy destroy" in _slash(run, "destroy")
