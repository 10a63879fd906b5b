"""Issue 10, finding 4: `/ecs-deploy status <id>` and `list` show a deployment only to its requester
and its profile's approvers; anyone else gets the answer an unknown id gets. User-supplied text
(a rejection reason, a typed id) cannot mention, broadcast or link. Through the bot's real HTTP
endpoint, with a real Redis and the Slack stand-in."""

from __future__ import annotations

import json

import pytest

from bot.views.messages import root_message
from core.approval import Rejection
from core.models import Deployment, DeploymentStatus
from storage.store import DeploymentStore
from tests.harness.records import deployment_record
from tests.harness.slack_api import SlackApiStandIn
from tests.harness.slack_requests import SlackClientSim
from tests.test_commands import (
    BYSTANDER,
    GROUP_LEAD,
    LEAD,
    REQUESTER,
    answer,
    link,
    make_deployment,
)
from tests.test_home import open_home, published_to, texts

pytestmark = pytest.mark.e2e

HOSTILE = "<!channel> see <https://evil.example/login|the fix> & <@U0LEAD0001>"
BILLING_LEAD = "U0BILLING1"
POLICY = f"""
profiles:
  deployer:
    requesters: ["*"]
    approvers: [{LEAD}]
    environments:
      dev:
  billing:
    requesters: ["*"]
    approvers: [{BILLING_LEAD}]
    environments:
      dev:
"""


def _with_rejection_reason(store: DeploymentStore, deployment: Deployment, reason: str) -> Deployment:
    def change(d: Deployment) -> Deployment:
        assert d.approval.rejection is not None
        rejection: Rejection = d.approval.rejection.model_copy(update={"reason": reason})
        return d.model_copy(update={"approval": d.approval.model_copy(update={"rejection": rejection})})

    changed, _ = store.transition(deployment.id, change)
    return changed


def test_a_strangers_status_reveals_nothing_of_the_deployment(
    bot: SlackClientSim, slack_api: SlackApiStandIn, store: DeploymentStore
) -> None:
    deployment = make_deployment(store, slack_api, status=DeploymentStatus.REJECTED, rejected_by=LEAD)

    stranger = answer(bot.slash_command(f"status {deployment.id}", user=BYSTANDER))
    unknown = answer(bot.slash_command("status d-0000beef", user=BYSTANDER))

    assert stranger == unknown.replace("d-0000beef", deployment.id), "not the unknown-id answer"
    for secret in (REQUESTER, LEAD, "deployer", "web/dev", "123456789012", "too big", link(deployment)):
        assert secret not in stranger
    # the requester, a named approver and an approver through the leads' user group do see it
    for user in (REQUESTER, LEAD, GROUP_LEAD):
        assert link(deployment) in answer(bot.slash_command(f"status {deployment.id}", user=user)), user


def test_a_rejection_reason_cannot_mention_or_link_in_status(
    bot: SlackClientSim, slack_api: SlackApiStandIn, store: DeploymentStore
) -> None:
    rejected = make_deployment(store, slack_api, status=DeploymentStatus.REJECTED, rejected_by=LEAD)
    _with_rejection_reason(store, rejected, HOSTILE)

    text = answer(bot.slash_command(f"status {rejected.id}", user=REQUESTER))

    assert "&lt;!channel&gt; see &lt;https://evil.example/login|the fix&gt; &amp; &lt;@U0LEAD0001&gt;" in text
    assert "<!channel>" not in text and "<https://evil" not in text


def test_a_typed_id_is_echoed_as_text(bot: SlackClientSim) -> None:
    text = answer(bot.slash_command("status <!here>`x", user=BYSTANDER))
    assert "<!here>" not in text and "&lt;!here&gt;'x" in text


@pytest.fixture
def policy_yaml() -> str:
    """`policy_bot`'s policy (conftest): the one above."""
    return POLICY


def test_a_lead_of_another_profile_sees_neither_status_nor_list_entry(
    policy_bot: SlackClientSim, slack_api: SlackApiStandIn, store: DeploymentStore
) -> None:
    deployment = make_deployment(store, slack_api, status=DeploymentStatus.AWAITING_APPROVAL)

    billing_status = answer(policy_bot.slash_command(f"status {deployment.id}", user=BILLING_LEAD))
    billing_list = answer(policy_bot.slash_command("list", user=BILLING_LEAD))
    assert billing_status.startswith("No deployment") and REQUESTER not in billing_status
    assert deployment.id not in billing_list and REQUESTER not in billing_list

    assert open_home(policy_bot, BILLING_LEAD).status_code == 200
    assert deployment.id not in texts(published_to(slack_api, BILLING_LEAD))

    # the profile's own lead sees it in status, list and App Home
    assert link(deployment) in answer(policy_bot.slash_command(f"status {deployment.id}", user=LEAD))
    assert deployment.id in answer(policy_bot.slash_command("list", user=LEAD))
    assert open_home(policy_bot, LEAD).status_code == 200
    assert deployment.id in texts(published_to(slack_api, LEAD))


def test_the_root_message_shows_a_status_detail_as_text() -> None:
    deployment = deployment_record(
        REQUESTER, team_id="T111", status=DeploymentStatus.FAILED, status_detail=f"plan: {HOSTILE}"
    )
    rendered = json.dumps(root_message(deployment).block_dicts())
    assert "<!channel>" not in rendered and "<https://evil" not in rendered
    assert "&lt;!channel&gt;" in rendered
