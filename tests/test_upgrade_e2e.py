"""Issue 13's "Upgrade", end to end on real parts: the bot's HTTP endpoint (signed Slack requests), the
Slack Web API stand-in, a real Redis, RQ burst workers, moto and a real Terraform on the test repository
(tests/tfrepo) served from a local BARE git repository (the workspaces' origin and the configuration's
push target; conftest's `pipeline_run` as tests/test_environment_lifecycle_e2e.py configures it).

1. web/dev is created (small) at the head of main → deployed; its branch has one configuration commit;
2. a new version of the Terraform modules is pushed to main (a new `terraform_data` resource);
3. `/ecs-deploy upgrade web/dev` → the confirmation naming the new head → submit → an UPGRADE
   deployment at ref main → verify, workspace at the new head, plan: exactly the new resource to add;
4. a lead approves → apply → deployed; the environment is at the new head, the new resource is in the
   state, and the branch got a second commit whose `Applied-commit:` trailer is the new head;
5. a second `/ecs-deploy upgrade web/dev` says it is already at the head and creates nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from core.environments import EnvironmentStatus
from core.lifecycle import DeploymentKind
from storage.environments import EnvironmentStore
from tests.harness.flow import (
    REQUESTER,
    PipelineRun,
    approve_and_apply,
    command_opens,
    created_environment,
    state_resources,
    submit_modal,
)
from tests.harness.processes import run_worker_burst
from tests.harness.tfrepo import git
from tests.test_environment_lifecycle_e2e import (  # the bare repository's bot and workers
    DEV,
    config_commits,
    new_ids,
    pipeline_env,  # noqa: F401  (fixtures: the bare repository and the policy of pipeline_run)
    plan_message_text,
    policy_yaml,  # noqa: F401
    trailers_at,
)

pytestmark = pytest.mark.e2e

CHANGE_CALLBACK = "ecs_deploy_change"
NEW_RESOURCE = "upgrade_marker"  # the resource the new version of the modules adds
NEW_MODULES = f"""
resource "terraform_data" "{NEW_RESOURCE}" {{
  input = "modules v2 for ${{var.application}}-${{var.environment}}"
}}
"""


def push_new_version(remote: Path, work: Path) -> str:
    """A new version of the Terraform repository on main, pushed to the bare `remote` from a clone in
    `work` as a module maintainer would: main.tf gains one resource. Returns the new head."""
    git(work.parent, "clone", "--quiet", str(remote), str(work))
    with (work / "main.tf").open("a") as main_tf:
        main_tf.write(NEW_MODULES)
    git(work, "add", "main.tf")
    git(work, "commit", "--quiet", "-m", "modules v2: a new resource")
    git(work, "push", "--quiet", "origin", "HEAD:main")
    return git(work, "rev-parse", "HEAD")


def test_upgrade_rolls_the_new_modules_out_to_an_environment(
    pipeline_run: PipelineRun,
    redis_conn: redis.Redis,
    tmp_path: Path,
) -> None:
    run = pipeline_run
    slack, api, store, env = run
    remote = Path(env["ECS_DEPLOY_REPO_URL"])
    base = git(remote, "rev-parse", "main")
    environments = EnvironmentStore(redis_conn)

    # 1. web/dev (small) created through the whole pipeline, at the head of main
    created_id = created_environment(run, "V-CREATE")
    bucket = store.get(created_id).request.state_bucket
    dev = environments.find(DEV)
    assert dev is not None and dev.status is EnvironmentStatus.LIVE and dev.repo_commit == base
    [first] = config_commits(remote, DEV)
    assert NEW_RESOURCE not in state_resources(bucket)

    # 2. the modules' maintainers push a new version to the configured ref (main)
    head = push_new_version(remote, tmp_path / "maintainer")
    assert head != base and git(remote, "rev-parse", "main") == head

    # 3. /ecs-deploy upgrade web/dev: the confirmation names the commits it moves between; submit
    view = command_opens(slack, api, "upgrade web/dev")
    assert view["callback_id"] == CHANGE_CALLBACK
    shown = json.dumps(view["blocks"], ensure_ascii=False)
    assert base[:12] in shown and head[:12] in shown, shown
    before = {d.id for d in store.recent(limit=50)}
    ok = submit_modal(slack, view, {}, user=REQUESTER, view_id="V-UPGRADE")
    assert ok.text in ("", "{}"), ok.text
    [upgrade_id] = new_ids(store, before)
    upgrade = store.get(upgrade_id)
    assert upgrade.kind is DeploymentKind.UPGRADE
    assert (upgrade.repo_ref, upgrade.repo_commit) == ("main", None)
    assert upgrade.request == store.get(created_id).request  # only the ref moves
    assert upgrade.extra_values == store.get(created_id).extra_values
    dev = environments.find(DEV)
    assert dev is not None and dev.deployments == [created_id, upgrade_id]

    # verify → workspace at the new head → plan against the live state: exactly the new resource
    run_worker_burst(env)
    upgrade = store.get(upgrade_id)
    assert upgrade.status.value == "awaiting_approval", upgrade.status_detail
    assert upgrade.workspace is not None and upgrade.workspace.commit == head
    assert upgrade.plan is not None and upgrade.plan.has_changes
    assert "1 to add, 0 to change, 0 to destroy" in upgrade.plan.sentence, upgrade.plan.sentence
    plan_message = plan_message_text(api, upgrade.thread_ts)
    assert f"terraform_data.{NEW_RESOURCE}` will be created" in plan_message, plan_message
    assert plan_message.count("will be created") == 1, plan_message
    for other in ("will be updated", "will be *destroyed*", "will be *replaced*"):
        assert other not in plan_message, plan_message

    # 4. a lead approves; the apply adds the new resource; the environment moves to the new head
    upgrade = approve_and_apply(run, upgrade_id)
    assert upgrade.status.value == "deployed", upgrade.status_detail
    assert NEW_RESOURCE in state_resources(bucket)
    dev = environments.find(DEV)
    assert dev is not None and dev.status is EnvironmentStatus.LIVE
    assert dev.repo_commit == head and dev.request.size.value == "small"
    assert [c.deployment_id for c in dev.changes] == [created_id, upgrade_id]
    assert dev.changes[-1].kind is DeploymentKind.UPGRADE and dev.changes[-1].repo_commit == head
    commits = config_commits(remote, DEV)
    assert len(commits) == 2 and commits[0] == first
    trailers = trailers_at(remote, commits[1])
    assert trailers["Applied-commit"] == head, trailers
    assert trailers["Ecs-Deploy-Deployment"] == upgrade_id, trailers
    assert trailers["Ecs-Deploy-Kind"] == "upgrade", trailers
    assert dev.config is not None and (dev.config.commit, dev.config.pushed) == (commits[1], True)

    # 5. a second upgrade: already at the head; no modal, no deployment, no job
    before = {d.id for d in store.recent(limit=50)}
    opened = len(api.calls_to("views.open"))
    queued = int(redis_conn.llen("rq:queue:ecs-deploy"))
    slack.slash_command("upgrade web/dev", user=REQUESTER)
    said = api.wait_for(
        "chat.postEphemeral",
        lambda c: c.params.get("user") == REQUESTER and "already at the head" in c.params.get("text", ""),
    )
    assert head[:12] in said.params["text"], said.params["text"]
    assert len(api.calls_to("views.open")) == opened
    assert new_ids(store, before) == [] and int(redis_conn.llen("rq:queue:ecs-deploy")) == queued
    dev = environments.find(DEV)
    assert dev is not None and dev.deployments == [created_id, upgrade_id]
