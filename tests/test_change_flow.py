"""Changing and upgrading a live environment, on real parts: the bot's HTTP endpoint (signed Slack
requests), the Slack Web API stand-in, a real Redis, RQ workers, moto and a real Terraform on the test
repository (tests/tfrepo).

The end-to-end test creates web/dev (small) through the whole pipeline, then changes it to medium
through `/ecs-deploy change web/dev`: the modal is pre-filled with the live values, a bad tag and an
unchanged form are refused on their fields, the CHANGE deployment opens a new thread that links to
the first one, its plan adds the medium resources, a lead approves it and it is applied. The other
tests store environment records directly (as the worker's `record_apply` leaves them) to check the
refusals, the button, the upgrade, and the workspace's checkout of a deployment's own ref.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis

from core.changes import (
    Blocked,
    ChangeForm,
    ChangeWarning,
    blocked,
    check_ref,
    current_form,
    plan_change,
    upgrade_blocked,
)
from core.environments import (
    ALARM_EMAILS,
    DNS_NAME,
    Environment,
    EnvironmentChange,
    EnvironmentStatus,
    after_apply,
    environment_key,
)
from core.lifecycle import DeploymentKind
from core.models import Deployment, DeploymentStatus, utcnow
from storage.environments import EnvironmentStore
from storage.store import DeploymentStore
from tests.harness.flow import (
    LEAD,
    OTHER,
    REQUESTER,
    PipelineRun,
    approve_and_apply,
    change_values,
    command_opens,
    created_environment,
    eventually,
    inputs,
    opened_view,
    state_resources,
    submit_modal,
)
from tests.harness.processes import run_worker_burst, web_bot, with_policy
from tests.harness.records import applied_environment, deployment_record, deployment_request
from tests.harness.slack_api import SlackApiStandIn
from tests.harness.slack_requests import SlackClientSim
from tests.harness.tfrepo import MEDIUM_ONLY, commit_file, git, make_git_repo
from workers.workspace import WorkspaceManager

pytestmark = pytest.mark.e2e

KEY = "web-dev-123456789012-us-east-1"
CHANGE_CALLBACK = "ecs_deploy_change"


# -- helpers ----------------------------------------------------------------------------------------


def view_text(view: dict[str, Any]) -> str:
    return json.dumps(view["blocks"], ensure_ascii=False)


def live_environment(
    redis_conn: redis.Redis,
    *,
    commit: str = "0" * 40,
    size: str = "small",
    account_id: str = "123456789012",
    status: EnvironmentStatus = EnvironmentStatus.LIVE,
    open_deployment: Deployment | None = None,
) -> Environment:
    """web/dev as `record_apply` leaves it after its first apply (thread 1700000000.000100 in
    #deploys), with `open_deployment` as its newest deployment."""
    request = deployment_request(size=size, account_id=account_id, additional_tags={"team": "platform"})
    return applied_environment(
        redis_conn,
        request,
        REQUESTER,
        approver_id=LEAD,
        commit=commit,
        thread_ts="1700000000.000100",
        status=status,
        open_deployment=open_deployment,
    )


def recorded_environment(redis_conn: redis.Redis, deployment: Deployment) -> Environment:
    """The environment the create left: the worker's record when it wrote one, else the same record
    made by core.environments.after_apply from the applied deployment."""
    environments = EnvironmentStore(redis_conn)
    found = environments.find(KEY)
    if found is not None:
        return found
    assert deployment.approval.binding is not None and deployment.workspace is not None
    change = EnvironmentChange(
        deployment_id=deployment.id,
        kind=deployment.kind,
        requester_id=deployment.requester_id,
        approver_ids=[a.approver_id for a in deployment.approval.current_approvals],
        plan_sha256=deployment.approval.binding.plan_sha256,
        repo_commit=deployment.workspace.commit,
        applied_at=utcnow(),
        channel_id=deployment.channel_id,
        thread_ts=deployment.thread_ts,
    )
    environment = after_apply(
        None,
        deployment=deployment,
        change=change,
        tfvars_sha256=deployment.workspace.tfvars_sha256,
        outputs={},
    )
    return environments.put(environment)


# -- the whole change, on real Terraform -------------------------------------------------------------


def test_change_small_to_medium_end_to_end(pipeline_run: PipelineRun, redis_conn: redis.Redis) -> None:
    slack, api, store, env = pipeline_run
    # 1. web/dev is created (small) through the pipeline and applied
    created = store.get(created_environment(pipeline_run, "V-CREATE"))
    bucket = created.request.state_bucket
    assert not set(MEDIUM_ONLY) & state_resources(bucket)
    environment = recorded_environment(redis_conn, created)
    assert environment.request.size.value == "small" and created.thread_ts

    # 2. the change modal, pre-filled with the live values; the locked fields shown with why
    view = command_opens(slack, api, "change web/dev")
    assert view["callback_id"] == CHANGE_CALLBACK
    assert inputs(view) == {
        "size": "small",
        "additional_tags": "team=platform",
        f"var:{ALARM_EMAILS}": "ops@example.com",
        f"var:{DNS_NAME}": "web.example.com",
        "repo_ref": environment.repo_commit,
    }
    shown = view_text(view)
    assert "Locked" in shown and "VPC CIDR" in shown and "replace" in shown

    # 3. a bad tag, then an unchanged form: refused on their fields, nothing stored
    before = {d.id for d in store.recent(limit=50)}
    bad = submit_modal(
        slack, view, change_values(size="medium", tags="aws:owner=me"), user=REQUESTER, view_id="V-C1"
    )
    assert "reserved 'aws:' prefix" in bad.json()["errors"]["additional_tags"]
    same = change_values(ref=environment.repo_commit)
    unchanged = submit_modal(slack, view, same, user=REQUESTER, view_id="V-C2")
    assert "Nothing would change" in unchanged.json()["errors"]["size"]
    assert {d.id for d in store.recent(limit=50)} == before

    # 4. small -> medium: a CHANGE deployment pinned to the applied commit, in a new thread that
    #    links to the first one, appended to the environment
    ok = submit_modal(slack, view, change_values(size="medium"), user=REQUESTER, view_id="V-C3")
    assert ok.text in ("", "{}"), ok.text
    [change_id] = [d.id for d in store.recent(limit=50) if d.id not in before]
    change = store.get(change_id)
    assert change.kind is DeploymentKind.CHANGE and change.request.size.value == "medium"
    assert change.repo_commit == environment.repo_commit and change.repo_ref is None
    assert change.request.vpc_cidr_block == created.request.vpc_cidr_block
    assert change.extra_values == created.extra_values
    first_thread = f"https://slack.com/archives/C_DEPLOYS/p{created.thread_ts.replace('.', '')}"
    assert change.previous_threads == [first_thread]
    assert change_id in EnvironmentStore(redis_conn).find(KEY).deployments  # type: ignore[union-attr]
    eventually(lambda: store.get(change_id).thread_ts is not None)
    thread = store.get(change_id).thread_ts
    assert thread and thread != created.thread_ts
    root = json.dumps(api.messages[thread], ensure_ascii=False)
    assert "Change of a live ECS environment requested" in root and first_thread in root
    eventually(lambda: any("size" in t and "medium" in t for t in api.thread_texts(thread)))

    # 5. a second change while this one is open is refused with a link to it
    refused = slack.slash_command("change web/dev", user=REQUESTER)
    assert "not finished yet" in refused.text and change_id in refused.text

    # 6. verify -> workspace at the applied commit -> plan against the live state: medium adds
    run_worker_burst(env)
    change = store.get(change_id)
    assert change.status.value == "awaiting_approval", change.status_detail
    assert change.workspace is not None and change.workspace.commit == environment.repo_commit
    assert change.plan is not None and change.plan.has_changes
    added = int(change.plan.sentence.split(" to add")[0].split()[-1])
    assert added >= len(MEDIUM_ONLY), change.plan.sentence

    # 7. a lead approves; the apply adds the medium resources to the live state
    change = approve_and_apply(pipeline_run, change_id)
    assert change.status.value == "deployed", change.status_detail
    assert set(MEDIUM_ONLY) <= state_resources(bucket)


# -- refusals, the button, the upgrade (environment records stored directly) ------------------------


def test_refusals_name_what_exists(bot: SlackClientSim, redis_conn: redis.Redis) -> None:
    live_environment(redis_conn)
    missing = bot.slash_command("change web/qa", user=REQUESTER)
    assert "no environment web/qa" in missing.text and "web/dev@123456789012/us-east-1" in missing.text
    nothing = bot.slash_command("change api/dev", user=REQUESTER)
    assert "has no environments yet" in nothing.text
    usage = bot.slash_command("change", user=REQUESTER)
    assert "Usage: `/ecs-deploy change" in usage.text

    live_environment(redis_conn, account_id="210987654321")
    several = bot.slash_command("upgrade web/dev", user=REQUESTER)
    assert "more than one account or region" in several.text
    assert "/ecs-deploy upgrade web/dev@210987654321/us-east-1" in several.text


def test_destroyed_and_open_environments_are_refused(
    bot: SlackClientSim, redis_conn: redis.Redis, slack_api: SlackApiStandIn
) -> None:
    live_environment(redis_conn, status=EnvironmentStatus.DESTROYED)
    destroyed = bot.slash_command("change web/dev", user=REQUESTER)
    assert "was destroyed" in destroyed.text
    redis_conn.flushall()
    running = deployment_record(REQUESTER, kind=DeploymentKind.CHANGE, status=DeploymentStatus.PLANNING)
    live_environment(redis_conn, open_deployment=running)
    opened = len(slack_api.calls_to("views.open"))
    busy = bot.slash_command("change web/dev", user=OTHER)
    assert "not finished yet" in busy.text and running.id in busy.text
    assert len(slack_api.calls_to("views.open")) == opened, "no form for a refused change"


def test_policy_refuses_who_may_not_request(
    bot_env: dict[str, str], slack_api: SlackApiStandIn, redis_conn: redis.Redis, aws: Any, tmp_path: Path
) -> None:
    policy = (
        f"defaults:\n  approvers: [{LEAD}]\n  environments:\n    dev:\n"
        f"profiles:\n  deployer:\n    requesters: [{REQUESTER}]\n"
    )
    live_environment(redis_conn)
    with web_bot(with_policy(bot_env, tmp_path, policy)) as slack:
        refused = slack.slash_command("change web/dev", user=OTHER)
        assert refused.status_code == 200 and "deployer" in refused.text, refused.text
        assert refused.text.startswith(":no_entry:")
        before = len(slack_api.calls_to("views.open"))
        allowed = slack.slash_command("change web/dev", user=REQUESTER)
        assert allowed.text == ""
        assert opened_view(slack_api, before)["callback_id"] == CHANGE_CALLBACK


def test_change_button_opens_the_form_and_a_refusal_in_its_place(
    bot: SlackClientSim, redis_conn: redis.Redis, slack_api: SlackApiStandIn
) -> None:
    live_environment(redis_conn, size="medium")
    before = len(slack_api.calls_to("views.open"))
    bot.block_action("environment_change", KEY, user=REQUESTER)
    view = opened_view(slack_api, before)
    assert view["callback_id"] == CHANGE_CALLBACK and inputs(view)["size"] == "medium"

    before = len(slack_api.calls_to("views.open"))
    bot.block_action("environment_change", "web-gone-123456789012-us-east-1", user=REQUESTER)
    notice = opened_view(slack_api, before)
    assert "callback_id" not in notice or notice.get("callback_id") != CHANGE_CALLBACK
    assert "no longer known" in view_text(notice)


def test_smaller_size_and_new_ref_warn_and_unpin_the_commit(
    bot: SlackClientSim, redis_conn: redis.Redis, slack_api: SlackApiStandIn
) -> None:
    environment = live_environment(redis_conn, size="medium")
    view = command_opens(bot, slack_api, "change web/dev")
    values = change_values(size="small", dns="app.example.com", ref="release-2")
    response = submit_modal(bot, view, values, user=REQUESTER, view_id="V-SMALLER")
    assert response.text in ("", "{}"), response.text
    store = DeploymentStore(redis_conn)
    [change] = [d for d in store.recent(limit=10) if d.kind is DeploymentKind.CHANGE]
    assert change.repo_ref == "release-2" and change.repo_commit is None
    assert change.extra_values[DNS_NAME] == "app.example.com"
    assert change.extra_values[ALARM_EMAILS] == environment.extra_values[ALARM_EMAILS]
    eventually(lambda: store.get(change.id).thread_ts is not None)
    thread = store.get(change.id).thread_ts or ""
    eventually(lambda: any("A smaller size removes resources" in t for t in slack_api.thread_texts(thread)))
    texts = "\n".join(slack_api.thread_texts(thread))
    assert "Other Terraform code" in texts and "app.example.com" in texts

    again = submit_modal(bot, view, values, user=REQUESTER, view_id="V-SMALLER")  # Slack's retry
    assert again.status_code == 200
    assert [d.id for d in store.recent(limit=10) if d.kind is DeploymentKind.CHANGE] == [change.id]


def test_upgrade_to_the_head_of_the_configured_ref(
    pipeline_run: PipelineRun, redis_conn: redis.Redis, tmp_path: Path
) -> None:
    slack, api, store, env = pipeline_run
    repo = Path(env["ECS_DEPLOY_REPO_URL"])
    head = git(repo, "rev-parse", "HEAD")
    live_environment(redis_conn, commit=head)

    at_head = len(api.calls_to("views.open"))
    slack.slash_command("upgrade web/dev", user=REQUESTER)
    call = api.wait_for("chat.postEphemeral", lambda c: "already at the head" in c.params.get("text", ""))
    assert call.params["user"] == REQUESTER
    assert (
        len(api.calls_to("views.open")) == at_head and store.recent(limit=10)[0].kind is DeploymentKind.CREATE
    )

    newer = commit_file(repo, "NOTES.md", "newer modules\n", "newer modules")
    view = command_opens(slack, api, "upgrade web/dev")
    assert view["callback_id"] == CHANGE_CALLBACK and newer[:12] in view_text(view)
    response = submit_modal(slack, view, {}, user=REQUESTER, view_id="V-UPGRADE")
    assert response.text in ("", "{}"), response.text
    [upgrade] = [d for d in store.recent(limit=10) if d.kind is DeploymentKind.UPGRADE]
    assert upgrade.repo_ref == "main" and upgrade.repo_commit is None
    assert upgrade.request == store.get(EnvironmentStore(redis_conn).find(KEY).deployments[0]).request  # type: ignore[union-attr]
    assert upgrade.id in EnvironmentStore(redis_conn).find(KEY).deployments  # type: ignore[union-attr]


def test_workspace_checks_out_the_deployments_own_ref(tmp_path: Path) -> None:
    repo, first = make_git_repo(tmp_path)
    git(repo, "checkout", "--quiet", "-b", "release-2")
    second = commit_file(repo, "NOTES.md", "release 2\n", "release 2")
    git(repo, "checkout", "--quiet", "main")
    manager = WorkspaceManager(tmp_path / "data", str(repo), "main")
    assert manager.prepare("d-main").commit == first
    own = manager.prepare("d-own", ref="release-2")
    assert own.commit == second and own.ref == "release-2" and (own.path / "NOTES.md").is_file()
    assert manager.prepare("d-pinned", commit=first, ref="release-2").commit == first


# -- the pure rules (core/changes.py) ----------------------------------------------------------------


def _environment(commit: str = "ab" * 20) -> Environment:
    at = utcnow()
    return Environment(
        key=environment_key(deployment_request()),
        request=deployment_request(size="medium", additional_tags={"team": "platform"}),
        extra_values={ALARM_EMAILS: ["ops@example.com"], DNS_NAME: "web.example.com"},
        repo_commit=commit,
        created_at=at,
        updated_at=at,
    )


def test_a_change_keeps_the_locked_fields_and_says_what_it_changes() -> None:
    environment = _environment()
    now = current_form(environment)
    assert plan_change(environment, now).changed == []
    assert plan_change(environment, now.model_copy(update={"repo_ref": "abababa"})).changed == []  # a prefix
    form = ChangeForm(
        size="small", additional_tags={"team": "web"}, alarm_emails=("a@example.com",), repo_ref="v2"
    )
    planned = plan_change(environment, form)
    assert planned.changed == ["size", "additional_tags", ALARM_EMAILS, "repo_ref"]
    assert planned.warnings == [ChangeWarning.SMALLER_SIZE, ChangeWarning.NEW_REF]
    assert planned.repo_ref == "v2" and planned.repo_commit is None
    assert planned.extra_values[DNS_NAME] == "web.example.com"  # an empty field keeps the value
    request, before = planned.request, environment.request
    assert [getattr(request, f) for f in ("vpc_cidr_block", "state_bucket", "profile")] == [
        getattr(before, f) for f in ("vpc_cidr_block", "state_bucket", "profile")
    ]


def test_refs_blocks_and_heads() -> None:
    assert check_ref(" release/2.1 ") == "release/2.1" and check_ref("") == ""
    for bad in ("-x", "a..b", "a b", "main.lock", "x/"):
        with pytest.raises(ValueError):
            check_ref(bad)
    environment = _environment()
    assert blocked(environment, DeploymentStatus.DEPLOYED) is None
    assert blocked(environment, DeploymentStatus.AWAITING_APPROVAL) is Blocked.OPEN_DEPLOYMENT
    gone = environment.model_copy(update={"status": EnvironmentStatus.DESTROYED})
    assert blocked(gone, None) is Blocked.DESTROYED
    assert upgrade_blocked(environment, environment.repo_commit.upper()) is Blocked.ALREADY_AT_HEAD
    assert upgrade_blocked(environment, None) is None and upgrade_blocked(environment, "cd" * 20) is None
