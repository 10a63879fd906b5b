"""Issue 10, finding 7: guests and people of other organisations never count as approvers.

The attack: an approver list that reaches beyond the workspace's full members — a user group that
holds a guest, a Slack Connect user named by id, or `approvers: ["*"]` — lets two such people approve
a two-approver `prod` plan. Through the bot's real HTTP endpoint, with users.info and auth.test
answered by the Slack stand-in like Slack does, their clicks are refused and recorded; two full
members still approve. `"*"` itself needs `allow_everyone: true`, and `doctor` warns about it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from slack_sdk import WebClient

from bot.directory import GroupDirectory
from bot.doctor import check_policy
from core.approval import ApprovalState, new_plan
from core.models import Deployment, DeploymentStatus
from core.policy.errors import PolicyError
from core.policy.loading import load_policy
from core.policy.principals import SlackMember
from core.settings import Settings
from storage.audit import AuditTrail
from storage.store import DeploymentStore
from tests.harness.flow import ephemeral_to, eventually
from tests.harness.processes import WebProcess, with_policy
from tests.harness.records import deployment_request, plan_binding, planned_deployment
from tests.harness.slack_api import BOT_TOKEN, TEAM_ID, SlackApiStandIn
from tests.harness.slack_requests import SlackClientSim

pytestmark = pytest.mark.e2e

LEAD, GROUP_LEAD, LATE_LEAD = "U0LEAD0001", "U0LEAD0002", "U0LEAD0003"
GUEST, GROUP_GUEST, STRANGER = "U0GUEST001", "U0GUEST002", "U0EXTERN01"
LEADS = "S0LEADS001"
REQUESTER = "U0REQUEST1"
QUEUE_KEY = "rq:queue:ecs-deploy"

# Valid before and after the fix: the approvers are named, one group holds a guest.
POLICY = f"""
defaults:
  requesters: ["*"]
  environments:
    dev:
    prod: {{required_approvals: 2}}
profiles:
  deployer:
    approvers: [{LEAD}, {LATE_LEAD}, {GUEST}, {STRANGER}, {LEADS}]
"""


@pytest.fixture(scope="module")
def membership_web(bot_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebProcess]:
    web = WebProcess(with_policy(bot_env, tmp_path_factory.mktemp("membership"), POLICY)).start()
    yield web
    web.stop()


@pytest.fixture
def slack(membership_web: WebProcess, slack_api: SlackApiStandIn, redis_conn: redis.Redis) -> SlackClientSim:
    slack_api.usergroups[LEADS] = [GROUP_LEAD, GROUP_GUEST]
    slack_api.users[GUEST] = {"is_restricted": True}  # multi-channel guest
    slack_api.users[GROUP_GUEST] = {"is_ultra_restricted": True}  # single-channel guest
    slack_api.users[STRANGER] = {"team_id": "T0OTHERORG"}  # Slack Connect: another organisation
    return SlackClientSim(membership_web.events_url)


def plan_waiting_for_approval(
    store: DeploymentStore, api: SlackApiStandIn
) -> tuple[Deployment, dict[str, Any]]:
    """A prod deployment whose plan (attempt 1) needs two approvals, with its plan message in the thread."""
    client = WebClient(token=BOT_TOKEN, base_url=api.base_url)
    binding = plan_binding()
    deployment = planned_deployment(
        api,
        REQUESTER,
        "Plan: 3 to add, 0 to change, 0 to destroy.",
        plan_fields={"created_at": binding.plan_created_at},
        request=deployment_request(environment="prod"),
        team_id=TEAM_ID,
        status=DeploymentStatus.AWAITING_APPROVAL,
        approval=new_plan(ApprovalState(), binding, required_approvals=2),
    )
    created, _ = store.create(deployment)
    buttons = {
        "type": "actions",
        "elements": [{"type": "button", "action_id": "plan_approve", "value": f"{created.id}:1"}],
    }
    posted = client.chat_postMessage(
        channel="C_DEPLOYS", thread_ts=created.thread_ts, text="Plan", blocks=[buttons]
    )
    return created, {"ts": posted["ts"], "text": "Plan", "blocks": [buttons]}


def approve(slack: SlackClientSim, deployment: Deployment, message: dict[str, Any], user: str) -> None:
    response = slack.block_action(
        "plan_approve", f"{deployment.id}:1", user=user, message_ts=message["ts"], message=message
    )
    assert response.status_code == 200


def test_guests_and_other_organisations_cannot_approve_a_two_approver_prod_plan(
    slack: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis
) -> None:
    store = DeploymentStore(redis_conn)
    deployment, message = plan_waiting_for_approval(store, slack_api)

    for user, why in (
        (GUEST, "Guests of this workspace cannot approve plans"),
        (GROUP_GUEST, "Guests of this workspace cannot approve plans"),
        (STRANGER, "another organisation's Slack workspace"),
    ):
        approve(slack, deployment, message, user)
        ephemeral_to(slack_api, user, why)

    after = store.get(deployment.id)
    assert after.status is DeploymentStatus.AWAITING_APPROVAL
    assert after.approval.approver_ids == [] and not after.approval.is_ready
    assert redis_conn.llen(QUEUE_KEY) == 0  # no apply was queued
    refused = [
        e for e in AuditTrail(redis_conn).for_deployment(deployment.id) if e.event == "approval_refused"
    ]
    assert [(e.actor, e.detail["outcome"]) for e in refused] == [
        (GUEST, "refused_not_full_member"),
        (GROUP_GUEST, "refused_not_full_member"),
        (STRANGER, "refused_not_full_member"),
    ]
    looked_up = {c.params["user"] for c in slack_api.calls_to("users.info")}
    assert {GUEST, GROUP_GUEST, STRANGER} <= looked_up

    # Two full members — one named, one through the same group — still approve, and it is applied.
    approve(slack, deployment, message, LEAD)
    eventually(lambda: store.get(deployment.id).approval.approver_ids == [LEAD])
    approve(slack, deployment, message, GROUP_LEAD)
    eventually(lambda: store.get(deployment.id).status is DeploymentStatus.APPROVED)
    assert store.get(deployment.id).approval.approver_ids == [LEAD, GROUP_LEAD]
    assert redis_conn.llen(QUEUE_KEY) == 1


def test_an_approval_does_not_count_while_slack_cannot_say_who_clicked(
    slack: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis
) -> None:
    store = DeploymentStore(redis_conn)
    deployment, message = plan_waiting_for_approval(store, slack_api)
    slack_api.fail("users.info", "user_not_visible")

    approve(slack, deployment, message, LATE_LEAD)
    ephemeral_to(slack_api, LATE_LEAD, "could not confirm with Slack that you are a full member")
    assert store.get(deployment.id).approval.approver_ids == []

    approve(slack, deployment, message, LATE_LEAD)  # Slack answers again: nothing negative was cached
    eventually(lambda: store.get(deployment.id).approval.approver_ids == [LATE_LEAD])


# -- the directory, against the stand-in ------------------------------------------------------------


def test_directory_reads_the_facts_and_the_workspace_and_fails_closed(slack_api: SlackApiStandIn) -> None:
    client = WebClient(token=BOT_TOKEN, base_url=slack_api.base_url)
    slack_api.users[GUEST] = {"is_ultra_restricted": True}
    slack_api.fail("auth.test", "invalid_auth")
    directory = GroupDirectory(client, [], ttl_seconds=3600)

    unknown = directory.identity(LEAD)
    assert unknown.workspace_team_id is None  # auth.test failed: no workspace, no approval
    assert unknown.member == SlackMember(team_id=TEAM_ID)

    guest = directory.identity(GUEST)
    assert guest.workspace_team_id == TEAM_ID
    assert guest.member == SlackMember(team_id=TEAM_ID, is_ultra_restricted=True)

    lookups = len(slack_api.calls_to("users.info"))
    assert directory.identity(GUEST).member == guest.member  # cached within the TTL
    assert len(slack_api.calls_to("users.info")) == lookups

    slack_api.fail("users.info", "user_not_found")
    assert directory.identity(STRANGER).member is None


def test_directory_does_not_use_a_stale_answer_once_the_ttl_is_over(slack_api: SlackApiStandIn) -> None:
    client = WebClient(token=BOT_TOKEN, base_url=slack_api.base_url)
    directory = GroupDirectory(client, [], ttl_seconds=0)
    assert directory.identity(LEAD).member == SlackMember(team_id=TEAM_ID)
    slack_api.users[LEAD] = {"is_restricted": True}  # made a guest
    assert directory.identity(LEAD).member == SlackMember(team_id=TEAM_ID, is_restricted=True)
    slack_api.fail("users.info", "user_not_found")
    assert directory.identity(LEAD).member is None


# -- "*" needs saying so; doctor warns -------------------------------------------------------------

EVERYONE = """
profiles:
  deployer:
    requesters: ["*"]
    approvers: ["*"]
    environments:
      prod: {required_approvals: 2}
"""


def test_everyone_as_approver_is_refused_unless_the_policy_says_so(tmp_path: Path) -> None:
    path = tmp_path / "policy.yml"
    path.write_text(EVERYONE)
    with pytest.raises(PolicyError) as refused:
        load_policy(path)
    assert f"{path}:5: profiles.deployer.approvers[0]" in str(refused.value)
    assert "allow_everyone: true" in str(refused.value)

    path.write_text(EVERYONE.replace('approvers: ["*"]', 'approvers: ["*"]\n    allow_everyone: true'))
    assert load_policy(path).profiles["deployer"].approvers.everyone


def test_doctor_warns_when_everyone_may_approve(tmp_path: Path) -> None:
    path = tmp_path / "policy.yml"
    path.write_text(EVERYONE.replace('approvers: ["*"]', 'approvers: ["*"]\n    allow_everyone: true'))
    check = check_policy(Settings(ECS_DEPLOY_POLICY_FILE=path))
    assert check.level == "warn"
    assert "profile deployer: everyone may approve" in check.detail
    assert "never guests or Slack Connect users" in check.detail

    path.write_text(EVERYONE.replace('approvers: ["*"]', "approvers: [U0LEAD0001, U0LEAD0002]"))
    assert check_policy(Settings(ECS_DEPLOY_POLICY_FILE=path)).level == "ok"
