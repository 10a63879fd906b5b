"""One open deployment per environment, on real parts: the bot over HTTP (signed requests to the real
Bolt app), a real Redis and the Slack Web API stand-in. These stop before any worker runs.

- Several change (or destroy) submissions for one environment posted at the same moment, each from its
  own modal: exactly one deployment is stored, and every other submission is answered with the
  "still open" refusal naming the one that won (bot/environments.py's guard around check + create).
- A new request's check finds an open CREATE through the environment's open-deployment index
  (storage/environments.py), however many newer deployments exist.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import pytest
import redis
import requests

from bot.views.approval import click_text
from bot.views.destroy import CONFIRM_BLOCK, DestroyContext
from bot.views.messages import root_message
from core.approval import (
    ApprovalOutcome,
    ApprovalResult,
    ApprovalState,
    ClickContext,
    PlanBinding,
    new_plan,
    record_approval,
)
from core.lifecycle import DeploymentKind
from core.models import Deployment, DeploymentStatus, utcnow
from core.policy.loading import parse_policy
from core.policy.principals import SlackIdentity, SlackMember
from storage.environments import EnvironmentStore
from storage.store import DeploymentStore
from tests.harness.flow import OTHER, REQUESTER, change_values
from tests.harness.records import deployment_record, deployment_request
from tests.harness.slack_api import SlackApiStandIn
from tests.harness.slack_requests import SlackClientSim, request_values, text_value
from tests.test_change_flow import KEY, live_environment

pytestmark = pytest.mark.e2e

SUBMISSIONS = 8  # at most the web process's waitress threads, so all of them run at once
METADATA = json.dumps({"channel_id": "C_DEPLOYS", "team_id": "T111"})


def all_at_once(
    bot: SlackClientSim, values: dict[str, dict[str, Any]], *, callback_id: str, metadata: str
) -> list[requests.Response]:
    """SUBMISSIONS view submissions of one modal kind, each from its own view (so none is a retry of
    another), each on its own connection, released together."""
    start = threading.Barrier(SUBMISSIONS)
    responses: list[requests.Response | None] = [None] * SUBMISSIONS
    users = (REQUESTER, OTHER)

    def submit(n: int) -> None:
        slack = SlackClientSim(bot.url, bot.secret)
        start.wait()
        responses[n] = slack.view_submission(
            values,
            user=users[n % 2],
            private_metadata=metadata,
            view_id=f"V-RACE-{n}",
            callback_id=callback_id,
        )

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(SUBMISSIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r is not None and r.status_code == 200 for r in responses), responses
    return [r for r in responses if r is not None]


def opened_since(redis_conn: redis.Redis, before: set[str]) -> list[Deployment]:
    return [d for d in DeploymentStore(redis_conn).recent(limit=500) if d.id not in before]


def test_simultaneous_changes_of_one_environment_store_exactly_one(
    bot: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis
) -> None:
    live_environment(redis_conn)
    before = {d.id for d in DeploymentStore(redis_conn).recent(limit=50)}
    metadata = json.dumps({"environment_key": KEY, "mode": "change", "channel_id": "C_DEPLOYS"})

    responses = all_at_once(
        bot, change_values(size="medium"), callback_id="ecs_deploy_change", metadata=metadata
    )

    [change] = opened_since(redis_conn, before)
    assert change.kind is DeploymentKind.CHANGE and change.request.size.value == "medium"
    assert EnvironmentStore(redis_conn).find(KEY).deployments[-1] == change.id  # type: ignore[union-attr]
    accepted = [r for r in responses if r.text in ("", "{}")]
    refused = [r.text for r in responses if r.text not in ("", "{}")]
    assert len(accepted) == 1 and len(refused) == SUBMISSIONS - 1, [r.text for r in responses]
    for text in refused:  # the notice replacing the form: still open, naming the one that won
        assert "not finished yet" in text and change.id in text, text


def test_simultaneous_destroys_of_one_environment_store_exactly_one(
    bot: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis
) -> None:
    live_environment(redis_conn)
    before = {d.id for d in DeploymentStore(redis_conn).recent(limit=50)}
    metadata = DestroyContext(environment_key=KEY, channel_id="C_DEPLOYS", team_id="T111")

    responses = all_at_once(
        bot,
        {CONFIRM_BLOCK: text_value("web/dev")},
        callback_id="ecs_deploy_destroy",
        metadata=metadata.model_dump_json(),
    )

    [destroy] = opened_since(redis_conn, before)
    assert destroy.kind is DeploymentKind.DESTROY
    assert EnvironmentStore(redis_conn).find(KEY).deployments[-1] == destroy.id  # type: ignore[union-attr]
    accepted = [r for r in responses if r.text in ("", "{}")]
    refused = [r.json()["errors"][CONFIRM_BLOCK] for r in responses if r.text not in ("", "{}")]
    assert len(accepted) == 1 and len(refused) == SUBMISSIONS - 1, [r.text for r in responses]
    for error in refused:  # the field error: still open, naming the one that won
        assert "still open" in error and destroy.id in error, error


def test_simultaneous_new_requests_for_one_environment_store_exactly_one(
    bot: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis
) -> None:
    responses = all_at_once(bot, request_values(), callback_id="ecs_deploy_request", metadata=METADATA)

    [created] = opened_since(redis_conn, set())
    assert created.kind is DeploymentKind.CREATE
    refused = [r.json()["errors"]["application"] for r in responses if r.text not in ("", "{}")]
    assert len(refused) == SUBMISSIONS - 1, [r.text for r in responses]
    for error in refused:  # the winner is named to whoever may see it: its requester, the leads
        assert "being deployed already" in error, error


def test_an_open_create_older_than_the_newest_200_deployments_is_still_found(
    bot: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis
) -> None:
    store = DeploymentStore(redis_conn)
    creating, _ = store.create(
        deployment_record(REQUESTER, request=deployment_request(), status=DeploymentStatus.AWAITING_APPROVAL)
    )
    for n in range(201):  # newer deployments of other environments, all finished
        store.create(
            deployment_record(
                OTHER,
                request=deployment_request(application=f"app{n}"),
                status=DeploymentStatus.DEPLOYED,
            )
        )
    assert creating.id not in {d.id for d in store.recent(limit=200)}

    response = bot.view_submission(request_values(), private_metadata=METADATA, view_id="V-OLD-CREATE")

    assert response.status_code == 200 and response.text not in ("", "{}"), response.text
    error = response.json()["errors"]["application"]
    assert "being deployed already" in error and creating.id in error, error
    assert len(store.recent(limit=500)) == 202, "nothing new stored"


# -- wording: a destroy's self-approval refusal, a destroy's root message ---------------------------

DESTROY_POLICY = """
defaults:
  requesters: ["*"]
  environments: {dev: }
profiles:
  deployer:
    approvers: [U0LEAD1, U0REQ]
    allow_self_approval: true
"""


def test_the_requester_approving_their_own_destroy_is_told_destroys_need_other_approvers() -> None:
    """Self-approval is allowed for ordinary plans here, but not for a destroy's
    (`allow_self_destroy_approval` defaults to off): the refusal says so, not "does not allow
    self-approval"."""
    planned_at = utcnow() - timedelta(minutes=1)
    binding = PlanBinding(
        plan_sha256="a" * 64,
        repo_commit="c" * 40,
        tfvars_sha256="b" * 64,
        plan_created_at=planned_at,
        attempt=1,
    )
    state = new_plan(ApprovalState(), binding)
    requester = SlackIdentity(user_id="U0REQ", member=SlackMember(team_id="T111"), workspace_team_id="T111")
    policy = parse_policy(DESTROY_POLICY)

    def approve(destroy: bool) -> ApprovalResult:
        click = ClickContext(
            user=requester,
            profile="deployer",
            environment="dev",
            requester_id="U0REQ",
            binding_seen=binding,
            now=utcnow(),
        )
        return record_approval(state, policy, click, destroy=destroy)

    assert approve(destroy=False).outcome is ApprovalOutcome.APPROVED_READY
    refused = approve(destroy=True)
    assert refused.outcome is ApprovalOutcome.REFUSED_SELF_APPROVAL and refused.facts.destroy
    text = click_text(refused)
    assert "does not allow self-approval" not in text, text
    assert (
        "cannot approve it yourself: a destroy needs approvers other than the person who requested it" in text
    ), text
    assert "allow_self_destroy_approval" in text and "<@U0LEAD1>" in text, text


def test_a_destroys_root_message_names_the_environment_in_the_pattern_of_the_other_kinds() -> None:
    request = deployment_request()
    headlines = {
        kind: root_message(deployment_record(REQUESTER, request=request, kind=kind)).text
        for kind in DeploymentKind
    }
    destroy = headlines[DeploymentKind.DESTROY]
    assert "an ECS environment" not in destroy, destroy
    assert destroy.startswith(
        f"Destroy requested: web/dev · 123456789012 · us-east-1 · small — by <@{REQUESTER}>"
    )
    for kind, text in headlines.items():  # one pattern: "<what> requested: <headline> — by <@requester>"
        assert f" requested: {request.headline} — by <@{REQUESTER}>" in text, (kind, text)
