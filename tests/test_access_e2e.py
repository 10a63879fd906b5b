"""The access policy at the Slack edge: hidden profiles stay hidden, forged submissions are refused,
and an environment the profile does not declare is refused on its field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from storage.store import DeploymentStore
from tests.harness.processes import WebProcess, with_policy
from tests.harness.slack_api import SlackApiStandIn
from tests.harness.slack_requests import SlackClientSim, request_values

# Like docs/policy.example.yml's dev-admin: members may approve their own dev plans, never prod ones.
POLICY = """
defaults:
  approvers: [U0LEAD0001, U0MEMBER01]
  environments:
    dev:
    prod: {required_approvals: 2}
profiles:
  deployer:
    requesters: [S0PLATFORM]
    allow_self_approval: true
    environments:
      prod: {allow_self_approval: false}
  other-account:
    requesters: [U0ADMIN001]
    assume_role_arn: arn:aws:iam::222233334444:role/DeployRole
"""
METADATA = json.dumps({"channel_id": "C1", "team_id": "T111"})


@pytest.fixture
def policy_yaml() -> str:
    """`policy_bot`'s policy (conftest): the one above."""
    return POLICY


def offered_profiles(slack_api: SlackApiStandIn) -> list[str]:
    view = slack_api.wait_for("views.open").params["view"]
    block = next(b for b in view["blocks"] if b.get("block_id") == "profile")
    return [o["value"] for o in block["element"]["options"]]


def member_submits(
    web: SlackClientSim,
    slack_api: SlackApiStandIn,
    values: dict[str, dict[str, Any]],
    private_metadata: str = METADATA,
    view_id: str = "V0001",
) -> requests.Response:
    """U0MEMBER01, a member of the S0PLATFORM requesters' group, submits the request form."""
    slack_api.usergroups["S0PLATFORM"] = ["U0MEMBER01"]
    return web.view_submission(values, user="U0MEMBER01", private_metadata=private_metadata, view_id=view_id)


def test_group_member_sees_only_the_profiles_the_policy_gives_them(
    policy_bot: SlackClientSim, slack_api: SlackApiStandIn
) -> None:
    slack_api.usergroups["S0PLATFORM"] = ["U0MEMBER01"]
    policy_bot.slash_command("", user="U0MEMBER01")
    assert offered_profiles(slack_api) == ["deployer"]
    assert slack_api.calls_to("usergroups.users.list")[0].params["usergroup"] == "S0PLATFORM"


def test_user_with_no_profile_is_told_and_gets_no_form(
    policy_bot: SlackClientSim, slack_api: SlackApiStandIn
) -> None:
    slack_api.usergroups["S0PLATFORM"] = []
    policy_bot.slash_command("", user="U0STRANGE1")
    call = slack_api.wait_for("chat.postEphemeral")
    assert call.params["user"] == "U0STRANGE1" and "No AWS profile is available to you" in call.params["text"]
    assert slack_api.calls_to("views.open") == []


def test_forged_submission_with_a_hidden_profile_is_refused(
    policy_bot: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis
) -> None:
    response = member_submits(
        policy_bot, slack_api, request_values(profile="other-account"), json.dumps({"channel_id": "C1"})
    )
    assert "profile" in response.json()["errors"]
    assert redis_conn.keys("ecs-deploy:deployment:*") == []


@pytest.mark.parametrize("typed", ["prd", "production"])
def test_an_environment_the_profile_does_not_declare_is_refused_on_its_field(
    policy_bot: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis, typed: str
) -> None:
    """Issue 10, finding 8: a requester who may self-approve outside prod names prod differently to
    approve their own production plan. The form refuses the name and lists the allowed ones."""
    response = member_submits(policy_bot, slack_api, request_values(environment=typed), view_id="V-ENV")
    assert response.status_code == 200
    body = response.json()
    assert body["response_action"] == "errors"
    assert set(body["errors"]) == {"environment"}
    assert body["errors"]["environment"] == (
        f"Environment {typed} is not declared for profile deployer. Allowed: dev, prod."
        " An operator can declare more in the access policy."
    )
    assert redis_conn.keys("ecs-deploy:deployment:*") == []


def test_a_declared_environment_is_accepted(
    policy_bot: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis
) -> None:
    response = member_submits(policy_bot, slack_api, request_values(environment="prod"), view_id="V-PROD")
    assert response.status_code == 200 and response.text in ("", "{}"), response.text
    [deployment] = DeploymentStore(redis_conn).recent(limit=10)
    assert (deployment.request.environment, deployment.requester_id) == ("prod", "U0MEMBER01")


def test_the_environment_is_checked_along_with_the_other_fields(
    policy_bot: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis
) -> None:
    response = member_submits(
        policy_bot, slack_api, request_values(environment="stag", account_id="12345"), view_id="V-BOTH"
    )
    errors = response.json()["errors"]
    assert set(errors) == {"environment", "account_id"}
    assert "Allowed: dev, prod." in errors["environment"]


@pytest.mark.parametrize(
    ("policy", "said"),
    [
        pytest.param(  # a misspelt key, named with its line
            "profiles:\n  deployer:\n    requesters: [U1]\n    aprovers: [U2]\n    environments: {dev: }\n",
            ["ECS_DEPLOY_POLICY_FILE", "policy.yml:4", "aprovers"],
            id="broken-file",
        ),
        pytest.param(
            "profiles:\n  deployer:\n    requesters: [U1]\n    approvers: [U2]\n",
            ["policy.yml:2: profiles.deployer: declares no environments"],
            id="no-declared-environments",
        ),
    ],
)
def test_a_bad_policy_stops_the_web_process_with_the_line(
    bot_env: dict[str, str], tmp_path: Path, policy: str, said: list[str]
) -> None:
    web = WebProcess(with_policy(bot_env, tmp_path, policy))
    with pytest.raises(RuntimeError) as failure:
        web.start()
    for part in said:
        assert part in str(failure.value)
