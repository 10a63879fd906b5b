"""Issue 13's "Done when", on real parts: an environment's whole life through the bot's HTTP endpoint
(signed Slack requests), the Slack Web API stand-in, a real Redis, RQ burst workers, moto and a real
Terraform on the test repository (tests/tfrepo) served from a local BARE git repository, which is
also where the bot pushes each environment's configuration branch.

1. web/dev is created (small) → deployed; the branch `ecs-deploy/{key}` has one commit holding the
   small values (web/prod is created too: the protected environment of step 6);
2. a second request for web/dev starts nothing and offers the change flow;
3. `/ecs-deploy change web/dev` → the pre-filled form → medium → the plan adds the medium resources →
   approval → apply → a second commit holding the medium values;
4. Redis is wiped; `ecs-deploy-bot environments import` restores both environments from the branches,
   and a change (a new tag) works from the restored record → a third commit;
5. `/ecs-deploy destroy web/dev`: typed confirmation (a wrong one is a field error), plan -destroy,
   one approval does not apply ("1 of 2"), a second approver's does; the state ends empty, deployment
   and environment destroyed, and the branch has one commit per apply (4);
6. web/prod, protected by the policy, cannot be destroyed: refused, nothing stored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis

from core.environments import EnvironmentStatus
from core.lifecycle import DeploymentKind
from core.tfvars.reading import read_tfvars
from storage.environments import EnvironmentStore
from storage.store import DeploymentStore
from tests.harness.flow import (
    DESTROY_POLICY,
    LEAD,
    OTHER,
    REQUESTER,
    SECOND_LEAD,
    PipelineRun,
    approve_and_apply,
    change_values,
    click,
    command_opens,
    created_environment,
    eventually,
    inputs,
    opened_view,
    state_resources,
    submit_modal,
)
from tests.harness.processes import cli, run_worker_burst
from tests.harness.slack_api import SlackApiStandIn
from tests.harness.slack_requests import request_values, text_value
from tests.harness.tfrepo import MEDIUM_ONLY, git
from workers.config_repo import parse_trailers

pytestmark = pytest.mark.e2e

DEV = "web-dev-123456789012-us-east-1"
PROD = "web-prod-123456789012-us-east-1"
TFVARS = "tfvars/web-123456789012-us-east-1.tfvars"
METADATA = json.dumps({"channel_id": "C_DEPLOYS", "team_id": "T111"})
CHANGE_CALLBACK, DESTROY_CALLBACK, CONFIRM = "ecs_deploy_change", "ecs_deploy_destroy", "destroy_confirm"


@pytest.fixture
def policy_yaml() -> str:
    """`pipeline_run`'s policy (conftest): destroys need two approvers other than the requester."""
    return DESTROY_POLICY


@pytest.fixture
def pipeline_env(pipeline_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The pipeline's, with the Terraform repository a bare clone of the test repository (the
    workspaces' origin and the configuration's push target)."""
    bare = tmp_path / "poc-idp.git"
    git(tmp_path, "clone", "--quiet", "--bare", pipeline_env["ECS_DEPLOY_REPO_URL"], str(bare))
    return {**pipeline_env, "ECS_DEPLOY_REPO_URL": str(bare)}


# -- reading the bare repository ---------------------------------------------------------------------


def config_commits(remote: Path, key: str) -> list[str]:
    """The configuration commits of the environment's branch (those after main), oldest first."""
    return git(remote, "rev-list", "--reverse", f"main..refs/heads/ecs-deploy/{key}").splitlines()


def tfvars_at(remote: Path, commit: str) -> dict[str, Any]:
    return read_tfvars(git(remote, "show", f"{commit}:{TFVARS}"))


def trailers_at(remote: Path, commit: str) -> dict[str, str]:
    text = git(remote, "log", "-1", "--format=%(trailers:only=true,unfold=true,separator=%x1f)", commit)
    return dict(parse_trailers(text))


# -- Slack --------------------------------------------------------------------------------------------


def new_ids(store: DeploymentStore, before: set[str]) -> list[str]:
    return [d.id for d in store.recent(limit=50) if d.id not in before]


def plan_message_text(api: SlackApiStandIn, thread: str | None) -> str:
    """The thread's plan message (the one with the Approve button), as posted."""
    message, _ = api.find_button(thread or "", "plan_approve")
    return json.dumps(message, ensure_ascii=False)


def jobs(redis_conn: redis.Redis) -> int:
    return int(redis_conn.llen("rq:queue:ecs-deploy"))


def test_create_change_import_change_destroy(pipeline_run: PipelineRun, redis_conn: redis.Redis) -> None:
    run = pipeline_run
    slack, api, store, env = run
    remote = Path(env["ECS_DEPLOY_REPO_URL"])
    base = git(remote, "rev-parse", "main")
    environments = EnvironmentStore(redis_conn)
    s3 = boto3.Session(profile_name="deployer", region_name="us-east-1").client("s3")

    # 1. web/dev (small) created through the whole pipeline; its branch holds one commit, small values
    created_id = created_environment(run, "V-CREATE")
    created = store.get(created_id)
    bucket = created.request.state_bucket
    dev = environments.find(DEV)
    assert dev is not None and dev.status is EnvironmentStatus.LIVE
    assert dev.request.size.value == "small" and dev.repo_commit == base
    [first] = config_commits(remote, DEV)
    assert git(remote, "rev-parse", f"{first}^") == base  # the branch starts at the applied commit
    small = tfvars_at(remote, first)
    assert (small["elasticache_create_instance"], small["docdb_create"], small["rds_instance_count"]) == (
        False,
        False,
        1,
    )
    assert small["sns_monitoring_recepients_email_list"] == ["ops@example.com"]
    assert trailers_at(remote, first)["Ecs-Deploy-Deployment"] == created_id
    assert trailers_at(remote, first)["Ecs-Deploy-Size"] == "small"
    assert dev.config is not None and (dev.config.commit, dev.config.pushed) == (first, True)
    assert not set(MEDIUM_ONLY) & state_resources(bucket)

    # web/prod, protected by the policy (step 6); a deployment of its own, on its own state
    prod_id = created_environment(run, "V-PROD", environment="prod")
    assert len(config_commits(remote, PROD)) == 1

    # 2. a second request for web/dev starts nothing: a field error and a private "Change it" button
    before = {d.id for d in store.recent(limit=50)}
    queued = jobs(redis_conn)
    again = slack.view_submission(
        request_values(account_situation="new"), user=OTHER, private_metadata=METADATA, view_id="V-AGAIN"
    )
    assert again.status_code == 200 and again.json()["response_action"] == "errors"
    error = again.json()["errors"]["application"]
    assert "web/dev already exists" in error and "`/ecs-deploy change web/dev`" in error
    assert new_ids(store, before) == [] and jobs(redis_conn) == queued
    offer = api.wait_for(
        "chat.postEphemeral",
        lambda c: c.params.get("user") == OTHER and "environment_change" in json.dumps(c.params),
    )
    blocks = offer.params["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    [button] = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert (button["text"]["text"], button["value"]) == ("Change it", DEV)
    opened = len(api.calls_to("views.open"))
    slack.block_action(button["action_id"], button["value"], user=OTHER)  # the button opens the form
    offered = opened_view(api, opened)
    assert offered["callback_id"] == CHANGE_CALLBACK and inputs(offered)["size"] == "small"

    # 3. /ecs-deploy change web/dev: pre-filled with the live values → medium
    view = command_opens(slack, api, "change web/dev")
    assert view["callback_id"] == CHANGE_CALLBACK
    assert inputs(view) == {
        "size": "small",
        "additional_tags": "team=platform",
        "var:sns_monitoring_recepients_email_list": "ops@example.com",
        "var:route53_dns_name": "web.example.com",
        "repo_ref": base,
    }
    before = {d.id for d in store.recent(limit=50)}
    ok = submit_modal(slack, view, change_values(size="medium"), user=REQUESTER, view_id="V-CHANGE")
    assert ok.text in ("", "{}"), ok.text
    [change_id] = new_ids(store, before)
    change = store.get(change_id)
    assert change.kind is DeploymentKind.CHANGE and change.request.size.value == "medium"
    assert change.repo_commit == base

    run_worker_burst(env)  # verify → workspace at the applied commit → plan against the live state
    change = store.get(change_id)
    assert change.status.value == "awaiting_approval", change.status_detail
    assert change.plan is not None and change.plan.has_changes
    plan_message = plan_message_text(api, change.thread_ts)
    for name in MEDIUM_ONLY:  # listed under "To add"
        assert f"terraform_data.{name}[0]` will be created" in plan_message, plan_message
    added = int(change.plan.sentence.split(" to add")[0].split()[-1])
    assert added >= len(MEDIUM_ONLY), change.plan.sentence

    change = approve_and_apply(run, change_id)
    assert change.status.value == "deployed", change.status_detail
    assert set(MEDIUM_ONLY) <= state_resources(bucket)
    commits = config_commits(remote, DEV)
    assert len(commits) == 2 and commits[0] == first
    medium = tfvars_at(remote, commits[1])
    assert (medium["elasticache_create_instance"], medium["docdb_create"], medium["rds_instance_count"]) == (
        True,
        True,
        2,
    )
    assert trailers_at(remote, commits[1])["Ecs-Deploy-Kind"] == "change"
    assert trailers_at(remote, commits[1])["Ecs-Deploy-Size"] == "medium"

    # 4. Redis is lost; the registry comes back from the branches, and a change works from it
    redis_conn.flushall()
    assert environments.all() == [] and store.recent(limit=50) == []
    result = cli("environments", "import", env={**os.environ, **env})
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{DEV}: imported" in result.stdout and f"{PROD}: imported" in result.stdout, result.stdout
    assert "2 of 2 environment(s) imported" in result.stdout, result.stdout
    dev = environments.find(DEV)
    assert dev is not None and dev.status is EnvironmentStatus.LIVE
    assert dev.request.size.value == "medium" and dev.repo_commit == base
    assert [c.deployment_id for c in dev.changes] == [created_id, change_id]
    assert dev.config is not None and dev.config.commit == commits[1]

    view = command_opens(slack, api, "change web/dev")
    assert inputs(view)["size"] == "medium" and inputs(view)["repo_ref"] == base
    before = {d.id for d in store.recent(limit=50)}
    tagged = change_values(size="medium", tags="team=platform\nowner=ops")
    ok = submit_modal(slack, view, tagged, user=REQUESTER, view_id="V-TAG")
    assert ok.text in ("", "{}"), ok.text
    [tag_id] = new_ids(store, before)
    assert len(store.get(tag_id).previous_threads) == 2  # the threads of the two imported applies
    run_worker_burst(env)
    tag_change = store.get(tag_id)
    assert tag_change.status.value == "awaiting_approval", tag_change.status_detail
    assert tag_change.plan is not None and tag_change.plan.has_changes
    tag_change = approve_and_apply(run, tag_id)
    assert tag_change.status.value == "deployed", tag_change.status_detail
    commits = config_commits(remote, DEV)
    assert len(commits) == 3
    third = tfvars_at(remote, commits[2])
    assert third["additional_tags"] == {"team": "platform", "owner": "ops"}
    assert third["elasticache_create_instance"] is True
    assert trailers_at(remote, commits[2])["Ecs-Deploy-Deployment"] == tag_id

    # 5. destroy: the typed confirmation, then two approvers other than the requester
    view = command_opens(slack, api, "destroy web/dev")
    assert view["callback_id"] == DESTROY_CALLBACK
    before = {d.id for d in store.recent(limit=50)}
    wrong = submit_modal(slack, view, {CONFIRM: text_value("web/prod")}, user=REQUESTER, view_id="V-D1")
    assert "Type exactly web/dev" in wrong.json()["errors"][CONFIRM]
    assert new_ids(store, before) == []
    ok = submit_modal(slack, view, {CONFIRM: text_value("web/dev")}, user=REQUESTER, view_id="V-D2")
    assert ok.text in ("", "{}"), ok.text
    [destroy_id] = new_ids(store, before)
    assert store.get(destroy_id).kind is DeploymentKind.DESTROY

    run_worker_burst(env)  # verify → the last apply's files → terraform plan -destroy
    destroy = store.get(destroy_id)
    assert destroy.status.value == "awaiting_approval", destroy.status_detail
    assert destroy.approval.required_approvals == 2
    thread = destroy.thread_ts or ""
    assert "This destroys the environment" in "\n".join(api.thread_texts(thread))

    click(slack, api, thread, "plan_approve", LEAD)
    eventually(lambda: "Destroy approval 1 of 2" in "\n".join(api.thread_texts(thread)))
    assert store.get(destroy_id).status.value == "awaiting_approval"
    assert jobs(redis_conn) == 0, "one approval queues no apply"
    run_worker_burst(env)  # nothing to run: one approval applies nothing
    assert store.get(destroy_id).status.value == "awaiting_approval"
    assert set(MEDIUM_ONLY) <= state_resources(bucket)

    destroy = approve_and_apply(run, destroy_id, approver=SECOND_LEAD)
    assert destroy.status.value == "destroyed", destroy.status_detail
    assert destroy.approval.approver_ids == [LEAD, SECOND_LEAD]
    state = json.loads(s3.get_object(Bucket=bucket, Key=created.request.state_key)["Body"].read())
    assert state["resources"] == []
    dev = environments.find(DEV)
    assert dev is not None and dev.status is EnvironmentStatus.DESTROYED
    commits = config_commits(remote, DEV)
    assert len(commits) == 4, "one commit per apply: create, change, change, destroy"
    assert trailers_at(remote, commits[3])["Ecs-Deploy-Kind"] == "destroy"
    assert tfvars_at(remote, commits[3]) == third  # the files as they were at the last apply

    # 6. web/prod is protected: refused when asked for, and a forged confirmation is refused too
    prod = environments.find(PROD)
    assert prod is not None and prod.status is EnvironmentStatus.LIVE and prod.deployments == [prod_id]
    before = {d.id for d in store.recent(limit=50)}
    opened = len(api.calls_to("views.open"))
    refused = slack.slash_command("destroy web/prod", user=REQUESTER)
    assert "is protected by the access policy" in refused.text, refused.text
    assert len(api.calls_to("views.open")) == opened, "no confirmation modal"
    forged_metadata = json.dumps({"environment_key": PROD, "channel_id": "C_DEPLOYS", "team_id": "T111"})
    forged = slack.view_submission(
        {CONFIRM: text_value("web/prod")},
        user=REQUESTER,
        private_metadata=forged_metadata,
        callback_id=DESTROY_CALLBACK,
        view_id="V-FORGED",
    )
    assert "is protected by the access policy" in forged.json()["errors"][CONFIRM]
    assert new_ids(store, before) == [] and jobs(redis_conn) == 0
    prod = environments.find(PROD)
    assert prod is not None and prod.status is EnvironmentStatus.LIVE and prod.deployments == [prod_id]
    assert state_resources(bucket, prod.request.state_key)
    assert len(config_commits(remote, PROD)) == 1
