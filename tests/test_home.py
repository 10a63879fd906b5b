"""App Home through the bot's real HTTP endpoint: a signed `app_home_opened` event → views.publish,
for a requester and for leads; the link button's click is acked; the view stays within 100 blocks."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest
import requests

from bot.views.home import home_view
from core.models import Deployment, DeploymentStatus
from storage.store import DeploymentStore
from tests.harness.records import REQUEST_FIELDS
from tests.harness.slack_api import SlackApiStandIn
from tests.harness.slack_requests import SlackClientSim, fixture
from tests.test_commands import (
    BYSTANDER,
    GROUP_LEAD,
    LEAD,
    OTHER,
    REQUESTER,
    link,
    make_deployment,
)

pytestmark = pytest.mark.e2e


def open_home(bot: SlackClientSim, user: str) -> requests.Response:
    body = copy.deepcopy(fixture("bolt_event_callback_reaction_added.json"))
    body.pop("enterprise_id", None)
    body["event"] = {
        "type": "app_home_opened",
        "user": user,
        "channel": "D0HOME0001",
        "tab": "home",
        "event_ts": f"{time.time():.6f}",
    }
    body.update(event_id=f"Ev{time.time_ns()}", event_time=int(time.time()), authed_users=[user])
    return bot.post(json.dumps(body), content_type="application/json")


def published_to(api: SlackApiStandIn, user: str) -> dict[str, Any]:
    call = api.wait_for("views.publish", lambda c: c.params.get("user_id") == user, timeout=10)
    view = call.params["view"]
    assert view["type"] == "home" and len(view["blocks"]) <= 100
    return dict(view)


def texts(view: dict[str, Any]) -> str:
    return json.dumps(view["blocks"], ensure_ascii=False)


def buttons(view: dict[str, Any]) -> dict[str, str]:
    """Each link button's deployment id → url."""
    return {
        b["accessory"]["value"]: b["accessory"]["url"]
        for b in view["blocks"]
        if b.get("accessory", {}).get("type") == "button"
    }


def test_a_requester_sees_their_deployments_and_the_how_to(
    bot: SlackClientSim, slack_api: SlackApiStandIn, store: DeploymentStore
) -> None:
    deployed = make_deployment(store, slack_api, status=DeploymentStatus.DEPLOYED, age_minutes=5)
    waiting = make_deployment(store, slack_api, status=DeploymentStatus.AWAITING_APPROVAL)
    someone_elses = make_deployment(
        store, slack_api, requester=OTHER, status=DeploymentStatus.AWAITING_APPROVAL
    )

    assert open_home(bot, REQUESTER).status_code == 200
    view = published_to(slack_api, REQUESTER)
    text = texts(view)
    assert "Request a deployment" in text and "/ecs-deploy" in text
    assert text.index(waiting.id) < text.index(deployed.id), "newest first"
    assert ":white_check_mark: Deployed" in text and ":raising_hand: Waiting for approval" in text
    assert someone_elses.id not in text
    assert "Waiting for your approval" not in text, "not a lead"
    assert buttons(view)[waiting.id] == link(waiting)


def test_a_lead_sees_the_plans_waiting_for_their_approval(
    bot: SlackClientSim, slack_api: SlackApiStandIn, store: DeploymentStore
) -> None:
    pending = make_deployment(store, slack_api, status=DeploymentStatus.AWAITING_APPROVAL)
    already_approved = make_deployment(
        store, slack_api, requester=OTHER, status=DeploymentStatus.AWAITING_APPROVAL, approvers=(LEAD,)
    )
    own = make_deployment(store, slack_api, requester=LEAD, status=DeploymentStatus.AWAITING_APPROVAL)
    finished = make_deployment(store, slack_api, status=DeploymentStatus.DEPLOYED)

    open_home(bot, LEAD)
    view = published_to(slack_api, LEAD)
    text = texts(view)
    approvals = text[text.index("Waiting for your approval") : text.index("Your recent deployments")]
    assert "Waiting for your approval (1)" in approvals
    assert pending.id in approvals and f"<@{REQUESTER}>" in approvals and "approvals 0/1" in approvals
    assert "Plan: 112 to add" in approvals
    for not_pending in (already_approved, own, finished):  # approved by them, their own, decided
        assert not_pending.id not in approvals
    mine = text[text.index("Your recent deployments") :]
    assert own.id in mine and pending.id not in mine
    assert buttons(view)[pending.id] == link(pending)

    # a member of the approvers' user group is a lead as well
    open_home(bot, GROUP_LEAD)
    group_view = published_to(slack_api, GROUP_LEAD)
    assert "Waiting for your approval (3)" in texts(group_view)

    # nobody else gets an approvals section
    open_home(bot, BYSTANDER)
    assert "Waiting for your approval" not in texts(published_to(slack_api, BYSTANDER))


def test_the_open_thread_link_button_click_is_acked(bot: SlackClientSim) -> None:
    response = bot.block_action("home_open_thread", "d-0000abcd", user=LEAD, channel="D0HOME0001")
    assert response.status_code == 200  # Bolt answers 404 for a click no listener handles


def test_the_home_view_stays_within_slacks_100_blocks() -> None:
    base = Deployment.model_validate_json(_sample_json())
    many = [base.model_copy(update={"id": f"d-{i:08x}"}) for i in range(80)]
    view = home_view(mine=many, pending=many).to_dict()
    assert len(view["blocks"]) <= 100
    rendered = json.dumps(view["blocks"], ensure_ascii=False)
    assert "… and 60 more" in rendered and "Older ones" in rendered
    down = home_view(mine=[], pending=None, store_down=True).to_dict()
    assert "cannot reach its store" in json.dumps(down["blocks"])


def _sample_json() -> str:
    return json.dumps(
        {
            "request": REQUEST_FIELDS,
            "requester_id": REQUESTER,
            "channel_id": "C_DEPLOYS",
            "thread_ts": "1700000000.000001",
            "status": "awaiting_approval",
        }
    )
